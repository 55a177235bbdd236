//! The analysis of a planted dataset (one `WindowPass`) against what the record-by-record
//! analysis (before the streaming rewrite, commit 9083772) computed for it, kept in `tests/golden/analysis.json`:
//! counts and percentiles exactly, money within 1e-9 relative. The dataset plants every case
//! the rules and the plan arithmetic distinguish: a model with a substitute, one without a
//! cached price, one the catalog does not know; repeated prompt prefixes above and below the
//! threshold with varied cached tokens; billed costs (some below what caching saves); caps far
//! above and near the answers; errors; non-interactive traffic.
//!
//! The same analysis from the database (`usage_pass`: prefixes by `GROUP BY`, records in
//! storage order, on SQLite by table scan and through the index, on PostgreSQL by cursor)
//! gives the same numbers on both backends.
//!
//! `UPDATE_GOLDEN=1 cargo test --test analysis_golden` rewrites the file (only when the
//! analysis is meant to change).

#![allow(clippy::unwrap_used)]
#![allow(clippy::indexing_slicing)]

use enclave::analysis::aggregate::Aggregates;
use enclave::analysis::catalog::Catalog;
use enclave::analysis::optimize::{Thresholds, recommend};
use enclave::analysis::plan::{Goal, choose};
use enclave::analysis::window::{WindowFacts, WindowPass};
use enclave::context::UserId;
use enclave::store::repo::usage::insert_new;
use enclave::store::repo::usage_pass::{PassRequest, analyse_window};
use enclave::store::{Backend, DbConnection, SqliteSync, migrate, open_pool};
use enclave::usage::record::UsageRecord;
use serde_json::{Value, json};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/analysis.json");

/// splitmix64 of `n` in `lane`: the dataset is the same on every run.
fn mix(n: u64, lane: u64) -> u64 {
    let mut z = n
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(lane.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn pick(n: u64, lane: u64, below: u64) -> i64 {
    (mix(n, lane) % below) as i64
}

/// The planted dataset: `count` records over 20 days.
fn planted(count: u64) -> Vec<UsageRecord> {
    let models = [
        "gpt-4o",
        "gpt-4o-mini",
        "claude-3-5-sonnet",
        "homegrown-llm",
        "o1",
    ];
    let workloads = ["chat", "summarise", "classify", "extract"];
    (0..count)
        .map(|n| {
            let model = models[pick(n, 1, models.len() as u64) as usize];
            let workload = workloads[pick(n, 2, workloads.len() as u64) as usize];
            // Short traffic in classify (substitution applies), long elsewhere.
            let (prompt, completion) = if workload == "classify" {
                (200 + pick(n, 3, 1_500), 5 + pick(n, 4, 40))
            } else {
                (500 + pick(n, 3, 6_000), 50 + pick(n, 4, 900))
            };
            // 60 prefixes, most repeated often, a few rarely; every third record has none.
            let prefix = (pick(n, 5, 3) != 0).then(|| {
                let id = pick(n, 6, 60);
                if id >= 55 && pick(n, 7, 40) != 0 {
                    format!("rare-{n}")
                } else {
                    format!("prefix-{id}")
                }
            });
            let cached = match pick(n, 8, 4) {
                0 => prompt / 2,
                1 => pick(n, 9, 300),
                _ => 0,
            };
            let max_tokens = match pick(n, 10, 4) {
                0 => Some(8_192),
                1 => Some(completion + pick(n, 11, 100)),
                _ => None,
            };
            // Some records carry the bill, a few of them tiny (below what caching would save).
            let cost_usd = match pick(n, 12, 10) {
                0 => Some(pick(n, 13, 10_000) as f64 / 1e6),
                1 => Some(0.000_001),
                _ => None,
            };
            UsageRecord {
                external_id: Some(format!("r-{n}")),
                ts: 1_700_000_000_000 + pick(n, 14, 20 * 86_400_000),
                model: model.to_owned(),
                provider: None,
                workload: workload.to_owned(),
                prompt_tokens: prompt,
                completion_tokens: completion,
                cached_tokens: cached,
                latency_ms: 50 + pick(n, 15, 5_000),
                max_tokens,
                cost_usd,
                prompt_prefix_hash: prefix,
                interactive: pick(n, 16, 3) != 0,
                // A classify group stays under the substitution's error threshold.
                is_error: pick(n, 17, if workload == "classify" { 50 } else { 12 }) == 0,
            }
        })
        .collect()
}

fn goal(metric: &str, target_pct: Option<f64>) -> Goal {
    Goal {
        metric: metric.to_owned(),
        target_pct,
        target_value: None,
        priority: 1,
        rationale: String::new(),
    }
}

/// Everything the analysis says of `records`: aggregates, candidates, and the plans for a few
/// goals, as JSON.
fn analyse(records: &[UsageRecord]) -> Value {
    let (aggregates, facts) =
        WindowPass::of_records(records, &Catalog::builtin(), &Thresholds::default());
    said(aggregates, &facts)
}

/// What the analysis says, given one pass's results.
fn said(aggregates: Aggregates, facts: &WindowFacts) -> Value {
    let catalog = Catalog::builtin();
    let thresholds = Thresholds::default();
    let candidates = recommend(facts, &catalog, &thresholds, aggregates.window_days);
    let goal_sets = [
        vec![goal("cost", Some(-30.0))],
        vec![goal("cost", Some(-5.0))],
        vec![goal("cost", Some(-95.0)), goal("latency_p95_ms", None)],
        vec![],
    ];
    let plans: Vec<Value> = goal_sets
        .iter()
        .map(|goals| {
            let plan = choose(
                facts,
                &catalog,
                &thresholds,
                &candidates,
                goals,
                aggregates.totals.spend_usd,
            );
            serde_json::to_value(plan).unwrap()
        })
        .collect();
    json!({
        "aggregates": aggregates,
        "candidates": candidates,
        "plans": plans,
    })
}

/// `actual` is `expected`: integers, strings and shapes exactly, floats within 1e-9 relative.
fn same(path: &str, actual: &Value, expected: &Value) {
    match (actual, expected) {
        (Value::Number(a), Value::Number(e)) if a.is_f64() || e.is_f64() => {
            let (a, e) = (a.as_f64().unwrap(), e.as_f64().unwrap());
            let scale = a.abs().max(e.abs()).max(1e-300);
            assert!((a - e).abs() / scale <= 1e-9, "{path}: {a} != {e}");
        }
        (Value::Array(a), Value::Array(e)) => {
            assert_eq!(a.len(), e.len(), "{path}: lengths");
            for (n, (a, e)) in a.iter().zip(e).enumerate() {
                same(&format!("{path}[{n}]"), a, e);
            }
        }
        (Value::Object(a), Value::Object(e)) => {
            let keys = |o: &serde_json::Map<String, Value>| o.keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(a), keys(e), "{path}: fields");
            for (key, a) in a {
                same(&format!("{path}.{key}"), a, &e[key]);
            }
        }
        _ => assert_eq!(actual, expected, "{path}"),
    }
}

fn golden() -> Value {
    serde_json::from_str(&std::fs::read_to_string(GOLDEN).unwrap()).unwrap()
}

/// The database URLs to analyse from: a SQLite file, and a fresh PostgreSQL database when
/// `ENCLAVE_TEST_PG_URL` names a server (CI always does); each with how to drop it.
fn databases() -> Vec<(String, Box<dyn FnOnce()>)> {
    use diesel::{Connection, RunQueryDsl};
    let id = uuid::Uuid::new_v4().simple().to_string();
    let dir = std::env::temp_dir().join(format!("enclave-golden-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = format!("sqlite://{}", dir.join("golden.db").display());
    let mut found: Vec<(String, Box<dyn FnOnce()>)> = vec![(
        sqlite,
        Box::new(move || {
            let _ = std::fs::remove_dir_all(dir);
        }),
    )];
    match std::env::var("ENCLAVE_TEST_PG_URL") {
        Ok(admin_url) => {
            let name = format!("enclave_golden_{id}");
            let mut admin = diesel::PgConnection::establish(&admin_url).unwrap();
            diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
                .execute(&mut admin)
                .unwrap();
            let base = admin_url
                .rsplit_once('/')
                .map_or(admin_url.as_str(), |(b, _)| b);
            let url = format!("{base}/{name}");
            found.push((
                url,
                Box::new(move || {
                    if let Ok(mut admin) = diesel::PgConnection::establish(&admin_url) {
                        let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                        let _ = diesel::sql_query(drop).execute(&mut admin);
                    }
                }),
            ));
        }
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("CI must run the PostgreSQL tests: set ENCLAVE_TEST_PG_URL")
        }
        Err(_) => eprintln!("ENCLAVE_TEST_PG_URL is not set: PostgreSQL skipped"),
    }
    found
}

/// Stores `records` as `user`'s.
fn store(conn: &mut DbConnection, user: &UserId, records: &[UsageRecord]) {
    use diesel::Connection;
    conn.transaction(|c| insert_new(c, user, records, "uploaded", 0))
        .unwrap();
}

/// What one pass over `user`'s records in the database says.
fn analyse_stored(conn: &mut DbConnection, user: &UserId) -> Value {
    let (catalog, thresholds) = (Catalog::builtin(), Thresholds::default());
    let request = PassRequest {
        user,
        since: 0,
        until: i64::MAX,
        catalog: &catalog,
        thresholds: &thresholds,
    };
    let (aggregates, facts) = analyse_window(conn, &request, &|| true).unwrap();
    said(aggregates, &facts)
}

#[test]
fn the_planted_dataset_analyses_the_same_from_the_database() {
    let expected = golden();
    let records = planted(20_000);
    for (url, drop_it) in databases() {
        let backend = Backend::from_url(&url).unwrap();
        let pool = open_pool(
            &backend,
            2,
            std::time::Duration::from_secs(30),
            SqliteSync::Full,
        )
        .unwrap();
        let mut conn = pool.get().unwrap();
        migrate(&mut conn).unwrap();
        let user = UserId::parse("golden").unwrap();
        store(&mut conn, &user, &records);
        // The user's records are all of the table: SQLite scans it.
        same(&url, &analyse_stored(&mut conn, &user), &expected);
        // Six times as many of another user's: SQLite reads through the index.
        let other = UserId::parse("other").unwrap();
        for _ in 0..6 {
            let mut theirs = planted(20_000);
            for r in &mut theirs {
                r.external_id = None;
            }
            store(&mut conn, &other, &theirs);
        }
        same(&url, &analyse_stored(&mut conn, &user), &expected);
        drop(conn);
        drop(pool);
        drop_it();
    }
}

#[test]
fn the_planted_dataset_analyses_as_it_always_did() {
    let actual = analyse(&planted(20_000));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let text = serde_json::to_string_pretty(&actual).unwrap();
        std::fs::write(GOLDEN, text + "\n").unwrap();
    }
    let expected = golden();
    // The dataset exercises every rule, or the comparison proves little.
    let kinds: Vec<&str> = expected["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "model_substitution",
        "prompt_caching",
        "batching",
        "max_tokens_tuning",
        "retry_waste",
    ] {
        assert!(kinds.contains(&kind), "no {kind} in the golden analysis");
    }
    same("analysis", &actual, &expected);
}
