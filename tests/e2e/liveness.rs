//! Liveness: a silent socket is closed with 4002 and a socket whose token expires with 4001.

use std::time::Duration;

use enclave::auth::Auth;
use enclave::context::UserId;

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
