//! Values no database can hold (issue 9, point 10): a NUL character in message content or in a
//! usage row is refused as bad input naming the field, before it reaches a write batch.
//!
//! Each scenario has other runs in flight while the value is refused (every triage is slowed):
//! another user's, and for messages the sender's own; those runs must complete. Before the fix,
//! on PostgreSQL, the value reached the database: the message's write batch failed
//! (`unavailable`) and the upload's insert answered 503; on SQLite both were stored.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;
use crate::usage::upload;

/// The reason a usage row's text field with a NUL gets.
const ROW_REASON: &str = "contains a NUL character (U+0000), which cannot be stored; remove it";

/// A server whose every triage waits, so a run stays in flight while the test goes on.
async fn slow_triage_app(db: &TestDb) -> TestApp {
    let mut config = test_config(db);
    config.faults = "triage:slow:300".into();
    TestApp::spawn_with(config).await
}

/// Connects `user` and checks the stored `last_seq` the server announces.
async fn connect(app: &TestApp, user: &str, last_seq: i64) -> WsClient {
    let mut socket = app.ws(user).await;
    let connected = socket.recv().await;
    assert_eq!(connected["type"], "connected");
    assert_eq!(connected["last_seq"], last_seq, "{user}: {connected}");
    socket
}

/// Starts a run and reads up to its `run_started`: the run is then in flight.
async fn start_run(socket: &mut WsClient, content: &str) -> Vec<Value> {
    socket.say(content).await;
    socket.recv_until(|f| f["type"] == "run_started").await
}

/// Reads on from `frames` until `runs` runs have ended in all.
async fn until_runs_end(socket: &mut WsClient, mut frames: Vec<Value>, runs: usize) -> Vec<Value> {
    let ended = frames.iter().filter(|f| is_run_end(f)).count();
    if ended < runs {
        frames.extend(socket.recv_runs(runs - ended).await);
    }
    frames
}

/// Reads until the answer to a message sent while `run` is in flight: an `error`, or the first
/// event that is not `run`'s (had the message been accepted). Returns the answer and the frames
/// of `run` that came before it.
async fn answer_beside(socket: &mut WsClient, run: &Value) -> (Value, Vec<Value>) {
    let mut frames = socket
        .recv_until(|f| f["type"] == "error" || (f.get("seq").is_some() && f["run_id"] != *run))
        .await;
    let answer = frames.pop().unwrap();
    (answer, frames)
}

async fn thread_count(app: &TestApp, user: &str) -> usize {
    let (status, threads) = app.get("/api/threads", Some(&app.token(user))).await;
    assert_eq!(status, 200);
    threads["threads"].as_array().unwrap().len()
}

async fn nul_in_content_is_refused_naming_it_while_other_runs_complete(db: TestDb) {
    let app = slow_triage_app(&db).await;
    let mut alice = connect(&app, "alice", 0).await;
    let mut bob = connect(&app, "bob", 0).await;
    // One run of alice's and one of bob's are in flight when alice's NUL arrives.
    let mut alice_frames = start_run(&mut alice, "analyse my usage").await;
    let alice_run = alice_frames.last().unwrap()["run_id"].clone();
    let bob_frames = start_run(&mut bob, "cut my costs").await;

    alice
        .send(json!({"type":"user_message","content":"a\u{0}b","client_msg_id":"nul-1"}))
        .await;
    let (error, before_error) = answer_beside(&mut alice, &alice_run).await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["code"], "bad_request", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with("`content` contains a NUL character"),
        "{message}"
    );
    assert!(message.contains("remove it"), "{message}");
    assert_eq!(error["ref"], "nul-1");
    alice_frames.extend(before_error);

    // The refused message started nothing: alice's first run and bob's run complete, every
    // event of alice's belongs to her first run, and her sequence has no gap.
    let alice_frames = until_runs_end(&mut alice, alice_frames, 1).await;
    assert_eq!(alice_frames.last().unwrap()["type"], "run_completed");
    assert_gapless(&alice_frames, 1);
    for frame in sequenced(&alice_frames) {
        assert_eq!(frame["run_id"], alice_run, "{frame}");
    }
    let bob_frames = until_runs_end(&mut bob, bob_frames, 1).await;
    assert_eq!(bob_frames.last().unwrap()["type"], "run_completed");
    assert_gapless(&bob_frames, 1);

    // Nothing was stored for it: the stored sequence ends with the first run, one thread.
    let last_seq = *seqs(&alice_frames).last().unwrap();
    connect(&app, "alice", last_seq).await.close().await;
    assert_eq!(thread_count(&app, "alice").await, 1);

    // The socket stays open, and the same client_msg_id with storable content is a new
    // message (no claim was recorded for the refused one) whose run completes right after.
    assert_eq!(alice.ping_pong("still-open").await, Vec::<Value>::new());
    alice
        .send(json!({"type":"user_message","content":"analyse my usage","client_msg_id":"nul-1"}))
        .await;
    let next = alice.recv_runs(1).await;
    assert_eq!(next.last().unwrap()["type"], "run_completed");
    assert_ne!(next.last().unwrap()["run_id"], alice_run);
    assert_gapless(&next, last_seq + 1);
    assert_eq!(thread_count(&app, "alice").await, 2);
    app.stop().await;
}
on_both_backends!(nul_in_content_is_refused_naming_it_while_other_runs_complete);

async fn nul_in_client_msg_id_is_refused_naming_it(db: TestDb) {
    let app = slow_triage_app(&db).await;
    let mut alice = connect(&app, "alice", 0).await;
    let mut frames = start_run(&mut alice, "analyse my usage").await;
    let run = frames.last().unwrap()["run_id"].clone();

    alice
        .send(json!({"type":"user_message","content":"hi","client_msg_id":"m\u{0}1"}))
        .await;
    let (error, before_error) = answer_beside(&mut alice, &run).await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["code"], "bad_request", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with("`client_msg_id` contains a NUL character"),
        "{message}"
    );
    frames.extend(before_error);
    let frames = until_runs_end(&mut alice, frames, 1).await;
    assert_eq!(frames.last().unwrap()["type"], "run_completed");
    assert_gapless(&frames, 1);
    let last_seq = *seqs(&frames).last().unwrap();
    connect(&app, "alice", last_seq).await.close().await;
    assert_eq!(thread_count(&app, "alice").await, 1);

    // A NUL outside any stored field (the ping nonce is echoed, never stored) is fine.
    alice.send(json!({"type":"ping","nonce":"n\u{0}"})).await;
    assert_eq!(alice.recv().await["nonce"], "n\u{0}");
    app.stop().await;
}
on_both_backends!(nul_in_client_msg_id_is_refused_naming_it);

const GOOD_ROW: &str = r#"{"id":"u1","ts":1793527200000,"model":"gpt-4o","prompt_tokens":10,"completion_tokens":5,"latency_ms":100}"#;

/// `GOOD_ROW` with `id` replaced and `field` set to `value`.
fn row(id: &str, field: &str, value: &str) -> Value {
    let mut row: Value = serde_json::from_str(GOOD_ROW).unwrap();
    row["id"] = json!(id);
    row[field] = json!(value);
    row
}

async fn requests_stored(app: &TestApp, user: &str) -> Value {
    let (status, summary) = app.get("/api/usage/summary", Some(&app.token(user))).await;
    assert_eq!(status, 200);
    summary["totals"]["requests"].clone()
}

async fn nul_in_a_usage_row_is_a_row_error_while_another_run_completes(db: TestDb) {
    let app = slow_triage_app(&db).await;
    let mut bob = connect(&app, "bob", 0).await;
    let bob_frames = start_run(&mut bob, "cut my costs").await;

    // NDJSON: row 2's model holds a NUL.
    let ndjson = [
        row("n1", "workload", "chat"),
        row("n2", "model", "gpt-4o\u{0}"),
        row("n3", "workload", "chat"),
    ]
    .iter()
    .map(|r| format!("{r}\n"))
    .collect::<String>();
    let (status, answer, _) =
        upload(&app, "alice", "application/x-ndjson", "", ndjson.clone()).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_rows");
    assert_eq!(
        answer["error"]["details"],
        json!([{"row":2,"field":"model","reason":ROW_REASON}])
    );

    // CSV: a raw NUL byte in row 1's workload cell.
    let csv = "id,ts,model,workload,prompt_tokens,completion_tokens,latency_ms\n\
               c1,1793527200000,gpt-4o,chat\0bot,10,5,100\n\
               c2,1793527200000,gpt-4o,chat,10,5,100\n";
    let (status, answer, _) = upload(&app, "alice", "text/csv", "", csv.into()).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(
        answer["error"]["details"],
        json!([{"row":1,"field":"workload","reason":ROW_REASON}])
    );

    // A JSON array: NULs in the id of row 1 and in the provider and prefix hash of row 3.
    let mut third = row("j3", "provider", "open\u{0}ai");
    third["prompt_prefix_hash"] = json!("\u{0}");
    let array = json!([
        row("j\u{0}1", "workload", "chat"),
        row("j2", "workload", "chat"),
        third
    ]);
    let (status, answer, _) =
        upload(&app, "alice", "application/json", "", array.to_string()).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(
        answer["error"]["details"],
        json!([
            {"row":1,"field":"id","reason":ROW_REASON},
            {"row":3,"field":"provider","reason":ROW_REASON},
            {"row":3,"field":"prompt_prefix_hash","reason":ROW_REASON}
        ])
    );
    assert_eq!(requests_stored(&app, "alice").await, 0, "nothing stored");

    // With ?partial=true the row is skipped and the others are stored.
    let (status, answer, _) = upload(
        &app,
        "alice",
        "application/x-ndjson",
        "?partial=true",
        ndjson,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"accepted":2,"rejected":1,"duplicates":0,
               "details":[{"row":2,"field":"model","reason":ROW_REASON}]})
    );
    assert_eq!(requests_stored(&app, "alice").await, 2);

    // Bob's run, in flight throughout, completed.
    let bob_frames = until_runs_end(&mut bob, bob_frames, 1).await;
    assert_eq!(bob_frames.last().unwrap()["type"], "run_completed");
    assert_gapless(&bob_frames, 1);
    app.stop().await;
}
on_both_backends!(nul_in_a_usage_row_is_a_row_error_while_another_run_completes);
