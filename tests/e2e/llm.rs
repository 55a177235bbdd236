//! LLM providers against a real local HTTP server speaking the OpenAI chat completions API
//! (server-sent events): streamed tokens arrive as `agent_stream` in order; an error status, a
//! malformed stream and a hang past the call timeout each send the agents to their fallback,
//! and the run still completes.

use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

fn sse(deltas: &[&str]) -> String {
    let mut body = String::new();
    for delta in deltas {
        let event = json!({"choices":[{"index":0,"delta":{"content":delta}}]});
        body.push_str(&format!("data: {event}\n\n"));
    }
    body.push_str("data: [DONE]\n\n");
    body
}

/// The fake API: `/{mode}/v1/chat/completions`.
async fn completions(mode: web::Path<String>, body: web::Json<Value>) -> HttpResponse {
    let system = body["messages"][0]["content"].as_str().unwrap_or_default();
    let user = body["messages"][1]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(body["stream"], true);
    assert_eq!(body["model"], "fake-model");
    match mode.as_str() {
        "stream" => {
            let text = if system.contains("Classify") {
                sse(&["cost_", "optimization"])
            } else {
                // Echo the computed summary back in pieces: the same words, every number kept.
                let words: Vec<String> = user.split(' ').map(|w| format!("{w} ")).collect();
                let pieces: Vec<&str> = words.iter().map(String::as_str).collect();
                sse(&pieces)
            };
            HttpResponse::Ok()
                .content_type("text/event-stream")
                .body(text)
        }
        "error500" => HttpResponse::InternalServerError().body("boom"),
        "malformed" => HttpResponse::Ok()
            .content_type("text/event-stream")
            .body("data: {\"choices\": [\n\n"),
        _ => {
            actix_web::rt::time::sleep(Duration::from_secs(120)).await;
            HttpResponse::Ok().finish()
        }
    }
}

/// Starts the fake API on a free port; returns its address.
fn fake_llm() -> std::net::SocketAddr {
    let server = HttpServer::new(|| {
        App::new().route("/{mode}/v1/chat/completions", web::post().to(completions))
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = server.addrs()[0];
    actix_web::rt::spawn(server.run());
    addr
}

async fn run_with_llm(db: &TestDb, mode: &str) -> Vec<Value> {
    let llm = fake_llm();
    let mut config = test_config(db);
    config.llm_url = Some(format!("http://{llm}/{mode}/v1"));
    config.llm_model = "fake-model".into();
    config.llm_timeout = Duration::from_millis(500);
    let app = TestApp::spawn_with(config).await;
    let mut socket = app.ws("alice").await;
    socket.recv().await;
    // Worded so that the rules see no intent: only the LLM can say it is about cost.
    socket
        .say("what should I do about my invoices from the model vendor?")
        .await;
    let frames = socket.recv_runs(1).await;
    app.stop().await;
    frames
}

fn completed<'a>(frames: &'a [Value], agent: &str) -> &'a Value {
    frames
        .iter()
        .find(|f| f["type"] == "agent_completed" && f["agent"] == agent)
        .unwrap()
}

fn streamed(frames: &[Value], agent: &str) -> Vec<String> {
    frames
        .iter()
        .filter(|f| f["type"] == "agent_stream" && f["agent"] == agent)
        .map(|f| f["data"]["delta"].as_str().unwrap().to_owned())
        .collect()
}

async fn streamed_tokens_arrive_in_order(db: TestDb) {
    let frames = run_with_llm(&db, "stream").await;
    assert_eq!(streamed(&frames, "triage"), ["cost_", "optimization"]);
    let triage = completed(&frames, "triage");
    assert_eq!(triage["data"]["fallback"], false);
    assert_eq!(
        triage["data"]["result"]["intent"], "cost_optimization",
        "the LLM's label"
    );
    let end = frames.last().unwrap();
    assert_eq!(end["type"], "run_completed");
    let worded = streamed(&frames, "reporting").concat();
    assert!(!worded.is_empty());
    assert_eq!(end["data"]["summary"], worded.trim());
    assert_eq!(completed(&frames, "reporting")["data"]["fallback"], false);
    // Every stream event sits between its agent's start and completion.
    let started = frames
        .iter()
        .position(|f| f["type"] == "agent_started" && f["agent"] == "reporting")
        .unwrap();
    let done = frames
        .iter()
        .position(|f| f["type"] == "agent_completed" && f["agent"] == "reporting")
        .unwrap();
    let streams: Vec<usize> = frames
        .iter()
        .enumerate()
        .filter(|(_, f)| f["type"] == "agent_stream" && f["agent"] == "reporting")
        .map(|(i, _)| i)
        .collect();
    assert!(streams.iter().all(|i| started < *i && *i < done));
}
on_both_backends!(streamed_tokens_arrive_in_order);

async fn assert_fallback_run(frames: &[Value]) {
    let triage = completed(frames, "triage");
    assert_eq!(triage["data"]["fallback"], true);
    assert_eq!(
        triage["data"]["result"]["intent"], "general",
        "the rules' reading"
    );
    assert_eq!(completed(frames, "reporting")["data"]["fallback"], true);
    let end = frames.last().unwrap();
    assert_eq!(end["type"], "run_completed");
    assert!(!end["data"]["summary"].as_str().unwrap().is_empty());
    assert!(frames.iter().all(|f| f["type"] != "agent_error"));
}

async fn an_error_status_falls_back(db: TestDb) {
    assert_fallback_run(&run_with_llm(&db, "error500").await).await;
}
on_both_backends!(an_error_status_falls_back);

async fn a_malformed_stream_falls_back(db: TestDb) {
    assert_fallback_run(&run_with_llm(&db, "malformed").await).await;
}
on_both_backends!(a_malformed_stream_falls_back);

async fn a_hang_past_the_timeout_falls_back(db: TestDb) {
    assert_fallback_run(&run_with_llm(&db, "hang").await).await;
}
on_both_backends!(a_hang_past_the_timeout_falls_back);
