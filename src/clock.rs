//! Wall-clock time as PROTOCOL.md states it: Unix epoch milliseconds.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in Unix epoch milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
