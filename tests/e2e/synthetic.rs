//! Synthetic data: a large request waits for approval (approve, reject, expiry, twice,
//! another user), a small one runs at once; approved records are stored in batches with
//! progress and are what the next optimisation run analyses. A generation longer than the
//! attempt timeout that reports progress is not timed out, an approval holds for the run's
//! restarts, and a restart continues after the records already stored (issue 9.3).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

async fn requests(app: &TestApp, user: &str) -> u64 {
    let (_, summary) = app.get("/api/usage/summary", Some(&app.token(user))).await;
    summary["totals"]["requests"].as_u64().unwrap()
}

async fn fifty_thousand_records_after_approval(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let mut tab1 = app.ws("alice").await;
    let mut tab2 = app.ws("alice").await;
    tab1.recv().await;
    tab2.recv().await;
    tab1.say("generate 50,000 synthetic rag records for gpt-4o over 30 days")
        .await;
    let asked = tab1.recv_until(|f| f["type"] == "approval_required").await;
    let required = asked.last().unwrap();
    assert_eq!(required["agent"], "synthetic_data");
    assert_eq!(required["data"]["action"], "generate_synthetic_data");
    assert_eq!(required["data"]["details"]["count"], 50_000);
    assert_eq!(required["data"]["details"]["profile"], "rag");
    let approval_id = required["data"]["approval_id"].as_str().unwrap().to_owned();
    let run_id = required["run_id"].as_str().unwrap().to_owned();
    let thread_id = required["thread_id"].as_str().unwrap().to_owned();
    assert_eq!(requests(&app, "alice").await, 0, "nothing before approval");

    // Another user cannot approve it; the other tab can.
    assert_cross_user_not_found(&app, "bob", &thread_id, &run_id, Some(&approval_id)).await;
    tab2.send(json!({"type":"approval","approval_id":approval_id,"decision":"approve"}))
        .await;
    // Both tabs read on while the records are generated: a tab that stops reading for the
    // client timeout is closed as too slow, however long the generation takes here.
    let (frames, frames2) = tokio::join!(tab1.recv_runs(1), tab2.recv_runs(1));
    assert!(frames2.ends_with(&frames), "both tabs get the same events");
    let progress: Vec<(u64, u64)> = frames
        .iter()
        .filter(|f| f["type"] == "progress")
        .map(|f| {
            (
                f["data"]["done"].as_u64().unwrap(),
                f["data"]["total"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(progress.len(), 10, "batches of 5,000");
    assert!(progress.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(progress.last(), Some(&(50_000, 50_000)));
    assert!(
        frames
            .iter()
            .all(|f| f["type"] != "progress" || f["data"]["unit"] == "records")
    );
    let end = frames.last().unwrap();
    assert_eq!(end["type"], "run_completed");
    assert_eq!(end["data"]["result"]["synthetic"]["generated"], 50_000);
    assert_eq!(requests(&app, "alice").await, 50_000);

    // Approving again is a conflict.
    tab2.send(json!({"type":"approval","approval_id":approval_id,"decision":"approve"}))
        .await;
    let answer = tab2.recv_until(|f| f["type"] == "error").await;
    assert_eq!(answer.last().unwrap()["code"], "conflict");

    // The next optimisation run analyses them.
    tab1.say("cut my LLM costs by 20%").await;
    let frames = tab1.recv_runs(1).await;
    let result = &frames.last().unwrap()["data"]["result"];
    assert_eq!(result["totals"]["requests"], 50_000);
    assert!(!result["recommendations"].as_array().unwrap().is_empty());
    app.stop().await;
}
on_both_backends!(fifty_thousand_records_after_approval);

async fn rejected_expired_and_small_requests(db: TestDb) {
    let mut config = test_config(&db);
    config.approval_timeout = Duration::from_millis(300);
    let app = TestApp::spawn_with(config).await;
    let mut socket = app.ws("alice").await;
    socket.recv().await;

    socket
        .say("generate 20k synthetic classification records")
        .await;
    let asked = socket
        .recv_until(|f| f["type"] == "approval_required")
        .await;
    let approval_id = asked.last().unwrap()["data"]["approval_id"].clone();
    socket
        .send(json!({"type":"approval","approval_id":approval_id,"decision":"reject"}))
        .await;
    let frames = socket.recv_runs(1).await;
    assert_eq!(frames[0]["data"]["decision"], "reject");
    let end = frames.last().unwrap();
    assert_eq!(end["type"], "run_completed");
    assert!(
        end["data"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("Nothing was done")
    );
    assert!(frames.iter().all(|f| f["type"] != "progress"));
    assert_eq!(
        requests(&app, "alice").await,
        0,
        "nothing stored after a rejection"
    );

    // Nobody answers: the approval expires (after 300 ms here) and nothing is stored.
    socket
        .say("generate 20k synthetic classification records")
        .await;
    let frames = socket.recv_runs(1).await;
    let resolved = frames
        .iter()
        .find(|f| f["type"] == "approval_resolved")
        .unwrap();
    assert_eq!(resolved["data"]["decision"], "expired");
    assert_eq!(frames.last().unwrap()["type"], "run_completed");
    assert_eq!(requests(&app, "alice").await, 0);

    // A small request needs no approval.
    socket
        .say("generate 2000 synthetic chatbot records seed 9")
        .await;
    let frames = socket.recv_runs(1).await;
    assert!(frames.iter().all(|f| f["type"] != "approval_required"));
    let progress: Vec<&Value> = frames.iter().filter(|f| f["type"] == "progress").collect();
    assert_eq!(progress.len(), 1);
    assert_eq!(requests(&app, "alice").await, 2_000);
    // The same request again adds nothing: the records have the same ids.
    socket
        .say("generate 2000 synthetic chatbot records seed 9")
        .await;
    let frames = socket.recv_runs(1).await;
    assert_eq!(
        frames.last().unwrap()["data"]["result"]["synthetic"]["duplicates"],
        2_000
    );
    assert_eq!(requests(&app, "alice").await, 2_000);
    app.stop().await;
}
on_both_backends!(rejected_expired_and_small_requests);

/// A short attempt timeout, approval above 500 records, batches of 100, fast restarts.
fn short_timeout(db: &TestDb, faults: &str) -> enclave::config::Config {
    let mut config = test_config(db);
    config.agent_timeout = Duration::from_secs(1);
    config.synthetic_approval_threshold = 500;
    config.synthetic_batch = 100;
    config.backoff_base = Duration::from_millis(10);
    config.backoff_cap = Duration::from_millis(40);
    config.faults = faults.into();
    config
}

/// Asks for `message`'s records, approves the one `approval_required`, and returns every frame
/// of the run from the start to its end.
async fn approve_once(socket: &mut WsClient, message: &str) -> Vec<Value> {
    socket.say(message).await;
    let mut frames = socket
        .recv_until(|f| f["type"] == "approval_required")
        .await;
    let approval_id = frames.last().unwrap()["data"]["approval_id"].clone();
    socket
        .send(json!({"type":"approval","approval_id":approval_id,"decision":"approve"}))
        .await;
    frames.extend(socket.recv_runs(1).await);
    frames
}

fn count_of(frames: &[Value], kind: &str) -> usize {
    frames.iter().filter(|f| f["type"] == kind).count()
}

/// `progress.done` of every batch, in order.
fn progress_done(frames: &[Value]) -> Vec<u64> {
    frames
        .iter()
        .filter(|f| f["type"] == "progress")
        .map(|f| f["data"]["done"].as_u64().unwrap())
        .collect()
}

// Issue 9.3: 1,200 records in 12 batches, each 300 ms late, take 3.6 s with a 1 s attempt
// timeout; the progress after each batch keeps the attempt alive.
async fn a_long_generation_that_reports_progress_is_not_timed_out(db: TestDb) {
    let config = short_timeout(&db, "synthetic_data:slow_batch:300");
    let timeout = config.agent_timeout;
    let app = TestApp::spawn_with(config).await;
    let mut socket = app.ws("alice").await;
    socket.recv().await;
    let started = Instant::now();
    let frames = approve_once(&mut socket, "generate 1200 synthetic chatbot records").await;
    assert!(
        started.elapsed() > 3 * timeout,
        "the generation must outlast the attempt timeout for this test to mean anything"
    );
    assert_eq!(count_of(&frames, "approval_required"), 1);
    assert_eq!(count_of(&frames, "agent_error"), 0, "{frames:#?}");
    assert_eq!(count_of(&frames, "agent_restarted"), 0);
    let expected: Vec<u64> = (1..=12).map(|n| n * 100).collect();
    assert_eq!(progress_done(&frames), expected);
    let end = frames.last().unwrap();
    assert_eq!(end["type"], "run_completed");
    assert_eq!(end["data"]["result"]["synthetic"]["generated"], 1_200);
    assert_eq!(requests(&app, "alice").await, 1_200);
    app.stop().await;
}
on_both_backends!(a_long_generation_that_reports_progress_is_not_timed_out);

// The first attempt fails after 4 batches: the restart does not ask again and continues with
// the fifth batch; every record is stored once.
async fn a_restart_continues_without_asking_again(db: TestDb) {
    let app = TestApp::spawn_with(short_timeout(&db, "synthetic_data:fail_after_batches:4")).await;
    let mut socket = app.ws("alice").await;
    socket.recv().await;
    let frames = approve_once(&mut socket, "generate 1200 synthetic chatbot records").await;
    assert_eq!(count_of(&frames, "approval_required"), 1);
    let lifecycle: Vec<(&str, u64)> = frames
        .iter()
        .filter(|f| f["agent"] == "synthetic_data")
        .filter(|f| f["type"].as_str().unwrap().starts_with("agent_"))
        .filter(|f| f["type"] != "agent_thinking")
        .map(|f| {
            let kind = f["type"].as_str().unwrap();
            (kind, f["data"]["attempt"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(
        lifecycle,
        [
            ("agent_started", 1),
            ("agent_error", 1),
            ("agent_restarted", 2),
            ("agent_started", 2),
            ("agent_completed", 2),
        ]
    );
    let error = frames.iter().find(|f| f["type"] == "agent_error").unwrap();
    assert!(
        error["data"]["error"]
            .as_str()
            .unwrap()
            .contains("injected")
    );
    let thoughts: Vec<&str> = frames
        .iter()
        .filter(|f| f["type"] == "agent_thinking")
        .filter_map(|f| f["data"]["text"].as_str())
        .collect();
    assert!(thoughts.iter().any(|t| t.contains("approved earlier")));
    assert!(thoughts.iter().any(|t| t.contains("first 400 records")));
    // No batch is done twice: 100..=400 by the first attempt, 500..=1200 by the second.
    let expected: Vec<u64> = (1..=12).map(|n| n * 100).collect();
    assert_eq!(progress_done(&frames), expected);
    let end = frames.last().unwrap();
    assert_eq!(end["type"], "run_completed");
    let synthetic = &end["data"]["result"]["synthetic"];
    assert_eq!(
        (&synthetic["generated"], &synthetic["duplicates"]),
        (&json!(1_200), &json!(0))
    );
    assert_eq!(requests(&app, "alice").await, 1_200);
    app.stop().await;
}
on_both_backends!(a_restart_continues_without_asking_again);

// A batch that keeps the agent silent longer than the attempt timeout is still timed out (the
// deadline measures silence), and its restart does not ask the user again.
async fn a_silent_batch_still_times_out_and_the_restart_asks_nothing(db: TestDb) {
    let mut config = short_timeout(&db, "synthetic_data:slow_batch:1500");
    config.max_restarts = 1;
    let app = TestApp::spawn_with(config).await;
    let mut socket = app.ws("alice").await;
    socket.recv().await;
    let frames = approve_once(&mut socket, "generate 1200 synthetic chatbot records").await;
    assert_eq!(count_of(&frames, "approval_required"), 1);
    assert_eq!(count_of(&frames, "agent_restarted"), 1);
    let errors: Vec<&Value> = frames
        .iter()
        .filter(|f| f["type"] == "agent_error")
        .collect();
    assert_eq!(errors.len(), 2);
    assert!(
        errors
            .iter()
            .all(|e| e["data"]["error"].as_str().unwrap().contains("timed out"))
    );
    assert_eq!(count_of(&frames, "progress"), 0);
    let end = frames.last().unwrap();
    assert_eq!(end["type"], "run_failed");
    assert_eq!(end["data"]["code"], "timeout");
    assert_eq!(requests(&app, "alice").await, 0);
    app.stop().await;
}
on_both_backends!(a_silent_batch_still_times_out_and_the_restart_asks_nothing);
