//! enclave: a server for chat-style, multi-agent LLM-workload optimisation on actix actors.
//!
//! Layout (see ARCHITECTURE.md for the map and its invariants):
//! - `context`: validated ids and the per-request `UserContext`.
//! - `protocol`: the wire types of PROTOCOL.md; `error`: its error codes.
//! - `store`: diesel over SQLite and PostgreSQL, the write batch and the executor threads.
//! - `runtime`: the session registry, one `UserSession` per user, one `RunSupervisor` per run.
//! - `agents`: the `Agent` trait and the agents.
//! - `analysis`: the price catalog and usage aggregates (pure); `usage`: upload parsing.
//! - `web`: HTTP routes, the WebSocket actor and auth; `server`: the `Server` builder.
//! - `loadtest`: the load client (`enclave loadtest`): simulated users that load and verify.

//!
//! # Embedding enclave with an agent of your own
//!
//! The runtime is a library: register agents in a [`runtime::pipeline::Pipeline`] and serve it
//! with [`server::Server`]. `main.rs` does exactly this with the standard pipeline.
//!
//! ```no_run
//! use enclave::agents::{Agent, AgentContext, AgentFuture, AgentInput, AgentOutput, RunAnswer};
//! use enclave::config::Config;
//! use enclave::runtime::pipeline::Pipeline;
//! use enclave::server::Server;
//! use serde_json::json;
//!
//! /// Answers every message with its length.
//! struct Counter;
//!
//! impl Agent for Counter {
//!     fn name(&self) -> &'static str {
//!         "counter"
//!     }
//!
//!     fn execute(&self, ctx: AgentContext, input: AgentInput) -> AgentFuture {
//!         Box::pin(async move {
//!             let n = input.message.chars().count();
//!             ctx.thinking(format!("counting {n} characters"));
//!             let answer = RunAnswer {
//!                 full_report_markdown: None,
//!                 summary: format!("Your message has {n} characters."),
//!                 report_markdown: format!("**{n}** characters"),
//!                 result: json!({ "characters": n }),
//!             };
//!             Ok(AgentOutput::result(json!({ "characters": n })).with_answer(answer))
//!         })
//!     }
//! }
//!
//! #[actix_web::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let config = Config::from_env()?;
//!     let server = Server::build(config, Pipeline::new().then(Counter)).await?;
//!     println!("listening on http://{}", server.addr());
//!     server.run_until_stopped().await?;
//!     Ok(())
//! }
//! ```

pub mod agents;
pub mod analysis;
pub mod auth;
pub mod client;
pub mod clock;
pub mod config;
pub mod context;
pub mod error;
pub mod faults;
pub mod ingest;
pub mod llm;
pub mod loadtest;
pub mod metrics;
pub mod protocol;
pub mod runtime;
pub mod server;
pub mod store;
pub mod usage;
pub mod web;
