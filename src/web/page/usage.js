// The usage panel: upload a usage file of any size and see what is stored. A file is cut into
// parts under the server's upload limit (`upload.js`); unless "keep the valid rows" is ticked
// every part is first checked (`?check=true`), so a file with an invalid row stores nothing,
// as one upload would; then the parts are stored, each under an `Idempotency-Key`, so one
// sent again after a lost answer is not stored twice. Progress and the refused rows (numbered
// in the whole file) are shown; the summary charts spend by model and by workload.

import { CONTENT_TYPES, containerOf, parts } from "./upload.js";
import { barChart, totalsBy, usd } from "./chart.js";

// Bytes per upload at most, as `enclave ingest` (a quarter of the server's default limit).
const MAX_PART_BYTES = 8 << 20;
// Refused rows listed at most.
const MAX_SHOWN_ERRORS = 100;
// Times a part is sent again after no answer, a 429 or a 5xx.
const RETRIES = 5;

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const megabytes = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;

// An upload that cannot go on; `details` are refused rows, numbered in the file.
class UploadError extends Error {
  constructor(message, details = []) {
    super(message);
    this.details = details;
  }
}

// `?a=b&…` of the fields that have a value.
const queryString = (query) =>
  new URLSearchParams(Object.entries(query).filter(([, value]) => value != null));

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// Row errors of a part, renumbered from the part's rows to the file's.
const inFile = (details, part) =>
  (details ?? []).map((d) => ({ ...d, row: d.row + part.firstRow }));

export function createUsage({ withToken }) {
  let limits = null;

  function showProgress(verb, done, total) {
    const bar = $("upload-progress");
    bar.hidden = false;
    bar.max = Math.max(total, 1);
    bar.value = done;
    bar.setAttribute("aria-label", `${verb}: ${megabytes(done)} of ${megabytes(total)}`);
    $("upload-status").textContent = `${verb}… ${megabytes(done)} of ${megabytes(total)}`;
  }

  function showErrors(errors) {
    const table = $("upload-errors");
    const body = table.querySelector("tbody");
    body.replaceChildren(
      ...errors.slice(0, MAX_SHOWN_ERRORS).map((e) => {
        const row = document.createElement("tr");
        for (const value of [e.row, e.field ?? "", e.reason ?? ""]) {
          const cell = document.createElement("td");
          cell.textContent = String(value);
          row.append(cell);
        }
        return row;
      }),
    );
    table.hidden = errors.length === 0;
  }

  async function serverLimits() {
    if (limits) return limits;
    const response = await withToken("/api/limits");
    if (!response.ok) throw new UploadError(`the server answered ${response.status}`);
    limits = await response.json();
    return limits;
  }

  // Sends one part; its answer. Sent again (same key) after no answer, a 429 or a 5xx.
  async function send(part, container, query, key) {
    const headers = { "Content-Type": CONTENT_TYPES[container] };
    if (key) headers["Idempotency-Key"] = key;
    for (let attempt = 0; ; attempt += 1) {
      let response = null;
      try {
        response = await withToken(`/api/usage?${queryString(query)}`, {
          method: "POST",
          headers,
          body: part.body,
        });
      } catch {
        // No answer: sent again below.
      }
      if (response?.ok) return response.json();
      const body = response ? await response.json().catch(() => null) : null;
      const passing = !response || response.status === 429 || response.status >= 500;
      if (!passing || attempt >= RETRIES) {
        const message = body?.error?.message ?? (response
          ? `the server answered ${response.status}`
          : "the server could not be reached");
        throw new UploadError(message, inFile(body?.error?.details, part));
      }
      const asked = Number(response?.headers.get("Retry-After"));
      await sleep(asked > 0 ? asked * 1000 : 500 * 2 ** attempt);
    }
  }

  // Every part checked, nothing stored: the refused rows and how many there are.
  async function check(file, container, budget, query) {
    const found = { rejected: 0, errors: [] };
    for await (const part of parts(file, container, budget)) {
      const answer = await send(part, container, { ...query, check: "true", partial: "true" });
      // The layout the server recognised in the first part is named for the rest.
      query.format ??= answer.format;
      found.rejected += answer.rejected;
      found.errors.push(...inFile(answer.details, part));
      showProgress("Checking rows", part.end, file.size);
    }
    return found;
  }

  async function upload(event) {
    event.preventDefault();
    const file = $("usage-file").files[0];
    if (!file) return;
    const partial = $("usage-partial").checked;
    const query = {};
    if ($("usage-format").value) query.format = $("usage-format").value;
    const button = $("upload-form").querySelector("button[type=submit]");
    button.disabled = true;
    delete $("upload-status").dataset.state;
    showErrors([]);
    const stored = { accepted: 0, duplicates: 0, rejected: 0, errors: [] };
    try {
      const container = await containerOf(file);
      if (!container) throw new UploadError(`${file.name}: name it .ndjson, .jsonl, .csv or .json`);
      const budget = Math.min(MAX_PART_BYTES, (await serverLimits()).max_upload_bytes);
      if (container === "whole" && file.size > budget) {
        throw new UploadError(`${file.name} is one JSON document over the upload limit (${megabytes(budget)})`);
      }
      if (!partial) {
        const found = await check(file, container, budget, query);
        if (found.rejected > 0) {
          showErrors(found.errors);
          const rows = found.rejected === 1 ? "1 row is" : `${found.rejected} rows are`;
          throw new UploadError(`${rows} invalid and nothing was stored: fix them, or tick "Keep the valid rows".`);
        }
      }
      if (partial) query.partial = "true";
      const batch = randomId();
      let index = 0;
      for await (const part of parts(file, container, budget)) {
        const answer = await send(part, container, query, `page-${batch}-${index}`);
        index += 1;
        query.format ??= answer.format;
        stored.accepted += answer.accepted;
        stored.duplicates += answer.duplicates;
        stored.rejected += answer.rejected;
        stored.errors.push(...inFile(answer.details, part));
        showProgress("Storing", part.end, file.size);
      }
      const notes = [];
      if (stored.duplicates > 0) notes.push(`${stored.duplicates} already stored`);
      if (stored.rejected > 0) notes.push(`${stored.rejected} refused`);
      const as = query.format ? ` (read as a ${query.format} export)` : "";
      $("upload-status").textContent =
        `Stored ${stored.accepted} records from ${file.name}${as}` +
        (notes.length ? `; ${notes.join(", ")}.` : ".");
      showErrors(stored.errors);
      $("upload-form").reset();
      refresh();
    } catch (error) {
      const already = stored.accepted > 0 ? ` ${stored.accepted} records were stored before this.` : "";
      $("upload-status").textContent = `Upload failed: ${error.message}${already}`;
      $("upload-status").dataset.state = "failed";
      if (error.details?.length) showErrors(error.details);
    } finally {
      button.disabled = false;
    }
  }

  function chart(container, title, rows) {
    const drawn = barChart(title, rows);
    if (!drawn) return;
    const figure = document.createElement("figure");
    const caption = document.createElement("figcaption");
    caption.textContent = title;
    figure.append(caption, drawn);
    container.append(figure);
  }

  // Shows the stored usage: totals, spend by model and by workload.
  async function refresh() {
    const view = $("usage-summary");
    const response = await withToken("/api/usage/summary").catch(() => null);
    if (!response?.ok) {
      view.textContent = "The summary could not be loaded.";
      return;
    }
    const summary = await response.json();
    const totals = summary.totals;
    const line = document.createElement("p");
    line.className = "totals";
    line.textContent = totals.requests === 0
      ? "No usage stored yet: upload a file."
      : `${totals.requests.toLocaleString("en")} requests, ${usd(totals.spend_usd)} spent ` +
        `(prices of ${summary.catalog_as_of}).`;
    view.replaceChildren(line);
    chart(view, "Spend by model (USD)", totalsBy(summary.groups, (g) => g.model, (g) => g.spend_usd));
    chart(view, "Spend by workload (USD)", totalsBy(summary.groups, (g) => g.workload, (g) => g.spend_usd));
    if (summary.unpriced_models.length > 0) {
      const unpriced = document.createElement("p");
      unpriced.className = "unpriced";
      unpriced.textContent = `Not in the price catalog (counted by tokens only): ${summary.unpriced_models.join(", ")}`;
      view.append(unpriced);
    }
  }

  return {
    start() {
      $("upload-form").addEventListener("submit", upload);
      $("usage-refresh").addEventListener("click", refresh);
      $("usage-panel").addEventListener("toggle", () => {
        if ($("usage-panel").open) refresh();
      });
    },
    // Forgets the signed-in user's view.
    reset() {
      limits = null;
      $("usage-panel").open = false;
      $("usage-summary").replaceChildren();
      $("upload-status").textContent = "";
      $("upload-progress").hidden = true;
      showErrors([]);
    },
  };
}
