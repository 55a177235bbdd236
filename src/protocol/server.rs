//! Server → client frames that are not sequenced (PROTOCOL.md §2): `connected` and what it
//! lists in flight, `pong`, `resumed`, `truncated` and `error`.
//!
//! The session and the socket actor send these; events go through `Event` instead.

use serde::Serialize;
use serde_json::Value;

use crate::context::{RunId, ThreadId, UserId};
use crate::error::ErrorCode;
use crate::protocol::{FrameError, RunStatus};

/// A run that is in flight, as `connected.active_runs` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ActiveRunInfo {
    /// The run.
    #[schema(value_type = String)]
    pub run_id: RunId,
    /// Its thread.
    #[schema(value_type = String)]
    pub thread_id: ThreadId,
    /// `queued`, `running` or `awaiting_approval`.
    #[schema(value_type = String)]
    pub status: RunStatus,
}

/// An approval waiting for the user, as `connected.pending_approvals` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PendingApprovalInfo {
    /// What the client answers with `approval`.
    pub approval_id: String,
    /// The run that waits.
    #[schema(value_type = String)]
    pub run_id: RunId,
    /// The step, as `approval_required.action` named it.
    pub action: String,
    /// Unix epoch milliseconds.
    pub expires_at: i64,
}

/// Frames that are not sequenced (PROTOCOL.md §2).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The first frame on every socket.
    Connected {
        /// The token's `sub`.
        #[schema(value_type = String)]
        user_id: UserId,
        /// This socket, for logs.
        connection_id: String,
        /// The user's highest stored `seq`, 0 if none.
        last_seq: i64,
        /// `PROTOCOL_VERSION`.
        protocol: u32,
        /// Runs queued, running or awaiting approval.
        active_runs: Vec<ActiveRunInfo>,
        /// Approvals waiting for an answer.
        pending_approvals: Vec<PendingApprovalInfo>,
    },
    /// The answer to `ping`.
    Pong {
        /// The ping's `nonce`, echoed.
        nonce: Value,
    },
    /// A replay is done; live events follow with no gap and no duplicate.
    Resumed {
        /// The last `seq` replayed (or the user's last, if the client asked beyond it).
        through_seq: i64,
    },
    /// Retention removed events a `resume` asked for.
    Truncated {
        /// Where the replay starts instead.
        oldest_seq: i64,
    },
    /// A message was refused; the connection stays open.
    Error {
        /// The PROTOCOL.md code.
        code: ErrorCode,
        /// Lowercase, names the bad value, says what to do.
        message: String,
        /// The offending `run_id`, `approval_id` or `client_msg_id`.
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
}

impl ServerFrame {
    /// The `error` frame answering `e`.
    pub fn error(e: FrameError) -> Self {
        Self::Error {
            code: e.code,
            message: e.message,
            reference: e.reference,
        }
    }

    /// The frame as one text frame.
    pub fn to_frame(&self) -> String {
        serde_json::to_string(self).expect("a server frame is plain JSON data")
    }
}
