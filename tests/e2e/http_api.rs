//! The HTTP routes of PROTOCOL.md §3 served so far: health, readiness, dev tokens, threads,
//! thread events with paging, runs, and their error shapes.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

async fn post(app: &TestApp, path: &str, body: &str) -> (u16, Value) {
    let mut resp = awc::Client::default()
        .post(app.http(path))
        .insert_header(("Content-Type", "application/json"))
        .send_body(body.to_owned())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.body().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn health_readiness_and_errors(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    assert_eq!(
        app.get("/healthz", None).await,
        (200, json!({"status":"ok"}))
    );
    assert_eq!(
        app.get("/readyz", None).await,
        (200, json!({"status":"ready"}))
    );
    let (status, body) = app.get("/api/nothing-here", None).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    // Every error names the server's log line for it (PROTOCOL.md §3).
    let id = body["error"]["id"].as_str().unwrap_or_default();
    assert_eq!(id.len(), 32, "{body}");
    assert_eq!(body["error"]["details"], json!([]));
    let token = app.token("alice");
    let (status, body) = app.get("/api/runs/not-a-uuid", Some(&token)).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!("not_found"))
    );
    let unknown = uuid::Uuid::new_v4();
    let (status, _) = app
        .get(&format!("/api/threads/{unknown}/events"), Some(&token))
        .await;
    assert_eq!(status, 404);
    // A secret is configured and --dev is off: no dev tokens.
    let (status, body) = post(&app, "/api/dev/token", r#"{"user":"alice"}"#).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!("not_found"))
    );
    app.stop().await;
}
on_both_backends!(health_readiness_and_errors);

async fn dev_mode_hands_out_working_tokens(db: TestDb) {
    let mut config = test_config(&db);
    config.jwt_secrets = Vec::new();
    let app = TestApp::spawn_with(config).await;
    let (status, body) = post(&app, "/api/dev/token", r#"{"user":"alice"}"#).await;
    assert_eq!(status, 200);
    let token = body["token"].as_str().unwrap().to_owned();
    let mut socket = WsClient::connect(&format!("ws://{}/ws?token={token}", app.addr))
        .await
        .unwrap();
    assert_eq!(socket.recv().await["user_id"], "alice");
    // Tokens signed with the test secret mean nothing to a dev-mode server.
    let (status, _) = app.get("/api/threads", Some(&app.token("alice"))).await;
    assert_eq!(status, 401);
    for bad in [
        "not json",
        r#"{"name":"alice"}"#,
        r#"{"user":"null"}"#,
        r#"{"user":""}"#,
    ] {
        let (status, body) = post(&app, "/api/dev/token", bad).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["error"]["code"], "bad_request", "{bad}");
    }
    app.stop().await;
}
on_both_backends!(dev_mode_hands_out_working_tokens);

async fn thread_events_page_and_runs_report(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let mut socket = app.ws("alice").await;
    socket.recv().await;
    socket.say("analyse my usage for gpt-4o").await;
    let frames = sequenced(&socket.recv_runs(1).await);
    let thread_id = frames[0]["thread_id"].as_str().unwrap().to_owned();
    let run_id = frames.last().unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = app.token("alice");

    // Paging through the thread's events two at a time yields exactly the live stream.
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let (status, page) = app
            .get(
                &format!("/api/threads/{thread_id}/events?after_seq={after}&limit=2"),
                Some(&token),
            )
            .await;
        assert_eq!(status, 200);
        paged.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next_after_seq"].as_i64() {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(paged, frames);
    for bad in ["limit=0", "limit=1001", "after_seq=-1", "limit=ten"] {
        let (status, body) = app
            .get(
                &format!("/api/threads/{thread_id}/events?{bad}"),
                Some(&token),
            )
            .await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["error"]["code"], "bad_request");
    }

    let (status, threads) = app.get("/api/threads", Some(&token)).await;
    assert_eq!(status, 200);
    let thread = &threads["threads"][0];
    assert_eq!(thread["thread_id"], thread_id.as_str());
    assert_eq!(thread["title"], "analyse my usage for gpt-4o");
    assert_eq!(thread["last_run_status"], "completed");

    let (status, run) = app.get(&format!("/api/runs/{run_id}"), Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(run["status"], "completed");
    assert_eq!(run["result"]["intent"], "workload_analysis");
    let triage = frames
        .iter()
        .find(|f| f["type"] == "agent_completed" && f["agent"] == "triage")
        .unwrap();
    assert_eq!(
        triage["data"]["result"]["entities"]["models"],
        json!(["gpt-4o"])
    );
    assert_eq!(
        run["report_markdown"],
        frames.last().unwrap()["data"]["report_markdown"]
    );
    assert!(run["started_at"].as_i64().unwrap() <= run["finished_at"].as_i64().unwrap());
    app.stop().await;
}
on_both_backends!(thread_events_page_and_runs_report);
