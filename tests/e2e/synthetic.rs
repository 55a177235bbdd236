//! Synthetic data: a large request waits for approval (approve, reject, expiry, twice,
//! another user), a small one runs at once; approved records are stored in batches with
//! progress and are what the next optimisation run analyses.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

async fn requests(app: &TestApp, user: &str) -> u64 {
    let (_, summary) = app.get("/api/usage/summary", Some(&app.token(user))).await;
    summary["totals"]["requests"].as_u64().unwrap()
}

async fn fifty_thousand_records_after_approval(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let mut tab1 = app.ws("alice").await;
    let mut tab2 = app.ws("alice").await;
    tab1.recv().await;
    tab2.recv().await;
    tab1.say("generate 50,000 synthetic rag records for gpt-4o over 30 days")
        .await;
    let asked = tab1.recv_until(|f| f["type"] == "approval_required").await;
    let required = asked.last().unwrap();
    assert_eq!(required["agent"], "synthetic_data");
    assert_eq!(required["data"]["action"], "generate_synthetic_data");
    assert_eq!(required["data"]["details"]["count"], 50_000);
    assert_eq!(required["data"]["details"]["profile"], "rag");
    let approval_id = required["data"]["approval_id"].as_str().unwrap().to_owned();
    let run_id = required["run_id"].as_str().unwrap().to_owned();
    let thread_id = required["thread_id"].as_str().unwrap().to_owned();
    assert_eq!(requests(&app, "alice").await, 0, "nothing before approval");

    // Another user cannot approve it; the other tab can.
    assert_cross_user_not_found(&app, "bob", &thread_id, &run_id, Some(&approval_id)).await;
    tab2.send(json!({"type":"approval","approval_id":approval_id,"decision":"approve"}))
        .await;
    let frames = tab1.recv_runs(1).await;
    let progress: Vec<(u64, u64)> = frames
        .iter()
        .filter(|f| f["type"] == "progress")
        .map(|f| {
            (
                f["data"]["done"].as_u64().unwrap(),
                f["data"]["total"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(progress.len(), 10, "batches of 5,000");
    assert!(progress.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(progress.last(), Some(&(50_000, 50_000)));
    assert!(
        frames
            .iter()
            .all(|f| f["type"] != "progress" || f["data"]["unit"] == "records")
    );
    let end = frames.last().unwrap();
    assert_eq!(end["type"], "run_completed");
    assert_eq!(end["data"]["result"]["synthetic"]["generated"], 50_000);
    assert_eq!(requests(&app, "alice").await, 50_000);

    // Approving again is a conflict.
    tab2.send(json!({"type":"approval","approval_id":approval_id,"decision":"approve"}))
        .await;
    let answer = tab2.recv_until(|f| f["type"] == "error").await;
    assert_eq!(answer.last().unwrap()["code"], "conflict");

    // The next optimisation run analyses them.
    tab1.say("cut my LLM costs by 20%").await;
    let frames = tab1.recv_runs(1).await;
    let result = &frames.last().unwrap()["data"]["result"];
    assert_eq!(result["totals"]["requests"], 50_000);
    assert!(!result["recommendations"].as_array().unwrap().is_empty());
    app.stop().await;
}
on_both_backends!(fifty_thousand_records_after_approval);

async fn rejected_expired_and_small_requests(db: TestDb) {
    let mut config = test_config(&db);
    config.approval_timeout = Duration::from_millis(300);
    let app = TestApp::spawn_with(config).await;
    let mut socket = app.ws("alice").await;
    socket.recv().await;

    socket
        .say("generate 20k synthetic classification records")
        .await;
    let asked = socket
        .recv_until(|f| f["type"] == "approval_required")
        .await;
    let approval_id = asked.last().unwrap()["data"]["approval_id"].clone();
    socket
        .send(json!({"type":"approval","approval_id":approval_id,"decision":"reject"}))
        .await;
    let frames = socket.recv_runs(1).await;
    assert_eq!(frames[0]["data"]["decision"], "reject");
    let end = frames.last().unwrap();
    assert_eq!(end["type"], "run_completed");
    assert!(
        end["data"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("Nothing was done")
    );
    assert!(frames.iter().all(|f| f["type"] != "progress"));
    assert_eq!(
        requests(&app, "alice").await,
        0,
        "nothing stored after a rejection"
    );

    // Nobody answers: the approval expires (after 300 ms here) and nothing is stored.
    socket
        .say("generate 20k synthetic classification records")
        .await;
    let frames = socket.recv_runs(1).await;
    let resolved = frames
        .iter()
        .find(|f| f["type"] == "approval_resolved")
        .unwrap();
    assert_eq!(resolved["data"]["decision"], "expired");
    assert_eq!(frames.last().unwrap()["type"], "run_completed");
    assert_eq!(requests(&app, "alice").await, 0);

    // A small request needs no approval.
    socket
        .say("generate 2000 synthetic chatbot records seed 9")
        .await;
    let frames = socket.recv_runs(1).await;
    assert!(frames.iter().all(|f| f["type"] != "approval_required"));
    let progress: Vec<&Value> = frames.iter().filter(|f| f["type"] == "progress").collect();
    assert_eq!(progress.len(), 1);
    assert_eq!(requests(&app, "alice").await, 2_000);
    // The same request again adds nothing: the records have the same ids.
    socket
        .say("generate 2000 synthetic chatbot records seed 9")
        .await;
    let frames = socket.recv_runs(1).await;
    assert_eq!(
        frames.last().unwrap()["data"]["result"]["synthetic"]["duplicates"],
        2_000
    );
    assert_eq!(requests(&app, "alice").await, 2_000);
    app.stop().await;
}
on_both_backends!(rejected_expired_and_small_requests);
