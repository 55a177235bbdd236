//! What a run's supervisor remembers for its agents across their attempts: the approvals the
//! user gave in this run, so a restarted attempt asking for the same action with the same
//! details goes on without a second `approval_required`; and the last checkpoint of the agent
//! in flight, so a restarted attempt continues where the failed one stopped.
//!
//! An attempt reaches it through its `RunEvents` (`AskApproval`, `AttemptCheckpoint`).

use std::collections::BTreeSet;

use actix::prelude::*;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::agents::Consent;
use crate::protocol::{ApprovalOutcome, payload};
use crate::runtime::run_supervisor::RunSupervisor;

/// An attempt asks for the user's consent; the outcome comes back on `reply`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AskApproval {
    /// The asking attempt's step: with `attempt`, it tells the awaited attempt from a stale one.
    pub step: usize,
    /// Which attempt of that step asks: one given up on is not asked for, which reads as cancelled.
    pub attempt: u32,
    /// The asking agent, named to the user.
    pub agent: String,
    /// What will happen if approved: with `agent` and `details`, what an approval is remembered by.
    pub action: String,
    /// A sentence for the user, passed on to the session when the user must be asked.
    pub summary: String,
    /// The specifics the user consents to: a restart asking with other details asks the user again.
    pub details: Value,
    /// Where the attempt waits, answered at once if the run approved the same thing before.
    pub reply: oneshot::Sender<ApprovalOutcome>,
}

/// An attempt records how far it got, for a restart of its agent to continue from.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttemptCheckpoint {
    /// The step whose agent got this far: a checkpoint goes only to a restart of that same step.
    pub step: usize,
    /// The attempt recording it; a checkpoint from an attempt given up on is ignored.
    pub attempt: u32,
    /// What the agent needs to continue, handed to its next attempt as the earlier checkpoint.
    pub state: Value,
}

/// The run's memory, kept by its supervisor.
#[derive(Debug, Default)]
pub(super) struct RunMemory {
    /// `(agent, action, details as JSON text)` of every approval given in this run: an
    /// approval holds for the run's restarts.
    approved: BTreeSet<(String, String, String)>,
    /// The step whose agent left the checkpoint, and the checkpoint.
    checkpoint: Option<(usize, Value)>,
}

impl RunMemory {
    /// The checkpoint an earlier attempt of `step` left, if any.
    pub(super) fn checkpoint_of(&self, step: usize) -> Option<Value> {
        self.checkpoint
            .as_ref()
            .filter(|(at, _)| *at == step)
            .map(|(_, state)| state.clone())
    }

    /// A new step: the previous agent's checkpoint is of no more use.
    pub(super) fn next_step(&mut self) {
        self.checkpoint = None;
    }
}

/// Asks the user through the session, unless the same approval was given earlier in the run.
impl Handler<AskApproval> for RunSupervisor {
    type Result = ();

    fn handle(&mut self, msg: AskApproval, ctx: &mut Context<Self>) {
        let AskApproval {
            step,
            attempt,
            agent,
            action,
            summary,
            details,
            reply,
        } = msg;
        if !self.attempt_active(step, attempt) {
            // An attempt given up on: its dropped `reply` reads as cancelled.
            return;
        }
        let key = (agent.clone(), action.clone(), details.to_string());
        if self.memory.approved.contains(&key) {
            let text = format!("{action} was approved earlier in this run; not asking again");
            self.events()
                .emit(payload::AgentThinking { text }, Some(&agent));
            let _ = reply.send(ApprovalOutcome::Approve);
            return;
        }
        let events = self.events().clone();
        let ask = async move {
            let consent = Consent {
                action,
                summary,
                details,
            };
            events.request_approval(&agent, consent).await
        };
        ctx.spawn(ask.into_actor(self).map(move |outcome, act, _| {
            if outcome == ApprovalOutcome::Approve {
                act.memory.approved.insert(key);
            }
            // The attempt may be gone (cancelled): then nobody waits for the answer.
            let _ = reply.send(outcome);
        }));
    }
}

/// Keeps the latest checkpoint of the attempt in flight.
impl Handler<AttemptCheckpoint> for RunSupervisor {
    type Result = ();

    fn handle(&mut self, msg: AttemptCheckpoint, _: &mut Context<Self>) {
        if self.attempt_active(msg.step, msg.attempt) {
            self.memory.checkpoint = Some((msg.step, msg.state));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_serves_only_restarts_of_its_own_step() {
        let mut memory = RunMemory::default();
        assert_eq!(
            memory.checkpoint_of(1),
            None,
            "a first attempt starts fresh"
        );
        memory.checkpoint = Some((1, Value::from(40)));
        assert_eq!(memory.checkpoint_of(1), Some(Value::from(40)));
        assert_eq!(
            memory.checkpoint_of(2),
            None,
            "another step's agent starts fresh"
        );
        memory.next_step();
        assert_eq!(memory.checkpoint_of(1), None);
    }
}
