//! Graceful shutdown, in order: the server stops accepting connections and stops the signal
//! from killing it; the registry asks every session in memory to drain; each session refuses
//! new messages (`unavailable`), lets its runs finish for the grace period, then cancels the
//! rest (`run_cancelled` `shutdown`), waits until every event is stored and closes its sockets
//! with 1001 (`session/from_http.rs`); then the HTTP server stops, the housekeeper stops, the
//! writers settle, the lease is released (`server.rs`), and the process exits 0 with `_exit`
//! (`main.rs`: no C exit handlers racing the pools' threads).

use std::time::Duration;

use actix::prelude::*;
use actix_web::rt::signal::unix::{Signal, SignalKind, signal};

/// Finish (within `grace`) or cancel every run, store everything, close the sockets. Sent by
/// the server to the registry, and by the registry to every session.
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct Drain {
    /// How long runs may go on before they are cancelled.
    pub grace: Duration,
}

/// SIGTERM and SIGINT, watched from before the listener is bound: a signal that arrives while
/// the server starts drains it like any other instead of killing it.
pub struct ShutdownSignals(Option<(Signal, Signal)>);

impl ShutdownSignals {
    /// Starts watching both.
    pub fn watch() -> Self {
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Self(Some((term, int))),
            _ => {
                log::warn!("cannot watch for shutdown signals");
                Self(None)
            }
        }
    }

    /// Resolves on the first of them (never, if they could not be watched).
    pub async fn received(self) {
        let Some((mut term, mut int)) = self.0 else {
            return std::future::pending().await;
        };
        futures_util::future::select(Box::pin(term.recv()), Box::pin(int.recv())).await;
    }
}
