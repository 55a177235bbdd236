//! An event is never delivered before it is stored: write batches failed on purpose (fault
//! hook) are seen by no socket, and the stream stays gapless afterwards.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

async fn a_failed_batch_is_never_delivered(db: TestDb) {
    let mut config = test_config(&db);
    config.store_retries = 1;
    let app = TestApp::spawn_with(config).await;
    let mut tab1 = app.ws("alice").await;
    let mut tab2 = app.ws("alice").await;
    tab1.recv().await;
    tab2.recv().await;

    // The first write and its one retry fail: the message is not stored, so nothing of it is
    // sent anywhere and the sender is asked to send it again.
    app.faults.fail_next_store_batches(2);
    tab1.send(json!({"type":"user_message","content":"secret-lost-42","client_msg_id":"m-1"}))
        .await;
    let answer = tab1.recv().await;
    assert_eq!(answer["type"], "error");
    assert_eq!(answer["code"], "unavailable");
    assert_eq!(answer["ref"], "m-1");
    assert_eq!(tab1.ping_pong("t1").await, Vec::<Value>::new());
    assert_eq!(tab2.ping_pong("t2").await, Vec::<Value>::new());

    // The retry is a new message, numbered from 1: the lost batch left no gap.
    tab1.send(json!({"type":"user_message","content":"secret-kept-43","client_msg_id":"m-1"}))
        .await;
    let kept = sequenced(&tab1.recv_runs(1).await);
    assert_eq!(sequenced(&tab2.recv_runs(1).await), kept);
    assert_gapless(&kept, 1);
    let text = serde_json::to_string(&kept).unwrap();
    assert!(text.contains("secret-kept-43") && !text.contains("secret-lost-42"));
    let token = app.token("alice");
    let (_, threads) = app.get("/api/threads", Some(&token)).await;
    assert_eq!(threads["threads"].as_array().unwrap().len(), 1);
    app.stop().await;
}
on_both_backends!(a_failed_batch_is_never_delivered);

/// Group commit stores many users' batches in one transaction; a fault named for one user
/// (`store:fail:N@alice`) still fails only that user's writes.
async fn a_store_fault_for_one_user_leaves_the_others_alone(db: TestDb) {
    let mut config = test_config(&db);
    config.store_retries = 1;
    config.faults = "store:fail:2@alice".into();
    let app = TestApp::spawn_with(config).await;
    let mut alice = app.ws("alice").await;
    let mut bob = app.ws("bob").await;
    alice.recv().await;
    bob.recv().await;
    alice
        .send(json!({"type":"user_message","content":"cut my costs","client_msg_id":"a-1"}))
        .await;
    bob.send(json!({"type":"user_message","content":"cut my costs","client_msg_id":"b-1"}))
        .await;
    let refused = alice.recv().await;
    assert_eq!(refused["code"], "unavailable", "{refused}");
    assert_eq!(refused["ref"], "a-1");
    let run = sequenced(&bob.recv_runs(1).await);
    assert_gapless(&run, 1);
    assert_eq!(run.last().unwrap()["type"], "run_completed");

    // Its two failures spent, alice's next message goes through.
    alice.say("cut my costs").await;
    let run = sequenced(&alice.recv_runs(1).await);
    assert_gapless(&run, 1);
    assert_eq!(run.last().unwrap()["type"], "run_completed");
    app.stop().await;
}
on_both_backends!(a_store_fault_for_one_user_leaves_the_others_alone);

async fn storage_failing_mid_run_ends_it_storage_unavailable(db: TestDb) {
    let mut config = test_config(&db);
    config.store_retries = 1;
    config.faults = "triage:slow:300".into();
    let app = TestApp::spawn_with(config).await;
    let mut tab1 = app.ws("alice").await;
    let mut tab2 = app.ws("alice").await;
    tab1.recv().await;
    tab2.recv().await;

    tab1.say("cut my costs").await;
    let started = tab1.recv_until(|f| f["type"] == "run_started").await;
    let run_id = started.last().unwrap()["run_id"].clone();
    app.faults.fail_next_store_batches(2);
    let seen1 = sequenced(&tab1.recv_runs(1).await);
    let mut all1 = sequenced(&started);
    all1.extend(seen1);
    let all2 = sequenced(&tab2.recv_runs(1).await);
    assert_eq!(all1, all2);
    assert_gapless(&all1, 1);
    let end = all1.last().unwrap();
    assert_eq!(end["type"], "run_failed");
    assert_eq!(end["data"]["code"], "storage_unavailable");
    assert_eq!(end["run_id"], run_id);

    // Everything delivered is stored, and the run's row says how it ended.
    let replayed = tab1.ws_replay_from(0).await;
    assert_eq!(replayed, all1);
    let token = app.token("alice");
    let (status, run) = app
        .get(
            &format!("/api/runs/{}", run_id.as_str().unwrap()),
            Some(&token),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(run["status"], "failed");

    // Storage is back: the next run completes, continuing the sequence.
    tab1.say("analyse my usage").await;
    let next = sequenced(&tab1.recv_runs(1).await);
    assert_gapless(&next, all1.len() as i64 + 1);
    assert_eq!(next.last().unwrap()["type"], "run_completed");
    app.stop().await;
}
on_both_backends!(storage_failing_mid_run_ends_it_storage_unavailable);
