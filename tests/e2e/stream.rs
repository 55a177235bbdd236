//! The per-user event stream: identical and gapless on every socket, and resumable after a
//! disconnect with `resume` or `?after_seq=`.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

async fn two_sockets_receive_identical_sequences(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let mut tab1 = app.ws("alice").await;
    let mut tab2 = app.ws("alice").await;
    assert_eq!(tab1.recv().await["last_seq"], 0);
    assert_eq!(tab2.recv().await["last_seq"], 0);

    tab1.say("analyse my usage").await;
    tab2.say("cut my LLM bill by 30%").await;
    tab1.say("which model should I use for classification?")
        .await;
    let from_tab1 = sequenced(&tab1.recv_runs(3).await);
    let from_tab2 = sequenced(&tab2.recv_runs(3).await);
    assert_eq!(
        from_tab1, from_tab2,
        "every tab sees the same events in the same order"
    );
    assert_gapless(&from_tab1, 1);

    // Each run tells its whole story, in order.
    for run_end in from_tab1.iter().filter(|f| f["type"] == "run_completed") {
        let run_id = &run_end["run_id"];
        let kinds: Vec<&str> = from_tab1
            .iter()
            .filter(|f| &f["run_id"] == run_id)
            .map(|f| f["type"].as_str().unwrap())
            .collect();
        // Each message opened a new thread, so its run begins with thread_created.
        assert_eq!(
            kinds[..3],
            ["thread_created", "message_received", "run_started"]
        );
        assert!(kinds.contains(&"agent_started"));
        assert!(kinds.contains(&"agent_thinking"));
        assert!(kinds.contains(&"agent_completed"));
        assert_eq!(kinds.last(), Some(&"run_completed"));
    }
    let intents: Vec<&str> = from_tab1
        .iter()
        .filter(|f| f["type"] == "run_completed")
        .map(|f| f["data"]["result"]["intent"].as_str().unwrap())
        .collect();
    assert_eq!(intents.len(), 3);
    assert!(intents.contains(&"cost_optimization"));

    // A third tab that connects later starts at the stored last_seq.
    let mut tab3 = app.ws("alice").await;
    let connected = tab3.recv().await;
    assert_eq!(connected["last_seq"], from_tab1.len() as i64);
    assert_eq!(connected["protocol"], 1);
    assert_eq!(connected["user_id"], "alice");
    app.stop().await;
}
on_both_backends!(two_sockets_receive_identical_sequences);

/// The first two frames of a run's events up to `agent_started`, then drop the socket.
async fn start_and_drop(app: &TestApp, content: &str) -> Vec<Value> {
    let mut socket = app.ws("alice").await;
    assert_eq!(socket.recv().await["type"], "connected");
    socket
        .send(json!({"type":"user_message","content":content,"client_msg_id":"c-1"}))
        .await;
    let seen = socket.recv_until(|f| f["type"] == "agent_started").await;
    socket.close().await;
    seen
}

fn slow_triage_config(db: &TestDb) -> enclave::config::Config {
    let mut config = test_config(db);
    // Triage waits before it works, so the socket closes between two events of the run.
    config.faults = "triage:slow:400".into();
    config
}

async fn resume_after_disconnect_has_no_gap(db: TestDb) {
    let app = TestApp::spawn_with(slow_triage_config(&db)).await;
    let seen = start_and_drop(&app, "cut my costs").await;
    let last_seen = *seqs(&seen).last().unwrap();
    assert_eq!(seen[0]["data"]["client_msg_id"], "c-1");

    let mut again = app.ws("alice").await;
    assert_eq!(again.recv().await["type"], "connected");
    again
        .send(json!({"type":"resume","after_seq":last_seen}))
        .await;
    let rest = again.recv_resumed_and_runs(1).await;
    let resumed_at = rest
        .iter()
        .position(|f| f["type"] == "resumed")
        .expect("resumed");
    let through = rest[resumed_at]["through_seq"].as_i64().unwrap();
    assert!(through >= last_seen);
    // Before `resumed` only replayed events; after it, live ones; together gapless.
    assert_gapless(&rest, last_seen + 1);
    let replayed = seqs(&rest[..resumed_at]);
    assert_eq!(replayed.last().copied().unwrap_or(last_seen), through);
    assert_eq!(sequenced(&rest).last().unwrap()["type"], "run_completed");

    // The stored stream equals what the two sockets saw together.
    let mut all = again.ws_replay_from(0).await;
    let mut live: Vec<Value> = sequenced(&seen);
    live.extend(sequenced(&rest));
    all.retain(|f| f.get("seq").is_some());
    assert_eq!(all, live);
    app.stop().await;
}
on_both_backends!(resume_after_disconnect_has_no_gap);

async fn after_seq_on_the_upgrade_url_resumes(db: TestDb) {
    let app = TestApp::spawn_with(slow_triage_config(&db)).await;
    let seen = start_and_drop(&app, "analyse my usage").await;
    let last_seen = *seqs(&seen).last().unwrap();

    let mut again = app
        .ws_query("alice", &format!("&after_seq={last_seen}"))
        .await;
    let connected = again.recv().await;
    assert_eq!(connected["type"], "connected");
    let rest = again.recv_resumed_and_runs(1).await;
    assert!(rest.iter().any(|f| f["type"] == "resumed"));
    assert_gapless(&rest, last_seen + 1);
    assert_eq!(sequenced(&rest).last().unwrap()["type"], "run_completed");

    // A resume beyond the stored stream replays nothing and names the real last seq.
    let last = *seqs(&rest).last().unwrap();
    again
        .send(json!({"type":"resume","after_seq":last + 100}))
        .await;
    let resumed = again.recv().await;
    assert_eq!(resumed, json!({"type":"resumed","through_seq":last}));
    app.stop().await;
}
on_both_backends!(after_seq_on_the_upgrade_url_resumes);

async fn connected_lists_the_runs_in_flight(db: TestDb) {
    let mut config = test_config(&db);
    // Triage waits a minute: the run is certainly still running when the second tab opens.
    config.faults = "triage:slow:60000".into();
    let app = TestApp::spawn_with(config).await;
    let mut tab1 = app.ws("alice").await;
    tab1.recv().await;
    tab1.say("cut my costs").await;
    let started = tab1.recv_until(|f| f["type"] == "agent_started").await;
    let run = started.iter().find(|f| f["type"] == "run_started").unwrap();
    let mut tab2 = app.ws("alice").await;
    let connected = tab2.recv().await;
    assert_eq!(
        connected["active_runs"],
        json!([{"run_id": run["run_id"], "thread_id": run["thread_id"], "status": "running"}])
    );
    assert_eq!(connected["pending_approvals"], json!([]));
    assert_eq!(connected["last_seq"], *seqs(&started).last().unwrap());
    let mut bob = app.ws("bob").await;
    assert_eq!(bob.recv().await["active_runs"], json!([]));
    app.stop().await;
}
on_both_backends!(connected_lists_the_runs_in_flight);
