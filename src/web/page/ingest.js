// One file's way into the server, as `enclave ingest` does it: cut into parts under the upload
// limit (`upload.js`); unless valid rows are to be kept, every part first checked with
// `?check=true` so a file with an invalid row stores nothing; then each part stored under an
// `Idempotency-Key`, sent again with the same key after no answer or a 5xx, and after a 429
// when the server asks. An upload that stops part-way (a lost connection, the quota) is
// remembered for the tab, so uploading the same file again goes on where it stopped: the
// parts already stored answer as they did (`replayed`) and are not stored twice.

import { CONTENT_TYPES, containerOf, parts } from "./upload.js";

// Bytes per upload at most, as `enclave ingest` (a quarter of the server's default limit).
const MAX_PART_BYTES = 8 << 20;
// Times a part is sent again after no answer or a 5xx.
const RETRIES = 5;
// The longest a part waits out 429s (the user's other upload, an account being deleted).
const MAX_BUSY_WAIT_MS = 5 * 60_000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
export const megabytes = (bytes) =>
  bytes < 1e6 ? `${(bytes / 1e3).toFixed(1)} kB` : `${(bytes / 1e6).toFixed(1)} MB`;

// An upload that cannot go on; `details` are refused rows, numbered in the file.
export class UploadError extends Error {
  constructor(message, details = []) {
    super(message);
    this.details = details;
  }
}

// The user signed out or in as someone else: the upload stops, saying nothing.
export class Abandoned extends Error {}

// `?a=b&…` of the fields that have a value.
const queryString = (query) =>
  new URLSearchParams(Object.entries(query).filter(([, value]) => value != null));

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// Unfinished uploads remembered per tab and user, at most this many.
const MAX_UNFINISHED = 20;

// The user's unfinished uploads: file identity → batch.
function unfinished(user) {
  let saved = [];
  try {
    saved = JSON.parse(sessionStorage.getItem(`enclave-uploads:${user}`) ?? "[]");
  } catch {
    // Not ours to read: forgotten.
  }
  const pairs = Array.isArray(saved) ? saved : [];
  return new Map(pairs.filter((p) => Array.isArray(p) && p.length === 2 && p.every((v) => typeof v === "string")));
}

// Remembers (or, with `batch` null, forgets) an unfinished upload; the oldest go first.
function remember(user, identity, batch) {
  const uploads = unfinished(user);
  uploads.delete(identity);
  if (batch) uploads.set(identity, batch);
  const kept = [...uploads].slice(-MAX_UNFINISHED);
  sessionStorage.setItem(`enclave-uploads:${user}`, JSON.stringify(kept));
}

// A 64-bit digest of `bytes` as hex (two 32-bit multiplicative hashes; it tells a changed part
// from the one stored before, it is no defence against anyone).
function hash(bytes) {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ bytes.length;
  for (let i = 0; i < bytes.length; i += 1) {
    a = Math.imul(a ^ bytes[i], 0x01000193);
    b = Math.imul(b ^ bytes[i], 0x5bd1e995);
  }
  const hex = (n) => (n >>> 0).toString(16).padStart(8, "0");
  return hex(a) + hex(b ^ (b >>> 15));
}

// Row errors of a part, renumbered from the part's rows to the file's.
export const inFile = (details, part) =>
  (details ?? []).map((d) => ({ ...d, row: d.row + part.firstRow }));

// Takes `file` in for the user of `token`. `request(path, init, token)` is a fetch with the
// token; `wanted()` turns false when the page moved on (sign-out); `progress(verb, done,
// total)` is told how far it got. Answers `{accepted, duplicates, rejected, errors, format,
// resumed}`; throws `UploadError` (or `Abandoned`).
export async function ingestFile({ file, partial, format, user, token, limits, request, wanted, progress }) {
  const container = await containerOf(file);
  if (!container) throw new UploadError(`${file.name}: name it .ndjson, .jsonl, .csv or .json`);
  const limit = limits.max_upload_bytes;
  const budget = Math.min(MAX_PART_BYTES, limit);
  const query = { format };
  if (container === "whole" && file.size > limit) {
    throw new UploadError(
      `${file.name} is one JSON document of ${megabytes(file.size)}, over the upload limit ` +
      `(${megabytes(limit)}), and cannot be cut`,
    );
  }

  // A part over the limit can only be a single row bigger than it: named before it is read.
  function withinLimit(part) {
    if (part.body.size > limit) {
      throw new UploadError(
        `row ${part.firstRow + 1} alone is ${megabytes(part.body.size)}, over the upload limit ` +
        `(${megabytes(limit)})`,
      );
    }
  }

  // Sends one part; its answer.
  async function send(part, partQuery, key) {
    withinLimit(part);
    const headers = { "Content-Type": CONTENT_TYPES[container] };
    if (key) headers["Idempotency-Key"] = key;
    let failures = 0;
    const busySince = Date.now();
    for (;;) {
      if (!wanted()) throw new Abandoned();
      let response = null;
      try {
        response = await request(`/api/usage?${queryString(partQuery)}`, { method: "POST", headers, body: part.body }, token);
      } catch {
        // No answer: sent again below.
      }
      if (response?.ok) return response.json();
      const body = response ? await response.json().catch(() => null) : null;
      const busy = response?.status === 429 && Date.now() - busySince < MAX_BUSY_WAIT_MS;
      const failed = !response || response.status >= 500;
      if (!busy && !(failed && failures < RETRIES)) {
        const message = body?.error?.message ??
          (response ? `the server answered ${response.status}` : "the server could not be reached");
        throw new UploadError(message, inFile(body?.error?.details, part));
      }
      const asked = Number(response?.headers.get("Retry-After"));
      await sleep(asked > 0 ? asked * 1000 : 500 * 2 ** failures);
      if (failed) failures += 1;
    }
  }

  if (!partial) {
    let rejected = 0;
    const errors = [];
    for await (const part of parts(file, container, budget)) {
      const answer = await send(part, { ...query, check: "true", partial: "true" });
      // The layout the server recognised in the first part is named for the rest.
      query.format ??= answer.format;
      rejected += answer.rejected;
      errors.push(...inFile(answer.details, part));
      progress("Checking rows", part.end, file.size);
    }
    if (rejected > 0) {
      const rows = rejected === 1 ? "1 row is" : `${rejected} rows are`;
      throw new UploadError(`${rows} invalid and nothing was stored: fix them, or tick "Keep the valid rows".`, errors);
    }
  }
  if (partial) {
    query.partial = "true";
    // A damaged JSON array is refused before any part of it is stored (unchecked parts
    // would otherwise go in up to the damage).
    if (container === "array") for await (const part of parts(file, container, budget)) progress("Reading", part.end, file.size);
  }

  // An earlier upload of this file, cut the same way, that stopped part-way: its batch, so
  // the parts it stored are answered again instead of stored twice. A part's key also holds
  // a digest of its bytes, so a part that changed since is stored.
  const identity = JSON.stringify([file.name, file.size, file.lastModified, budget, format]);
  const earlier = unfinished(user);
  const resumed = earlier.has(identity);
  const batch = earlier.get(identity) ?? randomId();
  remember(user, identity, batch);

  const stored = { accepted: 0, duplicates: 0, rejected: 0, errors: [], resumed };
  try {
    for await (const part of parts(file, container, budget)) {
      withinLimit(part);
      const digest = hash(new Uint8Array(await part.body.arrayBuffer()));
      const answer = await send(part, query, `page-${batch}-${part.firstRow}-${digest}`);
      query.format ??= answer.format;
      stored.accepted += answer.accepted;
      stored.duplicates += answer.duplicates;
      stored.rejected += answer.rejected;
      stored.errors.push(...inFile(answer.details, part));
      progress("Storing", part.end, file.size);
    }
  } catch (error) {
    error.stored = stored.accepted;
    throw error;
  }
  remember(user, identity, null);
  stored.format = query.format;
  return stored;
}
