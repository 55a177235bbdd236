//! `UsageRecord`: one LLM API request as PROTOCOL.md §3 defines it, validated field by field
//! from a JSON object or a CSV row, with one `RowError` per bad field.

use serde::Serialize;
use serde_json::Value;

use super::bounds;
use crate::clock::now_ms;

/// Longest caller `id`.
const MAX_ID_CHARS: usize = 128;

/// A validated usage record (the user is added when it is stored).
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRecord {
    /// The caller's `id`, which de-duplicates re-uploads.
    pub external_id: Option<String>,
    /// Epoch milliseconds.
    pub ts: i64,
    /// The model called: what the catalog prices and the rules group by.
    pub model: String,
    /// Who served it, as the caller names it.
    pub provider: Option<String>,
    /// What the request was for (`default` when not given): the rules' other grouping.
    pub workload: String,
    /// Tokens sent.
    pub prompt_tokens: i64,
    /// Tokens produced.
    pub completion_tokens: i64,
    /// Prompt tokens read from the provider's cache (at most `prompt_tokens`).
    pub cached_tokens: i64,
    /// How long the request took.
    pub latency_ms: i64,
    /// The output cap the request set, if any.
    pub max_tokens: Option<i64>,
    /// What it cost, when the caller knows; otherwise the catalog prices it.
    pub cost_usd: Option<f64>,
    /// A hash of the prompt's shared prefix: repeats are what caching saves on.
    pub prompt_prefix_hash: Option<String>,
    /// Whether someone waited for the answer (`false`: it could run as a batch job).
    pub interactive: bool,
    /// Whether the request failed (`status = error`).
    pub is_error: bool,
}

/// Why one field of one row was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RowError {
    /// Data rows count from 1.
    pub row: usize,
    /// The field's name as the upload spells it.
    pub field: String,
    /// What is wrong with its value.
    pub reason: String,
}

/// A field's raw value: typed JSON, or CSV text (an empty cell is absent).
#[derive(Debug, Clone, Copy)]
pub enum Cell<'a> {
    /// A value of a JSON object (NDJSON or a JSON array upload).
    Json(&'a Value),
    /// A CSV cell.
    Text(&'a str),
}

/// Validates one row; `get(name)` returns the field's cell, `None` when absent.
pub fn validate<'a>(
    row: usize,
    get: impl Fn(&str) -> Option<Cell<'a>>,
) -> Result<UsageRecord, Vec<RowError>> {
    let mut errors = Vec::new();
    let present = |name: &str| get(name).filter(|c| !matches!(c, Cell::Json(Value::Null)));
    // The field's value as `parse` reads its cell; a refusal is the field's error.
    let mut field =
        |name: &str, parse: &dyn Fn(Option<Cell<'a>>) -> Parsed| match parse(present(name)) {
            Ok(value) => value,
            Err(reason) => {
                errors.push(RowError {
                    row,
                    field: name.to_owned(),
                    reason,
                });
                None
            }
        };
    let external_id = field("id", &|c| text(c, MAX_ID_CHARS)).map(FieldValue::text);
    let ts = field("ts", &|c| timestamp(required(c)?)).map(FieldValue::int);
    let model = field("model", &|c| required_text(c, 256)).map(FieldValue::text);
    let provider = field("provider", &|c| text(c, 128)).map(FieldValue::text);
    let workload = field("workload", &|c| text(c, 256)).map(FieldValue::text);
    let prompt = field("prompt_tokens", &count).map(FieldValue::int);
    let completion = field("completion_tokens", &count).map(FieldValue::int);
    let cached = field("cached_tokens", &|c| optional(c, |c| integer(c, 0))).map(FieldValue::int);
    let latency = field("latency_ms", &count).map(FieldValue::int);
    let max_tokens = field("max_tokens", &|c| optional(c, |c| integer(c, 1))).map(FieldValue::int);
    let cost = field("cost_usd", &|c| optional(c, money)).map(FieldValue::number);
    let prefix = field("prompt_prefix_hash", &|c| text(c, 256)).map(FieldValue::text);
    let interactive = field("interactive", &|c| optional(c, boolean)).map(FieldValue::flag);
    let status = field("status", &|c| optional(c, status)).map(FieldValue::flag);
    if let (Some(prompt), Some(cached)) = (prompt, cached)
        && cached > prompt
    {
        errors.push(RowError {
            row,
            field: "cached_tokens".into(),
            reason: format!("{cached} is more than prompt_tokens ({prompt})"),
        });
    }
    let (Some(ts), Some(model), Some(prompt_tokens), Some(completion_tokens), Some(latency_ms)) =
        (ts, model, prompt, completion, latency)
    else {
        return Err(errors);
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(UsageRecord {
        external_id,
        ts,
        model,
        provider,
        workload: workload.unwrap_or_else(|| "default".to_owned()),
        prompt_tokens,
        completion_tokens,
        cached_tokens: cached.unwrap_or(0),
        latency_ms,
        max_tokens,
        cost_usd: cost,
        prompt_prefix_hash: prefix,
        interactive: interactive.unwrap_or(true),
        is_error: status.is_some_and(|ok| !ok),
    })
}

/// A checked field on its way into the record.
enum FieldValue {
    /// A whole number: tokens, milliseconds.
    Int(i64),
    /// A non-negative amount: `cost_usd`.
    Number(f64),
    /// Text within its length limit.
    Text(String),
    /// `interactive`, or `status` as "ok".
    Flag(bool),
}

impl FieldValue {
    fn int(self) -> i64 {
        match self {
            Self::Int(n) => n,
            _ => 0,
        }
    }

    fn number(self) -> f64 {
        match self {
            Self::Number(n) => n,
            _ => 0.0,
        }
    }

    fn text(self) -> String {
        match self {
            Self::Text(s) => s,
            _ => String::new(),
        }
    }

    fn flag(self) -> bool {
        matches!(self, Self::Flag(true))
    }
}

/// A field's value as read from its cell (`None`: absent), or why it is refused.
type Parsed = Result<Option<FieldValue>, String>;

/// A required whole number of at least 0 (a token count, a latency).
fn count(cell: Option<Cell<'_>>) -> Parsed {
    integer(required(cell)?, 0)
}

fn required(cell: Option<Cell<'_>>) -> Result<Cell<'_>, String> {
    cell.ok_or_else(|| "required".to_owned())
}

fn optional<'a>(
    cell: Option<Cell<'a>>,
    parse: impl Fn(Cell<'a>) -> Result<Option<FieldValue>, String>,
) -> Result<Option<FieldValue>, String> {
    match cell {
        Some(cell) => parse(cell),
        None => Ok(None),
    }
}

fn required_text(cell: Option<Cell<'_>>, max: usize) -> Result<Option<FieldValue>, String> {
    text(Some(required(cell)?), max)
}

fn text(cell: Option<Cell<'_>>, max: usize) -> Result<Option<FieldValue>, String> {
    let raw = match cell {
        None => return Ok(None),
        Some(Cell::Json(Value::String(s))) => s.as_str(),
        Some(Cell::Text(s)) => s,
        Some(Cell::Json(other)) => return Err(format!("must be a string, got {other}")),
    };
    let len = raw.chars().count();
    if len == 0 || len > max {
        return Err(format!("must be 1-{max} characters, got {len}"));
    }
    // PostgreSQL text cannot hold NUL: refused here, on both databases, so one row can never
    // fail the insert of a whole upload.
    if raw.contains('\0') {
        return Err("contains a NUL character (U+0000), which cannot be stored; remove it".into());
    }
    Ok(Some(FieldValue::Text(raw.to_owned())))
}

fn integer(cell: Cell<'_>, min: i64) -> Result<Option<FieldValue>, String> {
    let n = match cell {
        Cell::Json(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| format!("must be a whole number, got {n}"))?,
        Cell::Text(s) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("must be a whole number, got {s:?}"))?,
        Cell::Json(other) => return Err(format!("must be a whole number, got {other}")),
    };
    if n < min {
        return Err(format!("must be at least {min}, got {n}"));
    }
    Ok(Some(FieldValue::Int(bounds::count(n)?)))
}

fn money(cell: Cell<'_>) -> Result<Option<FieldValue>, String> {
    let n = match cell {
        Cell::Json(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Cell::Text(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("must be a number, got {s:?}"))?,
        Cell::Json(other) => return Err(format!("must be a number, got {other}")),
    };
    if !n.is_finite() || n < 0.0 {
        return Err(format!("must be a number of at least 0, got {n}"));
    }
    Ok(Some(FieldValue::Number(bounds::cost(n)?)))
}

fn boolean(cell: Cell<'_>) -> Result<Option<FieldValue>, String> {
    let b = match cell {
        Cell::Json(Value::Bool(b)) => *b,
        Cell::Json(Value::Number(n)) if n.as_i64() == Some(1) => true,
        Cell::Json(Value::Number(n)) if n.as_i64() == Some(0) => false,
        Cell::Text("true" | "1") => true,
        Cell::Text("false" | "0") => false,
        Cell::Text(s) => return Err(format!("must be true, false, 1 or 0, got {s:?}")),
        Cell::Json(other) => return Err(format!("must be true, false, 1 or 0, got {other}")),
    };
    Ok(Some(FieldValue::Flag(b)))
}

/// `ok` → true, `error` → false.
fn status(cell: Cell<'_>) -> Result<Option<FieldValue>, String> {
    match cell {
        Cell::Json(Value::String(s)) if s == "ok" => Ok(Some(FieldValue::Flag(true))),
        Cell::Text("ok") => Ok(Some(FieldValue::Flag(true))),
        Cell::Json(Value::String(s)) if s == "error" => Ok(Some(FieldValue::Flag(false))),
        Cell::Text("error") => Ok(Some(FieldValue::Flag(false))),
        Cell::Json(other) => Err(format!("must be \"ok\" or \"error\", got {other}")),
        Cell::Text(s) => Err(format!("must be \"ok\" or \"error\", got {s:?}")),
    }
}

fn timestamp(cell: Cell<'_>) -> Result<Option<FieldValue>, String> {
    let ms = match cell {
        Cell::Json(Value::Number(n)) => n
            .as_i64()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("must be epoch milliseconds or RFC 3339, got {n}"))?,
        Cell::Json(Value::String(s)) => parse_time(s)?,
        Cell::Text(s) => parse_time(s)?,
        Cell::Json(other) => {
            return Err(format!(
                "must be epoch milliseconds or RFC 3339, got {other}"
            ));
        }
    };
    Ok(Some(FieldValue::Int(bounds::timestamp(ms, now_ms())?)))
}

/// Epoch milliseconds (digits) or an RFC 3339 date-time.
pub fn parse_time(raw: &str) -> Result<i64, String> {
    let raw = raw.trim();
    if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        return raw
            .parse::<i64>()
            .map_err(|_| format!("{raw:?} is too large for epoch milliseconds"));
    }
    let parsed = time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map_err(|_| format!("must be epoch milliseconds or RFC 3339, got {raw:?}"))?;
    Ok((parsed.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(value: Value) -> Result<UsageRecord, Vec<RowError>> {
        validate(1, |name| value.get(name).map(Cell::Json))
    }

    #[test]
    fn a_full_record() {
        let r = check(
            json!({"id":"r1","ts":"2026-11-01T00:00:00Z","model":"gpt-4o",
            "prompt_tokens":100,"completion_tokens":20,"cached_tokens":50,"latency_ms":900,
            "max_tokens":256,"cost_usd":0.01,"interactive":false,"status":"error"}),
        )
        .expect("valid");
        assert_eq!(r.ts, 1_793_491_200_000);
        assert_eq!(r.workload, "default");
        assert!(!r.interactive && r.is_error);
    }

    #[test]
    fn one_error_per_bad_field() {
        let errors = check(json!({"ts":"yesterday","model":"","prompt_tokens":-1,
            "completion_tokens":1.5,"latency_ms":"9","interactive":"yes"}))
        .expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "ts",
                "model",
                "prompt_tokens",
                "completion_tokens",
                "latency_ms",
                "interactive"
            ]
        );
        let cached = check(
            json!({"ts":1_700_000_000_000_i64,"model":"m","prompt_tokens":5,"completion_tokens":1,
            "latency_ms":1,"cached_tokens":6}),
        )
        .expect_err("invalid");
        assert_eq!(cached[0].field, "cached_tokens");
    }

    #[test]
    fn nul_in_any_stored_text_is_a_row_error_naming_the_field() {
        let good = json!({"ts":1_700_000_000_000_i64,"model":"m","prompt_tokens":1,"completion_tokens":1,
            "latency_ms":1});
        for field in ["id", "model", "provider", "workload", "prompt_prefix_hash"] {
            let mut row = good.clone();
            row[field] = json!("a\u{0}b");
            let errors = check(row).expect_err(field);
            assert_eq!(errors.len(), 1, "{field}");
            assert_eq!(errors[0].field, field);
            assert!(errors[0].reason.contains("NUL"), "{field}: {errors:?}");
        }
        let row = [
            ("ts", "1700000000000"),
            ("model", "m\0"),
            ("prompt_tokens", "1"),
        ];
        let errors = validate(3, |name| {
            row.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| Cell::Text(v))
        })
        .expect_err("invalid");
        assert_eq!((errors[0].row, errors[0].field.as_str()), (3, "model"));
        assert!(errors[0].reason.contains("NUL"));
    }

    #[test]
    fn csv_cells() {
        let row = [
            ("ts", "1700000000000"),
            ("model", "m"),
            ("prompt_tokens", "1"),
            ("completion_tokens", "2"),
            ("latency_ms", "3"),
            ("interactive", "0"),
        ];
        let r = validate(1, |name| {
            row.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| Cell::Text(v))
        })
        .expect("valid");
        assert!(!r.interactive);
        assert_eq!(r.ts, 1_700_000_000_000);
    }
}
