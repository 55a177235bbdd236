// The usage panel: a usage file of any size uploaded (`ingest.js`: cut under the server's
// limit, checked whole before anything is stored unless "keep the valid rows" is ticked,
// resumed after a stop), with its progress and the refused rows numbered in the file; and the
// summary of what is stored, spend by model and by workload as charts.

import { Abandoned, UploadError, ingestFile, megabytes } from "./ingest.js";
import { MalformedFile } from "./upload.js";
import { barChart, totalsBy, usd } from "./chart.js";

// Refused rows listed at most.
const MAX_SHOWN_ERRORS = 100;

const $ = (id) => document.getElementById(id);

// `withToken(path, init, token)` fetches with a token (the signed-in one unless given);
// `session()` is the signed-in `{user, token}`.
export function createUsage({ withToken, session }) {
  // Counts summary requests: only the latest one's answer is shown.
  let summaries = 0;
  // Bumped by `reset`: an upload of an earlier sign-in stops instead of going on under the
  // next user's token.
  let generation = 0;

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

  // Asked at each upload: a restarted server may have other limits.
  async function serverLimits(token) {
    const response = await withToken("/api/limits", {}, token);
    if (!response.ok) throw new UploadError(`the server answered ${response.status} for its limits`);
    return response.json();
  }

  async function upload(event) {
    event.preventDefault();
    const file = $("usage-file").files[0];
    if (!file) return;
    const mine = generation;
    const { user, token } = session();
    const status = $("upload-status");
    const button = $("upload-form").querySelector("button[type=submit]");
    button.disabled = true;
    delete status.dataset.state;
    showErrors([]);
    try {
      const stored = await ingestFile({
        file,
        partial: $("usage-partial").checked,
        format: $("usage-format").value || null,
        user,
        token,
        limits: await serverLimits(token),
        request: withToken,
        wanted: () => generation === mine,
        progress: (verb, done, total) => {
          if (generation === mine) showProgress(verb, done, total);
        },
      });
      if (generation !== mine) return;
      const notes = [];
      if (stored.duplicates > 0) notes.push(`${stored.duplicates} already stored`);
      if (stored.rejected > 0) notes.push(`${stored.rejected} refused`);
      if (stored.rejected > stored.errors.length) {
        // The server lists the first 100 of each part; a resumed part's, not again.
        notes.push(`${stored.errors.length} of them listed`);
      }
      const as = stored.format ? ` (read as a ${stored.format} export)` : "";
      const again = stored.resumed ? " (going on from the earlier upload of this file)" : "";
      status.textContent =
        `Stored ${stored.accepted} records from ${file.name}${as}${again}` +
        (notes.length ? `; ${notes.join(", ")}.` : ".");
      showErrors(stored.errors);
      $("upload-form").reset();
      refresh();
    } catch (error) {
      if (error instanceof Abandoned || generation !== mine) return;
      const already = error.stored > 0 && !(error instanceof MalformedFile)
        ? ` ${error.stored} records were stored before this; upload the same file again to go on.`
        : "";
      const said = /[.!?]$/.test(error.message) ? error.message : `${error.message}.`;
      status.textContent = `Upload failed: ${said}${already}`;
      status.dataset.state = "failed";
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
    summaries += 1;
    const mine = summaries;
    const response = await withToken("/api/usage/summary").catch(() => null);
    const summary = response?.ok ? await response.json().catch(() => null) : null;
    if (mine !== summaries) return; // a later request (or a sign-out) has the say
    if (!summary) {
      view.textContent = "The summary could not be loaded.";
      return;
    }
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
      generation += 1;
      summaries += 1;
      $("usage-panel").open = false;
      $("usage-summary").replaceChildren();
      $("upload-status").textContent = "";
      $("upload-progress").hidden = true;
      showErrors([]);
    },
  };
}
