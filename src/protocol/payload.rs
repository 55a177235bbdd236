//! The typed `data` of each sequenced event kind (PROTOCOL.md §2): one struct per kind, and
//! `EventPayload`, one variant per kind, which names its `EventKind` and becomes `data`.
//!
//! Field names and optional fields are the wire's; free-form parts (tool input and output,
//! agent results, approval details) stay JSON. `data` is built through `serde_json::Value`,
//! whose object keys are sorted, so the bytes are those the `json!` call sites made.

use serde::Serialize;
use serde_json::Value;

use crate::context::ApprovalId;
use crate::protocol::{
    ApprovalOutcome, CancelReason, EventKind, FailureCode, InterruptReason, QueueReason,
};

/// `thread_created`: a `user_message` without `thread_id` made a thread.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThreadCreated {
    /// The first line of the first message, at most 80 characters (then `…`).
    pub title: String,
    /// The client's key, present only when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
}

/// `message_received`: the user's message, as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageReceived {
    /// The message text.
    pub content: String,
    /// The client's key, present only when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
}

/// `run_queued`: the run waits for a slot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunQueued {
    /// 1 = next in this user's queue.
    pub position: usize,
    /// Which limit holds it back.
    pub reason: QueueReason,
    /// The client's key, present only when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
}

/// `run_started`: the run begins.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunStarted {
    /// The agents known at start (at least `triage`), in order.
    pub plan: Vec<String>,
    /// The client's key, present only when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
}

/// `agent_started`: an agent actor starts an attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentStarted {
    /// 1, or more after restarts.
    pub attempt: u32,
}

/// `agent_thinking`: a human-readable step of the agent's reasoning.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentThinking {
    /// One sentence for the user.
    pub text: String,
}

/// `agent_stream`: streamed LLM tokens.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentStream {
    /// The text since the previous `agent_stream`.
    pub delta: String,
}

/// `tool_executing`: a tool call begins.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolExecuting {
    /// The tool's name.
    pub tool: String,
    /// The call's arguments, as the tool defines them.
    pub input: Value,
}

/// `tool_completed`: a tool call ends.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCompleted {
    /// The tool's name.
    pub tool: String,
    /// What it returned, as the tool defines it (an `error` object when `ok` is false).
    pub output: Value,
    /// Wall time of the call.
    pub duration_ms: u64,
    /// Whether the call succeeded.
    pub ok: bool,
}

/// `progress`: long work advances.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    /// Units done so far.
    pub done: u64,
    /// Units in all.
    pub total: u64,
    /// What is counted, e.g. `records`.
    pub unit: String,
}

/// `approval_required`: a step needs the user's consent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApprovalRequired {
    /// What the client answers with `approval`.
    pub approval_id: ApprovalId,
    /// The step, e.g. `generate_synthetic_data`.
    pub action: String,
    /// One sentence for the user.
    pub summary: String,
    /// The step's parameters, as the agent defines them.
    pub details: Value,
    /// Unix epoch milliseconds; unanswered by then it resolves `expired`.
    pub expires_at: i64,
}

/// `approval_resolved`: answered, timed out or cancelled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApprovalResolved {
    /// The `approval_required` it answers.
    pub approval_id: ApprovalId,
    /// How it was resolved.
    pub decision: ApprovalOutcome,
}

/// `agent_completed`: the agent's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentCompleted {
    /// The attempt that succeeded.
    pub attempt: u32,
    /// Wall time of that attempt.
    pub duration_ms: u64,
    /// The agent's result, as the agent defines it.
    pub result: Value,
    /// The agent used its own deterministic path (e.g. its LLM failed).
    pub fallback: bool,
}

/// `agent_error`: the attempt crashed, timed out, failed or was cancelled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentError {
    /// What went wrong, for the user (`cancelled` when the run was cancelled).
    pub error: String,
    /// The attempt that failed.
    pub attempt: u32,
    /// Whether an `agent_restarted` follows.
    pub will_restart: bool,
    /// Names the server's log line with the failure's internals (none for a cancellation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_id: Option<String>,
}

/// `agent_restarted`: sent before the backoff wait.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentRestarted {
    /// The next attempt.
    pub attempt: u32,
    /// How long the supervisor waits before it.
    pub backoff_ms: u64,
}

/// `agent_fallback`: the supervisor gave up on the agent and uses its static result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentFallback {
    /// Attempts made.
    pub attempts: u32,
    /// The fallback result, as the agent defines it.
    pub result: Value,
}

/// `run_completed`: the run's final answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunCompleted {
    /// A few sentences for the chat.
    pub summary: String,
    /// The full report.
    pub report_markdown: String,
    /// The machine-readable answer (PROTOCOL.md §4 for an optimisation run).
    pub result: Value,
}

/// `run_failed`: the run could not complete, after fallbacks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunFailed {
    /// What went wrong, for the user.
    pub error: String,
    /// Why, as a word a client can match on.
    pub code: FailureCode,
}

/// `run_cancelled`: `cancel_run`, or the server shutting down.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunCancelled {
    /// Who cancelled it.
    pub reason: CancelReason,
}

/// `run_interrupted`: the run was lost with its process or node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunInterrupted {
    /// How it was lost.
    pub reason: InterruptReason,
}

/// `thread_deleted`: no fields (`data` is `{}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThreadDeleted {}

macro_rules! payloads {
    ($($kind:ident,)*) => {
        /// One event's typed `data`: a variant per kind of PROTOCOL.md §2 (`erased` has none).
        #[derive(Debug, Clone, PartialEq)]
        pub enum EventPayload { $(#[doc = concat!("See [`", stringify!($kind), "`].")] $kind($kind),)* }

        impl EventPayload {
            /// The event's `type`.
            pub fn kind(&self) -> EventKind {
                match self { $(Self::$kind(_) => EventKind::$kind,)* }
            }

            /// The event's `data` object.
            pub fn into_data(self) -> Value {
                match self { $(Self::$kind(payload) => to_data(&payload),)* }
            }
        }

        $(impl From<$kind> for EventPayload {
            fn from(payload: $kind) -> Self {
                Self::$kind(payload)
            }
        })*
    };
}

payloads! {
    ThreadCreated, MessageReceived, RunQueued, RunStarted, AgentStarted, AgentThinking,
    AgentStream, ToolExecuting, ToolCompleted, Progress, ApprovalRequired, ApprovalResolved,
    AgentCompleted, AgentError, AgentRestarted, AgentFallback, RunCompleted, RunFailed,
    RunCancelled, RunInterrupted, ThreadDeleted,
}

impl EventPayload {
    /// The event's `type` and `data`, as `Event` and the session's `push` take them.
    pub fn into_parts(self) -> (EventKind, Value) {
        (self.kind(), self.into_data())
    }
}

fn to_data(payload: &impl Serialize) -> Value {
    serde_json::to_value(payload).expect("a payload is plain data with string keys")
}
