//! The shapes of `run_completed.result` (PROTOCOL.md §4), one per kind of report, each
//! borrowing from the typed results it is read from. Every report on a window of records starts
//! from `WindowResult`; `agents::to_json` turns a shape into the run's `result`.

use serde::Serialize;

use crate::agents::data::{UsageAnalysis, WindowBounds};
use crate::agents::synthetic_data::Generated;
use crate::analysis::aggregate::GroupStats;
use crate::analysis::optimize::Recommendation;
use crate::analysis::plan::{Goal, Plan};
use crate::protocol::event_lists::{capped, is_zero};

/// What every report on a window of usage records carries: flattened into its top level.
#[derive(Serialize)]
pub(super) struct WindowResult<'a> {
    /// The request's intent (`cost_optimization`, `usage_analysis`, …).
    intent: &'a str,
    /// The window's bounds.
    window: WindowBounds,
    /// The window's requests and spend.
    totals: ResultTotals,
    /// `none`, `partial` or `sufficient`.
    data_sufficiency: &'static str,
    /// The date of the price catalog the spend was priced with.
    catalog_as_of: &'a str,
    /// The models the catalog has no price for; absent when the window has no records.
    #[serde(skip_serializing_if = "Option::is_none")]
    unpriced_models: Option<&'a [String]>,
    /// Unpriced models left out of `unpriced_models`.
    #[serde(skip_serializing_if = "is_zero")]
    unpriced_models_omitted: usize,
}

impl<'a> WindowResult<'a> {
    /// The window the data agent analysed, for a request with `intent`.
    pub(super) fn of(intent: &'a str, data: &'a UsageAnalysis) -> Self {
        let aggregates = &data.aggregates;
        let totals = &aggregates.totals;
        let (unpriced, unpriced_models_omitted) = capped(&aggregates.unpriced_models);
        Self {
            intent,
            window: data.window,
            totals: ResultTotals {
                requests: totals.requests as u64,
                spend_usd: totals.spend_usd,
            },
            data_sufficiency: aggregates.data_sufficiency,
            catalog_as_of: &data.catalog_as_of,
            unpriced_models: (totals.requests > 0).then_some(unpriced),
            unpriced_models_omitted,
        }
    }
}

/// `totals` of a result: the window's size and cost.
#[derive(Serialize)]
struct ResultTotals {
    /// Records in the window.
    requests: u64,
    /// Spend of the records that could be priced.
    spend_usd: f64,
}

/// The result of a run that found no records in its window.
#[derive(Serialize)]
pub(super) struct NoDataResult<'a> {
    /// The empty window.
    #[serde(flatten)]
    pub(super) window: WindowResult<'a>,
    /// What the analysis needs and did not have: `usage_records`.
    pub(super) missing: [&'static str; 1],
}

/// The result of a usage-analysis request.
#[derive(Serialize)]
pub(super) struct UsageResult<'a> {
    /// The window analysed.
    #[serde(flatten)]
    pub(super) window: WindowResult<'a>,
    /// Per model × workload, largest spend first: the first `EVENT_LIST_LIMIT`.
    pub(super) groups: &'a [GroupStats],
    /// Groups left out of `groups`.
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) groups_omitted: usize,
}

/// The result of an optimisation request (cost, latency or model selection).
#[derive(Serialize)]
pub(super) struct OptimisationResult<'a> {
    /// The window analysed.
    #[serde(flatten)]
    pub(super) window: WindowResult<'a>,
    /// The goals the plan was chosen for.
    pub(super) goals: &'a [Goal],
    /// The priced candidates: at most `EVENT_LIST_LIMIT`, those the plan's listed `selected`
    /// ids name first.
    pub(super) recommendations: Vec<&'a Recommendation>,
    /// Candidates left out of `recommendations`.
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) recommendations_omitted: usize,
    /// The plan, `null` when the actions agent did not run.
    pub(super) plan: Option<&'a Plan>,
}

/// The result of a synthetic-data request.
#[derive(Serialize)]
pub(super) struct SyntheticResult<'a> {
    /// The request's intent.
    pub(super) intent: &'a str,
    /// What was asked, decided and done.
    pub(super) synthetic: &'a Generated,
}

/// The result of a request enclave has no analysis for: the intent alone.
#[derive(Serialize)]
pub(super) struct IntentResult<'a> {
    /// The request's intent.
    pub(super) intent: &'a str,
}
