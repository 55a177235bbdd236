//! `Pipeline`: the agents a server can run and the plan every run starts with. Built once at
//! start-up (the server builder takes one) and shared read-only by every session.
//!
//! A run starts with the initial plan; an agent may replace the rest of it (`AgentOutput::replan`)
//! with names of registered agents — triage picks the plan for the intent, the data agent cuts
//! it short when there is no data.

use std::sync::Arc;

use crate::agents::{
    Agent, actions::Actions, data::Data, goals_triage::GoalsTriage,
    optimizations_core::OptimizationsCore, reporting::Reporting, synthetic_data::SyntheticData,
    triage::Triage,
};

#[derive(Clone, Default)]
pub struct Pipeline {
    agents: Vec<Arc<dyn Agent>>,
    initial: Vec<&'static str>,
}

impl Pipeline {
    /// An empty pipeline; add agents with `then` and `also`.
    pub fn new() -> Self {
        Self::default()
    }

    /// enclave's own agents: every run starts with triage, which plans the rest.
    pub fn standard() -> Self {
        Self::new()
            .then(Triage)
            .also(GoalsTriage)
            .also(Data)
            .also(OptimizationsCore)
            .also(Actions)
            .also(SyntheticData)
            .also(Reporting)
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
