//! `cancel_run`: a queued run is dropped from the queue, a running run's pending approval is
//! resolved `cancelled` and its supervisor stops its agent (which ends `agent_error`
//! `cancelled`) and reports back; either way the run ends
//! `run_cancelled` `user` and nothing of it follows. A finished run is a `conflict`, another
//! user's or a missing one `not_found`.

use actix::prelude::*;

use crate::context::{ConnectionId, RunId};
use crate::error::ErrorCode;
use crate::protocol::{ApprovalOutcome, FrameError};
use crate::runtime::run_supervisor::{Cancel, RunOutcome};
use crate::runtime::session::{RunPhase, UserSession};
use crate::store::repo;

impl UserSession {
    pub(super) fn cancel(
        &mut self,
        ctx: &mut Context<Self>,
        conn_id: ConnectionId,
        raw_id: String,
    ) {
        let not_found = |raw_id: &str| {
            FrameError::new(ErrorCode::NotFound, format!("run {raw_id:?} not found"))
                .with_ref(raw_id)
        };
        let finished = |raw_id: &str| {
            FrameError::new(
                ErrorCode::Conflict,
                format!("run {raw_id} has already finished"),
            )
            .with_ref(raw_id)
        };
        let Ok(run_id) = RunId::parse(&raw_id) else {
            return self.send_error(conn_id, not_found(&raw_id));
        };
        match self
            .runs
            .get(&run_id)
            .map(|run| (&run.phase, run.thread_id))
        {
            Some((RunPhase::Queued { .. }, thread_id)) => {
                self.push_run_end(
                    ctx,
                    run_id,
                    thread_id,
                    RunOutcome::Cancelled { reason: "user" },
                );
                self.promote(ctx);
                self.flush(ctx);
            }
            Some((RunPhase::Running { supervisor }, _)) => {
                let supervisor = supervisor.clone();
                if let Some(approval_id) = self.approval_of(run_id) {
                    self.resolve_approval(ctx, approval_id, ApprovalOutcome::Cancelled);
                }
                supervisor.do_send(Cancel { reason: "user" });
            }
            Some((RunPhase::Ending, _)) => self.send_error(conn_id, finished(&raw_id)),
            None => {
                let db = self.deps.db.clone();
                let user = self.user_id.clone();
                let lookup = async move {
                    db.read(move |conn| Ok(repo::runs::get(conn, &user, run_id)?.is_some()))
                        .await
                };
                ctx.spawn(lookup.into_actor(self).map(move |exists, act, _| {
                    let error = match exists {
                        Ok(true) => finished(&raw_id),
                        Ok(false) => not_found(&raw_id),
                        Err(e) => {
                            log::error!("user={} run lookup failed: {e}", act.user_id);
                            FrameError::new(
                                ErrorCode::Unavailable,
                                "storage unavailable; try again",
                            )
                            .with_ref(raw_id)
                        }
                    };
                    act.send_error(conn_id, error);
                }));
            }
        }
    }
}
