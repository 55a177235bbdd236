//! Retention (issue 12): with `ENCLAVE_RETAIN_EVENTS` set, the housekeeper removes the events
//! of ended runs past it — a prefix of the user's sequence, never an event of a run still live
//! or waiting for an approval, never the latest — and a replay from before what is kept starts
//! with `truncated {oldest_seq}`; `seq` goes on after it. With `ENCLAVE_RETAIN_USAGE` set,
//! usage records older than it go and the per-user count follows.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;
use crate::usage::upload;

/// The seq of the first frame of `run_id` among `frames`.
fn first_seq_of(frames: &[Value], run_id: &Value) -> i64 {
    frames
        .iter()
        .find(|f| &f["run_id"] == run_id && f.get("seq").is_some())
        .unwrap()["seq"]
        .as_i64()
        .unwrap()
}

async fn ended_runs_events_go_and_a_replay_says_truncated(db: TestDb) {
    let mut config = test_config(&db);
    // Everything older than now has expired: only what must stay stays.
    // (Below the day `ENCLAVE_RETAIN_EVENTS` allows: set here directly.)
    config.retain_events = Some(Duration::ZERO);
    config.housekeeping_interval = Duration::from_millis(20);
    // Replays of two events a page: the truncated replay spans pages.
    config.replay_page = 2;
    config.faults = "triage:slow:600000@bob".into();
    let app = TestApp::spawn_with(config).await;
    // bob's run stays running (its triage is slow); zed's ends.
    let mut bob = app.ws("bob").await;
    bob.recv().await;
    bob.say("cut my LLM costs by 30%").await;
    let bobs = bob.recv_until(|f| f["type"] == "agent_started").await;
    let bobs_run = bobs.last().unwrap()["run_id"].as_str().unwrap().to_owned();
    let bobs_run_events = bobs.iter().filter(|f| f["run_id"] == bobs_run).count() as i64;
    let mut zed = app.ws("zed").await;
    zed.recv().await;
    zed.say("cut my LLM costs by 30%").await;
    zed.recv_runs(1).await;
    zed.close().await;
    let mut ws = app.ws("alice").await;
    ws.recv().await;
    ws.say("cut my LLM costs by 30%").await;
    ws.say("where does my latency come from?").await;
    ws.recv_runs(2).await;
    ws.say("generate 20,000 synthetic chatbot records").await;
    let asked = ws.recv_until(|f| f["type"] == "approval_required").await;
    let approval = asked.last().unwrap().clone();
    let waiting_run = approval["run_id"].clone();
    let first_kept = first_seq_of(&asked, &waiting_run);
    let last = approval["seq"].as_i64().unwrap();

    // The ended runs' events go; every event of the run waiting for its approval stays.
    eventually("the ended runs' events removed", || {
        let n = rows_of(&db, "events", "alice");
        (n == last - first_kept + 1, n)
    })
    .await;
    let mut other = app.ws("alice").await;
    other.recv().await;
    let replay = other.ws_replay_from(0).await;
    assert_eq!(
        replay[0],
        json!({"type": "truncated", "oldest_seq": first_kept}),
        "{replay:?}"
    );
    assert_gapless(&replay[1..], first_kept);
    assert_eq!(seqs(&replay).last(), Some(&last));
    let later = other.ws_replay_from(first_kept).await;
    assert!(later.iter().all(|f| f["type"] != "truncated"), "{later:?}");

    // Once the run ends, all but the latest event go; numbering goes on after it.
    ws.send(json!({"type": "approval", "approval_id": approval["data"]["approval_id"], "decision": "reject"}))
        .await;
    let ended = ws.recv_until(is_run_end).await;
    let end_seq = ended.last().unwrap()["seq"].as_i64().unwrap();
    assert_eq!(
        other.recv_until(is_run_end).await,
        ended,
        "live on both sockets"
    );
    eventually("all but the latest event removed", || {
        let n = rows_of(&db, "events", "alice");
        (n == 1, n)
    })
    .await;
    let replay = other.ws_replay_from(3).await;
    assert_eq!(
        replay,
        vec![
            json!({"type": "truncated", "oldest_seq": end_seq}),
            ended.last().unwrap().clone()
        ]
    );
    ws.say("cut my LLM costs by 30%").await;
    let next = ws.recv_runs(1).await;
    assert_gapless(&sequenced(&next), end_seq + 1);
    ws.close().await;

    // Users are swept in id order: once zed is down to one event, bob has been swept too, and
    // every event of his running run is still there.
    eventually("zed's ended run removed", || {
        let n = rows_of(&db, "events", "zed");
        (n == 1, n)
    })
    .await;
    assert_eq!(
        rows_where(&db, "events", "run_id", &bobs_run),
        bobs_run_events
    );
    bob.close().await;
    other.close().await;
    app.stop().await;
}
on_both_backends!(ended_runs_events_go_and_a_replay_says_truncated);

async fn usage_records_past_retention_go_and_the_count_follows(db: TestDb) {
    let mut config = test_config(&db);
    config.retain_usage = Some(Duration::from_secs(24 * 3600));
    config.max_records_per_user = 5;
    config.housekeeping_interval = Duration::from_millis(20);
    let app = TestApp::spawn_with(config).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let row = |ts: i64| {
        format!(
            "{{\"ts\":{ts},\"model\":\"gpt-4o\",\"prompt_tokens\":10,\"completion_tokens\":5,\"latency_ms\":100}}\n"
        )
    };
    let old = now - 2 * 86_400_000;
    let recent = now - 3_600_000;
    let body: String = [old, old - 1, old - 2, recent, recent + 1]
        .into_iter()
        .map(row)
        .collect();
    let (status, answer, _) = upload(&app, "erin", "application/x-ndjson", "", body).await;
    assert_eq!((status, answer["accepted"].clone()), (200, json!(5)));
    eventually("records older than a day removed", || {
        let n = rows_of(&db, "usage_records", "erin");
        (n == 2, n)
    })
    .await;
    let (_, summary) = app
        .get("/api/usage/summary", Some(&app.token("erin")))
        .await;
    assert_eq!(summary["totals"]["requests"], 2, "{summary}");
    // The per-user count moved with them: the cap of 5 counts the two left, so three more fit.
    let more: String = [recent + 2, recent + 3, recent + 4]
        .into_iter()
        .map(row)
        .collect();
    let (status, answer, _) = upload(&app, "erin", "application/x-ndjson", "", more).await;
    assert_eq!(status, 200, "{answer}");
    app.stop().await;
}
on_both_backends!(usage_records_past_retention_go_and_the_count_follows);
