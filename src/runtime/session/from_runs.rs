//! What the user's runs send the session: their events (`Emit`, through `RunEvents`), their
//! requests for consent, their end (`RunFinished`, from the supervisor), and the server slot a
//! queued run waited for (`SlotGranted`, from `RunSlots`).

use actix::prelude::*;
use serde_json::Value;
use tokio::sync::oneshot;

use super::UserSession;
use super::core::ApprovalRequest;
use crate::agents::RunAnswer;
use crate::context::{RunId, ThreadId};
use crate::protocol::{ApprovalOutcome, EventPayload};
use crate::protocol::{CancelReason, FailureCode, InterruptReason};

/// An event of a run, for its session to number, store and fan out.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Emit {
    /// The emitting run: its events are kept only while it executes.
    pub run_id: RunId,
    /// The run's thread: the event is stored under it, and kept only if the run executes there.
    pub thread_id: ThreadId,
    /// The emitting agent, if not the supervisor.
    pub agent: Option<String>,
    /// What happened; the session gives it its `seq` when its batch is cut.
    pub payload: EventPayload,
}

/// An agent of a run asks for consent; the outcome comes back on `reply`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RequestApproval {
    /// The asking run; one that no longer executes is not asked for, and its `reply` is dropped.
    pub run_id: RunId,
    /// The run's thread, under which the approval and its events are stored.
    pub thread_id: ThreadId,
    /// The asking agent, named on `approval_required`.
    pub agent: String,
    /// What will happen if approved, as `connected.pending_approvals` lists it.
    pub action: String,
    /// A sentence for the user, on `approval_required`.
    pub summary: String,
    /// The specifics for the user, on `approval_required` and stored with the approval.
    pub details: Value,
    /// Where the agent waits for the outcome; dropped unanswered, it reads as cancelled.
    pub reply: oneshot::Sender<ApprovalOutcome>,
}

/// A run's supervisor is done, and says how the run ended.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RunFinished {
    /// The run that ended; one the session no longer sees running is ignored.
    pub run_id: RunId,
    /// How it ended, which picks the terminal event and the run's stored status.
    pub outcome: RunOutcome,
}

/// A queued run got its server slot.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct SlotGranted {
    /// The run that may start; a slot for a run that is gone or no longer waits goes back.
    pub run_id: RunId,
}

/// How a run ended, for the session to record and announce.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    /// The plan ran to its end with this answer.
    Completed(RunAnswer),
    /// An agent failed past its restarts (or storage failed): `run_failed`.
    Failed { code: FailureCode, error: String },
    /// By the user or the server's shutdown: `run_cancelled`.
    Cancelled { reason: CancelReason },
    /// The run was lost with its session or process (`crash`, `node_lost`).
    Interrupted { reason: InterruptReason },
}

/// Kept while the run executes; dropped otherwise.
impl Handler<Emit> for UserSession {
    type Result = ();

    fn handle(&mut self, msg: Emit, ctx: &mut Context<Self>) {
        self.deps.metrics.events_in_flight.dec();
        self.core
            .run_event(msg.run_id, msg.thread_id, msg.agent, msg.payload);
        self.perform(ctx);
    }
}

/// `approval_required`, the attempt's timeout paused until the approval is resolved.
impl Handler<RequestApproval> for UserSession {
    type Result = ();

    fn handle(&mut self, msg: RequestApproval, ctx: &mut Context<Self>) {
        self.core.approval_requested(ApprovalRequest {
            run_id: msg.run_id,
            thread_id: msg.thread_id,
            agent: msg.agent,
            action: msg.action,
            summary: msg.summary,
            details: msg.details,
            reply: msg.reply,
        });
        self.perform(ctx);
    }
}

/// The run's end is recorded and a queued run may take its place.
impl Handler<RunFinished> for UserSession {
    type Result = ();

    fn handle(&mut self, msg: RunFinished, ctx: &mut Context<Self>) {
        self.core.run_finished(msg.run_id, msg.outcome);
        self.perform(ctx);
    }
}

impl Handler<SlotGranted> for UserSession {
    type Result = ();

    fn handle(&mut self, msg: SlotGranted, ctx: &mut Context<Self>) {
        self.core.slot_granted(msg.run_id);
        self.perform(ctx);
    }
}
