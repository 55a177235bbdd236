//! Numbers a database cannot sum or a window cannot hold are refused at upload as row errors
//! (issue 12): token counts past 10⁹ (two of `i64::MAX` once wrapped the sums negative), a
//! cost of 1e308 (which made the spend `null`), a record dated 9999 (which hid the user's real
//! data from the default window); nothing of such an upload is stored, and the rest of a
//! partial one is summed correctly.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;
use crate::usage::upload;

async fn out_of_range_numbers_are_row_errors(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let ts = 1_793_527_200_000_i64;
    let row = |id: &str, extra: Value| {
        let mut row = json!({"id": id, "ts": ts, "model": "gpt-4o", "workload": "chat",
            "prompt_tokens": 1000, "completion_tokens": 100, "latency_ms": 300});
        if let (Some(row), Some(extra)) = (row.as_object_mut(), extra.as_object()) {
            row.extend(extra.clone());
        }
        row.to_string()
    };
    let body = [
        row("huge-1", json!({"prompt_tokens": i64::MAX})),
        row("huge-2", json!({"prompt_tokens": i64::MAX})),
        row("costly-1", json!({"cost_usd": 1e308})),
        row("late", json!({"ts": 253_402_300_799_000_i64})),
        row("slow", json!({"latency_ms": 1_000_000_001})),
        row("fine", json!({})),
    ]
    .join("\n");
    let (status, answer, _) = upload(&app, "alice", "application/x-ndjson", "", body.clone()).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_rows");
    let fields: Vec<(u64, &str)> = answer["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["row"].as_u64().unwrap(), e["field"].as_str().unwrap()))
        .collect();
    assert_eq!(
        fields,
        [
            (1, "prompt_tokens"),
            (2, "prompt_tokens"),
            (3, "cost_usd"),
            (4, "ts"),
            (5, "latency_ms")
        ]
    );
    let token = app.token("alice");
    let (_, summary) = app.get("/api/usage/summary", Some(&token)).await;
    assert_eq!(summary["totals"]["requests"], 0, "nothing stored");

    let (status, answer, _) =
        upload(&app, "alice", "application/x-ndjson", "?partial=true", body).await;
    assert_eq!(
        (status, answer["accepted"].clone()),
        (200, json!(1)),
        "{answer}"
    );
    let (_, summary) = app.get("/api/usage/summary", Some(&token)).await;
    assert_eq!(summary["totals"]["requests"], 1);
    assert_eq!(summary["totals"]["prompt_tokens"], 1000);
    // gpt-4o: 1,000 × $2.50 + 100 × $10.00 per million.
    let spend = summary["totals"]["spend_usd"].as_f64().unwrap();
    assert!((spend - 0.0035).abs() < 1e-12, "{summary}");
    app.stop().await;
}
on_both_backends!(out_of_range_numbers_are_row_errors);

async fn a_window_of_any_length_is_capped(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let mut ws = app.ws("alice").await;
    ws.recv().await;
    let asked_at = enclave::clock::now_ms();
    ws.say("cut my LLM costs by 30% over the last 200000000000 days")
        .await;
    let frames = ws.recv_runs(1).await;
    assert_eq!(frames.last().unwrap()["type"], "run_completed");
    let data = frames
        .iter()
        .find(|f| f["type"] == "agent_completed" && f["agent"] == "data")
        .unwrap();
    let since = data["data"]["result"]["window"]["since"].as_i64().unwrap();
    let days = enclave::agents::data::MAX_WINDOW_DAYS;
    assert!(
        since >= asked_at - days * 86_400_000 && since <= enclave::clock::now_ms(),
        "window from {since}"
    );
    app.stop().await;
}
on_both_backends!(a_window_of_any_length_is_capped);
