//! Deleting a thread: refused while a run of it is live, then its runs go, its events are
//! erased in place (the sequence keeps no gap), and the user's other sockets hear
//! `thread_deleted`.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

async fn delete(app: &TestApp, user: &str, thread: &str) -> (u16, Value) {
    http_delete(app, &format!("/api/threads/{thread}"), user).await
}

async fn deleting_a_thread_erases_it_without_a_gap(db: TestDb) {
    let mut config = test_config(&db);
    config.faults = "triage:slow:60000@alice".into();
    let app = TestApp::spawn_with(config).await;
    let mut tab1 = app.ws("alice").await;
    let mut tab2 = app.ws("alice").await;
    tab1.recv().await;
    tab2.recv().await;

    // A thread with a live run cannot be deleted.
    tab1.say("first thread").await;
    let live = tab1.recv_until(|f| f["type"] == "agent_started").await;
    let thread = live[0]["thread_id"].as_str().unwrap().to_owned();
    let run = live[0]["run_id"].clone();
    assert_eq!(delete(&app, "alice", &thread).await.0, 409);
    tab1.send(json!({"type":"cancel_run","run_id":run})).await;
    let before = tab1.recv_until(|f| f["type"] == "run_cancelled").await;
    let last_before = *seqs(&before).last().unwrap();

    // Another user's thread, a missing one and a malformed id are all not_found.
    assert_eq!(delete(&app, "bob", &thread).await.0, 404);
    assert_eq!(
        delete(&app, "alice", &uuid::Uuid::new_v4().to_string())
            .await
            .0,
        404
    );
    assert_eq!(delete(&app, "alice", "nope").await.0, 404);

    let (status, body) = delete(&app, "alice", &thread).await;
    assert_eq!(status, 200, "{body}");
    let note = tab2.recv_until(|f| f["type"] == "thread_deleted").await;
    let deleted = note.last().unwrap();
    assert_eq!(deleted["thread_id"], thread.as_str());
    assert_eq!(deleted["run_id"], Value::Null);
    assert_eq!(deleted["seq"], last_before + 1);

    // The replay keeps every seq: the thread's events come back as `erased`, bare.
    assert_eq!(
        tab1.recv_until(|f| f["type"] == "thread_deleted")
            .await
            .len(),
        1
    );
    let replay = sequenced(&tab1.ws_replay_from(0).await);
    assert_gapless(&replay, 1);
    for event in &replay[..replay.len() - 1] {
        assert_eq!(event["type"], "erased");
        let keys: Vec<&String> = event.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["run_id", "seq", "thread_id", "ts", "type"],
            "{event}"
        );
    }
    assert_eq!(replay.last().unwrap()["type"], "thread_deleted");
    let token = app.token("alice");
    assert_eq!(
        app.get(&format!("/api/threads/{thread}/events"), Some(&token))
            .await
            .0,
        404
    );
    assert_eq!(
        app.get(
            &format!("/api/runs/{}", run.as_str().unwrap()),
            Some(&token)
        )
        .await
        .0,
        404
    );
    let (_, threads) = app.get("/api/threads", Some(&token)).await;
    assert_eq!(threads["threads"], json!([]));
    // A message to the deleted thread is not_found; the user goes on in a new one.
    tab1.send(json!({"type":"user_message","content":"hi","thread_id":thread}))
        .await;
    assert_eq!(
        tab1.recv_until(|f| f["type"] == "error")
            .await
            .last()
            .unwrap()["code"],
        "not_found"
    );
    app.stop().await;
}
on_both_backends!(deleting_a_thread_erases_it_without_a_gap);
