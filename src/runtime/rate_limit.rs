//! `TokenBucket`: the per-user message rate limit (PROTOCOL.md §2: 60 `user_message`s a
//! minute, bursts of 20). Owned by the user's session, so it needs no lock.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
/// A user's message allowance: a message finding no token is refused `rate_limited`, with the wait.
pub struct TokenBucket {
    /// The burst: tokens never pile up past it, however long the user was quiet.
    capacity: f64,
    /// What is left to spend, fractional while it refills.
    tokens: f64,
    /// The refill rate (the per-minute limit over 60), so a quiet user regains tokens steadily.
    per_second: f64,
    /// When it last refilled, so the next take adds what accrued since.
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilled at `per_minute`.
    pub fn new(burst: u32, per_minute: u32) -> Self {
        Self {
            capacity: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            per_second: f64::from(per_minute) / 60.0,
            last: Instant::now(),
        }
    }

    /// Takes one token at `now`; false when none is left.
    pub fn take_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until a token is available.
    pub fn wait(&self) -> Duration {
        if self.tokens >= 1.0 || self.per_second <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((1.0 - self.tokens) / self.per_second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills_at_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(20, 60);
        assert!((0..20).all(|_| bucket.take_at(start)));
        assert!(!bucket.take_at(start));
        // 60 a minute: one more token after a second, not before.
        assert!(!bucket.take_at(start + Duration::from_millis(500)));
        assert!(bucket.take_at(start + Duration::from_millis(1_001)));
        assert!(!bucket.take_at(start + Duration::from_millis(1_002)));
        // Never more than the burst, however long it rested.
        let later = start + Duration::from_secs(3600);
        assert_eq!((0..30).filter(|_| bucket.take_at(later)).count(), 20);
    }
}
