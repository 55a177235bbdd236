//! `RunEvents`: the only way a run's supervisor and agents emit events or ask for the user's
//! consent. It is bound to one run of one user's session, so an agent cannot address another
//! run, thread or user.

use actix::{Message, Recipient};
use serde_json::Value;

use crate::context::{RunId, ThreadId};
use crate::protocol::{ApprovalOutcome, EventKind};
use crate::runtime::approvals::RequestApproval;
use prometheus::IntGauge;
use tokio::sync::oneshot;

/// An event of a run, for its session to number, store and fan out.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Emit {
    pub run_id: RunId,
    pub thread_id: ThreadId,
    pub agent: Option<String>,
    pub kind: EventKind,
    pub data: Value,
}

#[derive(Clone)]
pub struct RunEvents {
    /// Counts events on their way to the session.
    in_flight: IntGauge,
    session: Recipient<Emit>,
    approvals: Recipient<RequestApproval>,
    thread_id: ThreadId,
    run_id: RunId,
}

impl RunEvents {
    pub fn new(
        session: Recipient<Emit>,
        approvals: Recipient<RequestApproval>,
        thread_id: ThreadId,
        run_id: RunId,
        in_flight: IntGauge,
    ) -> Self {
        Self {
            in_flight,
            session,
            approvals,
            thread_id,
            run_id,
        }
    }

    /// Asks the user's consent for `action` and waits for the answer. A dropped request (the
    /// run was cancelled or the session stopped) reads as `Cancelled`.
    pub async fn request_approval(
        &self,
        agent: &str,
        action: &str,
        summary: String,
        details: Value,
    ) -> ApprovalOutcome {
        let (reply, answer) = oneshot::channel();
        self.approvals.do_send(RequestApproval {
            run_id: self.run_id,
            thread_id: self.thread_id,
            agent: agent.to_owned(),
            action: action.to_owned(),
            summary,
            details,
            reply,
        });
        answer.await.unwrap_or(ApprovalOutcome::Cancelled)
    }

    /// Sends one event of this run to its session (never blocks; the session's mailbox keeps
    /// the run's events in emission order).
    pub fn emit(&self, kind: EventKind, agent: Option<&str>, data: Value) {
        self.in_flight.inc();
        self.session.do_send(Emit {
            run_id: self.run_id,
            thread_id: self.thread_id,
            agent: agent.map(str::to_owned),
            kind,
            data,
        });
    }
}
