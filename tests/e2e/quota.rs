//! The per-user cap on stored usage records (issue 12): an upload that would cross it is
//! answered 403 `quota_exceeded` and stores nothing (also with `?partial=true`, also across
//! chunks); deleting records makes room; a synthetic request that would cross it generates
//! nothing and says why; another user's room is their own.

use serde_json::Value;

use crate::helpers::*;
use crate::on_both_backends;
use crate::usage::upload;

/// `n` valid NDJSON records with ids `{prefix}-0…`.
fn records(prefix: &str, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"id":"{prefix}-{i}","ts":{},"model":"gpt-4o","workload":"chat","prompt_tokens":100,"completion_tokens":10,"latency_ms":200}}"#,
                1_793_527_200_000_i64 + i as i64
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn stored(app: &TestApp, user: &str) -> u64 {
    let (_, summary) = app.get("/api/usage/summary", Some(&app.token(user))).await;
    summary["totals"]["requests"].as_u64().unwrap()
}

async fn ndjson(app: &TestApp, user: &str, query: &str, body: String) -> (u16, Value) {
    let (status, answer, _) = upload(app, user, "application/x-ndjson", query, body).await;
    (status, answer)
}

async fn uploads_past_the_cap_store_nothing(db: TestDb) {
    let mut config = test_config(&db);
    config.max_records_per_user = 10;
    // Chunks of 3: the upload that crosses the cap does so after chunks already written.
    config.bulk_chunk = 3;
    let app = TestApp::spawn_with(config).await;

    let (status, answer) = ndjson(&app, "alice", "", records("a", 8)).await;
    assert_eq!(
        (status, &answer["accepted"]),
        (200, &Value::from(8)),
        "{answer}"
    );

    let (status, answer) = ndjson(&app, "alice", "", records("b", 5)).await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["error"]["code"], "quota_exceeded");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit of 10"),
        "{answer}"
    );
    assert_eq!(stored(&app, "alice").await, 8, "nothing of it stored");
    let (status, answer) = ndjson(&app, "alice", "?partial=true", records("b", 5)).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (403, &Value::from("quota_exceeded"))
    );
    assert_eq!(stored(&app, "alice").await, 8);

    // Re-sending stored ids adds nothing, so it fits; two more reach the cap exactly.
    let (status, answer) = ndjson(&app, "alice", "", records("a", 8)).await;
    assert_eq!(
        (status, &answer["duplicates"]),
        (200, &Value::from(8)),
        "{answer}"
    );
    let (status, _) = ndjson(&app, "alice", "", records("c", 2)).await;
    assert_eq!(status, 200);
    assert_eq!(stored(&app, "alice").await, 10);
    let (status, _) = ndjson(&app, "alice", "", records("d", 1)).await;
    assert_eq!(status, 403);

    // Another user has room of their own.
    let (status, _) = ndjson(&app, "bob", "", records("a", 10)).await;
    assert_eq!(status, 200);

    // Deleting makes room again.
    let (_, deleted) = delete_usage(&app, "alice").await;
    assert_eq!(deleted["deleted"], 10);
    let (status, answer) = ndjson(&app, "alice", "", records("e", 10)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(stored(&app, "alice").await, 10);
    assert_eq!(stored(&app, "bob").await, 10);
    app.stop().await;
}
on_both_backends!(uploads_past_the_cap_store_nothing);

async fn delete_usage(app: &TestApp, user: &str) -> (u16, Value) {
    let mut resp = awc::Client::default()
        .delete(app.http("/api/usage"))
        .insert_header(("Authorization", format!("Bearer {}", app.token(user))))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn synthetic_data_past_the_cap_is_not_generated(db: TestDb) {
    let mut config = test_config(&db);
    config.max_records_per_user = 10;
    let app = TestApp::spawn_with(config).await;
    let (status, _) = ndjson(&app, "alice", "", records("a", 8)).await;
    assert_eq!(status, 200);

    let mut ws = app.ws("alice").await;
    ws.recv().await;
    ws.say("generate 5 synthetic chatbot records").await;
    let frames = ws.recv_runs(1).await;
    let end = frames.last().unwrap();
    assert_eq!(end["type"], "run_completed", "{end}");
    let synthetic = &end["data"]["result"]["synthetic"];
    assert_eq!(synthetic["decision"], "over_quota", "{synthetic}");
    assert_eq!(synthetic["generated"], 0);
    assert_eq!(synthetic["quota"]["held"], 8);
    assert_eq!(synthetic["quota"]["limit"], 10);
    assert!(
        end["data"]["summary"]
            .as_str()
            .unwrap()
            .contains("limit of 10"),
        "{end}"
    );
    assert!(
        !frames.iter().any(|f| f["type"] == "approval_required"),
        "nobody is asked to approve what cannot be stored"
    );
    assert_eq!(stored(&app, "alice").await, 8);

    // Two fit.
    ws.say("generate 2 synthetic chatbot records").await;
    let frames = ws.recv_runs(1).await;
    let synthetic = &frames.last().unwrap()["data"]["result"]["synthetic"];
    assert_eq!(synthetic["generated"], 2, "{synthetic}");
    assert_eq!(stored(&app, "alice").await, 10);
    app.stop().await;
}
on_both_backends!(synthetic_data_past_the_cap_is_not_generated);

async fn room_filled_while_waiting_for_approval_is_checked_again(db: TestDb) {
    let mut config = test_config(&db);
    config.max_records_per_user = 20;
    config.synthetic_approval_threshold = 5;
    let app = TestApp::spawn_with(config).await;
    let mut ws = app.ws("alice").await;
    ws.recv().await;
    ws.say("generate 10 synthetic chatbot records").await;
    let asked = ws.recv_until(|f| f["type"] == "approval_required").await;
    let approval_id = asked.last().unwrap()["data"]["approval_id"].clone();
    // Meanwhile an upload takes 15 of the 20.
    let (status, _) = ndjson(&app, "alice", "", records("a", 15)).await;
    assert_eq!(status, 200);
    ws.send(serde_json::json!({"type":"approval","approval_id":approval_id,"decision":"approve"}))
        .await;
    let frames = ws.recv_runs(1).await;
    let synthetic = &frames.last().unwrap()["data"]["result"]["synthetic"];
    assert_eq!(synthetic["decision"], "over_quota", "{synthetic}");
    assert_eq!(synthetic["quota"]["held"], 15);
    assert!(
        !frames.iter().any(|f| f["type"] == "agent_error"),
        "refused by the check after the approval, not by a failed write and a restart"
    );
    assert_eq!(stored(&app, "alice").await, 15);
    app.stop().await;
}
on_both_backends!(room_filled_while_waiting_for_approval_is_checked_again);

async fn repeated_ids_are_stored_once_and_counted_once(db: TestDb) {
    let mut config = test_config(&db);
    config.max_records_per_user = 5;
    // Chunks of 3: "a" twice in the first insert, and again in the second.
    config.bulk_chunk = 3;
    let app = TestApp::spawn_with(config).await;
    let row = |id: Option<&str>, i: i64| {
        let id = id.map_or(String::new(), |id| format!("\"id\":\"{id}\","));
        format!(
            "{{{id}\"ts\":{},\"model\":\"gpt-4o\",\"prompt_tokens\":1,\"completion_tokens\":1,\"latency_ms\":1}}",
            1_793_527_200_000_i64 + i
        )
    };
    let body = [
        row(Some("a"), 0),
        row(Some("a"), 1),
        row(Some("b"), 2),
        row(Some("a"), 3),
        row(None, 4),
        row(None, 5),
    ]
    .join("\n");
    let (status, answer) = ndjson(&app, "alice", "", body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["accepted"].as_u64(), answer["duplicates"].as_u64()),
        (Some(4), Some(2)),
        "{answer}"
    );
    assert_eq!(stored(&app, "alice").await, 4);
    // The count kept for the cap is the records stored: one more fits, two do not.
    let (status, _) = ndjson(&app, "alice", "", row(Some("c"), 6)).await;
    assert_eq!(status, 200);
    let (status, _) = ndjson(&app, "alice", "", row(Some("d"), 7)).await;
    assert_eq!(status, 403);
    app.stop().await;
}
on_both_backends!(repeated_ids_are_stored_once_and_counted_once);
