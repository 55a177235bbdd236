//! How numbers and user strings are written into a report's markdown: `escape_md` (a user's
//! model or workload name, or any plain text, rendered as its literal text), `money` (never
//! "$-0.00"), `spend` (unpriced requests say so instead of showing a number) and the usage
//! table per model × workload built from the aggregates. Pure: strings in, strings out.

use super::aggregate::GroupStats;
use crate::protocol::event_lists::capped;

/// Markdown punctuation escaped wherever it occurs: `|` would add a table column, `<` `>` and
/// `&` start raw HTML or entities, backticks open code, `*` `_` `~` emphasis, `[` `]` `!`
/// links and images, `#` headings, `\` would escape the next character.
const ALWAYS: &[char] = &[
    '\\', '`', '*', '_', '~', '[', ']', '!', '<', '>', '&', '|', '#',
];

/// Escaped when they open the text: list markers and headings in markdown, and formulas once
/// a table is pasted into a spreadsheet (`=`, `+`, `-`, `@`).
const LEADING: &[char] = &['=', '+', '-', '@'];

/// `text` escaped for a markdown table cell or inline text: CommonMark reads every escape
/// back as the literal character, so the text renders as it is. Control characters (a line
/// break would end a table row) become spaces.
pub fn escape_md(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut leading = true;
    for c in text.chars() {
        if c.is_control() {
            out.push(' ');
            continue;
        }
        if ALWAYS.contains(&c) || (leading && LEADING.contains(&c)) {
            out.push('\\');
        }
        if !c.is_whitespace() {
            leading = false;
        }
        out.push(c);
    }
    out
}

/// An amount in dollars rounded to cents: `$12.35`, `-$0.40`; anything that rounds to zero is
/// `$0.00` (never `$-0.00`), and a value that is not a number is `n/a`.
pub fn money(usd: f64) -> String {
    if !usd.is_finite() {
        return String::from("n/a");
    }
    let cents = (usd * 100.0).round();
    if cents == 0.0 {
        return String::from("$0.00");
    }
    let sign = if cents < 0.0 { "-" } else { "" };
    format!("{sign}${:.2}", cents.abs() / 100.0)
}

/// The spend of `requests` requests of which `unpriced` could not be priced: `$1.20`,
/// `$1.20 + 3 unpriced`, or `unpriced` when none could be priced.
pub fn spend(priced_usd: f64, requests: usize, unpriced: usize) -> String {
    match unpriced {
        0 => money(priced_usd),
        n if n >= requests => String::from("unpriced"),
        n => format!("{} + {n} unpriced", money(priced_usd)),
    }
}

/// A share (0..=1) as a percentage with one decimal: `12.5%`.
pub fn percent(share: f64) -> String {
    if !share.is_finite() {
        return String::from("n/a");
    }
    let tenths = (share * 1000.0).round();
    let tenths = if tenths == 0.0 { 0.0 } else { tenths };
    format!("{:.1}%", tenths / 10.0)
}

/// Which rows of its tables a report shows: all (the report stored with the run) or the first
/// `EVENT_LIST_LIMIT` of each, the rest counted (the report a `run_completed` carries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// Every row.
    All,
    /// The first `EVENT_LIST_LIMIT`, then a line counting the rest.
    Capped,
}

impl Rows {
    /// The rows of `items` to show, and how many are left out.
    pub fn of<T>(self, items: &[T]) -> (&[T], usize) {
        match self {
            Rows::All => (items, 0),
            Rows::Capped => capped(items),
        }
    }

    /// Whether `items` loses rows here: a report whose tables all fit needs no full copy.
    pub fn cuts<T>(self, items: &[T]) -> bool {
        self.of(items).1 > 0
    }
}

/// The line after a table that left `omitted` rows of `what` out ("" when none).
pub fn more_rows(omitted: usize, what: &str) -> String {
    if omitted == 0 {
        return String::new();
    }
    format!(
        "\n*… and {omitted} more {what}: the full table is in the report stored with the run \
         (`GET /api/reports/{{run_id}}.md`).*\n"
    )
}

/// The usage table: one row per model × workload with requests, prompt and completion
/// tokens, spend, p50/p95/p99 latency and error rate; names escaped.
pub fn usage_table(groups: &[GroupStats], rows: Rows) -> String {
    let mut md = String::from(
        "| model | workload | requests | prompt tokens | completion tokens | spend | p50 ms | \
         p95 ms | p99 ms | error rate |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let (groups, omitted) = rows.of(groups);
    for g in groups {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            escape_md(&g.model),
            escape_md(&g.workload),
            g.requests,
            g.prompt_tokens,
            g.completion_tokens,
            spend(g.spend_usd, g.requests, g.unpriced_requests),
            g.latency_p50_ms,
            g.latency_p95_ms,
            g.latency_p99_ms,
            percent(g.error_rate)
        ));
    }
    md.push_str(&more_rows(omitted, "groups"));
    md
}
