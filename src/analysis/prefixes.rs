//! `Prefixes`: what a window's prompt prefix hashes say, gathered before its records are read
//! one by one — per model × workload, how many requests carry a hash, how many share one with
//! another request, the most uses of one hash, and every hash used often enough for
//! `prompt_caching` with its shortest prompt (the prefix that can be cached). Fed one hash at a
//! time with its uses (a `GROUP BY` in the database, or `of_records` in memory), so memory is
//! per hash that qualifies, not per record.

use std::collections::HashMap;

use crate::usage::record::UsageRecord;

/// The prefix facts of one model × workload.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct GroupPrefixes {
    /// Requests whose hash occurs more than once in the group.
    pub repeated: u64,
    /// The most requests sharing one hash.
    pub top: u64,
    /// Hashes used at least the caching threshold's times: the shortest prompt among their
    /// uses, and their earliest use read so far (the first use is not a cache hit).
    pub qualifying: HashMap<String, QualifyingPrefix>,
}

/// A hash used often enough to cache.
#[derive(Debug, Clone, PartialEq)]
pub struct QualifyingPrefix {
    /// The shortest prompt among its uses: the tokens every use shares.
    pub prefix_tokens: i64,
    /// Its earliest use read so far, by `(ts, record id)`: records come in any order, so the
    /// first use is held aside until the pass ends.
    pub first_use: Option<FirstUse>,
}

/// The earliest use of a qualifying hash read so far, and what it added as a cache hit.
#[derive(Debug, Clone, PartialEq)]
pub struct FirstUse {
    /// When it was made.
    pub ts: i64,
    /// Its record id: orders uses made in the same millisecond.
    pub id: String,
    /// Its class, cache hit bit included (`window.rs`).
    pub class: usize,
    /// What it adds as a cache hit, should an earlier use displace it.
    pub added: crate::analysis::window::ClassSums,
}

/// The prefix facts of a window, by model then workload.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Prefixes {
    groups: HashMap<String, HashMap<String, GroupPrefixes>>,
    /// Uses a hash needs to qualify for caching.
    min_repeats: u64,
}

impl Prefixes {
    /// No hashes yet; a hash qualifies with at least `min_repeats` uses.
    pub fn new(min_repeats: usize) -> Prefixes {
        Prefixes {
            groups: HashMap::new(),
            min_repeats: min_repeats as u64,
        }
    }

    /// The facts of `records`, in memory (tests, small windows).
    pub fn of_records(records: &[UsageRecord], min_repeats: usize) -> Prefixes {
        let mut uses: HashMap<(&str, &str, &str), (u64, i64)> = HashMap::new();
        for r in records {
            if let Some(hash) = &r.prompt_prefix_hash {
                let entry = uses
                    .entry((&r.model, &r.workload, hash))
                    .or_insert((0, i64::MAX));
                entry.0 += 1;
                entry.1 = entry.1.min(r.prompt_tokens);
            }
        }
        let mut prefixes = Prefixes::new(min_repeats);
        for ((model, workload, hash), (count, shortest)) in uses {
            prefixes.add(model, workload, hash, count, shortest);
        }
        prefixes
    }

    /// One hash of `model` × `workload`: `uses` requests carry it, the shortest prompt among
    /// them is `shortest_prompt` tokens.
    pub fn add(
        &mut self,
        model: &str,
        workload: &str,
        hash: &str,
        uses: u64,
        shortest_prompt: i64,
    ) {
        let min_repeats = self.min_repeats;
        let group = self.group_mut(model, workload);
        if uses > 1 {
            group.repeated += uses;
        }
        group.top = group.top.max(uses);
        if uses >= min_repeats {
            let prefix = QualifyingPrefix {
                prefix_tokens: shortest_prompt,
                first_use: None,
            };
            group.qualifying.insert(hash.to_owned(), prefix);
        }
    }

    /// Takes the facts of `model` × `workload` out (empty if none).
    pub fn take_group(&mut self, model: &str, workload: &str) -> GroupPrefixes {
        self.groups
            .get_mut(model)
            .and_then(|by_workload| by_workload.remove(workload))
            .unwrap_or_default()
    }

    fn group_mut(&mut self, model: &str, workload: &str) -> &mut GroupPrefixes {
        self.groups
            .entry(model.to_owned())
            .or_default()
            .entry(workload.to_owned())
            .or_default()
    }
}
