//! `RestartIntensity`: how a run's supervisor decides whether a failed agent is restarted —
//! one-for-one, at most `max_restarts` failures within `restart_period` — and how long it
//! waits first (exponential backoff, capped, with jitter so many runs do not restart in step).
//! Plain state, unit-tested below; the supervisor owns one per run.

use std::time::{Duration, Instant};

/// The failures of the agent being run, within the restart period.
#[derive(Debug, Clone)]
pub struct RestartIntensity {
    /// At most this many failures within `period` are restarted.
    max_restarts: u32,
    /// How far back failures count, so failures spread over a long run never add up to a give-up.
    period: Duration,
    /// The first wait, doubled per further restart, so a failing dependency gets time to recover.
    backoff_base: Duration,
    /// The most the wait grows to, so a late restart does not stall the run for long.
    backoff_cap: Duration,
    /// When the current agent failed, within the period.
    failures: Vec<Instant>,
}

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Start the agent again after this wait.
    Restart(Duration),
    /// The intensity is reached: the agent's fallback, or the run fails.
    GiveUp,
}

impl RestartIntensity {
    /// A clean record with the configured limits; the supervisor keeps one per run.
    pub fn new(
        max_restarts: u32,
        period: Duration,
        backoff_base: Duration,
        backoff_cap: Duration,
    ) -> Self {
        Self {
            max_restarts,
            period,
            backoff_base,
            backoff_cap,
            failures: Vec::new(),
        }
    }

    /// The next agent starts with a clean record.
    pub fn next_agent(&mut self) {
        self.failures.clear();
    }

    /// The current agent failed at `now`.
    pub fn failed(&mut self, now: Instant) -> AfterFailure {
        let period = self.period;
        self.failures.retain(|t| now.duration_since(*t) < period);
        self.failures.push(now);
        let restart = self.failures.len() as u32;
        if restart > self.max_restarts {
            return AfterFailure::GiveUp;
        }
        AfterFailure::Restart(self.backoff(restart - 1))
    }

    /// `backoff_base × 2ⁿ`, capped at `backoff_cap`, plus up to 10% jitter.
    fn backoff(&self, n: u32) -> Duration {
        let base = self.backoff_base.as_millis() as u64;
        let capped = base
            .saturating_mul(1u64 << n.min(20))
            .min(self.backoff_cap.as_millis() as u64);
        let jitter = (uuid::Uuid::new_v4().as_u128() % u128::from(capped / 10 + 1)) as u64;
        Duration::from_millis(capped + jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intensity() -> RestartIntensity {
        let ms = Duration::from_millis;
        RestartIntensity::new(2, ms(1000), ms(100), ms(150))
    }

    fn wait(after: AfterFailure) -> Duration {
        match after {
            AfterFailure::Restart(wait) => wait,
            AfterFailure::GiveUp => panic!("expected a restart"),
        }
    }

    #[test]
    fn restarts_up_to_the_intensity_with_capped_backoff() {
        let mut restarts = intensity();
        let now = Instant::now();
        let first = wait(restarts.failed(now));
        assert!((100..=110).contains(&first.as_millis()), "{first:?}");
        let second = wait(restarts.failed(now));
        assert!(
            (150..=165).contains(&second.as_millis()),
            "capped: {second:?}"
        );
        assert_eq!(restarts.failed(now), AfterFailure::GiveUp);
    }

    #[test]
    fn old_failures_and_other_agents_do_not_count() {
        let mut restarts = intensity();
        let start = Instant::now();
        restarts.failed(start);
        restarts.failed(start);
        let later = start + Duration::from_millis(1500);
        assert!(matches!(restarts.failed(later), AfterFailure::Restart(_)));
        restarts.next_agent();
        assert!(matches!(restarts.failed(later), AfterFailure::Restart(_)));
        assert!(matches!(restarts.failed(later), AfterFailure::Restart(_)));
    }
}
