//! What an importer reads and writes: a source row's fields by path (`a.b.c` in JSON, a
//! column name in CSV), and the canonical record fields it maps them to, each remembering the
//! source field it came from so a row error names the field as the export spells it.

use serde_json::Value;

use crate::usage::parse::Row;
use crate::usage::record::{Cell, RowError, UsageRecord, parse_time, validate};

/// A canonical field's value as an importer produced it.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    /// Typed JSON (from JSON, or computed).
    Json(Value),
    /// CSV text.
    Text(String),
}

/// A canonical record being built from one source row.
#[derive(Debug, Default)]
pub struct Mapped {
    /// (canonical name, value, source field it came from or `""` when the importer set it).
    fields: Vec<(&'static str, Raw, String)>,
    /// Source fields read, for `fields_used`.
    pub used: Vec<String>,
}

impl Mapped {
    /// Sets `name` to `value`, read from `source`.
    pub fn set(&mut self, name: &'static str, value: Raw, source: &str) {
        if !source.is_empty() {
            self.used.push(source.to_owned());
        }
        self.fields.push((name, value, source.to_owned()));
    }

    /// Sets `name` to the first of `paths` present in `row`; whether one was.
    pub fn first(&mut self, name: &'static str, row: &Row<'_>, paths: &[&str]) -> bool {
        for path in paths {
            if let Some(value) = get(row, path) {
                self.set(name, value, path);
                return true;
            }
        }
        false
    }

    /// Sets `status` from whether the request failed, as `source` says.
    pub fn outcome(&mut self, failed: bool, source: &str) {
        let status = if failed { "error" } else { "ok" };
        self.set("status", Raw::Json(Value::from(status)), source);
    }

    /// Sets `name` to a value no source field holds (a default, a constant).
    pub fn fallback(&mut self, name: &'static str, value: Value) {
        if !self.fields.iter().any(|(n, ..)| *n == name) {
            self.fields.push((name, Raw::Json(value), String::new()));
        }
    }

    /// Validates the record built, naming each bad field as the source spells it.
    pub fn validate(&self, row: usize) -> Result<UsageRecord, Vec<RowError>> {
        let cell = |name: &str| {
            self.fields
                .iter()
                .find(|(n, ..)| *n == name)
                .map(|(_, raw, _)| match raw {
                    Raw::Json(v) => Cell::Json(v),
                    Raw::Text(t) => Cell::Text(t),
                })
        };
        validate(row, cell).map_err(|errors| {
            errors
                .into_iter()
                .map(|mut e| {
                    if let Some((_, _, source)) = self.fields.iter().find(|(n, ..)| *n == e.field)
                        && !source.is_empty()
                    {
                        e.field.clone_from(source);
                    }
                    e
                })
                .collect()
        })
    }
}

/// The value at `path` in `row`: JSON objects walked by `.`-separated keys (a key may itself
/// hold dots, as OTel attribute names do, only as the last step), a CSV column by its whole
/// name. Nulls and empty cells are absent.
pub fn get(row: &Row<'_>, path: &str) -> Option<Raw> {
    match *row {
        Row::Json(value) => json_at(value, path).cloned().map(Raw::Json),
        Row::Csv { .. } => match row.cell(path)? {
            Cell::Text(text) => Some(Raw::Text(text.to_owned())),
            Cell::Json(value) => Some(Raw::Json(value.clone())),
        },
    }
}

/// The JSON value at `path` (not null).
pub fn json_at<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    let mut here = value;
    for key in path.split('.') {
        here = here.get(key)?;
    }
    (!here.is_null()).then_some(here)
}

/// A value as text (a JSON string or number, or CSV text).
pub fn text_of(raw: &Raw) -> Option<String> {
    match raw {
        Raw::Json(Value::String(s)) | Raw::Text(s) => Some(s.clone()),
        Raw::Json(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// A value as a number (a JSON number, or text that reads as one).
pub fn number_of(raw: &Raw) -> Option<f64> {
    match raw {
        Raw::Json(Value::Number(n)) => n.as_f64(),
        Raw::Json(Value::String(s)) | Raw::Text(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Epoch milliseconds of an export's timestamp: epoch ms, RFC 3339, or a UTC date-time
/// without a zone (`2024-05-29 13:46:19.963000`, `2024-05-29T13:46:19`).
pub fn millis_of(raw: &Raw) -> Option<i64> {
    if let Some(n) = match raw {
        Raw::Json(Value::Number(n)) => n.as_i64(),
        _ => None,
    } {
        return Some(n);
    }
    let text = text_of(raw)?;
    let text = text.trim();
    if let Ok(ms) = parse_time(text) {
        return Some(ms);
    }
    let mut zoned = text.replacen(' ', "T", 1);
    let time_part = zoned.split_once('T').map_or("", |(_, t)| t);
    if !time_part.contains(['Z', 'z', '+', '-']) {
        zoned.push('Z');
    }
    parse_time(&zoned).ok()
}

/// Sets `ts` from the first of `paths` that reads as a time (else the raw value, so the row
/// error names it), and `latency_ms` from its distance to the first of `ends`.
pub fn time_and_latency(mapped: &mut Mapped, row: &Row<'_>, starts: &[&str], ends: &[&str]) {
    let Some((start_path, start)) = starts.iter().find_map(|p| get(row, p).map(|v| (*p, v))) else {
        return;
    };
    let start_ms = millis_of(&start);
    match start_ms {
        Some(ms) => mapped.set("ts", Raw::Json(Value::from(ms)), start_path),
        None => mapped.set("ts", start, start_path),
    }
    let end = ends.iter().find_map(|p| get(row, p).map(|v| (*p, v)));
    if let (Some(start_ms), Some((end_path, end))) = (start_ms, end)
        && let Some(end_ms) = millis_of(&end)
    {
        mapped.set(
            "latency_ms",
            Raw::Json(Value::from(end_ms.saturating_sub(start_ms))),
            end_path,
        );
    }
}
