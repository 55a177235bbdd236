//! What one pass over a window leaves for the rules (`optimize.rs`) and the plan (`plan.rs`)
//! to price from, per priced model × workload: percentiles, caps in use, and sums by class of
//! record — the three things that decide which changes reach a record (`Class`). Made by
//! `window.rs`; read-only after.

use std::collections::BTreeMap;

/// Sums over the records of one class of a group (see the module comment): what they cost,
/// and what they would cost after each change that can reach them.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct ClassSums {
    /// Records in the class.
    pub requests: u64,
    /// What they cost (billed, or priced by the catalog).
    pub cost: f64,
    /// Their tokens at the substitute's prices.
    pub substituted: f64,
    /// Cache hits: their cost with the prefix read from the cache, never below 0.
    pub cached: f64,
    /// Cache hits: at the substitute's prices with the prefix from its cache.
    pub substituted_cached: f64,
    /// Cache hits: what the cache saves at the group's prices (not floored).
    pub caching_saving: f64,
}

impl ClassSums {
    /// Adds `other`'s sums.
    pub fn add(&mut self, other: &ClassSums) {
        self.requests += other.requests;
        self.cost += other.cost;
        self.substituted += other.substituted;
        self.cached += other.cached;
        self.substituted_cached += other.substituted_cached;
        self.caching_saving += other.caching_saving;
    }
}

/// Which changes can reach a record: bit 0 a cache hit, bit 1 non-interactive, bit 2 failed.
pub type Class = usize;
/// A cache hit: a use of a qualifying prefix after its first.
pub const CACHE_HIT: Class = 1;
/// Marked `"interactive": false`.
pub const NON_INTERACTIVE: Class = 2;
/// `status = error`.
pub const FAILED: Class = 4;

/// What the rules and the plan need of one priced model × workload.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupFacts {
    /// The group's model.
    pub model: String,
    /// The group's workload.
    pub workload: String,
    /// Records in the group.
    pub requests: u64,
    /// Nearest-rank p95 of prompt tokens.
    pub prompt_p95: i64,
    /// Nearest-rank p95 of completion tokens.
    pub completion_p95: i64,
    /// Nearest-rank p99 of completion tokens.
    pub completion_p99: i64,
    /// Failed requests.
    pub errors: u64,
    /// Prefixes used often enough to cache.
    pub qualifying_prefixes: usize,
    /// Requests by the cap they set: how many, and what they cost.
    pub caps: BTreeMap<i64, (u64, f64)>,
    /// Sums by class (index: a `Class`).
    pub classes: [ClassSums; 8],
}

impl GroupFacts {
    /// The sum of `field` over the classes `keep` accepts.
    pub fn sum(&self, keep: impl Fn(Class) -> bool, field: impl Fn(&ClassSums) -> f64) -> f64 {
        (0..8)
            .filter(|class| keep(*class))
            .filter_map(|class| self.classes.get(class))
            .fold(0.0, |total, sums| total + field(sums))
    }

    /// The records in the classes `keep` accepts.
    pub fn count(&self, keep: impl Fn(Class) -> bool) -> u64 {
        (0..8)
            .filter(|class| keep(*class))
            .filter_map(|class| self.classes.get(class))
            .map(|sums| sums.requests)
            .sum()
    }
}

/// What the rules and the plan price from: the window's priced groups, by model then workload.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowFacts {
    /// The priced groups (a model the catalog knows), ordered by model then workload.
    pub groups: Vec<GroupFacts>,
}
