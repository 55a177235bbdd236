//! Approvals: a step of a run that waits for the user's consent. An agent asks through its
//! `AgentContext`; the session stores `approval_required` (the run is `awaiting_approval`,
//! still counting toward the user's limit), pauses the agent's attempt timeout, and resolves
//! the approval exactly once — `approve` or `reject` from any of the user's sockets, `expired`
//! when its time is up, `cancelled` with its run — with `approval_resolved`.

use std::time::Duration;

use actix::prelude::*;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::clock::now_ms;
use crate::context::{ApprovalId, ConnectionId, RunId, ThreadId};
use crate::error::ErrorCode;
use crate::protocol::{
    ApprovalDecision, ApprovalOutcome, EventKind, FrameError, PendingApprovalInfo,
};
use crate::runtime::attempt_timer::{PauseAttemptTimer, ResumeAttemptTimer};
use crate::runtime::session::UserSession;
use crate::store::batch::WriteOp;
use crate::store::repo;

/// An agent of a run asks for consent; the outcome comes back on `reply`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RequestApproval {
    pub run_id: RunId,
    pub thread_id: ThreadId,
    pub agent: String,
    pub action: String,
    pub summary: String,
    pub details: Value,
    pub reply: oneshot::Sender<ApprovalOutcome>,
}

/// An approval waiting for the user.
pub(super) struct PendingApproval {
    run_id: RunId,
    thread_id: ThreadId,
    action: String,
    expires_at: i64,
    reply: oneshot::Sender<ApprovalOutcome>,
    expiry: SpawnHandle,
}

impl UserSession {
    /// `connected.pending_approvals`.
    pub(super) fn pending_approval_list(&self) -> Vec<PendingApprovalInfo> {
        self.approvals
            .iter()
            .map(|(id, p)| PendingApprovalInfo {
                approval_id: id.to_string(),
                run_id: p.run_id,
                action: p.action.clone(),
                expires_at: p.expires_at,
            })
            .collect()
    }

    /// The approval `run_id` waits for, if any.
    pub(super) fn approval_of(&self, run_id: RunId) -> Option<ApprovalId> {
        self.approvals
            .iter()
            .find(|(_, p)| p.run_id == run_id)
            .map(|(id, _)| *id)
    }

    /// Resolves a pending approval once: stores `approval_resolved` and tells the agent
    /// (unless the run is being cancelled, whose agent is stopped instead).
    pub(super) fn resolve_approval(
        &mut self,
        ctx: &mut Context<Self>,
        approval_id: ApprovalId,
        outcome: ApprovalOutcome,
    ) -> bool {
        let Some(pending) = self.approvals.remove(&approval_id) else {
            return false;
        };
        ctx.cancel_future(pending.expiry);
        let op = WriteOp::ResolveApproval {
            approval_id,
            run_id: pending.run_id,
            thread_id: pending.thread_id,
            outcome,
            ts: now_ms(),
        };
        let data = json!({ "approval_id": approval_id, "decision": outcome });
        let kind = EventKind::ApprovalResolved;
        self.push(
            pending.thread_id,
            Some(pending.run_id),
            None,
            kind,
            data,
            Some(op),
        );
        let supervisor = self
            .runs
            .get(&pending.run_id)
            .and_then(|r| r.supervisor())
            .cloned();
        if outcome == ApprovalOutcome::Cancelled {
            // The agent is stopped, not told: it must not act on a cancelled run. Its reply
            // channel lives until the run is gone.
            if let Some(run) = self.runs.get_mut(&pending.run_id) {
                run.parked_reply = Some(pending.reply);
            }
        } else {
            if let Some(supervisor) = supervisor {
                supervisor.do_send(ResumeAttemptTimer);
            }
            let _ = pending.reply.send(outcome);
        }
        self.flush(ctx);
        true
    }

    /// `approval {approval_id, decision}` from one of the user's sockets.
    pub(super) fn answer_approval(
        &mut self,
        ctx: &mut Context<Self>,
        conn_id: ConnectionId,
        raw_id: String,
        decision: ApprovalDecision,
    ) {
        let not_found = |raw_id: &str| {
            FrameError::new(
                ErrorCode::NotFound,
                format!("approval {raw_id:?} not found"),
            )
            .with_ref(raw_id)
        };
        let Ok(approval_id) = ApprovalId::parse(&raw_id) else {
            return self.send_error(conn_id, not_found(&raw_id));
        };
        if self.resolve_approval(ctx, approval_id, decision.into()) {
            return;
        }
        let db = self.deps.db.clone();
        let user = self.user_id.clone();
        let lookup = async move {
            db.read(move |conn| Ok(repo::approvals::get(conn, &user, approval_id)?))
                .await
        };
        ctx.spawn(lookup.into_actor(self).map(move |found, act, _| {
            let error = match found {
                Ok(Some(row)) => FrameError::new(
                    ErrorCode::Conflict,
                    format!("approval {raw_id} was already resolved ({})", row.status),
                )
                .with_ref(raw_id),
                Ok(None) => not_found(&raw_id),
                Err(e) => {
                    log::error!("user={} approval lookup failed: {e}", act.user_id);
                    FrameError::new(ErrorCode::Unavailable, "storage unavailable; try again")
                        .with_ref(raw_id)
                }
            };
            act.send_error(conn_id, error);
        }));
    }
}

/// An agent asks for consent.
impl Handler<RequestApproval> for UserSession {
    type Result = ();

    fn handle(&mut self, msg: RequestApproval, ctx: &mut Context<Self>) {
        let Some(supervisor) = self
            .runs
            .get(&msg.run_id)
            .filter(|run| run.thread_id == msg.thread_id)
            .and_then(|run| run.supervisor())
            .cloned()
        else {
            return;
        };
        let approval_id = ApprovalId::new();
        let now = now_ms();
        let timeout = self.deps.config.approval_timeout;
        let expires_at = now + timeout.as_millis() as i64;
        let op = WriteOp::CreateApproval {
            approval_id,
            run_id: msg.run_id,
            thread_id: msg.thread_id,
            action: msg.action.clone(),
            summary: msg.summary.clone(),
            details: msg.details.to_string(),
            ts: now,
            expires_at,
        };
        let data = json!({
            "approval_id": approval_id,
            "action": msg.action,
            "summary": msg.summary,
            "details": msg.details,
            "expires_at": expires_at,
        });
        let kind = EventKind::ApprovalRequired;
        self.push(
            msg.thread_id,
            Some(msg.run_id),
            Some(msg.agent),
            kind,
            data,
            Some(op),
        );
        supervisor.do_send(PauseAttemptTimer);
        let expiry = ctx.run_later(timeout.max(Duration::from_millis(1)), move |act, ctx| {
            act.resolve_approval(ctx, approval_id, ApprovalOutcome::Expired);
        });
        self.approvals.insert(
            approval_id,
            PendingApproval {
                run_id: msg.run_id,
                thread_id: msg.thread_id,
                action: msg.action,
                expires_at,
                reply: msg.reply,
                expiry,
            },
        );
        self.flush(ctx);
    }
}
