// Horizontal bar charts as SVG, drawn from numbers: the report's savings by recommendation
// and the usage summary's spend by model and by workload. Labels are text nodes, so a name
// holding markup shows as text.

const SVG = "http://www.w3.org/2000/svg";
const MAX_BARS = 10;
// Each bar: its label on a line above it, then the bar with its value beside it. Heights in
// CSS pixels and widths in percent (no viewBox), so the text keeps the page's size at any
// width, a phone's included.
const LABEL_HEIGHT = 16;
const BAR_HEIGHT = 14;
const ROW_HEIGHT = LABEL_HEIGHT + BAR_HEIGHT + 8;
const LONGEST_BAR_PCT = 78;
const LABEL_CHARS = 60;

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
    width: "100%",
    height: bars.length * ROW_HEIGHT,
    role: "img",
    "aria-label": title,
  });
  const heading = svg("title", {});
  heading.textContent = title;
  chart.append(heading);
  bars.forEach((row, i) => {
    const top = i * ROW_HEIGHT;
    const pct = Math.max(0.5, (LONGEST_BAR_PCT * row.value) / most);
    const label = svg("text", { x: 0, y: top + LABEL_HEIGHT - 4, class: "label" });
    label.textContent = row.label.slice(0, LABEL_CHARS);
    const bar = svg("rect", { x: 0, y: top + LABEL_HEIGHT, width: `${pct}%`, height: BAR_HEIGHT, class: "bar" });
    const value = svg("text", { x: `${pct + 1}%`, y: top + LABEL_HEIGHT + BAR_HEIGHT - 2, class: "value" });
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
