//! The server-wide bounds on clients (issue 14): WebSockets past the server's cap get 503
//! (not a failed `accept`) and a closed socket frees its place; an address opening
//! connections or sockets too fast gets 429 with `Retry-After` (a refused connection is
//! closed); loopback is exempt by default, unless it forwards for someone; `X-Forwarded-For`
//! names the client only through a trusted proxy; a client that does not finish its request
//! head in time is cut off.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;
use crate::on_both_backends;

/// `GET path` on a fresh connection with `headers`: the status and the whole answer.
async fn fresh_get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n", app.addr);
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer.to_ascii_lowercase())
}

/// Opens `user`'s socket: `Ok` with it, or the HTTP status and body it was refused with.
async fn upgrade(app: &TestApp, user: &str) -> Result<WsClient, (u16, Value)> {
    upgrade_from(app, user, None).await
}

/// `upgrade`, through a proxy saying the client is `forwarded_for`.
async fn upgrade_from(
    app: &TestApp,
    user: &str,
    forwarded_for: Option<&str>,
) -> Result<WsClient, (u16, Value)> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("ws://{}/ws?token={}", app.addr, app.token(user));
    let mut request = url.into_client_request().unwrap();
    if let Some(client) = forwarded_for {
        request
            .headers_mut()
            .insert("X-Forwarded-For", client.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((stream, _)) => Ok(WsClient::from_stream(stream)),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            Err((response.status().as_u16(), body))
        }
        Err(e) => panic!("upgrade failed: {e}"),
    }
}

async fn sockets_past_the_servers_cap_get_503_until_one_closes(db: TestDb) {
    let mut config = test_config(&db);
    config.max_sockets_total = 2;
    let app = TestApp::spawn_with(config).await;
    let mut alice = upgrade(&app, "alice").await.unwrap();
    let mut bob = upgrade(&app, "bob").await.unwrap();
    assert_eq!(alice.recv().await["type"], "connected");
    assert_eq!(bob.recv().await["type"], "connected");
    let (status, body) = upgrade(&app, "carol").await.err().unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("unavailable"))
    );
    // Plain requests are still served while the sockets are full.
    let token = app.token("carol");
    assert_eq!(app.get("/api/threads", Some(&token)).await.0, 200);
    assert!(metric(&app, "edge_refusals_total{why=\"sockets_full\"}").await >= 1.0);
    // A closed socket frees its place (given back when its actor stops).
    alice.close().await;
    // The pass comes back when alice's actor stops, on its own time: carol retries, as a
    // client with backoff would.
    let mut carol = None;
    for _ in 0..3000 {
        match upgrade(&app, "carol").await {
            Ok(socket) => {
                carol = Some(socket);
                break;
            }
            Err((503, _)) => actix_web::rt::time::sleep(Duration::from_millis(20)).await,
            Err(other) => panic!("{other:?}"),
        }
    }
    let mut carol = carol.expect("carol joins once alice has left");
    assert_eq!(carol.recv().await["type"], "connected");
    bob.ping_pong("still here").await;
    app.stop().await;
}
on_both_backends!(sockets_past_the_servers_cap_get_503_until_one_closes);

async fn an_address_over_its_rates_gets_429_unless_exempt(db: TestDb) {
    // Loopback is exempt by default: many sockets and connections in a row are fine.
    let mut config = test_config(&db);
    config.upgrades_per_minute_per_ip = 1;
    config.upgrade_burst_per_ip = 2;
    config.connections_per_minute_per_ip = 1;
    config.connection_burst_per_ip = 3;
    let app = TestApp::spawn_with(config.clone()).await;
    for _ in 0..5 {
        upgrade(&app, "alice").await.unwrap().close().await;
        assert_eq!(fresh_get(&app, "/healthz", &[]).await.0, 200);
    }
    app.stop().await;

    // A client behind a trusted proxy on loopback is not exempt (and /metrics, asked from
    // loopback itself, still answers).
    config.trusted_proxies = vec!["127.0.0.1".into()];
    let app = TestApp::spawn_with(config).await;
    let client = "198.51.100.4";
    // Sockets: a burst of two, then 429 with the wait (each upgrade also opened a connection).
    for user in ["alice", "bob"] {
        upgrade_from(&app, user, Some(client))
            .await
            .unwrap()
            .close()
            .await;
    }
    let (status, body) = upgrade_from(&app, "alice", Some(client))
        .await
        .err()
        .unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("rate_limited")),
        "{body}"
    );
    // Connections: the three upgrades spent the burst; the next fresh one is refused, closed.
    let (status, answer) = fresh_get(&app, "/healthz", &[("X-Forwarded-For", client)]).await;
    assert_eq!(status, 429, "{answer}");
    assert!(answer.contains("retry-after: "), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert_eq!(
        metric(&app, "edge_refusals_total{why=\"upgrade_rate\"}").await,
        1.0
    );
    assert_eq!(
        metric(&app, "edge_refusals_total{why=\"connection_rate\"}").await,
        1.0
    );
    app.stop().await;
}
on_both_backends!(an_address_over_its_rates_gets_429_unless_exempt);

async fn forwarded_for_names_the_client_only_through_a_trusted_proxy(db: TestDb) {
    let mut config = test_config(&db);
    config.connections_per_minute_per_ip = 1;
    config.connection_burst_per_ip = 1;
    config.trusted_proxies = vec!["127.0.0.1".into()];
    let app = TestApp::spawn_with(config.clone()).await;
    let from = |addr: &'static str| [("X-Forwarded-For", addr)];
    assert_eq!(
        fresh_get(&app, "/healthz", &from("203.0.113.7")).await.0,
        200
    );
    assert_eq!(
        fresh_get(&app, "/healthz", &from("203.0.113.7")).await.0,
        429
    );
    // Another client behind the same proxy has its own allowance.
    assert_eq!(
        fresh_get(&app, "/healthz", &from("203.0.113.8")).await.0,
        200
    );
    // Through the trusted proxy, a request naming nobody usable counts as the proxy: never
    // exempt, though it comes from loopback.
    let unusable = [("X-Forwarded-For", "unknown")];
    assert_eq!(fresh_get(&app, "/healthz", &unusable).await.0, 200);
    assert_eq!(fresh_get(&app, "/healthz", &unusable).await.0, 429);
    // A local tool on the proxy's host (loopback, forwarding for nobody) is exempt.
    for _ in 0..3 {
        assert_eq!(fresh_get(&app, "/healthz", &[]).await.0, 200);
    }
    app.stop().await;

    // From a peer that is not a trusted proxy, the header is ignored: every request counts
    // as the peer's — and a loopback peer forwarding for someone (a proxy on this host left
    // out of trusted_proxies) is not exempt, so its clients share one allowance.
    config.trusted_proxies = vec!["10.9.9.9".into()];
    let app = TestApp::spawn_with(config).await;
    assert_eq!(
        fresh_get(&app, "/healthz", &from("203.0.113.7")).await.0,
        200
    );
    assert_eq!(
        fresh_get(&app, "/healthz", &from("203.0.113.9")).await.0,
        429
    );
    // A local tool (loopback, forwarding for nobody) stays exempt.
    for _ in 0..3 {
        assert_eq!(fresh_get(&app, "/healthz", &[]).await.0, 200);
    }
    app.stop().await;
}
on_both_backends!(forwarded_for_names_the_client_only_through_a_trusted_proxy);

async fn a_request_head_not_sent_in_time_is_cut_off(db: TestDb) {
    let mut config = test_config(&db);
    config.request_timeout = Duration::from_millis(300);
    let app = TestApp::spawn_with(config).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    // Half a handshake, then nothing.
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    // The server ends the connection (with a 408) on its own, on the configured deadline,
    // not on actix-http's default of 5 s (ten times the setting, for a loaded machine).
    tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection before actix's default of 5 s")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    app.stop().await;
}
on_both_backends!(a_request_head_not_sent_in_time_is_cut_off);
