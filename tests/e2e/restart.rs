//! The real binary killed and started again on the same database: the stream is unchanged
//! and continues where it stopped.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

async fn restart_keeps_the_stream(db: TestDb) {
    let first = ServerProcess::spawn(&db).await;
    let mut socket = first.ws("alice").await;
    assert_eq!(socket.recv().await["last_seq"], 0);
    socket.say("analyse my usage").await;
    socket.say("cut my LLM costs by 20%").await;
    let live = sequenced(&socket.recv_runs(2).await);
    assert_gapless(&live, 1);
    let last_seq = live.last().unwrap()["seq"].as_i64().unwrap();
    socket.close().await;
    first.kill().await;
    // On PostgreSQL its users are claimed anew once its lease has run out.
    wait_for_lapsed_leases(&db).await;

    let second = ServerProcess::spawn(&db).await;
    let mut socket = second.ws("alice").await;
    let connected = socket.recv().await;
    assert_eq!(connected["last_seq"], last_seq);
    let replayed = socket.ws_replay_from(0).await;
    assert_eq!(
        replayed, live,
        "the replay is the live stream, byte for byte"
    );

    socket
        .send(json!({"type":"user_message","content":"and now?","thread_id":live[0]["thread_id"]}))
        .await;
    let more = sequenced(&socket.recv_runs(1).await);
    assert_gapless(&more, last_seq + 1);
    assert_eq!(
        more[0]["type"], "message_received",
        "an existing thread gets no thread_created"
    );
    assert_eq!(more[0]["thread_id"], live[0]["thread_id"]);
    second.kill().await;
}
on_both_backends!(restart_keeps_the_stream);

async fn a_crash_interrupts_queued_running_and_waiting_runs(db: TestDb) {
    let env = [
        // Alice's triage takes a minute and she may run one at a time: one running, one queued.
        ("ENCLAVE_FAULTS", "triage:slow:60000@alice"),
        ("ENCLAVE_MAX_RUNNING_PER_USER", "1"),
        // Bob's synthetic request waits for approval.
        ("ENCLAVE_SYNTHETIC_APPROVAL_THRESHOLD", "10"),
    ];
    let first = ServerProcess::spawn_with_env(&db, &env).await;
    let mut alice = first.ws("alice").await;
    alice.recv().await;
    alice.say("analyse my usage").await;
    alice.say("and again").await;
    let mut alice_live = sequenced(&alice.recv_until(|f| f["type"] == "run_queued").await);
    if !alice_live.iter().any(|f| f["type"] == "agent_started") {
        // The running run's agent starts once its acceptance is stored, which may come after
        // the second run is queued; nothing of alice's follows it before the kill.
        alice_live.extend(sequenced(
            &alice.recv_until(|f| f["type"] == "agent_started").await,
        ));
    }
    let mut bob = first.ws("bob").await;
    bob.recv().await;
    bob.say("generate 100 synthetic chatbot records").await;
    let bob_live = sequenced(&bob.recv_until(|f| f["type"] == "approval_required").await);
    let approval_id = bob_live.last().unwrap()["data"]["approval_id"].clone();
    first.kill().await;
    // On PostgreSQL its users are claimed anew once its lease has run out.
    wait_for_lapsed_leases(&db).await;

    let second = ServerProcess::spawn(&db).await;
    let mut alice = second.ws("alice").await;
    let connected = alice.recv().await;
    assert_eq!(connected["active_runs"], json!([]));
    let replay = sequenced(&alice.ws_replay_from(0).await);
    // Every event alice saw before the kill is stored, unchanged, and then both runs are
    // interrupted.
    assert_eq!(replay[..alice_live.len()], alice_live[..]);
    let tail = &replay[alice_live.len()..];
    assert_eq!(tail.len(), 2, "{tail:?}");
    let mut alice_runs: Vec<&Value> = alice_live
        .iter()
        .filter(|f| f["type"] == "message_received")
        .map(|f| &f["run_id"])
        .collect();
    let mut interrupted: Vec<&Value> = tail.iter().map(|f| &f["run_id"]).collect();
    alice_runs.sort_by_key(|v| v.to_string());
    interrupted.sort_by_key(|v| v.to_string());
    assert_eq!(alice_runs, interrupted);
    assert!(
        tail.iter()
            .all(|f| f["type"] == "run_interrupted" && f["data"]["reason"] == "crash")
    );
    assert_gapless(&replay, 1);

    let mut bob = second.ws("bob").await;
    bob.recv().await;
    let replay = sequenced(&bob.ws_replay_from(0).await);
    assert_eq!(replay[..bob_live.len()], bob_live[..]);
    assert_eq!(replay.last().unwrap()["type"], "run_interrupted");
    bob.send(json!({"type":"approval","approval_id":approval_id,"decision":"approve"}))
        .await;
    let answer = bob.recv().await;
    assert_eq!(answer["code"], "conflict", "{answer}");
    second.kill().await;
}
on_both_backends!(a_crash_interrupts_queued_running_and_waiting_runs);

async fn sigterm_finishes_or_cancels_runs_and_exits_zero(db: TestDb) {
    let env = [
        // Alice's run finishes within the grace period; Bob's would take a minute.
        (
            "ENCLAVE_FAULTS",
            "triage:slow:300@alice,triage:slow:60000@bob",
        ),
        ("ENCLAVE_SHUTDOWN_GRACE_MS", "2000"),
    ];
    let server = ServerProcess::spawn_with_env(&db, &env).await;
    let mut alice = server.ws("alice").await;
    let mut bob = server.ws("bob").await;
    alice.recv().await;
    bob.recv().await;
    alice.say("analyse my usage").await;
    bob.say("analyse my usage").await;
    let mut alice_frames = alice.recv_until(|f| f["type"] == "agent_started").await;
    let mut bob_frames = bob.recv_until(|f| f["type"] == "agent_started").await;

    let exit = actix_web::rt::spawn(server.terminate());
    alice_frames.extend(alice.recv_runs(1).await);
    assert_eq!(alice_frames.last().unwrap()["type"], "run_completed");
    assert_eq!(alice.closed().await, Closed::Code(1001));
    bob_frames.extend(bob.recv_runs(1).await);
    let end = bob_frames.last().unwrap();
    assert_eq!(end["type"], "run_cancelled");
    assert_eq!(end["data"]["reason"], "shutdown");
    let in_flight = bob_frames
        .iter()
        .rfind(|f| f["type"] == "agent_error")
        .unwrap();
    assert_eq!(in_flight["data"]["error"], "cancelled");
    assert_eq!(bob.closed().await, Closed::Code(1001));
    assert_eq!(exit.await.unwrap(), Some(0), "a clean exit");

    // Everything was stored before the exit.
    let again = ServerProcess::spawn(&db).await;
    let mut bob = again.ws("bob").await;
    bob.recv().await;
    assert_eq!(
        sequenced(&bob.ws_replay_from(0).await),
        sequenced(&bob_frames)
    );
    again.kill().await;
}
on_both_backends!(sigterm_finishes_or_cancels_runs_and_exits_zero);
