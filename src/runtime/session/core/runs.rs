//! A run's life after acceptance: its events, promotion from the user's queue to the
//! server's, its end (terminal event and row change in one batch, slot given back, pending
//! approval cancelled), cancellation, approvals, shutdown, and the thread deletion that may
//! only happen while none of the thread's runs is live.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;

use super::{Effect, SessionCore};
use crate::clock::now_ms;
use crate::context::{ApprovalId, ConnectionId, RunId, ThreadId};
use crate::protocol::payload;
use crate::protocol::{
    ApprovalDecision, ApprovalOutcome, CancelReason, Event, EventPayload, FailureCode,
    InterruptReason, RunStatus,
};
use crate::runtime::refusal::Refusal;
use crate::runtime::session::RunOutcome;
use crate::runtime::session::approvals::PendingApproval;
use crate::runtime::session::run_table::Phase;
use crate::store::batch::WriteOp;
use crate::store::repo::runs::RunEnd;

/// An agent of a run asks for the user's consent.
#[derive(Debug)]
pub(crate) struct ApprovalRequest {
    /// The asking run: unless it executes on `thread_id`, nothing is asked and `reply` is dropped.
    pub(crate) run_id: RunId,
    /// The run's thread, under which the approval and its events are stored.
    pub(crate) thread_id: ThreadId,
    /// The asking agent, named on `approval_required`.
    pub(crate) agent: String,
    /// What will happen if approved, stored and listed in `connected.pending_approvals`.
    pub(crate) action: String,
    /// A sentence for the user, on `approval_required` and stored with the approval.
    pub(crate) summary: String,
    /// The specifics, on `approval_required` and stored as JSON text.
    pub(crate) details: Value,
    /// The agent waits on this; dropped unanswered when the run is not running.
    pub(crate) reply: oneshot::Sender<ApprovalOutcome>,
}

impl SessionCore {
    /// An event one of the user's runs emitted; kept only while the run executes on that
    /// thread (a cancelled or failed run's late events are dropped).
    pub(crate) fn run_event(
        &mut self,
        run_id: RunId,
        thread_id: ThreadId,
        agent: Option<String>,
        payload: EventPayload,
    ) {
        if self.runs.is_running_on(run_id, thread_id) {
            let event = Event::new(payload, Some(thread_id), Some(run_id), agent);
            self.log.push(event, None, None);
            self.flush();
        }
    }

    /// A run's supervisor is done.
    pub(crate) fn run_finished(&mut self, run_id: RunId, outcome: RunOutcome) {
        let Some(run) = self.runs.get(run_id) else {
            return;
        };
        if run.phase() != Phase::Running {
            return;
        }
        let thread_id = run.thread_id();
        self.end_run(run_id, thread_id, outcome);
        self.promote();
        self.flush();
    }

    /// Runs a failed predecessor of this session left live in the database: they end
    /// `run_interrupted` (`crash`).
    pub(crate) fn orphans(&mut self, orphans: Vec<(RunId, ThreadId)>, reason: InterruptReason) {
        for (run_id, thread_id) in orphans {
            self.effects.push(Effect::ReleaseSlot(run_id));
            self.end_run(run_id, thread_id, RunOutcome::Interrupted { reason });
        }
        self.flush();
    }

    /// `cancel_run` from one of the user's sockets.
    pub(crate) fn cancel(&mut self, conn_id: ConnectionId, raw_id: String) {
        let Ok(run_id) = RunId::parse(&raw_id) else {
            return self.refuse(
                conn_id,
                &Refusal::RunNotFound(raw_id.clone()),
                Some(&raw_id),
            );
        };
        let Some(run) = self.runs.get(run_id) else {
            return self.effects.push(Effect::ExplainUnknownRun {
                conn_id,
                raw_id,
                run_id,
            });
        };
        let thread_id = run.thread_id();
        match run.phase() {
            Phase::Queued(_) | Phase::Starting => {
                self.end_run(
                    run_id,
                    thread_id,
                    RunOutcome::Cancelled {
                        reason: CancelReason::User,
                    },
                );
                self.promote();
            }
            Phase::Running => self.cancel_running(run_id, CancelReason::User),
            Phase::Ending => self.refuse(
                conn_id,
                &Refusal::RunFinished(raw_id.clone()),
                Some(&raw_id),
            ),
        }
        self.flush();
    }

    /// The drain's grace period is over: cancel what still runs.
    pub(crate) fn grace_over(&mut self) {
        self.cancel_all(CancelReason::Shutdown);
    }

    /// Cancels every live run for `reason`: queued ones end at once, running ones are asked
    /// to stop.
    pub(super) fn cancel_all(&mut self, reason: CancelReason) {
        for run_id in self.runs.ids() {
            let Some(run) = self.runs.get(run_id) else {
                continue;
            };
            let thread_id = run.thread_id();
            match run.phase() {
                Phase::Queued(_) | Phase::Starting => {
                    self.end_run(run_id, thread_id, RunOutcome::Cancelled { reason });
                }
                Phase::Running => self.cancel_running(run_id, reason),
                Phase::Ending => {}
            }
        }
        self.flush();
    }

    /// `DELETE /api/threads/{id}` for a thread the database says is the user's: refused
    /// while one of its runs is live; `durable` hears when `thread_deleted` is stored.
    pub(crate) fn delete_thread(
        &mut self,
        thread_id: ThreadId,
        durable: oneshot::Sender<()>,
    ) -> Result<(), Refusal> {
        if let Some(closing) = &self.closing {
            return Err(closing.clone());
        }
        if self.runs.any_on_thread(thread_id) {
            return Err(Refusal::ThreadActive);
        }
        self.threads.remove(&thread_id);
        self.deleted_threads.insert(thread_id);
        let event = Event::new(payload::ThreadDeleted {}, Some(thread_id), None, None);
        self.log.push(
            event,
            Some(WriteOp::DeleteThread { thread_id }),
            Some(durable),
        );
        self.flush();
        Ok(())
    }

    /// An agent asks for consent: `approval_required` is stored, the attempt's timeout
    /// pauses, and the approval expires after the approval timeout.
    pub(crate) fn approval_requested(&mut self, request: ApprovalRequest) {
        let ApprovalRequest {
            run_id,
            thread_id,
            agent,
            action,
            summary,
            details,
            reply,
        } = request;
        if !self.runs.is_running_on(run_id, thread_id) {
            return;
        }
        let approval_id = ApprovalId::new();
        let now = now_ms();
        let timeout = self.limits.approval_timeout.max(Duration::from_millis(1));
        let expires_at = now + timeout.as_millis() as i64;
        let op = WriteOp::CreateApproval {
            approval_id,
            run_id,
            thread_id,
            action: action.clone(),
            summary: summary.clone(),
            details: details.to_string(),
            ts: now,
            expires_at,
        };
        let required = payload::ApprovalRequired {
            approval_id,
            action: action.clone(),
            summary,
            details,
            expires_at,
        };
        self.push(thread_id, Some(run_id), Some(agent), required, Some(op));
        self.effects.push(Effect::PauseAttemptTimer(run_id));
        self.effects
            .push(Effect::ExpireApproval(approval_id, timeout));
        let pending = PendingApproval {
            run_id,
            thread_id,
            action,
            expires_at,
            reply,
        };
        self.approvals.insert(approval_id, pending);
        self.flush();
    }

    /// `approval {approval_id, decision}` from one of the user's sockets.
    pub(crate) fn approval_answered(
        &mut self,
        conn_id: ConnectionId,
        raw_id: String,
        decision: ApprovalDecision,
    ) {
        let Ok(approval_id) = ApprovalId::parse(&raw_id) else {
            let refusal = Refusal::ApprovalNotFound(raw_id.clone());
            return self.refuse(conn_id, &refusal, Some(&raw_id));
        };
        if !self.resolve_approval(approval_id, decision.into()) {
            self.effects.push(Effect::ExplainUnknownApproval {
                conn_id,
                raw_id,
                approval_id,
            });
        }
        self.flush();
    }

    /// The approval's time is up (a no-op if it was resolved meanwhile).
    pub(crate) fn approval_expired(&mut self, approval_id: ApprovalId) {
        self.resolve_approval(approval_id, ApprovalOutcome::Expired);
        self.flush();
    }

    /// Moves queued runs, oldest first, from the user's queue to the server's while the user
    /// has room; each starts when it gets its slot.
    pub(super) fn promote(&mut self) {
        while let Some(run_id) = self.runs.promote_next(self.limits.max_running) {
            self.effects.push(Effect::AcquireSlot(run_id));
        }
    }

    /// A run of a lost batch: failed if its acceptance is stored, else forgotten and its
    /// sender told to send the message again.
    pub(super) fn lose_run(&mut self, run_id: RunId) {
        let Some(run) = self.runs.get(run_id) else {
            return;
        };
        if run.phase() == Phase::Running {
            self.effects.push(Effect::AbortSupervisor(run_id));
        }
        if run.is_accepted() {
            let thread_id = run.thread_id();
            let outcome = RunOutcome::Failed {
                code: FailureCode::StorageUnavailable,
                error: "storage unavailable: the run's events could not be stored".to_owned(),
            };
            return self.end_run(run_id, thread_id, outcome);
        }
        let Some(run) = self.runs.remove(run_id) else {
            return;
        };
        if run.holds_user_slot() {
            self.effects.push(Effect::ReleaseSlot(run_id));
        }
        self.effects.push(Effect::Forget(run_id));
        let key = run.client_msg_id().map(str::to_owned);
        self.turn_away(run.origin(), key.as_deref(), &Refusal::MessageNotStored);
    }

    /// A running run's pending approval is cancelled and its supervisor asked to stop.
    fn cancel_running(&mut self, run_id: RunId, reason: CancelReason) {
        if let Some(approval_id) = self.approvals.of_run(run_id) {
            self.resolve_approval(approval_id, ApprovalOutcome::Cancelled);
        }
        self.effects
            .push(Effect::CancelSupervisor { run_id, reason });
    }

    /// Records how a run ended: its terminal event and its row change, in one batch.
    pub(super) fn end_run(&mut self, run_id: RunId, thread_id: ThreadId, outcome: RunOutcome) {
        // Every approval of the run, should its agent have asked again without waiting.
        while let Some(approval_id) = self.approvals.of_run(run_id) {
            if !self.resolve_approval(approval_id, ApprovalOutcome::Cancelled) {
                break;
            }
        }
        if let Some(ended) = self.runs.end(run_id)
            && ended.held_slot
        {
            self.effects.push(Effect::ReleaseSlot(run_id));
        }
        let finished_at = now_ms();
        let (end, ended): (_, EventPayload) = match outcome {
            RunOutcome::Completed(answer) => {
                // The stored report is the whole one; the event's may have its tables cut.
                let stored_report = answer
                    .full_report_markdown
                    .unwrap_or_else(|| answer.report_markdown.clone());
                let end = RunEnd {
                    result: Some(answer.result.to_string()),
                    report_markdown: Some(stored_report),
                    ..RunEnd::new(RunStatus::Completed, finished_at)
                };
                let completed = payload::RunCompleted {
                    summary: answer.summary,
                    report_markdown: answer.report_markdown,
                    result: answer.result,
                };
                (end, completed.into())
            }
            RunOutcome::Failed { code, error } => {
                let end = RunEnd {
                    error: Some(error.clone()),
                    ..RunEnd::new(RunStatus::Failed, finished_at)
                };
                (end, payload::RunFailed { error, code }.into())
            }
            RunOutcome::Interrupted { reason } => {
                let end = RunEnd::new(RunStatus::Interrupted, finished_at);
                (end, payload::RunInterrupted { reason }.into())
            }
            RunOutcome::Cancelled { reason } => {
                let end = RunEnd::new(RunStatus::Cancelled, finished_at);
                (end, payload::RunCancelled { reason }.into())
            }
        };
        let status = end.status;
        self.effects.push(Effect::RunEnded(status));
        let op = WriteOp::FinishRun {
            run_id,
            thread_id,
            end,
        };
        self.push(thread_id, Some(run_id), None, ended, Some(op));
    }

    /// Resolves a pending approval once: `approval_resolved` is stored and the agent told —
    /// unless the run is being cancelled, whose agent is stopped instead and must not act.
    fn resolve_approval(&mut self, approval_id: ApprovalId, outcome: ApprovalOutcome) -> bool {
        let Some(pending) = self.approvals.take(approval_id) else {
            return false;
        };
        let op = WriteOp::ResolveApproval {
            approval_id,
            run_id: pending.run_id,
            thread_id: pending.thread_id,
            outcome,
            ts: now_ms(),
        };
        let resolved = payload::ApprovalResolved {
            approval_id,
            decision: outcome,
        };
        let (thread_id, run_id) = (pending.thread_id, pending.run_id);
        self.push(thread_id, Some(run_id), None, resolved, Some(op));
        if outcome == ApprovalOutcome::Cancelled {
            // Its reply channel lives until the run is gone, so the agent never hears.
            self.runs.park_reply(pending.run_id, pending.reply);
        } else {
            self.effects
                .push(Effect::ResumeAttemptTimer(pending.run_id));
            let _ = pending.reply.send(outcome);
        }
        true
    }
}
