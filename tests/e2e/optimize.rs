//! The optimisation pipeline end to end: the shipped sample dataset in, "cut my LLM costs by
//! 30% without hurting p95 latency" asked, every agent of the plan streamed, and a result whose
//! numbers hold together; and two users with different data get answers from their own data.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;
use crate::usage::upload;

const SAMPLE: &str = include_str!("../../examples/sample-usage.ndjson");
const ASK: &str = "cut my LLM costs by 30% without hurting p95 latency";

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * b.abs().max(1.0)
}

async fn ask(app: &TestApp, user: &str) -> Vec<Value> {
    let mut socket = app.ws(user).await;
    socket.recv().await;
    socket.say(ASK).await;
    socket.recv_runs(1).await
}

async fn the_sample_dataset_gets_a_priced_plan(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let (status, answer, _) =
        upload(&app, "alice", "application/x-ndjson", "", SAMPLE.into()).await;
    assert_eq!((status, answer["accepted"].clone()), (200, json!(1500)));
    let frames = ask(&app, "alice").await;
    assert_gapless(&frames, 1);

    // Every agent of the plan started and completed, in order, with its tool in between.
    let plan: Vec<&str> = [
        "triage",
        "goals_triage",
        "data",
        "optimizations_core",
        "actions",
        "reporting",
    ]
    .to_vec();
    let started: Vec<&str> = frames
        .iter()
        .filter(|f| f["type"] == "agent_started")
        .map(|f| f["agent"].as_str().unwrap())
        .collect();
    let completed: Vec<&str> = frames
        .iter()
        .filter(|f| f["type"] == "agent_completed")
        .map(|f| f["agent"].as_str().unwrap())
        .collect();
    assert_eq!(started, plan);
    assert_eq!(completed, plan);
    for (agent, tool) in [
        ("data", "usage_aggregates"),
        ("optimizations_core", "find_optimizations"),
        ("actions", "plan_savings"),
    ] {
        let at = |kind: &str| {
            frames
                .iter()
                .position(|f| {
                    f["type"] == kind
                        && f["agent"] == agent
                        && (kind.starts_with("agent") || f["data"]["tool"] == tool)
                })
                .unwrap_or_else(|| panic!("{agent} {kind}"))
        };
        assert!(at("agent_started") < at("tool_executing"));
        assert!(at("tool_executing") < at("tool_completed"));
        assert!(at("tool_completed") < at("agent_completed"));
    }

    let end = frames.last().unwrap();
    assert_eq!(end["type"], "run_completed");
    let result = &end["data"]["result"];
    assert_eq!(result["intent"], "cost_optimization");
    assert_eq!(result["totals"]["requests"], 1500);
    assert_eq!(
        result["goals"][0],
        json!({"metric":"cost","target_pct":-30.0,"priority":1,"rationale":"you asked to cut cost by 30%"})
    );
    assert_eq!(result["goals"][1]["metric"], "latency_p95_ms");
    assert_eq!(result["goals"][1]["target_pct"], 0.0);
    assert_eq!(result["catalog_as_of"], "2026-11-01");
    assert_eq!(result["data_sufficiency"], "sufficient");

    // Every kind the data supports is there, and each recommendation's numbers agree.
    let recs = result["recommendations"].as_array().unwrap();
    let mut kinds: Vec<&str> = recs.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            "batching",
            "max_tokens_tuning",
            "model_substitution",
            "prompt_caching",
            "retry_waste"
        ]
    );
    let window_days = {
        let data = frames
            .iter()
            .find(|f| f["type"] == "agent_completed" && f["agent"] == "data")
            .unwrap();
        data["data"]["result"]["window_days"].as_f64().unwrap()
    };
    for r in recs {
        let (current, projected, savings) = (
            r["current_cost_usd"].as_f64().unwrap(),
            r["projected_cost_usd"].as_f64().unwrap(),
            r["savings_usd"].as_f64().unwrap(),
        );
        assert!(close(projected, current - savings), "{r}");
        if current > 0.0 {
            assert!(
                close(
                    r["savings_pct"].as_f64().unwrap(),
                    100.0 * savings / current
                ),
                "{r}"
            );
        }
        assert!(
            close(
                r["monthly_savings_usd"].as_f64().unwrap(),
                savings * 30.0 / window_days
            ),
            "{r}"
        );
    }
    let substitution = recs
        .iter()
        .find(|r| r["kind"] == "model_substitution")
        .unwrap();
    assert_eq!(
        (
            substitution["workload"].as_str(),
            substitution["target_model"].as_str()
        ),
        (Some("support-bot"), Some("gpt-4o-mini"))
    );
    assert!(
        recs.iter()
            .any(|r| r["kind"] == "batching" && r["workload"] == "nightly-summaries")
    );
    assert!(
        recs.iter()
            .any(|r| r["kind"] == "prompt_caching" && r["workload"] == "rag-answers")
    );

    // The plan: savings relative to the total, overlaps never adding up past the parts, and
    // the goals met or the shortfall stated.
    let plan = &result["plan"];
    let spend = result["totals"]["spend_usd"].as_f64().unwrap();
    let saved = plan["savings_usd"].as_f64().unwrap();
    assert!(close(
        plan["savings_pct"].as_f64().unwrap(),
        100.0 * saved / spend
    ));
    let selected: Vec<&Value> = plan["selected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| recs.iter().find(|r| r["id"] == *id).unwrap())
        .collect();
    let parts: f64 = selected
        .iter()
        .map(|r| r["savings_usd"].as_f64().unwrap())
        .sum();
    assert!(saved <= parts + 1e-9 && saved > 0.0, "{saved} vs {parts}");
    assert_eq!(plan["steps"].as_array().unwrap().len(), selected.len());
    if plan["goals_met"] == true {
        assert!(plan["savings_pct"].as_f64().unwrap() >= 30.0);
        assert_eq!(plan["shortfall_pct"], 0.0);
    } else {
        assert!(close(
            plan["shortfall_pct"].as_f64().unwrap(),
            30.0 - plan["savings_pct"].as_f64().unwrap()
        ));
    }
    let report = end["data"]["report_markdown"].as_str().unwrap();
    assert!(report.contains("## Recommendations") && report.contains("## Plan"));
    assert!(report.contains("catalog as of 2026-11-01"));
    app.stop().await;
}
on_both_backends!(the_sample_dataset_gets_a_priced_plan);

async fn two_users_same_question_own_data(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let nightly: String = SAMPLE
        .lines()
        .filter(|l| l.contains("nightly-summaries"))
        .map(|l| format!("{l}\n"))
        .collect();
    let (status, _, _) = upload(&app, "alice", "application/x-ndjson", "", SAMPLE.into()).await;
    assert_eq!(status, 200);
    let (status, _, _) = upload(&app, "bob", "application/x-ndjson", "", nightly.clone()).await;
    assert_eq!(status, 200);
    let alice = ask(&app, "alice").await;
    let bob = ask(&app, "bob").await;
    let result = |frames: &[Value]| frames.last().unwrap()["data"]["result"].clone();
    let (alice, bob) = (result(&alice), result(&bob));
    assert_eq!(alice["totals"]["requests"], 1500);
    assert_eq!(bob["totals"]["requests"], nightly.lines().count());
    let kinds: Vec<&str> = bob["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["batching"], "bob's data supports batching only");
    assert!(alice["recommendations"].as_array().unwrap().len() > 1);
    assert!(
        bob["totals"]["spend_usd"].as_f64().unwrap()
            < alice["totals"]["spend_usd"].as_f64().unwrap()
    );
    app.stop().await;
}
on_both_backends!(two_users_same_question_own_data);
