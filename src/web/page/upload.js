// A usage file of any size cut into uploads under the server's limit, as `enclave ingest` cuts
// it: NDJSON by lines, CSV by records (each part with the header row; quoted newlines kept), a
// JSON array by elements (each part a smaller array), any other JSON document whole. The file
// is read once per pass as a stream, so its size does not matter; a part is a slice of the
// file (`Blob.slice`), not a copy. Rows are counted as the server counts them (blank lines
// skipped), so its row numbers, offset by the part's first row, name rows of the whole file.

const NEWLINE = 0x0a;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;

// ASCII whitespace (space, tab, line feed, vertical tab, form feed, carriage return): what
// makes an NDJSON line blank to the server (`str::trim`).
const isSpace = (byte) => byte === 0x20 || (byte >= 0x09 && byte <= 0x0d);
// JSON's whitespace between tokens (space, tab, line feed, carriage return).
const isJsonSpace = (byte) => byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d;
// A UTF-8 byte order mark, which some tools write at a file's start.
const BOM = [0xef, 0xbb, 0xbf];

// How a file holds its rows, by its name and (for .json) its first byte.
export async function containerOf(file) {
  const name = file.name.toLowerCase();
  if (name.endsWith(".ndjson") || name.endsWith(".jsonl")) return "ndjson";
  if (name.endsWith(".csv")) return "csv";
  if (name.endsWith(".json")) {
    const head = new Uint8Array(await file.slice(0, 4096).arrayBuffer());
    const first = head.find((byte, at) => !isJsonSpace(byte) && !(at < 3 && BOM[at] === byte));
    return first === OPEN_ARRAY ? "array" : "whole";
  }
  return null;
}

export const CONTENT_TYPES = {
  ndjson: "application/x-ndjson",
  csv: "text/csv",
  array: "application/json",
  whole: "application/json",
};

// The file's bytes, chunk by chunk, with each chunk's offset in the file.
async function* chunks(file) {
  const reader = file.stream().getReader();
  let offset = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    yield { bytes: value, offset };
    offset += value.length;
  }
}

// Row spans [start, end) of an NDJSON file: its non-blank lines.
async function* ndjsonRows(file) {
  let start = 0;
  let blank = true;
  for await (const { bytes, offset } of chunks(file)) {
    for (let i = 0; i < bytes.length; i += 1) {
      const byte = bytes[i];
      if (byte === NEWLINE) {
        if (!blank) yield { start, end: offset + i + 1 };
        start = offset + i + 1;
        blank = true;
      } else if (!isSpace(byte)) {
        blank = false;
      }
    }
  }
  if (!blank) yield { start, end: file.size };
}

// Record spans of a CSV file, the header first (`header: true`), as the server's CSV reader
// reads them: a record ends at a line break (`\n`, `\r` or both) outside quotes; a quote opens
// a quoted field only at a field's start (elsewhere it is a plain character), where `""` is a
// quote and a line break is part of the field; only empty lines are skipped.
const FIELD_START = 0;
const UNQUOTED = 1;
const QUOTED = 2;
const QUOTE_IN_QUOTED = 3;
const CR = 0x0d;

async function* csvRows(file) {
  let start = 0;
  let empty = true;
  let state = FIELD_START;
  let header = true;
  for await (const { bytes, offset } of chunks(file)) {
    for (let i = 0; i < bytes.length; i += 1) {
      const byte = bytes[i];
      if (state === QUOTED) {
        if (byte === QUOTE) state = QUOTE_IN_QUOTED;
        continue;
      }
      if (state === QUOTE_IN_QUOTED && byte === QUOTE) {
        state = QUOTED;
        continue;
      }
      if (byte === NEWLINE || byte === CR) {
        if (!empty) {
          yield { start, end: offset + i + 1, header };
          header = false;
        }
        start = offset + i + 1;
        empty = true;
        state = FIELD_START;
        continue;
      }
      empty = false;
      if (byte === COMMA) state = FIELD_START;
      else if (state === FIELD_START) state = byte === QUOTE ? QUOTED : UNQUOTED;
      else state = UNQUOTED;
    }
  }
  if (!empty) yield { start, end: file.size, header };
}

// The file is not the JSON array it says it is.
export class MalformedFile extends Error {}

// Element spans of a JSON array (whitespace around them left out). Refuses what is not one
// array: text before or after it, an empty element (`[1,,2]`, `[1,]`), a bracket closed by the
// wrong kind (`[{"a":1}}`), a file that ends inside it — the rest of an element's syntax the
// server checks.
async function* arrayRows(file) {
  const closers = []; // the closing bracket each open one wants, innermost last
  let opened = false;
  let inString = false;
  let escaped = false;
  let start = -1;
  let afterComma = false;
  let lastByte = -1;
  const malformed = (at, what) => new MalformedFile(`not a JSON array at byte ${at}: ${what}`);
  for await (const { bytes, offset } of chunks(file)) {
    for (let i = 0; i < bytes.length; i += 1) {
      const byte = bytes[i];
      const at = offset + i;
      if (inString) {
        if (escaped) escaped = false;
        else if (byte === BACKSLASH) escaped = true;
        else if (byte === QUOTE) inString = false;
        lastByte = at;
        continue;
      }
      if (isJsonSpace(byte) || (at < 3 && BOM[at] === byte)) continue;
      const depth = closers.length;
      if (depth === 0) {
        if (opened) throw malformed(at, "text after the array's end");
        if (byte !== OPEN_ARRAY) throw malformed(at, "it does not start with [");
        opened = true;
        closers.push(CLOSE_ARRAY);
        continue;
      }
      if (depth === 1 && (byte === COMMA || byte === CLOSE_ARRAY)) {
        if (start >= 0) yield { start, end: lastByte + 1 };
        else if (byte === COMMA || afterComma) throw malformed(at, "an empty element");
        start = -1;
        afterComma = byte === COMMA;
        if (byte === CLOSE_ARRAY) closers.pop();
        continue;
      }
      if (depth === 1 && start < 0) start = at;
      if (byte === QUOTE) inString = true;
      else if (byte === OPEN_ARRAY) closers.push(CLOSE_ARRAY);
      else if (byte === OPEN_OBJECT) closers.push(CLOSE_OBJECT);
      else if (byte === CLOSE_ARRAY || byte === CLOSE_OBJECT) {
        if (closers.pop() !== byte) throw malformed(at, "a bracket closed by the wrong kind");
      }
      lastByte = at;
    }
  }
  if (!opened || closers.length > 0 || inString) throw malformed(file.size, "the file ends inside it");
}

// The file's parts of at most `budget` bytes (a single bigger row aside): `{body, firstRow,
// rows, end}` — `firstRow` counts the file's data rows before the part, `end` is how far into
// the file the part reaches (for progress).
export async function* parts(file, container, budget) {
  if (container === "whole") {
    yield { body: file, firstRow: 0, rows: 1, end: file.size };
    return;
  }
  const rows = { ndjson: ndjsonRows, csv: csvRows, array: arrayRows }[container](file);
  const wrap = container === "array" ? 2 : 0;
  let header = null;
  let part = null;
  let firstRow = 0;
  const cut = () => {
    const span = file.slice(part.start, part.end);
    const body =
      container === "array"
        ? new Blob(["[", span, "]"])
        : header
          ? new Blob([header, span])
          : span;
    const done = { body, firstRow, rows: part.rows, end: part.end };
    firstRow += part.rows;
    part = null;
    return done;
  };
  for await (const row of rows) {
    if (row.header) {
      header = file.slice(row.start, row.end);
      continue;
    }
    const headerSize = header?.size ?? 0;
    if (part && headerSize + wrap + row.end - part.start > budget) yield cut();
    if (part) {
      part.end = row.end;
      part.rows += 1;
    } else {
      part = { start: row.start, end: row.end, rows: 1 };
    }
  }
  if (part) yield cut();
}
