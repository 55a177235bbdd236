//! The optimisation report (cost, latency and model-selection requests): usage analysed, goals,
//! every priced candidate, for each change not offered the true reason (`analysis::why_not`),
//! the plan with its joint saving, and the assumptions. Read from the typed results of data,
//! optimisations core, actions and goals triage.

use std::collections::{HashMap, HashSet};

use super::Rules;
use super::results::{OptimisationResult, WindowResult};
use super::usage::{cost_words, days_words, unpriced_names};
use crate::agents::actions::plan_of;
use crate::agents::data::UsageAnalysis;
use crate::agents::goals_triage::Goals;
use crate::agents::optimizations_core::Candidates;
use crate::agents::{AgentError, AgentInput, RunAnswer, to_json};
use crate::analysis::aggregate::GroupStats;
use crate::analysis::optimize::{Kind, Recommendation};
use crate::analysis::plan::{Goal, Plan};
use crate::analysis::report_text::{Rows, escape_md, money, more_rows, usage_table};
use crate::analysis::why_not::{KINDS, NotOffered, kind_label, not_offered};
use crate::protocol::event_lists::{EVENT_LIST_LIMIT, capped};

/// The (model, workload, kind) of each recommendation.
fn offered(recs: &[Recommendation]) -> Vec<(String, String, Kind)> {
    recs.iter()
        .map(|r| (r.model.clone(), r.workload.clone(), r.kind))
        .collect()
}

/// "model substitution — the catalog names no cheaper substitute for X", or the reason alone
/// when it rules out every change.
fn reason_words(n: &NotOffered) -> String {
    match n.kind {
        Some(kind) => format!("{} — {}", kind_label(kind), n.reason),
        None => n.reason.to_string(),
    }
}

/// The summary's sentence when nothing applies: the reasons themselves for a single group,
/// else where to find them.
fn nothing_applies(groups: &[GroupStats], reasons: Option<&[NotOffered]>) -> String {
    match (groups, reasons) {
        ([group], Some(reasons)) if !reasons.is_empty() => {
            let parts: Vec<String> = reasons.iter().map(reason_words).collect();
            format!(
                "No optimisation applies to {} on {}: {}.",
                group.model,
                group.workload,
                parts.join("; ")
            )
        }
        (groups, Some(reasons)) if !reasons.is_empty() => format!(
            "No optimisation is supported by this data; the report says why for each of the {} \
             model and workload groups.",
            groups.len()
        ),
        _ => String::from("No optimisation is supported by this data."),
    }
}

/// The "Why not" section: each change not offered, per group, with its reason.
fn why_not_section(reasons: Option<&[NotOffered]>, substitutions_only: bool, rows: Rows) -> String {
    let mut md = String::from("\n## Why not\n\n");
    if substitutions_only {
        md.push_str(
            "Only model substitution was considered: the question was about model choice.\n\n",
        );
    }
    match reasons {
        None => md.push_str(
            "The reasons are not available: this report was written without the price \
             catalog and thresholds (the reporting agent's fallback).\n",
        ),
        Some([]) => md.push_str("Every change considered was offered for every group.\n"),
        Some(reasons) => {
            md.push_str("| model | workload | change | why not |\n|---|---|---|---|\n");
            let (reasons, omitted) = rows.of(reasons);
            for n in reasons {
                md.push_str(&format!(
                    "| {} | {} | {} | {} |\n",
                    escape_md(&n.model),
                    escape_md(&n.workload),
                    escape_md(n.kind.map_or("every change", kind_label)),
                    escape_md(&n.reason.to_string())
                ));
            }
            md.push_str(&more_rows(omitted, "changes not offered"));
        }
    }
    md
}

/// The goals the report shows: the ones the plan was chosen for, else goals triage's, else
/// none (neither agent ran).
fn goals(input: &AgentInput) -> Result<Vec<Goal>, AgentError> {
    if let Some(actions) = plan_of(input)? {
        return Ok(actions.goals.clone());
    }
    let stated = input.result_of::<Goals>("goals_triage")?;
    Ok(stated.map(|g| g.goals.clone()).unwrap_or_default())
}

/// The summary's account of the plan (`plan` is `None` when the actions agent did not run).
fn plan_words(plan: Option<&Plan>, recs: &[Recommendation], window_days: f64) -> String {
    let Some(plan) = plan else {
        return format!("{} candidate changes are priced below.", recs.len());
    };
    let saved = plan.savings_usd;
    let monthly = saved * 30.0 / window_days.max(1.0);
    let mut kinds: Vec<String> = Vec::new();
    // By id in a map: a plan may select as many changes as there are groups.
    let by_id: HashMap<&str, &Recommendation> = recs.iter().map(|r| (r.id.as_str(), r)).collect();
    let selected = plan.selected.iter().filter_map(|id| by_id.get(id.as_str()));
    for r in selected {
        let kind = r.kind.as_str().replace('_', " ");
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    let mut words = format!(
        "The plan ({}) saves {} ({:.1}%), about {} a month. ",
        kinds.join(", "),
        money(saved),
        plan.savings_pct,
        money(monthly)
    );
    if plan.goals_met {
        words.push_str("It meets your goals.");
    } else {
        words.push_str(&format!(
            "It falls {:.1} points short of the cost goal.",
            plan.shortfall_pct
        ));
    }
    words
}

/// The recommendations `run_completed.result` lists (at most `EVENT_LIST_LIMIT`): those its
/// plan's listed `selected` ids name, in the plan's order, then the first of the rest, so every
/// id a client reads in `plan.selected` is among them.
fn shown_recommendations<'a>(
    recs: &'a [Recommendation],
    plan: Option<&Plan>,
) -> Vec<&'a Recommendation> {
    let by_id: HashMap<&str, &Recommendation> = recs.iter().map(|r| (r.id.as_str(), r)).collect();
    let selected = plan.map_or(&[][..], |p| capped(&p.selected).0);
    let mut shown: Vec<&Recommendation> = selected
        .iter()
        .filter_map(|id| by_id.get(id.as_str()).copied())
        .collect();
    let taken: HashSet<&str> = shown.iter().map(|r| r.id.as_str()).collect();
    let room = EVENT_LIST_LIMIT.saturating_sub(shown.len());
    shown.extend(
        recs.iter()
            .filter(|r| !taken.contains(r.id.as_str()))
            .take(room),
    );
    shown
}

/// The recommendations table, one row per candidate.
fn recommendations_table(recs: &[Recommendation], rows: Rows) -> String {
    let mut md = String::from(
        "| id | kind | model | workload | requests | current | savings | % | per month | latency | confidence |\n",
    );
    md.push_str("|---|---|---|---|---:|---:|---:|---:|---:|---|---:|\n");
    let (recs, omitted) = rows.of(recs);
    for r in recs {
        let kind = match &r.target_model {
            Some(target) => format!("{} → {target}", r.kind.as_str()),
            None => r.kind.as_str().to_owned(),
        };
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.1}% | {} | {} | {:.0}% |\n",
            escape_md(&r.id),
            escape_md(&kind),
            escape_md(&r.model),
            escape_md(&r.workload),
            r.affected_requests,
            money(r.current_cost_usd),
            money(r.savings_usd),
            r.savings_pct,
            money(r.monthly_savings_usd),
            escape_md(&r.latency_impact),
            100.0 * r.confidence
        ));
    }
    md.push_str(&more_rows(omitted, "recommendations"));
    md
}

/// The answer to an optimisation request: `data` had records and `core` priced candidates.
pub(super) fn report(
    intent: &str,
    data: &UsageAnalysis,
    core: &Candidates,
    input: &AgentInput,
    rules: Option<Rules<'_>>,
) -> Result<RunAnswer, AgentError> {
    let goals = goals(input)?;
    let plan = plan_of(input)?.map(|a| &a.plan);
    let recs = &core.recommendations;
    let aggregates = &data.aggregates;
    let requests = aggregates.totals.requests as u64;
    let unpriced = aggregates.totals.unpriced_requests as u64;
    let spend = aggregates.totals.spend_usd;
    let window_days = aggregates.window_days;
    let groups = &aggregates.groups;
    let substitutions_only = intent == "model_selection";
    let kinds: &[Kind] = if substitutions_only {
        &[Kind::ModelSubstitution]
    } else {
        &KINDS
    };
    let reasons: Option<Vec<NotOffered>> = rules.map(|rules| {
        not_offered(
            groups,
            &offered(recs),
            kinds,
            rules.catalog,
            rules.thresholds,
        )
    });
    let mut summary = format!(
        "Your {requests} requests cost {} over {}. ",
        cost_words(spend, requests, unpriced),
        days_words(window_days)
    );
    if recs.is_empty() {
        summary.push_str(&nothing_applies(groups, reasons.as_deref()));
    } else {
        summary.push_str(&plan_words(plan, recs, window_days));
    }
    // Written twice when a table is long: capped for the event, whole for the stored run.
    let render = |rows: Rows| {
        let mut md = String::from("# Optimisation report\n\n");
        md.push_str(&format!("{}\n\n## Usage analysed\n\n", escape_md(&summary)));
        md.push_str(&usage_table(groups, rows));
        md.push_str("\n## Goals\n\n");
        for goal in &goals {
            let target = match (goal.target_pct, goal.target_value) {
                (Some(0.0), _) => String::from("not worse"),
                (Some(pct), _) => format!("{pct:+}%"),
                (_, Some(value)) => format!("≤ {value}"),
                _ => String::from("—"),
            };
            md.push_str(&format!(
                "{}. {} {target}: {}\n",
                goal.priority,
                escape_md(&goal.metric),
                escape_md(&goal.rationale)
            ));
        }
        md.push_str("\n## Recommendations\n\n");
        if recs.is_empty() {
            md.push_str("None supported by the data (see why below).\n");
        } else {
            md.push_str(&recommendations_table(recs, rows));
        }
        md.push_str(&why_not_section(
            reasons.as_deref(),
            substitutions_only,
            rows,
        ));
        if let Some(plan) = plan {
            md.push_str("\n## Plan\n\n");
            let (steps, omitted) = rows.of(&plan.steps);
            for (i, step) in steps.iter().enumerate() {
                md.push_str(&format!("{}. {}\n", i + 1, escape_md(step)));
            }
            md.push_str(&more_rows(omitted, "steps"));
            md.push_str(&format!(
                "\nTogether: {} saved ({:.1}% of spend), overlaps counted once.\n",
                money(plan.savings_usd),
                plan.savings_pct
            ));
        }
        md.push_str(&format!(
            "\n## Assumptions\n\n- Prices: catalog as of {}; records without a cost are priced \
             with it.\n- Changes are chosen in increasing order of risk (prompt caching, batching, \
             retry fixes, model substitution) until the cost goal is met.\n- Per-month figures \
             scale the window ({}) to 30 days.\n- Percentiles are nearest-rank.\n",
            escape_md(&data.catalog_as_of),
            days_words(window_days)
        ));
        if let Some(names) = unpriced_names(&aggregates.unpriced_models) {
            md.push_str(&format!(
                "- Not in the price catalog, so not analysed for savings: {names}.\n"
            ));
        }
        md
    };
    let report_markdown = render(Rows::Capped);
    let cut = Rows::Capped;
    let long = cut.cuts(groups)
        || cut.cuts(recs)
        || reasons.as_deref().is_some_and(|r| cut.cuts(r))
        || plan.is_some_and(|p| cut.cuts(&p.steps));
    let full_report_markdown = long.then(|| render(Rows::All));
    let shown = shown_recommendations(recs, plan);
    let recommendations_omitted = recs.len() - shown.len();
    let result = to_json(&OptimisationResult {
        window: WindowResult::of(intent, data),
        goals: &goals,
        recommendations: shown,
        recommendations_omitted,
        plan,
    });
    Ok(RunAnswer {
        summary,
        report_markdown,
        full_report_markdown,
        result,
    })
}
