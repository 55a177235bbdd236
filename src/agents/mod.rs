//! The `Agent` trait, what an agent is given (`AgentContext`, `AgentInput`) and what it returns
//! (`AgentOutput`), and the agents enclave ships.
//!
//! An agent is plain async logic and this module is a leaf: it knows no actor, session or
//! socket. The runtime runs each attempt in its own actor and reaches the agent only through
//! these types; the agent reaches its run only through the `RunChannel` in its context.

pub mod actions;
pub mod channel;
pub mod context;
pub mod data;
pub mod goals_triage;
pub mod optimizations_core;
pub mod output;
pub mod reporting;
pub mod synthetic_data;
pub mod triage;

use futures_util::future::LocalBoxFuture;

use crate::store::StoreError;

pub use channel::{Consent, RunChannel};
pub use context::{AgentContext, Improved};
pub use output::{AgentInput, AgentOutput, RunAnswer, TypedResult, to_json};

/// One step of a run's plan.
///
/// A result is plain JSON (`AgentOutput::result`; later agents read `AgentInput::results`) or
/// a Rust value (`AgentOutput::typed`; its JSON goes on the wire, later agents read the value
/// with `AgentInput::result_of`). The built-in agents' results are typed:
/// `triage::Understanding`, `goals_triage::Goals`, `data::UsageAnalysis`,
/// `optimizations_core::Candidates`, `actions::ActionPlan`, `synthetic_data::Generated`,
/// `reporting::Report`.
///
/// ```no_run
/// use enclave::agents::{Agent, AgentContext, AgentFuture, AgentInput, AgentOutput};
///
/// struct Echo;
///
/// impl Agent for Echo {
///     fn name(&self) -> &'static str {
///         "echo"
///     }
///
///     fn execute(&self, ctx: AgentContext, input: AgentInput) -> AgentFuture {
///         Box::pin(async move {
///             ctx.thinking(format!("echoing {} characters", input.message.len()));
///             Ok(AgentOutput::result(serde_json::json!({ "echo": input.message })))
///         })
///     }
/// }
/// ```
///
/// Reading an earlier agent's typed result and returning one:
///
/// ```no_run
/// use enclave::agents::triage::Understanding;
/// use enclave::agents::{AgentError, AgentInput, AgentOutput};
///
/// #[derive(serde::Serialize)]
/// struct Intent {
///     intent: String,
/// }
///
/// fn answer(input: &AgentInput) -> Result<AgentOutput, AgentError> {
///     // `None` without triage in the plan; an error if an agent called `triage` returned
///     // something else.
///     let triage = input.result_of::<Understanding>("triage")?;
///     let intent = triage.map_or("general", |u| u.intent).to_owned();
///     AgentOutput::typed(Intent { intent })
/// }
/// ```
pub trait Agent: Send + Sync + 'static {
    /// The agent's name in events (`agent` field) and in `ctx.child(name)`.
    fn name(&self) -> &'static str;

    /// Does the agent's work for one attempt. Emit progress through `ctx`; return the result.
    fn execute(&self, ctx: AgentContext, input: AgentInput) -> AgentFuture;

    /// The static result the supervisor uses when the agent keeps failing (restart intensity
    /// reached): `agent_fallback`, and the run goes on. `None` (the default) fails the run.
    fn fallback(&self, _input: &AgentInput) -> Option<AgentOutput> {
        None
    }
}

/// What `Agent::execute` returns: one attempt's work. Boxed so that agents can be trait
/// objects; not `Send`, because an attempt runs to its end on the actor that started it.
pub type AgentFuture = LocalBoxFuture<'static, Result<AgentOutput, AgentError>>;

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The agent could not do its work; the text says why.
    #[error("{0}")]
    Failed(String),
    /// A query or write of the user's data failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An earlier agent's result is not of the type this agent reads: an agent registered
    /// under that name returned plain JSON or another type.
    #[error(
        "the {agent} agent's result is {found}, not the {expected} this agent reads: register \
         an agent called {agent} that returns it with `AgentOutput::typed`, or leave {agent} out \
         of the plan"
    )]
    UnexpectedResult {
        /// The earlier agent's name.
        agent: String,
        /// The type this agent reads.
        expected: &'static str,
        /// What the result is instead (`plain JSON`, or its type).
        found: &'static str,
    },
}
