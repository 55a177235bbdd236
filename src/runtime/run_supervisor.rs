//! `RunSupervisor`: one per run, a child of the user's session. It executes the pipeline one
//! agent at a time, each attempt an `AgentRunner` actor awaited with a timeout, emits the
//! agent lifecycle events, and tells the session how the run ended.
//!
//! It owns the run's state (earlier agents' results); the session owns everything else.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::prelude::*;
use serde_json::{Value, json};

use crate::agents::runner::{AgentRunner, AttemptDone, AttemptOutcome, StopAttempt};
use crate::agents::{AgentContext, AgentInput, RunAnswer};
use crate::context::{RunId, UserContext};
use crate::protocol::EventKind;
use crate::runtime::pipeline::Pipeline;
use crate::runtime::run_events::RunEvents;
use crate::runtime::session::SessionDeps;

/// How a run ended, for the session to record and announce.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    Completed(RunAnswer),
    Failed { code: &'static str, error: String },
    Cancelled { reason: &'static str },
}

/// Sent to the session when the run is over.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RunFinished {
    pub run_id: RunId,
    pub outcome: RunOutcome,
}

/// Cancels the run: the agent in flight ends `agent_error` `cancelled`, then the session hears
/// `RunFinished` with `Cancelled`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Cancel {
    pub reason: &'static str,
}

/// Stops the run without a word (its session has already decided how it ends).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AbortRun;

pub struct RunSupervisor {
    ctx: UserContext,
    message: String,
    deps: SessionDeps,
    pipeline: Arc<Pipeline>,
    events: RunEvents,
    finished: Recipient<RunFinished>,
    /// Index of the agent being run.
    step: usize,
    /// The attempt in flight and its timeout.
    current: Option<(Addr<AgentRunner>, SpawnHandle)>,
    /// The number of the attempt in flight.
    attempt: u32,
    results: BTreeMap<String, Value>,
    answer: Option<RunAnswer>,
}

impl RunSupervisor {
    pub fn new(
        ctx: UserContext,
        message: String,
        deps: SessionDeps,
        events: RunEvents,
        finished: Recipient<RunFinished>,
    ) -> Self {
        let pipeline = deps.pipeline.clone();
        Self {
            ctx,
            message,
            deps,
            pipeline,
            events,
            finished,
            step: 0,
            current: None,
            attempt: 0,
            results: BTreeMap::new(),
            answer: None,
        }
    }

    fn start_step(&mut self, ctx: &mut Context<Self>) {
        let Some(agent) = self.pipeline.agents().get(self.step).cloned() else {
            let answer = self.answer.take().unwrap_or_else(|| RunAnswer {
                summary: String::from("The run finished without an answer."),
                report_markdown: String::new(),
                result: json!({}),
            });
            self.finish(ctx, RunOutcome::Completed(answer));
            return;
        };
        let name = agent.name();
        let attempt = 1;
        self.attempt = attempt;
        self.events.emit(
            EventKind::AgentStarted,
            Some(name),
            json!({ "attempt": attempt }),
        );
        let agent_ctx = AgentContext::new(
            self.ctx.child(name),
            name,
            self.events.clone(),
            self.deps.db.clone(),
            self.deps.config.clone(),
        );
        let input = AgentInput {
            message: self.message.clone(),
            results: Arc::new(self.results.clone()),
        };
        let delay = self.deps.faults.agent_delay(name, self.ctx.user_id());
        let runner = AgentRunner::new(
            agent,
            agent_ctx,
            input,
            self.step,
            attempt,
            delay,
            ctx.address().recipient(),
        )
        .start();
        let step = self.step;
        let timeout = self.deps.config.agent_timeout;
        let timer = ctx.run_later(timeout, move |act, ctx| {
            act.on_attempt_done(
                ctx,
                AttemptDone {
                    step,
                    attempt,
                    elapsed: timeout,
                    outcome: AttemptOutcome::Failed(format!(
                        "timed out after {} ms",
                        timeout.as_millis()
                    )),
                },
                true,
            );
        });
        self.current = Some((runner, timer));
    }

    fn on_attempt_done(&mut self, ctx: &mut Context<Self>, done: AttemptDone, timed_out: bool) {
        if done.step != self.step || self.current.is_none() {
            return;
        }
        if let Some((runner, timer)) = self.current.take() {
            ctx.cancel_future(timer);
            runner.do_send(StopAttempt);
        }
        let name = self
            .pipeline
            .agents()
            .get(self.step)
            .map_or("agent", |a| a.name());
        match done.outcome {
            AttemptOutcome::Done(output) => {
                self.events.emit(
                    EventKind::AgentCompleted,
                    Some(name),
                    json!({
                        "attempt": done.attempt,
                        "duration_ms": done.elapsed.as_millis() as u64,
                        "result": output.result,
                        "fallback": output.fallback,
                    }),
                );
                self.results.insert(name.to_owned(), output.result);
                if output.answer.is_some() {
                    self.answer = output.answer;
                }
                self.step += 1;
                self.start_step(ctx);
            }
            AttemptOutcome::Failed(error) | AttemptOutcome::Panicked(error) => {
                self.events.emit(
                    EventKind::AgentError,
                    Some(name),
                    json!({ "error": error, "attempt": done.attempt, "will_restart": false }),
                );
                let code = if timed_out { "timeout" } else { "agent_failed" };
                let error = format!("the {name} agent failed: {error}");
                self.finish(ctx, RunOutcome::Failed { code, error });
            }
        }
    }

    fn finish(&mut self, ctx: &mut Context<Self>, outcome: RunOutcome) {
        self.finished.do_send(RunFinished {
            run_id: self.ctx.run_id(),
            outcome,
        });
        ctx.stop();
    }
}

impl Actor for RunSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        log::debug!(
            "user={} run={} started",
            self.ctx.user_id(),
            self.ctx.run_id()
        );
        self.start_step(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some((runner, _)) = self.current.take() {
            runner.do_send(StopAttempt);
        }
    }
}

/// An attempt ended (from its `AgentRunner`).
impl Handler<AttemptDone> for RunSupervisor {
    type Result = ();

    fn handle(&mut self, done: AttemptDone, ctx: &mut Context<Self>) {
        self.on_attempt_done(ctx, done, false);
    }
}

/// The user (or shutdown) cancels the run.
impl Handler<Cancel> for RunSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Cancel, ctx: &mut Context<Self>) {
        if let Some((runner, timer)) = self.current.take() {
            ctx.cancel_future(timer);
            runner.do_send(StopAttempt);
            let name = self
                .pipeline
                .agents()
                .get(self.step)
                .map_or("agent", |a| a.name());
            self.events.emit(
                EventKind::AgentError,
                Some(name),
                json!({ "error": "cancelled", "attempt": self.attempt, "will_restart": false }),
            );
        }
        self.finish(ctx, RunOutcome::Cancelled { reason: msg.reason });
    }
}

/// The session gave up on the run.
impl Handler<AbortRun> for RunSupervisor {
    type Result = ();

    fn handle(&mut self, _: AbortRun, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
