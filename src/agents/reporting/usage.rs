//! The usage report (a usage-analysis request: the table per model and workload, no
//! recommendations) and the wording both reports share: what requests cost, how long the
//! window is, which models have no price.

use super::results::{UsageResult, WindowResult};
use crate::agents::data::UsageAnalysis;
use crate::agents::{RunAnswer, to_json};
use crate::analysis::report_text::{Rows, escape_md, money, usage_table};
use crate::protocol::event_lists::capped;

/// What `requests` requests cost, in words: `$1.20`, `$1.20 plus 3 unpriced requests`, or, when
/// none could be priced, that their amount is unknown.
pub(super) fn cost_words(spend_usd: f64, requests: u64, unpriced: u64) -> String {
    match unpriced {
        0 => money(spend_usd),
        n if n >= requests => String::from("an unknown amount (their models have no price)"),
        n => format!("{} plus {n} unpriced requests", money(spend_usd)),
    }
}

/// A window's length in whole days: `1 day`, `30 days`.
pub(super) fn days_words(days: f64) -> String {
    let days = days.round();
    if days == 1.0 {
        String::from("1 day")
    } else {
        format!("{days:.0} days")
    }
}

/// The models without a price, escaped for markdown (the first `EVENT_LIST_LIMIT`, then how
/// many more); `None` when every model has one.
pub(super) fn unpriced_names(unpriced_models: &[String]) -> Option<String> {
    if unpriced_models.is_empty() {
        return None;
    }
    let (shown, omitted) = capped(unpriced_models);
    let mut names: Vec<String> = shown.iter().map(|m| escape_md(m)).collect();
    if omitted > 0 {
        names.push(format!("and {omitted} more"));
    }
    Some(names.join(", "))
}

/// The answer to a usage-analysis request.
pub(super) fn report(intent: &str, data: &UsageAnalysis) -> RunAnswer {
    let aggregates = &data.aggregates;
    let totals = &aggregates.totals;
    let requests = totals.requests as u64;
    let unpriced = totals.unpriced_requests as u64;
    let spend = totals.spend_usd;
    let days = days_words(aggregates.window_days);
    let groups = &aggregates.groups;
    let mut summary = format!(
        "You made {requests} LLM requests costing {} over {days} across {} model and workload \
         groups.",
        cost_words(spend, requests, unpriced),
        groups.len()
    );
    if let Some(top) = groups.first().filter(|top| top.spend_usd > 0.0) {
        summary.push_str(&format!(
            " The largest spend is {} on {} ({}).",
            top.model,
            top.workload,
            money(top.spend_usd)
        ));
    }
    if aggregates.data_sufficiency == "partial" {
        summary.push_str(" With this few records the figures are indicative.");
    }
    // Written twice when the table is long: capped for the event, whole for the stored run.
    let render = |rows: Rows| {
        let mut md = String::from("# Usage report\n\n");
        md.push_str(&format!("{}\n\n", escape_md(&summary)));
        md.push_str(&usage_table(groups, rows));
        if let Some(names) = unpriced_names(&aggregates.unpriced_models) {
            md.push_str(&format!(
                "\nNot in the price catalog, so counted by tokens only: {names}.\n"
            ));
        }
        md.push_str(&format!(
            "\nPrices: catalog as of {}. Percentiles are nearest-rank.\n",
            escape_md(&data.catalog_as_of)
        ));
        md
    };
    let (shown, groups_omitted) = capped(groups);
    let result = to_json(&UsageResult {
        window: WindowResult::of(intent, data),
        groups: shown,
        groups_omitted,
    });
    let report_markdown = render(Rows::Capped);
    let full_report_markdown = (groups_omitted > 0).then(|| render(Rows::All));
    RunAnswer {
        summary,
        report_markdown,
        full_report_markdown,
        result,
    }
}
