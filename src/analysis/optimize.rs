//! The optimisation kinds of PROTOCOL.md §4, each a rule over one model × workload group of a
//! user's records and the price catalog: `model_substitution`, `prompt_caching`, `batching`,
//! `max_tokens_tuning`, `retry_waste`. Every number is reproducible by hand from the rules.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::aggregate::nearest_rank;
use super::catalog::{Catalog, ModelPrice};
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
    /// Indexes (into the analysed records) of the records it changes.
    #[serde(skip)]
    pub records: Vec<usize>,
    /// For `prompt_caching`: each changed record's prefix length, aligned with `records`.
    #[serde(skip)]
    pub prefixes: Vec<i64>,
}

/// Every recommendation the records support, in group order then kind order, numbered
/// `rec-1`, `rec-2`, …; `window_days` scales `monthly_savings_usd`.
pub fn recommend(
    records: &[UsageRecord],
    catalog: &Catalog,
    thresholds: &Thresholds,
    window_days: f64,
) -> Vec<Recommendation> {
    let mut groups: BTreeMap<(&str, &str), Vec<Member>> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        groups
            .entry((r.model.as_str(), r.workload.as_str()))
            .or_default()
            .push((i, r));
    }
    let mut out = Vec::new();
    for ((model, workload), members) in groups {
        let Some(price) = catalog.price(model) else {
            continue;
        };
        let group = Group {
            members: &members,
            catalog,
            price,
            model,
            workload,
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

/// An analysed record with its index among the analysed records (what a recommendation names).
type Member<'a> = (usize, &'a UsageRecord);

/// The records of one model × workload.
struct Group<'a> {
    /// The group's records, in the order analysed.
    members: &'a [Member<'a>],
    /// Prices every record and names the substitute's price.
    catalog: &'a Catalog,
    /// The group's model's price.
    price: &'a ModelPrice,
    /// The group's model, as the records name it.
    model: &'a str,
    /// The group's workload.
    workload: &'a str,
}

impl<'a> Group<'a> {
    fn cost(&self, members: &[Member]) -> f64 {
        members
            .iter()
            .filter_map(|(_, r)| self.catalog.cost(r))
            .sum()
    }

    fn percentile(&self, p: f64, field: impl Fn(&UsageRecord) -> i64) -> i64 {
        let mut values: Vec<i64> = self.members.iter().map(|(_, r)| field(r)).collect();
        values.sort_unstable();
        nearest_rank(&values, p)
    }

    #[allow(clippy::too_many_arguments)]
    fn recommendation(
        &self,
        kind: Kind,
        members: &[Member],
        savings: f64,
        target_model: Option<String>,
        latency_impact: &str,
        confidence: f64,
        rationale: String,
    ) -> Recommendation {
        let current = self.cost(members);
        Recommendation {
            id: String::new(),
            kind,
            workload: self.workload.to_owned(),
            model: self.model.to_owned(),
            target_model,
            affected_requests: members.len(),
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
            records: members.iter().map(|(i, _)| *i).collect(),
            prefixes: Vec::new(),
        }
    }

    /// The group's records that `keep` accepts, `None` if there are none.
    fn members_where(&self, keep: impl Fn(&UsageRecord) -> bool) -> Option<Vec<Member<'a>>> {
        let members: Vec<Member> = self
            .members
            .iter()
            .copied()
            .filter(|(_, r)| keep(r))
            .collect();
        (!members.is_empty()).then_some(members)
    }

    fn substitution(&self, t: &Thresholds) -> Option<Recommendation> {
        let target = self.price.substitute.as_deref()?;
        let target_price = self.catalog.price(target)?;
        let p95_completion = self.percentile(95.0, |r| r.completion_tokens);
        let p95_prompt = self.percentile(95.0, |r| r.prompt_tokens);
        let errors = self.members.iter().filter(|(_, r)| r.is_error).count();
        let error_rate = errors as f64 / self.members.len() as f64;
        if p95_completion > t.substitution_max_p95_completion
            || p95_prompt > t.substitution_max_p95_prompt
            || error_rate > t.substitution_max_error_rate
        {
            return None;
        }
        let projected: f64 = self
            .members
            .iter()
            .map(|(_, r)| substitute_cost(r, target_price))
            .sum();
        let savings = self.cost(self.members) - projected;
        let rationale = format!(
            "short, simple requests (p95 {p95_completion} completion and {p95_prompt} prompt \
             tokens, {:.1}% errors) that {target} can serve",
            100.0 * error_rate
        );
        Some(self.recommendation(
            Kind::ModelSubstitution,
            self.members,
            savings,
            Some(target.to_owned()),
            "smaller model: usually faster",
            0.7,
            rationale,
        ))
    }

    fn caching(&self, t: &Thresholds) -> Option<Recommendation> {
        let cached_price = self.price.cached_input_per_mtok?;
        let mut by_prefix: HashMap<&str, Vec<Member>> = HashMap::new();
        for &(i, r) in self.members {
            if let Some(hash) = &r.prompt_prefix_hash {
                by_prefix.entry(hash).or_default().push((i, r));
            }
        }
        let mut changed: Vec<(Member, i64)> = Vec::new();
        let mut savings = 0.0;
        let mut prefixes = 0;
        for (_, mut uses) in by_prefix {
            if uses.len() < t.caching_min_repeats {
                continue;
            }
            prefixes += 1;
            uses.sort_by_key(|&(i, r)| (r.ts, i));
            let prefix = uses.iter().map(|(_, r)| r.prompt_tokens).min().unwrap_or(0);
            for &(i, r) in uses.iter().skip(1) {
                let input = self.price.input_per_mtok;
                savings += caching_saving(r, prefix, input, cached_price);
                changed.push(((i, r), prefix));
            }
        }
        if changed.is_empty() {
            return None;
        }
        // By index alone: a record has one prefix hash, so it is changed at most once.
        changed.sort_unstable_by_key(|((i, _), _)| *i);
        let members: Vec<Member> = changed.iter().map(|(m, _)| *m).collect();
        let rationale = format!(
            "{prefixes} prompt prefix(es) repeated at least {} times; every use after the first \
             can read the prefix from the cache",
            t.caching_min_repeats
        );
        let mut rec = self.recommendation(
            Kind::PromptCaching,
            &members,
            savings,
            None,
            "lower latency on cached prefixes",
            0.8,
            rationale,
        );
        rec.prefixes = changed.iter().map(|(_, p)| *p).collect();
        Some(rec)
    }

    fn batching(&self) -> Option<Recommendation> {
        let discount = self.price.batch_discount?;
        let members = self.members_where(|r| !r.interactive)?;
        let savings = self.cost(&members) * discount;
        let rationale = format!(
            "{} non-interactive requests can go through the batch API at {:.0}% off",
            members.len(),
            100.0 * discount
        );
        Some(self.recommendation(
            Kind::Batching,
            &members,
            savings,
            None,
            "async: results within 24 h",
            0.9,
            rationale,
        ))
    }

    fn max_tokens(&self, t: &Thresholds) -> Option<Recommendation> {
        let p99 = self.percentile(99.0, |r| r.completion_tokens).max(1);
        let limit = t.max_tokens_factor * p99;
        let members = self.members_where(|r| r.max_tokens.is_some_and(|m| m >= limit))?;
        let proposed = (2 * p99 + 15) / 16 * 16;
        let rationale = format!(
            "{} requests cap output at {}× or more the p99 of {p99} tokens; a cap of {proposed} \
             bounds tail latency and runaway cost without cutting real answers",
            members.len(),
            t.max_tokens_factor
        );
        let mut rec = self.recommendation(
            Kind::MaxTokensTuning,
            &members,
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
        let members = self.members_where(|r| r.is_error)?;
        let savings = self.cost(&members) * t.retry_avoidable_share;
        let rationale = format!(
            "{} failed requests were paid for; fixing their cause avoids an estimated {:.0}% of \
             that spend",
            members.len(),
            100.0 * t.retry_avoidable_share
        );
        Some(self.recommendation(
            Kind::RetryWaste,
            &members,
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
