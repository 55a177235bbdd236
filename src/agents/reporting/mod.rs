//! The reporting agent: turns the run's typed results into the answer — `summary`,
//! `report_markdown` and `result` — for synthetic data, missing data or what enclave can do
//! here, for usage in `usage.rs`, and for optimisation in `optimisation.rs` (every candidate,
//! and for each change not offered its true reason). User strings are escaped and money written
//! by `analysis::report_text`. With an LLM, the LLM rewords the summary (streamed as
//! `agent_stream`); wording that loses or changes a number is refused.

mod optimisation;
mod results;
mod usage;

use serde::Serialize;

use self::results::{IntentResult, NoDataResult, SyntheticResult, WindowResult};

use super::data::{UsageAnalysis, analysis, stated_days};
use super::optimizations_core::candidates_of;
use super::synthetic_data::{Decision, Generated, generated_of};
use super::triage::understanding;
use super::{
    Agent, AgentContext, AgentError, AgentFuture, AgentInput, AgentOutput, Improved, RunAnswer,
    to_json,
};
use crate::analysis::catalog::Catalog;
use crate::analysis::optimize::Thresholds;
use crate::analysis::report_text::escape_md;
use crate::analysis::why_not::no_data;
use crate::llm::LlmRequest;

/// The reporting agent (see the module comment).
pub struct Reporting;

/// The reporting agent's typed result: `{"summary": …}` on the wire (the report itself is the
/// run's answer).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The answer's summary, as worded in the end.
    pub summary: String,
}

/// The intent a report is written for when triage did not run.
const DEFAULT_INTENT: &str = "general";

/// What the "why not" reasons are worked out against: the catalog and thresholds in force.
/// The supervisor's fallback has neither, and says so instead of guessing.
#[derive(Clone, Copy)]
struct Rules<'a> {
    /// The price catalog in force: which models have a substitute, a cache price, a discount.
    catalog: &'a Catalog,
    /// The rules' thresholds in force.
    thresholds: &'a Thresholds,
}

impl Agent for Reporting {
    fn name(&self) -> &'static str {
        "reporting"
    }

    /// The computed report without any wording from an LLM (none if an earlier result is not
    /// of the type reporting reads).
    fn fallback(&self, input: &AgentInput) -> Option<AgentOutput> {
        let answer = computed_answer(input, None).ok()?;
        output(answer).ok()
    }

    fn execute(&self, ctx: AgentContext, input: AgentInput) -> AgentFuture {
        Box::pin(async move {
            ctx.thinking("writing the report");
            // On the blocking pool: with tens of thousands of groups the report is real work,
            // and the session's arbiter serves other users meanwhile.
            let catalog = ctx.catalog().clone();
            let thresholds = ctx.config().thresholds.clone();
            let mut answer = ctx
                .compute(move || {
                    let rules = Rules {
                        catalog: &catalog,
                        thresholds: &thresholds,
                    };
                    computed_answer(&input, Some(rules))
                })
                .await??;
            let request = LlmRequest {
                system: WORDING_PROMPT.to_owned(),
                user: answer.summary.clone(),
                max_tokens: 400,
            };
            let computed = &answer.summary;
            let read =
                |text: &str| keeps_every_number(computed, text).then(|| text.trim().to_owned());
            let refused = "the LLM's wording changed a number";
            let worded = ctx
                .improve_with_llm(request, read, refused, "keeping the computed text")
                .await;
            let fallback = worded.fell_back();
            if let Improved::Used(text) = worded {
                answer.summary = text;
            }
            let mut output = output(answer)?;
            output.fallback = fallback;
            Ok(output)
        })
    }
}

/// What the LLM is asked: wording only.
const WORDING_PROMPT: &str = "Rewrite this summary of an LLM usage analysis for a busy \
engineer in two or three sentences. Keep every number, amount and percentage exactly as \
written; add no new numbers.";

/// Whether `worded` still carries every number of `computed` (amounts, percentages, counts).
pub fn keeps_every_number(computed: &str, worded: &str) -> bool {
    computed
        .split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ',' | ';'))
        .map(|w| w.trim_end_matches(['.', ':']))
        .filter(|w| w.chars().any(|c| c.is_ascii_digit()))
        .all(|number| worded.contains(number))
}

/// Reporting's output: the summary as its result, the whole answer as the run's.
fn output(answer: RunAnswer) -> Result<AgentOutput, AgentError> {
    let report = Report {
        summary: answer.summary.clone(),
    };
    Ok(AgentOutput::typed(report)?.with_answer(answer))
}

/// The report from the run's results alone (and, for the "why not" reasons, the rules). Each
/// earlier agent that did not run leaves its part out; a result of another type than the
/// agent of that name returns is an error.
fn computed_answer(input: &AgentInput, rules: Option<Rules<'_>>) -> Result<RunAnswer, AgentError> {
    let intent = understanding(input)?.map_or(DEFAULT_INTENT, |u| u.intent);
    if let Some(generated) = generated_of(input)? {
        return Ok(synthetic_report(intent, generated));
    }
    Ok(match analysis(input)? {
        Some(data) if data.aggregates.data_sufficiency != "none" => match candidates_of(input)? {
            Some(core) => optimisation::report(intent, data, core, input, rules)?,
            None => usage::report(intent, data),
        },
        Some(data) => no_data_report(intent, data, input)?,
        None => capabilities_report(intent),
    })
}

fn synthetic_report(intent: &str, generated: &Generated) -> RunAnswer {
    let request = &generated.request;
    let what = request.described_as(request.profile.as_str());
    let summary = match generated.decision {
        Decision::Reject => format!("Nothing was done: you declined generating {what}."),
        Decision::Expired => {
            format!("Nothing was done: the approval to generate {what} expired.")
        }
        Decision::OverQuota => {
            let (held, limit) = generated.quota.map_or((0, 0), |q| (q.held, q.limit));
            format!(
                "Nothing was done: generating {what} would take you over your limit of {limit} \
                 stored usage records (you hold {held}). Delete some first (DELETE /api/usage)."
            )
        }
        Decision::Approve | Decision::NotNeeded => format!(
            "Generated {} synthetic records ({what}); {} were already there. Ask \
             \"cut my LLM costs\" to analyse them.",
            generated.generated,
            generated.duplicates.unwrap_or(0)
        ),
    };
    RunAnswer {
        full_report_markdown: None,
        report_markdown: format!("# Synthetic data\n\n{}\n", escape_md(&summary)),
        result: to_json(&SyntheticResult {
            intent,
            synthetic: generated,
        }),
        summary,
    }
}

fn no_data_report(
    intent: &str,
    data: &UsageAnalysis,
    input: &AgentInput,
) -> Result<RunAnswer, AgentError> {
    let stated_days = stated_days(input)?;
    let summary = format!(
        "{} Upload your LLM API usage (POST /api/usage with NDJSON, CSV or a JSON array: ts, \
         model, prompt_tokens, completion_tokens, latency_ms per request), or ask me to \
         generate synthetic data, then ask again.",
        no_data(stated_days)
    );
    let md = format!(
        "# No usage data yet\n\n{}\n\n\
         | field | required | example |\n|---|---|---|\n\
         | ts | yes | 2026-11-01T12:00:00Z or epoch ms |\n\
         | model | yes | gpt-4o |\n| prompt\\_tokens | yes | 1200 |\n\
         | completion\\_tokens | yes | 150 |\n| latency\\_ms | yes | 850 |\n\
         | workload | no | support-bot |\n| id | no | your request id (de-duplicates) |\n",
        escape_md(&summary)
    );
    let result = to_json(&NoDataResult {
        window: WindowResult::of(intent, data),
        missing: ["usage_records"],
    });
    Ok(RunAnswer {
        full_report_markdown: None,
        summary,
        report_markdown: md,
        result,
    })
}

fn capabilities_report(intent: &str) -> RunAnswer {
    let summary = String::from(
        "I analyse your LLM API usage: totals, spend and latency per model and workload. \
         Upload your usage records, then ask for example \"analyse my usage\" or \"cut my LLM \
         bill by 30% without hurting p95 latency\".",
    );
    RunAnswer {
        full_report_markdown: None,
        report_markdown: format!("# What enclave can do\n\n{}\n", escape_md(&summary)),
        result: to_json(&IntentResult { intent }),
        summary,
    }
}
