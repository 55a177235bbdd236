//! The reporting agent: turns the run's results into the answer — a one-paragraph `summary`,
//! a `report_markdown` and the `result` JSON. Whenever there are records the markdown shows the
//! usage table per model and workload; an optimisation report also says, for each change not
//! offered, the true reason (`analysis::why_not`). User strings (model and workload names) are
//! escaped and money is written by `analysis::report_text`. With no data it says what is
//! missing and how to add it. With an LLM configured, the LLM rewords the summary (streamed as
//! `agent_stream`); wording that loses or changes a number is refused.

use futures_util::future::LocalBoxFuture;
use serde_json::{Value, json};

use super::{Agent, AgentContext, AgentError, AgentInput, AgentOutput, RunAnswer, data};
use crate::analysis::aggregate::GroupStats;
use crate::analysis::catalog::Catalog;
use crate::analysis::optimize::{Kind, Thresholds};
use crate::analysis::report_text::{escape_md, money, usage_table};
use crate::analysis::why_not::{KINDS, NotOffered, kind_label, no_data, not_offered};
use crate::llm::LlmRequest;

pub struct Reporting;

/// What the "why not" reasons are worked out against: the catalog and thresholds in force.
/// The supervisor's fallback has neither, and says so instead of guessing.
#[derive(Clone, Copy)]
struct Rules<'a> {
    catalog: &'a Catalog,
    thresholds: &'a Thresholds,
}

impl Agent for Reporting {
    fn name(&self) -> &'static str {
        "reporting"
    }

    /// The computed report without any wording from an LLM.
    fn fallback(&self, input: &AgentInput) -> Option<AgentOutput> {
        let answer = computed_answer(input, None);
        Some(AgentOutput::result(json!({ "summary": answer.summary })).with_answer(answer))
    }

    fn execute(
        &self,
        ctx: AgentContext,
        input: AgentInput,
    ) -> LocalBoxFuture<'static, Result<AgentOutput, AgentError>> {
        Box::pin(async move {
            ctx.thinking("writing the report");
            let rules = Rules {
                catalog: ctx.catalog(),
                thresholds: &ctx.config().thresholds,
            };
            let mut answer = computed_answer(&input, Some(rules));
            let mut fallback = false;
            let request = LlmRequest {
                system: WORDING_PROMPT.to_owned(),
                user: answer.summary.clone(),
                max_tokens: 400,
            };
            if let Some(worded) = ctx.ask_llm(request).await {
                match worded {
                    Ok(text) if keeps_every_number(&answer.summary, &text) => {
                        answer.summary = text.trim().to_owned();
                    }
                    Ok(_) => {
                        ctx.thinking(
                            "the LLM's wording changed a number; keeping the computed text",
                        );
                        fallback = true;
                    }
                    Err(e) => {
                        ctx.thinking(format!("{e}; keeping the computed text"));
                        fallback = true;
                    }
                }
            }
            let mut output =
                AgentOutput::result(json!({ "summary": answer.summary })).with_answer(answer);
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

/// The report from the run's results alone (and, for the "why not" reasons, the rules).
fn computed_answer(input: &AgentInput, rules: Option<Rules<'_>>) -> RunAnswer {
    let intent = input
        .results
        .get("triage")
        .and_then(|t| t["intent"].as_str())
        .unwrap_or("general");
    match (input.results.get("synthetic_data"), data::result_of(input)) {
        (Some(synthetic), _) => synthetic_report(intent, synthetic),
        (None, data) => data_answer(intent, data, input, rules),
    }
}

fn data_answer(
    intent: &str,
    data: Option<&Value>,
    input: &AgentInput,
    rules: Option<Rules<'_>>,
) -> RunAnswer {
    match data {
        Some(data) if data["data_sufficiency"] != "none" => {
            match input.results.get("optimizations_core") {
                Some(core) => optimisation_report(intent, data, core, input, rules),
                None => usage_report(intent, data),
            }
        }
        Some(data) => no_data_report(intent, data, input),
        None => capabilities_report(intent),
    }
}

fn synthetic_report(intent: &str, synthetic: &Value) -> RunAnswer {
    let request = &synthetic["request"];
    let generated = synthetic["generated"].as_u64().unwrap_or(0);
    let what = format!(
        "{} {} records for {} over {} days (seed {})",
        request["count"],
        request["profile"].as_str().unwrap_or("?"),
        request["models"]
            .as_array()
            .map(|m| m
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default(),
        request["days"],
        request["seed"]
    );
    let summary = match synthetic["decision"].as_str() {
        Some("reject") => format!("Nothing was done: you declined generating {what}."),
        Some("expired") => format!("Nothing was done: the approval to generate {what} expired."),
        _ => format!(
            "Generated {generated} synthetic records ({what}); {} were already there. Ask \
             \"cut my LLM costs\" to analyse them.",
            synthetic["duplicates"].as_u64().unwrap_or(0)
        ),
    };
    RunAnswer {
        report_markdown: format!("# Synthetic data\n\n{}\n", escape_md(&summary)),
        result: json!({ "intent": intent, "synthetic": synthetic }),
        summary,
    }
}

/// The data agent's groups; `None` if they cannot be read (then the report says so).
fn groups_of(data: &Value) -> Option<Vec<GroupStats>> {
    serde_json::from_value(data["groups"].clone()).ok()
}

/// The usage section: the table of every group analysed.
fn usage_section(groups: Option<&[GroupStats]>) -> String {
    match groups {
        Some(groups) => usage_table(groups),
        None => String::from("The usage figures per model and workload could not be read.\n"),
    }
}

/// What `requests` requests cost, in words: `$1.20`, `$1.20 plus 3 unpriced requests`, or, when
/// none could be priced, that their amount is unknown.
fn cost_words(spend_usd: f64, requests: u64, unpriced: u64) -> String {
    match unpriced {
        0 => money(spend_usd),
        n if n >= requests => String::from("an unknown amount (their models have no price)"),
        n => format!("{} plus {n} unpriced requests", money(spend_usd)),
    }
}

fn days_words(days: f64) -> String {
    let days = days.round();
    if days == 1.0 {
        String::from("1 day")
    } else {
        format!("{days:.0} days")
    }
}

/// The names in `data["unpriced_models"]`, escaped for markdown.
fn unpriced_names(data: &Value) -> Option<String> {
    let unpriced = data["unpriced_models"]
        .as_array()
        .filter(|u| !u.is_empty())?;
    let names: Vec<String> = unpriced
        .iter()
        .filter_map(Value::as_str)
        .map(escape_md)
        .collect();
    Some(names.join(", "))
}

fn usage_report(intent: &str, data: &Value) -> RunAnswer {
    let totals = &data["totals"];
    let requests = totals["requests"].as_u64().unwrap_or(0);
    let unpriced = totals["unpriced_requests"].as_u64().unwrap_or(0);
    let spend = totals["spend_usd"].as_f64().unwrap_or(0.0);
    let days = days_words(data["window_days"].as_f64().unwrap_or(1.0));
    let groups = groups_of(data);
    let group_count = data["groups"].as_array().map_or(0, Vec::len);
    let mut summary = format!(
        "You made {requests} LLM requests costing {} over {days} across {group_count} model \
         and workload groups.",
        cost_words(spend, requests, unpriced)
    );
    if let Some(top) = groups
        .as_deref()
        .and_then(<[GroupStats]>::first)
        .filter(|top| top.spend_usd > 0.0)
    {
        summary.push_str(&format!(
            " The largest spend is {} on {} ({}).",
            top.model,
            top.workload,
            money(top.spend_usd)
        ));
    }
    if data["data_sufficiency"] == "partial" {
        summary.push_str(" With this few records the figures are indicative.");
    }
    let mut md = String::from("# Usage report\n\n");
    md.push_str(&format!("{}\n\n", escape_md(&summary)));
    md.push_str(&usage_section(groups.as_deref()));
    if let Some(names) = unpriced_names(data) {
        md.push_str(&format!(
            "\nNot in the price catalog, so counted by tokens only: {names}.\n"
        ));
    }
    md.push_str(&format!(
        "\nPrices: catalog as of {}. Percentiles are nearest-rank.\n",
        escape_md(data["catalog_as_of"].as_str().unwrap_or("?"))
    ));
    let result = json!({
        "intent": intent,
        "window": data["window"],
        "totals": { "requests": requests, "spend_usd": spend },
        "groups": data["groups"],
        "unpriced_models": data["unpriced_models"],
        "data_sufficiency": data["data_sufficiency"],
        "catalog_as_of": data["catalog_as_of"],
    });
    RunAnswer {
        summary,
        report_markdown: md,
        result,
    }
}

/// The (model, workload, kind) of each recommendation.
fn offered(recs: &[Value]) -> Vec<(String, String, Kind)> {
    recs.iter()
        .filter_map(|r| {
            Some((
                r["model"].as_str()?.to_owned(),
                r["workload"].as_str()?.to_owned(),
                serde_json::from_value(r["kind"].clone()).ok()?,
            ))
        })
        .collect()
}

/// "model substitution — the catalog names no cheaper substitute for X", or the reason alone
/// when it rules out every change.
fn reason_words(n: &NotOffered) -> String {
    match n.kind {
        Some(kind) => format!("{} — {}", kind_label(kind), n.reason),
        None => n.reason.to_string(),
    }
}

/// The summary's sentence when nothing applies: the reasons themselves for a single group,
/// else where to find them.
fn nothing_applies(groups: Option<&[GroupStats]>, reasons: Option<&[NotOffered]>) -> String {
    match (groups, reasons) {
        (Some([group]), Some(reasons)) if !reasons.is_empty() => {
            let parts: Vec<String> = reasons.iter().map(reason_words).collect();
            format!(
                "No optimisation applies to {} on {}: {}.",
                group.model,
                group.workload,
                parts.join("; ")
            )
        }
        (Some(groups), Some(reasons)) if !reasons.is_empty() => format!(
            "No optimisation is supported by this data; the report says why for each of the {} \
             model and workload groups.",
            groups.len()
        ),
        _ => String::from("No optimisation is supported by this data."),
    }
}

/// The "Why not" section: each change not offered, per group, with its reason.
fn why_not_section(reasons: Option<&[NotOffered]>, substitutions_only: bool) -> String {
    let mut md = String::from("\n## Why not\n\n");
    if substitutions_only {
        md.push_str(
            "Only model substitution was considered: the question was about model choice.\n\n",
        );
    }
    match reasons {
        None => md.push_str(
            "The reasons are not available: this report was written without the price \
             catalog and thresholds (the reporting agent's fallback).\n",
        ),
        Some([]) => md.push_str("Every change considered was offered for every group.\n"),
        Some(reasons) => {
            md.push_str("| model | workload | change | why not |\n|---|---|---|---|\n");
            for n in reasons {
                md.push_str(&format!(
                    "| {} | {} | {} | {} |\n",
                    escape_md(&n.model),
                    escape_md(&n.workload),
                    escape_md(n.kind.map_or("every change", kind_label)),
                    escape_md(&n.reason.to_string())
                ));
            }
        }
    }
    md
}

fn optimisation_report(
    intent: &str,
    data: &Value,
    core: &Value,
    input: &AgentInput,
    rules: Option<Rules<'_>>,
) -> RunAnswer {
    let actions = input.results.get("actions");
    let goals = actions
        .map(|a| a["goals"].clone())
        .or_else(|| {
            input
                .results
                .get("goals_triage")
                .map(|g| g["goals"].clone())
        })
        .unwrap_or_else(|| json!([]));
    let plan = actions.map_or(Value::Null, |a| a["plan"].clone());
    let recs = core["recommendations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let requests = data["totals"]["requests"].as_u64().unwrap_or(0);
    let unpriced = data["totals"]["unpriced_requests"].as_u64().unwrap_or(0);
    let spend = data["totals"]["spend_usd"].as_f64().unwrap_or(0.0);
    let window_days = data["window_days"].as_f64().unwrap_or(1.0);
    let groups = groups_of(data);
    let substitutions_only = intent == "model_selection";
    let kinds: &[Kind] = if substitutions_only {
        &[Kind::ModelSubstitution]
    } else {
        &KINDS
    };
    let reasons: Option<Vec<NotOffered>> = match (rules, groups.as_deref()) {
        (Some(rules), Some(groups)) => Some(not_offered(
            groups,
            &offered(&recs),
            kinds,
            rules.catalog,
            rules.thresholds,
        )),
        _ => None,
    };
    let mut summary = format!(
        "Your {requests} requests cost {} over {}. ",
        cost_words(spend, requests, unpriced),
        days_words(window_days)
    );
    let selected: Vec<&Value> = plan["selected"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter_map(|id| recs.iter().find(|r| r["id"] == *id))
                .collect()
        })
        .unwrap_or_default();
    if recs.is_empty() {
        summary.push_str(&nothing_applies(groups.as_deref(), reasons.as_deref()));
    } else if let Some(saved) = plan["savings_usd"].as_f64() {
        let pct = plan["savings_pct"].as_f64().unwrap_or(0.0);
        let monthly = saved * 30.0 / window_days.max(1.0);
        let mut kinds: Vec<String> = Vec::new();
        for r in &selected {
            let kind = r["kind"].as_str().unwrap_or("?").replace('_', " ");
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        summary.push_str(&format!(
            "The plan ({}) saves {} ({pct:.1}%), about {} a month. ",
            kinds.join(", "),
            money(saved),
            money(monthly)
        ));
        if plan["goals_met"] == true {
            summary.push_str("It meets your goals.");
        } else {
            summary.push_str(&format!(
                "It falls {:.1} points short of the cost goal.",
                plan["shortfall_pct"].as_f64().unwrap_or(0.0)
            ));
        }
    } else {
        summary.push_str(&format!(
            "{} candidate changes are priced below.",
            recs.len()
        ));
    }
    let mut md = String::from("# Optimisation report\n\n");
    md.push_str(&format!("{}\n\n## Usage analysed\n\n", escape_md(&summary)));
    md.push_str(&usage_section(groups.as_deref()));
    md.push_str("\n## Goals\n\n");
    for goal in goals.as_array().into_iter().flatten() {
        let target = match (goal["target_pct"].as_f64(), goal["target_value"].as_f64()) {
            (Some(0.0), _) => String::from("not worse"),
            (Some(pct), _) => format!("{pct:+}%"),
            (_, Some(value)) => format!("≤ {value}"),
            _ => String::from("—"),
        };
        md.push_str(&format!(
            "{}. {} {target}: {}\n",
            goal["priority"],
            escape_md(goal["metric"].as_str().unwrap_or("?")),
            escape_md(goal["rationale"].as_str().unwrap_or(""))
        ));
    }
    md.push_str("\n## Recommendations\n\n");
    if recs.is_empty() {
        md.push_str("None supported by the data (see why below).\n");
    } else {
        md.push_str("| id | kind | model | workload | requests | current | savings | % | per month | latency | confidence |\n");
        md.push_str("|---|---|---|---|---:|---:|---:|---:|---:|---|---:|\n");
        for r in &recs {
            let kind = match r["target_model"].as_str() {
                Some(target) => format!("{} → {target}", r["kind"].as_str().unwrap_or("?")),
                None => r["kind"].as_str().unwrap_or("?").to_owned(),
            };
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {:.1}% | {} | {} | {:.0}% |\n",
                escape_md(r["id"].as_str().unwrap_or("?")),
                escape_md(&kind),
                escape_md(r["model"].as_str().unwrap_or("?")),
                escape_md(r["workload"].as_str().unwrap_or("?")),
                r["affected_requests"],
                money(r["current_cost_usd"].as_f64().unwrap_or(0.0)),
                money(r["savings_usd"].as_f64().unwrap_or(0.0)),
                r["savings_pct"].as_f64().unwrap_or(0.0),
                money(r["monthly_savings_usd"].as_f64().unwrap_or(0.0)),
                escape_md(r["latency_impact"].as_str().unwrap_or("")),
                100.0 * r["confidence"].as_f64().unwrap_or(0.0)
            ));
        }
    }
    md.push_str(&why_not_section(reasons.as_deref(), substitutions_only));
    if let Some(steps) = plan["steps"].as_array() {
        md.push_str("\n## Plan\n\n");
        for (i, step) in steps.iter().enumerate() {
            md.push_str(&format!(
                "{}. {}\n",
                i + 1,
                escape_md(step.as_str().unwrap_or(""))
            ));
        }
        md.push_str(&format!(
            "\nTogether: {} saved ({:.1}% of spend), overlaps counted once.\n",
            money(plan["savings_usd"].as_f64().unwrap_or(0.0)),
            plan["savings_pct"].as_f64().unwrap_or(0.0)
        ));
    }
    md.push_str(&format!(
        "\n## Assumptions\n\n- Prices: catalog as of {}; records without a cost are priced \
         with it.\n- Changes are chosen in increasing order of risk (prompt caching, batching, \
         retry fixes, model substitution) until the cost goal is met.\n- Per-month figures \
         scale the window ({}) to 30 days.\n- Percentiles are nearest-rank.\n",
        escape_md(data["catalog_as_of"].as_str().unwrap_or("?")),
        days_words(window_days)
    ));
    if let Some(names) = unpriced_names(data) {
        md.push_str(&format!(
            "- Not in the price catalog, so not analysed for savings: {names}.\n"
        ));
    }
    let result = json!({
        "intent": intent,
        "goals": goals,
        "window": data["window"],
        "totals": { "requests": requests, "spend_usd": spend },
        "recommendations": recs,
        "plan": plan,
        "catalog_as_of": data["catalog_as_of"],
        "data_sufficiency": data["data_sufficiency"],
        "unpriced_models": data["unpriced_models"],
    });
    RunAnswer {
        summary,
        report_markdown: md,
        result,
    }
}

fn no_data_report(intent: &str, data: &Value, input: &AgentInput) -> RunAnswer {
    let stated_days = input
        .results
        .get("triage")
        .and_then(|t| t["entities"]["window_days"].as_i64())
        .filter(|d| *d > 0);
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
    let result = json!({
        "intent": intent,
        "window": data["window"],
        "totals": { "requests": 0, "spend_usd": 0.0 },
        "data_sufficiency": "none",
        "missing": ["usage_records"],
        "catalog_as_of": data["catalog_as_of"],
    });
    RunAnswer {
        summary,
        report_markdown: md,
        result,
    }
}

fn capabilities_report(intent: &str) -> RunAnswer {
    let summary = String::from(
        "I analyse your LLM API usage: totals, spend and latency per model and workload. \
         Upload your usage records, then ask for example \"analyse my usage\" or \"cut my LLM \
         bill by 30% without hurting p95 latency\".",
    );
    RunAnswer {
        report_markdown: format!("# What enclave can do\n\n{}\n", escape_md(&summary)),
        result: json!({ "intent": intent }),
        summary,
    }
}
