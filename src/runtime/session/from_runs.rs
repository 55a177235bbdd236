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
    pub run_id: RunId,
    pub thread_id: ThreadId,
    /// The emitting agent, if not the supervisor.
    pub agent: Option<String>,
    pub payload: EventPayload,
}

/// An agent of a run asks for consent; the outcome comes back on `reply`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RequestApproval {
    pub run_id: RunId,
    pub thread_id: ThreadId,
    pub agent: String,
    /// What will happen if approved, and a sentence and details for the user.
    pub action: String,
    pub summary: String,
    pub details: Value,
    pub reply: oneshot::Sender<ApprovalOutcome>,
}

/// A run's supervisor is done, and says how the run ended.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RunFinished {
    pub run_id: RunId,
    pub outcome: RunOutcome,
}

/// A queued run got its server slot.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct SlotGranted {
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
