//! The `Agent` trait, what an agent is given (`AgentContext`, `AgentInput`) and what it returns
//! (`AgentOutput`), and the agents enclave ships.
//!
//! An agent is plain async logic; `runner.rs` wraps each attempt in its own actor, a child of
//! the run's supervisor. Register your own agents in a `Pipeline` (see `runtime::pipeline`).

pub mod actions;
pub mod data;
pub mod goals_triage;
pub mod optimizations_core;
pub mod reporting;
pub mod runner;
pub mod synthetic_data;
pub mod triage;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::LocalBoxFuture;
use serde_json::{Value, json};

use crate::analysis::catalog::Catalog;
use crate::config::Config;
use crate::context::UserContext;
use crate::faults::BatchFaults;
use crate::llm::{Llm, LlmError, LlmRequest, OnDelta};
use crate::protocol::{ApprovalOutcome, EventKind};
use crate::runtime::run_events::RunEvents;
use crate::store::{Db, StoreError};

/// One step of a run's plan.
///
/// ```no_run
/// use enclave::agents::{Agent, AgentContext, AgentError, AgentInput, AgentOutput};
/// use futures_util::future::LocalBoxFuture;
///
/// struct Echo;
///
/// impl Agent for Echo {
///     fn name(&self) -> &'static str {
///         "echo"
///     }
///
///     fn execute(
///         &self,
///         ctx: AgentContext,
///         input: AgentInput,
///     ) -> LocalBoxFuture<'static, Result<AgentOutput, AgentError>> {
///         Box::pin(async move {
///             ctx.thinking(format!("echoing {} characters", input.message.len()));
///             Ok(AgentOutput::result(serde_json::json!({ "echo": input.message })))
///         })
///     }
/// }
/// ```
pub trait Agent: Send + Sync + 'static {
    /// The agent's name in events (`agent` field) and in `ctx.child(name)`.
    fn name(&self) -> &'static str;

    /// Does the agent's work for one attempt. Emit progress through `ctx`; return the result.
    fn execute(
        &self,
        ctx: AgentContext,
        input: AgentInput,
    ) -> LocalBoxFuture<'static, Result<AgentOutput, AgentError>>;

    /// The static result the supervisor uses when the agent keeps failing (restart intensity
    /// reached): `agent_fallback`, and the run goes on. `None` (the default) fails the run.
    fn fallback(&self, _input: &AgentInput) -> Option<AgentOutput> {
        None
    }
}

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an agent reads: the user's message and the results of the agents before it.
#[derive(Debug, Clone)]
pub struct AgentInput {
    pub message: String,
    /// Earlier agents' `result`s, by agent name.
    pub results: Arc<BTreeMap<String, Value>>,
}

/// The final answer of a run, as `run_completed` carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunAnswer {
    pub summary: String,
    pub report_markdown: String,
    pub result: Value,
}

/// What an attempt produced.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentOutput {
    /// Goes into `agent_completed.result` and the next agents' input.
    pub result: Value,
    /// True when the agent used its deterministic path because its LLM failed.
    pub fallback: bool,
    /// Set by an agent that can answer the run; the last one set is the run's answer.
    pub answer: Option<RunAnswer>,
    /// Replaces the rest of the run's plan with these registered agents, in order.
    pub replan: Option<Vec<String>>,
}

impl AgentOutput {
    pub fn result(result: Value) -> Self {
        Self {
            result,
            fallback: false,
            answer: None,
            replan: None,
        }
    }

    pub fn with_replan(mut self, names: Vec<String>) -> Self {
        self.replan = Some(names);
        self
    }

    pub fn with_answer(mut self, answer: RunAnswer) -> Self {
        self.answer = Some(answer);
        self
    }
}

/// Everything an agent may touch, scoped to one run of one user.
#[derive(Clone)]
pub struct AgentContext {
    user: UserContext,
    name: &'static str,
    events: RunEvents,
    db: Db,
    config: Arc<Config>,
    catalog: Arc<Catalog>,
    llm: Llm,
    /// Faults injected around this attempt's batches (tests, demonstrations).
    batch_faults: BatchFaults,
    /// What an earlier attempt of this agent in this run left with `checkpoint`.
    earlier_checkpoint: Option<Value>,
}

impl AgentContext {
    pub fn new(
        user: UserContext,
        name: &'static str,
        events: RunEvents,
        db: Db,
        config: Arc<Config>,
        catalog: Arc<Catalog>,
        llm: Llm,
    ) -> Self {
        Self {
            user,
            name,
            events,
            db,
            config,
            catalog,
            llm,
            batch_faults: BatchFaults::default(),
            earlier_checkpoint: None,
        }
    }

    /// The faults `before_batch` applies in this attempt.
    pub fn with_batch_faults(mut self, faults: BatchFaults) -> Self {
        self.batch_faults = faults;
        self
    }

    /// What an earlier attempt of this agent left (for a restart).
    pub fn with_earlier_checkpoint(mut self, state: Option<Value>) -> Self {
        self.earlier_checkpoint = state;
        self
    }

    /// The last checkpoint an earlier attempt of this agent left in this run: where a restart
    /// may continue from. `None` on a first attempt.
    pub fn earlier_checkpoint(&self) -> Option<&Value> {
        self.earlier_checkpoint.as_ref()
    }

    /// Leaves `state` for a restart of this agent in this run to continue from (see
    /// `earlier_checkpoint`); the last one left counts.
    pub fn checkpoint(&self, state: Value) {
        self.events.checkpoint(state);
    }

    /// Called by an agent working in batches before each one, with how many this attempt has
    /// done: applies the injected batch faults (a wait that does not block the arbiter, or a
    /// failure of the attempt).
    pub async fn before_batch(&self, done: u64) -> Result<(), AgentError> {
        if self.batch_faults.fail_after.is_some_and(|n| done >= n) {
            return Err(AgentError::Failed(format!(
                "injected fault after {done} batches"
            )));
        }
        if let Some(delay) = self.batch_faults.delay {
            actix::clock::sleep(delay).await;
        }
        Ok(())
    }

    /// Whether an LLM is configured.
    pub fn has_llm(&self) -> bool {
        self.llm.is_some()
    }

    /// Asks the LLM, streaming its text as `agent_stream` events. `None` without an LLM.
    pub async fn ask_llm(&self, request: LlmRequest) -> Option<Result<String, LlmError>> {
        let llm = self.llm.clone()?;
        let events = self.events.clone();
        let name = self.name;
        let on_delta: OnDelta = Box::new(move |delta: &str| {
            events.emit(
                EventKind::AgentStream,
                Some(name),
                json!({ "delta": delta }),
            );
        });
        Some(llm.complete(request, on_delta).await)
    }

    /// The price catalog in force.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Who and which run this is, with the agent path `run/<name>`.
    pub fn user(&self) -> &UserContext {
        &self.user
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Emits `agent_thinking`.
    pub fn thinking(&self, text: impl Into<String>) {
        self.emit(EventKind::AgentThinking, json!({ "text": text.into() }));
    }

    /// Emits `tool_executing`.
    pub fn tool_executing(&self, tool: &str, input: Value) {
        self.emit(
            EventKind::ToolExecuting,
            json!({ "tool": tool, "input": input }),
        );
    }

    /// Runs a tool call: `tool_executing`, then `work`; a failure is reported with
    /// `tool_completed` (`ok: false`) and returned. On success the caller reports the output
    /// with `tool_completed`, given the value and the call's duration in milliseconds.
    pub async fn tool<T, E>(
        &self,
        tool: &str,
        input: Value,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<(T, u64), E> {
        self.tool_executing(tool, input);
        let started = Instant::now();
        let result = work.await;
        let duration_ms = started.elapsed().as_millis() as u64;
        if result.is_err() {
            let output = json!({ "error": "the tool could not complete" });
            self.tool_completed(tool, output, duration_ms, false);
        }
        result.map(|value| (value, duration_ms))
    }

    /// Emits `tool_completed`.
    pub fn tool_completed(&self, tool: &str, output: Value, duration_ms: u64, ok: bool) {
        self.emit(
            EventKind::ToolCompleted,
            json!({ "tool": tool, "output": output, "duration_ms": duration_ms, "ok": ok }),
        );
    }

    /// Emits `progress`.
    pub fn progress(&self, done: u64, total: u64, unit: &str) {
        self.emit(
            EventKind::Progress,
            json!({ "done": done, "total": total, "unit": unit }),
        );
    }

    /// Asks the user's consent for `action` (`approval_required`) and waits for it; the wait
    /// does not count toward the attempt's timeout. On `Cancelled` return at once: the run is
    /// being stopped.
    pub async fn request_approval(
        &self,
        action: &str,
        summary: impl Into<String>,
        details: Value,
    ) -> ApprovalOutcome {
        self.events
            .request_approval(self.name, action, summary.into(), details)
            .await
    }

    fn emit(&self, kind: EventKind, data: Value) {
        self.events.emit(kind, Some(self.name), data);
    }
}
