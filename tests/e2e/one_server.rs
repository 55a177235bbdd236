//! One server per SQLite database (issue 9 point 6): a second `enclave serve` on a file another
//! server uses refuses to start and touches nothing of it; on PostgreSQL it joins as a second
//! node (issue 15) and touches nothing of the first one's users. After the first is killed, the
//! next start (on PostgreSQL once the dead server's lease has run out) recovers its runs.

use serde_json::json;

use crate::helpers::*;
use crate::on_both_backends;

async fn a_second_server_refuses_or_joins_and_a_later_one_recovers(db: TestDb) {
    // Alice's triage takes a minute: her run stays running.
    let first =
        ServerProcess::spawn_with_env(&db, &[("ENCLAVE_FAULTS", "triage:slow:60000@alice")]).await;
    let (_alice, live) = alice_mid_run(&first).await;
    let run_id = live.last().unwrap()["run_id"].clone();

    if db.is_postgres() {
        // A second node joins and serves another user while alice's run goes on.
        let second = ServerProcess::spawn(&db).await;
        let mut bob = second.ws("bob").await;
        bob.recv().await;
        bob.say("analyse my usage").await;
        assert_eq!(
            bob.recv_runs(1).await.last().unwrap()["type"],
            "run_completed"
        );
        assert_eq!(second.terminate().await, Some(0));
    } else {
        let (code, stderr) = ServerProcess::refused(&db).await;
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.contains("another enclave server") && stderr.contains("is using"),
            "{stderr}"
        );
    }
    // The first server's run goes on untouched: nothing was appended to alice's events, and a
    // fresh socket still sees the run active.
    let mut again = first.ws("alice").await;
    let connected = again.recv().await;
    assert_eq!(connected["last_seq"], live.last().unwrap()["seq"]);
    assert_eq!(connected["active_runs"][0]["run_id"], run_id);
    assert_eq!(connected["active_runs"][0]["status"], "running");
    assert_eq!(sequenced(&again.ws_replay_from(0).await), live);

    first.kill().await;
    // On PostgreSQL the next start recovers only runs of nodes whose lease is gone.
    wait_for_lapsed_leases(&db).await;
    let next = ServerProcess::spawn(&db).await;
    let mut alice = next.ws("alice").await;
    let connected = alice.recv().await;
    assert_eq!(connected["active_runs"], json!([]));
    let replay = sequenced(&alice.ws_replay_from(0).await);
    assert_eq!(replay[..live.len()], live[..]);
    let tail = &replay[live.len()..];
    assert_eq!(tail.len(), 1, "{tail:?}");
    assert_eq!(tail[0]["type"], "run_interrupted");
    assert_eq!(tail[0]["run_id"], run_id);
    assert_eq!(tail[0]["data"]["reason"], "crash");
    assert_gapless(&replay, 1);
    next.kill().await;
}
on_both_backends!(a_second_server_refuses_or_joins_and_a_later_one_recovers);

async fn a_cleanly_stopped_server_hands_over_at_once(db: TestDb) {
    let first = ServerProcess::spawn(&db).await;
    assert_eq!(first.terminate().await, Some(0));
    // No lease left behind to wait for: the next server starts and serves.
    let next = ServerProcess::spawn(&db).await;
    let mut alice = next.ws("alice").await;
    alice.recv().await;
    alice.say("analyse my usage").await;
    assert_eq!(
        alice.recv_runs(1).await.last().unwrap()["type"],
        "run_completed"
    );
    next.kill().await;
}
on_both_backends!(a_cleanly_stopped_server_hands_over_at_once);

/// A server stopped the moment it has started exits 0 every time: its pools may still be
/// connecting in the background then, and on PostgreSQL such a connect racing the process's
/// exit once ended it with SIGSEGV (about one start in fifteen under load).
async fn a_server_stopped_right_after_start_exits_zero(db: TestDb) {
    for attempt in 0..20 {
        let server = ServerProcess::spawn(&db).await;
        assert_eq!(server.terminate().await, Some(0), "attempt {attempt}");
    }
}
on_both_backends!(a_server_stopped_right_after_start_exits_zero);

/// Migrations started together take turns (on PostgreSQL under an advisory lock): every
/// `enclave migrate` succeeds, and the migrations are applied once.
async fn migrations_started_together_take_turns(db: TestDb) {
    let runs = (0..4).map(|_| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_enclave"))
            .args(["migrate", "--database", &db.url])
            .env_remove("ENCLAVE_CONFIG")
            .output()
    });
    let outputs = futures_util::future::join_all(runs).await;
    let mut applied = Vec::new();
    for output in outputs {
        let output = output.unwrap();
        let said = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(
            output.status.success(),
            "{said}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        applied.push(
            said.trim()
                .strip_prefix("applied ")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap(),
        );
    }
    // One of them applied them all; the others found nothing left (on SQLite, where the
    // file lock makes them wait, the same holds).
    applied.sort_unstable();
    assert_eq!(applied.iter().filter(|n| **n > 0).count(), 1, "{applied:?}");
}
on_both_backends!(migrations_started_together_take_turns);
