//! Choosing and pricing a plan: the recommendations that meet the user's goals at least risk,
//! and what they save together.
//!
//! "Least risk": candidates are taken in increasing order of risk — prompt caching (no
//! change in behaviour), batching (only traffic nobody waits for), retry waste (an engineering
//! fix, estimated), model substitution (a different model answers) — and, within a kind, the
//! larger saving first; the plan stops as soon as the cost goal is met. `max_tokens_tuning`
//! saves nothing billed and joins the plan when a latency goal is stated.
//!
//! Savings of a plan are never counted twice: each record gets the selected changes in the
//! order substitution → caching → batching → retry, and the plan saves the window's cost
//! before minus after.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::catalog::Catalog;
use super::optimize::{Kind, Recommendation, Thresholds, caching_saving, substitute_cost};
use crate::usage::record::UsageRecord;

/// A goal in PROTOCOL.md §4's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Goal {
    /// `cost`, `latency_p95_ms` or `error_rate`.
    pub metric: String,
    /// A relative target: −30 is "30% less".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_pct: Option<f64>,
    /// An absolute target in the metric's unit: 2000 is "at most 2000 ms".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_value: Option<f64>,
    /// 1 is the goal that matters most.
    pub priority: u32,
    /// Where the goal comes from: what the user said, or which default.
    pub rationale: String,
}

/// The chosen recommendations and what they achieve together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The ids of the recommendations chosen, in the order taken.
    pub selected: Vec<String>,
    /// What they save together in the window, never counted twice.
    pub savings_usd: f64,
    /// The saving as a share of the window's spend.
    pub savings_pct: f64,
    /// Whether the cost goal (if any) is reached.
    pub goals_met: bool,
    /// Percentage points short of the cost goal (0 when met).
    pub shortfall_pct: f64,
    /// One instruction per chosen recommendation, for the report.
    pub steps: Vec<String>,
}

/// The window's cost before minus after applying `selected` to every record they change.
pub fn plan_savings(
    records: &[UsageRecord],
    catalog: &Catalog,
    thresholds: &Thresholds,
    selected: &[&Recommendation],
) -> f64 {
    /// What the selected recommendations do to one record.
    #[derive(Default)]
    struct Changes<'a> {
        /// The model it moves to.
        substitute: Option<&'a str>,
        /// The prefix length read from the cache.
        prefix: Option<i64>,
        /// Whether it goes through the batch API.
        batch: bool,
        /// Whether its failure is fixed.
        retry: bool,
    }
    let mut changes: HashMap<usize, Changes> = HashMap::new();
    for rec in selected {
        for (n, &i) in rec.records.iter().enumerate() {
            let c = changes.entry(i).or_default();
            match rec.kind {
                Kind::ModelSubstitution => c.substitute = rec.target_model.as_deref(),
                Kind::PromptCaching => c.prefix = rec.prefixes.get(n).copied(),
                Kind::Batching => c.batch = true,
                Kind::RetryWaste => c.retry = true,
                Kind::MaxTokensTuning => {}
            }
        }
    }
    let mut saved = 0.0;
    // In record order, so the sum is the same on every call.
    for (i, record) in records.iter().enumerate() {
        let Some(c) = changes.remove(&i) else {
            continue;
        };
        let Some(before) = catalog.cost(record) else {
            continue;
        };
        let mut price = catalog.price(&record.model);
        let mut cost = before;
        if let Some(target) = c.substitute.and_then(|t| catalog.price(t)) {
            cost = substitute_cost(record, target);
            price = Some(target);
        }
        if let (Some(prefix), Some(p)) = (c.prefix, price)
            && let Some(cached) = p.cached_input_per_mtok
        {
            cost = (cost - caching_saving(record, prefix, p.input_per_mtok, cached)).max(0.0);
        }
        if c.batch {
            cost *= 1.0 - price.and_then(|p| p.batch_discount).unwrap_or(0.0);
        }
        if c.retry {
            cost *= 1.0 - thresholds.retry_avoidable_share;
        }
        saved += before - cost;
    }
    saved
}

/// Lower is safer.
fn risk(kind: Kind) -> u8 {
    match kind {
        Kind::MaxTokensTuning => 0,
        Kind::PromptCaching => 1,
        Kind::Batching => 2,
        Kind::RetryWaste => 3,
        Kind::ModelSubstitution => 4,
    }
}

/// Picks the plan for `goals` from `candidates` (see the module comment).
pub fn choose(
    records: &[UsageRecord],
    catalog: &Catalog,
    thresholds: &Thresholds,
    candidates: &[Recommendation],
    goals: &[Goal],
    total_spend: f64,
) -> Plan {
    let pct = |saved: f64| {
        if total_spend > 0.0 {
            100.0 * saved / total_spend
        } else {
            0.0
        }
    };
    let cost_goal = goals
        .iter()
        .find(|g| g.metric == "cost")
        .and_then(|g| g.target_pct)
        .map(|t| -t.min(0.0));
    let latency_goal = goals.iter().any(|g| g.metric == "latency_p95_ms");
    let mut order: Vec<&Recommendation> = candidates.iter().collect();
    order.sort_by(|a, b| {
        risk(a.kind)
            .cmp(&risk(b.kind))
            .then(b.savings_usd.total_cmp(&a.savings_usd))
    });
    let mut selected: Vec<&Recommendation> = Vec::new();
    let mut saved = 0.0;
    for rec in order {
        if rec.kind == Kind::MaxTokensTuning {
            if latency_goal {
                selected.push(rec);
            }
            continue;
        }
        if cost_goal.is_some_and(|need| pct(saved) >= need) || rec.savings_usd <= 0.0 {
            continue;
        }
        selected.push(rec);
        saved = plan_savings(records, catalog, thresholds, &selected);
    }
    let achieved = pct(saved);
    let shortfall = cost_goal.map_or(0.0, |need| (need - achieved).max(0.0));
    Plan {
        selected: selected.iter().map(|r| r.id.clone()).collect(),
        savings_usd: saved,
        savings_pct: achieved,
        goals_met: shortfall <= 0.0,
        shortfall_pct: shortfall,
        steps: selected.iter().map(|r| step(r)).collect(),
    }
}

fn step(rec: &Recommendation) -> String {
    let what = match rec.kind {
        Kind::PromptCaching => format!(
            "Enable prompt caching for {} on {}: put the shared prefix first and mark it cacheable",
            rec.workload, rec.model
        ),
        Kind::Batching => format!(
            "Send the {} non-interactive {} requests of {} through the batch API",
            rec.affected_requests, rec.model, rec.workload
        ),
        Kind::RetryWaste => format!(
            "Find and fix the cause of the {} failed {} requests of {}; retry with backoff",
            rec.affected_requests, rec.model, rec.workload
        ),
        Kind::ModelSubstitution => format!(
            "Route {} from {} to {}; compare answers on a sample first",
            rec.workload,
            rec.model,
            rec.target_model.as_deref().unwrap_or("a smaller model")
        ),
        Kind::MaxTokensTuning => format!(
            "Cap max_tokens at {} for {} on {}",
            rec.proposed_max_tokens.unwrap_or(0),
            rec.workload,
            rec.model
        ),
    };
    format!("{what} ({}).", rec.id)
}
