//! The attempt a `RunSupervisor` awaits (`Attempt`) and its silence deadline: the attempt times
//! out when it emits nothing for the attempt timeout. Each event of the attempt (its `RunEvents`
//! sends `AttemptActive`) moves the deadline to a full timeout from then, so a long agent that
//! reports progress is never killed for being long, and a silent one is killed as before. The
//! timer stops while the attempt waits for the user's approval (`PauseAttemptTimer`, sent by
//! the session) and counts on from where it stopped (`ResumeAttemptTimer`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::agents::Agent;
use crate::runtime::agent_runner::AgentRunner;
use crate::runtime::attempt_failure::AttemptFailure;
use crate::runtime::run_supervisor::{AttemptDone, AttemptOutcome, RunSupervisor};

/// The attempt being awaited.
pub(super) struct Attempt {
    /// The agent the attempt runs: named in its events, restarted or asked for its fallback.
    pub(super) agent: Arc<dyn Agent>,
    /// The plan step it runs; with `number`, it tags `AttemptDone`, so stale answers are ignored.
    pub(super) step: usize,
    /// Which attempt of the step it is (1 for the first), as its `agent_*` events report it.
    pub(super) number: u32,
    /// The actor running the agent, told `StopAttempt` once the attempt is over or the run stops.
    pub(super) runner: Addr<AgentRunner>,
    /// The armed deadline check, absent while paused (`attempt_timer.rs`).
    pub(super) timeout: Option<SpawnHandle>,
    /// When the attempt times out unless it emits something first (while the timer is armed).
    pub(super) deadline: Instant,
    /// How long it may stay silent once the timer resumes (while paused for an approval).
    pub(super) remaining: Duration,
}

/// The attempt emitted something: it is alive, and may stay silent for another attempt timeout.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttemptActive {
    /// The emitting attempt's step: with `attempt`, it tells the awaited attempt from a stale one.
    pub step: usize,
    /// Which attempt of that step emitted, so a replaced attempt never keeps its successor alive.
    pub attempt: u32,
}

/// The agent in flight waits for the user: its attempt timeout stops counting.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PauseAttemptTimer;

/// The wait is over: the attempt timeout counts on from where it paused.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ResumeAttemptTimer;

impl RunSupervisor {
    /// Whether attempt `attempt` of step `step` is the one awaited; if so it showed a sign of
    /// life, and its silence deadline moves to a full attempt timeout from now.
    pub(super) fn attempt_active(&mut self, step: usize, attempt: u32) -> bool {
        let limit = self.attempt_timeout();
        let Some(current) = self
            .current
            .as_mut()
            .filter(|c| c.step == step && c.number == attempt)
        else {
            return false;
        };
        if current.timeout.is_some() {
            current.deadline = Instant::now() + limit;
        } else {
            current.remaining = limit;
        }
        true
    }

    /// Starts (or restarts after a pause) the current attempt's silence deadline for what is
    /// left of it.
    pub(super) fn arm_timeout(&mut self, ctx: &mut Context<Self>) {
        let Some(current) = self.current.as_mut() else {
            return;
        };
        current.deadline = Instant::now() + current.remaining;
        let left = current.remaining;
        self.check_deadline_in(ctx, left);
    }

    /// Looks at the current attempt's deadline `after` from now. Signs of life only move the
    /// deadline; the one timer follows it, so a chatty attempt costs no timer per event.
    fn check_deadline_in(&mut self, ctx: &mut Context<Self>, after: Duration) {
        let Some(current) = self.current.as_mut() else {
            return;
        };
        let (step, number) = (current.step, current.number);
        current.timeout = Some(ctx.run_later(after, move |act, ctx| {
            act.check_deadline(ctx, step, number);
        }));
    }

    /// The attempt timed out if its deadline has passed; else the check waits for it.
    fn check_deadline(&mut self, ctx: &mut Context<Self>, step: usize, number: u32) {
        let Some(current) = self
            .current
            .as_ref()
            .filter(|c| c.step == step && c.number == number && c.timeout.is_some())
        else {
            return;
        };
        let left = current.deadline.saturating_duration_since(Instant::now());
        if !left.is_zero() {
            self.check_deadline_in(ctx, left);
            return;
        }
        let limit = self.attempt_timeout();
        let failure = AttemptFailure::timed_out(current.agent.name(), number, limit);
        let done = AttemptDone {
            step,
            attempt: number,
            elapsed: limit,
            outcome: AttemptOutcome::Failed(failure),
        };
        self.on_attempt_done(ctx, done, true);
    }
}

/// A sign of life from the attempt's emitter.
impl Handler<AttemptActive> for RunSupervisor {
    type Result = ();

    fn handle(&mut self, msg: AttemptActive, _: &mut Context<Self>) {
        self.attempt_active(msg.step, msg.attempt);
    }
}

/// The attempt waits for the user: the deadline stops, keeping what is left of it.
impl Handler<PauseAttemptTimer> for RunSupervisor {
    type Result = ();

    fn handle(&mut self, _: PauseAttemptTimer, ctx: &mut Context<Self>) {
        if let Some(current) = self.current.as_mut()
            && let Some(timeout) = current.timeout.take()
        {
            ctx.cancel_future(timeout);
            current.remaining = current.deadline.saturating_duration_since(Instant::now());
        }
    }
}

/// The wait is over: the deadline runs again for what was left.
impl Handler<ResumeAttemptTimer> for RunSupervisor {
    type Result = ();

    fn handle(&mut self, _: ResumeAttemptTimer, ctx: &mut Context<Self>) {
        if self.current.as_ref().is_some_and(|c| c.timeout.is_none()) {
            self.arm_timeout(ctx);
        }
    }
}
