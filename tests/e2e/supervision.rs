//! Supervision of agents (DESIGN.md §5), with faults injected into a real server: restarts
//! with backoff after panics, the fallback or `run_failed` once the restart intensity is
//! reached, timeouts of hanging agents — and other users' runs undisturbed meanwhile.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;
use crate::on_both_backends;

/// The `(type, attempt)` of `agent`'s lifecycle events.
fn lifecycle(frames: &[Value], agent: &str) -> Vec<(String, u64)> {
    frames
        .iter()
        .filter(|f| {
            f["agent"] == agent
                && f["type"] != "agent_thinking"
                && f["type"] != "tool_executing"
                && f["type"] != "tool_completed"
        })
        .map(|f| {
            let attempt = f["data"]["attempt"]
                .as_u64()
                .or(f["data"]["attempts"].as_u64())
                .unwrap_or(0);
            (f["type"].as_str().unwrap().to_owned(), attempt)
        })
        .collect()
}

fn fast_restarts(db: &TestDb, faults: &str) -> enclave::config::Config {
    let mut config = test_config(db);
    config.faults = faults.into();
    config.backoff_base = Duration::from_millis(10);
    config.backoff_cap = Duration::from_millis(40);
    config
}

async fn panics_restart_then_succeed_while_others_run(db: TestDb) {
    let app = TestApp::spawn_with(fast_restarts(&db, "data:panic:2@alice")).await;
    let mut alice = app.ws("alice").await;
    alice.recv().await;
    alice.say("analyse my usage").await;
    // Twenty other users run at the same time, on the same server.
    let others = (0..20).map(|i| {
        let app = &app;
        async move {
            let mut socket = app.ws(&format!("other{i}")).await;
            socket.recv().await;
            socket.say("analyse my usage").await;
            socket.recv_runs(1).await
        }
    });
    let others = futures_util::future::join_all(others).await;
    let frames = alice.recv_runs(1).await;
    let steps: Vec<(String, u64)> = lifecycle(&frames, "data");
    let expected: Vec<(String, u64)> = [
        ("agent_started", 1),
        ("agent_error", 1),
        ("agent_restarted", 2),
        ("agent_started", 2),
        ("agent_error", 2),
        ("agent_restarted", 3),
        ("agent_started", 3),
        ("agent_completed", 3),
    ]
    .iter()
    .map(|(k, a)| (k.to_string(), *a))
    .collect();
    assert_eq!(steps, expected);
    let errors: Vec<&Value> = frames
        .iter()
        .filter(|f| f["type"] == "agent_error")
        .collect();
    assert!(errors.iter().all(|e| e["data"]["will_restart"] == true));
    // The panic's message stays in the log; the user reads a sentence and the line's id.
    for error in &errors {
        assert_eq!(
            error["data"]["error"],
            "the agent failed on a bug; it has been logged"
        );
        let id = error["data"]["error_id"].as_str().unwrap();
        assert!(
            id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "{id}"
        );
    }
    assert_ne!(errors[0]["data"]["error_id"], errors[1]["data"]["error_id"]);
    let backoffs: Vec<u64> = frames
        .iter()
        .filter(|f| f["type"] == "agent_restarted")
        .map(|f| f["data"]["backoff_ms"].as_u64().unwrap())
        .collect();
    assert!(
        (10..=11).contains(&backoffs[0]) && (20..=22).contains(&backoffs[1]),
        "{backoffs:?}"
    );
    assert_eq!(frames.last().unwrap()["type"], "run_completed");
    assert_gapless(&frames, 1);
    for frames in others {
        assert_eq!(frames.last().unwrap()["type"], "run_completed");
        assert!(frames.iter().all(|f| f["type"] != "agent_error"));
        assert_gapless(&frames, 1);
    }
    app.stop().await;
}
on_both_backends!(panics_restart_then_succeed_while_others_run);

async fn always_failing_agents_fall_back_or_fail_the_run(db: TestDb) {
    let app = TestApp::spawn_with(fast_restarts(&db, "triage:panic@alice,data:panic@bob")).await;
    // Triage has a static fallback (its rules): after 1 + 3 attempts, agent_fallback, and the
    // run goes on.
    let mut alice = app.ws("alice").await;
    alice.recv().await;
    alice.say("analyse my usage").await;
    let frames = alice.recv_runs(1).await;
    let steps = lifecycle(&frames, "triage");
    assert_eq!(
        steps.iter().filter(|(k, _)| k == "agent_started").count(),
        4
    );
    assert_eq!(steps.last().unwrap(), &("agent_fallback".to_owned(), 4));
    let last_error = frames.iter().rfind(|f| f["type"] == "agent_error").unwrap();
    assert_eq!(last_error["data"]["will_restart"], false);
    let fallback = frames
        .iter()
        .find(|f| f["type"] == "agent_fallback")
        .unwrap();
    assert_eq!(fallback["data"]["result"]["intent"], "workload_analysis");
    assert_eq!(frames.last().unwrap()["type"], "run_completed");

    // The data agent has none: the run fails with a clear code.
    let mut bob = app.ws("bob").await;
    bob.recv().await;
    bob.say("analyse my usage").await;
    let frames = bob.recv_runs(1).await;
    assert_eq!(
        lifecycle(&frames, "data")
            .iter()
            .filter(|(k, _)| k == "agent_started")
            .count(),
        4
    );
    let end = frames.last().unwrap();
    assert_eq!(end["type"], "run_failed");
    assert_eq!(end["data"]["code"], "agent_failed");
    assert!(end["data"]["error"].as_str().unwrap().contains("4 times"));
    let (_, run) = app
        .get(
            &format!("/api/runs/{}", end["run_id"].as_str().unwrap()),
            Some(&app.token("bob")),
        )
        .await;
    assert_eq!(run["status"], "failed");
    app.stop().await;
}
on_both_backends!(always_failing_agents_fall_back_or_fail_the_run);

async fn a_hanging_agent_times_out_after_the_policys_attempts(db: TestDb) {
    let mut config = fast_restarts(&db, "data:hang");
    config.agent_timeout = Duration::from_millis(150);
    config.max_restarts = 2;
    let app = TestApp::spawn_with(config).await;
    let mut socket = app.ws("alice").await;
    socket.recv().await;
    socket.say("analyse my usage").await;
    let frames = socket.recv_runs(1).await;
    let steps = lifecycle(&frames, "data");
    assert_eq!(
        steps.iter().filter(|(k, _)| k == "agent_started").count(),
        3,
        "1 + 2 restarts"
    );
    let errors: Vec<&Value> = frames
        .iter()
        .filter(|f| f["type"] == "agent_error")
        .collect();
    assert!(
        errors
            .iter()
            .all(|e| e["data"]["error"].as_str().unwrap().contains("timed out"))
    );
    let end = frames.last().unwrap();
    assert_eq!(end["type"], "run_failed");
    assert_eq!(end["data"]["code"], "timeout");
    app.stop().await;
}
on_both_backends!(a_hanging_agent_times_out_after_the_policys_attempts);

async fn a_session_that_panics_restarts_from_the_database(db: TestDb) {
    // Bob's history, written by a server without faults.
    let app = TestApp::spawn(&db).await;
    let mut bob = app.ws("bob").await;
    bob.recv().await;
    bob.say("analyse my usage").await;
    let before = sequenced(&bob.recv_runs(1).await);
    let last_seq = before.last().unwrap()["seq"].as_i64().unwrap();
    app.stop().await;

    let mut config = test_config(&db);
    config.faults = "session:panic:1@bob".into();
    config.heartbeat_interval = Duration::from_millis(50);
    let app = TestApp::spawn_with(config).await;
    let mut alice = app.ws("alice").await;
    alice.recv().await;
    let mut bob = app.ws("bob").await;
    assert_eq!(bob.recv().await["last_seq"], last_seq);
    // Bob's session panics on his message; his socket is closed so that he reconnects.
    bob.say("this one is lost").await;
    assert_eq!(bob.closed().await, Closed::Code(4009));

    // A fresh session, reloaded from the database: the next message works and seq goes on.
    let (mut bob, connected) = WsClient::reconnect_after_restart(&app, "bob").await;
    assert_eq!(connected["last_seq"], last_seq);
    bob.say("analyse my usage").await;
    let after = sequenced(&bob.recv_runs(1).await);
    assert_gapless(&after, last_seq + 1);
    assert_eq!(after.last().unwrap()["type"], "run_completed");
    assert!(
        !serde_json::to_string(&after)
            .unwrap()
            .contains("this one is lost")
    );

    // Alice never noticed.
    alice.say("analyse my usage").await;
    let frames = alice.recv_runs(1).await;
    assert_eq!(frames.last().unwrap()["type"], "run_completed");
    assert_gapless(&frames, 1);
    app.stop().await;
}
on_both_backends!(a_session_that_panics_restarts_from_the_database);
