//! The optimisation rules and the plan arithmetic of PROTOCOL.md §4, against fixtures whose
//! right answers are worked out by hand here (a small fixture catalog keeps the arithmetic
//! readable: prices per million tokens).

#![allow(clippy::unwrap_used)]

use enclave::analysis::catalog::Catalog;
use enclave::analysis::optimize::{Kind, Recommendation, Thresholds, recommend};
use enclave::analysis::plan::{Goal, choose, plan_savings};
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

fn analyse(records: &[UsageRecord]) -> Vec<Recommendation> {
    recommend(records, &catalog(), &Thresholds::default(), 30.0)
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
    let recs = recommend(&records, &catalog, &thresholds, 30.0);
    let kinds: Vec<Kind> = recs.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [Kind::ModelSubstitution, Kind::Batching, Kind::RetryWaste]
    );
    close(recs[0].savings_usd, 0.2024);
    close(recs[1].savings_usd, 0.112);
    close(recs[2].savings_usd, 0.0056);
    let all: Vec<&Recommendation> = recs.iter().collect();
    close(plan_savings(&records, &catalog, &thresholds, &all), 0.21347);
    // Batching then retry: 19 × 0.0056 + 0.0028 = $0.1092 after, $0.1148 saved.
    let two: Vec<&Recommendation> = vec![&recs[1], &recs[2]];
    close(plan_savings(&records, &catalog, &thresholds, &two), 0.1148);

    // Choosing for −90%: the least risky first — batching (50%), retry (51.25%) — then
    // substitution, reaching 95.3%.
    let goals = [Goal {
        metric: "cost".into(),
        target_pct: Some(-90.0),
        target_value: None,
        priority: 1,
        rationale: String::new(),
    }];
    let plan = choose(&records, &catalog, &thresholds, &recs, &goals, 0.224);
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
    let plan = choose(&records, &catalog, &thresholds, &recs, &goals, 0.224);
    assert_eq!(plan.selected, ["rec-2"]);
    close(plan.savings_pct, 50.0);

    // −99% cannot be met: everything is chosen and the shortfall stated.
    let goals = [Goal {
        target_pct: Some(-99.0),
        ..goals[0].clone()
    }];
    let plan = choose(&records, &catalog, &thresholds, &recs, &goals, 0.224);
    assert!(!plan.goals_met);
    close(plan.shortfall_pct, 99.0 - 100.0 * 0.21347 / 0.224);
}
