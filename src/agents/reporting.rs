//! The reporting agent: turns the run's results into the answer — a one-paragraph `summary`,
//! a `report_markdown` with a table per model and workload, and the `result` JSON. With no
//! data it says what is missing and how to add it.

use futures_util::future::LocalBoxFuture;
use serde_json::{Value, json};

use super::{Agent, AgentContext, AgentError, AgentInput, AgentOutput, RunAnswer, data};

pub struct Reporting;

impl Agent for Reporting {
    fn name(&self) -> &'static str {
        "reporting"
    }

    fn execute(
        &self,
        ctx: AgentContext,
        input: AgentInput,
    ) -> LocalBoxFuture<'static, Result<AgentOutput, AgentError>> {
        Box::pin(async move {
            ctx.thinking("writing the report");
            let intent = input
                .results
                .get("triage")
                .and_then(|t| t["intent"].as_str())
                .unwrap_or("general")
                .to_owned();
            let answer = match data::result_of(&input) {
                Some(data) if data["data_sufficiency"] != "none" => usage_report(&intent, data),
                Some(data) => no_data_report(&intent, data),
                None => capabilities_report(&intent),
            };
            Ok(AgentOutput::result(json!({ "summary": answer.summary })).with_answer(answer))
        })
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
