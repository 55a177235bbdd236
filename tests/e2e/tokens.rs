//! Tokens at the edge (issue 14): `?token=` is read on the socket upgrade only (anywhere else a
//! token in the URL ends up in logs and history), and a token not valid yet (`nbf`) or issued
//! in the future (`iat`) is refused on both HTTP and the upgrade.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::helpers::*;
use crate::on_both_backends;

fn signed(claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

async fn tokens_in_urls_and_from_the_future_are_refused(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let token = app.token("alice");
    // In the URL of an HTTP route: as if there were none.
    let (status, body) = app.get(&format!("/api/threads?token={token}"), None).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer"),
        "{body}"
    );
    // The same token in the header, and in the upgrade URL, is fine.
    assert_eq!(app.get("/api/threads", Some(&token)).await.0, 200);
    let mut socket = app.ws("alice").await;
    assert_eq!(socket.recv().await["type"], "connected");

    let now = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()) as i64;
    let day = 24 * 3600;
    for claims in [
        json!({"sub": "alice", "exp": now + day, "nbf": now + day}),
        json!({"sub": "alice", "exp": now + 2 * 365 * day, "iat": now + 365 * day}),
    ] {
        let early = signed(claims.clone());
        let (status, body) = app.get("/api/threads", Some(&early)).await;
        assert_eq!(status, 401, "{claims}: {body}");
        let refused = WsClient::connect(&format!("ws://{}/ws?token={early}", app.addr)).await;
        assert!(refused.is_err(), "{claims}: the upgrade is refused");
    }
    // Issued a little ahead by a clock slightly fast: accepted.
    let close = signed(json!({"sub": "alice", "exp": now + day, "nbf": now + 20, "iat": now + 20}));
    assert_eq!(app.get("/api/threads", Some(&close)).await.0, 200);
    app.stop().await;
}
on_both_backends!(tokens_in_urls_and_from_the_future_are_refused);

/// `enclave token revoke --user alice` (another process, writing the database): alice's
/// tokens issued until then are refused on every route and her open socket is closed 4001;
/// bob is untouched; a token issued after the revocation's second is honoured.
async fn a_revoked_users_tokens_are_refused_and_her_sockets_closed(db: TestDb) {
    let mut config = test_config(&db);
    config.revocation_check = std::time::Duration::from_millis(50);
    let app = TestApp::spawn_with(config).await;
    let before = app.token("alice");
    let mut socket = app.ws("alice").await;
    assert_eq!(socket.recv().await["type"], "connected");
    assert_eq!(app.get("/api/threads", Some(&before)).await.0, 200);

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_enclave"))
        .args(["token", "revoke", "--user", "alice", "--database", &db.url])
        .env_remove("ENCLAVE_CONFIG")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("revoked every token of alice"));

    // The server reads the revocation and closes her socket as an expired token's.
    assert!(matches!(socket.closed().await, Closed::Code(4001)));
    let (status, body) = app.get("/api/threads", Some(&before)).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("token revoked"),
        "{body}"
    );
    let url = format!("ws://{}/ws?token={before}", app.addr);
    assert!(
        WsClient::connect(&url).await.is_err(),
        "the upgrade is refused too"
    );
    assert_eq!(
        app.get("/api/threads", Some(&app.token("bob"))).await.0,
        200
    );
    // Tokens issued in the revoked second are refused too; from the next one on, honoured.
    let mut honoured = false;
    for _ in 0..200 {
        if app.get("/api/threads", Some(&app.token("alice"))).await.0 == 200 {
            honoured = true;
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(honoured, "a fresh token works");
    app.stop().await;
}
on_both_backends!(a_revoked_users_tokens_are_refused_and_her_sockets_closed);
