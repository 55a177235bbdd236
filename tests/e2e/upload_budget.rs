//! The server-wide upload budget (issue 14): past `usage.max_concurrent_uploads` uploads in
//! flight, another user's upload is answered 503 `unavailable` with `Retry-After`, and gets
//! in once the first has ended; the first, held half-sent, loses nothing. An upload whose body
//! stops arriving is cut off at its deadline and frees its place.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;
use crate::on_both_backends;
use crate::usage::upload;

fn rows(prefix: &str, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"id\":\"{prefix}-{i}\",\"ts\":1793527200000,\"model\":\"gpt-4o\",\
                 \"prompt_tokens\":100,\"completion_tokens\":10,\"latency_ms\":300}}\n"
            )
        })
        .collect()
}

/// Uploads `body` as `user`, again after each 503 (a place in the budget is given back on the
/// server's own time, as a client told `Retry-After` would); the answer once stored.
async fn upload_once_there_is_room(app: &TestApp, user: &str, body: String) -> Value {
    for _ in 0..3000 {
        let (status, answer, _) = upload(app, user, "application/x-ndjson", "", body.clone()).await;
        if status == 200 {
            return answer;
        }
        assert_eq!(status, 503, "{answer}");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{user}'s upload never got in");
}

async fn uploads_past_the_servers_budget_wait_their_turn(db: TestDb) {
    let mut config = test_config(&db);
    config.max_concurrent_uploads = 1;
    let app = TestApp::spawn_with(config).await;
    // Alice's upload: its head and half its body, then a pause.
    let body = rows("a", 200);
    let (first, rest) = body.split_at(body.len() / 2);
    let mut alice = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /api/usage HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        app.addr,
        app.token("alice"),
        body.len()
    );
    alice.write_all(head.as_bytes()).await.unwrap();
    alice.write_all(first.as_bytes()).await.unwrap();
    // Once the server counts it in flight, the budget is spent.
    let mut in_flight = 0.0;
    for _ in 0..3000 {
        in_flight = metric(&app, "uploads_in_flight").await;
        if in_flight == 1.0 {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(in_flight, 1.0, "alice's upload is in flight");
    let (status, answer, retry_after) =
        upload(&app, "bob", "application/x-ndjson", "", rows("b", 3)).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["code"], "unavailable");
    assert!(retry_after.is_some());
    assert!(metric(&app, "edge_refusals_total{why=\"uploads_full\"}").await >= 1.0);
    // Alice finishes: every row stored.
    alice.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = String::new();
    alice.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"accepted\":200"), "{answer}");
    // Bob's turn comes once alice's reservation is given back (on its own time, so he retries
    // as a client told Retry-After would).
    let stored = upload_once_there_is_room(&app, "bob", rows("b", 3)).await;
    assert_eq!(stored["accepted"], 3);
    app.stop().await;
}
on_both_backends!(uploads_past_the_servers_budget_wait_their_turn);

/// An upload whose body stops arriving is answered 408 `request_timeout` once its deadline
/// (the grace, plus its size at the slowest rate) has passed, and gives its place back.
async fn an_upload_trickling_its_body_is_cut_off_and_frees_its_place(db: TestDb) {
    let mut config = test_config(&db);
    config.max_concurrent_uploads = 1;
    config.upload_read_grace = Duration::from_secs(1);
    config.upload_min_bytes_per_second = 1 << 30;
    let app = TestApp::spawn_with(config).await;
    let body = rows("t", 50);
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /api/usage HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
        app.addr,
        app.token("mallory"),
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(&body.as_bytes()[..10]).await.unwrap();
    // Nothing more is sent: the server answers on its own.
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(60), slow.read(&mut answer))
        .await
        .expect("answered before the test gives up")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
    // Its place is free again: another user's upload gets in (once the pass is back).
    let stored = upload_once_there_is_room(&app, "bob", rows("b", 2)).await;
    assert_eq!(stored["accepted"], 2);
    // Mallory's own upload slot is free too: her next upload is stored, not refused 429.
    let (status, answer, _) =
        upload(&app, "mallory", "application/x-ndjson", "", rows("m", 3)).await;
    assert_eq!(
        (status, &answer["accepted"]),
        (200, &serde_json::json!(3)),
        "{answer}"
    );
    app.stop().await;
}
on_both_backends!(an_upload_trickling_its_body_is_cut_off_and_frees_its_place);
