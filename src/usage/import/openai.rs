//! OpenAI-compatible chat-completion logs, one JSON object per line in any of three layouts:
//! the response body itself (`id`, `created`, `model`, `usage`), a `{"request", "response"}`
//! pair as a gateway logs it (with `latency_ms` or `duration_ms` beside them when known), or a
//! line of the Batch API's output (`custom_id`, `response.status_code`, `response.body`; such
//! requests did not wait for anyone, so they are not interactive). Responses-API usage names
//! (`input_tokens`, `output_tokens`) are read too. Without a latency the record's is 0.

use serde_json::Value;

use super::source::{Mapped, Raw, get, number_of};
use crate::usage::parse::Row;

/// Where the response body sits, by layout.
const BODIES: [&str; 3] = ["response.body", "response", ""];

/// Maps one log line.
pub(super) fn map(row: &Row<'_>) -> Option<Mapped> {
    let body = BODIES
        .into_iter()
        .find(|b| {
            b.is_empty() || get(row, b).is_some_and(|v| matches!(v, Raw::Json(Value::Object(_))))
        })
        .unwrap_or("");
    let at = |field: &str| {
        if body.is_empty() {
            field.to_owned()
        } else {
            format!("{body}.{field}")
        }
    };
    let mut m = Mapped::default();
    m.first("id", row, &[&at("id"), "custom_id"]);
    // `created` of a chat completion, `created_at` of a Responses-API response (seconds).
    let created = [at("created"), at("created_at")]
        .into_iter()
        .find(|path| get(row, path).is_some())
        .unwrap_or_else(|| at("created"));
    match get(row, &created) {
        Some(raw) => match number_of(&raw) {
            Some(seconds) => m.set(
                "ts",
                Raw::Json(Value::from((seconds * 1000.0) as i64)),
                &created,
            ),
            None => m.set("ts", raw, &created),
        },
        None => {
            m.first("ts", row, &["ts", "timestamp"]);
        }
    }
    m.first(
        "model",
        row,
        &[&at("model"), "request.model", "request.body.model"],
    );
    m.fallback("provider", Value::from("openai"));
    m.first(
        "workload",
        row,
        &[
            "workload",
            "request.metadata.workload",
            "request.body.metadata.workload",
        ],
    );
    let usage = at("usage");
    let failed = get(row, "error").is_some()
        || get(row, "response.status_code")
            .and_then(|c| number_of(&c))
            .is_some_and(|c| c >= 400.0);
    let tokens = [
        ("prompt_tokens", ["prompt_tokens", "input_tokens"]),
        ("completion_tokens", ["completion_tokens", "output_tokens"]),
    ];
    for (name, aliases) in tokens {
        let paths = aliases.map(|a| format!("{usage}.{a}"));
        if !m.first(name, row, &[&paths[0], &paths[1]]) && failed {
            m.fallback(name, Value::from(0));
        }
    }
    m.first(
        "cached_tokens",
        row,
        &[
            &format!("{usage}.prompt_tokens_details.cached_tokens"),
            &format!("{usage}.input_tokens_details.cached_tokens"),
        ],
    );
    if !m.first("latency_ms", row, &["latency_ms", "duration_ms"]) {
        m.fallback("latency_ms", Value::from(0));
    }
    m.first(
        "max_tokens",
        row,
        &[
            "request.max_tokens",
            "request.max_completion_tokens",
            "request.body.max_tokens",
            "request.body.max_completion_tokens",
        ],
    );
    if get(row, "custom_id").is_some() {
        m.fallback("interactive", Value::Bool(false));
    }
    if failed {
        m.fallback("status", Value::from("error"));
    }
    Some(m)
}
