//! Fault injection (`ENCLAVE_FAULTS`, DESIGN.md §5): off unless configured, so tests and
//! demonstrations can make parts of a real server fail on purpose.
//!
//! Syntax: comma-separated `target:kind[:n][@user]`:
//! - `store:fail:N` — the next N write batches fail before touching the database;
//! - `AGENT:panic:N`, `AGENT:fail:N` — in every run (of `@user` only, if given) the agent
//!   panics or returns an error on its first N attempts;
//! - `AGENT:hang` — the agent never answers (its attempts time out);
//! - `AGENT:slow:MS` — the agent waits MS milliseconds before it works;
//! - `session:panic:N` — the next N `user_message`s a session handles make it panic.
//!
//! The counters are atomics: the only shared mutable state, and only here.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::context::UserId;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("ENCLAVE_FAULTS entry {entry:?}: {reason}")]
pub struct FaultsError {
    entry: String,
    reason: String,
}

/// What an agent attempt is made to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentFault {
    Panic,
    Fail,
    Hang,
    Slow(Duration),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct AgentRule {
    agent: String,
    fault: AgentFault,
    /// Attempts it applies to (1..=n); `None` = every attempt.
    attempts: Option<u32>,
    user: Option<String>,
}

#[derive(Debug, Default)]
pub struct Faults {
    /// Write batches still to fail.
    store_failures: AtomicU32,
    agent_rules: Vec<AgentRule>,
    /// Session panics still to inject, for one user (`@user`) or any (`None`).
    session_panics: Vec<(Option<String>, AtomicU32)>,
}

impl Faults {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn parse(spec: &str) -> Result<Self, FaultsError> {
        let mut faults = Self::none();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let fail = |reason: &str| FaultsError {
                entry: entry.to_owned(),
                reason: reason.to_owned(),
            };
            let (body, user) = match entry.split_once('@') {
                Some((body, user)) => (body, Some(user.to_owned())),
                None => (entry, None),
            };
            let count = |n: &str| n.parse::<u32>().map_err(|_| fail("count must be a number"));
            let parts: Vec<&str> = body.split(':').collect();
            let (agent, fault, attempts) = match parts.as_slice() {
                ["store", "fail", n] => {
                    faults.store_failures.fetch_add(count(n)?, Ordering::SeqCst);
                    continue;
                }
                ["session", "panic", n] => {
                    faults
                        .session_panics
                        .push((user, AtomicU32::new(count(n)?)));
                    continue;
                }
                [agent, "panic", n] => (agent, AgentFault::Panic, Some(count(n)?)),
                [agent, "fail", n] => (agent, AgentFault::Fail, Some(count(n)?)),
                [agent, "panic"] => (agent, AgentFault::Panic, None),
                [agent, "fail"] => (agent, AgentFault::Fail, None),
                [agent, "hang"] => (agent, AgentFault::Hang, None),
                [agent, "slow", ms] => {
                    let ms: u64 = ms.parse().map_err(|_| fail("delay must be milliseconds"))?;
                    (agent, AgentFault::Slow(Duration::from_millis(ms)), None)
                }
                _ => {
                    return Err(fail(
                        "expected store:fail:N, AGENT:panic[:N], AGENT:fail[:N], AGENT:hang or \
                         AGENT:slow:MS",
                    ));
                }
            };
            faults.agent_rules.push(AgentRule {
                agent: (*agent).to_owned(),
                fault,
                attempts,
                user,
            });
        }
        Ok(faults)
    }

    /// Makes the next `n` write batches fail.
    pub fn fail_next_store_batches(&self, n: u32) {
        self.store_failures.fetch_add(n, Ordering::SeqCst);
    }

    /// Whether this write batch is to fail (and counts it).
    pub fn take_store_failure(&self) -> bool {
        self.store_failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Whether `user`'s session is to panic now (and counts it).
    pub fn take_session_panic(&self, user: &UserId) -> bool {
        self.session_panics
            .iter()
            .filter(|(only, _)| only.as_deref().is_none_or(|u| u == user.as_str()))
            .any(|(_, left)| {
                left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
            })
    }

    /// The fault `agent`'s `attempt` in `user`'s run is made to have, if any.
    pub fn agent_fault(&self, agent: &str, user: &UserId, attempt: u32) -> Option<AgentFault> {
        self.agent_rules
            .iter()
            .find(|r| {
                r.agent == agent
                    && r.user.as_deref().is_none_or(|u| u == user.as_str())
                    && r.attempts.is_none_or(|n| attempt <= n)
            })
            .map(|r| r.fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_counts() {
        let f = Faults::parse("store:fail:2, triage:slow:50@alice, data:panic:2, reporting:hang")
            .expect("valid");
        assert!(f.take_store_failure());
        assert!(f.take_store_failure());
        assert!(!f.take_store_failure());
        let alice = UserId::parse("alice").expect("valid");
        let bob = UserId::parse("bob").expect("valid");
        let slow = Some(AgentFault::Slow(Duration::from_millis(50)));
        assert_eq!(f.agent_fault("triage", &alice, 1), slow);
        assert_eq!(f.agent_fault("triage", &bob, 1), None);
        assert_eq!(f.agent_fault("data", &bob, 2), Some(AgentFault::Panic));
        assert_eq!(f.agent_fault("data", &bob, 3), None);
        assert_eq!(f.agent_fault("reporting", &bob, 9), Some(AgentFault::Hang));
        assert!(Faults::parse("store:explode").is_err());
        assert!(Faults::parse("data:panic:x").is_err());
        let f = Faults::parse("session:panic:1@bob").expect("valid");
        assert!(!f.take_session_panic(&alice));
        assert!(f.take_session_panic(&bob));
        assert!(!f.take_session_panic(&bob));
    }
}
