//! `Pipeline`: the agents a run executes, in order. Built once at start-up (the server
//! builder takes one) and shared read-only by every session.

use std::sync::Arc;

use crate::agents::{Agent, triage::Triage};

#[derive(Clone, Default)]
pub struct Pipeline {
    agents: Vec<Arc<dyn Agent>>,
}

impl Pipeline {
    /// An empty pipeline; add agents with `then`.
    pub fn new() -> Self {
        Self::default()
    }

    /// enclave's own agents.
    pub fn standard() -> Self {
        Self::new().then(Triage)
    }

    /// Appends `agent` to the plan.
    pub fn then(mut self, agent: impl Agent) -> Self {
        self.agents.push(Arc::new(agent));
        self
    }

    pub fn agents(&self) -> &[Arc<dyn Agent>] {
        &self.agents
    }

    /// The agents' names, as `run_started.plan` lists them.
    pub fn names(&self) -> Vec<&'static str> {
        self.agents.iter().map(|a| a.name()).collect()
    }
}
