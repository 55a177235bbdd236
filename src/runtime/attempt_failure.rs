//! `AttemptFailure`: why an agent attempt failed, as its user reads it in `agent_error`, and the
//! id of the log line that holds the internals.
//!
//! A panic's message, a database error or a stack of causes never reach a client: they are
//! logged with a fresh id, and the event carries a plain sentence and that id (`error_id`), so
//! an operator finds the line a user quotes. An agent's own `AgentError::Failed` text is
//! written for its user and passes as it is.

use crate::agents::AgentError;

/// What `agent_error` says, and its log line's id.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptFailure {
    /// For the user: no internals.
    pub message: String,
    /// Names the log line with the internals.
    pub error_id: String,
}

impl AttemptFailure {
    /// Logs `internal` for `agent`'s attempt under a new id; the user reads `message`.
    fn logged(agent: &str, attempt: u32, message: String, internal: &str) -> Self {
        let error_id = uuid::Uuid::new_v4().simple().to_string();
        log::warn!("agent {agent} attempt {attempt} failed, error id={error_id}: {internal}");
        Self { message, error_id }
    }

    /// The attempt returned `error`.
    pub fn returned(agent: &str, attempt: u32, error: &AgentError) -> Self {
        let message = match error {
            AgentError::Store(_) => {
                String::from("the agent could not reach this user's data (storage unavailable)")
            }
            AgentError::Failed(_) | AgentError::UnexpectedResult { .. } => error.to_string(),
        };
        Self::logged(agent, attempt, message, &error.to_string())
    }

    /// The attempt panicked with `panic`.
    pub fn panicked(agent: &str, attempt: u32, panic: &(dyn std::any::Any + Send)) -> Self {
        let text = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        Self::logged(
            agent,
            attempt,
            String::from("the agent failed on a bug; it has been logged"),
            &format!("panicked: {text}"),
        )
    }

    /// The attempt showed no sign of life for `limit`.
    pub fn timed_out(agent: &str, attempt: u32, limit: std::time::Duration) -> Self {
        let message = format!(
            "timed out after {} ms without a sign of life",
            limit.as_millis()
        );
        let internal = message.clone();
        Self::logged(agent, attempt, message, &internal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internals_stay_in_the_log() {
        let panic: Box<dyn std::any::Any + Send> = Box::new("index out of bounds: secret.rs:12");
        let failure = AttemptFailure::panicked("data", 1, panic.as_ref());
        assert!(!failure.message.contains("secret.rs"), "{failure:?}");
        assert_eq!(failure.error_id.len(), 32);
        let store = AgentError::Store(crate::store::StoreError::WritePanicked);
        let failure = AttemptFailure::returned("data", 2, &store);
        assert!(
            failure.message.contains("storage unavailable"),
            "{failure:?}"
        );
        let own = AgentError::Failed(String::from("no usage records yet"));
        assert_eq!(
            AttemptFailure::returned("data", 1, &own).message,
            "no usage records yet"
        );
        assert_ne!(
            AttemptFailure::returned("data", 1, &own).error_id,
            AttemptFailure::returned("data", 1, &own).error_id
        );
    }
}
