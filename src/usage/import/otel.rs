//! OpenTelemetry GenAI spans as OTLP JSON: one `ExportTraceServiceRequest` object
//! (`resourceSpans[].scopeSpans[].spans[]`), or one per line as the Collector's file exporter
//! writes them. Each span with `gen_ai.*` attributes is a record: model from
//! `gen_ai.response.model` (else `gen_ai.request.model`), provider from `gen_ai.system` (or
//! `gen_ai.provider.name`), tokens from `gen_ai.usage.input_tokens`/`output_tokens` (or the
//! older `prompt_tokens`/`completion_tokens`), cached from
//! `gen_ai.usage.cache_read.input_tokens`, time and latency from the span's start and end, the
//! workload from the resource's `service.name`, an error from the span status (code 2) or
//! `error.type`. Rows count spans in file order; spans without `gen_ai.*` are not records.

use serde_json::{Map, Value};

use super::FieldLists;
use super::source::{Mapped, Raw, number_of};
use crate::usage::parse::{Format, ParseError, Parsed};

/// Reads every span of `body` (one object, or one per line).
pub(super) fn read(
    container: Format,
    body: &[u8],
    fields: &mut FieldLists,
) -> Result<Parsed, ParseError> {
    let mut parsed = Parsed::default();
    let mut row = 0;
    match container {
        Format::NdJson => {
            let text = std::str::from_utf8(body).map_err(|_| ParseError::NotUtf8)?;
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                match serde_json::from_str::<Value>(line) {
                    Ok(request) => read_request(&request, &mut row, &mut parsed, fields),
                    Err(e) => parsed.whole_row(row + 1, format!("malformed OTLP JSON line: {e}")),
                }
            }
        }
        Format::JsonArray | Format::Csv => {
            let request: Value = serde_json::from_slice(body)
                .map_err(|e| ParseError::JsonArray(format!("not OTLP JSON: {e}")))?;
            read_request(&request, &mut row, &mut parsed, fields);
        }
    }
    Ok(parsed)
}

/// Reads the spans of one export request, numbering them on from `row`.
fn read_request(request: &Value, row: &mut usize, parsed: &mut Parsed, fields: &mut FieldLists) {
    for (resource, span) in spans(request) {
        *row += 1;
        let flat = flatten(resource, span);
        fields.saw_names(flat.keys().map(String::as_str));
        if !is_model_call(&flat) {
            continue;
        }
        let mapped = map(&flat);
        fields.used(&mapped);
        parsed.add(mapped.validate(*row));
    }
}

/// Operations of the GenAI conventions that are not themselves a model call (an agent's
/// turn, a tool it ran): their token counts, if any, repeat their model calls'.
const NOT_MODEL_CALLS: [&str; 3] = ["invoke_agent", "create_agent", "execute_tool"];

/// Whether a span is one request to a model: `gen_ai.*` attributes, and no operation name
/// saying it is an agent's or a tool's span.
fn is_model_call(span: &Map<String, Value>) -> bool {
    let operation = span.get("gen_ai.operation.name").and_then(Value::as_str);
    span.keys().any(|k| k.starts_with("gen_ai."))
        && !operation.is_some_and(|op| NOT_MODEL_CALLS.contains(&op))
}

/// Every (resource, span) pair of one export request.
fn spans(request: &Value) -> impl Iterator<Item = (&Value, &Value)> {
    array(request, "resourceSpans")
        .unwrap_or_default()
        .iter()
        .flat_map(move |resource| {
            let scopes = array(resource, "scopeSpans")
                .or_else(|| array(resource, "instrumentationLibrarySpans"))
                .unwrap_or_default();
            scopes.iter().flat_map(move |scope| {
                array(scope, "spans")
                    .unwrap_or_default()
                    .iter()
                    .map(move |span| (resource, span))
            })
        })
}

/// The array at `key` of `value`, if it is one.
fn array<'v>(value: &'v Value, key: &str) -> Option<&'v [Value]> {
    value.get(key).and_then(Value::as_array).map(Vec::as_slice)
}

/// A span as one flat object: its own fields, `status.code`, and every resource and span
/// attribute under its key (`gen_ai.request.model`, `service.name`).
fn flatten(resource: &Value, span: &Value) -> Map<String, Value> {
    let mut flat = Map::new();
    for key in [
        "traceId",
        "spanId",
        "name",
        "startTimeUnixNano",
        "endTimeUnixNano",
    ] {
        if let Some(value) = span.get(key) {
            flat.insert(key.to_owned(), value.clone());
        }
    }
    if let Some(code) = span.pointer("/status/code") {
        flat.insert("status.code".to_owned(), code.clone());
    }
    let attributes = |v: &Value| v.get("attributes").and_then(Value::as_array).cloned();
    let resource_attributes = resource.get("resource").and_then(attributes);
    for attribute in resource_attributes
        .into_iter()
        .chain(attributes(span))
        .flatten()
    {
        let (Some(key), Some(value)) = (
            attribute.get("key").and_then(Value::as_str),
            attribute.get("value"),
        ) else {
            continue;
        };
        flat.insert(key.to_owned(), any_value(value));
    }
    flat
}

/// An OTLP `AnyValue` as plain JSON (`intValue` arrives as a string in OTLP JSON).
fn any_value(value: &Value) -> Value {
    if let Some(text) = value.get("stringValue") {
        return text.clone();
    }
    if let Some(int) = value.get("intValue") {
        return match int {
            Value::String(s) => s.parse::<i64>().map_or(int.clone(), Value::from),
            other => other.clone(),
        };
    }
    for key in ["doubleValue", "boolValue"] {
        if let Some(v) = value.get(key) {
            return v.clone();
        }
    }
    value.clone()
}

/// Maps one flattened span.
fn map(span: &Map<String, Value>) -> Mapped {
    let mut m = Mapped::default();
    let first = |m: &mut Mapped, name: &'static str, keys: &[&str]| {
        for key in keys {
            if let Some(value) = span.get(*key).filter(|v| !v.is_null()) {
                m.set(name, Raw::Json(value.clone()), key);
                return true;
            }
        }
        false
    };
    if let (Some(trace), Some(id)) = (span.get("traceId"), span.get("spanId")) {
        let id = format!(
            "{}-{}",
            trace.as_str().unwrap_or(""),
            id.as_str().unwrap_or("")
        );
        m.set("id", Raw::Json(Value::from(id)), "spanId");
    }
    let nanos = |key: &str| span.get(key).and_then(|v| number_of(&Raw::Json(v.clone())));
    if let Some(start) = nanos("startTimeUnixNano") {
        let start_ms = (start / 1e6) as i64;
        m.set("ts", Raw::Json(Value::from(start_ms)), "startTimeUnixNano");
        if let Some(end) = nanos("endTimeUnixNano") {
            let latency = ((end - start) / 1e6).round() as i64;
            m.set(
                "latency_ms",
                Raw::Json(Value::from(latency)),
                "endTimeUnixNano",
            );
        }
    }
    first(
        &mut m,
        "model",
        &["gen_ai.response.model", "gen_ai.request.model"],
    );
    first(
        &mut m,
        "provider",
        &["gen_ai.system", "gen_ai.provider.name"],
    );
    first(&mut m, "workload", &["service.name"]);
    first(
        &mut m,
        "prompt_tokens",
        &["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"],
    );
    first(
        &mut m,
        "completion_tokens",
        &[
            "gen_ai.usage.output_tokens",
            "gen_ai.usage.completion_tokens",
        ],
    );
    first(
        &mut m,
        "cached_tokens",
        &["gen_ai.usage.cache_read.input_tokens"],
    );
    first(&mut m, "max_tokens", &["gen_ai.request.max_tokens"]);
    let error_code = span
        .get("status.code")
        .and_then(|c| number_of(&Raw::Json(c.clone())));
    let failed = error_code == Some(2.0) || span.contains_key("error.type");
    if failed || error_code.is_some() {
        m.outcome(failed, "status.code");
    }
    m
}
