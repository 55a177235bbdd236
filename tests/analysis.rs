//! The optimisation rules and the plan arithmetic of PROTOCOL.md §4, against fixtures whose
//! right answers are worked out by hand here (a small fixture catalog keeps the arithmetic
//! readable: prices per million tokens); and the report's text: each "why not" worded as its
//! true reason, user strings escaped for markdown, money never "$-0.00".

#![allow(clippy::unwrap_used)]
#![allow(clippy::indexing_slicing)]

use enclave::analysis::aggregate::{GroupStats, aggregate};
use enclave::analysis::catalog::Catalog;
use enclave::analysis::optimize::{Kind, Recommendation, Thresholds, recommend};
use enclave::analysis::plan::{Goal, choose, plan_savings};
use enclave::analysis::report_text::{Rows, escape_md, money, percent, spend, usage_table};
use enclave::analysis::why_not::{KINDS, Reason, no_data, not_offered, why_not};
use enclave::analysis::window::{WindowFacts, WindowPass};
use enclave::usage::record::UsageRecord;

/// big: in 10, out 30, cached in 1, batch −50%, substitute small.
/// small: in 1, out 2, cached in 0.5, batch −50%. plain: in 2, out 4, nothing else.
fn catalog() -> Catalog {
    Catalog::from_json(
        r#"{"as_of":"2030-01-01","currency":"USD","models":[
        {"model":"big","input_per_mtok":10,"output_per_mtok":30,"cached_input_per_mtok":1,"batch_discount":0.5,"substitute":"small"},
        {"model":"small","input_per_mtok":1,"output_per_mtok":2,"cached_input_per_mtok":0.5,"batch_discount":0.5},
        {"model":"plain","input_per_mtok":2,"output_per_mtok":4}]}"#,
    )
    .unwrap()
}

fn record(model: &str, workload: &str, prompt: i64, completion: i64) -> UsageRecord {
    UsageRecord {
        external_id: None,
        ts: 0,
        model: model.into(),
        provider: None,
        workload: workload.into(),
        prompt_tokens: prompt,
        completion_tokens: completion,
        cached_tokens: 0,
        latency_ms: 100,
        max_tokens: None,
        cost_usd: None,
        prompt_prefix_hash: None,
        interactive: true,
        is_error: false,
    }
}

fn close(actual: f64, expected: f64) {
    assert!((actual - expected).abs() < 1e-9, "{actual} != {expected}");
}

fn only(recs: &[Recommendation], kind: Kind) -> Vec<&Recommendation> {
    recs.iter().filter(|r| r.kind == kind).collect()
}

/// The facts one pass over `records` finds, with the default thresholds.
fn facts_of(records: &[UsageRecord], catalog: &Catalog) -> WindowFacts {
    WindowPass::of_records(records, catalog, &Thresholds::default()).1
}

fn analyse(records: &[UsageRecord]) -> Vec<Recommendation> {
    let catalog = catalog();
    recommend(
        &facts_of(records, &catalog),
        &catalog,
        &Thresholds::default(),
        30.0,
    )
}

#[test]
fn kind_names_are_the_wire_names() {
    for kind in KINDS {
        assert_eq!(serde_json::json!(kind), kind.as_str());
    }
}

#[test]
fn model_substitution_prices_the_same_tokens_at_the_substitute() {
    // 20 requests of big: 1,000 prompt + 40 completion each.
    // big:   1,000 × 10 + 40 × 30 = 11,200 per million → $0.0112 each, $0.224 in all.
    // small: 1,000 × 1 + 40 × 2 = 1,080 per million → $0.00108 each, $0.0216 in all.
    // Savings $0.2024, 90.357…% of $0.224.
    let records: Vec<UsageRecord> = (0..20).map(|_| record("big", "chat", 1_000, 40)).collect();
    let recs = analyse(&records);
    let sub = only(&recs, Kind::ModelSubstitution);
    assert_eq!(sub.len(), 1);
    let sub = sub[0];
    assert_eq!(sub.target_model.as_deref(), Some("small"));
    assert_eq!(sub.affected_requests, 20);
    close(sub.current_cost_usd, 0.224);
    close(sub.projected_cost_usd, 0.0216);
    close(sub.savings_usd, 0.2024);
    close(sub.savings_pct, 100.0 * 0.2024 / 0.224);
    // 30 days of window: monthly savings equal the window's.
    close(sub.monthly_savings_usd, 0.2024);
}

#[test]
fn model_substitution_thresholds_just_below_and_above() {
    // p95 of 20 values is the 19th smallest (nearest rank: ceil(0.95 × 20) = 19).
    let with = |completions: &[i64], prompt: i64, errors: usize| {
        let mut records: Vec<UsageRecord> =
            (0..20).map(|_| record("big", "chat", prompt, 40)).collect();
        for (r, c) in records.iter_mut().zip(completions) {
            r.completion_tokens = *c;
        }
        for r in records.iter_mut().take(errors) {
            r.is_error = true;
        }
        !only(&analyse(&records), Kind::ModelSubstitution).is_empty()
    };
    assert!(
        with(&[51], 1_000, 0),
        "one request of 51: the 19th is still 40"
    );
    assert!(with(&[50, 50], 1_000, 0), "p95 exactly 50 is allowed");
    assert!(!with(&[51, 51], 1_000, 0), "p95 51 is over");
    assert!(with(&[], 2_000, 0), "p95 prompt exactly 2,000 is allowed");
    assert!(!with(&[], 2_001, 0), "p95 prompt 2,001 is over");
    assert!(with(&[], 1_000, 1), "1 error in 20 = 5% is allowed");
    assert!(!with(&[], 1_000, 2), "2 in 20 = 10% is over");
    // No substitute in the catalog: never.
    let plain: Vec<UsageRecord> = (0..20).map(|_| record("plain", "chat", 100, 10)).collect();
    assert!(only(&analyse(&plain), Kind::ModelSubstitution).is_empty());
}

#[test]
fn prompt_caching_saves_on_every_use_after_the_first() {
    // Hash "h" used 10 times on big (input 10, cached input 1); prompts 2,000 except one of
    // 1,500, so the prefix is 1,500 tokens. The first use (ts 0) pays in full; the nine after
    // it save (1,500 − cached) × (10 − 1) per million: eight with no cached tokens save
    // 13,500 → $0.0135 each, one with 500 cached saves 9,000 → $0.009. Total $0.117.
    let mut records: Vec<UsageRecord> = (0..10)
        .map(|i| {
            let mut r = record("big", "rag", if i == 3 { 1_500 } else { 2_000 }, 300);
            r.prompt_prefix_hash = Some("h".into());
            r.ts = i;
            r
        })
        .collect();
    records[5].cached_tokens = 500;
    let recs = analyse(&records);
    let cache = only(&recs, Kind::PromptCaching);
    assert_eq!(cache.len(), 1);
    assert_eq!(cache[0].affected_requests, 9);
    close(cache[0].savings_usd, 8.0 * 0.0135 + 0.009);
    // The affected records' full cost: eight 2,000/300 (20,000 + 9,000 = 29,000 → $0.029),
    // one 1,500/300 (15,000 + 9,000 → $0.024) and the one with 500 cached
    // (1,500 × 10 + 500 × 1 + 300 × 30 = 24,500 → $0.0245), minus the first (ts 0, $0.029).
    close(cache[0].current_cost_usd, 7.0 * 0.029 + 0.024 + 0.0245);

    // Nine uses are below the threshold of ten: no caching.
    assert!(only(&analyse(&records[..9]), Kind::PromptCaching).is_empty());
    // No cached price (plain): no caching, however often the prefix repeats.
    let plain: Vec<UsageRecord> = records
        .iter()
        .map(|r| UsageRecord {
            model: "plain".into(),
            ..r.clone()
        })
        .collect();
    assert!(only(&analyse(&plain), Kind::PromptCaching).is_empty());
}

#[test]
fn batching_saves_the_discount_on_non_interactive_traffic_only() {
    // Four non-interactive big requests of 1,000 + 100: 10,000 + 3,000 = 13,000 → $0.013
    // each, $0.052 in all; the batch API saves 50%: $0.026. Interactive ones are untouched.
    let mut records: Vec<UsageRecord> = (0..6)
        .map(|_| record("big", "nightly", 1_000, 100))
        .collect();
    for r in records.iter_mut().take(4) {
        r.interactive = false;
    }
    let recs = analyse(&records);
    let batch = only(&recs, Kind::Batching);
    assert_eq!(batch[0].affected_requests, 4);
    close(batch[0].current_cost_usd, 0.052);
    close(batch[0].savings_usd, 0.026);
    close(batch[0].savings_pct, 50.0);
    let interactive: Vec<UsageRecord> = (0..6).map(|_| record("big", "chat", 1_000, 100)).collect();
    assert!(only(&analyse(&interactive), Kind::Batching).is_empty());
    let mut plain = record("plain", "nightly", 1_000, 100);
    plain.interactive = false;
    assert!(
        only(&analyse(&[plain]), Kind::Batching).is_empty(),
        "no batch discount"
    );
}

#[test]
fn max_tokens_tuning_proposes_twice_p99_in_sixteens_and_saves_nothing() {
    // p99 completion is 100, so caps of 400 or more qualify (399 does not); the proposal is
    // 2 × 100 = 200, rounded up to a multiple of 16: 208.
    let mut records: Vec<UsageRecord> =
        (0..10).map(|_| record("plain", "chat", 100, 100)).collect();
    records[0].max_tokens = Some(400);
    records[1].max_tokens = Some(4_096);
    records[2].max_tokens = Some(399);
    let recs = analyse(&records);
    let tune = only(&recs, Kind::MaxTokensTuning);
    assert_eq!(tune[0].affected_requests, 2);
    assert_eq!(tune[0].proposed_max_tokens, Some(208));
    close(tune[0].savings_usd, 0.0);
    close(tune[0].projected_cost_usd, tune[0].current_cost_usd);
}

#[test]
fn retry_waste_is_half_the_spend_of_failed_requests() {
    // Two failed plain requests of 1,000 + 500: 2,000 + 2,000 = 4,000 → $0.004 each; the
    // avoidable share is 0.5: $0.004 saved of $0.008.
    let mut records: Vec<UsageRecord> = (0..5)
        .map(|_| record("plain", "tools", 1_000, 500))
        .collect();
    records[0].is_error = true;
    records[1].is_error = true;
    let recs = analyse(&records);
    let retry = only(&recs, Kind::RetryWaste);
    close(retry[0].current_cost_usd, 0.008);
    close(retry[0].savings_usd, 0.004);
    assert!(only(&analyse(&records[2..]), Kind::RetryWaste).is_empty());
}

#[test]
fn overlapping_recommendations_in_one_plan_are_counted_once() {
    // Twenty big requests of 1,000 + 40, all non-interactive, one failed (5% errors, still
    // allowed for substitution): substitution, batching and retry waste all apply. Alone, each
    // request costs $0.0112; the group $0.224.
    // - substitution alone saves $0.224 − 20 × $0.00108 = $0.2024
    // - batching alone saves half of $0.224 = $0.112
    // - retry alone saves half of one request: $0.0056
    // Together, per record: small price $0.00108, then batching halves it: $0.00054; the
    // failed one is halved again: $0.00027. After = 19 × 0.00054 + 0.00027 = $0.01053, so the
    // plan saves $0.224 − $0.01053 = $0.21347 — not the $0.32 of the three added up.
    let mut records: Vec<UsageRecord> = (0..20).map(|_| record("big", "jobs", 1_000, 40)).collect();
    for r in &mut records {
        r.interactive = false;
    }
    records[0].is_error = true;
    let catalog = catalog();
    let thresholds = Thresholds::default();
    let facts = facts_of(&records, &catalog);
    let recs = recommend(&facts, &catalog, &thresholds, 30.0);
    let kinds: Vec<Kind> = recs.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [Kind::ModelSubstitution, Kind::Batching, Kind::RetryWaste]
    );
    close(recs[0].savings_usd, 0.2024);
    close(recs[1].savings_usd, 0.112);
    close(recs[2].savings_usd, 0.0056);
    let all: Vec<&Recommendation> = recs.iter().collect();
    close(plan_savings(&facts, &catalog, &thresholds, &all), 0.21347);
    // Batching then retry: 19 × 0.0056 + 0.0028 = $0.1092 after, $0.1148 saved.
    let two: Vec<&Recommendation> = vec![&recs[1], &recs[2]];
    close(plan_savings(&facts, &catalog, &thresholds, &two), 0.1148);

    // Choosing for −90%: the least risky first — batching (50%), retry (51.25%) — then
    // substitution, reaching 95.3%.
    let goals = [Goal {
        metric: "cost".into(),
        target_pct: Some(-90.0),
        target_value: None,
        priority: 1,
        rationale: String::new(),
    }];
    let plan = choose(&facts, &catalog, &thresholds, &recs, &goals, 0.224);
    assert_eq!(plan.selected, ["rec-2", "rec-3", "rec-1"]);
    close(plan.savings_usd, 0.21347);
    close(plan.savings_pct, 100.0 * 0.21347 / 0.224);
    assert!(plan.goals_met);
    assert_eq!(plan.steps.len(), 3);

    // −40% is met by batching alone, which carries the least risk.
    let goals = [Goal {
        target_pct: Some(-40.0),
        ..goals[0].clone()
    }];
    let plan = choose(&facts, &catalog, &thresholds, &recs, &goals, 0.224);
    assert_eq!(plan.selected, ["rec-2"]);
    close(plan.savings_pct, 50.0);

    // −99% cannot be met: everything is chosen and the shortfall stated.
    let goals = [Goal {
        target_pct: Some(-99.0),
        ..goals[0].clone()
    }];
    let plan = choose(&facts, &catalog, &thresholds, &recs, &goals, 0.224);
    assert!(!plan.goals_met);
    close(plan.shortfall_pct, 99.0 - 100.0 * 0.21347 / 0.224);
}

// ---- The report's text -------------------------------------------------------------------

/// The one group of `records`, aggregated with the fixture catalog.
fn group_of(records: &[UsageRecord]) -> GroupStats {
    let groups = aggregate(records, &catalog()).groups;
    assert_eq!(groups.len(), 1);
    groups[0].clone()
}

/// `kind`'s reason for the one group of `records`, as the report words it.
fn reason(records: &[UsageRecord], kind: Kind) -> Option<String> {
    why_not(&group_of(records), kind, &catalog(), &Thresholds::default()).map(|r| r.to_string())
}

/// `md` read the way CommonMark reads backslash escapes (a backslash before ASCII punctuation
/// stands for that character), and the markdown-significant characters left unescaped.
fn read_escapes(md: &str) -> (String, Vec<char>) {
    let mut text = String::new();
    let mut raw = Vec::new();
    let mut chars = md.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(next) if next.is_ascii_punctuation() => text.push(next),
                Some(next) => {
                    raw.push('\\');
                    text.push('\\');
                    text.push(next);
                }
                None => raw.push('\\'),
            }
            continue;
        }
        if "\\`*_~[]!<>&|#".contains(c) {
            raw.push(c);
        }
        text.push(c);
    }
    (text, raw)
}

/// The `|` of a table row that CommonMark reads as column separators.
fn unescaped_pipes(row: &str) -> usize {
    read_escapes(row).1.iter().filter(|c| **c == '|').count()
}

#[test]
fn user_strings_are_escaped_to_render_as_their_literal_text() {
    let cases = [
        ("a|b", r"a\|b"),
        (
            "<script>alert(1)</script>",
            r"\<script\>alert(1)\</script\>",
        ),
        ("=cmd|' /C calc'!A0", r"\=cmd\|' /C calc'\!A0"),
        ("`rm -rf /`", r"\`rm -rf /\`"),
        ("gpt-4o", "gpt-4o"),
        ("claude-3.5 (eu)", "claude-3.5 (eu)"),
        ("-rf", r"\-rf"),
        ("+1", r"\+1"),
        ("@SUM(A1)", r"\@SUM(A1)"),
        (" =1+1", r" \=1+1"),
        (r"C:\temp", r"C:\\temp"),
        ("**bold** _em_ ~x~", r"\*\*bold\*\* \_em\_ \~x\~"),
        ("[x](http://e)", r"\[x\](http://e)"),
        ("&lt;b&gt;", r"\&lt;b\&gt;"),
        ("# heading", r"\# heading"),
    ];
    for (user, escaped) in cases {
        assert_eq!(escape_md(user), escaped, "{user}");
        let (text, raw) = read_escapes(&escape_md(user));
        assert_eq!(text, user, "read back as the literal text");
        assert!(raw.is_empty(), "{user}: {raw:?} left unescaped");
    }
    // A line break would end a table row: control characters become spaces.
    assert_eq!(escape_md("two\nlines\r\tx"), "two lines  x");
}

#[test]
fn money_is_never_minus_zero_and_unpriced_spend_is_not_a_number() {
    assert_eq!(money(-0.0), "$0.00");
    assert_eq!(money(-0.004), "$0.00");
    assert_eq!(money(0.004), "$0.00");
    assert_eq!(money(0.1125), "$0.11");
    assert_eq!(money(1234.5), "$1234.50");
    assert_eq!(money(-0.4), "-$0.40");
    assert_eq!(money(f64::NAN), "n/a");
    assert_eq!(spend(-0.0, 3, 3), "unpriced");
    assert_eq!(spend(1.2, 5, 2), "$1.20 + 2 unpriced");
    assert_eq!(spend(-0.0, 1, 0), "$0.00");
    assert_eq!(percent(0.125), "12.5%");
    assert_eq!(percent(-0.0), "0.0%");
}

#[test]
fn an_unpriced_group_shows_unpriced_not_minus_zero() {
    let records = vec![record("homegrown", "chat", 1_000, 100); 3];
    let a = aggregate(&records, &catalog());
    // An empty f64 sum is -0.0; the aggregates must hold +0.0.
    assert!(a.groups[0].spend_usd == 0.0 && a.groups[0].spend_usd.is_sign_positive());
    assert!(a.totals.spend_usd.is_sign_positive());
    assert_eq!(a.totals.unpriced_requests, 3);
    let table = usage_table(&a.groups, Rows::All);
    assert!(
        table.contains("| homegrown | chat | 3 | 3000 | 300 | unpriced | 100 | 100 | 100 | 0.0% |"),
        "{table}"
    );
    assert!(!table.contains("-0.00"), "{table}");
}

#[test]
fn the_usage_table_escapes_names_and_keeps_its_columns() {
    let mut records = vec![
        record("<script>alert(1)</script>", "a|b", 1_000, 100),
        record("`big`", "=cmd|' /C calc'!A0", 1_000, 100),
        record("big", "nightly", 1_000, 100),
    ];
    records[2].is_error = true;
    let groups = aggregate(&records, &catalog()).groups;
    let table = usage_table(&groups, Rows::All);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2 + 3, "{table}");
    for line in &lines {
        assert_eq!(unescaped_pipes(line), 11, "ten columns: {line}");
    }
    // big: 1,000 × 10 + 100 × 30 = 13,000 per million = $0.013; sorted by spend first.
    assert_eq!(
        lines[2],
        "| big | nightly | 1 | 1000 | 100 | $0.01 | 100 | 100 | 100 | 100.0% |"
    );
    assert!(table.contains(
        r"| \<script\>alert(1)\</script\> | a\|b | 1 | 1000 | 100 | unpriced | 100 | 100 | 100 | 0.0% |"
    ));
    assert!(table.contains(r"| \`big\` | \=cmd\|' /C calc'\!A0 | 1 |"));
    assert!(!table.contains("<script>") && !table.contains("-0.00"));
}

#[test]
fn batching_names_a_missing_batch_discount_not_missing_traffic() {
    // The issue's case: 50 gemini-1.5-pro requests, half non-interactive; the built-in
    // catalog has no batch discount for that model.
    let records: Vec<UsageRecord> = (0..50)
        .map(|i| {
            let mut r = record("gemini-1.5-pro", "summaries", 1_000, 200);
            r.interactive = i % 2 == 0;
            r
        })
        .collect();
    let builtin = Catalog::builtin();
    let group = aggregate(&records, &builtin).groups[0].clone();
    assert_eq!(group.non_interactive_requests, 25);
    let t = Thresholds::default();
    let said = |kind| why_not(&group, kind, &builtin, &t).map(|r| r.to_string());
    assert_eq!(
        said(Kind::Batching).as_deref(),
        Some("the catalog has no batch discount for gemini-1.5-pro")
    );
    assert_eq!(
        said(Kind::PromptCaching).as_deref(),
        Some("the catalog has no cached-input price for gemini-1.5-pro")
    );
    // With a discount but only interactive traffic, that is the reason.
    let interactive = vec![record("big", "chat", 1_000, 200); 5];
    assert_eq!(
        reason(&interactive, Kind::Batching).as_deref(),
        Some("no request is marked non-interactive (\"interactive\": false)")
    );
}

#[test]
fn a_model_without_a_price_is_named_with_the_catalog_date() {
    let records = vec![record("homegrown", "chat", 1_000, 100); 4];
    for kind in KINDS {
        assert_eq!(
            reason(&records, kind).as_deref(),
            Some("no price for homegrown in the catalog (as of 2030-01-01)")
        );
    }
    // One entry for every change, not five.
    let groups = aggregate(&records, &catalog()).groups;
    let listed = not_offered(&groups, &[], &KINDS, &catalog(), &Thresholds::default());
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].kind, None);
}

#[test]
fn substitution_names_each_number_over_its_threshold() {
    let plain = vec![record("plain", "chat", 100, 10); 20];
    assert_eq!(
        reason(&plain, Kind::ModelSubstitution).as_deref(),
        Some("the catalog names no cheaper substitute for plain")
    );
    // 20 requests: the p95 is the 19th smallest value.
    let mut records = vec![record("big", "chat", 1_000, 40); 20];
    assert_eq!(reason(&records, Kind::ModelSubstitution), None);
    for r in records.iter_mut().take(2) {
        r.completion_tokens = 51;
    }
    assert_eq!(
        reason(&records, Kind::ModelSubstitution).as_deref(),
        Some("the p95 of completion tokens is 51, over the threshold of 50")
    );
    for r in records.iter_mut().take(2) {
        r.prompt_tokens = 2_001;
        r.is_error = true;
    }
    assert_eq!(
        reason(&records, Kind::ModelSubstitution).as_deref(),
        Some(
            "the p95 of completion tokens is 51, over the threshold of 50; the p95 of prompt \
             tokens is 2001, over the threshold of 2000; the error rate is 10.0%, over the \
             threshold of 5.0%"
        )
    );
}

#[test]
fn caching_names_the_missing_price_hashes_or_the_best_count_and_threshold() {
    let hashed = |model: &str, uses: usize| -> Vec<UsageRecord> {
        (0..uses)
            .map(|_| {
                let mut r = record(model, "rag", 2_000, 100);
                r.prompt_prefix_hash = Some("h".into());
                r
            })
            .collect()
    };
    assert_eq!(
        reason(&hashed("plain", 12), Kind::PromptCaching).as_deref(),
        Some("the catalog has no cached-input price for plain")
    );
    assert_eq!(
        reason(
            &vec![record("big", "rag", 2_000, 100); 12],
            Kind::PromptCaching
        )
        .as_deref(),
        Some("no request records a prompt_prefix_hash")
    );
    let mut nine = hashed("big", 9);
    nine.push(record("big", "rag", 2_000, 100));
    assert_eq!(
        reason(&nine, Kind::PromptCaching).as_deref(),
        Some("the most used prompt prefix occurs 9 times, under the threshold of 10")
    );
    assert_eq!(reason(&hashed("big", 10), Kind::PromptCaching), None);
}

#[test]
fn max_tokens_and_retry_reasons() {
    let mut records = vec![record("plain", "chat", 100, 100); 10];
    assert_eq!(
        reason(&records, Kind::MaxTokensTuning).as_deref(),
        Some("no request sets max_tokens")
    );
    records[0].max_tokens = Some(399);
    assert_eq!(
        reason(&records, Kind::MaxTokensTuning).as_deref(),
        Some("the largest max_tokens, 399, is under 4 × the p99 of 100 completion tokens (400)")
    );
    records[1].max_tokens = Some(400);
    assert_eq!(reason(&records, Kind::MaxTokensTuning), None);
    assert_eq!(
        reason(&records, Kind::RetryWaste).as_deref(),
        Some("no request failed")
    );
    records[2].is_error = true;
    assert_eq!(reason(&records, Kind::RetryWaste), None);
}

#[test]
fn a_reason_is_given_exactly_when_the_rule_offers_nothing() {
    // Every fixture above and a mixed one: for each group and kind, `why_not` is silent
    // exactly when `recommend` offers that kind for that group.
    let mut mixed: Vec<UsageRecord> = Vec::new();
    for i in 0..30 {
        let mut r = record(["big", "small", "plain", "homegrown"][i % 4], "w", 500, 30);
        r.interactive = i % 3 != 0;
        r.is_error = i % 7 == 0;
        r.max_tokens = (i % 5 == 0).then_some(4_000);
        r.prompt_prefix_hash = Some(format!("h{}", i % 2));
        r.completion_tokens = 20 + i as i64;
        mixed.push(r);
    }
    let mut hashed = vec![record("big", "rag", 2_000, 100); 11];
    for r in &mut hashed {
        r.prompt_prefix_hash = Some("h".into());
    }
    let fixtures = [
        mixed,
        hashed,
        vec![record("big", "chat", 1_000, 40); 20],
        vec![record("plain", "chat", 100, 10); 5],
    ];
    let (catalog, t) = (catalog(), Thresholds::default());
    let mut seen = (0, 0);
    let mut kinds_offered = std::collections::BTreeSet::new();
    for records in &fixtures {
        let recs = recommend(&facts_of(records, &catalog), &catalog, &t, 30.0);
        let offered: Vec<(String, String, Kind)> = recs
            .iter()
            .map(|r| (r.model.clone(), r.workload.clone(), r.kind))
            .collect();
        for g in &aggregate(records, &catalog).groups {
            for kind in KINDS {
                let is_offered = offered
                    .iter()
                    .any(|(m, w, k)| *m == g.model && *w == g.workload && *k == kind);
                let reason = why_not(g, kind, &catalog, &t);
                if is_offered {
                    kinds_offered.insert(kind);
                    seen.0 += 1;
                } else {
                    seen.1 += 1;
                }
                assert_eq!(
                    reason.is_none(),
                    is_offered,
                    "{} {} {kind:?}: {reason:?}",
                    g.model,
                    g.workload
                );
            }
        }
        // `not_offered` lists exactly the rest.
        let listed = not_offered(
            &aggregate(records, &catalog).groups,
            &offered,
            &KINDS,
            &catalog,
            &t,
        );
        assert!(listed.iter().all(|n| {
            !offered
                .iter()
                .any(|(m, w, k)| *m == n.model && *w == n.workload && Some(*k) == n.kind)
        }));
        assert!(
            listed
                .iter()
                .all(|n| n.kind.is_some() || matches!(n.reason, Reason::NoPrice { .. }))
        );
    }
    // Both sides were exercised, every kind among the offers.
    assert!(seen.0 >= 5 && seen.1 >= 10, "{seen:?}");
    assert_eq!(kinds_offered.len(), KINDS.len(), "{kinds_offered:?}");
}

#[test]
fn no_data_says_what_window_was_empty() {
    assert_eq!(
        no_data(None),
        "There is no usage data in the window analysed: you have no usage records yet."
    );
    assert_eq!(
        no_data(Some(7)),
        "There is no usage data in the window analysed, the last 7 days."
    );
    assert_eq!(
        no_data(Some(1)),
        "There is no usage data in the window analysed, the last day."
    );
}
