//! A stand-in for the LLM provider: a real local HTTP server speaking the OpenAI chat
//! completions API with streamed (server-sent event) answers. Triage's classification is
//! answered at once; any other call (the reporting agent's wording) streams a first word,
//! then waits until the test opens the gate before it streams the rest (the computed summary
//! echoed word by word) — a run held mid-way for as long as the test needs, with no timing
//! involved.

use std::convert::Infallible;

use actix_web::web::{self, Bytes};
use actix_web::{App, HttpResponse, HttpServer};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::watch;

/// The first word of every held answer.
pub const HELD_WORD: &str = "Drafting:";

/// The fake provider; dropped with the test.
pub struct FakeLlm {
    addr: std::net::SocketAddr,
    gate: watch::Sender<bool>,
    held: watch::Receiver<usize>,
}

struct Shared {
    gate: watch::Receiver<bool>,
    held: watch::Sender<usize>,
}

fn event(delta: &str) -> String {
    let chunk = json!({"choices":[{"index":0,"delta":{"content":delta}}]});
    format!("data: {chunk}\n\n")
}

async fn completions(shared: web::Data<Shared>, body: web::Json<Value>) -> HttpResponse {
    let system = body["messages"][0]["content"].as_str().unwrap_or_default();
    let user = body["messages"][1]["content"].as_str().unwrap_or_default();
    if system.contains("Classify") {
        return HttpResponse::Ok()
            .content_type("text/event-stream")
            .body(format!("{}data: [DONE]\n\n", event("cost_optimization")));
    }
    let first = event(&format!("{HELD_WORD} "));
    let rest: String = user
        .split(' ')
        .map(|word| event(&format!("{word} ")))
        .chain(["data: [DONE]\n\n".to_owned()])
        .collect();
    shared.held.send_modify(|held| *held += 1);
    let mut gate = shared.gate.clone();
    let body = futures_util::stream::once(async move { Ok::<_, Infallible>(Bytes::from(first)) })
        .chain(futures_util::stream::once(async move {
            // Held until the test opens the gate (or the fake goes away with it).
            let _ = gate.wait_for(|open| *open).await;
            Ok(Bytes::from(rest))
        }));
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(body)
}

impl FakeLlm {
    /// Starts the fake on a free loopback port, its gate shut.
    pub fn start() -> Self {
        let (gate, gate_rx) = watch::channel(false);
        let (held_tx, held) = watch::channel(0);
        let shared = web::Data::new(Shared {
            gate: gate_rx,
            held: held_tx,
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .route("/v1/chat/completions", web::post().to(completions))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .unwrap();
        let addr = server.addrs()[0];
        actix_web::rt::spawn(server.run());
        Self { addr, gate, held }
    }

    /// The server's environment for this provider (its calls may wait as long as the test
    /// holds them).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ENCLAVE_LLM_URL", format!("http://{}/v1", self.addr)),
            ("ENCLAVE_LLM_MODEL", "fake-model".to_owned()),
            ("ENCLAVE_LLM_TIMEOUT_MS", "300000".to_owned()),
            ("ENCLAVE_AGENT_TIMEOUT_MS", "300000".to_owned()),
        ]
    }

    /// Waits (bounded) until `count` answers are being held (or were).
    pub async fn held(&mut self, count: usize) {
        tokio::time::timeout(
            crate::harness::PAGE_WAIT,
            self.held.wait_for(|held| *held >= count),
        )
        .await
        .unwrap_or_else(|_| panic!("the LLM was not called {count} times"))
        .unwrap();
    }

    /// Lets every held answer, and every later one, finish.
    pub fn open(&self) {
        self.gate.send_replace(true);
    }
}
