//! Deleting a thread: refused while a run of it is live, then its runs go, its events are
//! erased in place (the sequence keeps no gap), and the user's other sockets hear
//! `thread_deleted`.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

async fn delete(app: &TestApp, user: &str, thread: &str) -> (u16, Value) {
    http_delete(app, &format!("/api/threads/{thread}"), user).await
}

async fn deleting_a_thread_erases_it_without_a_gap(db: TestDb) {
    let mut config = test_config(&db);
    config.faults = "triage:slow:60000@alice".into();
    let app = TestApp::spawn_with(config).await;
    let mut tab1 = app.ws("alice").await;
    let mut tab2 = app.ws("alice").await;
    tab1.recv().await;
    tab2.recv().await;

    // A thread with a live run cannot be deleted.
    tab1.say("first thread").await;
    let live = tab1.recv_until(|f| f["type"] == "agent_started").await;
    let thread = live[0]["thread_id"].as_str().unwrap().to_owned();
    let run = live[0]["run_id"].clone();
    assert_eq!(delete(&app, "alice", &thread).await.0, 409);
    tab1.send(json!({"type":"cancel_run","run_id":run})).await;
    let before = tab1.recv_until(|f| f["type"] == "run_cancelled").await;
    let last_before = *seqs(&before).last().unwrap();

    // Another user's thread, a missing one and a malformed id are all not_found.
    assert_eq!(delete(&app, "bob", &thread).await.0, 404);
    assert_eq!(
        delete(&app, "alice", &uuid::Uuid::new_v4().to_string())
            .await
            .0,
        404
    );
    assert_eq!(delete(&app, "alice", "nope").await.0, 404);

    let (status, body) = delete(&app, "alice", &thread).await;
    assert_eq!(status, 200, "{body}");
    let note = tab2.recv_until(|f| f["type"] == "thread_deleted").await;
    let deleted = note.last().unwrap();
    assert_eq!(deleted["thread_id"], thread.as_str());
    assert_eq!(deleted["run_id"], Value::Null);
    assert_eq!(deleted["seq"], last_before + 1);

    // The replay keeps every seq: the thread's events come back as `erased`, bare.
    assert_eq!(
        tab1.recv_until(|f| f["type"] == "thread_deleted")
            .await
            .len(),
        1
    );
    let replay = sequenced(&tab1.ws_replay_from(0).await);
    assert_gapless(&replay, 1);
    for event in &replay[..replay.len() - 1] {
        assert_eq!(event["type"], "erased");
        let keys: Vec<&String> = event.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["run_id", "seq", "thread_id", "ts", "type"],
            "{event}"
        );
    }
    assert_eq!(replay.last().unwrap()["type"], "thread_deleted");
    let token = app.token("alice");
    assert_eq!(
        app.get(&format!("/api/threads/{thread}/events"), Some(&token))
            .await
            .0,
        404
    );
    assert_eq!(
        app.get(
            &format!("/api/runs/{}", run.as_str().unwrap()),
            Some(&token)
        )
        .await
        .0,
        404
    );
    let (_, threads) = app.get("/api/threads", Some(&token)).await;
    assert_eq!(threads["threads"], json!([]));
    // A message to the deleted thread is not_found; the user goes on in a new one.
    tab1.send(json!({"type":"user_message","content":"hi","thread_id":thread}))
        .await;
    assert_eq!(
        tab1.recv_until(|f| f["type"] == "error")
            .await
            .last()
            .unwrap()["code"],
        "not_found"
    );
    app.stop().await;
}
on_both_backends!(deleting_a_thread_erases_it_without_a_gap);

/// `GET /api/threads?before=&limit=` pages through every thread exactly once, newest first,
/// also where several were updated in the same millisecond (a page never ends inside such a
/// group); a bad `limit` is `bad_request`; another user's threads never show.
async fn threads_are_listed_a_page_at_a_time(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let mut alice = app.ws("alice").await;
    alice.recv().await;
    for n in 0..7 {
        alice.say(&format!("thread {n}")).await;
    }
    let frames = alice.recv_runs(7).await;
    let mut threads: Vec<String> = Vec::new();
    for frame in &frames {
        if let Some(id) = frame["thread_id"].as_str()
            && !threads.iter().any(|t| t == id)
        {
            threads.push(id.to_owned());
        }
    }
    assert_eq!(threads.len(), 7);
    threads.sort();
    // Three threads share a millisecond, and two others another.
    let times = [500, 400, 400, 400, 300, 200, 200];
    for (thread, at) in threads.iter().zip(times) {
        execute(
            &db,
            &format!("UPDATE threads SET updated_at = {at} WHERE thread_id = '{thread}'"),
        );
    }
    let mut bob = app.ws("bob").await;
    bob.recv().await;
    bob.say("bob's thread").await;
    bob.recv_runs(1).await;

    let token = app.token("alice");
    let mut seen: Vec<(String, i64)> = Vec::new();
    let mut pages = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let path = match before {
            Some(b) => format!("/api/threads?limit=2&before={b}"),
            None => String::from("/api/threads?limit=2"),
        };
        let (status, page) = app.get(&path, Some(&token)).await;
        assert_eq!(status, 200, "{page}");
        let listed = page["threads"].as_array().unwrap();
        pages.push(listed.len());
        for t in listed {
            seen.push((
                t["thread_id"].as_str().unwrap().to_owned(),
                t["updated_at"].as_i64().unwrap(),
            ));
        }
        match page["next_before"].as_i64() {
            Some(next) => before = Some(next),
            None => break,
        }
        assert!(pages.len() < 10, "pages never end: {pages:?}");
    }
    // The group of three comes whole on one page; the page before it ends early.
    assert_eq!(pages, vec![1, 3, 1, 2]);
    let expected: Vec<(String, i64)> = threads.iter().cloned().zip(times).collect();
    assert_eq!(seen, expected, "every thread once, newest first");

    // The default page holds them all; limits outside 1-200 are refused.
    let (_, all) = app.get("/api/threads", Some(&token)).await;
    assert_eq!(all["threads"].as_array().unwrap().len(), 7);
    assert_eq!(all["next_before"], Value::Null);
    for bad in ["limit=0", "limit=201", "limit=x", "before=soon"] {
        let (status, body) = app.get(&format!("/api/threads?{bad}"), Some(&token)).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{bad}: {body}");
    }
    app.stop().await;
}
on_both_backends!(threads_are_listed_a_page_at_a_time);
