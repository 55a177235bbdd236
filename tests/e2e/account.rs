//! `DELETE /api/account` (issue 12): at once every route answers the caller as a new user —
//! live runs end `run_cancelled`, sockets close with 4009, `seq` starts again at 1, the same
//! record ids and upload keys are new again — while the old rows are purged in the background
//! until none is left in any table; another user's data is untouched. A deletion waits for
//! nothing: an upload in flight makes it answer 429 instead.

use serde_json::{Value, json};

use crate::export::{export_of, use_enclave};
use crate::helpers::*;
use crate::on_both_backends;
use crate::usage::upload;

/// Every table holding a user's rows.
const TABLES: [&str; 8] = [
    "events",
    "threads",
    "runs",
    "approvals",
    "usage_records",
    "usage_counts",
    "completed_uploads",
    "pending_uploads",
];

const ROWS: &str = "{\"id\":\"r-1\",\"ts\":1793527200000,\"model\":\"gpt-4o\",\"prompt_tokens\":10,\"completion_tokens\":5,\"latency_ms\":100}\n\
{\"id\":\"r-2\",\"ts\":1793527200001,\"model\":\"gpt-4o\",\"prompt_tokens\":10,\"completion_tokens\":5,\"latency_ms\":100}\n";

/// Uploads `ROWS` as `user` with an `Idempotency-Key`.
async fn upload_keyed(app: &TestApp, user: &str, key: &str) -> Value {
    let mut resp = awc::Client::default()
        .post(app.http("/api/usage"))
        .insert_header(("Authorization", format!("Bearer {}", app.token(user))))
        .insert_header(("Content-Type", "application/x-ndjson"))
        .insert_header(("Idempotency-Key", key))
        .send_body(ROWS)
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.unwrap()
}

fn rows_of_user(db: &TestDb, user: &str) -> Vec<i64> {
    TABLES.iter().map(|t| rows_of(db, t, user)).collect()
}

/// Waits (bounded) until nothing of the account `key` is left in any table, nor in the purge
/// list: the background purge is done.
async fn purged(db: &TestDb, key: &str) {
    eventually(&format!("{key} purged from {TABLES:?}"), || {
        let left = rows_of_user(db, key);
        let listed = rows_where(db, "account_purges", "user_key", key);
        (left.iter().all(|n| *n == 0) && listed == 0, (left, listed))
    })
    .await;
}

/// The export's lines without the time it was made.
async fn export_lines(app: &TestApp, user: &str) -> Vec<Value> {
    let (_, mut lines) = export_of(app, user).await;
    lines[0].as_object_mut().unwrap().remove("exported_at");
    lines
}

async fn a_deleted_account_is_gone_at_once_and_purged_in_the_background(db: TestDb) {
    let mut config = test_config(&db);
    // Two rows per transaction: the purge takes many chunks.
    config.bulk_chunk = 2;
    let app = TestApp::spawn_with(config).await;
    use_enclave(&app, "alice", "alice").await;
    use_enclave(&app, "bob", "bob").await;
    upload_keyed(&app, "alice", "part-1").await;
    upload_keyed(&app, "bob", "part-1").await;
    let held = rows_of_user(&db, "alice");
    assert!(
        held.iter().take(7).all(|n| *n > 0),
        "alice holds rows in every table: {held:?}"
    );
    let bob_rows = rows_of_user(&db, "bob");
    let bob_export = export_lines(&app, "bob").await;

    // A live run: a synthetic request waiting for its approval.
    let mut ws = app.ws("alice").await;
    ws.recv().await;
    ws.say("generate 20,000 synthetic chatbot records").await;
    let asked = ws.recv_until(|f| f["type"] == "approval_required").await;
    let run_id = asked.last().unwrap()["run_id"].as_str().unwrap().to_owned();

    let (status, body) = http_delete(&app, "/api/account", "alice").await;
    assert_eq!((status, body), (202, json!({"deleted": true})));

    // The socket saw the run end, cancelled by the user, then its close.
    let ended = ws.recv_until(is_run_end).await;
    let end = ended.last().unwrap();
    assert_eq!(
        (end["type"].clone(), end["data"]["reason"].clone()),
        (json!("run_cancelled"), json!("user")),
        "{end}"
    );
    assert!(
        ended
            .iter()
            .any(|f| f["type"] == "approval_resolved" && f["data"]["decision"] == "cancelled"),
        "the pending approval was cancelled: {ended:?}"
    );
    assert_eq!(ws.closed().await, Closed::Code(4009));

    // Every route answers as for a new user, at once.
    let token = app.token("alice");
    let (status, threads) = app.get("/api/threads", Some(&token)).await;
    assert_eq!(
        (status, threads),
        (200, json!({"threads": [], "next_before": null}))
    );
    let (status, _) = app.get(&format!("/api/runs/{run_id}"), Some(&token)).await;
    assert_eq!(status, 404);
    let (_, summary) = app.get("/api/usage/summary", Some(&token)).await;
    assert_eq!(summary["totals"]["requests"], 0, "{summary}");
    let (_, lines) = export_of(&app, "alice").await;
    assert_eq!(lines.len(), 2, "only the export and end lines: {lines:?}");
    assert_eq!(lines[1]["kind"], "end");
    for (kind, count) in lines[1].as_object().unwrap() {
        if kind != "kind" {
            assert_eq!(count, 0, "{lines:?}");
        }
    }

    // A new start: no history, `seq` from 1, the same ids and upload key are new again. (Like
    // any client after a 4009, it reconnects should the old session still be stopping.)
    let (mut ws, connected) = WsClient::reconnect_after_restart(&app, "alice").await;
    assert_eq!(connected["user_id"], "alice");
    assert_eq!(connected["last_seq"], 0, "{connected}");
    assert_eq!(connected["active_runs"], json!([]));
    assert_eq!(connected["pending_approvals"], json!([]));
    let again = upload_keyed(&app, "alice", "part-1").await;
    assert_eq!(
        (
            again["accepted"].clone(),
            again["duplicates"].clone(),
            again.get("replayed")
        ),
        (json!(2), json!(0), None),
        "{again}"
    );
    ws.say("cut my LLM costs by 30%").await;
    let frames = ws.recv_runs(1).await;
    assert_gapless(&sequenced(&frames), 1);
    ws.close().await;

    // The old rows go in the background; the new account's stay; bob's are untouched.
    purged(&db, "alice").await;
    assert!(rows_of(&db, "events", "alice~1") > 0);
    assert_eq!(rows_of(&db, "usage_records", "alice~1"), 2);
    assert_eq!(rows_of_user(&db, "bob"), bob_rows);
    assert_eq!(export_lines(&app, "bob").await, bob_export);
    app.stop().await;
}
on_both_backends!(a_deleted_account_is_gone_at_once_and_purged_in_the_background);

async fn an_account_deleted_twice_starts_afresh_each_time(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    for generation in 0..3 {
        let (mut ws, connected) = WsClient::reconnect_after_restart(&app, "carol").await;
        assert_eq!(
            connected["last_seq"], 0,
            "generation {generation}: {connected}"
        );
        ws.say("cut my LLM costs by 30%").await;
        assert_gapless(&sequenced(&ws.recv_runs(1).await), 1);
        let (status, _) = http_delete(&app, "/api/account", "carol").await;
        assert_eq!(status, 202);
        assert_eq!(ws.closed().await, Closed::Code(4009));
    }
    for key in ["carol", "carol~1", "carol~2"] {
        purged(&db, key).await;
    }
    app.stop().await;
}
on_both_backends!(an_account_deleted_twice_starts_afresh_each_time);

async fn a_deletion_during_an_upload_is_refused_until_it_ends(db: TestDb) {
    let mut config = test_config(&db);
    config.bulk_chunk = 1;
    config.faults = "bulk:slow_chunk:300".into();
    let app = TestApp::spawn_with(config).await;
    let rows: String = (0..12)
        .map(|i| {
            format!(
                "{{\"ts\":1793527200000,\"model\":\"gpt-4o\",\"workload\":\"w{i}\",\"prompt_tokens\":10,\"completion_tokens\":5,\"latency_ms\":100}}\n"
            )
        })
        .collect();
    let sending = upload(&app, "dave", "application/x-ndjson", "", rows);
    let deleting = async {
        // The upload has begun once its pending row is stored; it then takes 12 × 300 ms.
        eventually("the upload began", || {
            let pending = rows_of(&db, "pending_uploads", "dave");
            (pending > 0, pending)
        })
        .await;
        http_delete(&app, "/api/account", "dave").await
    };
    let ((status, answer, _), (refused, why)) = futures_util::future::join(sending, deleting).await;
    assert_eq!((status, answer["accepted"].clone()), (200, json!(12)));
    assert_eq!(refused, 429, "{why}");
    assert_eq!(why["error"]["code"], "rate_limited");

    let (status, _) = http_delete(&app, "/api/account", "dave").await;
    assert_eq!(status, 202);
    let (_, summary) = app
        .get("/api/usage/summary", Some(&app.token("dave")))
        .await;
    assert_eq!(summary["totals"]["requests"], 0);
    purged(&db, "dave").await;
    app.stop().await;
}
on_both_backends!(a_deletion_during_an_upload_is_refused_until_it_ends);

async fn a_purge_left_by_a_stopped_server_is_finished_at_the_next_start(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    use_enclave(&app, "frank", "frank").await;
    app.stop().await;
    // The process stopped right after a deletion's transaction, before its purge.
    execute(
        &db,
        "INSERT INTO accounts (user_id, generation, deleted_at) VALUES ('frank', 1, 0)",
    );
    execute(
        &db,
        "INSERT INTO account_purges (user_key, requested_at) VALUES ('frank', 0)",
    );
    assert!(rows_of(&db, "events", "frank") > 0);
    let app = TestApp::spawn(&db).await;
    purged(&db, "frank").await;
    let (_, threads) = app.get("/api/threads", Some(&app.token("frank"))).await;
    assert_eq!(threads, json!({"threads": [], "next_before": null}));
    app.stop().await;
}
on_both_backends!(a_purge_left_by_a_stopped_server_is_finished_at_the_next_start);
