// A completed run's report in its card: a chart of savings by recommendation (SVG drawn here
// from the numbers of `run_completed.result`), the report itself as the server renders and
// sanitises it (`GET /api/reports/{id}.html`: no script, handler or style can be in it), and
// a download of the markdown, fetched with the token.

const SVG = "http://www.w3.org/2000/svg";
const MAX_BARS = 10;

function svg(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

// Bars of `savings_usd` per recommendation, largest first; labels are text nodes.
export function savingsChart(recommendations) {
  const bars = [...recommendations]
    .filter((r) => Number.isFinite(r.savings_usd) && r.savings_usd > 0)
    .sort((a, b) => b.savings_usd - a.savings_usd)
    .slice(0, MAX_BARS);
  if (bars.length === 0) return null;
  const rowHeight = 22;
  const width = 560;
  const labelWidth = 200;
  const most = bars[0].savings_usd;
  const chart = svg("svg", {
    class: "chart",
    viewBox: `0 0 ${width} ${bars.length * rowHeight + 4}`,
    role: "img",
  });
  const title = svg("title", {});
  title.textContent = "Savings by recommendation (USD in the window)";
  chart.append(title);
  bars.forEach((r, i) => {
    const y = i * rowHeight + 2;
    const barWidth = Math.max(1, ((width - labelWidth - 90) * r.savings_usd) / most);
    const label = svg("text", { x: 0, y: y + 15, class: "label" });
    label.textContent = `${r.id} ${r.model} / ${r.workload}`.slice(0, 32);
    const bar = svg("rect", { x: labelWidth, y, width: barWidth, height: rowHeight - 6, class: "bar" });
    const value = svg("text", { x: labelWidth + barWidth + 6, y: y + 15, class: "value" });
    value.textContent = `$${r.savings_usd.toFixed(2)}`;
    chart.append(label, bar, value);
  });
  return chart;
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
