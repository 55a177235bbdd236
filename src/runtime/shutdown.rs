//! Graceful shutdown, in order: the server stops accepting connections and stops the signal
//! from killing it; the registry asks every session in memory to drain; each session refuses
//! new messages (`unavailable`), lets its runs finish for the grace period, then cancels the
//! rest (`run_cancelled` `shutdown`), waits until every event is stored and closes its sockets
//! with 1001 (`session/from_http.rs`); then the HTTP server stops and the process exits 0.

use std::time::Duration;

use actix::prelude::*;

/// Finish (within `grace`) or cancel every run, store everything, close the sockets. Sent by
/// the server to the registry, and by the registry to every session.
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct Drain {
    /// How long runs may go on before they are cancelled.
    pub grace: Duration,
}
