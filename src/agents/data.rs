//! The data agent: reads the user's usage records for the run's window through the
//! `usage_aggregates` tool and reports per model × workload requests, tokens, spend and
//! latency percentiles, and whether there is enough data (`data_sufficiency`). With no data
//! it cuts the plan short to reporting, which says what is missing.

use futures_util::future::LocalBoxFuture;
use serde_json::{Value, json};

use super::{Agent, AgentContext, AgentError, AgentInput, AgentOutput};
use crate::analysis::aggregate::aggregate;
use crate::clock::now_ms;
use crate::store::user_store::Window;

pub struct Data;

const DAY_MS: i64 = 86_400_000;
/// The default window: the last 30 days of the user's records.
const DEFAULT_WINDOW_DAYS: i64 = 30;

impl Agent for Data {
    fn name(&self) -> &'static str {
        "data"
    }

    fn execute(
        &self,
        ctx: AgentContext,
        input: AgentInput,
    ) -> LocalBoxFuture<'static, Result<AgentOutput, AgentError>> {
        Box::pin(async move {
            let stated_days = input
                .results
                .get("triage")
                .and_then(|t| t["entities"]["window_days"].as_i64())
                .filter(|d| *d > 0);
            let tool_input = match stated_days {
                Some(days) => json!({ "window": format!("the last {days} days") }),
                None => json!({ "window": "the last 30 days of your records" }),
            };
            ctx.thinking("reading your usage records for the window");
            let window = match stated_days {
                Some(days) => {
                    let now = now_ms();
                    Window::Between {
                        since: now - days * DAY_MS,
                        until: now,
                    }
                }
                None => Window::UpToLatest {
                    span_ms: DEFAULT_WINDOW_DAYS * DAY_MS,
                },
            };
            let catalog = ctx.catalog().clone();
            let read = async {
                let window = ctx.store().usage_in(window).await?;
                let aggregates = ctx
                    .compute(move || aggregate(&window.records, &catalog))
                    .await?;
                Ok::<_, AgentError>((window.since, window.until, aggregates))
            };
            let ((since, until, aggregates), duration_ms) =
                ctx.tool("usage_aggregates", tool_input, read).await?;
            let summary = json!({
                "requests": aggregates.totals.requests,
                "spend_usd": aggregates.totals.spend_usd,
                "groups": aggregates.groups.len(),
            });
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
            let result = json!({
                "window": { "since": since, "until": until },
                "totals": aggregates.totals,
                "groups": aggregates.groups,
                "unpriced_models": aggregates.unpriced_models,
                "window_days": aggregates.window_days,
                "data_sufficiency": aggregates.data_sufficiency,
                "catalog_as_of": ctx.catalog().as_of(),
            });
            let output = AgentOutput::result(result);
            Ok(if aggregates.data_sufficiency == "none" {
                output.with_replan(vec!["reporting".to_owned()])
            } else {
                output
            })
        })
    }
}

/// The data agent's result, if it ran.
pub fn result_of(input: &AgentInput) -> Option<&Value> {
    input.results.get("data")
}
