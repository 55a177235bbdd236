//! `AgentRunner`: one attempt of one agent as its own actor, a child of the run's supervisor.
//!
//! The agent's future runs under `catch_unwind`: in actix 0.13 a panicking handler silently
//! kills its actor, so a panic is caught here and reported to the supervisor like any other
//! failure. The supervisor stops a runner it no longer waits for (timeout, cancellation).

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use actix::prelude::*;
use futures_util::FutureExt;

use crate::agents::{Agent, AgentContext, AgentError, AgentInput};
use crate::faults::AgentFault;
use crate::metrics::LiveCount;
use crate::runtime::attempt_failure::AttemptFailure;
use crate::runtime::run_supervisor::{AttemptDone, AttemptOutcome};
use prometheus::IntGauge;
use std::sync::Arc;

/// One attempt of one agent, as an actor of its own.
pub struct AgentRunner {
    /// The agent to run.
    agent: Arc<dyn Agent>,
    /// Taken when the attempt starts.
    work: Option<(AgentContext, AgentInput)>,
    /// Echoed in `AttemptDone`.
    step: usize,
    /// Echoed in `AttemptDone`.
    attempt: u32,
    /// A fault injected into this attempt.
    fault: Option<AgentFault>,
    /// The supervisor awaiting the attempt.
    reply: Recipient<AttemptDone>,
    /// Counts this attempt on `enclave_agents_live` until it is dropped.
    live: Option<LiveCount>,
}

impl AgentRunner {
    /// An attempt of `agent` with its context and input; it starts when the actor does.
    pub fn new(
        agent: Arc<dyn Agent>,
        ctx: AgentContext,
        input: AgentInput,
        step: usize,
        attempt: u32,
        fault: Option<AgentFault>,
        reply: Recipient<AttemptDone>,
    ) -> Self {
        Self {
            agent,
            work: Some((ctx, input)),
            step,
            attempt,
            fault,
            reply,
            live: None,
        }
    }

    /// Counts the attempt on `gauge` while it lives.
    pub fn counted_on(mut self, gauge: &IntGauge) -> Self {
        self.live = Some(LiveCount::new(gauge));
        self
    }
}

impl Actor for AgentRunner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some((agent_ctx, input)) = self.work.take() else {
            ctx.stop();
            return;
        };
        let agent = self.agent.clone();
        let fault = self.fault;
        let started = Instant::now();
        let name = self.agent.name();
        let attempt = async move {
            let work = async move {
                match fault {
                    Some(AgentFault::Panic) => panic!("injected fault"),
                    Some(AgentFault::Fail) => {
                        return Err(AgentError::Failed("injected fault".into()));
                    }
                    Some(AgentFault::Hang) => std::future::pending::<()>().await,
                    Some(AgentFault::Slow(delay)) => actix::clock::sleep(delay).await,
                    None => {}
                }
                agent.execute(agent_ctx, input).await
            };
            AssertUnwindSafe(work).catch_unwind().await
        };
        ctx.spawn(attempt.into_actor(self).map(move |res, act, ctx| {
            let outcome = match res {
                Ok(Ok(output)) => AttemptOutcome::Done(output),
                Ok(Err(e)) => {
                    AttemptOutcome::Failed(AttemptFailure::returned(name, act.attempt, &e))
                }
                Err(panic) => AttemptOutcome::Failed(AttemptFailure::panicked(
                    name,
                    act.attempt,
                    panic.as_ref(),
                )),
            };
            act.reply.do_send(AttemptDone {
                step: act.step,
                attempt: act.attempt,
                elapsed: started.elapsed(),
                outcome,
            });
            ctx.stop();
        }));
    }
}

/// Stops the attempt (its future is dropped with the actor).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopAttempt;

impl Handler<StopAttempt> for AgentRunner {
    type Result = ();

    fn handle(&mut self, _: StopAttempt, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
