//! What flows between agents: `AgentInput` (the user's message and the results of the agents
//! before), `AgentOutput` (what one attempt produced) and `RunAnswer` (the run's final answer).
//! The runtime carries them; agents only read and build them.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

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
