//! Two users on one server: each receives only its own events; every route and socket message
//! that names the other's objects answers `not_found`.

use serde_json::Value;

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

    // Every route and message naming bob's thread or run answers alice `not_found`.
    assert_cross_user_not_found(&app, "alice", &bob_thread, &bob_run, None).await;
    let alice_token = app.token("alice");
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

async fn a_hundred_users_at_once_stay_apart(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let secrets: Vec<String> = (0..100)
        .map(|i| format!("secret-{i}-{}", uuid::Uuid::new_v4().simple()))
        .collect();
    let runs = secrets.iter().enumerate().map(|(i, secret)| {
        let app = &app;
        async move {
            let user = format!("user{i}");
            let mut socket = app.ws(&user).await;
            assert_eq!(socket.recv().await["user_id"], user.as_str());
            socket.say(&format!("analyse my usage {secret}")).await;
            let frames = socket.recv_runs(1).await;
            (user, frames)
        }
    });
    let results = futures_util::future::join_all(runs).await;
    let mut owners: std::collections::HashMap<String, String> = Default::default();
    for (i, (user, frames)) in results.iter().enumerate() {
        assert_eq!(frames.last().unwrap()["type"], "run_completed", "{user}");
        assert_gapless(frames, 1);
        let text = serde_json::to_string(frames).unwrap();
        for (j, secret) in secrets.iter().enumerate() {
            assert_eq!(
                text.contains(secret.as_str()),
                i == j,
                "{user} and secret {j}"
            );
        }
        for frame in sequenced(frames) {
            for id in [&frame["thread_id"], &frame["run_id"]] {
                let id = id.as_str().unwrap().to_owned();
                let owner = owners.entry(id).or_insert_with(|| user.clone());
                assert_eq!(owner, user, "an id seen by two users");
            }
        }
    }
    // HTTP answers too: each user's threads carry only that user's secret.
    for (i, (user, frames)) in results.iter().enumerate().step_by(9) {
        let (_, threads) = app.get("/api/threads", Some(&app.token(user))).await;
        let text = threads.to_string();
        assert!(text.contains(secrets[i].as_str()));
        assert_eq!(
            secrets.iter().filter(|s| text.contains(s.as_str())).count(),
            1
        );
        let run = frames.last().unwrap()["run_id"].as_str().unwrap();
        let (status, answer) = app
            .get(&format!("/api/runs/{run}"), Some(&app.token(user)))
            .await;
        assert_eq!(status, 200);
        let answer = answer.to_string();
        let foreign = secrets
            .iter()
            .enumerate()
            .filter(|(j, s)| *j != i && answer.contains(s.as_str()));
        assert_eq!(foreign.count(), 0);
        let other = &results[(i + 1) % results.len()].0;
        let thread = frames[0]["thread_id"].as_str().unwrap();
        assert_cross_user_not_found(&app, other, thread, run, None).await;
    }
    app.stop().await;
}
on_both_backends!(a_hundred_users_at_once_stay_apart);
