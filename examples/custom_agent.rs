//! A server with an agent of its own, through enclave's public API (DESIGN.md §9).
//!
//! Run: `cargo run --example custom_agent`, then send any `user_message` over `/ws`: the
//! `word_count` agent answers after triage, with the usual event stream. Register more agents
//! with `.then(…)` (run in order) or `.also(…)` (run when a plan names them).

use enclave::agents::triage::Triage;
use enclave::agents::{Agent, AgentContext, AgentFuture, AgentInput, AgentOutput, RunAnswer};
use enclave::config::Config;
use enclave::runtime::pipeline::Pipeline;
use enclave::server::Server;
use serde_json::json;

/// Counts the words of the message and says which triage intent it got.
struct WordCount;

impl Agent for WordCount {
    fn name(&self) -> &'static str {
        "word_count"
    }

    fn execute(&self, ctx: AgentContext, input: AgentInput) -> AgentFuture {
        Box::pin(async move {
            let words = input.message.split_whitespace().count();
            let intent = input
                .results
                .get("triage")
                .and_then(|triage| triage.get("intent"))
                .and_then(|intent| intent.as_str())
                .unwrap_or("general")
                .to_owned();
            ctx.thinking(format!("{words} words, read as {intent}"));
            let answer = RunAnswer {
                full_report_markdown: None,
                summary: format!("{words} words; triage read it as {intent}."),
                report_markdown: format!(
                    "| words | intent |\n|---:|---|\n| {words} | {intent} |\n"
                ),
                result: json!({ "words": words, "intent": intent }),
            };
            Ok(AgentOutput::result(json!({ "words": words })).with_answer(answer))
        })
    }
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut config = Config::from_env()?;
    config.dev = true;
    // Triage would replan to the standard agents; this pipeline runs triage, then ours.
    let pipeline = Pipeline::new().then(TriageOnly).then(WordCount);
    let server = Server::build(config, pipeline).await?;
    println!(
        "listening on http://{} (dev tokens: POST /api/dev/token)",
        server.addr()
    );
    server.run_until_stopped().await?;
    Ok(())
}

/// Triage without its replanning, so the plan stays ours.
struct TriageOnly;

impl Agent for TriageOnly {
    fn name(&self) -> &'static str {
        "triage"
    }

    fn execute(&self, ctx: AgentContext, input: AgentInput) -> AgentFuture {
        let triage = Triage.execute(ctx, input);
        Box::pin(async move {
            let mut output = triage.await?;
            output.replan = None;
            Ok(output)
        })
    }
}
