//! Reading an upload: NDJSON, CSV (with a header row) or a JSON array, parsed one row at a
//! time from the body (no intermediate copy of the whole upload) into valid records and row
//! errors.

use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde_json::Value;

use super::record::{Cell, RowError, UsageRecord, validate};

/// Row errors reported in full; the rest are only counted.
pub const MAX_REPORTED_ERRORS: usize = 100;

/// The upload formats of PROTOCOL.md §3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    NdJson,
    Csv,
    JsonArray,
}

impl Format {
    /// The format a `Content-Type` names, ignoring parameters such as `charset`.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        match essence.to_ascii_lowercase().as_str() {
            "application/x-ndjson" | "application/ndjson" | "application/jsonl" => {
                Some(Self::NdJson)
            }
            "text/csv" => Some(Self::Csv),
            "application/json" => Some(Self::JsonArray),
            _ => None,
        }
    }
}

/// What an upload held.
#[derive(Debug, Default)]
pub struct Parsed {
    pub records: Vec<UsageRecord>,
    /// The first `MAX_REPORTED_ERRORS` field errors.
    pub errors: Vec<RowError>,
    /// Rows with at least one error.
    pub rejected: usize,
}

impl Parsed {
    /// Adds one row's outcome: a record, or its errors (the first `MAX_REPORTED_ERRORS` kept).
    pub fn add(&mut self, result: Result<UsageRecord, Vec<RowError>>) {
        match result {
            Ok(record) => self.records.push(record),
            Err(errors) => {
                self.rejected += 1;
                let room = MAX_REPORTED_ERRORS.saturating_sub(self.errors.len());
                self.errors.extend(errors.into_iter().take(room));
            }
        }
    }

    fn read(&mut self, result: Option<Result<UsageRecord, Vec<RowError>>>) {
        if let Some(result) = result {
            self.add(result);
        }
    }

    /// Counts `row` as refused as a whole, for `reason`.
    pub fn whole_row(&mut self, row: usize, reason: String) {
        self.add(Err(vec![RowError {
            row,
            field: String::new(),
            reason,
        }]));
    }
}

/// The body cannot be read as its format at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("the body is not UTF-8 text")]
    NotUtf8,
    #[error("malformed JSON array: {0}")]
    JsonArray(String),
    #[error("malformed CSV: {0}")]
    Csv(String),
}

/// One row of an upload as read, before validation.
#[derive(Debug, Clone, Copy)]
pub enum Row<'a> {
    /// A JSON object (an NDJSON line, an array element).
    Json(&'a Value),
    /// A CSV record and the header row naming its cells.
    Csv {
        /// The header row.
        headers: &'a csv::StringRecord,
        /// The record.
        record: &'a csv::StringRecord,
    },
}

impl<'a> Row<'a> {
    /// The value of `name` as a canonical record spells it (an empty CSV cell is absent).
    pub fn cell(&self, name: &str) -> Option<Cell<'a>> {
        match *self {
            Row::Json(value) => value.get(name).map(Cell::Json),
            Row::Csv { headers, record } => {
                let at = headers.iter().position(|h| h == name)?;
                record.get(at).filter(|v| !v.is_empty()).map(Cell::Text)
            }
        }
    }
}

/// What is done with each row: `Ok` a record (or `None`: not a row of data, skipped), `Err`
/// the row's errors.
pub type RowReader<'r> =
    dyn FnMut(usize, Row<'_>) -> Option<Result<UsageRecord, Vec<RowError>>> + 'r;

/// Reads an upload's body as `format` into valid records and per-row errors; an `Err` only
/// when the body cannot be read as that format at all. Blocking: the route runs it off the
/// arbiters.
pub fn parse(format: Format, body: &[u8]) -> Result<Parsed, ParseError> {
    read_rows(format, body, &mut |row, fields| {
        Some(validate(row, |name| fields.cell(name)))
    })
}

/// Reads each row of `body` (as `format`) with `read`, gathering records and row errors; rows
/// count from 1 (CSV after the header, NDJSON non-blank lines, array elements).
pub fn read_rows(
    format: Format,
    body: &[u8],
    read: &mut RowReader<'_>,
) -> Result<Parsed, ParseError> {
    let mut parsed = Parsed::default();
    match format {
        Format::NdJson => ndjson_rows(body, &mut parsed, read)?,
        Format::Csv => csv_rows(body, &mut parsed, read)?,
        Format::JsonArray => array_rows(body, &mut parsed, read)?,
    }
    Ok(parsed)
}

fn ndjson_rows(
    body: &[u8],
    parsed: &mut Parsed,
    read: &mut RowReader<'_>,
) -> Result<(), ParseError> {
    let text = std::str::from_utf8(body).map_err(|_| ParseError::NotUtf8)?;
    let lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    for (i, line) in lines.enumerate() {
        let row = i + 1;
        match serde_json::from_str::<Value>(line) {
            Ok(value @ Value::Object(_)) => parsed.read(read(row, Row::Json(&value))),
            Ok(_) => parsed.whole_row(row, "a line must be a JSON object".into()),
            Err(e) => parsed.whole_row(row, format!("malformed JSON: {e}")),
        }
    }
    Ok(())
}

fn csv_rows(body: &[u8], parsed: &mut Parsed, read: &mut RowReader<'_>) -> Result<(), ParseError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(body);
    let headers = reader
        .headers()
        .map_err(|e| ParseError::Csv(e.to_string()))?
        .clone();
    let mut record = csv::StringRecord::new();
    let mut row = 0;
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                row += 1;
                let fields = Row::Csv {
                    headers: &headers,
                    record: &record,
                };
                parsed.read(read(row, fields));
            }
            Err(e) => {
                row += 1;
                if matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) {
                    parsed.whole_row(row, "the row is not UTF-8".into());
                } else if matches!(e.kind(), csv::ErrorKind::UnequalLengths { .. }) {
                    parsed.whole_row(row, format!("{e}"));
                } else {
                    return Err(ParseError::Csv(e.to_string()));
                }
            }
        }
    }
    Ok(())
}

/// Reads each element of a JSON array as it is parsed, keeping no copy of the array.
fn array_rows(
    body: &[u8],
    parsed: &mut Parsed,
    read: &mut RowReader<'_>,
) -> Result<(), ParseError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    ArraySeed { parsed, read }
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| ParseError::JsonArray(e.to_string()))
}

struct ArraySeed<'p, 'r, 'q> {
    parsed: &'p mut Parsed,
    read: &'q mut RowReader<'r>,
}

impl<'de> DeserializeSeed<'de> for ArraySeed<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ArraySeed<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of usage records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut row = 0;
        while let Some(value) = seq.next_element::<Value>()? {
            row += 1;
            match value {
                Value::Object(_) => self.parsed.read((self.read)(row, Row::Json(&value))),
                _ => self
                    .parsed
                    .whole_row(row, "an element must be a JSON object".into()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"ts":1700000000000,"model":"m","prompt_tokens":1,"completion_tokens":1,"latency_ms":1}"#;

    #[test]
    fn ndjson_rows_count_from_one_and_skip_blank_lines() {
        let body = format!("{GOOD}\n\n{{\"ts\":1}}\nnot json\n{GOOD}\n");
        let parsed = parse(Format::NdJson, body.as_bytes()).expect("readable");
        assert_eq!(parsed.records.len(), 2);
        assert_eq!(parsed.rejected, 2);
        assert_eq!(parsed.errors[0].row, 2);
        assert_eq!(parsed.errors.last().map(|e| e.row), Some(3));
    }

    #[test]
    fn json_array_and_csv() {
        let body = format!("[{GOOD}, 3, {GOOD}]");
        let parsed = parse(Format::JsonArray, body.as_bytes()).expect("readable");
        assert_eq!((parsed.records.len(), parsed.rejected), (2, 1));
        assert!(parse(Format::JsonArray, b"{}").is_err());
        assert!(parse(Format::JsonArray, b"[1,").is_err());
        let csv = "ts,model,prompt_tokens,completion_tokens,latency_ms,cached_tokens\n\
                   1700000000000,m,1,1,1,\n1700000000001,m,x,1,1,0\n";
        let parsed = parse(Format::Csv, csv.as_bytes()).expect("readable");
        assert_eq!(parsed.records.len(), 1);
        assert_eq!(parsed.errors[0].row, 2);
        assert_eq!(parsed.errors[0].field, "prompt_tokens");
    }

    #[test]
    fn at_most_a_hundred_errors_reported() {
        let body = "{}\n".repeat(150);
        let parsed = parse(Format::NdJson, body.as_bytes()).expect("readable");
        assert_eq!(parsed.rejected, 150);
        assert_eq!(parsed.errors.len(), MAX_REPORTED_ERRORS);
    }
}
