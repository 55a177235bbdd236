//! `Idempotency-Key` on `POST /api/usage` (what `enclave ingest` sends with each part): an
//! upload sent again with a key that completed is answered with the counts it got and stores
//! nothing; keys are per user; a refused upload records nothing under its key; a malformed key
//! is a `bad_request`.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

const ROWS: &str = "{\"ts\":1793527200000,\"model\":\"gpt-4o\",\"prompt_tokens\":10,\"completion_tokens\":5,\"latency_ms\":100}\n\
{\"ts\":1793527200001,\"model\":\"gpt-4o\",\"prompt_tokens\":10,\"completion_tokens\":5,\"latency_ms\":100}\n";

async fn send(app: &TestApp, user: &str, key: &str, body: &str) -> (u16, Value) {
    let mut resp = awc::Client::default()
        .post(app.http("/api/usage"))
        .insert_header(("Authorization", format!("Bearer {}", app.token(user))))
        .insert_header(("Content-Type", "application/x-ndjson"))
        .insert_header(("Idempotency-Key", key))
        .send_body(body.to_owned())
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

async fn requests(app: &TestApp, user: &str) -> u64 {
    let (_, summary) = app.get("/api/usage/summary", Some(&app.token(user))).await;
    summary["totals"]["requests"].as_u64().unwrap()
}

async fn a_completed_key_is_answered_again_and_stores_nothing(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let (status, first) = send(&app, "alice", "part-1", ROWS).await;
    assert_eq!(
        (status, first["accepted"].clone()),
        (200, json!(2)),
        "{first}"
    );
    assert_eq!(first.get("replayed"), None);
    let (status, again) = send(&app, "alice", "part-1", ROWS).await;
    assert_eq!(status, 200);
    assert_eq!(
        again,
        json!({"accepted": 2, "rejected": 0, "duplicates": 0, "replayed": true})
    );
    assert_eq!(requests(&app, "alice").await, 2, "stored once");

    // Another user's key of the same name is theirs.
    let (_, bob) = send(&app, "bob", "part-1", ROWS).await;
    assert_eq!(bob["accepted"], 2, "{bob}");
    assert_eq!(requests(&app, "bob").await, 2);

    // A refused upload leaves its key unused.
    let (status, _) = send(&app, "alice", "part-2", "{\"ts\":1}\n").await;
    assert_eq!(status, 422);
    let (status, fixed) = send(&app, "alice", "part-2", ROWS).await;
    assert_eq!(
        (status, fixed["accepted"].clone()),
        (200, json!(2)),
        "{fixed}"
    );
    assert_eq!(requests(&app, "alice").await, 4);

    for bad in ["", "a b", &"k".repeat(129)] {
        let (status, answer) = send(&app, "alice", bad, ROWS).await;
        assert_eq!(status, 400, "{bad:?}: {answer}");
        assert_eq!(answer["error"]["code"], "bad_request");
    }
    assert_eq!(requests(&app, "alice").await, 4);
    app.stop().await;
}
on_both_backends!(a_completed_key_is_answered_again_and_stores_nothing);
