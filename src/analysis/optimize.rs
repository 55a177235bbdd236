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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    ModelSubstitution,
    PromptCaching,
    Batching,
    MaxTokensTuning,
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

/// One priced candidate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    pub id: String,
    pub kind: Kind,
    pub workload: String,
    pub model: String,
    pub target_model: Option<String>,
    pub affected_requests: usize,
    pub current_cost_usd: f64,
    pub projected_cost_usd: f64,
    pub savings_usd: f64,
    pub savings_pct: f64,
    pub monthly_savings_usd: f64,
    pub latency_impact: String,
    pub confidence: f64,
    pub rationale: String,
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
    let mut groups: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        groups
            .entry((r.model.as_str(), r.workload.as_str()))
            .or_default()
            .push(i);
    }
    let mut out = Vec::new();
    for ((model, workload), members) in groups {
        let Some(price) = catalog.price(model) else {
            continue;
        };
        let group = Group {
            records,
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

/// The records of one model × workload.
struct Group<'a> {
    records: &'a [UsageRecord],
    members: &'a [usize],
    catalog: &'a Catalog,
    price: &'a ModelPrice,
    model: &'a str,
    workload: &'a str,
}

impl Group<'_> {
    fn cost(&self, indexes: &[usize]) -> f64 {
        indexes
            .iter()
            .filter_map(|&i| self.catalog.cost(&self.records[i]))
            .sum()
    }

    fn percentile(&self, p: f64, field: impl Fn(&UsageRecord) -> i64) -> i64 {
        let mut values: Vec<i64> = self
            .members
            .iter()
            .map(|&i| field(&self.records[i]))
            .collect();
        values.sort_unstable();
        nearest_rank(&values, p)
    }

    #[allow(clippy::too_many_arguments)]
    fn recommendation(
        &self,
        kind: Kind,
        records: Vec<usize>,
        savings: f64,
        target_model: Option<String>,
        latency_impact: &str,
        confidence: f64,
        rationale: String,
    ) -> Recommendation {
        let current = self.cost(&records);
        Recommendation {
            id: String::new(),
            kind,
            workload: self.workload.to_owned(),
            model: self.model.to_owned(),
            target_model,
            affected_requests: records.len(),
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
            records,
            prefixes: Vec::new(),
        }
    }

    fn substitution(&self, t: &Thresholds) -> Option<Recommendation> {
        let target = self.price.substitute.as_deref()?;
        let target_price = self.catalog.price(target)?;
        let p95_completion = self.percentile(95.0, |r| r.completion_tokens);
        let p95_prompt = self.percentile(95.0, |r| r.prompt_tokens);
        let errors = self
            .members
            .iter()
            .filter(|&&i| self.records[i].is_error)
            .count();
        let error_rate = errors as f64 / self.members.len() as f64;
        if p95_completion > t.substitution_max_p95_completion
            || p95_prompt > t.substitution_max_p95_prompt
            || error_rate > t.substitution_max_error_rate
        {
            return None;
        }
        let records = self.members.to_vec();
        let projected: f64 = records
            .iter()
            .map(|&i| substitute_cost(&self.records[i], target_price))
            .sum();
        let savings = self.cost(&records) - projected;
        let rationale = format!(
            "short, simple requests (p95 {p95_completion} completion and {p95_prompt} prompt \
             tokens, {:.1}% errors) that {target} can serve",
            100.0 * error_rate
        );
        Some(self.recommendation(
            Kind::ModelSubstitution,
            records,
            savings,
            Some(target.to_owned()),
            "smaller model: usually faster",
            0.7,
            rationale,
        ))
    }

    fn caching(&self, t: &Thresholds) -> Option<Recommendation> {
        let cached_price = self.price.cached_input_per_mtok?;
        let mut by_prefix: HashMap<&str, Vec<usize>> = HashMap::new();
        for &i in self.members {
            if let Some(hash) = &self.records[i].prompt_prefix_hash {
                by_prefix.entry(hash).or_default().push(i);
            }
        }
        let mut changed: Vec<(usize, i64)> = Vec::new();
        let mut savings = 0.0;
        let mut prefixes = 0;
        for (_, mut uses) in by_prefix {
            if uses.len() < t.caching_min_repeats {
                continue;
            }
            prefixes += 1;
            uses.sort_by_key(|&i| (self.records[i].ts, i));
            let prefix = uses
                .iter()
                .map(|&i| self.records[i].prompt_tokens)
                .min()
                .unwrap_or(0);
            for &i in &uses[1..] {
                let input = self.price.input_per_mtok;
                savings += caching_saving(&self.records[i], prefix, input, cached_price);
                changed.push((i, prefix));
            }
        }
        if changed.is_empty() {
            return None;
        }
        changed.sort_unstable();
        let records = changed.iter().map(|(i, _)| *i).collect();
        let rationale = format!(
            "{prefixes} prompt prefix(es) repeated at least {} times; every use after the first \
             can read the prefix from the cache",
            t.caching_min_repeats
        );
        let mut rec = self.recommendation(
            Kind::PromptCaching,
            records,
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
        let records: Vec<usize> = self
            .members
            .iter()
            .copied()
            .filter(|&i| !self.records[i].interactive)
            .collect();
        if records.is_empty() {
            return None;
        }
        let savings = self.cost(&records) * discount;
        let rationale = format!(
            "{} non-interactive requests can go through the batch API at {:.0}% off",
            records.len(),
            100.0 * discount
        );
        Some(self.recommendation(
            Kind::Batching,
            records,
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
        let records: Vec<usize> = self
            .members
            .iter()
            .copied()
            .filter(|&i| self.records[i].max_tokens.is_some_and(|m| m >= limit))
            .collect();
        if records.is_empty() {
            return None;
        }
        let proposed = (2 * p99 + 15) / 16 * 16;
        let rationale = format!(
            "{} requests cap output at {}× or more the p99 of {p99} tokens; a cap of {proposed} \
             bounds tail latency and runaway cost without cutting real answers",
            records.len(),
            t.max_tokens_factor
        );
        let mut rec = self.recommendation(
            Kind::MaxTokensTuning,
            records,
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
        let records: Vec<usize> = self
            .members
            .iter()
            .copied()
            .filter(|&i| self.records[i].is_error)
            .collect();
        if records.is_empty() {
            return None;
        }
        let savings = self.cost(&records) * t.retry_avoidable_share;
        let rationale = format!(
            "{} failed requests were paid for; fixing their cause avoids an estimated {:.0}% of \
             that spend",
            records.len(),
            100.0 * t.retry_avoidable_share
        );
        Some(self.recommendation(
            Kind::RetryWaste,
            records,
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
