//! Bad input is refused with PROTOCOL.md's codes, changes nothing stored, keeps the socket
//! answering (except the frame-level violations 1007 and 1009), and never disturbs another
//! user's run.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

fn token_with(header: Value, claims: Value, secret: &[u8]) -> String {
    let head = b64url(header.to_string().as_bytes());
    let body = b64url(claims.to_string().as_bytes());
    if secret.is_empty() {
        return format!("{head}.{body}.");
    }
    let key = jsonwebtoken::EncodingKey::from_secret(secret);
    let header: jsonwebtoken::Header = serde_json::from_value(header).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

async fn bad_tokens_get_401_before_upgrade(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let far = 4_000_000_000u64;
    let hs256 = json!({"alg":"HS256","typ":"JWT"});
    let bad_tokens = [
        ("garbage", "not.a.jwt".to_owned()),
        (
            "expired",
            token_with(
                hs256.clone(),
                json!({"sub":"alice","exp":1_000_000}),
                SECRET.as_bytes(),
            ),
        ),
        (
            "alg none",
            token_with(
                json!({"alg":"none","typ":"JWT"}),
                json!({"sub":"alice","exp":far}),
                b"",
            ),
        ),
        (
            "wrong secret",
            token_with(
                hs256.clone(),
                json!({"sub":"alice","exp":far}),
                b"another-secret",
            ),
        ),
        (
            "placeholder user",
            token_with(
                hs256.clone(),
                json!({"sub":"undefined","exp":far}),
                SECRET.as_bytes(),
            ),
        ),
        (
            "no exp",
            token_with(hs256, json!({"sub":"alice"}), SECRET.as_bytes()),
        ),
    ];
    for (what, token) in &bad_tokens {
        let (status, body) = app.get("/api/threads", Some(token)).await;
        assert_eq!(status, 401, "{what}");
        assert_eq!(body["error"]["code"], "unauthorized", "{what}");
        let url = format!("ws://{}/ws?token={token}", app.addr);
        let refused = WsClient::connect(&url).await.err().expect(what);
        assert!(refused.to_string().contains("401"), "{what}: {refused}");
    }
    let (status, _) = app.get("/api/threads", None).await;
    assert_eq!(status, 401, "missing token");
    let refused = WsClient::connect(&format!("ws://{}/ws", app.addr))
        .await
        .err();
    assert!(refused.unwrap().to_string().contains("401"));

    // The good token works in the header and in the query string.
    let token = app.token("alice");
    let mut socket = WsClient::connect_with_header(&format!("ws://{}/ws", app.addr), &token)
        .await
        .unwrap();
    assert_eq!(socket.recv().await["user_id"], "alice");
    app.stop().await;
}
on_both_backends!(bad_tokens_get_401_before_upgrade);

async fn bad_messages_get_errors_and_change_nothing(db: TestDb) {
    let mut config = test_config(&db);
    config.faults = "triage:slow:300@bob".into();
    let app = TestApp::spawn_with(config).await;

    // Alice has one stored run; bob has one in flight throughout.
    let mut alice = app.ws("alice").await;
    alice.recv().await;
    alice.say("analyse my usage").await;
    let stored = alice.recv_runs(1).await;
    let last_seq = *seqs(&stored).last().unwrap();
    let alice_token = app.token("alice");
    let (_, threads_before) = app.get("/api/threads", Some(&alice_token)).await;
    let mut bob = app.ws("bob").await;
    bob.recv().await;
    bob.say("cut my costs").await;

    let long = "x".repeat(16_385);
    let unknown_thread = uuid::Uuid::new_v4().to_string();
    let cases: Vec<(&str, String, &str)> = vec![
        ("non-JSON", "this is not json".into(), "bad_request"),
        ("JSON but not an object", "[1,2]".into(), "bad_request"),
        (
            "missing type",
            json!({"content":"hi"}).to_string(),
            "bad_request",
        ),
        (
            "unknown type",
            json!({"type":"dance"}).to_string(),
            "bad_request",
        ),
        (
            "missing content",
            json!({"type":"user_message"}).to_string(),
            "bad_request",
        ),
        (
            "empty content",
            json!({"type":"user_message","content":""}).to_string(),
            "bad_request",
        ),
        (
            "16,385 characters",
            json!({"type":"user_message","content":long}).to_string(),
            "too_large",
        ),
        (
            "non-uuid thread",
            json!({"type":"user_message","content":"hi","thread_id":"nope"}).to_string(),
            "bad_request",
        ),
        (
            "unknown thread",
            json!({"type":"user_message","content":"hi","thread_id":unknown_thread}).to_string(),
            "not_found",
        ),
        (
            "empty client_msg_id",
            json!({"type":"user_message","content":"hi","client_msg_id":""}).to_string(),
            "bad_request",
        ),
        (
            "negative resume",
            json!({"type":"resume","after_seq":-1}).to_string(),
            "bad_request",
        ),
        (
            "unknown approval",
            json!({"type":"approval","approval_id":"a-1","decision":"approve"}).to_string(),
            "not_found",
        ),
    ];
    for (what, frame, code) in &cases {
        alice.send_text(frame).await;
        let answer = alice.recv().await;
        assert_eq!(answer["type"], "error", "{what}");
        assert_eq!(answer["code"], *code, "{what}: {answer}");
        assert!(!answer["message"].as_str().unwrap().is_empty());
        assert_eq!(alice.ping_pong(what).await, Vec::<Value>::new(), "{what}");
    }
    alice.send_binary(vec![1, 2, 3]).await;
    let answer = alice.recv().await;
    assert_eq!(answer["code"], "bad_request");
    alice.ping_pong("after binary").await;

    // Nothing stored changed.
    let mut check = app.ws("alice").await;
    assert_eq!(check.recv().await["last_seq"], last_seq);
    let (_, threads_after) = app.get("/api/threads", Some(&alice_token)).await;
    assert_eq!(threads_before, threads_after);

    // Frame-level violations close the socket with their codes.
    check.send_text(&"y".repeat(128 * 1024 + 1)).await;
    assert_eq!(check.closed().await, Closed::Code(1009));
    alice.send_invalid_utf8().await;
    assert_eq!(alice.closed().await, Closed::Code(1007));

    // Bob's run went on undisturbed.
    let bob_frames = bob.recv_runs(1).await;
    assert_eq!(bob_frames.last().unwrap()["type"], "run_completed");
    assert_gapless(&bob_frames, 1);
    app.stop().await;
}
on_both_backends!(bad_messages_get_errors_and_change_nothing);

async fn twenty_bad_messages_in_a_row_close_1008(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let mut socket = app.ws("alice").await;
    socket.recv().await;
    for _ in 0..20 {
        socket.send_text("{").await;
    }
    for _ in 0..20 {
        assert_eq!(socket.recv().await["code"], "bad_request");
    }
    assert_eq!(socket.closed().await, Closed::Code(1008));
    app.stop().await;
}
on_both_backends!(twenty_bad_messages_in_a_row_close_1008);
