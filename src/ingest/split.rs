//! Cutting a usage file of any size into upload bodies under a byte budget, reading it once
//! with bounded memory: NDJSON by lines, CSV by records (each part with the header row), a
//! JSON array by elements (each part sent as NDJSON, the server counts its rows the same).
//! A part holds whole rows only; a row bigger than the budget is a part of its own.

use std::cell::Cell;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::rc::Rc;

use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde_json::value::RawValue;
use web_bytes::Bytes;

/// How a file holds its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Container {
    /// One JSON object per line.
    NdJson,
    /// A header row, then one record per row.
    Csv,
    /// One JSON array of objects.
    JsonArray,
    /// One JSON document sent whole (an OTLP JSON export request).
    Whole,
}

impl Container {
    /// The container a file name says: `.ndjson`/`.jsonl`, `.csv` or `.json`.
    pub fn of_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "ndjson" | "jsonl" => Some(Self::NdJson),
            "csv" => Some(Self::Csv),
            "json" => Some(Self::JsonArray),
            _ => None,
        }
    }

    /// The `Content-Type` of the parts cut from such a file.
    pub fn part_content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv",
            Self::Whole => "application/json",
            Self::NdJson | Self::JsonArray => "application/x-ndjson",
        }
    }
}

/// One upload body: whole rows of the file.
#[derive(Debug, Clone)]
pub struct Part {
    /// The body as sent.
    pub body: Bytes,
    /// The file's rows before this part's first (data rows, from 0).
    pub first_row: u64,
    /// The rows in this part.
    pub rows: u64,
    /// How far into the file this part's last row ends, in bytes (for progress).
    pub file_offset: u64,
}

/// The file cannot be cut into parts.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    #[error("reading the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("malformed JSON array: {0}")]
    JsonArray(serde_json::Error),
}

/// What to do with each part: `false` stops the cutting (the receiver has gone).
pub trait PartSink {
    /// Takes a part; `false` to stop.
    fn take(&mut self, part: Part) -> bool;
}

impl<F: FnMut(Part) -> bool> PartSink for F {
    fn take(&mut self, part: Part) -> bool {
        self(part)
    }
}

/// Cuts `path` into parts of at most `budget` bytes (a single bigger row aside), skipping its
/// first `skip_rows` rows, and hands each to `sink`. Blocking: run it on a thread of its own.
pub fn split(
    path: &Path,
    container: Container,
    budget: usize,
    skip_rows: u64,
    sink: &mut dyn PartSink,
) -> Result<(), SplitError> {
    let read = Rc::new(Cell::new(0));
    let file = CountingReader {
        inner: File::open(path)?,
        read: read.clone(),
    };
    let mut cutter = Cutter::new(budget, skip_rows, sink, read);
    match container {
        Container::NdJson => split_lines(BufReader::with_capacity(1 << 16, file), &mut cutter)?,
        Container::Csv => split_csv(file, &mut cutter)?,
        Container::JsonArray => split_array(file, &mut cutter)?,
        Container::Whole => {
            let mut body = Vec::new();
            BufReader::new(file).read_to_end(&mut body)?;
            cutter.row(&body);
        }
    }
    cutter.flush();
    Ok(())
}

/// Gathers rows into parts; `read` is how far the reader has got.
struct Cutter<'s> {
    budget: usize,
    /// Rows still to skip (sent by an earlier run).
    skip: u64,
    /// Rows seen, skipped ones included.
    rows_seen: u64,
    /// The part being filled: its header (CSV), body, first row and rows.
    header: Vec<u8>,
    body: Vec<u8>,
    first_row: u64,
    rows: u64,
    read: Rc<Cell<u64>>,
    sink: &'s mut dyn PartSink,
    stopped: bool,
}

impl<'s> Cutter<'s> {
    fn new(budget: usize, skip: u64, sink: &'s mut dyn PartSink, read: Rc<Cell<u64>>) -> Self {
        Self {
            budget: budget.max(1),
            skip,
            rows_seen: 0,
            header: Vec::new(),
            body: Vec::new(),
            first_row: skip,
            rows: 0,
            read,
            sink,
            stopped: false,
        }
    }

    /// Adds one row (with its line end); `false` once the sink stopped.
    fn row(&mut self, row: &[u8]) -> bool {
        self.rows_seen += 1;
        if self.rows_seen <= self.skip {
            return true;
        }
        if self.rows > 0 && self.body.len() + row.len() > self.budget {
            self.flush();
        }
        if self.body.is_empty() {
            self.body.extend_from_slice(&self.header);
        }
        self.body.extend_from_slice(row);
        self.rows += 1;
        !self.stopped
    }

    /// Hands the part filled so far to the sink.
    fn flush(&mut self) {
        if self.rows == 0 || self.stopped {
            return;
        }
        let part = Part {
            body: Bytes::from(std::mem::take(&mut self.body)),
            first_row: self.first_row,
            rows: self.rows,
            file_offset: self.read.get(),
        };
        self.first_row += self.rows;
        self.rows = 0;
        self.stopped = !self.sink.take(part);
    }
}

fn split_lines(
    mut file: BufReader<CountingReader<File>>,
    cutter: &mut Cutter<'_>,
) -> Result<(), SplitError> {
    let mut line = Vec::new();
    loop {
        line.clear();
        if file.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if !line.ends_with(b"\n") {
            line.push(b'\n');
        }
        if !cutter.row(&line) {
            return Ok(());
        }
    }
}

fn split_csv(file: CountingReader<File>, cutter: &mut Cutter<'_>) -> Result<(), SplitError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(file);
    cutter.header = csv_line(reader.byte_headers()?)?;
    let mut record = csv::ByteRecord::new();
    while reader.read_byte_record(&mut record)? {
        if !cutter.row(&csv_line(&record)?) {
            break;
        }
    }
    Ok(())
}

/// One CSV record written back as a line, quoted as needed.
fn csv_line(record: &csv::ByteRecord) -> Result<Vec<u8>, SplitError> {
    let mut writer = csv::WriterBuilder::new()
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    writer.write_byte_record(record)?;
    writer
        .into_inner()
        .map_err(|e| SplitError::Io(e.into_error()))
}

fn split_array(file: CountingReader<File>, cutter: &mut Cutter<'_>) -> Result<(), SplitError> {
    let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(1 << 16, file));
    let read = ArrayRows(cutter).deserialize(&mut de);
    if cutter.stopped {
        // The sink has what it wanted; the rest is not read.
        return Ok(());
    }
    read.and_then(|()| de.end()).map_err(SplitError::JsonArray)
}

/// Hands each element of a JSON array to the cutter as an NDJSON line, as it is read.
struct ArrayRows<'c, 's>(&'c mut Cutter<'s>);

impl<'de> DeserializeSeed<'de> for ArrayRows<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ArrayRows<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of usage records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut line = Vec::new();
        while let Some(element) = seq.next_element::<Box<RawValue>>()? {
            line.clear();
            // One line per row: a pretty-printed element's line breaks are whitespace between
            // tokens (a JSON string holds none raw), so they become spaces.
            line.extend(
                element
                    .get()
                    .bytes()
                    .map(|b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
            );
            line.push(b'\n');
            if !self.0.row(&line) {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// A reader that counts the bytes read through it (read ahead of the rows handed out by at
/// most a buffer, close enough for a progress bar).
struct CountingReader<R> {
    inner: R,
    read: Rc<Cell<u64>>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parts `text` in a file of `container` cuts into, as (first row, rows, body).
    fn try_parts(
        container: Container,
        text: &str,
        budget: usize,
        skip: u64,
    ) -> Result<Vec<(u64, u64, String)>, SplitError> {
        let dir = std::env::temp_dir().join(format!("enclave-split-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("file");
        std::fs::write(&path, text).expect("written");
        let mut out = Vec::new();
        let mut sink = |p: Part| {
            out.push((
                p.first_row,
                p.rows,
                String::from_utf8_lossy(&p.body).into_owned(),
            ));
            true
        };
        let result = split(&path, container, budget, skip, &mut sink);
        let _ = std::fs::remove_dir_all(dir);
        result.map(|()| out)
    }

    fn parts(
        container: Container,
        text: &str,
        budget: usize,
        skip: u64,
    ) -> Vec<(u64, u64, String)> {
        try_parts(container, text, budget, skip).expect("split")
    }

    #[test]
    fn ndjson_parts_hold_whole_lines_under_the_budget() {
        let text = "{\"a\":1}\n\n{\"a\":2}\n{\"a\":3}\n{\"a\":4444444444}";
        let got = parts(Container::NdJson, text, 16, 0);
        assert_eq!(
            got,
            [
                (0, 2, "{\"a\":1}\n{\"a\":2}\n".to_owned()),
                (2, 1, "{\"a\":3}\n".to_owned()),
                (3, 1, "{\"a\":4444444444}\n".to_owned()),
            ]
        );
        let resumed = parts(Container::NdJson, text, 16, 2);
        assert_eq!(resumed.first().map(|p| p.0), Some(2));
        assert_eq!(resumed.len(), 2);
    }

    #[test]
    fn csv_parts_repeat_the_header_and_keep_quoted_newlines() {
        let text = "ts,model\n1,\"a\nb\"\n2,c\n3,\"d,e\"\n";
        let got = parts(Container::Csv, text, 20, 0);
        assert_eq!(
            got,
            [
                (0, 1, "ts,model\n1,\"a\nb\"\n".to_owned()),
                (1, 1, "ts,model\n2,c\n".to_owned()),
                (2, 1, "ts,model\n3,\"d,e\"\n".to_owned()),
            ]
        );
        let got = parts(Container::Csv, text, 1000, 1);
        assert_eq!(got, [(1, 2, "ts,model\n2,c\n3,\"d,e\"\n".to_owned())]);
    }

    #[test]
    fn a_json_array_becomes_ndjson_parts() {
        let text = "[ {\"a\": [1, 2]},\n {\"b\": \"x\"} , 3 ]";
        let got = parts(Container::JsonArray, text, 1000, 0);
        assert_eq!(
            got,
            [(0, 3, "{\"a\": [1, 2]}\n{\"b\": \"x\"}\n3\n".to_owned())]
        );
        // Pretty-printed, as jq or json.dump(indent=2) write it: still one line per element.
        let pretty =
            "[\n  {\n    \"a\": [\n      1,\r\n      2\n    ]\n  },\n  {\"b\": \"x y\"}\n]";
        let got = parts(Container::JsonArray, pretty, 1000, 0);
        assert_eq!(got.len(), 1);
        let (_, rows, body) = &got[0];
        assert_eq!((*rows, body.lines().count()), (2, 2), "{body:?}");
        let values: Vec<serde_json::Value> = body
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        assert_eq!(
            values,
            [
                serde_json::json!({"a": [1, 2]}),
                serde_json::json!({"b": "x y"})
            ]
        );
        let result = try_parts(Container::JsonArray, "[{\"a\":1},", 1000, 0);
        assert!(
            matches!(result, Err(SplitError::JsonArray(_))),
            "{result:?}"
        );
    }
}
