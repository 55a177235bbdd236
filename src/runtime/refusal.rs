//! `Refusal`: every reason a user session says no to a client, with its wire code and its
//! message, in one place. The session answers a socket with `Refusal::frame`; the HTTP side
//! turns a refusal into its response through `From<Refusal> for ApiError` (web/error.rs).
//! Messages are lowercase, name the bad value and say what to do.

use crate::context::ThreadId;
use crate::error::ErrorCode;
use crate::protocol::FrameError;

/// Why a session refused a request (serialized only to carry an owner node's answer back to the
/// node that asked, `runtime/cluster/mail.rs`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum Refusal {
    /// A read the answer needs failed; nothing changed.
    #[error("storage unavailable; try again")]
    StorageUnavailable,
    /// The batch holding the message's acceptance was lost.
    #[error("storage unavailable: the message was not stored; send it again")]
    MessageNotStored,
    /// A page of a replay could not be read.
    #[error("storage unavailable: the replay could not be read; send resume again")]
    ReplayUnreadable,
    /// The user's session (or the registry) stopped before it answered: it is restarting after
    /// a failure, or the server is shutting down.
    #[error("the session is restarting or the server is shutting down; try again in a moment")]
    SessionUnavailable,
    /// The server drains for shutdown.
    #[error("the server is shutting down; reconnect in a moment and send it again")]
    ShuttingDown,
    /// The user's account is being deleted (`DELETE /api/account`).
    #[error("your account is being deleted; reconnect in a moment to start afresh")]
    AccountDeleting,
    /// The user's message rate limit.
    #[error(
        "too many messages: at most {per_minute} a minute in bursts of {burst}; try again in \
         {retry_ms} ms"
    )]
    MessageRate {
        per_minute: u32,
        burst: u32,
        retry_ms: u64,
    },
    /// The user's running and queued runs are at their limits.
    #[error(
        "{running} runs are executing and {queued} queued, the most allowed; wait for one to \
         finish"
    )]
    RunLimit { running: usize, queued: usize },
    /// One upload per user at a time.
    #[error("another upload of yours is still running; send this one when it has finished")]
    UploadRunning,
    /// A `client_msg_id` already names another message.
    #[error("client_msg_id {0:?} was already used for a different message")]
    MessageIdReused(String),
    #[error("thread {0} not found")]
    ThreadNotFound(ThreadId),
    /// A thread cannot be deleted while one of its runs is live.
    #[error("a run of this thread is still active; cancel it or wait for it to finish")]
    ThreadActive,
    #[error("run {0:?} not found")]
    RunNotFound(String),
    #[error("run {0} has already finished")]
    RunFinished(String),
    #[error("approval {0:?} not found")]
    ApprovalNotFound(String),
    #[error("approval {id} was already resolved ({status})")]
    ApprovalResolved { id: String, status: String },
}

impl Refusal {
    /// The PROTOCOL.md code this refusal is sent with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::StorageUnavailable
            | Self::MessageNotStored
            | Self::ReplayUnreadable
            | Self::SessionUnavailable
            | Self::ShuttingDown
            | Self::AccountDeleting => ErrorCode::Unavailable,
            Self::MessageRate { .. } | Self::RunLimit { .. } | Self::UploadRunning => {
                ErrorCode::RateLimited
            }
            Self::MessageIdReused(_)
            | Self::ThreadActive
            | Self::RunFinished(_)
            | Self::ApprovalResolved { .. } => ErrorCode::Conflict,
            Self::ThreadNotFound(_) | Self::RunNotFound(_) | Self::ApprovalNotFound(_) => {
                ErrorCode::NotFound
            }
        }
    }

    /// The `error` frame for a socket, echoing `reference` (the id the request named) as
    /// `ref`.
    pub fn frame(&self, reference: Option<&str>) -> FrameError {
        let error = FrameError::new(self.code(), self.to_string());
        match reference {
            Some(id) => error.with_ref(id),
            None => error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_carry_their_code_and_echo_the_reference() {
        let error = Refusal::MessageIdReused("m1".into()).frame(Some("m1"));
        assert_eq!(error.code, ErrorCode::Conflict);
        assert_eq!(
            error.message,
            "client_msg_id \"m1\" was already used for a different message"
        );
        assert_eq!(error.reference.as_deref(), Some("m1"));
        assert_eq!(
            Refusal::ShuttingDown.frame(None).code,
            ErrorCode::Unavailable
        );
        let limit = Refusal::RunLimit {
            running: 3,
            queued: 10,
        };
        assert_eq!(limit.code(), ErrorCode::RateLimited);
        assert!(
            limit
                .to_string()
                .starts_with("3 runs are executing and 10 queued")
        );
    }
}
