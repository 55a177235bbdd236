//! The closed sets of words PROTOCOL.md gives fields: a run's `status`, an approval's
//! `decision`, `run_failed.code`, `run_cancelled.reason`, `run_interrupted.reason` and
//! `run_queued.reason`.
//!
//! Each is an enum spelled once (`as_str`, serde and `parse` come from the same table), so a
//! typo is a compile error instead of a wrong word on the wire or in a column.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::protocol::ApprovalDecision;

/// A word that is not one of an enum's spellings (`FromStr`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{word:?} is not a {what}")]
pub struct UnknownWord {
    /// The enum's name in words, e.g. `run status`.
    pub what: &'static str,
    /// The word given.
    pub word: String,
}

macro_rules! wire_words {
    ($(#[$doc:meta])* $name:ident ($what:literal) { $($(#[$vdoc:meta])* $variant:ident => $wire:literal,)* }) => {
        $(#[$doc])*
        /// Spelled by one table: `as_str`, `parse`, `FromStr` and serde all read it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vdoc])* $variant,)* }

        impl $name {
            /// Every value, in PROTOCOL.md's order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)*];

            /// The wire spelling (also the database column's).
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $wire,)* }
            }

            /// The value spelled `word`, if it is one.
            pub fn parse(word: &str) -> Option<Self> {
                match word { $($wire => Some(Self::$variant),)* _ => None }
            }
        }

        impl FromStr for $name {
            type Err = UnknownWord;

            fn from_str(word: &str) -> Result<Self, UnknownWord> {
                Self::parse(word).ok_or_else(|| UnknownWord { what: $what, word: word.to_owned() })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

wire_words! {
    /// Where a run is in its life (`GET /api/runs/{id}` `status`, `connected.active_runs`,
    /// the `runs.status` and `threads.last_run_status` columns).
    RunStatus ("run status") {
        Queued => "queued",
        Running => "running",
        AwaitingApproval => "awaiting_approval",
        Completed => "completed",
        Failed => "failed",
        Cancelled => "cancelled",
        Interrupted => "interrupted",
    }
}

impl RunStatus {
    /// The statuses of a run that has not ended.
    pub const LIVE: [Self; 3] = [Self::Queued, Self::Running, Self::AwaitingApproval];

    /// Whether a run with this status has ended.
    pub fn is_final(self) -> bool {
        !Self::LIVE.contains(&self)
    }
}

wire_words! {
    /// How an approval was resolved (`approval_resolved.decision`).
    ApprovalOutcome ("approval outcome") {
        /// The user approved.
        Approve => "approve",
        /// The user rejected: the run skips the step.
        Reject => "reject",
        /// Nobody answered before `expires_at`.
        Expired => "expired",
        /// The run ended (cancelled, failed, shut down) while it waited.
        Cancelled => "cancelled",
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

wire_words! {
    /// Why a run could not complete (`run_failed.code`).
    FailureCode ("run failure code") {
        /// An agent failed past its restarts and has no fallback.
        AgentFailed => "agent_failed",
        /// An agent's attempt went silent past its timeout, past its restarts.
        Timeout => "timeout",
        /// An event of the run could not be stored.
        StorageUnavailable => "storage_unavailable",
        /// Anything else; the message never carries internals.
        Internal => "internal",
    }
}

wire_words! {
    /// Who cancelled a run (`run_cancelled.reason`).
    CancelReason ("cancel reason") {
        /// The user's `cancel_run`, or the deletion of their account.
        User => "user",
        /// The server shut down past its grace period.
        Shutdown => "shutdown",
    }
}

wire_words! {
    /// Why a run was lost (`run_interrupted.reason`).
    InterruptReason ("interrupt reason") {
        /// The process or the user's session stopped while the run was live.
        Crash => "crash",
        /// Another node took the user over from a node whose lease lapsed.
        NodeLost => "node_lost",
    }
}

wire_words! {
    /// Why a run waits (`run_queued.reason`).
    QueueReason ("queue reason") {
        /// The user already has the most runs executing.
        UserLimit => "user_limit",
        /// The server-wide cap on executing runs is reached.
        ServerBusy => "server_busy",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_parses_back() {
        for status in RunStatus::ALL {
            assert_eq!(status.as_str().parse(), Ok(*status));
            assert_eq!(
                serde_json::to_string(status).expect("plain"),
                format!("\"{status}\"")
            );
        }
        for outcome in ApprovalOutcome::ALL {
            assert_eq!(ApprovalOutcome::parse(outcome.as_str()), Some(*outcome));
        }
        assert_eq!(
            RunStatus::parse("awaiting_approval"),
            Some(RunStatus::AwaitingApproval)
        );
        assert_eq!(
            "Running"
                .parse::<RunStatus>()
                .expect_err("case matters")
                .to_string(),
            "\"Running\" is not a run status"
        );
        assert_eq!(
            FailureCode::StorageUnavailable.as_str(),
            "storage_unavailable"
        );
        assert_eq!(InterruptReason::NodeLost.as_str(), "node_lost");
        assert_eq!(QueueReason::ServerBusy.as_str(), "server_busy");
        assert_eq!(
            CancelReason::parse("shutdown"),
            Some(CancelReason::Shutdown)
        );
    }

    #[test]
    fn live_statuses_are_not_final() {
        let live: Vec<_> = RunStatus::ALL.iter().filter(|s| !s.is_final()).collect();
        assert_eq!(
            live,
            [
                &RunStatus::Queued,
                &RunStatus::Running,
                &RunStatus::AwaitingApproval
            ]
        );
    }
}
