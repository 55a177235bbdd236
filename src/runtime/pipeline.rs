//! `Pipeline`: the agents a server can run and the plan every run starts with, built once at
//! start-up and shared read-only by every session. An agent may replace the rest of a run's
//! plan (`AgentOutput::replan`) with names of registered agents: triage picks the plan for the
//! intent, the data agent cuts it short when there is no data. The runtime names no concrete
//! agent: enclave's own pipeline (`Pipeline::standard`) is assembled in `server.rs`.

use std::sync::Arc;

use crate::agents::Agent;

/// The agents a server can run, and the plan every run starts with.
#[derive(Clone, Default)]
pub struct Pipeline {
    /// Every registered agent, by its unique name: what plans may name.
    agents: Vec<Arc<dyn Agent>>,
    /// The names every run's plan starts with.
    initial: Vec<&'static str>,
}

impl Pipeline {
    /// An empty pipeline; add agents with `then` and `also`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `agent` and appends it to the initial plan.
    pub fn then(mut self, agent: impl Agent) -> Self {
        self.initial.push(agent.name());
        self.also(agent)
    }

    /// Registers `agent` for plans to name, without running it by default.
    pub fn also(mut self, agent: impl Agent) -> Self {
        self.agents.retain(|a| a.name() != agent.name());
        self.agents.push(Arc::new(agent));
        self
    }

    /// The registered agent called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Agent>> {
        self.agents.iter().find(|a| a.name() == name).cloned()
    }

    /// The agents every run starts with.
    pub fn initial_plan(&self) -> Vec<Arc<dyn Agent>> {
        self.initial.iter().filter_map(|n| self.get(n)).collect()
    }

    /// The initial plan's names, as `run_started.plan` lists them.
    pub fn names(&self) -> Vec<&'static str> {
        self.initial.clone()
    }
}
