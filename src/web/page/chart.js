// Horizontal bar charts as SVG, drawn from numbers: the report's savings by recommendation
// and the usage summary's spend by model and by workload. Labels are text nodes, so a name
// holding markup shows as text.

const SVG = "http://www.w3.org/2000/svg";
const MAX_BARS = 10;
const ROW_HEIGHT = 22;
const WIDTH = 560;
const LABEL_WIDTH = 200;
const LABEL_CHARS = 32;

function svg(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

export const usd = (value) => `$${value.toFixed(2)}`;

// The largest `MAX_BARS` of `rows` ({label, value}, value > 0) as bars, largest first, or null
// when none is above zero. `title` names the chart for screen readers.
export function barChart(title, rows, format = usd) {
  const bars = rows
    .filter((row) => Number.isFinite(row.value) && row.value > 0)
    .sort((a, b) => b.value - a.value)
    .slice(0, MAX_BARS);
  if (bars.length === 0) return null;
  const most = bars[0].value;
  const chart = svg("svg", {
    class: "chart",
    viewBox: `0 0 ${WIDTH} ${bars.length * ROW_HEIGHT + 4}`,
    role: "img",
    "aria-label": title,
  });
  const heading = svg("title", {});
  heading.textContent = title;
  chart.append(heading);
  bars.forEach((row, i) => {
    const y = i * ROW_HEIGHT + 2;
    const barWidth = Math.max(1, ((WIDTH - LABEL_WIDTH - 90) * row.value) / most);
    const label = svg("text", { x: 0, y: y + 15, class: "label" });
    label.textContent = row.label.slice(0, LABEL_CHARS);
    const bar = svg("rect", { x: LABEL_WIDTH, y, width: barWidth, height: ROW_HEIGHT - 6, class: "bar" });
    const value = svg("text", { x: LABEL_WIDTH + barWidth + 6, y: y + 15, class: "value" });
    value.textContent = format(row.value);
    chart.append(label, bar, value);
  });
  return chart;
}

// Sums `value(item)` per `key(item)`, as chart rows.
export function totalsBy(items, key, value) {
  const sums = new Map();
  for (const item of items) sums.set(key(item), (sums.get(key(item)) ?? 0) + value(item));
  return [...sums].map(([label, sum]) => ({ label, value: sum }));
}
