//! Graceful shutdown, in order: the server stops accepting connections and stops the signal
//! from killing it; the registry asks every session in memory to drain; each session refuses
//! new messages (`unavailable`), lets its runs finish for the grace period, then cancels the
//! rest (`run_cancelled` `shutdown`), waits until every event is stored and closes its sockets
//! with 1001; then the HTTP server stops and the process exits 0.

use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::error::ErrorCode;
use crate::protocol::{ApprovalOutcome, FrameError};
use crate::runtime::run_supervisor::{Cancel, RunOutcome};
use crate::runtime::session::{RunPhase, UserSession};
use crate::runtime::socket::{Outbound, close_code};

/// Finish (within `grace`) or cancel every run, store everything, close the sockets.
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct Drain {
    pub grace: Duration,
}

pub(super) fn shutting_down() -> FrameError {
    FrameError::new(
        ErrorCode::Unavailable,
        "the server is shutting down; reconnect in a moment and send it again",
    )
}

impl UserSession {
    /// Once draining and nothing is left in flight: close the sockets and report drained.
    pub(super) fn check_drained(&mut self) {
        if self.drained.is_empty()
            || !self.runs.is_empty()
            || !self.pending.is_empty()
            || self.writing
        {
            return;
        }
        for socket in self.sockets.values() {
            socket.outbound.do_send(Outbound::Close {
                code: close_code::GOING_AWAY,
                reason: "server shutting down",
            });
        }
        for drained in self.drained.drain(..) {
            let _ = drained.send(());
        }
    }

    /// The grace period is over: cancel what still runs.
    fn cancel_all(&mut self, ctx: &mut Context<Self>) {
        let live: Vec<_> = self.runs.keys().copied().collect();
        for run_id in live {
            let Some(run) = self.runs.get(&run_id) else {
                continue;
            };
            let thread_id = run.thread_id;
            match &run.phase {
                RunPhase::Queued { .. } => {
                    let outcome = RunOutcome::Cancelled { reason: "shutdown" };
                    self.push_run_end(ctx, run_id, thread_id, outcome);
                }
                RunPhase::Running { supervisor } => {
                    let supervisor = supervisor.clone();
                    if let Some(approval_id) = self.approval_of(run_id) {
                        self.resolve_approval(ctx, approval_id, ApprovalOutcome::Cancelled);
                    }
                    supervisor.do_send(Cancel { reason: "shutdown" });
                }
                RunPhase::Ending => {}
            }
        }
        self.flush(ctx);
    }
}

impl Handler<Drain> for UserSession {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: Drain, ctx: &mut Context<Self>) -> Self::Result {
        self.draining = true;
        for (conn_id, _) in std::mem::take(&mut self.admission_queue) {
            self.send_error(conn_id, shutting_down());
        }
        ctx.run_later(msg.grace, |act, ctx| act.cancel_all(ctx));
        let (drained, done) = oneshot::channel();
        self.drained.push(drained);
        self.check_drained();
        Box::pin(
            async move {
                let _ = done.await;
            }
            .into_actor(self),
        )
    }
}
