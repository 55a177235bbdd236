//! The optimisation kinds of PROTOCOL.md §4, each a rule over one model × workload group of a
//! user's records and the price catalog: `model_substitution`, `prompt_caching`, `batching`,
//! `max_tokens_tuning`, `retry_waste`. Every number is reproducible by hand from the rules.
//! The rules read a group's facts from one pass over the window (`window.rs`): its
//! percentiles, its caps, and its costs by class of record.

use serde::{Deserialize, Serialize};

use super::catalog::{Catalog, ModelPrice};
use super::window::{CACHE_HIT, Class, FAILED, GroupFacts, NON_INTERACTIVE, WindowFacts};
use crate::usage::record::UsageRecord;

const MTOK: f64 = 1_000_000.0;

/// The rules' thresholds (configuration; PROTOCOL.md's defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// `model_substitution`: the group's p95 completion tokens at most this…
    pub substitution_max_p95_completion: i64,
    /// …its p95 prompt tokens at most this…
    pub substitution_max_p95_prompt: i64,
    /// …and its error rate at most this.
    pub substitution_max_error_rate: f64,
    /// `prompt_caching`: a prefix hash must occur at least this often.
    pub caching_min_repeats: usize,
    /// `max_tokens_tuning`: a cap at least this many times the group's p99 completion.
    pub max_tokens_factor: i64,
    /// `retry_waste`: the share of failed requests' spend that is avoidable.
    pub retry_avoidable_share: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            substitution_max_p95_completion: 50,
            substitution_max_p95_prompt: 2_000,
            substitution_max_error_rate: 0.05,
            caching_min_repeats: 10,
            max_tokens_factor: 4,
            retry_avoidable_share: 0.5,
        }
    }
}

/// Which rule found a recommendation: the `kind` on the wire, and what a plan orders by risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Short, simple, reliable traffic that the catalog's cheaper substitute can serve.
    ModelSubstitution,
    /// Prompt prefixes repeated often enough to read from the provider's cache.
    PromptCaching,
    /// Non-interactive traffic that can go through the batch API at a discount.
    Batching,
    /// Output caps far above what the answers use.
    MaxTokensTuning,
    /// Failed requests that were paid for.
    RetryWaste,
}

impl Kind {
    /// The kind's name on the wire (as it serialises): `model_substitution`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ModelSubstitution => "model_substitution",
            Self::PromptCaching => "prompt_caching",
            Self::Batching => "batching",
            Self::MaxTokensTuning => "max_tokens_tuning",
            Self::RetryWaste => "retry_waste",
        }
    }
}

/// One priced candidate, in PROTOCOL.md §4's shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// `rec-1`, `rec-2`, …: how a plan and the user name it.
    pub id: String,
    /// The rule that found it.
    pub kind: Kind,
    /// The workload of the group it changes.
    pub workload: String,
    /// The model of the group it changes.
    pub model: String,
    /// For `model_substitution`: the model to move to.
    pub target_model: Option<String>,
    /// How many records it changes.
    pub affected_requests: usize,
    /// What the changed records cost in the window.
    pub current_cost_usd: f64,
    /// What they would cost with the change.
    pub projected_cost_usd: f64,
    /// Current minus projected cost, in the window.
    pub savings_usd: f64,
    /// The saving as a share of the changed records' cost.
    pub savings_pct: f64,
    /// The saving scaled to 30 days, so windows of any length compare.
    pub monthly_savings_usd: f64,
    /// What the change does to latency, in words.
    pub latency_impact: String,
    /// How sure the rule is that the saving is real (0 to 1).
    pub confidence: f64,
    /// Why the rule applies, with the numbers it tested.
    pub rationale: String,
    /// For `max_tokens_tuning`: the cap to set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposed_max_tokens: Option<i64>,
    /// The group it changes: its index in `WindowFacts::groups`.
    #[serde(skip)]
    pub group: usize,
}

/// Every recommendation the window's facts support, in group order then kind order,
/// numbered `rec-1`, `rec-2`, …; `window_days` scales `monthly_savings_usd`.
pub fn recommend(
    facts: &WindowFacts,
    catalog: &Catalog,
    thresholds: &Thresholds,
    window_days: f64,
) -> Vec<Recommendation> {
    let mut out = Vec::new();
    for (index, facts) in facts.groups.iter().enumerate() {
        let Some(price) = catalog.price(&facts.model) else {
            continue;
        };
        let group = Group {
            facts,
            index,
            catalog,
            price,
        };
        out.extend(group.substitution(thresholds));
        out.extend(group.caching(thresholds));
        out.extend(group.batching());
        out.extend(group.max_tokens(thresholds));
        out.extend(group.retry_waste(thresholds));
    }
    for (n, rec) in out.iter_mut().enumerate() {
        rec.id = format!("rec-{}", n + 1);
        rec.monthly_savings_usd = rec.savings_usd * 30.0 / window_days.max(1.0);
    }
    out
}

/// One priced model × workload, as the rules read it.
struct Group<'a> {
    /// What one pass over its records found.
    facts: &'a GroupFacts,
    /// Its index in `WindowFacts::groups`.
    index: usize,
    /// Names the substitute's price.
    catalog: &'a Catalog,
    /// The group's model's price.
    price: &'a ModelPrice,
}

impl Group<'_> {
    /// What the records of the classes `keep` accepts cost.
    fn cost(&self, keep: impl Fn(Class) -> bool) -> f64 {
        self.facts.sum(keep, |sums| sums.cost)
    }

    #[allow(clippy::too_many_arguments)]
    fn recommendation(
        &self,
        kind: Kind,
        (affected, current): (u64, f64),
        savings: f64,
        target_model: Option<String>,
        latency_impact: &str,
        confidence: f64,
        rationale: String,
    ) -> Recommendation {
        Recommendation {
            id: String::new(),
            kind,
            workload: self.facts.workload.clone(),
            model: self.facts.model.clone(),
            target_model,
            affected_requests: affected as usize,
            current_cost_usd: current,
            projected_cost_usd: current - savings,
            savings_usd: savings,
            savings_pct: if current > 0.0 {
                100.0 * savings / current
            } else {
                0.0
            },
            monthly_savings_usd: 0.0,
            latency_impact: latency_impact.to_owned(),
            confidence,
            rationale,
            proposed_max_tokens: None,
            group: self.index,
        }
    }

    /// The records of the classes `keep` accepts and what they cost; `None` if there are none.
    fn members(&self, keep: impl Fn(Class) -> bool + Copy) -> Option<(u64, f64)> {
        let count = self.facts.count(keep);
        (count > 0).then(|| (count, self.cost(keep)))
    }

    fn substitution(&self, t: &Thresholds) -> Option<Recommendation> {
        let target = self.price.substitute.as_deref()?;
        self.catalog.price(target)?;
        let facts = self.facts;
        let (p95_completion, p95_prompt) = (facts.completion_p95, facts.prompt_p95);
        let error_rate = facts.errors as f64 / facts.requests.max(1) as f64;
        if p95_completion > t.substitution_max_p95_completion
            || p95_prompt > t.substitution_max_p95_prompt
            || error_rate > t.substitution_max_error_rate
        {
            return None;
        }
        let projected = facts.sum(|_| true, |sums| sums.substituted);
        let everyone = self.members(|_| true)?;
        let savings = everyone.1 - projected;
        let rationale = format!(
            "short, simple requests (p95 {p95_completion} completion and {p95_prompt} prompt \
             tokens, {:.1}% errors) that {target} can serve",
            100.0 * error_rate
        );
        Some(self.recommendation(
            Kind::ModelSubstitution,
            everyone,
            savings,
            Some(target.to_owned()),
            "smaller model: usually faster",
            0.7,
            rationale,
        ))
    }

    fn caching(&self, t: &Thresholds) -> Option<Recommendation> {
        self.price.cached_input_per_mtok?;
        let hits = |class: Class| class & CACHE_HIT != 0;
        let members = self.members(hits)?;
        let savings = self.facts.sum(hits, |sums| sums.caching_saving);
        let rationale = format!(
            "{} prompt prefix(es) repeated at least {} times; every use after the first \
             can read the prefix from the cache",
            self.facts.qualifying_prefixes, t.caching_min_repeats
        );
        Some(self.recommendation(
            Kind::PromptCaching,
            members,
            savings,
            None,
            "lower latency on cached prefixes",
            0.8,
            rationale,
        ))
    }

    fn batching(&self) -> Option<Recommendation> {
        let discount = self.price.batch_discount?;
        let members = self.members(|class| class & NON_INTERACTIVE != 0)?;
        let savings = members.1 * discount;
        let rationale = format!(
            "{} non-interactive requests can go through the batch API at {:.0}% off",
            members.0,
            100.0 * discount
        );
        Some(self.recommendation(
            Kind::Batching,
            members,
            savings,
            None,
            "async: results within 24 h",
            0.9,
            rationale,
        ))
    }

    fn max_tokens(&self, t: &Thresholds) -> Option<Recommendation> {
        let p99 = self.facts.completion_p99.max(1);
        let limit = t.max_tokens_factor.saturating_mul(p99);
        let (count, current) = self
            .facts
            .caps
            .range(limit..)
            .fold((0, 0.0), |(n, cost), (_, (uses, c))| (n + uses, cost + c));
        if count == 0 {
            return None;
        }
        let proposed = p99.saturating_mul(2).saturating_add(15) / 16 * 16;
        let rationale = format!(
            "{count} requests cap output at {}× or more the p99 of {p99} tokens; a cap of \
             {proposed} bounds tail latency and runaway cost without cutting real answers",
            t.max_tokens_factor
        );
        let mut rec = self.recommendation(
            Kind::MaxTokensTuning,
            (count, current),
            0.0,
            None,
            "shorter tail latency",
            0.6,
            rationale,
        );
        rec.proposed_max_tokens = Some(proposed);
        Some(rec)
    }

    fn retry_waste(&self, t: &Thresholds) -> Option<Recommendation> {
        let members = self.members(|class| class & FAILED != 0)?;
        let savings = members.1 * t.retry_avoidable_share;
        let rationale = format!(
            "{} failed requests were paid for; fixing their cause avoids an estimated {:.0}% of \
             that spend",
            members.0,
            100.0 * t.retry_avoidable_share
        );
        Some(self.recommendation(
            Kind::RetryWaste,
            members,
            savings,
            None,
            "fewer retries: lower tail latency",
            0.5,
            rationale,
        ))
    }
}

/// The record's tokens at `target`'s prices.
pub fn substitute_cost(r: &UsageRecord, target: &ModelPrice) -> f64 {
    target.token_cost(r.prompt_tokens, r.cached_tokens, r.completion_tokens)
}

/// What reading a `prefix`-token prefix from the cache saves on `r`:
/// `(prefix − cached_tokens) × (input − cached_input)` per million, never below 0.
pub fn caching_saving(r: &UsageRecord, prefix: i64, input: f64, cached_input: f64) -> f64 {
    (prefix - r.cached_tokens).max(0) as f64 * (input - cached_input).max(0.0) / MTOK
}
