//! Liveness: a silent socket is closed with 4002 and a socket whose token expires with 4001.

use std::time::Duration;

use enclave::auth::Auth;
use enclave::context::UserId;

use serde_json::json;

use crate::helpers::*;
use crate::on_both_backends;

async fn a_silent_socket_is_closed_4002(db: TestDb) {
    let mut config = test_config(&db);
    config.heartbeat_interval = Duration::from_millis(50);
    config.client_timeout = Duration::from_millis(200);
    let app = TestApp::spawn_with(config).await;
    let code = silent_socket_close_code(app.addr, &app.token("alice")).await;
    assert_eq!(code, 4002);

    // A client that answers pings stays connected through many heartbeats.
    let mut socket = app.ws("alice").await;
    socket.recv().await;
    for i in 0..5 {
        socket.ping_pong(&format!("alive-{i}")).await;
    }
    app.stop().await;
}
on_both_backends!(a_silent_socket_is_closed_4002);

async fn an_expiring_token_closes_4001(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let auth = Auth::new(SECRET.as_bytes());
    let alice = UserId::parse("alice").unwrap();
    // Expires 2-3 s from now (exp has whole seconds): ample time to connect first.
    let token = auth.issue(&alice, Duration::from_secs(3)).unwrap();
    let mut socket = WsClient::connect(&format!("ws://{}/ws?token={token}", app.addr))
        .await
        .unwrap();
    assert_eq!(socket.recv().await["type"], "connected");
    assert_eq!(socket.closed().await, Closed::Code(4001));
    app.stop().await;
}
on_both_backends!(an_expiring_token_closes_4001);

async fn a_slow_reader_is_closed_4008_and_loses_nothing(db: TestDb) {
    let mut config = test_config(&db);
    config.socket_outbound_bytes = 256 * 1024;
    config.message_burst = 500;
    config.messages_per_minute = 60_000;
    config.max_running_per_user = 100;
    config.max_queued_per_user = 500;
    // Short, but long enough that the sending socket, read by a task of a loaded test process,
    // is not taken for a stalled one (two heartbeats without progress over the soft bound).
    config.heartbeat_interval = Duration::from_millis(250);
    let app = TestApp::spawn_with(config).await;
    let mut fast = app.ws("alice").await;
    fast.recv().await;
    let slow = SlowReader::open(app.addr, &app.token("alice")).await;
    let mut bob = app.ws("bob").await;
    bob.recv().await;

    // A burst of ~6.5 MB of events (more than the kernel's socket buffers hold): 400 messages
    // of 16,000 characters, echoed back, sent from a third socket of alice's while the fast one
    // reads.
    let big = "x".repeat(16_000);
    let messages = (0..400)
        .map(|i| json!({"type": "user_message", "content": format!("{i} {big}")}))
        .collect();
    let mut sender = app.ws("alice").await;
    sender.recv().await;
    let sending = actix_web::rt::spawn(sender.send_all_reading(messages));
    bob.say("analyse my usage").await;
    let burst = follow_runs(&app, "alice", fast, 400).await;
    assert_gapless(&burst, 1);
    assert_eq!(
        bob.recv_runs(1).await.last().unwrap()["type"],
        "run_completed"
    );
    sending.await.unwrap();

    // The slow socket was closed (mid-burst, or once the burst sat unread in its buffer);
    // what it got is a gapless prefix, and a resume from its last seq returns all the rest.
    let (got, code) = slow.read_to_close().await;
    assert_eq!(code, 4008);
    let got = sequenced(&got);
    assert!(got.len() <= burst.len());
    assert_eq!(got[..], burst[..got.len()]);
    let last = got.last().map_or(0, |f| f["seq"].as_i64().unwrap());
    assert_eq!(catch_up(&app, "alice", last).await[..], burst[got.len()..]);
    app.stop().await;
}
on_both_backends!(a_slow_reader_is_closed_4008_and_loses_nothing);
