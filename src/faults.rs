//! Fault injection (`ENCLAVE_FAULTS`, DESIGN.md §5): off unless configured, so tests and
//! demonstrations can make parts of a real server fail on purpose.
//!
//! Syntax: comma-separated `target:kind[:n][@user]`:
//! - `store:fail:N` — the next N write batches (of `@user` only, if given) fail before
//!   touching the database;
//! - `store:panic:N` — the next N write transactions holding a batch (of `@user` only, if
//!   given) panic midway, after their rows are written and before the commit;
//! - `store:read_panic:N` — the next N reads panic on their reader thread (which survives);
//! - `store:slow:MS` — the writer waits MS milliseconds before each event batch (a batch
//!   still being written when something else happens);
//! - `bulk:slow_chunk:MS` — a bulk write (an upload) waits MS milliseconds before each chunk;
//! - `bulk:lose_answer:N` — the next N uploads are stored, then answered 500 as if the answer
//!   had been lost on the way (a client resending with its `Idempotency-Key` gets the counts);
//! - `AGENT:panic:N`, `AGENT:fail:N` — in every run (of `@user` only, if given) the agent
//!   panics or returns an error on its first N attempts;
//! - `AGENT:hang` — the agent never answers (its attempts time out);
//! - `AGENT:slow:MS` — the agent waits MS milliseconds before it works (in silence, so an
//!   attempt timeout shorter than MS kills it);
//! - `AGENT:slow_batch:MS` — an agent working in batches (synthetic_data) waits MS
//!   milliseconds before each batch, still reporting `progress` after each;
//! - `AGENT:fail_after_batches:N` — the agent's first attempt fails once it has done N batches
//!   (its restart does not);
//! - `session:panic:N` — the next N `user_message`s a session handles make it panic.
//!
//! The counters are atomics: the only shared mutable state, and only here.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::context::UserId;

/// An `ENCLAVE_FAULTS` entry that could not be read, and why; the server does not start then.
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

/// What an agent working in batches is made to do around its batches, in one attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchFaults {
    /// Waited before each batch.
    pub delay: Option<Duration>,
    /// The attempt fails once it has done this many batches.
    pub fail_after: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BatchFault {
    Slow(Duration),
    /// Applies to the first attempt only.
    FailAfter(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct BatchRule {
    agent: String,
    fault: BatchFault,
    user: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct AgentRule {
    agent: String,
    fault: AgentFault,
    /// Attempts it applies to (1..=n); `None` = every attempt.
    attempts: Option<u32>,
    user: Option<String>,
}

/// The faults configured for this server, asked by the writer, the bulk writer, agents and
/// sessions at each place they may fail.
#[derive(Debug, Default)]
pub struct Faults {
    /// Write batches still to fail, of any user.
    store_failures: AtomicU32,
    /// Write batches still to fail, of one user each (`store:fail:N@user`).
    user_store_failures: Vec<(String, AtomicU32)>,
    /// Write transactions still to panic, for one user (`@user`) or any (`None`).
    store_panics: Vec<(Option<String>, AtomicU32)>,
    /// Reads still to panic.
    read_panics: AtomicU32,
    /// Milliseconds the writer waits before each event batch (0: none).
    store_delay_ms: AtomicU64,
    /// Milliseconds a bulk write waits before each chunk (0: none).
    bulk_chunk_delay_ms: AtomicU64,
    /// Stored uploads still to be answered as if their answer were lost.
    lost_upload_answers: AtomicU32,
    agent_rules: Vec<AgentRule>,
    /// Faults applied by the agent itself, around each of its batches.
    batch_rules: Vec<BatchRule>,
    /// Session panics still to inject, for one user (`@user`) or any (`None`).
    session_panics: Vec<(Option<String>, AtomicU32)>,
}

impl Faults {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// Reads an `ENCLAVE_FAULTS` value (the syntax above); an empty one means no faults.
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
                    let n = count(n)?;
                    match user {
                        Some(user) => faults.user_store_failures.push((user, AtomicU32::new(n))),
                        None => {
                            faults.store_failures.fetch_add(n, Ordering::SeqCst);
                        }
                    }
                    continue;
                }
                ["store", "panic", n] => {
                    faults.store_panics.push((user, AtomicU32::new(count(n)?)));
                    continue;
                }
                ["store", "read_panic", n] => {
                    faults.read_panics.fetch_add(count(n)?, Ordering::SeqCst);
                    continue;
                }
                ["store", "slow", ms] => {
                    let ms: u64 = ms.parse().map_err(|_| fail("delay must be milliseconds"))?;
                    faults.store_delay_ms.store(ms, Ordering::SeqCst);
                    continue;
                }
                ["bulk", "slow_chunk", ms] => {
                    let ms: u64 = ms.parse().map_err(|_| fail("delay must be milliseconds"))?;
                    faults.bulk_chunk_delay_ms.store(ms, Ordering::SeqCst);
                    continue;
                }
                ["bulk", "lose_answer", n] => {
                    faults
                        .lost_upload_answers
                        .fetch_add(count(n)?, Ordering::SeqCst);
                    continue;
                }
                ["session", "panic", n] => {
                    faults
                        .session_panics
                        .push((user, AtomicU32::new(count(n)?)));
                    continue;
                }
                [agent, "slow_batch", ms] => {
                    let ms: u64 = ms.parse().map_err(|_| fail("delay must be milliseconds"))?;
                    let fault = BatchFault::Slow(Duration::from_millis(ms));
                    faults.batch_rule(agent, fault, user);
                    continue;
                }
                [agent, "fail_after_batches", n] => {
                    let fault = BatchFault::FailAfter(u64::from(count(n)?));
                    faults.batch_rule(agent, fault, user);
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
                        "expected store:fail:N, store:panic:N, store:read_panic:N, store:slow:MS, bulk:slow_chunk:MS, bulk:lose_answer:N, AGENT:panic[:N], AGENT:fail[:N], AGENT:hang, \
                         AGENT:slow:MS, AGENT:slow_batch:MS, AGENT:fail_after_batches:N or \
                         session:panic:N",
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

    fn batch_rule(&mut self, agent: &str, fault: BatchFault, user: Option<String>) {
        self.batch_rules.push(BatchRule {
            agent: agent.to_owned(),
            fault,
            user,
        });
    }

    /// Makes the next `n` write batches fail.
    pub fn fail_next_store_batches(&self, n: u32) {
        self.store_failures.fetch_add(n, Ordering::SeqCst);
    }

    /// Whether this write batch of `user` is to fail (and counts it).
    pub fn take_store_failure(&self, user: &UserId) -> bool {
        let mine = self
            .user_store_failures
            .iter()
            .filter(|(only, _)| only == user.subject())
            .any(|(_, left)| take_one(left));
        mine || take_one(&self.store_failures)
    }

    /// Whether a write transaction holding a batch of `user` is to panic now (and counts it).
    pub fn take_store_panic(&self, user: &UserId) -> bool {
        take_for(&self.store_panics, user)
    }

    /// How long the writer waits before the next event batch, if at all.
    pub fn store_delay(&self) -> Option<Duration> {
        let ms = self.store_delay_ms.load(Ordering::SeqCst);
        (ms > 0).then(|| Duration::from_millis(ms))
    }

    /// Makes the writer wait `delay` before each event batch from now on.
    pub fn set_store_delay(&self, delay: Duration) {
        self.store_delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Whether the answer of the upload just stored is to be lost (`bulk:lose_answer:N`).
    pub fn take_lost_upload_answer(&self) -> bool {
        take_one(&self.lost_upload_answers)
    }

    /// Makes the next `n` reads panic.
    pub fn panic_next_reads(&self, n: u32) {
        self.read_panics.fetch_add(n, Ordering::SeqCst);
    }

    /// Whether the read starting now is to panic (`store:read_panic:N`).
    pub fn take_read_panic(&self) -> bool {
        take_one(&self.read_panics)
    }

    /// How long a bulk write waits before its next chunk, if at all.
    pub fn bulk_chunk_delay(&self) -> Option<Duration> {
        let ms = self.bulk_chunk_delay_ms.load(Ordering::SeqCst);
        (ms > 0).then(|| Duration::from_millis(ms))
    }

    /// Adds `n` panics to the `session:panic` entry configured for `user` (`@user`, possibly
    /// with a count of 0); false if there is none.
    pub fn add_session_panics(&self, user: &UserId, n: u32) -> bool {
        self.session_panics
            .iter()
            .find(|(only, _)| only.as_deref() == Some(user.subject()))
            .map(|(_, left)| left.fetch_add(n, Ordering::SeqCst))
            .is_some()
    }

    /// Whether `user`'s session is to panic now (and counts it).
    pub fn take_session_panic(&self, user: &UserId) -> bool {
        take_for(&self.session_panics, user)
    }

    /// The fault `agent`'s `attempt` in `user`'s run is made to have, if any.
    pub fn agent_fault(&self, agent: &str, user: &UserId, attempt: u32) -> Option<AgentFault> {
        self.agent_rules
            .iter()
            .find(|r| {
                r.agent == agent
                    && r.user.as_deref().is_none_or(|u| u == user.subject())
                    && r.attempts.is_none_or(|n| attempt <= n)
            })
            .map(|r| r.fault)
    }

    /// The faults around the batches of `agent`'s `attempt` in `user`'s run.
    pub fn batch_faults(&self, agent: &str, user: &UserId, attempt: u32) -> BatchFaults {
        let mut faults = BatchFaults::default();
        let rules = self
            .batch_rules
            .iter()
            .filter(|r| r.agent == agent && r.user.as_deref().is_none_or(|u| u == user.subject()));
        for rule in rules {
            match rule.fault {
                BatchFault::Slow(delay) => faults.delay = faults.delay.or(Some(delay)),
                BatchFault::FailAfter(n) if attempt == 1 => {
                    faults.fail_after = faults.fail_after.or(Some(n));
                }
                BatchFault::FailAfter(_) => {}
            }
        }
        faults
    }
}

/// Takes one from the first of `counts` that applies to `user` (its own, or any user's) and
/// has any left; false when none has.
fn take_for(counts: &[(Option<String>, AtomicU32)], user: &UserId) -> bool {
    counts
        .iter()
        .filter(|(only, _)| only.as_deref().is_none_or(|u| u == user.subject()))
        .any(|(_, left)| take_one(left))
}

/// Takes one from a fault's count; false when none is left.
fn take_one(left: &AtomicU32) -> bool {
    left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_counts() {
        let f = Faults::parse("store:fail:2, triage:slow:50@alice, data:panic:2, reporting:hang")
            .expect("valid");
        let alice = UserId::parse("alice").expect("valid");
        let bob = UserId::parse("bob").expect("valid");
        assert!(f.take_store_failure(&alice));
        assert!(f.take_store_failure(&bob));
        assert!(!f.take_store_failure(&alice));
        let mixed = Faults::parse("store:fail:1@alice,store:fail:1").expect("valid");
        assert!(mixed.take_store_failure(&alice));
        assert!(mixed.take_store_failure(&alice), "then the one of any user");
        assert!(!mixed.take_store_failure(&bob));
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
        assert_eq!(
            f.batch_faults("synthetic_data", &bob, 1),
            BatchFaults::default()
        );
    }

    #[test]
    fn batch_faults_apply_per_batch_and_leave_the_attempt_alone() {
        let f = Faults::parse(
            "synthetic_data:slow_batch:40, synthetic_data:fail_after_batches:2@alice",
        )
        .expect("valid");
        let alice = UserId::parse("alice").expect("valid");
        let bob = UserId::parse("bob").expect("valid");
        let delay = Some(Duration::from_millis(40));
        assert_eq!(
            f.batch_faults("synthetic_data", &alice, 1),
            BatchFaults {
                delay,
                fail_after: Some(2)
            }
        );
        assert_eq!(
            f.batch_faults("synthetic_data", &alice, 2),
            BatchFaults {
                delay,
                fail_after: None
            }
        );
        assert_eq!(
            f.batch_faults("synthetic_data", &bob, 1),
            BatchFaults {
                delay,
                fail_after: None
            }
        );
        assert_eq!(f.batch_faults("data", &alice, 1), BatchFaults::default());
        assert_eq!(f.agent_fault("synthetic_data", &alice, 1), None);
        assert!(Faults::parse("synthetic_data:slow_batch:x").is_err());
        assert!(Faults::parse("synthetic_data:fail_after_batches:-1").is_err());
    }
}
