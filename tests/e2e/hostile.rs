//! Hostile input, table-driven (issue 14, point 1): each input a hostile client may send over
//! HTTP or the WebSocket gets the answer SECURITY.md's table documents; afterwards the server
//! still serves, and another user's stored data (her whole export) is byte for byte what it
//! was. Each row is one input; the few that need a sequence (floods, the eleventh socket, a
//! formula reaching the report) follow the table.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;
use crate::on_both_backends;

/// What one hostile input is.
enum Probe {
    /// An HTTP request (as written, bytes and all) answered with a status and error code.
    Http {
        request: Vec<u8>,
        status: u16,
        code: Option<&'static str>,
    },
    /// A text frame on an open socket, answered with an `error` frame of this code.
    Frame { text: String, code: &'static str },
    /// Bytes on a fresh socket that close it with this code.
    Closes { frame: Vec<u8>, code: u16 },
}

struct Case {
    what: &'static str,
    probe: Probe,
}

fn case(what: &'static str, probe: Probe) -> Case {
    Case { what, probe }
}

/// A WebSocket upgrade from a browser at `origin`, with a good token.
fn upgrade_from(origin: &str, token: &str) -> Vec<u8> {
    request(
        "GET",
        &format!("/ws?token={token}"),
        &[
            ("Origin", origin),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ],
        b"",
    )
}

/// `METHOD path` with `headers` and `body`, as a client writes it.
fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Sends `bytes` on a fresh connection; the answer's status and JSON body. A server that
/// answers before reading the whole body (413) may close while the rest is being written.
async fn exchange(app: &TestApp, bytes: &[u8]) -> (u16, Value) {
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let _ = stream.write_all(bytes).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or(Value::Null);
    (status, body)
}

fn signed(header: Value, claims: Value, secret: &[u8]) -> String {
    let header: jsonwebtoken::Header = serde_json::from_value(header).unwrap();
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Every row of the table, with `token` mallory's good token.
#[rustfmt::skip]
fn cases(token: &str) -> Vec<Case> {
    let bearer = format!("Bearer {token}");
    let auth = [("Authorization", bearer.as_str())];
    let ndjson = |body: &[u8]| {
        request(
            "POST",
            "/api/usage",
            &[
                ("Authorization", bearer.as_str()),
                ("Content-Type", "application/x-ndjson"),
            ],
            body,
        )
    };
    let json_body = |body: &[u8]| {
        request(
            "POST",
            "/api/usage",
            &[
                ("Authorization", bearer.as_str()),
                ("Content-Type", "application/json"),
            ],
            body,
        )
    };
    let http = |request: Vec<u8>, status: u16, code: Option<&'static str>| Probe::Http {
        request,
        status,
        code,
    };
    let row = |extra: &str| {
        format!(
            "{{\"id\":\"h1\",\"ts\":1793527200000,\"model\":\"gpt-4o\",\"prompt_tokens\":10,\
             \"completion_tokens\":5,\"latency_ms\":100{extra}}}\n"
        )
        .into_bytes()
    };
    let far = now_secs() + 3600;
    let hs256 = json!({"alg": "HS256", "typ": "JWT"});
    let with_token = |token: String| {
        request(
            "GET",
            "/api/threads",
            &[("Authorization", &format!("Bearer {token}"))],
            b"",
        )
    };
    let forged = {
        let good = signed(
            hs256.clone(),
            json!({"sub": "mallory", "exp": far}),
            SECRET.as_bytes(),
        );
        let (rest, _) = good.rsplit_once('.').unwrap();
        let claims = b64url(json!({"sub": "vera", "exp": far}).to_string().as_bytes());
        let head = rest.split('.').next().unwrap();
        format!("{head}.{claims}.{}", good.rsplit('.').next().unwrap())
    };
    let alg_none = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(json!({"sub": "vera", "exp": far}).to_string().as_bytes())
    );
    let frame = |text: String, code: &'static str| Probe::Frame { text, code };
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let cases = vec![
        // HTTP bodies.
        case("malformed UTF-8 in an upload", http(ndjson(b"{\"id\":\"\xff\xfe\"}\n"), 400, Some("bad_request"))),
        case("10,000-deep JSON array", http(json_body(deep.as_bytes()), 400, Some("bad_request"))),
        case("a 10 MB upload over the limit", http(ndjson(&vec![b'x'; 10 << 20]), 413, Some("too_large"))),
        case("a 10 MB CSP report", http(request("POST", "/api/csp-report", &[("Content-Type", "application/csp-report")], &vec![b'{'; 10 << 20]), 413, Some("too_large"))),
        case("a negative token count", http(ndjson(&row(",\"prompt_tokens\":-5")), 422, Some("invalid_rows"))),
        case("a token count of 10^30", http(ndjson(&row(",\"prompt_tokens\":1000000000000000000000000000000")), 422, Some("invalid_rows"))),
        case("a cost of 1e400", http(ndjson(&row(",\"cost_usd\":1e400")), 422, Some("invalid_rows"))),
        case("NaN as a number", http(ndjson(&row(",\"latency_ms\":NaN")), 422, Some("invalid_rows"))),
        case("a NUL in a field", http(ndjson(&row(",\"workload\":\"a\\u0000b\"")), 422, Some("invalid_rows"))),
        case("a date in the year 9999", http(ndjson(&row(",\"ts\":253402300799000")), 422, Some("invalid_rows"))),
        case("an unknown content type", http(request("POST", "/api/usage", &[("Authorization", &bearer), ("Content-Type", "application/x-evil")], b"x"), 415, Some("unsupported_media_type"))),
        case("an unknown export format", http(request("POST", "/api/usage?format=evil", &[("Authorization", &bearer), ("Content-Type", "application/x-ndjson")], b""), 400, Some("bad_request"))),
        case("an unknown deletion source", http(request("DELETE", "/api/usage?source=everyone", &auth, b""), 400, Some("bad_request"))),
        case("a 10 KB Idempotency-Key", http(request("POST", "/api/usage", &[("Authorization", &bearer), ("Content-Type", "application/x-ndjson"), ("Idempotency-Key", &"k".repeat(10_000))], &row("")), 400, Some("bad_request"))),
        // HTTP paths and queries.
        case("a page limit of 10^9", http(request("GET", "/api/threads?limit=1000000000", &auth, b""), 400, Some("bad_request"))),
        case("a negative after_seq", http(request("GET", &format!("/api/threads/{}/events?after_seq=-1", uuid::Uuid::new_v4()), &auth, b""), 400, Some("bad_request"))),
        case("a since that is no date", http(request("GET", "/api/usage/summary?since=yesterday", &auth, b""), 400, Some("bad_request"))),
        case("a traversal as a run id", http(request("GET", "/api/runs/..%2F..%2Fetc%2Fpasswd", &auth, b""), 404, Some("not_found"))),
        case("a traversal in an asset name", http(request("GET", "/assets/..%2F..%2FCargo.toml", &[], b""), 404, Some("not_found"))),
        case("a NUL in a path", http(request("GET", "/api/runs/%00", &auth, b""), 404, Some("not_found"))),
        case("a method a route does not take", http(request("PUT", "/api/threads", &auth, b""), 405, Some("method_not_allowed"))),
        case("TRACE on a route", http(request("TRACE", "/healthz", &[], b""), 405, Some("method_not_allowed"))),
        case("a path no route serves", http(request("GET", "/api/../../etc/passwd", &auth, b""), 404, Some("not_found"))),
        case("a cross-origin API call", http(request("GET", "/api/threads", &[("Authorization", &bearer), ("Origin", "https://evil.example")], b""), 403, Some("forbidden"))),
        case("a cross-origin upgrade", http(upgrade_from("https://evil.example", token), 403, Some("forbidden"))),
        case("a token in an API URL", http(request("GET", &format!("/api/threads?token={token}"), &[], b""), 401, Some("unauthorized"))),
        // Tokens.
        case("no token", http(request("GET", "/api/threads", &[], b""), 401, Some("unauthorized"))),
        case("a forged token (claims swapped)", http(with_token(forged), 401, Some("unauthorized"))),
        case("alg: none", http(with_token(alg_none), 401, Some("unauthorized"))),
        case("an expired token", http(with_token(signed(hs256.clone(), json!({"sub": "vera", "exp": 1_000_000}), SECRET.as_bytes())), 401, Some("unauthorized"))),
        case("a token not valid yet (nbf)", http(with_token(signed(hs256.clone(), json!({"sub": "vera", "exp": far, "nbf": far}), SECRET.as_bytes())), 401, Some("unauthorized"))),
        case("a token issued in the future (iat)", http(with_token(signed(hs256.clone(), json!({"sub": "vera", "exp": far + 86_400 * 365, "iat": far + 86_400 * 300}), SECRET.as_bytes())), 401, Some("unauthorized"))),
        case("a token signed with another secret", http(with_token(signed(hs256.clone(), json!({"sub": "vera", "exp": far}), b"another-secret-another-secret-another")), 401, Some("unauthorized"))),
        case("an HS512 token", http(with_token(signed(json!({"alg": "HS512", "typ": "JWT"}), json!({"sub": "vera", "exp": far}), SECRET.as_bytes())), 401, Some("unauthorized"))),
        case("a 1 MB token", http(with_token("a".repeat(1 << 20)), 431, None)),
        // Socket frames.
        case("a frame that is not JSON", frame("{\"type\":".into(), "bad_request")),
        case("a 10,000-deep frame", frame(deep.clone(), "bad_request")),
        case("an unknown frame type", frame(json!({"type": "sudo"}).to_string(), "bad_request")),
        case("a message of 16,385 characters", frame(json!({"type": "user_message", "content": "x".repeat(16_385)}).to_string(), "too_large")),
        case("a NUL in a message", frame(json!({"type": "user_message", "content": "a\u{0}b"}).to_string(), "bad_request")),
        case("a huge resume seq", frame(r#"{"type":"resume","after_seq":1e400}"#.into(), "bad_request")),
        case("a negative resume seq", frame(json!({"type": "resume", "after_seq": -1}).to_string(), "bad_request")),
        case("a thread id that is no uuid", frame(json!({"type": "user_message", "content": "hi", "thread_id": "../../x"}).to_string(), "bad_request")),
        case("an approval decision that is none", frame(json!({"type": "approval", "approval_id": "a", "decision": "maybe"}).to_string(), "bad_request")),
        // Frame-level violations.
        case("invalid UTF-8 in a text frame", Probe::Closes { frame: vec![0x81, 0x82, 0, 0, 0, 0, 0xff, 0xfe], code: 1007 }),
        case("a frame over 128 KiB", Probe::Closes { frame: oversized_frame(), code: 1009 }),
    ];
    cases
}

/// A masked text frame header announcing 128 KiB + 1 bytes (the payload need not follow).
fn oversized_frame() -> Vec<u8> {
    let mut frame = vec![0x81, 0x80 | 127];
    frame.extend_from_slice(&((128u64 << 10) + 1).to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend(std::iter::repeat_n(b'x', (128 << 10) + 1));
    frame
}

/// Vera's whole stored data, as her export gives it, but for the header line, which says
/// when the export was taken.
async fn export_of(app: &TestApp, user: &str) -> String {
    let (text, _) = crate::export::export_of(app, user).await;
    text.lines()
        .filter(|line| !line.starts_with("{\"kind\":\"export\""))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn hostile_inputs_get_their_documented_answers(db: TestDb) {
    let mut config = test_config(&db);
    config.max_upload_bytes = 1 << 20;
    config.message_burst = 3;
    config.read_frame_burst = 3;
    let app = TestApp::spawn_with(config).await;
    // Vera: usage stored and a run finished.
    let (status, _, _) = crate::usage::upload(
        &app,
        "vera",
        "application/x-ndjson",
        "",
        String::from_utf8(cases_row()).unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let mut vera = app.ws("vera").await;
    vera.recv().await;
    vera.say("where can I cut my LLM spend?").await;
    vera.recv_runs(1).await;
    let before = export_of(&app, "vera").await;

    let token = app.token("mallory");
    let mut socket = app.ws("mallory").await;
    socket.recv().await;
    let cases = cases(&token);
    assert!(cases.len() >= 40, "{} inputs", cases.len());
    let mut wrong = Vec::new();
    for case in cases {
        match case.probe {
            Probe::Http {
                request,
                status,
                code,
            } => {
                let (got, body) = exchange(&app, &request).await;
                let got_code = body["error"]["code"].as_str().map(str::to_owned);
                if got != status || code.is_some_and(|code| got_code.as_deref() != Some(code)) {
                    wrong.push(format!("{}: {got} {body}", case.what));
                }
            }
            Probe::Frame { text, code } => {
                socket.send_text(&text).await;
                let answer = socket.recv_until(|f| f["type"] == "error").await;
                let answer = answer.last().unwrap();
                if answer["code"] != code {
                    wrong.push(format!("{}: {answer}", case.what));
                }
                socket.ping_pong(case.what).await;
            }
            Probe::Closes { frame, code } => {
                let mut raw = SlowReader::open(app.addr, &token).await;
                raw.send_raw(&frame).await;
                let (_, closed) = raw.read_to_close().await;
                if closed != code {
                    wrong.push(format!("{}: closed {closed}", case.what));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "answers not as documented:\n{}",
        wrong.join("\n")
    );
    floods_are_rate_limited(&app).await;
    a_formula_reaches_the_report_escaped(&app).await;
    the_eleventh_socket_is_closed_4029(&app).await;

    // The server still serves, and vera's data is as it was.
    assert_eq!(app.get("/healthz", None).await.0, 200);
    vera.ping_pong("still here").await;
    assert!(before.lines().count() > 30, "vera has data to lose");
    assert!(
        export_of(&app, "vera").await == before,
        "vera's data changed"
    );
    app.stop().await;
}
on_both_backends!(hostile_inputs_get_their_documented_answers);

fn cases_row() -> Vec<u8> {
    b"{\"id\":\"v1\",\"ts\":1793527200000,\"model\":\"gpt-4o\",\"workload\":\"chat\",\
      \"prompt_tokens\":1000,\"completion_tokens\":50,\"latency_ms\":800}\n"
        .to_vec()
}

/// A flood of each frame type that costs the server work is cut off `rate_limited`: each on a
/// socket of its own, so no flood is answered by the refusals of the one before.
async fn floods_are_rate_limited(app: &TestApp) {
    let floods = [
        (
            "user_message",
            json!({"type": "user_message", "content": "flood"}),
        ),
        ("resume", json!({"type": "resume", "after_seq": 0})),
        (
            "cancel_run",
            json!({"type": "cancel_run", "run_id": uuid::Uuid::new_v4().to_string()}),
        ),
        (
            "approval",
            json!({"type": "approval", "approval_id": "a-1", "decision": "approve"}),
        ),
    ];
    for (kind, frame) in floods {
        let mut socket = app.ws("mallory").await;
        socket.recv().await;
        for _ in 0..30 {
            socket.send(frame.clone()).await;
        }
        // Refused by the socket itself (frames that cost a read) or by the session (messages).
        let answers = socket
            .recv_until(|f| f["type"] == "error" && f["code"] == "rate_limited")
            .await;
        assert!(!answers.is_empty(), "a flood of {kind}");
        socket.close().await;
    }
}

/// The eleventh socket of one user is closed with 4029 before it joins.
async fn the_eleventh_socket_is_closed_4029(app: &TestApp) {
    let mut held = Vec::new();
    for _ in 0..10 {
        let mut socket = app.ws("mona").await;
        socket.recv().await;
        held.push(socket);
    }
    let eleventh = SlowReader::open(app.addr, &app.token("mona")).await;
    assert_eq!(eleventh.read_to_close().await.1, 4029);
}

/// A CSV field opening with a formula (`=cmd|…`) is stored as text and reaches the report's
/// table escaped: no spreadsheet the table is pasted into runs it, and its `|` does not split
/// the row.
async fn a_formula_reaches_the_report_escaped(app: &TestApp) {
    let csv = "ts,model,workload,prompt_tokens,completion_tokens,latency_ms\n\
               1793527200000,gpt-4o,\"=cmd|' /C calc'!A0\",1000,50,800\n";
    let (status, answer, _) =
        crate::usage::upload(app, "fiona", "text/csv", "", csv.to_owned()).await;
    assert_eq!(status, 200, "{answer}");
    let mut socket = app.ws("fiona").await;
    socket.recv().await;
    socket.say("where can I cut my LLM spend?").await;
    let frames = socket.recv_runs(1).await;
    let report = frames.last().unwrap()["data"]["report_markdown"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(report.contains("| \\=cmd\\|' /C calc'\\!A0 |"), "{report}");
    assert!(!report.contains("| =cmd"), "{report}");
}
