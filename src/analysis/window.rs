//! One pass over a window's records: `WindowPass` takes them one at a time, in any order, and
//! keeps per model × workload only sums, three columns of one number per request (for exact
//! percentiles) and the caps in use; `finish` gives the `Aggregates` every report shows and the
//! `WindowFacts` the rules (`optimize.rs`) and the plan (`plan.rs`) price from. Memory grows by
//! twelve bytes a record (the percentile columns), not by the record, plus an entry per
//! distinct cap and per qualifying prompt prefix.
//!
//! The plan prices each record with the changes chosen for it (substitution, caching,
//! batching, retry), so the pass keeps, per group, sums by the three things that decide which
//! changes reach a record: whether it is a cache hit, whether it is non-interactive, whether
//! it failed (`Class`). A plan then costs each group from its eight classes, whatever it
//! selects.

use std::collections::{BTreeMap, HashMap};

use super::aggregate::{Aggregates, GroupStats, SUFFICIENT_RECORDS, Totals};
use super::catalog::{Catalog, ModelPrice};
use super::column::Column;
use super::optimize::{Thresholds, caching_saving, substitute_cost};
use super::prefixes::{FirstUse, GroupPrefixes, Prefixes};

pub use super::facts::{
    CACHE_HIT, Class, ClassSums, FAILED, GroupFacts, NON_INTERACTIVE, WindowFacts,
};
use crate::usage::record::UsageRecord;

const DAY_MS: f64 = 86_400_000.0;

/// One model × workload while the pass runs.
#[derive(Default)]
struct GroupPass {
    requests: u64,
    prompt_tokens: i64,
    completion_tokens: i64,
    cached_tokens: i64,
    spend: f64,
    unpriced: u64,
    errors: u64,
    non_interactive: u64,
    hashed: u64,
    capped: u64,
    cap_use: f64,
    largest_cap: Option<i64>,
    latency: Column,
    prompt: Column,
    completion: Column,
    caps: BTreeMap<i64, (u64, f64)>,
    classes: [ClassSums; 8],
    prefixes: GroupPrefixes,
}

impl GroupPass {
    /// Adds each qualifying prefix's first use, held aside during the pass, as what it is: a
    /// use that pays in full. In the prefixes' order, so the sums are the same on every run.
    fn add_first_uses(&mut self) {
        let mut firsts: Vec<&FirstUse> = self
            .prefixes
            .qualifying
            .values()
            .filter_map(|q| q.first_use.as_ref())
            .collect();
        firsts.sort_by(|a, b| (a.ts, &a.id).cmp(&(b.ts, &b.id)));
        for first in firsts {
            let paid = ClassSums {
                requests: 1,
                cost: first.added.cost,
                substituted: first.added.substituted,
                ..ClassSums::default()
            };
            if let Some(miss) = self.classes.get_mut(first.class & !CACHE_HIT) {
                miss.add(&paid);
            }
        }
    }
}

/// One pass over a window's records (see the module comment).
pub struct WindowPass<'a> {
    catalog: &'a Catalog,
    prefixes: Prefixes,
    /// Where each group is in `groups`, by model then workload.
    index: HashMap<String, HashMap<String, usize>>,
    /// The groups, in the order first seen.
    groups: Vec<((String, String), GroupPass)>,
    requests: u64,
    first_ts: Option<i64>,
    last_ts: Option<i64>,
}

impl<'a> WindowPass<'a> {
    /// A pass pricing with `catalog`, its prefix facts gathered beforehand.
    pub fn new(catalog: &'a Catalog, prefixes: Prefixes) -> WindowPass<'a> {
        WindowPass {
            catalog,
            prefixes,
            index: HashMap::new(),
            groups: Vec::new(),
            requests: 0,
            first_ts: None,
            last_ts: None,
        }
    }

    /// Both results for `records` in memory (tests, small windows); of two uses of a prompt
    /// prefix in the same millisecond, the one earlier in `records` came first.
    pub fn of_records(
        records: &[UsageRecord],
        catalog: &Catalog,
        thresholds: &Thresholds,
    ) -> (Aggregates, WindowFacts) {
        let prefixes = Prefixes::of_records(records, thresholds.caching_min_repeats);
        let mut pass = WindowPass::new(catalog, prefixes);
        for (index, record) in records.iter().enumerate() {
            // Zero-padded, so ids order as the records do.
            pass.add(record, &format!("{index:020}"));
        }
        pass.finish()
    }

    /// Takes one more record, in any order; `id` (its record id) orders records of the same
    /// millisecond, for which use of a prompt prefix came first.
    pub fn add(&mut self, r: &UsageRecord, id: &str) {
        self.requests += 1;
        self.first_ts = Some(self.first_ts.map_or(r.ts, |t| t.min(r.ts)));
        self.last_ts = Some(self.last_ts.map_or(r.ts, |t| t.max(r.ts)));
        let catalog = self.catalog;
        let Some(group) = self.group(&r.model, &r.workload) else {
            return;
        };
        group.requests += 1;
        group.prompt_tokens = group.prompt_tokens.saturating_add(r.prompt_tokens);
        group.completion_tokens = group.completion_tokens.saturating_add(r.completion_tokens);
        group.cached_tokens = group.cached_tokens.saturating_add(r.cached_tokens);
        group.latency.push(r.latency_ms);
        group.prompt.push(r.prompt_tokens);
        group.completion.push(r.completion_tokens);
        group.errors += u64::from(r.is_error);
        group.non_interactive += u64::from(!r.interactive);
        let cost = catalog.cost(r);
        match cost {
            Some(cost) => group.spend += cost,
            None => group.unpriced += 1,
        }
        if let Some(cap) = r.max_tokens {
            group.capped += 1;
            group.cap_use += r.completion_tokens as f64 / cap as f64;
            group.largest_cap = Some(group.largest_cap.map_or(cap, |m| m.max(cap)));
            let entry = group.caps.entry(cap).or_default();
            entry.0 += 1;
            entry.1 += cost.unwrap_or(0.0);
        }
        let hash = r.prompt_prefix_hash.as_deref();
        group.hashed += u64::from(hash.is_some());
        let (Some(cost), Some(price)) = (cost, catalog.price(&r.model)) else {
            return;
        };
        let substitute = price.substitute.as_deref().and_then(|t| catalog.price(t));
        // A use of a qualifying prefix where the model can cache: a cache hit, unless it turns
        // out to be the prefix's first use.
        let qualifying = hash
            .filter(|_| price.cached_input_per_mtok.is_some())
            .and_then(|hash| group.prefixes.qualifying.get_mut(hash));
        let class = usize::from(qualifying.is_some()) * CACHE_HIT
            + usize::from(!r.interactive) * NON_INTERACTIVE
            + usize::from(r.is_error) * FAILED;
        let substituted = substitute.map(|t| substitute_cost(r, t));
        let mut added = ClassSums {
            requests: 1,
            cost,
            substituted: substituted.unwrap_or(0.0),
            ..ClassSums::default()
        };
        if let Some(q) = &qualifying {
            let saving = cache_saving(r, q.prefix_tokens, price);
            added.caching_saving = saving;
            added.cached = (cost - saving).max(0.0);
            if let (Some(target), Some(substituted)) = (substitute, substituted) {
                let saving = cache_saving(r, q.prefix_tokens, target);
                added.substituted_cached = (substituted - saving).max(0.0);
            }
        }
        // The earliest use of a qualifying prefix is held aside (it pays in full); a use it
        // displaces, or any later one, is a cache hit. Every record is added once.
        let mut hit = Some((class, added));
        if let Some(q) = qualifying {
            let earliest = q
                .first_use
                .as_ref()
                .is_none_or(|first| (r.ts, id) < (first.ts, first.id.as_str()));
            if earliest {
                let displaced = q.first_use.replace(FirstUse {
                    ts: r.ts,
                    id: id.to_owned(),
                    class,
                    added,
                });
                hit = displaced.map(|first| (first.class, first.added));
            }
        }
        if let Some((class, added)) = hit
            && let Some(sums) = group.classes.get_mut(class)
        {
            sums.add(&added);
        }
    }

    /// The aggregates and the facts of every record taken.
    pub fn finish(self) -> (Aggregates, WindowFacts) {
        let mut by_group = self.groups;
        by_group.sort_by(|a, b| a.0.cmp(&b.0));
        let mut unpriced_models: Vec<String> = Vec::new();
        let mut stats = Vec::with_capacity(by_group.len());
        let mut facts = Vec::new();
        for ((model, workload), mut group) in by_group {
            group.add_first_uses();
            group.latency.sort();
            group.prompt.sort();
            group.completion.sort();
            if group.unpriced > 0 && !unpriced_models.contains(&model) {
                unpriced_models.push(model.clone());
            }
            let requests = group.requests.max(1) as f64;
            stats.push(GroupStats {
                model: model.clone(),
                workload: workload.clone(),
                requests: group.requests as usize,
                prompt_tokens: group.prompt_tokens,
                completion_tokens: group.completion_tokens,
                cached_tokens: group.cached_tokens,
                spend_usd: group.spend,
                unpriced_requests: group.unpriced as usize,
                latency_p50_ms: group.latency.percentile(50.0),
                latency_p95_ms: group.latency.percentile(95.0),
                latency_p99_ms: group.latency.percentile(99.0),
                error_rate: group.errors as f64 / requests,
                prefix_repeat_share: group.prefixes.repeated as f64 / requests,
                output_cap_utilisation: (group.capped > 0)
                    .then(|| group.cap_use / group.capped as f64),
                non_interactive_share: group.non_interactive as f64 / requests,
                prompt_tokens_p95: group.prompt.percentile(95.0),
                completion_tokens_p95: group.completion.percentile(95.0),
                completion_tokens_p99: group.completion.percentile(99.0),
                errors: group.errors as usize,
                non_interactive_requests: group.non_interactive as usize,
                prefix_hashed_requests: group.hashed as usize,
                top_prefix_uses: group.prefixes.top as usize,
                capped_requests: group.capped as usize,
                max_tokens_largest: group.largest_cap,
            });
            if self.catalog.price(&model).is_some() {
                facts.push(GroupFacts {
                    requests: group.requests,
                    prompt_p95: group.prompt.percentile(95.0),
                    completion_p95: group.completion.percentile(95.0),
                    completion_p99: group.completion.percentile(99.0),
                    errors: group.errors,
                    qualifying_prefixes: group.prefixes.qualifying.len(),
                    caps: group.caps,
                    classes: group.classes,
                    model,
                    workload,
                });
            }
        }
        stats.sort_by(|a, b| b.spend_usd.total_cmp(&a.spend_usd));
        let totals = Totals {
            requests: self.requests as usize,
            unpriced_requests: stats.iter().map(|g| g.unpriced_requests).sum(),
            prompt_tokens: stats
                .iter()
                .fold(0i64, |t, g| t.saturating_add(g.prompt_tokens)),
            completion_tokens: stats
                .iter()
                .fold(0i64, |t, g| t.saturating_add(g.completion_tokens)),
            spend_usd: stats.iter().fold(0.0, |total, g| total + g.spend_usd),
        };
        let (first, last) = (self.first_ts.unwrap_or(0), self.last_ts.unwrap_or(0));
        let data_sufficiency = match self.requests {
            0 => "none",
            n if n < SUFFICIENT_RECORDS as u64 => "partial",
            _ => "sufficient",
        };
        let aggregates = Aggregates {
            totals,
            groups: stats,
            unpriced_models,
            window_days: (last.saturating_sub(first) as f64 / DAY_MS).max(1.0),
            data_sufficiency,
        };
        (aggregates, WindowFacts { groups: facts })
    }

    /// The pass's group of `model` × `workload`, made (with its prefix facts) on first use.
    fn group(&mut self, model: &str, workload: &str) -> Option<&mut GroupPass> {
        let at = match self.index.get(model).and_then(|w| w.get(workload)) {
            Some(at) => *at,
            None => {
                let group = GroupPass {
                    prefixes: self.prefixes.take_group(model, workload),
                    ..GroupPass::default()
                };
                let at = self.groups.len();
                self.groups
                    .push(((model.to_owned(), workload.to_owned()), group));
                self.index
                    .entry(model.to_owned())
                    .or_default()
                    .insert(workload.to_owned(), at);
                at
            }
        };
        self.groups.get_mut(at).map(|(_, group)| group)
    }
}

/// What reading `prefix` tokens from `price`'s cache saves on `r` (0 if it has no cache).
fn cache_saving(r: &UsageRecord, prefix: i64, price: &ModelPrice) -> f64 {
    price.cached_input_per_mtok.map_or(0.0, |cached| {
        caching_saving(r, prefix, price.input_per_mtok, cached)
    })
}
