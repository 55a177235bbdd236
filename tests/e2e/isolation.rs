//! Two users on one server: each receives only its own events; every route and socket message
//! that names the other's objects answers `not_found`.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

fn thread_of(frames: &[Value]) -> String {
    frames
        .iter()
        .find(|f| f["type"] == "thread_created")
        .and_then(|f| f["thread_id"].as_str())
        .expect("thread_created")
        .to_owned()
}

fn run_of(frames: &[Value]) -> String {
    frames
        .iter()
        .find(|f| f["type"] == "run_started")
        .and_then(|f| f["run_id"].as_str())
        .expect("run_started")
        .to_owned()
}

async fn two_users_see_only_their_own(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let mut alice = app.ws("alice").await;
    let mut bob = app.ws("bob").await;
    assert_eq!(alice.recv().await["type"], "connected");
    assert_eq!(bob.recv().await["type"], "connected");

    alice.say("cut costs for secret-alice-7731").await;
    bob.say("cut costs for secret-bob-4410").await;
    let alice_frames = alice.recv_runs(1).await;
    let bob_frames = bob.recv_runs(1).await;
    assert_gapless(&alice_frames, 1);
    assert_gapless(&bob_frames, 1);
    let alice_text = serde_json::to_string(&alice_frames).unwrap();
    let bob_text = serde_json::to_string(&bob_frames).unwrap();
    assert!(alice_text.contains("secret-alice-7731"));
    assert!(!alice_text.contains("secret-bob-4410"));
    assert!(!bob_text.contains("secret-alice-7731"));

    let bob_thread = thread_of(&bob_frames);
    let bob_run = run_of(&bob_frames);
    assert!(!alice_text.contains(&bob_thread));

    // A message to bob's thread from alice: not_found, as for a thread that does not exist.
    alice
        .send(json!({"type":"user_message","content":"hi","thread_id":bob_thread,"client_msg_id":"m-x"}))
        .await;
    let refused = alice.recv().await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["code"], "not_found");
    assert_eq!(refused["ref"], "m-x");
    alice
        .send(json!({"type":"cancel_run","run_id":bob_run}))
        .await;
    let refused = alice.recv().await;
    assert_eq!(refused["code"], "not_found");

    let alice_token = app.token("alice");
    for path in [
        format!("/api/threads/{bob_thread}/events"),
        format!("/api/runs/{bob_run}"),
    ] {
        let (status, body) = app.get(&path, Some(&alice_token)).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    let (status, threads) = app.get("/api/threads", Some(&alice_token)).await;
    assert_eq!(status, 200);
    let listed = serde_json::to_string(&threads).unwrap();
    assert!(!listed.contains(&bob_thread));
    assert_eq!(threads["threads"].as_array().unwrap().len(), 1);

    // Bob sees his own objects through the same routes.
    let bob_token = app.token("bob");
    let (status, run) = app
        .get(&format!("/api/runs/{bob_run}"), Some(&bob_token))
        .await;
    assert_eq!(status, 200);
    assert_eq!(run["status"], "completed");
    assert_eq!(run["thread_id"], bob_thread.as_str());
    let (status, events) = app
        .get(
            &format!("/api/threads/{bob_thread}/events"),
            Some(&bob_token),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        events["events"].as_array().unwrap().len(),
        sequenced(&bob_frames).len()
    );
    assert_eq!(events["next_after_seq"], Value::Null);

    // Nothing of alice's leaked into bob's socket while alice was refused.
    assert_eq!(bob.ping_pong("still-alone").await, Vec::<Value>::new());
    app.stop().await;
}
on_both_backends!(two_users_see_only_their_own);
