//! Runs: admission (at most 5 executing per user, then a queue, then `rate_limited`), the
//! message rate limit, and cancellation of queued and running runs.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

fn of_type<'a>(frames: &'a [Value], kind: &str) -> Vec<&'a Value> {
    frames.iter().filter(|f| f["type"] == kind).collect()
}

async fn eight_messages_run_five_at_a_time(db: TestDb) {
    let mut config = test_config(&db);
    // Triage takes 1.5 s, far longer than accepting eight messages: the first five overlap,
    // and the limit is what keeps them at five.
    config.faults = "triage:slow:1500".into();
    let app = TestApp::spawn_with(config).await;
    let mut socket = app.ws("alice").await;
    socket.recv().await;
    for i in 0..8 {
        socket.say(&format!("cut my costs, request {i}")).await;
    }
    let frames = sequenced(&socket.recv_runs(8).await);
    assert_gapless(&frames, 1);

    let mut executing: HashSet<&Value> = HashSet::new();
    let mut most = 0;
    for frame in &frames {
        match frame["type"].as_str().unwrap() {
            "run_started" => {
                executing.insert(&frame["run_id"]);
                most = most.max(executing.len());
            }
            "run_completed" => {
                executing.remove(&frame["run_id"]);
            }
            _ => {}
        }
    }
    assert_eq!(
        most, 5,
        "never more than five executing, and five at the peak"
    );
    let queued = of_type(&frames, "run_queued");
    let positions: Vec<i64> = queued
        .iter()
        .map(|f| f["data"]["position"].as_i64().unwrap())
        .collect();
    assert_eq!(positions, [1, 2, 3]);
    assert!(queued.iter().all(|f| f["data"]["reason"] == "user_limit"));
    // Each queued run is promoted with run_started, then completes.
    for q in &queued {
        let its: Vec<&str> = frames
            .iter()
            .filter(|f| f["run_id"] == q["run_id"])
            .map(|f| f["type"].as_str().unwrap())
            .collect();
        let at = its.iter().position(|k| *k == "run_queued").unwrap();
        assert_eq!(its[at + 1], "run_started");
        assert_eq!(its.last(), Some(&"run_completed"));
    }
    assert_eq!(of_type(&frames, "run_completed").len(), 8);
    let token = app.token("alice");
    let (_, run) = app
        .get(
            &format!("/api/runs/{}", queued[0]["run_id"].as_str().unwrap()),
            Some(&token),
        )
        .await;
    assert_eq!(run["status"], "completed");
    assert!(run["started_at"].as_i64().unwrap() >= run["created_at"].as_i64().unwrap());
    app.stop().await;
}
on_both_backends!(eight_messages_run_five_at_a_time);

async fn cancel_queued_and_running_runs(db: TestDb) {
    let mut config = test_config(&db);
    config.max_running_per_user = 1;
    config.max_queued_per_user = 2;
    // Triage takes a minute: runs stay running until cancelled.
    config.faults = "triage:slow:60000".into();
    let app = TestApp::spawn_with(config).await;
    let mut socket = app.ws("alice").await;
    socket.recv().await;
    for i in 0..3 {
        socket.say(&format!("request {i}")).await;
    }
    let accepted = socket
        .recv_until(|f| f["type"] == "run_queued" && f["data"]["position"] == 2)
        .await;
    let running = of_type(&accepted, "run_started")[0]["run_id"].clone();
    let queued: Vec<Value> = of_type(&accepted, "run_queued")
        .iter()
        .map(|f| f["run_id"].clone())
        .collect();

    // A full queue refuses the next message and records nothing.
    socket
        .send(json!({"type":"user_message","content":"one more","client_msg_id":"m-4"}))
        .await;
    let refused = socket.recv_until(|f| f["type"] == "error").await;
    let refused = refused.last().unwrap();
    assert_eq!(refused["code"], "rate_limited");
    assert_eq!(refused["ref"], "m-4");

    // Cancel the second queued run: it ends at once.
    socket
        .send(json!({"type":"cancel_run","run_id":queued[1]}))
        .await;
    let frames = socket.recv_until(|f| f["type"] == "run_cancelled").await;
    let cancelled = frames.last().unwrap();
    assert_eq!(cancelled["run_id"], queued[1]);
    assert_eq!(cancelled["data"]["reason"], "user");

    // Cancel the running run: its agent in flight ends cancelled, then the run; the first
    // queued run is promoted into the free slot.
    socket
        .send(json!({"type":"cancel_run","run_id":running}))
        .await;
    let frames = socket.recv_until(|f| f["type"] == "run_started").await;
    let of_running: Vec<&Value> = frames.iter().filter(|f| f["run_id"] == running).collect();
    let kinds: Vec<&str> = of_running
        .iter()
        .map(|f| f["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["agent_error", "run_cancelled"]);
    assert_eq!(of_running[0]["data"]["error"], "cancelled");
    assert_eq!(of_running[0]["data"]["will_restart"], false);
    assert_eq!(frames.last().unwrap()["run_id"], queued[0]);

    // Cancelling a finished run is a conflict; an unknown one not_found.
    socket
        .send(json!({"type":"cancel_run","run_id":running}))
        .await;
    let answer = socket.recv_until(|f| f["type"] == "error").await;
    assert_eq!(answer.last().unwrap()["code"], "conflict");
    socket
        .send(json!({"type":"cancel_run","run_id":uuid::Uuid::new_v4().to_string()}))
        .await;
    assert_eq!(
        socket
            .recv_until(|f| f["type"] == "error")
            .await
            .last()
            .unwrap()["code"],
        "not_found"
    );

    socket
        .send(json!({"type":"cancel_run","run_id":queued[0]}))
        .await;
    let rest = socket.recv_until(|f| f["type"] == "run_cancelled").await;
    assert_eq!(rest.last().unwrap()["run_id"], queued[0]);

    // Nothing of a cancelled run follows its run_cancelled: the stored stream ends here.
    let mut check = app.ws("alice").await;
    let connected = check.recv().await;
    assert_eq!(connected["active_runs"], json!([]));
    let all = sequenced(&check.ws_replay_from(0).await);
    assert_gapless(&all, 1);
    for run in [&running, &queued[0], &queued[1]] {
        let last = all.iter().rfind(|f| &f["run_id"] == run).unwrap();
        assert_eq!(last["type"], "run_cancelled", "{run}");
    }
    let token = app.token("alice");
    let (_, run) = app
        .get(
            &format!("/api/runs/{}", running.as_str().unwrap()),
            Some(&token),
        )
        .await;
    assert_eq!(run["status"], "cancelled");
    app.stop().await;
}
on_both_backends!(cancel_queued_and_running_runs);

async fn message_rate_is_limited(db: TestDb) {
    let mut config = test_config(&db);
    config.message_burst = 3;
    // One token a minute: the fourth message in a row is certainly over the limit.
    config.messages_per_minute = 1;
    let app = TestApp::spawn_with(config).await;
    let mut socket = app.ws("alice").await;
    socket.recv().await;
    for i in 0..4 {
        socket
            .send(json!({"type":"user_message","content":format!("hi {i}"),"client_msg_id":format!("r-{i}")}))
            .await;
    }
    let frames = socket.recv_runs(3).await;
    let mut errors: Vec<Value> = of_type(&frames, "error").into_iter().cloned().collect();
    if errors.is_empty() {
        errors.push(
            socket
                .recv_until(|f| f["type"] == "error")
                .await
                .pop()
                .unwrap(),
        );
    }
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["code"], "rate_limited");
    assert_eq!(errors[0]["ref"], "r-3");
    let contents: Vec<&Value> = of_type(&frames, "message_received")
        .iter()
        .map(|f| &f["data"]["content"])
        .collect();
    assert_eq!(contents, [&json!("hi 0"), &json!("hi 1"), &json!("hi 2")]);
    // Another user has a bucket of their own.
    let mut bob = app.ws("bob").await;
    bob.recv().await;
    bob.say("hello").await;
    assert_eq!(
        bob.recv_runs(1).await.last().unwrap()["type"],
        "run_completed"
    );
    app.stop().await;
}
on_both_backends!(message_rate_is_limited);

async fn the_server_cap_serves_users_in_turn(db: TestDb) {
    let mut config = test_config(&db);
    config.max_running_total = 2;
    // Runs take a minute: slots free up only when the test cancels a run.
    config.faults = "triage:slow:60000".into();
    let app = TestApp::spawn_with(config).await;
    let mut alice = app.ws("alice").await;
    let mut bob = app.ws("bob").await;
    alice.recv().await;
    bob.recv().await;

    for i in 1..=4 {
        alice.say(&format!("alice {i}")).await;
    }
    let accepted = alice
        .recv_until(|f| f["type"] == "run_queued" && f["data"]["position"] == 2)
        .await;
    let started: Vec<Value> = of_type(&accepted, "run_started")
        .iter()
        .map(|f| f["run_id"].clone())
        .collect();
    let waiting: Vec<&Value> = of_type(&accepted, "run_queued");
    assert_eq!(started.len(), 2, "the server has two slots");
    assert!(waiting.iter().all(|f| f["data"]["reason"] == "server_busy"));
    let alice_waiting: Vec<Value> = waiting.iter().map(|f| f["run_id"].clone()).collect();

    bob.say("bob 1").await;
    let bob_queued = bob.recv_until(|f| f["type"] == "run_queued").await;
    let bob_run = bob_queued.last().unwrap()["run_id"].clone();
    assert_eq!(
        metric(&app, "runs_queued").await,
        3.0,
        "two of alice's, one of bob's"
    );
    assert_eq!(
        bob_queued.last().unwrap()["data"],
        json!({"position":1,"reason":"server_busy"})
    );

    // First freed slot: alice's turn (she waited first).
    alice
        .send(json!({"type":"cancel_run","run_id":started[0]}))
        .await;
    let frames = alice.recv_until(|f| f["type"] == "run_started").await;
    assert_eq!(frames.last().unwrap()["run_id"], alice_waiting[0]);
    // Second freed slot: bob's turn, although alice queued another run before him.
    alice
        .send(json!({"type":"cancel_run","run_id":started[1]}))
        .await;
    let frames = bob.recv_until(|f| f["type"] == "run_started").await;
    assert_eq!(frames.last().unwrap()["run_id"], bob_run);
    let token = app.token("alice");
    let path = format!("/api/runs/{}", alice_waiting[1].as_str().unwrap());
    assert_eq!(app.get(&path, Some(&token)).await.1["status"], "queued");

    // Then alice's last run.
    alice
        .send(json!({"type":"cancel_run","run_id":alice_waiting[0]}))
        .await;
    let frames = alice.recv_until(|f| f["type"] == "run_started").await;
    assert_eq!(frames.last().unwrap()["run_id"], alice_waiting[1]);
    app.stop().await;
}
on_both_backends!(the_server_cap_serves_users_in_turn);
