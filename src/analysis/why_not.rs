//! Why an optimisation of PROTOCOL.md §4 does not apply to a model × workload group, worded as
//! what it is: the catalog has no price for the model, or no substitute, cached-input price or
//! batch discount for it; the data has nothing the rule needs (no prefix hashes, no
//! non-interactive requests, no `max_tokens`, no failures); or a number is on the wrong side of
//! a threshold (the number and the threshold are named). Each test mirrors its rule in
//! `optimize.rs`, read from the group's aggregates. Pure: aggregates, catalog and thresholds
//! in, reasons out.

use std::collections::HashSet;
use std::fmt;

use super::aggregate::GroupStats;
use super::catalog::Catalog;
use super::optimize::{Kind, Thresholds};

/// The kinds in the order the rules run.
pub const KINDS: [Kind; 5] = [
    Kind::ModelSubstitution,
    Kind::PromptCaching,
    Kind::Batching,
    Kind::MaxTokensTuning,
    Kind::RetryWaste,
];

/// A kind as a report names it.
pub fn kind_label(kind: Kind) -> &'static str {
    match kind {
        Kind::ModelSubstitution => "model substitution",
        Kind::PromptCaching => "prompt caching",
        Kind::Batching => "batching",
        Kind::MaxTokensTuning => "max_tokens tuning",
        Kind::RetryWaste => "retry waste",
    }
}

/// A measured number over its rule's threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct OverThreshold {
    /// What was measured, e.g. "the p95 of completion tokens".
    pub what: &'static str,
    pub value: String,
    pub threshold: String,
}

/// The true reason a rule does not apply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// The model is not in the catalog: no rule can price a change.
    NoPrice {
        model: String,
        as_of: String,
    },
    NoSubstitute {
        model: String,
    },
    /// The group's traffic is over one or more of the substitution thresholds.
    OverThresholds(Vec<OverThreshold>),
    NoCachedPrice {
        model: String,
    },
    NoPrefixHashes,
    /// The most used prefix hash occurs fewer times than the caching threshold.
    PrefixUnderThreshold {
        top: usize,
        threshold: usize,
    },
    /// Prefix hashes are there, but none occurs twice.
    NoRepeatedPrefix,
    NoBatchDiscount {
        model: String,
    },
    NoNonInteractive,
    NoMaxTokens,
    /// No cap reaches `factor` × the p99 of completion tokens.
    CapsUnderThreshold {
        largest: i64,
        factor: i64,
        p99: i64,
    },
    NoErrors,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoPrice { model, as_of } => {
                write!(f, "no price for {model} in the catalog (as of {as_of})")
            }
            Self::NoSubstitute { model } => {
                write!(f, "the catalog names no cheaper substitute for {model}")
            }
            Self::OverThresholds(over) => {
                let parts: Vec<String> = over
                    .iter()
                    .map(|o| {
                        format!(
                            "{} is {}, over the threshold of {}",
                            o.what, o.value, o.threshold
                        )
                    })
                    .collect();
                f.write_str(&parts.join("; "))
            }
            Self::NoCachedPrice { model } => {
                write!(f, "the catalog has no cached-input price for {model}")
            }
            Self::NoPrefixHashes => f.write_str("no request records a prompt_prefix_hash"),
            Self::PrefixUnderThreshold { top, threshold } => {
                let times = if *top == 1 {
                    String::from("once")
                } else {
                    format!("{top} times")
                };
                write!(
                    f,
                    "the most used prompt prefix occurs {times}, under the threshold of \
                     {threshold}"
                )
            }
            Self::NoRepeatedPrefix => f.write_str("no prompt prefix is used more than once"),
            Self::NoBatchDiscount { model } => {
                write!(f, "the catalog has no batch discount for {model}")
            }
            Self::NoNonInteractive => {
                f.write_str("no request is marked non-interactive (\"interactive\": false)")
            }
            Self::NoMaxTokens => f.write_str("no request sets max_tokens"),
            Self::CapsUnderThreshold {
                largest,
                factor,
                p99,
            } => write!(
                f,
                "the largest max_tokens, {largest}, is under {factor} × the p99 of {p99} \
                 completion tokens ({})",
                factor * (*p99).max(1)
            ),
            Self::NoErrors => f.write_str("no request failed"),
        }
    }
}

/// Why `kind` does not apply to `group`; `None` when the rule's conditions hold.
pub fn why_not(
    group: &GroupStats,
    kind: Kind,
    catalog: &Catalog,
    t: &Thresholds,
) -> Option<Reason> {
    let model = || group.model.clone();
    let Some(price) = catalog.price(&group.model) else {
        return Some(Reason::NoPrice {
            model: model(),
            as_of: catalog.as_of().to_owned(),
        });
    };
    match kind {
        Kind::ModelSubstitution => {
            let Some(target) = price.substitute.as_deref() else {
                return Some(Reason::NoSubstitute { model: model() });
            };
            if catalog.price(target).is_none() {
                return Some(Reason::NoPrice {
                    model: target.to_owned(),
                    as_of: catalog.as_of().to_owned(),
                });
            }
            let mut over = Vec::new();
            if group.completion_tokens_p95 > t.substitution_max_p95_completion {
                over.push(OverThreshold {
                    what: "the p95 of completion tokens",
                    value: group.completion_tokens_p95.to_string(),
                    threshold: t.substitution_max_p95_completion.to_string(),
                });
            }
            if group.prompt_tokens_p95 > t.substitution_max_p95_prompt {
                over.push(OverThreshold {
                    what: "the p95 of prompt tokens",
                    value: group.prompt_tokens_p95.to_string(),
                    threshold: t.substitution_max_p95_prompt.to_string(),
                });
            }
            if group.error_rate > t.substitution_max_error_rate {
                over.push(OverThreshold {
                    what: "the error rate",
                    value: format!("{:.1}%", 100.0 * group.error_rate),
                    threshold: format!("{:.1}%", 100.0 * t.substitution_max_error_rate),
                });
            }
            (!over.is_empty()).then_some(Reason::OverThresholds(over))
        }
        Kind::PromptCaching => {
            if price.cached_input_per_mtok.is_none() {
                Some(Reason::NoCachedPrice { model: model() })
            } else if group.prefix_hashed_requests == 0 {
                Some(Reason::NoPrefixHashes)
            } else if group.top_prefix_uses < t.caching_min_repeats {
                Some(Reason::PrefixUnderThreshold {
                    top: group.top_prefix_uses,
                    threshold: t.caching_min_repeats,
                })
            } else if group.top_prefix_uses < 2 {
                Some(Reason::NoRepeatedPrefix)
            } else {
                None
            }
        }
        Kind::Batching => {
            if price.batch_discount.is_none() {
                Some(Reason::NoBatchDiscount { model: model() })
            } else if group.non_interactive_requests == 0 {
                Some(Reason::NoNonInteractive)
            } else {
                None
            }
        }
        Kind::MaxTokensTuning => {
            let limit = t.max_tokens_factor * group.completion_tokens_p99.max(1);
            match group.max_tokens_largest {
                None => Some(Reason::NoMaxTokens),
                Some(largest) if largest < limit => Some(Reason::CapsUnderThreshold {
                    largest,
                    factor: t.max_tokens_factor,
                    p99: group.completion_tokens_p99,
                }),
                Some(_) => None,
            }
        }
        Kind::RetryWaste => (group.errors == 0).then_some(Reason::NoErrors),
    }
}

/// One change not offered for one group, and why. `kind` is `None` when the reason rules out
/// every change (the model has no price).
#[derive(Debug, Clone, PartialEq)]
pub struct NotOffered {
    pub model: String,
    pub workload: String,
    pub kind: Option<Kind>,
    pub reason: Reason,
}

/// For every group, each of `kinds` that no recommendation in `offered` (model, workload,
/// kind) covers, with its reason; a model without a price gets one entry for all changes.
pub fn not_offered(
    groups: &[GroupStats],
    offered: &[(String, String, Kind)],
    kinds: &[Kind],
    catalog: &Catalog,
    t: &Thresholds,
) -> Vec<NotOffered> {
    // Looked up once per group and kind: a set, so 50,000 groups are not 50,000² comparisons.
    let offered: HashSet<(&str, &str, Kind)> = offered
        .iter()
        .map(|(m, w, k)| (m.as_str(), w.as_str(), *k))
        .collect();
    let mut out = Vec::new();
    for group in groups {
        if catalog.price(&group.model).is_none() {
            out.push(NotOffered {
                model: group.model.clone(),
                workload: group.workload.clone(),
                kind: None,
                reason: Reason::NoPrice {
                    model: group.model.clone(),
                    as_of: catalog.as_of().to_owned(),
                },
            });
            continue;
        }
        for &kind in kinds {
            if offered.contains(&(group.model.as_str(), group.workload.as_str(), kind)) {
                continue;
            }
            if let Some(reason) = why_not(group, kind, catalog, t) {
                out.push(NotOffered {
                    model: group.model.clone(),
                    workload: group.workload.clone(),
                    kind: Some(kind),
                    reason,
                });
            }
        }
    }
    out
}

/// Why there is nothing to analyse: `stated_days` is the window the user named, if any (the
/// default window ends at the user's last record, so without one there are no records at all).
pub fn no_data(stated_days: Option<i64>) -> String {
    match stated_days {
        Some(1) => String::from("There is no usage data in the window analysed, the last day."),
        Some(days) => {
            format!("There is no usage data in the window analysed, the last {days} days.")
        }
        None => String::from(
            "There is no usage data in the window analysed: you have no usage records yet.",
        ),
    }
}
