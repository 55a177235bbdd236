//! `RunSupervisor`: one per run, a child of the user's session. It executes the run's plan one
//! agent at a time, each attempt an `AgentRunner` actor awaited with a silence deadline (an
//! attempt times out when it emits nothing for the attempt timeout, however long it works while
//! it reports), emits the agent lifecycle events, and tells the session how the run ended.
//!
//! It owns the run's state (the remaining plan, earlier agents' results, the approvals and
//! checkpoints of `run_memory.rs`); the session owns everything else.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::Value;

use crate::agents::{Agent, AgentContext, AgentInput, AgentOutput, RunAnswer};
use crate::context::UserContext;
use crate::metrics::LiveCount;
use crate::protocol::{CancelReason, FailureCode, payload};
use crate::runtime::agent_runner::{AgentRunner, StopAttempt};
use crate::runtime::attempt_failure::AttemptFailure;
use crate::runtime::attempt_timer::Attempt;
use crate::runtime::restart_intensity::{AfterFailure, RestartIntensity};
use crate::runtime::run_events::{AttemptLink, RunEvents};
use crate::runtime::run_memory::RunMemory;
use crate::runtime::session::{RunFinished, RunOutcome, SessionDeps};

/// How an attempt ended, as the supervisor sees it.
#[derive(Debug)]
pub enum AttemptOutcome {
    /// The agent returned its output.
    Done(AgentOutput),
    /// The agent returned an error, panicked or timed out.
    Failed(AttemptFailure),
}

/// Sent to the supervisor when an attempt ends.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct AttemptDone {
    /// The plan step the attempt ran, so a late answer of a replaced attempt is ignored.
    pub step: usize,
    /// Which attempt of that step (1 for the first).
    pub attempt: u32,
    /// How long the attempt took (`agent_completed.duration_ms`).
    pub elapsed: Duration,
    /// How it ended.
    pub outcome: AttemptOutcome,
}

/// Cancels the run: the agent in flight ends `agent_error` `cancelled`, then the session hears
/// `RunFinished` with `Cancelled`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Cancel {
    /// Who cancels (the user or the shutdown), reported on the run's `run_cancelled`.
    pub reason: CancelReason,
}

/// Stops the run without a word (its session has already decided how it ends).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AbortRun;

/// The actor that executes one run, started by the session once its `run_started` is durable.
pub struct RunSupervisor {
    /// Whose run this is: each agent works in a child of it, and the run's end names the run.
    ctx: UserContext,
    /// What sessions share: the agent timeout and restart limits, the pipeline, what agents use.
    deps: SessionDeps,
    /// The run's own emitter, for the lifecycle events; each attempt gets a copy bound to it.
    events: RunEvents,
    /// The session, told once how the run ended, so it records the end and frees the run's slot.
    finished: Recipient<RunFinished>,
    /// The agents still to run.
    plan: VecDeque<Arc<dyn Agent>>,
    /// Agents started so far.
    steps: usize,
    /// The attempt awaited; none between a failure and its restart.
    pub(super) current: Option<Attempt>,
    /// The message and the results of the agents so far: what the next agent reads.
    input: AgentInput,
    /// Whether a failed agent is restarted, and after how long.
    restarts: RestartIntensity,
    /// The latest answer an agent gave, which the run completes with (a stock one if none did).
    answer: Option<RunAnswer>,
    /// What the run's agents leave for their restarts.
    pub(super) memory: RunMemory,
    /// Counts this supervisor on `enclave_supervisors_live` until it is dropped.
    _live: LiveCount,
}

impl RunSupervisor {
    /// A supervisor for the run of `message`, with the configured restart limits and first plan.
    pub fn new(
        ctx: UserContext,
        message: String,
        deps: SessionDeps,
        events: RunEvents,
        finished: Recipient<RunFinished>,
    ) -> Self {
        let plan = deps.pipeline.initial_plan().into();
        let live = LiveCount::new(&deps.metrics.supervisors_live);
        let config = &deps.config;
        let restarts = RestartIntensity::new(
            config.max_restarts,
            config.restart_period,
            config.backoff_base,
            config.backoff_cap,
        );
        Self {
            ctx,
            deps,
            events,
            finished,
            plan,
            steps: 0,
            current: None,
            input: AgentInput::new(message),
            restarts,
            answer: None,
            memory: RunMemory::default(),
            _live: live,
        }
    }

    /// How long an attempt may stay silent.
    pub(super) fn attempt_timeout(&self) -> Duration {
        self.deps.config.agent_timeout
    }

    /// The run's own emitter (not bound to an attempt).
    pub(super) fn events(&self) -> &RunEvents {
        &self.events
    }

    fn start_next(&mut self, ctx: &mut Context<Self>) {
        let Some(agent) = self.plan.pop_front() else {
            let answer = self.answer.take().unwrap_or_else(|| RunAnswer {
                full_report_markdown: None,
                summary: String::from("The run finished without an answer."),
                report_markdown: String::new(),
                result: Value::Object(serde_json::Map::new()),
            });
            self.finish(ctx, RunOutcome::Completed(answer));
            return;
        };
        self.steps += 1;
        self.restarts.next_agent();
        self.memory.next_step();
        self.start_attempt(ctx, agent, 1);
    }

    fn start_attempt(&mut self, ctx: &mut Context<Self>, agent: Arc<dyn Agent>, number: u32) {
        let name = agent.name();
        let started = payload::AgentStarted { attempt: number };
        self.events.emit(started, Some(name));
        let step = self.steps;
        let me = ctx.address();
        let link = AttemptLink::new(
            step,
            number,
            me.clone().recipient(),
            me.clone().recipient(),
            me.recipient(),
        );
        let faults = &self.deps.faults;
        let agent_ctx = AgentContext::new(
            self.ctx.child(name),
            name,
            Arc::new(self.events.for_attempt(link)),
            self.deps.db.clone(),
            self.deps.config.clone(),
            self.deps.catalog.clone(),
            self.deps.llm.clone(),
        )
        .with_batch_faults(faults.batch_faults(name, self.ctx.user_id(), number))
        .with_earlier_checkpoint(self.memory.checkpoint_of(step));
        let input = self.input();
        let fault = faults.agent_fault(name, self.ctx.user_id(), number);
        let runner = AgentRunner::new(
            agent.clone(),
            agent_ctx,
            input,
            step,
            number,
            fault,
            ctx.address().recipient(),
        )
        .counted_on(&self.deps.metrics.agents_live)
        .start();
        let limit = self.deps.config.agent_timeout;
        self.current = Some(Attempt {
            agent,
            step,
            number,
            runner,
            timeout: None,
            deadline: Instant::now() + limit,
            remaining: limit,
        });
        self.arm_timeout(ctx);
    }

    /// Settles the awaited attempt, for `AttemptDone` and the timeout (`attempt_timer.rs`) alike.
    pub(super) fn on_attempt_done(
        &mut self,
        ctx: &mut Context<Self>,
        done: AttemptDone,
        timed_out: bool,
    ) {
        let current = match self.current.take() {
            Some(current) if current.step == done.step && current.number == done.attempt => current,
            other => {
                self.current = other;
                return;
            }
        };
        if let Some(timeout) = current.timeout {
            ctx.cancel_future(timeout);
        }
        current.runner.do_send(StopAttempt);
        let name = current.agent.name();
        match done.outcome {
            AttemptOutcome::Done(mut output) => {
                self.input.record(name, &output);
                let completed = payload::AgentCompleted {
                    attempt: done.attempt,
                    duration_ms: done.elapsed.as_millis() as u64,
                    result: std::mem::take(&mut output.result),
                    fallback: output.fallback,
                };
                self.events.emit(completed, Some(name));
                if output.answer.is_some() {
                    self.answer = output.answer;
                }
                if let Some(names) = output.replan {
                    self.replan(&names);
                }
                self.start_next(ctx);
            }
            AttemptOutcome::Failed(failure) => {
                let after = self.restarts.failed(Instant::now());
                let will_restart = after != AfterFailure::GiveUp;
                let failed = payload::AgentError {
                    error: failure.message.clone(),
                    attempt: done.attempt,
                    will_restart,
                    error_id: Some(failure.error_id),
                };
                self.events.emit(failed, Some(name));
                if let AfterFailure::Restart(backoff) = after {
                    let next = done.attempt + 1;
                    let restarted = payload::AgentRestarted {
                        attempt: next,
                        backoff_ms: backoff.as_millis() as u64,
                    };
                    self.events.emit(restarted, Some(name));
                    self.deps.metrics.restarts.with_label_values(&[name]).inc();
                    let agent = current.agent.clone();
                    ctx.run_later(backoff, move |act, ctx| act.start_attempt(ctx, agent, next));
                    return;
                }
                self.give_up(ctx, current.agent, done.attempt, timed_out, failure.message);
            }
        }
    }

    /// The agent failed past the restart intensity: its static fallback result if it has one
    /// (`agent_fallback`, and the run goes on), else the run fails.
    fn give_up(
        &mut self,
        ctx: &mut Context<Self>,
        agent: Arc<dyn Agent>,
        attempts: u32,
        timed_out: bool,
        error: String,
    ) {
        let name = agent.name();
        match agent.fallback(&self.input()) {
            Some(output) => {
                self.deps.metrics.fallbacks.with_label_values(&[name]).inc();
                let fallback = payload::AgentFallback {
                    attempts,
                    result: output.result.clone(),
                };
                self.events.emit(fallback, Some(name));
                self.input.record(name, &output);
                if output.answer.is_some() {
                    self.answer = output.answer;
                }
                if let Some(names) = output.replan {
                    self.replan(&names);
                }
                self.start_next(ctx);
            }
            None => {
                let code = if timed_out {
                    FailureCode::Timeout
                } else {
                    FailureCode::AgentFailed
                };
                let error = format!("the {name} agent failed {attempts} times: {error}");
                self.finish(ctx, RunOutcome::Failed { code, error });
            }
        }
    }

    fn input(&self) -> AgentInput {
        self.input.clone()
    }

    /// Replaces the rest of the plan with the registered agents among `names`.
    fn replan(&mut self, names: &[String]) {
        self.plan = names
            .iter()
            .filter_map(|name| {
                let agent = self.deps.pipeline.get(name);
                if agent.is_none() {
                    log::debug!(
                        "run={} plan names {name}, not available here",
                        self.ctx.run_id()
                    );
                }
                agent
            })
            .collect();
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
        self.start_next(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(current) = self.current.take() {
            current.runner.do_send(StopAttempt);
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
        if let Some(current) = self.current.take() {
            if let Some(timeout) = current.timeout {
                ctx.cancel_future(timeout);
            }
            current.runner.do_send(StopAttempt);
            let cancelled = payload::AgentError {
                error: "cancelled".to_owned(),
                error_id: None,
                attempt: current.number,
                will_restart: false,
            };
            self.events.emit(cancelled, Some(current.agent.name()));
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
