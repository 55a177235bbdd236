//! End-to-end tests: the real server on an ephemeral port, real WebSocket and HTTP clients,
//! each test on SQLite and on PostgreSQL (`ENCLAVE_TEST_PG_URL`).
//!
//! - `isolation`: users see only their own events, threads and runs.
//! - `stream`: identical, gapless sequences on every socket; resume; restart.
//! - `bad_input`: tokens, frames and fields refused with PROTOCOL.md's codes, nothing stored.
//! - `storage_faults`: events are never delivered before they are stored.
//! - `restart`: the real binary, stopped and started again on the same database.
//! - `cluster`, `cluster_load`: several nodes on one PostgreSQL database, with nginx in front
//!   (`balancer.rs`): followers, failover after kill -9, fencing after SIGSTOP, 300 users.

#![allow(clippy::unwrap_used)]
#![allow(clippy::indexing_slicing)]

mod balancer;
mod helpers;
mod hostile;
#[path = "../common/prometheus.rs"]
mod prometheus;

mod account;
mod address_limits;
mod approvals;
mod bad_input;
mod bulk;
mod client_bounds;
mod cluster;
mod cluster_load;
mod db_threads;
mod delivery;
mod edge;
mod event_size;
mod export;
mod http_api;
mod idempotency;
mod imports;
mod isolation;
mod liveness;
mod llm;
mod one_server;
mod optimize;
mod page;
mod passivation;
mod quota;
mod report;
mod restart;
mod retention;
mod runs;
mod server_cap;
mod storage_faults;
mod storage_outage;
mod stream;
mod supervision;
mod synthetic;
mod threads;
mod tokens;
mod tree;
mod typed_results;
mod unstorable;
mod upload_budget;
mod upload_keys;
mod usage;
mod usage_bounds;
