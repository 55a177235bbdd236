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
//! before minus after. A record's changes depend only on its group and its class (cache hit,
//! non-interactive, failed: `window.rs`), so each group is priced from its eight class sums,
//! and adding a recommendation re-prices only its group.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::catalog::Catalog;
use super::optimize::{Kind, Recommendation, Thresholds};
use super::window::{CACHE_HIT, FAILED, GroupFacts, NON_INTERACTIVE, WindowFacts};
use crate::protocol::event_lists::{capped, is_zero};

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

/// The chosen recommendations and what they achieve together. On the wire `selected` and
/// `steps` carry their first `EVENT_LIST_LIMIT` items, `selected_omitted` and `steps_omitted`
/// counting the rest.
#[derive(Debug, Clone, PartialEq)]
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

impl Serialize for Plan {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (selected, selected_omitted) = capped(&self.selected);
        let (steps, steps_omitted) = capped(&self.steps);
        PlanWire {
            selected,
            selected_omitted,
            savings_usd: self.savings_usd,
            savings_pct: self.savings_pct,
            goals_met: self.goals_met,
            shortfall_pct: self.shortfall_pct,
            steps,
            steps_omitted,
        }
        .serialize(s)
    }
}

/// `Plan` as events carry it.
#[derive(Serialize)]
struct PlanWire<'a> {
    selected: &'a [String],
    #[serde(skip_serializing_if = "is_zero")]
    selected_omitted: usize,
    savings_usd: f64,
    savings_pct: f64,
    goals_met: bool,
    shortfall_pct: f64,
    steps: &'a [String],
    #[serde(skip_serializing_if = "is_zero")]
    steps_omitted: usize,
}

/// The kinds of change selected for one group.
#[derive(Debug, Default, Clone, Copy)]
struct Selected {
    substitution: bool,
    caching: bool,
    batching: bool,
    retry: bool,
}

impl Selected {
    fn add(&mut self, kind: Kind) {
        match kind {
            Kind::ModelSubstitution => self.substitution = true,
            Kind::PromptCaching => self.caching = true,
            Kind::Batching => self.batching = true,
            Kind::RetryWaste => self.retry = true,
            Kind::MaxTokensTuning => {}
        }
    }
}

/// What `selected` saves on `group`: its cost before minus after, class by class.
fn group_savings(
    group: &GroupFacts,
    catalog: &Catalog,
    thresholds: &Thresholds,
    selected: Selected,
) -> f64 {
    let Some(own) = catalog.price(&group.model) else {
        return 0.0;
    };
    let target = own.substitute.as_deref().and_then(|t| catalog.price(t));
    let substituted = selected.substitution && target.is_some();
    let price = if substituted { target } else { Some(own) };
    let discount = price.and_then(|p| p.batch_discount).unwrap_or(0.0);
    let mut saved = 0.0;
    for (class, sums) in group.classes.iter().enumerate() {
        if sums.requests == 0 {
            continue;
        }
        let hit = selected.caching && class & CACHE_HIT != 0;
        let mut cost = match (substituted, hit) {
            (true, true) => sums.substituted_cached,
            (true, false) => sums.substituted,
            (false, true) => sums.cached,
            (false, false) => sums.cost,
        };
        if selected.batching && class & NON_INTERACTIVE != 0 {
            cost *= 1.0 - discount;
        }
        if selected.retry && class & FAILED != 0 {
            cost *= 1.0 - thresholds.retry_avoidable_share;
        }
        saved += sums.cost - cost;
    }
    saved
}

/// The window's cost before minus after applying `selected` to every record they change.
pub fn plan_savings(
    facts: &WindowFacts,
    catalog: &Catalog,
    thresholds: &Thresholds,
    selected: &[&Recommendation],
) -> f64 {
    let mut by_group: HashMap<usize, Selected> = HashMap::new();
    for rec in selected {
        by_group.entry(rec.group).or_default().add(rec.kind);
    }
    // In group order, so the sum is the same on every call.
    let mut groups: Vec<(usize, Selected)> = by_group.into_iter().collect();
    groups.sort_by_key(|(index, _)| *index);
    groups
        .into_iter()
        .filter_map(|(index, chosen)| Some((facts.groups.get(index)?, chosen)))
        .fold(0.0, |total, (group, chosen)| {
            total + group_savings(group, catalog, thresholds, chosen)
        })
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
    facts: &WindowFacts,
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
    // What each group's selection saves so far: a new recommendation re-prices its group only.
    let mut chosen: HashMap<usize, (Selected, f64)> = HashMap::new();
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
        let Some(group) = facts.groups.get(rec.group) else {
            continue;
        };
        let (kinds, group_saved) = chosen.entry(rec.group).or_default();
        kinds.add(rec.kind);
        let now = group_savings(group, catalog, thresholds, *kinds);
        saved += now - *group_saved;
        *group_saved = now;
    }
    // Summed afresh in group order: the same on every call.
    let saved = plan_savings(facts, catalog, thresholds, &selected);
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
