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
