//! The serde types of PROTOCOL.md: client frames in, sequenced events and unsequenced frames
//! out.
//!
//! Only this module knows the wire shapes. Client frames are parsed in two steps (find `type`,
//! then its fields) so every malformed frame gets a precise `bad_request` message.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::context::{RunId, ThreadId, UserId};
use crate::error::ErrorCode;

/// The version a client sees in `connected.protocol`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest `client_msg_id`, in characters.
pub const MAX_CLIENT_MSG_ID_CHARS: usize = 64;

/// The one character a PostgreSQL text column cannot hold. A client string that is stored and
/// contains it is refused on both databases alike, before it reaches a write batch (where it
/// would fail the whole batch, other runs' events with it).
const NUL: char = '\0';

/// The `bad_request` for a stored client string `field` that holds a NUL character.
fn unstorable(field: &str) -> FrameError {
    FrameError::bad_request(format!(
        "`{field}` contains a NUL character (U+0000), which cannot be stored; remove it and \
         send the message again"
    ))
}

/// A client frame that could not be accepted, with the code and message to answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub code: ErrorCode,
    pub message: String,
    /// The offending id, echoed as `ref`.
    pub reference: Option<String>,
}

impl FrameError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            reference: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn with_ref(mut self, reference: impl Into<String>) -> Self {
        self.reference = Some(reference.into());
        self
    }
}

/// A validated `user_message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserMessage {
    pub content: String,
    pub thread_id: Option<ThreadId>,
    pub client_msg_id: Option<String>,
}

/// One frame a client may send, each variant a PROTOCOL.md §2 type.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    UserMessage(UserMessage),
    Approval {
        approval_id: String,
        decision: ApprovalDecision,
    },
    CancelRun {
        run_id: String,
    },
    Resume {
        after_seq: i64,
    },
    Ping {
        nonce: Value,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalDecision {
    Approve,
    Reject,
}

/// How an approval was resolved (`approval_resolved.decision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalOutcome {
    Approve,
    Reject,
    Expired,
    Cancelled,
}

impl ApprovalOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject => "reject",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }
}

impl From<ApprovalDecision> for ApprovalOutcome {
    fn from(decision: ApprovalDecision) -> Self {
        match decision {
            ApprovalDecision::Approve => Self::Approve,
            ApprovalDecision::Reject => Self::Reject,
        }
    }
}

#[derive(Deserialize)]
struct RawUserMessage {
    content: Option<String>,
    thread_id: Option<String>,
    client_msg_id: Option<String>,
}

#[derive(Deserialize)]
struct RawApproval {
    approval_id: String,
    decision: ApprovalDecision,
}

#[derive(Deserialize)]
struct RawCancel {
    run_id: String,
}

#[derive(Deserialize)]
struct RawResume {
    after_seq: i64,
}

impl ClientFrame {
    /// Parses and validates one text frame; `max_content_chars` bounds `user_message.content`.
    pub fn parse(text: &str, max_content_chars: usize) -> Result<Self, FrameError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| FrameError::bad_request(format!("malformed JSON: {e}")))?;
        let Value::Object(ref object) = value else {
            return Err(FrameError::bad_request(
                "a frame must be a JSON object with a string field `type`",
            ));
        };
        let kind = match object.get("type") {
            Some(Value::String(kind)) => kind.clone(),
            Some(_) => return Err(FrameError::bad_request("field `type` must be a string")),
            None => return Err(FrameError::bad_request("missing field `type`")),
        };
        match kind.as_str() {
            "user_message" => {
                let raw: RawUserMessage = fields(value, &kind)?;
                validate_user_message(raw, max_content_chars).map(Self::UserMessage)
            }
            "approval" => {
                let raw: RawApproval = fields(value, &kind)?;
                Ok(Self::Approval {
                    approval_id: raw.approval_id,
                    decision: raw.decision,
                })
            }
            "cancel_run" => {
                let raw: RawCancel = fields(value, &kind)?;
                Ok(Self::CancelRun { run_id: raw.run_id })
            }
            "resume" => {
                let raw: RawResume = fields(value, &kind)?;
                if raw.after_seq < 0 {
                    return Err(FrameError::bad_request("`after_seq` must be 0 or more"));
                }
                Ok(Self::Resume {
                    after_seq: raw.after_seq,
                })
            }
            "ping" => Ok(Self::Ping {
                nonce: object.get("nonce").cloned().unwrap_or(Value::Null),
            }),
            other => Err(FrameError::bad_request(format!(
                "unknown type {other:?}; expected user_message, approval, cancel_run, resume or ping"
            ))),
        }
    }
}

fn fields<T: serde::de::DeserializeOwned>(value: Value, kind: &str) -> Result<T, FrameError> {
    serde_json::from_value(value).map_err(|e| FrameError::bad_request(format!("{kind}: {e}")))
}

fn validate_user_message(
    raw: RawUserMessage,
    max_content_chars: usize,
) -> Result<UserMessage, FrameError> {
    let client_msg_id = match raw.client_msg_id {
        Some(id) if id.is_empty() || id.chars().count() > MAX_CLIENT_MSG_ID_CHARS => {
            return Err(FrameError::bad_request(format!(
                "`client_msg_id` must be 1-{MAX_CLIENT_MSG_ID_CHARS} characters"
            )));
        }
        Some(id) if id.contains(NUL) => return Err(unstorable("client_msg_id")),
        other => other,
    };
    let reject = |e: FrameError| match &client_msg_id {
        Some(id) => e.with_ref(id.clone()),
        None => e,
    };
    let content = raw
        .content
        .ok_or_else(|| reject(FrameError::bad_request("missing field `content`")))?;
    let chars = content.chars().count();
    if chars == 0 {
        return Err(reject(FrameError::bad_request("`content` is empty")));
    }
    if chars > max_content_chars {
        return Err(reject(FrameError::new(
            ErrorCode::TooLarge,
            format!("`content` has {chars} characters; the limit is {max_content_chars}"),
        )));
    }
    if content.contains(NUL) {
        return Err(reject(unstorable("content")));
    }
    let thread_id = match raw.thread_id {
        None => None,
        Some(raw_id) => Some(ThreadId::parse(&raw_id).map_err(|_| {
            reject(FrameError::bad_request(format!(
                "`thread_id` {raw_id:?} is not a uuid"
            )))
        })?),
    };
    Ok(UserMessage {
        content,
        thread_id,
        client_msg_id,
    })
}

macro_rules! event_kinds {
    ($($variant:ident => $wire:literal,)*) => {
        /// The `type` of a sequenced event (PROTOCOL.md §2), plus `erased` for replays of
        /// deleted threads.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventKind { $($variant,)* }

        impl EventKind {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $wire,)* }
            }

            /// The kind stored as `wire`, if enclave knows it.
            pub fn from_wire(wire: &str) -> Option<Self> {
                match wire { $($wire => Some(Self::$variant),)* _ => None }
            }
        }
    };
}

event_kinds! {
    ThreadCreated => "thread_created",
    MessageReceived => "message_received",
    RunQueued => "run_queued",
    RunStarted => "run_started",
    AgentStarted => "agent_started",
    AgentThinking => "agent_thinking",
    AgentStream => "agent_stream",
    ToolExecuting => "tool_executing",
    ToolCompleted => "tool_completed",
    Progress => "progress",
    ApprovalRequired => "approval_required",
    ApprovalResolved => "approval_resolved",
    AgentCompleted => "agent_completed",
    AgentError => "agent_error",
    AgentRestarted => "agent_restarted",
    AgentFallback => "agent_fallback",
    RunCompleted => "run_completed",
    RunFailed => "run_failed",
    RunCancelled => "run_cancelled",
    RunInterrupted => "run_interrupted",
    ThreadDeleted => "thread_deleted",
    Erased => "erased",
}

impl EventKind {
    /// Whether this event ends its run.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::RunCompleted | Self::RunFailed | Self::RunCancelled | Self::RunInterrupted
        )
    }
}

impl Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A sequenced event as it is stored and sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub seq: i64,
    pub ts: i64,
    pub thread_id: Option<ThreadId>,
    pub run_id: Option<RunId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Null only for `erased` events, which carry no data.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub data: Value,
}

impl Event {
    /// The event as one text frame.
    pub fn to_frame(&self) -> String {
        serde_json::to_string(self).expect("an event is plain JSON data")
    }
}

/// Where a run is in its life (`GET /api/runs/{id}` `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    Queued,
    Running,
    AwaitingApproval,
    Completed,
    Failed,
    Cancelled,
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::AwaitingApproval => "awaiting_approval",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Interrupted => "interrupted",
        }
    }
}

/// A run that is in flight, as `connected.active_runs` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActiveRunInfo {
    pub run_id: RunId,
    pub thread_id: ThreadId,
    pub status: &'static str,
}

/// An approval waiting for the user, as `connected.pending_approvals` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingApprovalInfo {
    pub approval_id: String,
    pub run_id: RunId,
    pub action: String,
    pub expires_at: i64,
}

/// Frames that are not sequenced (PROTOCOL.md §2).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Connected {
        user_id: UserId,
        connection_id: String,
        last_seq: i64,
        protocol: u32,
        active_runs: Vec<ActiveRunInfo>,
        pending_approvals: Vec<PendingApprovalInfo>,
    },
    Pong {
        nonce: Value,
    },
    Resumed {
        through_seq: i64,
    },
    Truncated {
        oldest_seq: i64,
    },
    Error {
        code: ErrorCode,
        message: String,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
}

impl ServerFrame {
    pub fn error(e: FrameError) -> Self {
        Self::Error {
            code: e.code,
            message: e.message,
            reference: e.reference,
        }
    }

    pub fn to_frame(&self) -> String {
        serde_json::to_string(self).expect("a server frame is plain JSON data")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        ClientFrame::parse(text, 10)
            .expect_err("must be refused")
            .code
    }

    #[test]
    fn refuses_bad_frames_with_protocol_codes() {
        assert_eq!(code("nope"), ErrorCode::BadRequest);
        assert_eq!(code("{}"), ErrorCode::BadRequest);
        assert_eq!(code(r#"{"type":"dance"}"#), ErrorCode::BadRequest);
        assert_eq!(
            code(r#"{"type":"user_message","content":""}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"type":"user_message","content":"12345678901"}"#),
            ErrorCode::TooLarge
        );
        assert_eq!(
            code(r#"{"type":"user_message","content":"hi","thread_id":"x"}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"type":"resume","after_seq":-1}"#),
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn refuses_nul_in_stored_strings_naming_the_field() {
        let content = ClientFrame::parse(
            r#"{"type":"user_message","content":"a\u0000b","client_msg_id":"m1"}"#,
            10,
        )
        .expect_err("NUL in content");
        assert_eq!(content.code, ErrorCode::BadRequest);
        assert!(content.message.starts_with("`content` contains a NUL"));
        assert_eq!(content.reference.as_deref(), Some("m1"));
        let id = ClientFrame::parse(
            r#"{"type":"user_message","content":"hi","client_msg_id":"m\u0000"}"#,
            10,
        )
        .expect_err("NUL in client_msg_id");
        assert_eq!(id.code, ErrorCode::BadRequest);
        assert!(id.message.starts_with("`client_msg_id` contains a NUL"));
        assert!(
            ClientFrame::parse(r#"{"type":"user_message","content":"a\u0001b"}"#, 10).is_ok(),
            "other control characters are stored as they are"
        );
    }

    #[test]
    fn counts_content_in_scalar_values() {
        let ten_snowmen = "☃".repeat(10);
        let frame = format!(r#"{{"type":"user_message","content":"{ten_snowmen}"}}"#);
        assert!(ClientFrame::parse(&frame, 10).is_ok());
    }

    #[test]
    fn error_frame_shape() {
        let frame = ServerFrame::error(
            FrameError::new(ErrorCode::NotFound, "no such thread").with_ref("m1"),
        );
        assert_eq!(
            frame.to_frame(),
            r#"{"type":"error","code":"not_found","message":"no such thread","ref":"m1"}"#
        );
    }
}
