//! What flows between agents: `AgentInput` (the user's message and the results of the agents
//! before), `AgentOutput` (what one attempt produced) and `RunAnswer` (the run's final answer).
//!
//! A result has two faces: the JSON that goes on the wire (`agent_completed.result`) and, for
//! an agent that built it with `AgentOutput::typed`, the Rust value itself, which the agents
//! after it read with `AgentInput::result_of` instead of indexing JSON.

use std::any::{Any, type_name};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::AgentError;

/// An agent's result as the Rust value it built, shared read-only by the agents after it.
#[derive(Clone)]
pub struct TypedResult {
    /// The value (`T` of `AgentOutput::typed`).
    value: Arc<dyn Any + Send + Sync>,
    /// `T`'s name, for the error that names a result of another type.
    type_name: &'static str,
}

impl TypedResult {
    fn new<T: Any + Send + Sync>(value: T) -> Self {
        Self {
            value: Arc::new(value),
            type_name: type_name::<T>(),
        }
    }
}

impl fmt::Debug for TypedResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TypedResult").field(&self.type_name).finish()
    }
}

/// Typed values are compared through their JSON (`AgentOutput::result`); here only their type.
impl PartialEq for TypedResult {
    fn eq(&self, other: &Self) -> bool {
        self.type_name == other.type_name
    }
}

/// What an agent reads: the user's message and the results of the agents before it.
#[derive(Debug, Clone)]
pub struct AgentInput {
    /// The user's message that started the run.
    pub message: String,
    /// Earlier agents' results as JSON (as on the wire), by agent name: what an agent reads
    /// from an agent that returns plain JSON.
    pub results: Arc<BTreeMap<String, Value>>,
    /// Earlier agents' typed results, by agent name (see `result_of`).
    typed: Arc<BTreeMap<String, TypedResult>>,
}

impl AgentInput {
    /// The input of a run's first agent: the message and no results yet.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            results: Arc::default(),
            typed: Arc::default(),
        }
    }

    /// Records `agent`'s output for the agents after it (its JSON, and its typed value if it
    /// has one), replacing an earlier output of the same agent.
    pub fn record(&mut self, agent: &str, output: &AgentOutput) {
        Arc::make_mut(&mut self.results).insert(agent.to_owned(), output.result.clone());
        let typed = Arc::make_mut(&mut self.typed);
        match &output.typed {
            Some(value) => typed.insert(agent.to_owned(), value.clone()),
            None => typed.remove(agent),
        };
    }

    /// The typed result of the earlier agent `agent`: `Ok(None)` when no agent of that name
    /// has completed in this run, an error when one has but its result is not a `T` (plain
    /// JSON, or another type: a custom agent registered under that name).
    pub fn result_of<T: Any>(&self, agent: &str) -> Result<Option<&T>, AgentError> {
        let Some(typed) = self.typed_of::<T>(agent)? else {
            return Ok(None);
        };
        match typed.value.downcast_ref::<T>() {
            Some(value) => Ok(Some(value)),
            None => Err(mistyped::<T>(agent, typed.type_name)),
        }
    }

    /// Like `result_of`, a shared handle on the value, for work that must own what it reads
    /// (CPU-heavy work sent to the blocking pool with `AgentContext::compute`).
    pub fn shared_result_of<T: Any + Send + Sync>(
        &self,
        agent: &str,
    ) -> Result<Option<Arc<T>>, AgentError> {
        let Some(typed) = self.typed_of::<T>(agent)? else {
            return Ok(None);
        };
        match typed.value.clone().downcast::<T>() {
            Ok(value) => Ok(Some(value)),
            Err(_) => Err(mistyped::<T>(agent, typed.type_name)),
        }
    }

    /// `agent`'s typed result, `None` if it has not run, an error if its result is plain JSON.
    fn typed_of<T: Any>(&self, agent: &str) -> Result<Option<&TypedResult>, AgentError> {
        match self.typed.get(agent) {
            Some(typed) => Ok(Some(typed)),
            None if self.results.contains_key(agent) => Err(mistyped::<T>(agent, "plain JSON")),
            None => Ok(None),
        }
    }
}

/// The error for a result of `agent` that is `found` where a `T` is read.
fn mistyped<T>(agent: &str, found: &'static str) -> AgentError {
    AgentError::UnexpectedResult {
        agent: agent.to_owned(),
        expected: type_name::<T>(),
        found,
    }
}

/// `value` as JSON, for the free-form parts of an event (tool input and output, approval
/// details, a run's result) and checkpoints. The shapes passed here are plain structs with
/// string keys, which cannot fail to convert; should one fail all the same, the error is logged
/// and the part is `null` rather than the run failing over a description of its work.
pub fn to_json(value: &impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or_else(|e| {
        log::error!("a value could not be written as JSON: {e}");
        Value::Null
    })
}

/// The final answer of a run, as `run_completed` carries it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunAnswer {
    /// A paragraph answering the user (`run_completed.summary`).
    pub summary: String,
    /// The report (`run_completed.report_markdown`): whole, or with its long tables cut to
    /// their first rows (`protocol::event_lists`) when `full_report_markdown` has them all.
    pub report_markdown: String,
    /// The whole report when `report_markdown` is cut: stored with the run and served by
    /// `GET /api/reports/{run_id}.md`, never put in an event. `None`: `report_markdown` is
    /// whole.
    pub full_report_markdown: Option<String>,
    /// The machine-readable answer (`run_completed.result`).
    pub result: Value,
}

/// What an attempt produced.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentOutput {
    /// Goes into `agent_completed.result` and the next agents' input. For a typed output, the
    /// JSON of the typed value: change one and the agents after read the other.
    pub result: Value,
    /// The value behind `result` when the agent built it with `typed`.
    typed: Option<TypedResult>,
    /// True when the agent used its deterministic path because its LLM failed.
    pub fallback: bool,
    /// Set by an agent that can answer the run; the last one set is the run's answer.
    pub answer: Option<RunAnswer>,
    /// Replaces the rest of the run's plan with these registered agents, in order.
    pub replan: Option<Vec<String>>,
}

impl AgentOutput {
    /// An output whose result is plain JSON: the agents after read it from
    /// `AgentInput::results`.
    pub fn result(result: Value) -> Self {
        Self {
            result,
            typed: None,
            fallback: false,
            answer: None,
            replan: None,
        }
    }

    /// An output whose result is `value`: its JSON goes on the wire and into
    /// `AgentInput::results`, the value itself to `AgentInput::result_of::<T>`.
    pub fn typed<T: Serialize + Any + Send + Sync>(value: T) -> Result<Self, AgentError> {
        let result = serde_json::to_value(&value).map_err(|e| {
            AgentError::Failed(format!(
                "the result ({}) cannot be written as JSON: {e}",
                type_name::<T>()
            ))
        })?;
        Ok(Self {
            typed: Some(TypedResult::new(value)),
            ..Self::result(result)
        })
    }

    /// Replaces the rest of the run's plan with the registered agents `names`.
    pub fn with_replan(mut self, names: Vec<String>) -> Self {
        self.replan = Some(names);
        self
    }

    /// Makes `answer` the run's answer (unless a later agent sets another).
    pub fn with_answer(mut self, answer: RunAnswer) -> Self {
        self.answer = Some(answer);
        self
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Debug, PartialEq, Serialize)]
    struct Window {
        days: u32,
    }

    #[test]
    fn typed_results_read_as_their_type_and_go_on_the_wire_as_json() {
        let mut input = AgentInput::new("hello");
        assert_eq!(input.result_of::<Window>("data").ok(), Some(None));
        let output = AgentOutput::typed(Window { days: 7 }).expect("serialisable");
        assert_eq!(output.result, json!({ "days": 7 }));
        input.record("data", &output);
        assert_eq!(
            input.result_of::<Window>("data").ok(),
            Some(Some(&Window { days: 7 }))
        );
        let shared = input.shared_result_of::<Window>("data").ok().flatten();
        assert_eq!(shared.as_deref(), Some(&Window { days: 7 }));
        assert_eq!(input.results.get("data"), Some(&json!({ "days": 7 })));
    }

    #[test]
    fn a_result_of_another_type_is_an_error_not_a_default() {
        let mut input = AgentInput::new("hello");
        input.record("data", &AgentOutput::result(json!({ "days": 7 })));
        let plain = input.result_of::<Window>("data").map(|_| ());
        assert!(
            matches!(
                plain,
                Err(AgentError::UnexpectedResult {
                    found: "plain JSON",
                    ..
                })
            ),
            "{plain:?}"
        );
        input.record("data", &AgentOutput::typed(7u32).expect("serialisable"));
        let other = input.result_of::<Window>("data").map(|_| ());
        assert!(
            matches!(
                other,
                Err(AgentError::UnexpectedResult { found: "u32", .. })
            ),
            "{other:?}"
        );
        assert!(input.shared_result_of::<Window>("data").is_err());
        // A later plain result replaces the typed one: no stale value is read.
        input.record("data", &AgentOutput::result(json!(7)));
        assert!(input.result_of::<u32>("data").is_err());
    }
}
