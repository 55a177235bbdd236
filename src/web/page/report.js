// A completed run's report in its card: a chart of savings by recommendation (SVG drawn here
// from the numbers of `run_completed.result`), the report itself as the server renders and
// sanitises it (`GET /api/reports/{id}.html`: no script, handler or style can be in it), and
// a download of the markdown, fetched with the token.

import { barChart } from "./chart.js";

// Bars of `savings_usd` per recommendation, largest first.
export function savingsChart(recommendations) {
  return barChart(
    "Savings by recommendation (USD in the window)",
    recommendations.map((r) => ({ label: `${r.id} ${r.model} / ${r.workload}`, value: r.savings_usd })),
  );
}

// Fills `container` with the report of `runId`: the chart, the sanitised report, a download.
export async function showReport(container, runId, result, fetchText) {
  container.replaceChildren();
  const chart = savingsChart(result?.recommendations ?? []);
  if (chart) container.append(chart);
  const download = document.createElement("button");
  download.type = "button";
  download.className = "download";
  download.textContent = "Download report (.md)";
  download.addEventListener("click", async () => {
    const markdown = await fetchText(`/api/reports/${runId}.md`);
    if (markdown === null) return;
    const url = URL.createObjectURL(new Blob([markdown], { type: "text/markdown" }));
    const link = document.createElement("a");
    link.href = url;
    link.download = `enclave-report-${runId}.md`;
    link.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  });
  container.append(download);
  const html = await fetchText(`/api/reports/${runId}.html`);
  if (html === null) return;
  // Parsed as an inert document, then moved in: nothing in it runs, and the server has
  // already removed every script, handler, style and javascript: link.
  const parsed = new DOMParser().parseFromString(html, "text/html");
  const body = document.createElement("div");
  body.className = "report-body";
  body.append(...parsed.body.childNodes);
  container.append(body);
}
