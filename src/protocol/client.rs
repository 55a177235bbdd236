//! Client → server frames (PROTOCOL.md §2): `ClientFrame` and its parts, parsed in two steps
//! (find `type`, then its fields) so every malformed frame gets a precise `bad_request`.
//!
//! Stored client strings are checked here for NUL, which PostgreSQL text cannot hold, so one
//! bad message never fails a whole write batch.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::context::ThreadId;
use crate::error::ErrorCode;
use crate::protocol::FrameError;

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

/// A validated `user_message`: what the session needs to start a run. Serde only carries it
/// between nodes (`runtime/cluster/mail.rs`), already validated; clients' frames are read by
/// `ClientFrame::parse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserMessage {
    /// 1..=limit Unicode scalar values, no NUL.
    pub content: String,
    /// `None` starts a new thread.
    pub thread_id: Option<ThreadId>,
    /// The client's idempotency key, 1..=64 characters, no NUL.
    pub client_msg_id: Option<String>,
}

/// One frame a client may send, each variant a PROTOCOL.md §2 type.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// Starts a run.
    UserMessage(UserMessage),
    /// Answers an `approval_required`.
    Approval {
        /// Checked by the session (an unknown id is `not_found`).
        approval_id: String,
        decision: ApprovalDecision,
    },
    /// Cancels a queued or running run.
    CancelRun {
        /// Checked by the session (an unknown id is `not_found`).
        run_id: String,
    },
    /// Replays every event after `after_seq`, then live.
    Resume {
        /// 0 or more.
        after_seq: i64,
    },
    /// Answered with `pong` echoing `nonce`.
    Ping {
        /// Any JSON value; null when absent.
        nonce: Value,
    },
}

impl ClientFrame {
    /// For a frame that costs the server a read (`resume`, `cancel_run`, `approval`): the id it
    /// names, if any, to echo as `ref` when it is refused; `None` for the others.
    pub fn read_cost(&self) -> Option<Option<&str>> {
        match self {
            Self::CancelRun { run_id } => Some(Some(run_id)),
            Self::Approval { approval_id, .. } => Some(Some(approval_id)),
            Self::Resume { .. } => Some(None),
            Self::UserMessage(_) | Self::Ping { .. } => None,
        }
    }
}

/// The user's answer to an approval (`approval.decision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalDecision {
    Approve,
    Reject,
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
}
