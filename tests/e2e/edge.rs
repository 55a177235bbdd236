//! The HTTP edge (issue 14): every answer carries the security headers, `HEAD` is `GET`
//! without a body, `OPTIONS` lists a path's methods (and every method listed has a route), and
//! browser origins other than the server's own or a listed one are refused 403 on the socket
//! upgrade and the API, while a listed origin gets CORS and a client sending no `Origin` is
//! served as before.

use awc::http::Method;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::*;
use crate::on_both_backends;

/// `method path` with `headers`: the status, the headers and the body.
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, awc::http::header::HeaderMap, Vec<u8>) {
    let mut req = awc::Client::default().request(method, app.http(path));
    for (name, value) in headers {
        req = req.insert_header((*name, *value));
    }
    let mut resp = req.send().await.expect("request sent");
    let body = resp.body().await.expect("body read").to_vec();
    (resp.status().as_u16(), resp.headers().clone(), body)
}

fn header(headers: &awc::http::header::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn every_answer_carries_security_headers_and_head_and_options_work(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let bearer = format!("Bearer {}", app.token("alice"));
    for (path, auth, status) in [
        ("/healthz", None, 200),
        ("/api/threads", Some(bearer.as_str()), 200),
        ("/api/threads", None, 401),
        ("/no/such/route", None, 404),
    ] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        let (got, h, _) = call(&app, Method::GET, path, &headers).await;
        assert_eq!(got, status, "{path}");
        assert_eq!(header(&h, "x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header(&h, "x-frame-options"), "DENY", "{path}");
        assert_eq!(header(&h, "referrer-policy"), "no-referrer", "{path}");
        // HEAD: the same status and headers, no body.
        let (head, head_h, body) = call(&app, Method::HEAD, path, &headers).await;
        assert_eq!(head, status, "HEAD {path}");
        assert!(body.is_empty(), "HEAD {path} had a body");
        assert_eq!(
            header(&head_h, "content-type"),
            header(&h, "content-type"),
            "HEAD {path}"
        );
    }
    // The page keeps its own policy.
    let (_, page, _) = call(&app, Method::GET, "/", &[]).await;
    assert!(header(&page, "content-security-policy").contains("script-src"));

    // OPTIONS names a path's methods, and each one named reaches a route.
    let paths = [
        "/",
        "/healthz",
        "/readyz",
        "/metrics",
        "/ws",
        "/assets/app.js",
        "/api/usage",
        "/api/usage/summary",
        "/api/limits",
        "/api/export",
        "/api/threads",
        "/api/threads/t-1",
        "/api/threads/t-1/events",
        "/api/runs/r-1",
        "/api/reports/r-1.md",
        "/api/account",
        "/api/dev/token",
        "/api/csp-report",
        "/api/openapi.json",
    ];
    for path in paths {
        let (status, h, _) = call(&app, Method::OPTIONS, path, &[]).await;
        assert_eq!(status, 204, "OPTIONS {path}");
        let allow = header(&h, "allow");
        for method in allow
            .split(", ")
            .filter(|m| *m != "OPTIONS" && *m != "HEAD")
        {
            // No token: a route answers 401 (or serves a public path); no route says so.
            let (_, _, body) = call(&app, method.parse().unwrap(), path, &[]).await;
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let message = body["error"]["message"].as_str().unwrap_or("");
            assert!(!message.starts_with("no route"), "{method} {path}: {body}");
        }
    }
    let (status, _, _) = call(&app, Method::OPTIONS, "/no/such/route", &[]).await;
    assert_eq!(status, 404);
    let (status, h, body) = call(&app, Method::PUT, "/api/threads", &[]).await;
    assert_eq!(status, 405, "a method a path does not take");
    assert_eq!(header(&h, "allow"), "GET, HEAD, OPTIONS");
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
    app.stop().await;
}
on_both_backends!(every_answer_carries_security_headers_and_head_and_options_work);

/// Upgrades `user`'s socket with `origin`: the HTTP status it was refused with, or 101.
async fn upgrade_from(app: &TestApp, user: &str, origin: Option<&str>) -> u16 {
    let url = format!("ws://{}/ws?token={}", app.addr, app.token(user));
    let mut request = url.into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("Origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("upgrade failed: {e}"),
    }
}

async fn browser_origins_other_than_its_own_or_listed_are_refused(db: TestDb) {
    let mut config = test_config(&db);
    config.allowed_origins = vec!["https://app.example.com".into()];
    let app = TestApp::spawn_with(config).await;
    let own = format!("http://{}", app.addr);
    assert_eq!(upgrade_from(&app, "alice", None).await, 101, "no Origin");
    assert_eq!(
        upgrade_from(&app, "alice", Some(&own)).await,
        101,
        "own origin"
    );
    assert_eq!(
        upgrade_from(&app, "alice", Some("https://app.example.com")).await,
        101,
        "a listed origin"
    );
    for evil in ["https://evil.example", "null", "http://127.0.0.1:1"] {
        assert_eq!(upgrade_from(&app, "alice", Some(evil)).await, 403, "{evil}");
    }
    // The API: refused with the JSON error, before the token is even looked at.
    let bearer = format!("Bearer {}", app.token("alice"));
    let (status, _, body) = call(
        &app,
        Method::GET,
        "/api/threads",
        &[
            ("Authorization", &bearer),
            ("Origin", "https://evil.example"),
        ],
    )
    .await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    // A listed origin gets CORS: the preflight, then the answer.
    let (status, h, _) = call(
        &app,
        Method::OPTIONS,
        "/api/threads",
        &[
            ("Origin", "https://app.example.com"),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "authorization"),
        ],
    )
    .await;
    assert_eq!(status, 200, "preflight");
    assert_eq!(
        header(&h, "access-control-allow-origin"),
        "https://app.example.com"
    );
    let (status, h, _) = call(
        &app,
        Method::GET,
        "/api/threads",
        &[
            ("Authorization", &bearer),
            ("Origin", "https://app.example.com"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&h, "access-control-allow-origin"),
        "https://app.example.com"
    );
    assert!(metric(&app, "edge_refusals_total{why=\"origin\"}").await >= 4.0);
    app.stop().await;
}
on_both_backends!(browser_origins_other_than_its_own_or_listed_are_refused);

/// `GET /api/openapi.json` (no token): an OpenAPI 3.1 document naming exactly the server's
/// routes and methods, every answer of each with a content type, and the socket's frames.
async fn the_openapi_document_covers_every_route(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let (status, doc) = app.get("/api/openapi.json", None).await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    let documented: std::collections::BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "delete", "put", "patch"].contains(&k.as_str()))
                .map(move |method| (path.clone(), method.to_uppercase()))
        })
        .collect();
    let served: std::collections::BTreeSet<(String, String)> = enclave::web::edge::ROUTES
        .iter()
        .flat_map(|(path, methods)| {
            methods
                .iter()
                .map(move |m| (path.to_string(), m.to_string()))
        })
        .collect();
    assert_eq!(documented, served);
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let answers = operation["responses"].as_object().unwrap();
            assert!(answers.contains_key("503"), "{method} {path}");
            for (status, answer) in answers {
                let ok =
                    answer.get("content").is_some() || ["101", "204"].contains(&status.as_str());
                assert!(ok, "{method} {path} {status} names no content");
            }
        }
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "ClientFrame",
        "ServerFrame",
        "Event",
        "ErrorBody",
        "IngestAnswer",
    ] {
        assert!(schemas.contains_key(name), "no {name} schema");
    }
    // Each route the document names is served: OPTIONS lists its methods.
    for (path, method) in &documented {
        let concrete = path.replace("{id}", "x").replace("{name}", "app.js");
        let (status, h, _) = call(&app, Method::OPTIONS, &concrete, &[]).await;
        assert_eq!(status, 204, "{concrete}");
        assert!(
            header(&h, "allow").contains(method.as_str()),
            "{method} {concrete}"
        );
    }
    app.stop().await;
}
on_both_backends!(the_openapi_document_covers_every_route);
