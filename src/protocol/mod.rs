//! The wire types of PROTOCOL.md: client frames in, sequenced events and unsequenced frames
//! out over the WebSocket, and the HTTP API's bodies.
//!
//! Only this module knows the wire shapes. Each file owns one part; everything is re-exported
//! here, so `crate::protocol::Event` and friends are the paths to use.

mod client;
mod error;
mod event;
pub mod event_lists;
pub mod export;
pub mod http;
pub mod payload;
mod server;
mod status;
#[cfg(test)]
mod tests;

pub use client::{ApprovalDecision, ClientFrame, MAX_CLIENT_MSG_ID_CHARS, UserMessage};
pub use error::FrameError;
pub use event::{Event, EventKind};
pub use payload::EventPayload;
pub use server::{ActiveRunInfo, PendingApprovalInfo, ServerFrame};
pub use status::{
    ApprovalOutcome, CancelReason, FailureCode, InterruptReason, QueueReason, RunStatus,
    UnknownWord,
};

/// The version a client sees in `connected.protocol`.
pub const PROTOCOL_VERSION: u32 = 1;
