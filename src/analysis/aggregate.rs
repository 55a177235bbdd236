//! Aggregates of a user's usage in a window, per model × workload and in total: requests,
//! tokens, spend (priced by the catalog where a record has no `cost_usd`), nearest-rank
//! p50/p95/p99 latency, error rate, prefix-repeat share, output-cap utilisation and
//! non-interactive share, and the counts and percentiles the optimisation rules test (so a
//! report can say why a rule did not apply). The types are here; one pass over the records
//! (`window.rs`) computes them.

use serde::{Deserialize, Serialize};

use super::catalog::Catalog;
use super::optimize::Thresholds;
use super::window::WindowPass;
use crate::usage::record::UsageRecord;

/// Records below which an analysis is `partial`.
pub const SUFFICIENT_RECORDS: usize = 100;

/// The aggregates of one model × workload: what a report's table shows and what the rules test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroupStats {
    /// The model the records name.
    pub model: String,
    /// The workload the records name.
    pub workload: String,
    /// Records in the group.
    pub requests: usize,
    /// Prompt tokens of all its records.
    pub prompt_tokens: i64,
    /// Completion tokens of all its records.
    pub completion_tokens: i64,
    /// Prompt tokens read from a provider's cache.
    pub cached_tokens: i64,
    /// Spend of the records that could be priced.
    pub spend_usd: f64,
    /// Records of a model the catalog does not know and without `cost_usd`.
    pub unpriced_requests: usize,
    /// Nearest-rank p50 of `latency_ms`.
    pub latency_p50_ms: i64,
    /// Nearest-rank p95 of `latency_ms`.
    pub latency_p95_ms: i64,
    /// Nearest-rank p99 of `latency_ms`.
    pub latency_p99_ms: i64,
    /// Share of requests with `status = error`.
    pub error_rate: f64,
    /// Share of requests whose prompt prefix hash occurs more than once in the group.
    pub prefix_repeat_share: f64,
    /// Mean of completion / max_tokens over the requests that set a cap (`None` if none do).
    pub output_cap_utilisation: Option<f64>,
    /// Share of requests that could run as batch jobs.
    pub non_interactive_share: f64,
    /// Nearest-rank p95 of `prompt_tokens`.
    pub prompt_tokens_p95: i64,
    /// Nearest-rank p95 of `completion_tokens`.
    pub completion_tokens_p95: i64,
    /// Nearest-rank p99 of `completion_tokens`.
    pub completion_tokens_p99: i64,
    /// Requests with `status = error`.
    pub errors: usize,
    /// Requests marked `"interactive": false`.
    pub non_interactive_requests: usize,
    /// Requests that carry a `prompt_prefix_hash`.
    pub prefix_hashed_requests: usize,
    /// How many requests share the group's most used prompt prefix hash (0 without hashes).
    pub top_prefix_uses: usize,
    /// Requests that set `max_tokens`.
    pub capped_requests: usize,
    /// The largest `max_tokens` set (`None` if no request sets one).
    pub max_tokens_largest: Option<i64>,
}

/// The window's totals, all groups together.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Totals {
    /// Records in the window.
    pub requests: usize,
    /// Requests that could not be priced (counted in `requests`, not in `spend_usd`).
    pub unpriced_requests: usize,
    /// Prompt tokens of all records.
    pub prompt_tokens: i64,
    /// Completion tokens of all records.
    pub completion_tokens: i64,
    /// Spend of the records that could be priced.
    pub spend_usd: f64,
}

/// Everything `aggregate` works out for one window of a user's records.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Aggregates {
    /// The window's totals.
    pub totals: Totals,
    /// Sorted by spend, largest first.
    pub groups: Vec<GroupStats>,
    /// Models priced by tokens only (not in the catalog), named in reports.
    pub unpriced_models: Vec<String>,
    /// First to last record, in days, at least 1.
    pub window_days: f64,
    /// `none`, `partial` or `sufficient`.
    pub data_sufficiency: &'static str,
}

/// The nearest-rank percentile of sorted `values` (`p` in 0..=100).
/// A rank past the end (`p` above 100) is the largest value; no values is 0.
pub fn nearest_rank(sorted: &[i64], p: f64) -> i64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1))
        .or(sorted.last())
        .copied()
        .unwrap_or(0)
}

/// The aggregates of `records` in memory, priced with `catalog` where a record has no
/// `cost_usd` (one `WindowPass` over them).
pub fn aggregate(records: &[UsageRecord], catalog: &Catalog) -> Aggregates {
    WindowPass::of_records(records, catalog, &Thresholds::default()).0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(model: &str, workload: &str, latency: i64, ts: i64) -> UsageRecord {
        UsageRecord {
            external_id: None,
            ts,
            model: model.into(),
            provider: None,
            workload: workload.into(),
            prompt_tokens: 1_000,
            completion_tokens: 100,
            cached_tokens: 0,
            latency_ms: latency,
            max_tokens: None,
            cost_usd: None,
            prompt_prefix_hash: None,
            interactive: true,
            is_error: latency > 900,
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<i64> = (1..=100).collect();
        assert_eq!(nearest_rank(&values, 50.0), 50);
        assert_eq!(nearest_rank(&values, 95.0), 95);
        assert_eq!(nearest_rank(&[7], 99.0), 7);
        assert_eq!(nearest_rank(&[1, 2, 3, 4], 50.0), 2);
        assert_eq!(nearest_rank(&[], 50.0), 0);
    }

    #[test]
    fn groups_totals_and_unpriced_models() {
        let catalog = Catalog::builtin();
        let mut records: Vec<UsageRecord> = (1..=10)
            .map(|i| record("gpt-4o", "chat", i * 100, i * 86_400_000))
            .collect();
        records.push(record("homegrown-llm", "chat", 50, 0));
        let a = aggregate(&records, &catalog);
        assert_eq!(a.totals.requests, 11);
        // gpt-4o: 10 × (1,000 × 2.50 + 100 × 10.00) / 1e6 = 10 × 0.0035 = $0.035.
        assert!((a.totals.spend_usd - 0.035).abs() < 1e-12);
        let gpt = &a.groups[0];
        assert_eq!(
            (gpt.latency_p50_ms, gpt.latency_p95_ms, gpt.latency_p99_ms),
            (500, 1000, 1000)
        );
        assert!((gpt.error_rate - 0.1).abs() < 1e-12);
        assert_eq!(a.unpriced_models, ["homegrown-llm"]);
        assert_eq!(a.groups[1].unpriced_requests, 1);
        assert_eq!(a.window_days, 10.0);
        assert_eq!(a.data_sufficiency, "partial");
        assert_eq!(gpt.prefix_repeat_share, 0.0);
        assert_eq!(gpt.output_cap_utilisation, None);
        assert_eq!(gpt.non_interactive_share, 0.0);
        assert_eq!(aggregate(&[], &catalog).data_sufficiency, "none");
    }
}
