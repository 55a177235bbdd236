//! Gateway and observability exports, each a table of one request per row (CSV, or JSON rows):
//! LiteLLM's spend logs (`LiteLLM_SpendLogs`: `request_id`, `startTime`/`endTime`, `model`,
//! `custom_llm_provider`, `prompt_tokens`, `completion_tokens`, `spend`, `status`,
//! `request_tags`), Helicone's request export (`request_id`, `request_created_at`, `latency`
//! in ms, `provider`, `model`, `prompt_tokens`, `completion_tokens`,
//! `prompt_cache_read_tokens`, `cost`, `response_status` or `status` as an HTTP code) and Langfuse's generations
//! (UI export in camelCase or blob export in snake_case: `id`, `startTime`, `endTime`,
//! `name` as the workload, `model`, input/output usage, total cost, `level`).

use serde_json::Value;

use super::source::{Mapped, Raw, get, number_of, text_of, time_and_latency};
use crate::usage::parse::Row;

/// Maps one LiteLLM spend-log row.
pub(super) fn litellm(row: &Row<'_>) -> Option<Mapped> {
    let mut m = Mapped::default();
    m.first("id", row, &["request_id"]);
    time_and_latency(&mut m, row, &["startTime"], &["endTime"]);
    m.first("model", row, &["model", "model_group"]);
    m.first("provider", row, &["custom_llm_provider"]);
    m.first("prompt_tokens", row, &["prompt_tokens"]);
    m.first("completion_tokens", row, &["completion_tokens"]);
    m.first("cost_usd", row, &["spend"]);
    if let Some(tag) = get(row, "request_tags").and_then(|t| first_tag(&t)) {
        m.set("workload", Raw::Json(Value::from(tag)), "request_tags");
    }
    if let Some(status) = get(row, "status").and_then(|s| text_of(&s)) {
        let failed = status.eq_ignore_ascii_case("failure");
        m.outcome(failed, "status");
    }
    Some(m)
}

/// The first of a tag list: a JSON array, or its text as a CSV export writes it.
fn first_tag(tags: &Raw) -> Option<String> {
    let list = match tags {
        Raw::Json(Value::Array(list)) => list.clone(),
        Raw::Json(Value::String(text)) | Raw::Text(text) => serde_json::from_str(text).ok()?,
        _ => return None,
    };
    list.first()?.as_str().map(str::to_owned)
}

/// Maps one Helicone request row.
pub(super) fn helicone(row: &Row<'_>) -> Option<Mapped> {
    let mut m = Mapped::default();
    m.first("id", row, &["request_id", "response_id"]);
    time_and_latency(&mut m, row, &["request_created_at"], &[]);
    m.first("latency_ms", row, &["latency", "delay_ms"]);
    m.first("model", row, &["model", "request_model"]);
    m.first("provider", row, &["provider"]);
    m.first("prompt_tokens", row, &["prompt_tokens"]);
    m.first("completion_tokens", row, &["completion_tokens"]);
    m.first("cached_tokens", row, &["prompt_cache_read_tokens"]);
    m.first("cost_usd", row, &["cost", "cost_usd"]);
    m.first(
        "workload",
        row,
        &[
            "workload",
            "properties.workload",
            "request_properties.workload",
        ],
    );
    let status = ["response_status", "status"]
        .into_iter()
        .find_map(|name| Some((name, number_of(&get(row, name)?)?)));
    if let Some((name, code)) = status {
        let failed = !(0.0..400.0).contains(&code);
        m.outcome(failed, name);
    }
    Some(m)
}

/// Maps one Langfuse observation; observations that are not generations (spans, events) carry
/// no usage and are skipped.
pub(super) fn langfuse(row: &Row<'_>) -> Option<Mapped> {
    if let Some(kind) = get(row, "type").and_then(|t| text_of(&t))
        && !kind.eq_ignore_ascii_case("generation")
    {
        return None;
    }
    let mut m = Mapped::default();
    m.first("id", row, &["id"]);
    time_and_latency(
        &mut m,
        row,
        &["startTime", "start_time"],
        &["endTime", "end_time"],
    );
    if let Some(seconds) = get(row, "latency").and_then(|l| number_of(&l))
        && !m.used.iter().any(|u| u == "endTime" || u == "end_time")
    {
        m.set(
            "latency_ms",
            Raw::Json(Value::from((seconds * 1000.0).round() as i64)),
            "latency",
        );
    }
    m.first(
        "model",
        row,
        &["model", "provided_model_name", "providedModelName"],
    );
    m.first("workload", row, &["name"]);
    m.first(
        "prompt_tokens",
        row,
        &[
            "promptTokens",
            "inputUsage",
            "usage_details.input",
            "usageDetails.input",
            "usage.input",
        ],
    );
    m.first(
        "completion_tokens",
        row,
        &[
            "completionTokens",
            "outputUsage",
            "usage_details.output",
            "usageDetails.output",
            "usage.output",
        ],
    );
    m.first(
        "cost_usd",
        row,
        &[
            "calculatedTotalCost",
            "totalCost",
            "total_cost",
            "cost_details.total",
            "costDetails.total",
        ],
    );
    if let Some(level) = get(row, "level").and_then(|l| text_of(&l)) {
        let failed = level.eq_ignore_ascii_case("error");
        m.outcome(failed, "level");
        if failed {
            // A failed generation may report no usage: it used none.
            m.fallback("prompt_tokens", Value::from(0));
            m.fallback("completion_tokens", Value::from(0));
        }
    }
    Some(m)
}
