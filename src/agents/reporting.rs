//! The reporting agent: turns the run's results into the answer — a one-paragraph `summary`,
//! a `report_markdown` with a table per model and workload, and the `result` JSON. With no
//! data it says what is missing and how to add it. With an LLM configured, the LLM rewords the
//! summary (streamed as `agent_stream`); wording that loses or changes a number is refused.

use futures_util::future::LocalBoxFuture;
use serde_json::{Value, json};

use super::{Agent, AgentContext, AgentError, AgentInput, AgentOutput, RunAnswer, data};
use crate::llm::LlmRequest;

pub struct Reporting;

impl Agent for Reporting {
    fn name(&self) -> &'static str {
        "reporting"
    }

    /// The computed report without any wording from an LLM.
    fn fallback(&self, input: &AgentInput) -> Option<AgentOutput> {
        let answer = computed_answer(input);
        Some(AgentOutput::result(json!({ "summary": answer.summary })).with_answer(answer))
    }

    fn execute(
        &self,
        ctx: AgentContext,
        input: AgentInput,
    ) -> LocalBoxFuture<'static, Result<AgentOutput, AgentError>> {
        Box::pin(async move {
            ctx.thinking("writing the report");
            let mut answer = computed_answer(&input);
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

/// The report from the run's results alone.
fn computed_answer(input: &AgentInput) -> RunAnswer {
    let intent = input
        .results
        .get("triage")
        .and_then(|t| t["intent"].as_str())
        .unwrap_or("general");
    match (input.results.get("synthetic_data"), data::result_of(input)) {
        (Some(synthetic), _) => synthetic_report(intent, synthetic),
        (None, data) => data_answer(intent, data, input),
    }
}

fn data_answer(intent: &str, data: Option<&Value>, input: &AgentInput) -> RunAnswer {
    match data {
        Some(data) if data["data_sufficiency"] != "none" => {
            match input.results.get("optimizations_core") {
                Some(core) => optimisation_report(intent, data, core, input),
                None => usage_report(intent, data),
            }
        }
        Some(data) => no_data_report(intent, data),
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
        report_markdown: format!("# Synthetic data\n\n{summary}\n"),
        result: json!({ "intent": intent, "synthetic": synthetic }),
        summary,
    }
}

fn money(x: f64) -> String {
    format!("${x:.2}")
}

fn usage_report(intent: &str, data: &Value) -> RunAnswer {
    let totals = &data["totals"];
    let requests = totals["requests"].as_u64().unwrap_or(0);
    let spend = totals["spend_usd"].as_f64().unwrap_or(0.0);
    let days = data["window_days"].as_f64().unwrap_or(1.0);
    let groups = data["groups"].as_array().cloned().unwrap_or_default();
    let top = groups.first();
    let mut summary = format!(
        "You made {requests} LLM requests costing {} over {days:.0} days across {} model and \
         workload groups.",
        money(spend),
        groups.len()
    );
    if let Some(top) = top {
        summary.push_str(&format!(
            " The largest spend is {} on {} ({}).",
            top["model"].as_str().unwrap_or("?"),
            top["workload"].as_str().unwrap_or("?"),
            money(top["spend_usd"].as_f64().unwrap_or(0.0))
        ));
    }
    if data["data_sufficiency"] == "partial" {
        summary.push_str(" With this few records the figures are indicative.");
    }
    let mut md = String::from("# Usage report\n\n");
    md.push_str(&format!(
        "**{requests} requests, {} over {days:.0} days.**\n\n",
        money(spend)
    ));
    md.push_str("| model | workload | requests | prompt tokens | completion tokens | spend | p50 ms | p95 ms | p99 ms | error rate |\n");
    md.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for g in &groups {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1}% |\n",
            g["model"].as_str().unwrap_or("?"),
            g["workload"].as_str().unwrap_or("?"),
            g["requests"],
            g["prompt_tokens"],
            g["completion_tokens"],
            money(g["spend_usd"].as_f64().unwrap_or(0.0)),
            g["latency_p50_ms"],
            g["latency_p95_ms"],
            g["latency_p99_ms"],
            100.0 * g["error_rate"].as_f64().unwrap_or(0.0)
        ));
    }
    if let Some(unpriced) = data["unpriced_models"].as_array().filter(|u| !u.is_empty()) {
        let names: Vec<&str> = unpriced.iter().filter_map(Value::as_str).collect();
        md.push_str(&format!(
            "\nNot in the price catalog, so counted by tokens only: {}.\n",
            names.join(", ")
        ));
    }
    md.push_str(&format!(
        "\nPrices: catalog as of {}. Percentiles are nearest-rank.\n",
        data["catalog_as_of"].as_str().unwrap_or("?")
    ));
    let result = json!({
        "intent": intent,
        "window": data["window"],
        "totals": { "requests": requests, "spend_usd": spend },
        "groups": groups,
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

fn optimisation_report(intent: &str, data: &Value, core: &Value, input: &AgentInput) -> RunAnswer {
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
    let spend = data["totals"]["spend_usd"].as_f64().unwrap_or(0.0);
    let days = data["window_days"].as_f64().unwrap_or(1.0);
    let mut summary = format!(
        "Your {requests} requests cost {} over {days:.0} days. ",
        money(spend)
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
        summary.push_str(
            "No optimisation is supported by this data: no model with a cheaper substitute \
             serves short requests, no prompt prefix repeats often enough for caching, no \
             traffic is marked non-interactive for batching and no requests failed.",
        );
    } else if let Some(saved) = plan["savings_usd"].as_f64() {
        let pct = plan["savings_pct"].as_f64().unwrap_or(0.0);
        let monthly = saved * 30.0 / days.max(1.0);
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
    md.push_str(&format!("{summary}\n\n## Goals\n\n"));
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
            goal["metric"].as_str().unwrap_or("?"),
            goal["rationale"].as_str().unwrap_or("")
        ));
    }
    md.push_str("\n## Recommendations\n\n");
    if recs.is_empty() {
        md.push_str("None supported by the data.\n");
    } else {
        md.push_str("| id | kind | model | workload | requests | current | savings | % | per month | latency | confidence |\n");
        md.push_str("|---|---|---|---|---:|---:|---:|---:|---:|---|---:|\n");
        for r in &recs {
            let kind = match r["target_model"].as_str() {
                Some(target) => format!("{} → {target}", r["kind"].as_str().unwrap_or("?")),
                None => r["kind"].as_str().unwrap_or("?").to_owned(),
            };
            md.push_str(&format!(
                "| {} | {kind} | {} | {} | {} | {} | {} | {:.1}% | {} | {} | {:.0}% |\n",
                r["id"].as_str().unwrap_or("?"),
                r["model"].as_str().unwrap_or("?"),
                r["workload"].as_str().unwrap_or("?"),
                r["affected_requests"],
                money(r["current_cost_usd"].as_f64().unwrap_or(0.0)),
                money(r["savings_usd"].as_f64().unwrap_or(0.0)),
                r["savings_pct"].as_f64().unwrap_or(0.0),
                money(r["monthly_savings_usd"].as_f64().unwrap_or(0.0)),
                r["latency_impact"].as_str().unwrap_or(""),
                100.0 * r["confidence"].as_f64().unwrap_or(0.0)
            ));
        }
    }
    if let Some(steps) = plan["steps"].as_array() {
        md.push_str("\n## Plan\n\n");
        for (i, step) in steps.iter().enumerate() {
            md.push_str(&format!("{}. {}\n", i + 1, step.as_str().unwrap_or("")));
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
         scale the window ({days:.0} days) to 30 days.\n",
        data["catalog_as_of"].as_str().unwrap_or("?")
    ));
    if let Some(unpriced) = data["unpriced_models"].as_array().filter(|u| !u.is_empty()) {
        let names: Vec<&str> = unpriced.iter().filter_map(Value::as_str).collect();
        md.push_str(&format!(
            "- Not in the price catalog, so not analysed for savings: {}.\n",
            names.join(", ")
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

fn no_data_report(intent: &str, data: &Value) -> RunAnswer {
    let summary = String::from(
        "I found no usage records to analyse. Upload your LLM API usage (POST /api/usage with \
         NDJSON, CSV or a JSON array: ts, model, prompt_tokens, completion_tokens, latency_ms \
         per request), or ask me to generate synthetic data, then ask again.",
    );
    let md = format!(
        "# No usage data yet\n\n{summary}\n\n\
         | field | required | example |\n|---|---|---|\n\
         | ts | yes | 2026-11-01T12:00:00Z or epoch ms |\n\
         | model | yes | gpt-4o |\n| prompt_tokens | yes | 1200 |\n\
         | completion_tokens | yes | 150 |\n| latency_ms | yes | 850 |\n\
         | workload | no | support-bot |\n| id | no | your request id (de-duplicates) |\n"
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
        report_markdown: format!("# What enclave can do\n\n{summary}\n"),
        result: json!({ "intent": intent }),
        summary,
    }
}
