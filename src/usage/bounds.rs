//! The bounds a usage record's numbers must keep to be stored (issue 12): a token count or a
//! latency of at most 10⁹ (sums of ten million of them stay far inside an `i64`), a cost of at
//! most $1,000,000 per request, a time from 2000-01-01 to one day after now (a record dated
//! 9999 would become "the latest" and hide the real data from every default window). Each
//! refusal is worded as the row error the user sees.

/// The largest token count, latency or cap a record may carry.
pub const MAX_COUNT: i64 = 1_000_000_000;

/// The largest cost of one request, in USD.
pub const MAX_COST_USD: f64 = 1_000_000.0;

/// 2000-01-01T00:00:00Z in epoch milliseconds: nothing older is an LLM request.
pub const EARLIEST_TS: i64 = 946_684_800_000;

/// How far past now a record's time may be (clocks differ).
pub const FUTURE_SLACK_MS: i64 = 86_400_000;

/// A count (tokens, latency, cap) within `MAX_COUNT`.
pub fn count(n: i64) -> Result<i64, String> {
    if n > MAX_COUNT {
        return Err(format!("must be at most {MAX_COUNT}, got {n}"));
    }
    Ok(n)
}

/// A cost within `MAX_COST_USD`.
pub fn cost(usd: f64) -> Result<f64, String> {
    if usd > MAX_COST_USD {
        return Err(format!("must be at most {MAX_COST_USD}, got {usd}"));
    }
    Ok(usd)
}

/// A time from `EARLIEST_TS` to a day after `now_ms`.
pub fn timestamp(ms: i64, now_ms: i64) -> Result<i64, String> {
    if ms < EARLIEST_TS {
        return Err(format!("must be 2000-01-01 or later, got {ms}"));
    }
    if ms > now_ms.saturating_add(FUTURE_SLACK_MS) {
        return Err(format!("must be at most a day after now, got {ms}"));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_hold_at_their_edges() {
        assert_eq!(count(MAX_COUNT), Ok(MAX_COUNT));
        assert!(count(MAX_COUNT + 1).is_err());
        assert!(count(i64::MAX).is_err());
        assert_eq!(cost(MAX_COST_USD), Ok(MAX_COST_USD));
        assert!(cost(1e308).is_err());
        let now = 1_800_000_000_000;
        assert_eq!(timestamp(EARLIEST_TS, now), Ok(EARLIEST_TS));
        assert!(timestamp(EARLIEST_TS - 1, now).is_err());
        assert_eq!(
            timestamp(now + FUTURE_SLACK_MS, now),
            Ok(now + FUTURE_SLACK_MS)
        );
        assert!(timestamp(now + FUTURE_SLACK_MS + 1, now).is_err());
        assert!(timestamp(253_402_300_799_000, now).is_err(), "year 9999");
    }
}
