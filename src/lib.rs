//! enclave: a server for chat-style, multi-agent LLM-workload optimisation on actix actors.
//!
//! Layout (see ARCHITECTURE.md for the map and its invariants):
//! - `context`: validated ids and the per-request `UserContext`.
//! - `protocol`: the wire types of PROTOCOL.md; `error`: its error codes.
//! - `store`: diesel over SQLite and PostgreSQL, the write batch and the executor threads.
//! - `runtime`: the session registry, one `UserSession` per user, one `RunSupervisor` per run.
//! - `agents`: the `Agent` trait and the agents.
//! - `web`: HTTP routes, the WebSocket actor, auth and the `Server` builder.

pub mod agents;
pub mod analysis;
pub mod auth;
pub mod client;
pub mod clock;
pub mod config;
pub mod context;
pub mod error;
pub mod faults;
pub mod protocol;
pub mod runtime;
pub mod server;
pub mod store;
pub mod usage;
pub mod web;
