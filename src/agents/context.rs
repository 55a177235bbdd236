//! `AgentContext`: everything an agent may touch during one attempt, scoped to one run of one
//! user — its `UserContext`, the run's `RunChannel` (events, approvals, checkpoints), the
//! user's `UserStore`, the configuration, the price catalog and the LLM. Built by the runtime
//! for each attempt; an agent cannot name another run or user through it.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use super::channel::{Consent, RunChannel};
use super::{AgentError, to_json};
use crate::analysis::catalog::Catalog;
use crate::config::Config;
use crate::context::UserContext;
use crate::faults::BatchFaults;
use crate::llm::{Llm, LlmError, LlmRequest, OnDelta};
use crate::protocol::{ApprovalOutcome, EventPayload, payload};
use crate::store::{Db, UserStore};

/// What came of asking the LLM to improve on what an agent worked out by its own rules.
#[derive(Debug, Clone, PartialEq)]
pub enum Improved<T> {
    /// No LLM is configured: the rules' result stands, as the agent's normal result.
    NoLlm,
    /// What the agent took from the LLM's answer.
    Used(T),
    /// The call failed or its answer could not be used: the rules' result stands, as a
    /// fallback (`AgentOutput::fallback`).
    Refused,
}

impl<T> Improved<T> {
    /// Whether the agent falls back on its rules because the LLM's answer was not usable.
    pub fn fell_back(&self) -> bool {
        matches!(self, Self::Refused)
    }
}

/// `tool_completed.output` of a tool call that failed (see `AgentContext::tool`).
#[derive(Serialize)]
struct ToolFailed {
    /// Why, in words: the error itself is the attempt's.
    error: &'static str,
}

/// Everything an agent may touch, scoped to one run of one user.
#[derive(Clone)]
pub struct AgentContext {
    /// Who and which run this is, with the agent path `run/<name>`.
    user: UserContext,
    /// The agent's name, stamped on every event it emits.
    name: &'static str,
    /// Where the agent's events, approval requests and checkpoints go: this run only.
    channel: Arc<dyn RunChannel>,
    /// The user's data, bound to `user`'s id: no other user's records are reachable.
    store: UserStore,
    /// The server's configuration (limits, thresholds), shared read-only.
    config: Arc<Config>,
    /// The price catalog in force, shared read-only.
    catalog: Arc<Catalog>,
    /// The LLM provider, if one is configured.
    llm: Llm,
    /// Faults injected around this attempt's batches (tests, demonstrations).
    batch_faults: BatchFaults,
    /// What an earlier attempt of this agent in this run left with `checkpoint`.
    earlier_checkpoint: Option<Value>,
}

impl AgentContext {
    /// The context of one attempt of agent `name` (built by the runtime, or by a test). The
    /// store is bound here to `user`'s id, so it cannot be another user's.
    pub fn new(
        user: UserContext,
        name: &'static str,
        channel: Arc<dyn RunChannel>,
        db: Db,
        config: Arc<Config>,
        catalog: Arc<Catalog>,
        llm: Llm,
    ) -> Self {
        let store = UserStore::new(db, user.user_id().clone());
        Self {
            user,
            name,
            channel,
            store,
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
    pub fn checkpoint(&self, state: impl Serialize) {
        self.channel.checkpoint(to_json(&state));
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
        let channel = self.channel.clone();
        let name = self.name;
        let on_delta: OnDelta = Box::new(move |delta: &str| {
            let delta = delta.to_owned();
            channel.emit(name, payload::AgentStream { delta }.into());
        });
        Some(llm.complete(request, on_delta).await)
    }

    /// Asks the LLM to improve on the agent's own rules and gives its text to `read`: `Used`
    /// with what `read` takes from it. When the call fails or `read` refuses the text, says why
    /// in `agent_thinking` (the error, or `refused`, then `; {instead}`) and gives `Refused`.
    pub async fn improve_with_llm<T>(
        &self,
        request: LlmRequest,
        read: impl FnOnce(&str) -> Option<T>,
        refused: &str,
        instead: &str,
    ) -> Improved<T> {
        let Some(answer) = self.ask_llm(request).await else {
            return Improved::NoLlm;
        };
        match answer.map(|text| read(&text)) {
            Ok(Some(value)) => Improved::Used(value),
            Ok(None) => {
                self.thinking(format!("{refused}; {instead}"));
                Improved::Refused
            }
            Err(e) => {
                self.thinking(format!("{e}; {instead}"));
                Improved::Refused
            }
        }
    }

    /// The price catalog in force.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Who and which run this is, with the agent path `run/<name>`.
    pub fn user(&self) -> &UserContext {
        &self.user
    }

    /// The user's data: the queries and writes agents need, each for this user only.
    pub fn store(&self) -> &UserStore {
        &self.store
    }

    /// Runs CPU-heavy `work` (analysis over many records) on the blocking pool, never on the
    /// arbiter the run's actors share.
    pub async fn compute<T, F>(&self, work: F) -> Result<T, AgentError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        actix_web::web::block(work)
            .await
            .map_err(|e| AgentError::Failed(format!("the blocking pool stopped: {e}")))
    }

    /// The server's configuration: limits and the optimisation thresholds.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Emits `agent_thinking`.
    pub fn thinking(&self, text: impl Into<String>) {
        self.emit(payload::AgentThinking { text: text.into() });
    }

    /// Emits `tool_executing`, with `input` as JSON.
    pub fn tool_executing(&self, tool: &str, input: impl Serialize) {
        let tool = tool.to_owned();
        let input = to_json(&input);
        self.emit(payload::ToolExecuting { tool, input });
    }

    /// Runs a tool call: `tool_executing`, then `work`; a failure is reported with
    /// `tool_completed` (`ok: false`) and returned. On success the caller reports the output
    /// with `tool_completed`, given the value and the call's duration in milliseconds.
    pub async fn tool<T, E>(
        &self,
        tool: &str,
        input: impl Serialize,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<(T, u64), E> {
        self.tool_executing(tool, input);
        let started = Instant::now();
        let result = work.await;
        let duration_ms = started.elapsed().as_millis() as u64;
        if result.is_err() {
            let output = ToolFailed {
                error: "the tool could not complete",
            };
            self.tool_completed(tool, output, duration_ms, false);
        }
        result.map(|value| (value, duration_ms))
    }

    /// Emits `tool_completed`, with `output` as JSON.
    pub fn tool_completed(&self, tool: &str, output: impl Serialize, duration_ms: u64, ok: bool) {
        self.emit(payload::ToolCompleted {
            tool: tool.to_owned(),
            output: to_json(&output),
            duration_ms,
            ok,
        });
    }

    /// Emits `progress`.
    pub fn progress(&self, done: u64, total: u64, unit: &str) {
        let unit = unit.to_owned();
        self.emit(payload::Progress { done, total, unit });
    }

    /// Asks the user's consent for `action` (`approval_required`) and waits for it; the wait
    /// does not count toward the attempt's timeout; `details` go to the user as JSON. On
    /// `Cancelled` return at once: the run is being stopped.
    pub async fn request_approval(
        &self,
        action: &str,
        summary: impl Into<String>,
        details: impl Serialize,
    ) -> ApprovalOutcome {
        let consent = Consent {
            action: action.to_owned(),
            summary: summary.into(),
            details: to_json(&details),
        };
        self.channel.request_approval(self.name, consent).await
    }

    /// Every event the agent emits goes through here, stamped with its name.
    fn emit(&self, payload: impl Into<EventPayload>) {
        self.channel.emit(self.name, payload.into());
    }
}
