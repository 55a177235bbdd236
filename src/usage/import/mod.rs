//! Importers of provider and gateway exports as they are (`POST /api/usage?format=…`, PROTOCOL
//! §3): OpenAI-compatible chat-completion logs, LiteLLM spend logs, Helicone and Langfuse
//! request/generation exports, OpenTelemetry GenAI spans (OTLP JSON). Each maps a source row
//! to a canonical `UsageRecord` (validated like any upload, errors named by the source field)
//! and says which source fields it used and which it ignored. Without `format` an export is
//! recognised from its first row when that is unambiguous.

mod gateways;
mod openai;
mod otel;
pub mod source;

use std::collections::BTreeSet;

use serde_json::Value;

use super::parse::{Format, ParseError, Parsed, Row, parse, read_rows};
use source::Mapped;

/// Field names listed in `fields_used` / `fields_ignored` at most.
const MAX_FIELDS_LISTED: usize = 100;

/// The exports enclave reads as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    OpenAi,
    LiteLlm,
    Helicone,
    Langfuse,
    Otel,
}

impl ImportFormat {
    /// Every format, by its `format=` name.
    pub const ALL: [Self; 5] = [
        Self::OpenAi,
        Self::LiteLlm,
        Self::Helicone,
        Self::Langfuse,
        Self::Otel,
    ];

    /// The `format=` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::LiteLlm => "litellm",
            Self::Helicone => "helicone",
            Self::Langfuse => "langfuse",
            Self::Otel => "otel",
        }
    }

    /// The format named `name`.
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == name)
    }

    /// Whether a first row with these field names is this format's.
    fn recognises(self, names: &BTreeSet<String>) -> bool {
        let has = |n: &str| names.contains(n);
        match self {
            Self::OpenAi => {
                has("usage") && (has("choices") || has("object"))
                    || has("custom_id") && has("response")
                    || has("request") && has("response")
            }
            Self::LiteLlm => has("request_id") && has("spend") && has("startTime"),
            Self::Helicone => has("request_created_at") || has("response_created_at"),
            Self::Langfuse => {
                (has("traceId") || has("trace_id")) && (has("startTime") || has("start_time"))
            }
            Self::Otel => has("resourceSpans"),
        }
    }
}

/// An export read: its records and row errors, and the source fields used and ignored.
#[derive(Debug, Default)]
pub struct Imported {
    /// Records and row errors.
    pub parsed: Parsed,
    /// Source fields mapped to a record field (sorted).
    pub fields_used: Vec<String>,
    /// Source fields present and not used (sorted).
    pub fields_ignored: Vec<String>,
}

/// The export format of `body` (read as `container`), if its first row says so unambiguously;
/// `None` for enclave's own layout or anything unclear.
pub fn detect(container: Format, body: &[u8]) -> Option<ImportFormat> {
    let names = first_row_names(container, body)?;
    if names.contains("ts") && names.contains("prompt_tokens") {
        return None;
    }
    let mut matching = ImportFormat::ALL
        .into_iter()
        .filter(|f| f.recognises(&names));
    let found = matching.next()?;
    matching.next().is_none().then_some(found)
}

/// The field names of the first row (top-level keys, or the CSV header).
fn first_row_names(container: Format, body: &[u8]) -> Option<BTreeSet<String>> {
    let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect());
    match container {
        Format::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .trim(csv::Trim::All)
                .from_reader(body);
            Some(reader.headers().ok()?.iter().map(str::to_owned).collect())
        }
        Format::NdJson => {
            let text = std::str::from_utf8(body).ok()?;
            let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
            keys(&serde_json::from_str(line).ok()?)
        }
        Format::JsonArray => {
            let starts_array = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
            if !starts_array {
                // One document (OTLP JSON): its own keys.
                return keys(&serde_json::from_slice(body).ok()?);
            }
            // Only the first element is parsed, not the whole array.
            let mut first = None;
            let mut de = serde_json::Deserializer::from_slice(body);
            let _ = serde::Deserializer::deserialize_seq(&mut de, FirstElement(&mut first));
            keys(&first?)
        }
    }
}

/// Keeps the first element of a JSON array and stops reading there.
struct FirstElement<'f>(&'f mut Option<Value>);

impl<'de> serde::de::Visitor<'de> for FirstElement<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        *self.0 = seq.next_element()?;
        Ok(())
    }
}

/// Reads an upload as the export `export` names, or as one it is recognised to be, or in
/// enclave's own layout; says which export it read. Blocking.
pub fn read_upload(
    container: Format,
    export: Option<ImportFormat>,
    body: &[u8],
) -> Result<(Option<ImportFormat>, Imported), ParseError> {
    match export.or_else(|| detect(container, body)) {
        Some(export) => Ok((Some(export), import(export, container, body)?)),
        None => Ok((
            None,
            Imported {
                parsed: parse(container, body)?,
                ..Imported::default()
            },
        )),
    }
}

/// Reads `body` (as `container`) as an export of `format`.
pub fn import(
    format: ImportFormat,
    container: Format,
    body: &[u8],
) -> Result<Imported, ParseError> {
    let mut fields = FieldLists::default();
    let parsed = match format {
        ImportFormat::Otel => otel::read(container, body, &mut fields)?,
        _ => {
            let map: fn(&Row<'_>) -> Option<Mapped> = match format {
                ImportFormat::OpenAi => openai::map,
                ImportFormat::LiteLlm => gateways::litellm,
                ImportFormat::Helicone => gateways::helicone,
                _ => gateways::langfuse,
            };
            read_rows(container, body, &mut |row, fields_of| {
                fields.saw(&fields_of);
                let mapped = map(&fields_of)?;
                fields.used(&mapped);
                Some(mapped.validate(row))
            })?
        }
    };
    let (fields_used, fields_ignored) = fields.lists();
    Ok(Imported {
        parsed,
        fields_used,
        fields_ignored,
    })
}

/// The source fields seen and used over an import.
#[derive(Debug, Default)]
pub(crate) struct FieldLists {
    seen: BTreeSet<String>,
    used: BTreeSet<String>,
}

impl FieldLists {
    /// Notes the fields of a source row (JSON paths three levels deep, or CSV columns).
    pub(crate) fn saw(&mut self, row: &Row<'_>) {
        match *row {
            Row::Json(value) => self.saw_json("", value, 3),
            Row::Csv { headers, .. } => self.saw_names(headers.iter()),
        }
    }

    /// Notes fields by their names (empty names aside).
    pub(crate) fn saw_names<'n>(&mut self, names: impl Iterator<Item = &'n str>) {
        for name in names.filter(|n| !n.is_empty()) {
            self.note_seen(name.to_owned());
        }
    }

    /// Notes the fields under `value`, named from `prefix`.
    pub(crate) fn saw_json(&mut self, prefix: &str, value: &Value, depth: u32) {
        let Some(object) = value.as_object() else {
            return;
        };
        for (key, child) in object {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            if depth > 1 && child.is_object() {
                self.saw_json(&path, child, depth - 1);
            } else {
                self.note_seen(path);
            }
        }
    }

    fn note_seen(&mut self, path: String) {
        if self.seen.len() < 10 * MAX_FIELDS_LISTED {
            self.seen.insert(path);
        }
    }

    /// Notes the source fields a mapped row read.
    pub(crate) fn used(&mut self, mapped: &Mapped) {
        self.used.extend(mapped.used.iter().cloned());
    }

    /// (used, ignored): a seen field is used when it, a field under it or one above it was read.
    fn lists(self) -> (Vec<String>, Vec<String>) {
        let related = |seen: &str| {
            self.used.iter().any(|u| {
                u == seen
                    || u.strip_prefix(seen).is_some_and(|r| r.starts_with('.'))
                    || seen
                        .strip_prefix(u.as_str())
                        .is_some_and(|r| r.starts_with('.'))
            })
        };
        let ignored = self
            .seen
            .iter()
            .filter(|s| !related(s))
            .take(MAX_FIELDS_LISTED)
            .cloned()
            .collect();
        let used = self.used.into_iter().take(MAX_FIELDS_LISTED).collect();
        (used, ignored)
    }
}
