//! The data agent: analyses the user's usage records for the run's window through the
//! `usage_aggregates` tool (one pass on a reader thread, `store::repo::usage_pass`) and reports
//! per model × workload requests, tokens, spend and latency percentiles, and whether there is
//! enough data (`data_sufficiency`). Its typed result keeps the facts the rules and the plan
//! price from: the only read of the window in a run. With no data it cuts the plan short to
//! reporting, which says what is missing.

use std::sync::Arc;

use serde::Serialize;

use super::triage::understanding;
use super::{Agent, AgentContext, AgentError, AgentFuture, AgentInput, AgentOutput};
use crate::analysis::aggregate::{Aggregates, GroupStats, Totals};
use crate::analysis::window::WindowFacts;
use crate::clock::now_ms;
use crate::protocol::event_lists::{capped, is_zero};
use crate::store::user_store::Window;

/// The data agent (see the module comment).
pub struct Data;

/// The data agent's typed result (PROTOCOL.md §4): the window analysed and its aggregates.
/// On the wire its aggregates are flattened into the top level, with the first
/// `EVENT_LIST_LIMIT` groups by spend (and unpriced models) and `groups_omitted`
/// (`unpriced_models_omitted`) counting the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageAnalysis {
    /// The window's bounds: what the agents after it analyse.
    pub window: WindowBounds,
    /// Per model × workload and in total.
    pub aggregates: Aggregates,
    /// The date of the price catalog the spend was priced with.
    pub catalog_as_of: String,
    /// What the rules and the plan price from, found in the same pass: the agents after it
    /// (optimisations core, actions) work on these, so a run reads its window once. Not on
    /// the wire.
    pub facts: Arc<WindowFacts>,
}

impl Serialize for UsageAnalysis {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let a = &self.aggregates;
        let (groups, groups_omitted) = capped(&a.groups);
        let (unpriced_models, unpriced_models_omitted) = capped(&a.unpriced_models);
        UsageAnalysisWire {
            window: self.window,
            totals: &a.totals,
            groups,
            groups_omitted,
            unpriced_models,
            unpriced_models_omitted,
            window_days: a.window_days,
            data_sufficiency: a.data_sufficiency,
            catalog_as_of: &self.catalog_as_of,
        }
        .serialize(s)
    }
}

/// `UsageAnalysis` as `agent_completed.result` carries it.
#[derive(Serialize)]
struct UsageAnalysisWire<'a> {
    window: WindowBounds,
    totals: &'a Totals,
    groups: &'a [GroupStats],
    #[serde(skip_serializing_if = "is_zero")]
    groups_omitted: usize,
    unpriced_models: &'a [String],
    #[serde(skip_serializing_if = "is_zero")]
    unpriced_models_omitted: usize,
    window_days: f64,
    data_sufficiency: &'static str,
    catalog_as_of: &'a str,
}

/// A window's bounds, epoch milliseconds, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WindowBounds {
    /// The window's first millisecond.
    pub since: i64,
    /// The window's last millisecond.
    pub until: i64,
}

/// `tool_executing.input` of `usage_aggregates`: the window asked for, in words.
#[derive(Serialize)]
struct UsageAggregatesInput {
    /// `the last 14 days`, or the default window.
    window: String,
}

/// `tool_completed.output` of `usage_aggregates`: what the window holds, in brief.
#[derive(Serialize)]
struct UsageAggregatesOutput {
    /// Records in the window.
    requests: usize,
    /// Spend of the records that could be priced.
    spend_usd: f64,
    /// Model × workload groups.
    groups: usize,
}

/// The data agent's result in this run, if it ran (an error if an agent called `data` returned
/// something else).
pub fn analysis(input: &AgentInput) -> Result<Option<&UsageAnalysis>, AgentError> {
    input.result_of::<UsageAnalysis>("data")
}

/// The window the user named ("the last 2 weeks"), in days, if triage read one; at most
/// `MAX_WINDOW_DAYS` ("the last 200000000000 days" reaches back to 2000, no further).
pub fn stated_days(input: &AgentInput) -> Result<Option<i64>, AgentError> {
    let days = understanding(input)?.and_then(|u| u.entities.window_days);
    Ok(days
        .map(|d| i64::try_from(d).unwrap_or(i64::MAX).min(MAX_WINDOW_DAYS))
        .filter(|d| *d > 0))
}

/// The longest window: from now back past 2000-01-01, before which no record is stored.
pub const MAX_WINDOW_DAYS: i64 = 10_000;

const DAY_MS: i64 = 86_400_000;
/// The default window: the last 30 days of the user's records.
const DEFAULT_WINDOW_DAYS: i64 = 30;

impl Agent for Data {
    fn name(&self) -> &'static str {
        "data"
    }

    fn execute(&self, ctx: AgentContext, input: AgentInput) -> AgentFuture {
        Box::pin(async move {
            let stated_days = stated_days(&input)?;
            let window = match stated_days {
                Some(days) => format!("the last {days} days"),
                None => String::from("the last 30 days of your records"),
            };
            let tool_input = UsageAggregatesInput { window };
            ctx.thinking("reading your usage records for the window");
            let window = match stated_days {
                Some(days) => {
                    let now = now_ms();
                    Window::Between {
                        since: now.saturating_sub(days.saturating_mul(DAY_MS)),
                        until: now,
                    }
                }
                None => Window::UpToLatest {
                    span_ms: DEFAULT_WINDOW_DAYS * DAY_MS,
                },
            };
            let catalog = ctx.catalog().clone();
            let thresholds = ctx.config().thresholds.clone();
            let read = ctx.store().analyse_usage(window, catalog, thresholds);
            let (analysis, duration_ms) = ctx.tool("usage_aggregates", tool_input, read).await?;
            let (since, until) = (analysis.since, analysis.until);
            let (aggregates, facts) = (analysis.aggregates, analysis.facts);
            let summary = UsageAggregatesOutput {
                requests: aggregates.totals.requests,
                spend_usd: aggregates.totals.spend_usd,
                groups: aggregates.groups.len(),
            };
            ctx.tool_completed("usage_aggregates", summary, duration_ms, true);
            ctx.thinking(match aggregates.data_sufficiency {
                "none" => String::from("no usage records in the window"),
                "partial" => format!(
                    "only {} records: the numbers are indicative",
                    aggregates.totals.requests
                ),
                _ => format!(
                    "{} requests across {} model and workload groups",
                    aggregates.totals.requests,
                    aggregates.groups.len()
                ),
            });
            let no_data = aggregates.data_sufficiency == "none";
            let output = AgentOutput::typed(UsageAnalysis {
                window: WindowBounds { since, until },
                aggregates,
                catalog_as_of: ctx.catalog().as_of().to_owned(),
                facts: Arc::new(facts),
            })?;
            Ok(if no_data {
                output.with_replan(vec!["reporting".to_owned()])
            } else {
                output
            })
        })
    }
}
