//! Bulk writes beside everyone's events (issue 9, points 4 and 6): an upload is written in
//! chunks while other users' runs go on, invisible until its last chunk is in, and nothing of
//! it is visible after it is interrupted; a session restarted while its batch is still being
//! written numbers after that batch.

use std::time::Duration;

use serde_json::{Value, json};

use enclave::auth::Auth;
use enclave::context::UserId;

use crate::helpers::*;
use crate::on_both_backends;

/// `n` NDJSON usage records with ids.
pub fn records(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"id\":\"r{i}\",\"ts\":{},\"model\":\"gpt-4o\",\"prompt_tokens\":100,\
                 \"completion_tokens\":20,\"latency_ms\":300}}\n",
                1_795_000_000_000i64 + i as i64
            )
        })
        .collect()
}

/// `POST /api/usage` of `body` as NDJSON for `user` on the server at `addr`.
pub async fn upload_to(addr: &str, user: &str, body: String) -> (u16, Value) {
    let token = token_for(&Auth::new(SECRET.as_bytes()), user);
    let mut resp = awc::Client::builder()
        .timeout(Duration::from_secs(120))
        .finish()
        .post(format!("http://{addr}/api/usage"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .insert_header(("Content-Type", "application/x-ndjson"))
        .send_body(body)
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.body().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// The requests `user`'s usage summary counts on the server at `addr`.
pub async fn requests_of(addr: &str, user: &str) -> i64 {
    let token = token_for(&Auth::new(SECRET.as_bytes()), user);
    let mut resp = awc::Client::default()
        .get(format!("http://{addr}/api/usage/summary"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let summary: Value = serde_json::from_slice(&resp.body().await.unwrap()).unwrap();
    summary["totals"]["requests"].as_i64().unwrap()
}

/// Rows stored for `user` in `usage_records`, visible or not, read from the database itself.
fn stored_rows(db: &TestDb, user: &str) -> i64 {
    rows_of(db, "usage_records", user)
}

async fn an_upload_goes_in_chunks_between_other_runs_and_shows_when_whole(db: TestDb) {
    let mut config = test_config(&db);
    // 20 chunks of 100 (whatever they take: the time target is a second), each after 200 ms:
    // the upload takes at least 4 s.
    config.bulk_chunk = 100;
    config.bulk_chunk_time = Some(Duration::from_secs(1));
    config.faults = "bulk:slow_chunk:200".into();
    let app = TestApp::spawn_with(config).await;
    let addr = app.addr.to_string();
    let uploading = actix_web::rt::spawn({
        let addr = addr.clone();
        async move { upload_to(&addr, "alice", records(2_000)).await }
    });

    // Meanwhile bob's run goes through to its end, and none of alice's rows shows yet.
    let mut bob = app.ws("bob").await;
    bob.recv().await;
    bob.say("analyse my usage").await;
    assert_eq!(
        bob.recv_runs(1).await.last().unwrap()["type"],
        "run_completed"
    );
    assert_eq!(requests_of(&addr, "alice").await, 0);
    assert!(
        !uploading.is_finished(),
        "the upload ended before bob's run"
    );

    let (status, answer) = uploading.await.unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"accepted": 2000, "rejected": 0, "duplicates": 0})
    );
    assert_eq!(requests_of(&addr, "alice").await, 2000);
    app.stop().await;
}
on_both_backends!(an_upload_goes_in_chunks_between_other_runs_and_shows_when_whole);

async fn an_interrupted_upload_leaves_nothing(db: TestDb) {
    let env = [
        ("ENCLAVE_BULK_CHUNK", "100"),
        ("ENCLAVE_BULK_CHUNK_MS", "1000"),
        ("ENCLAVE_FAULTS", "bulk:slow_chunk:200"),
    ];
    let first = ServerProcess::spawn_with_env(&db, &env).await;
    let addr = first.addr.clone();
    let uploading =
        actix_web::rt::spawn(async move { upload_to(&addr, "alice", records(2_000)).await });
    // Killed once some chunks are in (read from the database; bounded).
    let mut stored = 0;
    for _ in 0..600 {
        stored = stored_rows(&db, "alice");
        if stored > 0 {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stored > 0 && stored < 2000, "{stored} rows stored");
    assert_eq!(requests_of(&first.addr, "alice").await, 0);
    first.kill().await;
    // On PostgreSQL its users are claimed anew once its lease has run out.
    wait_for_lapsed_leases(&db).await;
    let _ = uploading.await;

    // The next start discards the half-written upload; sending it again stores it whole.
    let next = ServerProcess::spawn(&db).await;
    assert_eq!(stored_rows(&db, "alice"), 0);
    assert_eq!(requests_of(&next.addr, "alice").await, 0);
    let (status, answer) = upload_to(&next.addr, "alice", records(2_000)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["duplicates"], 0);
    assert_eq!(requests_of(&next.addr, "alice").await, 2000);
    next.kill().await;
}
on_both_backends!(an_interrupted_upload_leaves_nothing);

async fn a_session_restarted_mid_batch_numbers_after_it(db: TestDb) {
    let mut config = test_config(&db);
    config.faults = "session:panic:0@bob".into();
    config.heartbeat_interval = Duration::from_millis(50);
    let app = TestApp::spawn_with(config).await;
    let mut bob = app.ws("bob").await;
    bob.recv().await;

    // Bob's first message: its batch sits with a slow writer when his session panics.
    app.faults.set_store_delay(Duration::from_millis(1500));
    bob.say("analyse my usage").await;
    let mut writing = metric(&app, "write_batches_in_flight").await;
    for _ in 0..500 {
        if writing >= 1.0 {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(2)).await;
        writing = metric(&app, "write_batches_in_flight").await;
    }
    assert!(writing >= 1.0, "no batch was being written");
    assert!(
        app.faults
            .add_session_panics(&UserId::parse("bob").unwrap(), 1)
    );
    bob.say("this one makes the session panic").await;
    assert_eq!(bob.closed().await, Closed::Code(4009));
    app.faults.set_store_delay(Duration::ZERO);

    // The fresh session reads bob's last seq after that batch: its run is interrupted and
    // numbered after it, the next run goes on, no batch fails.
    let (mut bob, _) = WsClient::reconnect_after_restart(&app, "bob").await;
    bob.say("analyse my usage").await;
    bob.recv_until(|f| f["type"] == "run_completed").await;
    let history = sequenced(&bob.ws_replay_from(0).await);
    assert_gapless(&history, 1);
    let ends: Vec<&str> = history
        .iter()
        .filter(|f| is_run_end(f))
        .map(|f| f["type"].as_str().unwrap())
        .collect();
    assert_eq!(ends, ["run_interrupted", "run_completed"]);
    assert_eq!(metric(&app, "write_batches_lost_total").await, 0.0);
    app.stop().await;
}
on_both_backends!(a_session_restarted_mid_batch_numbers_after_it);

async fn another_users_run_ends_between_two_batches_of_a_generation(db: TestDb) {
    let mut config = test_config(&db);
    config.synthetic_batch = 1_000;
    // Each batch of the generation waits a second first: 8 batches, ~8 s.
    config.faults = "synthetic_data:slow_batch:1000@alice".into();
    let app = TestApp::spawn_with(config).await;
    let mut alice = app.ws("alice").await;
    alice.recv().await;
    let mut bob = app.ws("bob").await;
    bob.recv().await;
    alice
        .say("generate 8000 synthetic usage records for a chatbot")
        .await;
    alice.recv_until(|f| f["type"] == "progress").await;

    // Bob's run, asked for now, ends before alice's generation reports two more batches.
    bob.say("analyse my usage").await;
    let mut progress_meanwhile = 0;
    loop {
        tokio::select! {
            frame = bob.recv() => {
                if is_run_end(&frame) {
                    assert_eq!(frame["type"], "run_completed");
                    break;
                }
            }
            frame = alice.recv() => {
                if frame["type"] == "progress" {
                    progress_meanwhile += 1;
                }
            }
        }
    }
    assert!(
        progress_meanwhile < 2,
        "{progress_meanwhile} batches went first"
    );
    let rest = alice.recv_runs(1).await;
    assert_eq!(rest.last().unwrap()["type"], "run_completed");
    app.stop().await;
}
on_both_backends!(another_users_run_ends_between_two_batches_of_a_generation);
