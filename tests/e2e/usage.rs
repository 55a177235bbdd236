//! Usage uploads in each format, their refusals, de-duplication, the one-upload-at-a-time
//! rule, the summary and deletion routes, and an analysis whose totals are worked out by hand.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

/// Four records; the spend by PROTOCOL.md §4 with the built-in catalog (per million tokens):
/// - a1 gpt-4o: 1,000 × 2.50 + 200 × 10.00 = 4,500 → $0.0045
/// - a2 gpt-4o: (2,000 − 1,000) × 2.50 + 1,000 × 1.25 + 100 × 10.00 = 4,750 → $0.00475
/// - a3 claude-3-5-haiku: its own cost_usd → $0.01
/// - a4 mystery-model: not in the catalog → tokens only, $0
///
/// Total: $0.01925 over 4 requests.
const NDJSON: &str = r#"{"id":"a1","ts":"2026-11-01T10:00:00Z","model":"gpt-4o","workload":"chat","prompt_tokens":1000,"completion_tokens":200,"latency_ms":800}
{"id":"a2","ts":1793527200000,"model":"gpt-4o","workload":"chat","prompt_tokens":2000,"completion_tokens":100,"cached_tokens":1000,"latency_ms":1200}
{"id":"a3","ts":"2026-11-01T12:00:00+02:00","model":"claude-3-5-haiku","workload":"batch","prompt_tokens":500,"completion_tokens":500,"latency_ms":3000,"cost_usd":0.01,"interactive":false}
{"id":"a4","ts":"2026-11-01T13:00:00Z","model":"mystery-model","prompt_tokens":100,"completion_tokens":100,"latency_ms":100,"status":"error"}
"#;
const CSV: &str = "id,ts,model,workload,prompt_tokens,completion_tokens,cached_tokens,latency_ms,cost_usd,interactive,status\n\
a1,2026-11-01T10:00:00Z,gpt-4o,chat,1000,200,,800,,,\n\
a2,1793527200000,gpt-4o,chat,2000,100,1000,1200,,,\n\
a3,2026-11-01T12:00:00+02:00,claude-3-5-haiku,batch,500,500,,3000,0.01,false,\n\
a4,2026-11-01T13:00:00Z,mystery-model,,100,100,,100,,,error\n";
const TOTAL_SPEND: f64 = 0.0045 + 0.00475 + 0.01;

fn json_array() -> String {
    let rows: Vec<Value> = NDJSON
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    Value::Array(rows).to_string()
}

pub async fn upload(
    app: &TestApp,
    user: &str,
    content_type: &str,
    query: &str,
    body: String,
) -> (u16, Value, Option<String>) {
    let mut resp = awc::Client::default()
        .post(app.http(&format!("/api/usage{query}")))
        .insert_header(("Authorization", format!("Bearer {}", app.token(user))))
        .insert_header(("Content-Type", content_type))
        .send_body(body)
        .await
        .unwrap();
    let retry_after = resp
        .headers()
        .get("Retry-After")
        .map(|v| v.to_str().unwrap().to_owned());
    let status = resp.status().as_u16();
    let body = resp.body().limit(1 << 20).await.unwrap();
    (
        status,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
        retry_after,
    )
}

async fn summary_of(app: &TestApp, user: &str) -> Value {
    let (status, summary) = app.get("/api/usage/summary", Some(&app.token(user))).await;
    assert_eq!(status, 200);
    summary
}

fn assert_close(actual: &Value, expected: f64) {
    let actual = actual.as_f64().unwrap();
    assert!((actual - expected).abs() < 1e-12, "{actual} != {expected}");
}

async fn every_format_uploads_and_analyses_by_hand(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let uploads = [
        ("nd", "application/x-ndjson", NDJSON.to_owned()),
        ("csv", "text/csv", CSV.to_owned()),
        ("arr", "application/json", json_array()),
    ];
    for (user, content_type, body) in uploads {
        let (status, answer, _) = upload(&app, user, content_type, "", body.clone()).await;
        assert_eq!(status, 200, "{user}: {answer}");
        assert_eq!(
            answer,
            json!({"accepted":4,"rejected":0,"duplicates":0}),
            "{user}"
        );
        let summary = summary_of(&app, user).await;
        assert_eq!(summary["totals"]["requests"], 4, "{user}");
        assert_close(&summary["totals"]["spend_usd"], TOTAL_SPEND);
        assert_eq!(summary["unpriced_models"], json!(["mystery-model"]));
        // Uploading the same file again adds nothing.
        let (status, again, _) = upload(&app, user, content_type, "", body).await;
        assert_eq!(status, 200);
        assert_eq!(
            again,
            json!({"accepted":0,"rejected":0,"duplicates":4}),
            "{user}"
        );
        assert_eq!(summary_of(&app, user).await["totals"]["requests"], 4);
    }

    // "analyse my usage" reports the same totals, computed from this user's records only.
    let mut socket = app.ws("nd").await;
    socket.recv().await;
    socket.say("analyse my usage").await;
    let frames = socket.recv_runs(1).await;
    let end = frames.last().unwrap();
    assert_eq!(end["type"], "run_completed");
    let result = &end["data"]["result"];
    assert_eq!(result["intent"], "workload_analysis");
    assert_eq!(result["totals"]["requests"], 4);
    assert_close(&result["totals"]["spend_usd"], TOTAL_SPEND);
    assert_eq!(result["data_sufficiency"], "partial");
    let gpt = result["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["model"] == "gpt-4o")
        .unwrap();
    assert_eq!(gpt["requests"], 2);
    assert_close(&gpt["spend_usd"], 0.0045 + 0.00475);
    // Nearest-rank over [800, 1200]: p50 is 800, p95 and p99 are 1200.
    assert_eq!(
        (
            gpt["latency_p50_ms"].as_i64(),
            gpt["latency_p95_ms"].as_i64()
        ),
        (Some(800), Some(1200))
    );
    let report = end["data"]["report_markdown"].as_str().unwrap();
    assert!(report.contains("| gpt-4o | chat | 2 |"), "{report}");
    assert!(report.contains("mystery-model"));
    // The agents ran in plan order, the data agent through its tool.
    let steps: Vec<String> = frames
        .iter()
        .filter(|f| f.get("agent").is_some())
        .map(|f| {
            format!(
                "{}:{}",
                f["agent"].as_str().unwrap(),
                f["type"].as_str().unwrap()
            )
        })
        .filter(|s| !s.ends_with("agent_thinking"))
        .collect();
    assert_eq!(
        steps,
        [
            "triage:agent_started",
            "triage:agent_completed",
            "data:agent_started",
            "data:tool_executing",
            "data:tool_completed",
            "data:agent_completed",
            "reporting:agent_started",
            "reporting:agent_completed",
        ]
    );
    let data_done = frames
        .iter()
        .find(|f| f["type"] == "tool_completed")
        .unwrap();
    assert_eq!(data_done["data"]["ok"], true);
    assert_eq!(data_done["data"]["output"]["requests"], 4);

    // The report route serves the same markdown.
    let run_id = end["run_id"].as_str().unwrap();
    let mut resp = awc::Client::default()
        .get(app.http(&format!("/api/reports/{run_id}.md")))
        .insert_header(("Authorization", format!("Bearer {}", app.token("nd"))))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/markdown")
    );
    assert_eq!(resp.body().await.unwrap(), report.as_bytes());
    let (status, _) = app
        .get(
            &format!("/api/reports/{run_id}.md"),
            Some(&app.token("csv")),
        )
        .await;
    assert_eq!(status, 404, "another user's report");
    app.stop().await;
}
on_both_backends!(every_format_uploads_and_analyses_by_hand);

async fn bad_rows_store_nothing_unless_partial(db: TestDb) {
    let mut config = test_config(&db);
    config.max_upload_bytes = 4096;
    let app = TestApp::spawn_with(config).await;
    let bad = CSV.replace(
        "a2,1793527200000,gpt-4o,chat,2000,",
        "a2,yesterday,gpt-4o,chat,lots,",
    );
    let (status, answer, _) = upload(&app, "alice", "text/csv", "", bad.clone()).await;
    assert_eq!(status, 422);
    assert_eq!(answer["error"]["code"], "invalid_rows");
    assert_eq!(
        answer["error"]["details"],
        json!([
            {"row":2,"field":"ts","reason":"must be epoch milliseconds or RFC 3339, got \"yesterday\""},
            {"row":2,"field":"prompt_tokens","reason":"must be a whole number, got \"lots\""}
        ])
    );
    assert_eq!(
        summary_of(&app, "alice").await["totals"]["requests"],
        0,
        "nothing stored"
    );

    let (status, answer, _) = upload(&app, "alice", "text/csv", "?partial=true", bad).await;
    assert_eq!(status, 200);
    assert_eq!(answer["accepted"], 3);
    assert_eq!(answer["rejected"], 1);
    assert_eq!(answer["duplicates"], 0);
    assert_eq!(answer["details"].as_array().unwrap().len(), 2);
    assert_eq!(summary_of(&app, "alice").await["totals"]["requests"], 3);

    let (status, answer, _) = upload(&app, "alice", "text/plain", "", "x".into()).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (415, json!("unsupported_media_type"))
    );
    let (status, answer, _) = upload(
        &app,
        "alice",
        "application/json",
        "",
        "{\"not\":\"an array\"}".into(),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (400, json!("bad_request"))
    );
    let (status, answer, _) =
        upload(&app, "alice", "application/x-ndjson", "", NDJSON.repeat(20)).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (413, json!("too_large"))
    );
    let (status, _, _) = upload(&app, "alice", "text/csv", "", "ts,model\n".into()).await;
    assert_eq!(status, 200, "a header alone is an empty upload");

    // Deleting by source.
    let client = awc::Client::default();
    let mut resp = client
        .delete(app.http("/api/usage?source=synthetic"))
        .insert_header(("Authorization", format!("Bearer {}", app.token("alice"))))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"deleted":0}));
    let mut resp = client
        .delete(app.http("/api/usage?source=all"))
        .insert_header(("Authorization", format!("Bearer {}", app.token("alice"))))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"deleted":3}));
    let resp = client
        .delete(app.http("/api/usage?source=everything"))
        .insert_header(("Authorization", format!("Bearer {}", app.token("alice"))))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(summary_of(&app, "alice").await["totals"]["requests"], 0);
    app.stop().await;
}
on_both_backends!(bad_rows_store_nothing_unless_partial);

async fn one_upload_at_a_time_per_user(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    // The first upload sends its head and part of its body over a plain TCP socket, then
    // holds. Probes (a malformed body: 400 and nothing stored when they get the slot) run
    // until one is refused; a probe that beat the first to the slot makes the first answer
    // 429 itself, and the round starts again.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let head = format!(
        "POST /api/usage HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        app.addr,
        app.token("alice"),
        NDJSON.len()
    );
    let (part, rest) = NDJSON.split_at(NDJSON.find('\n').unwrap() + 1);
    let mut held = None;
    'rounds: for _ in 0..50 {
        let mut first = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        first.write_all(head.as_bytes()).await.unwrap();
        first.write_all(part.as_bytes()).await.unwrap();
        for _ in 0..500 {
            let (status, body, retry) =
                upload(&app, "alice", "application/json", "", "[".into()).await;
            if status == 429 {
                held = Some((first, body, retry));
                break 'rounds;
            }
            assert_eq!(status, 400);
            let mut peek = [0u8; 1];
            if !matches!(first.try_read(&mut peek), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            {
                continue 'rounds;
            }
            tokio::task::yield_now().await;
        }
    }
    let (mut first, body, retry_after) = held.expect("a second upload is refused while one runs");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(retry_after.as_deref(), Some("2"));
    // Another user is not held up.
    let (status, _, _) = upload(&app, "bob", "application/x-ndjson", "", NDJSON.into()).await;
    assert_eq!(status, 200);

    first.write_all(rest.as_bytes()).await.unwrap();
    let mut response = String::new();
    first.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(summary_of(&app, "alice").await["totals"]["requests"], 4);
    // The slot is free again.
    let (status, answer, _) =
        upload(&app, "alice", "application/x-ndjson", "", NDJSON.into()).await;
    assert_eq!((status, answer["duplicates"].clone()), (200, json!(4)));
    app.stop().await;
}
on_both_backends!(one_upload_at_a_time_per_user);

async fn no_data_gets_a_helpful_answer(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let mut socket = app.ws("alice").await;
    socket.recv().await;
    socket.say("analyse my usage").await;
    let frames = socket.recv_runs(1).await;
    let end = frames.last().unwrap();
    assert_eq!(end["type"], "run_completed");
    assert_eq!(end["data"]["result"]["data_sufficiency"], "none");
    assert_eq!(end["data"]["result"]["missing"], json!(["usage_records"]));
    assert!(
        end["data"]["summary"]
            .as_str()
            .unwrap()
            .contains("POST /api/usage")
    );
    let agents: Vec<&str> = frames
        .iter()
        .filter(|f| f["type"] == "agent_completed")
        .map(|f| f["agent"].as_str().unwrap())
        .collect();
    assert_eq!(agents, ["triage", "data", "reporting"]);

    // Asked to optimise, the plan stops after the data agent finds nothing, and the answer
    // names what is missing instead of failing.
    socket
        .say("cut my LLM costs by 30% without hurting p95 latency")
        .await;
    let frames = socket.recv_runs(1).await;
    let end = frames.last().unwrap();
    assert_eq!(end["type"], "run_completed");
    assert_eq!(end["data"]["result"]["intent"], "cost_optimization");
    assert_eq!(end["data"]["result"]["missing"], json!(["usage_records"]));
    assert!(
        end["data"]["summary"]
            .as_str()
            .unwrap()
            .contains("synthetic data")
    );
    let agents: Vec<&str> = frames
        .iter()
        .filter(|f| f["type"] == "agent_completed")
        .map(|f| f["agent"].as_str().unwrap())
        .collect();
    assert_eq!(agents, ["triage", "goals_triage", "data", "reporting"]);
    app.stop().await;
}
on_both_backends!(no_data_gets_a_helpful_answer);

async fn a_fixture_catalog_reprices_old_records(db: TestDb) {
    let dir =
        std::env::temp_dir().join(format!("enclave-prices-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let prices = dir.join("prices.json");
    std::fs::write(
        &prices,
        r#"{"as_of":"2030-01-01","currency":"USD","models":[
            {"model":"gpt-4o","input_per_mtok":1.0,"output_per_mtok":2.0,"cached_input_per_mtok":0.5},
            {"model":"mystery-model","input_per_mtok":10.0,"output_per_mtok":10.0}]}"#,
    )
    .unwrap();
    let app = TestApp::spawn(&db).await;
    let (status, _, _) = upload(&app, "alice", "application/x-ndjson", "", NDJSON.into()).await;
    assert_eq!(status, 200);
    let before = summary_of(&app, "alice").await;
    assert_close(&before["totals"]["spend_usd"], TOTAL_SPEND);
    app.stop().await;

    // The same stored records under another catalog (records without cost_usd are priced at
    // analysis time):
    // a1: 1,000 × 1 + 200 × 2 = 1,400; a2: 1,000 × 1 + 1,000 × 0.5 + 100 × 2 = 1,700;
    // a3: its own $0.01; a4: 100 × 10 + 100 × 10 = 2,000 → $0.0014 + $0.0017 + $0.01 + $0.002.
    let mut config = test_config(&db);
    config.prices_path = Some(prices.display().to_string());
    let app = TestApp::spawn_with(config).await;
    let after = summary_of(&app, "alice").await;
    assert_close(
        &after["totals"]["spend_usd"],
        0.0014 + 0.0017 + 0.01 + 0.002,
    );
    assert_eq!(after["catalog_as_of"], "2030-01-01");
    assert_eq!(after["unpriced_models"], json!([]));
    app.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
on_both_backends!(a_fixture_catalog_reprices_old_records);

/// `?check=true` reads and checks an upload as a real one would be, answers what would be
/// stored and stores nothing — the page checks every part of a big file this way before it
/// stores any; `GET /api/limits` names the upload limit the page cuts files to.
async fn a_check_reads_the_rows_and_stores_nothing(db: TestDb) {
    let mut config = test_config(&db);
    config.max_upload_bytes = 4096;
    let app = TestApp::spawn_with(config).await;
    let (status, answer, _) = upload(
        &app,
        "alice",
        "application/x-ndjson",
        "?check=true",
        NDJSON.into(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"accepted":4,"rejected":0,"duplicates":0,"checked":true})
    );
    assert_eq!(summary_of(&app, "alice").await["totals"]["requests"], 0);

    let bad = CSV.replace("a2,1793527200000,", "a2,yesterday,");
    let (status, answer, _) = upload(&app, "alice", "text/csv", "?check=true", bad.clone()).await;
    assert_eq!(status, 422);
    assert_eq!(
        answer["error"]["details"],
        json!([{"row":2,"field":"ts","reason":"must be epoch milliseconds or RFC 3339, got \"yesterday\""}])
    );
    let (status, answer, _) =
        upload(&app, "alice", "text/csv", "?check=true&partial=true", bad).await;
    assert_eq!(status, 200);
    assert_eq!(
        (&answer["accepted"], &answer["rejected"], &answer["checked"]),
        (&json!(3), &json!(1), &json!(true))
    );
    assert_eq!(answer["details"].as_array().unwrap().len(), 1);
    assert_eq!(summary_of(&app, "alice").await["totals"]["requests"], 0);
    let (status, answer, _) = upload(
        &app,
        "alice",
        "application/x-ndjson",
        "?check=true",
        NDJSON.repeat(20),
    )
    .await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (413, &json!("too_large"))
    );

    // A check under an idempotency key does not use the key up.
    let keyed = |query: &str| {
        awc::Client::default()
            .post(app.http(&format!("/api/usage{query}")))
            .insert_header(("Authorization", format!("Bearer {}", app.token("alice"))))
            .insert_header(("Content-Type", "application/x-ndjson"))
            .insert_header(("Idempotency-Key", "part-1"))
            .send_body(NDJSON)
    };
    let checked: Value = keyed("?check=true").await.unwrap().json().await.unwrap();
    assert_eq!(checked["checked"], true);
    let stored: Value = keyed("").await.unwrap().json().await.unwrap();
    assert_eq!(stored, json!({"accepted":4,"rejected":0,"duplicates":0}));
    assert_eq!(summary_of(&app, "alice").await["totals"]["requests"], 4);

    let (status, limits) = app.get("/api/limits", Some(&app.token("alice"))).await;
    assert_eq!(status, 200);
    assert_eq!(limits["max_upload_bytes"], 4096);
    assert_eq!(
        limits["max_content_chars"],
        test_config(&db).max_content_chars
    );
    assert!(limits["max_message_bytes"].as_u64().unwrap() > 0);
    assert!(limits["max_records_per_user"].as_u64().unwrap() > 0);
    let (status, _) = app.get("/api/limits", None).await;
    assert_eq!(status, 401);
    app.stop().await;
}
on_both_backends!(a_check_reads_the_rows_and_stores_nothing);
