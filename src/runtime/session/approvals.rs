//! `Approvals`: the approvals of a user's runs that wait for the user. Each is resolved
//! exactly once: the entry leaves the table with its reply channel, so a second answer (two
//! tabs, the expiry racing a click) finds nothing. Plain state, unit-tested below.

use std::collections::HashMap;

use tokio::sync::oneshot;

use crate::context::{ApprovalId, RunId, ThreadId};
use crate::protocol::{ApprovalOutcome, PendingApprovalInfo};

/// An approval waiting for the user.
pub(crate) struct PendingApproval {
    /// The run that asked: its end cancels the approval, and `approval_resolved` names it.
    pub(crate) run_id: RunId,
    /// The run's thread, which `approval_resolved` is stored under.
    pub(crate) thread_id: ThreadId,
    /// What the agent will do if approved, as `connected.pending_approvals` lists it.
    pub(crate) action: String,
    /// When it expires (epoch ms).
    pub(crate) expires_at: i64,
    /// The asking agent waits on this.
    pub(crate) reply: oneshot::Sender<ApprovalOutcome>,
}

/// A user's pending approvals.
#[derive(Default)]
pub(crate) struct Approvals {
    /// Pending approvals by id.
    pending: HashMap<ApprovalId, PendingApproval>,
}

impl Approvals {
    /// No approval waits: one of the conditions for the session to passivate.
    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Records an approval just asked for, under the id `approval_required` gives the user.
    pub(crate) fn insert(&mut self, approval_id: ApprovalId, approval: PendingApproval) {
        self.pending.insert(approval_id, approval);
    }

    /// Takes the approval out to resolve it; `None` if it was resolved already or never was.
    pub(crate) fn take(&mut self, approval_id: ApprovalId) -> Option<PendingApproval> {
        self.pending.remove(&approval_id)
    }

    /// The approval `run_id` waits for, if any (a run waits for at most one).
    pub(crate) fn of_run(&self, run_id: RunId) -> Option<ApprovalId> {
        self.pending
            .iter()
            .find(|(_, p)| p.run_id == run_id)
            .map(|(id, _)| *id)
    }

    /// `connected.pending_approvals`.
    pub(crate) fn list(&self) -> Vec<PendingApprovalInfo> {
        self.pending
            .iter()
            .map(|(id, p)| PendingApprovalInfo {
                approval_id: id.to_string(),
                run_id: p.run_id,
                action: p.action.clone(),
                expires_at: p.expires_at,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_once_and_finds_by_run() {
        let mut approvals = Approvals::default();
        let (reply, _answer) = oneshot::channel();
        let (id, run_id) = (ApprovalId::new(), RunId::new());
        approvals.insert(
            id,
            PendingApproval {
                run_id,
                thread_id: ThreadId::new(),
                action: "generate".into(),
                expires_at: 5,
                reply,
            },
        );
        assert_eq!(approvals.of_run(run_id), Some(id));
        assert_eq!(approvals.list().len(), 1);
        assert!(approvals.take(id).is_some());
        assert!(approvals.take(id).is_none(), "resolved once");
        assert_eq!(approvals.of_run(run_id), None);
        assert!(approvals.is_empty());
    }
}
