//! Fault injection (`ENCLAVE_FAULTS`, DESIGN.md §5): off unless configured, so tests and
//! demonstrations can make parts of a real server fail on purpose.
//!
//! Syntax: comma-separated `target:kind[:n][@user]`. Understood so far: `store:fail:N` (the
//! next N write batches fail before touching the database) and `AGENT:slow:MS` (the agent
//! waits MS milliseconds before it works, in every run, or only `@user`'s). Counters are
//! atomics: the only shared mutable state, and only here.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::context::UserId;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("ENCLAVE_FAULTS entry {entry:?}: {reason}")]
pub struct FaultsError {
    entry: String,
    reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct AgentDelay {
    agent: String,
    delay: Duration,
    user: Option<String>,
}

#[derive(Debug, Default)]
pub struct Faults {
    /// Write batches still to fail.
    store_failures: AtomicU32,
    agent_delays: Vec<AgentDelay>,
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
            let parts: Vec<&str> = body.split(':').collect();
            match parts.as_slice() {
                ["store", "fail", n] => {
                    let n: u32 = n.parse().map_err(|_| fail("count must be a number"))?;
                    faults.store_failures.fetch_add(n, Ordering::SeqCst);
                }
                [agent, "slow", ms] => {
                    let ms: u64 = ms.parse().map_err(|_| fail("delay must be milliseconds"))?;
                    faults.agent_delays.push(AgentDelay {
                        agent: (*agent).to_owned(),
                        delay: Duration::from_millis(ms),
                        user,
                    });
                }
                _ => return Err(fail("expected store:fail:N or AGENT:slow:MS")),
            }
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

    /// How long `agent` waits before working in `user`'s runs.
    pub fn agent_delay(&self, agent: &str, user: &UserId) -> Option<Duration> {
        self.agent_delays
            .iter()
            .find(|d| d.agent == agent && d.user.as_deref().is_none_or(|u| u == user.as_str()))
            .map(|d| d.delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_counts() {
        let f = Faults::parse("store:fail:2, triage:slow:50@alice").expect("valid");
        assert!(f.take_store_failure());
        assert!(f.take_store_failure());
        assert!(!f.take_store_failure());
        let alice = UserId::parse("alice").expect("valid");
        let bob = UserId::parse("bob").expect("valid");
        assert_eq!(
            f.agent_delay("triage", &alice),
            Some(Duration::from_millis(50))
        );
        assert_eq!(f.agent_delay("triage", &bob), None);
        assert!(Faults::parse("store:explode").is_err());
    }
}
