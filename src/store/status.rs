//! How statuses are spelled in the database: `runs.status`, `threads.last_run_status` and
//! `approvals.status`.
//!
//! The one place a status column's text is made from a typed value or read back into one. The
//! columns hold the wire spellings of `RunStatus` and `ApprovalOutcome` (plus `pending` and
//! `interrupted` for approvals), as they always have: no migration changed them.

use crate::protocol::{ApprovalOutcome, RunStatus};

/// The text `runs.status` and `threads.last_run_status` hold for `status`.
pub fn run_status_text(status: RunStatus) -> &'static str {
    status.as_str()
}

/// The status a `runs.status` or `threads.last_run_status` text stands for; `None` for a word
/// enclave never writes.
pub fn run_status_of(text: &str) -> Option<RunStatus> {
    RunStatus::parse(text)
}

/// The texts of the statuses of runs that have not ended, for `eq_any` filters.
pub fn live_run_status_texts() -> [&'static str; 3] {
    RunStatus::LIVE.map(run_status_text)
}

/// Where an approval is, as `approvals.status` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalState {
    /// Waiting for the user.
    Pending,
    /// Answered, expired or cancelled (`approval_resolved` was stored with it).
    Resolved(ApprovalOutcome),
    /// Its run was interrupted by a lost process; start-up recovery closed it.
    Interrupted,
}

impl ApprovalState {
    /// The column's text.
    pub fn as_text(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Resolved(outcome) => outcome.as_str(),
            Self::Interrupted => "interrupted",
        }
    }

    /// The state a column's text stands for; `None` for a word enclave never writes.
    pub fn of(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "interrupted" => Some(Self::Interrupted),
            other => ApprovalOutcome::parse(other).map(Self::Resolved),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_texts_read_back() {
        for status in RunStatus::ALL {
            assert_eq!(run_status_of(run_status_text(*status)), Some(*status));
        }
        assert_eq!(
            live_run_status_texts(),
            ["queued", "running", "awaiting_approval"]
        );
        let states = [ApprovalState::Pending, ApprovalState::Interrupted]
            .into_iter()
            .chain(
                ApprovalOutcome::ALL
                    .iter()
                    .map(|o| ApprovalState::Resolved(*o)),
            );
        for state in states {
            assert_eq!(ApprovalState::of(state.as_text()), Some(state));
        }
        assert_eq!(ApprovalState::of("approved"), None);
    }
}
