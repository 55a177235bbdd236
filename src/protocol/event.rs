//! Sequenced events (PROTOCOL.md §2): `EventKind`, the `type` of each, and `Event`, one event
//! as it is stored and sent.
//!
//! `Event.data` stays JSON: events read back from the database carry their stored data as it
//! was. New events are built from a typed payload (`payload.rs`) with `Event::new`.

use serde::Serialize;
use serde_json::Value;

use crate::clock::now_ms;
use crate::context::{RunId, ThreadId};
use crate::protocol::EventPayload;

macro_rules! event_kinds {
    ($($variant:ident => $wire:literal,)*) => {
        /// The `type` of a sequenced event (PROTOCOL.md §2), plus `erased` for replays of
        /// deleted threads.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventKind { $(#[doc = concat!("`", $wire, "`")] $variant,)* }

        impl EventKind {
            /// The wire spelling, also stored in `events.kind`.
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
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Event {
    /// The event's `type` (PROTOCOL.md §2: `thread_created`, `message_received`,
    /// `run_started`, `agent_started`, …, `run_completed`).
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: EventKind,
    /// Per-user, gapless; 0 until the user's session numbers it.
    pub seq: i64,
    /// Unix epoch milliseconds.
    pub ts: i64,
    /// Set on every sequenced event enclave emits.
    #[schema(value_type = Option<String>)]
    pub thread_id: Option<ThreadId>,
    /// Set on every event of a run (null on `thread_deleted`).
    #[schema(value_type = Option<String>)]
    pub run_id: Option<RunId>,
    /// The agent, on agent-level events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The type-specific fields. Null only for `erased` events, which carry no data.
    #[serde(skip_serializing_if = "Value::is_null")]
    #[schema(value_type = Object)]
    pub data: Value,
}

impl Event {
    /// A new event of `payload`'s kind, not yet numbered (`seq` 0), stamped now.
    pub fn new(
        payload: impl Into<EventPayload>,
        thread_id: Option<ThreadId>,
        run_id: Option<RunId>,
        agent: Option<String>,
    ) -> Self {
        let (kind, data) = payload.into().into_parts();
        Self {
            kind,
            seq: 0,
            ts: now_ms(),
            thread_id,
            run_id,
            agent,
            data,
        }
    }

    /// The event as one text frame.
    pub fn to_frame(&self) -> String {
        serde_json::to_string(self).expect("an event is plain JSON data")
    }
}
