//! The supervision tree is real: a session that stops — by a panic, or by draining for
//! shutdown — while a run is in the middle of an agent leaves no supervisor and no agent
//! attempt alive (`enclave_supervisors_live`, `enclave_agents_live`).

use std::time::Duration;

use enclave::context::UserId;

use crate::helpers::*;
use crate::on_both_backends;

/// Polls `enclave_<name>` until it reads `want` (stopping is asynchronous), or gives up
/// after a generous wait and returns what it read last.
async fn metric_settles(app: &TestApp, name: &str, want: f64) -> f64 {
    let mut value = metric(app, name).await;
    for _ in 0..1000 {
        if value == want {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        value = metric(app, name).await;
    }
    value
}

/// Bob's run is in the middle of its first agent (which sleeps for a minute).
async fn run_in_an_agent(app: &TestApp) -> WsClient {
    let mut bob = app.ws("bob").await;
    bob.recv().await;
    bob.say("analyse my usage").await;
    bob.recv_until(|f| f["type"] == "agent_started").await;
    assert_eq!(metric_settles(app, "supervisors_live", 1.0).await, 1.0);
    assert_eq!(metric_settles(app, "agents_live", 1.0).await, 1.0);
    bob
}

async fn a_failed_session_leaves_no_supervisor_or_agent(db: TestDb) {
    let mut config = test_config(&db);
    config.faults = "triage:slow:60000@bob,session:panic:0@bob".into();
    let app = TestApp::spawn_with(config).await;
    let mut bob = run_in_an_agent(&app).await;

    assert!(
        app.faults
            .add_session_panics(&UserId::parse("bob").unwrap(), 1)
    );
    bob.say("this one makes the session panic").await;
    assert_eq!(bob.closed().await, Closed::Code(4009));
    assert_eq!(metric_settles(&app, "supervisors_live", 0.0).await, 0.0);
    assert_eq!(metric_settles(&app, "agents_live", 0.0).await, 0.0);

    // The run the failed session held ends `run_interrupted` when bob comes back.
    let (mut bob, _) = WsClient::reconnect_after_restart(&app, "bob").await;
    let mut history = sequenced(&bob.ws_replay_from(0).await);
    // Stored just before the resume was read, the end came live and then again in the replay:
    // a copy before `resumed`, as PROTOCOL.md §2 allows. One identical copy, no more.
    if history.len() > 1 && history.first() == history.last() {
        history.remove(0);
    }
    if !history.iter().any(is_run_end) {
        // Stored by the new session just after the replay began: it follows live.
        history.extend(sequenced(&bob.recv_runs(1).await));
    }
    assert_gapless(&history, 1);
    let end = history
        .iter()
        .find(|f| is_run_end(f))
        .expect("the run ended");
    assert_eq!(end["type"], "run_interrupted");
    app.stop().await;
}
on_both_backends!(a_failed_session_leaves_no_supervisor_or_agent);

async fn a_drained_session_leaves_no_supervisor_or_agent(db: TestDb) {
    let mut config = test_config(&db);
    config.faults = "triage:slow:60000@bob".into();
    let app = TestApp::spawn_with(config).await;
    let mut bob = run_in_an_agent(&app).await;

    app.drain(Duration::from_millis(100)).await;
    let frames = bob.recv_runs(1).await;
    let end = frames.last().unwrap();
    assert_eq!(end["type"], "run_cancelled");
    assert_eq!(end["data"]["reason"], "shutdown");
    assert_eq!(bob.closed().await, Closed::Code(1001));
    assert_eq!(metric_settles(&app, "supervisors_live", 0.0).await, 0.0);
    assert_eq!(metric_settles(&app, "agents_live", 0.0).await, 0.0);
    app.stop().await;
}
on_both_backends!(a_drained_session_leaves_no_supervisor_or_agent);
