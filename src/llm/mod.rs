//! LLM providers. enclave's numbers never come from an LLM: a provider is asked only for an
//! intent label (triage) and for wording (reporting), and any failure — an error status, a
//! malformed stream, no answer within the call timeout — sends the agent down its own
//! deterministic path (`agent_completed` with `fallback: true`).
//!
//! Without `ENCLAVE_LLM_URL` there is no provider and the agents are deterministic (the
//! built-in default, no network).

pub mod openai;

use std::sync::Arc;

use futures_util::future::LocalBoxFuture;

/// One chat completion request.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmRequest {
    pub system: String,
    pub user: String,
    pub max_tokens: u32,
}

/// Why a provider gave no answer; the agent then takes its deterministic path and says why in
/// `agent_thinking`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LlmError {
    #[error("the LLM could not be reached: {0}")]
    Unreachable(String),
    #[error("the LLM answered HTTP {0}")]
    Status(u16),
    #[error("the LLM stream was malformed: {0}")]
    Malformed(String),
    #[error("the LLM gave no answer within {0} ms")]
    Timeout(u128),
}

/// Receives each streamed piece of text as it arrives.
pub type OnDelta = Box<dyn Fn(&str)>;

/// What agents ask for an intent label or for wording; behind a trait so tests and embedders
/// can plug in their own model.
pub trait LlmProvider: Send + Sync + 'static {
    /// Streams a completion, calling `on_delta` per piece; resolves to the whole text.
    fn complete(
        &self,
        request: LlmRequest,
        on_delta: OnDelta,
    ) -> LocalBoxFuture<'static, Result<String, LlmError>>;
}

/// The configured provider, if any.
pub type Llm = Option<Arc<dyn LlmProvider>>;
