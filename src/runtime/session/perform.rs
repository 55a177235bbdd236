//! The session's effects: each `Effect` the core leaves becomes a write, a frame, a read, a
//! slot request, or a message to a child. The database answers come back through
//! `read_then` and `write` (`storage.rs`) into the core, whose new effects are performed in
//! turn.

use std::sync::Arc;

use actix::prelude::*;

use super::UserSession;
use super::core::{Effect, StoredMessage};
use crate::context::ConnectionId;
use crate::protocol::UserMessage;
use crate::runtime::attempt_timer::{PauseAttemptTimer, ResumeAttemptTimer};
use crate::runtime::refusal::Refusal;
use crate::runtime::run_slots::Release;
use crate::runtime::run_supervisor::Cancel;
use crate::runtime::socket::close_code;
use crate::store::batch::WriteBatch;
use crate::store::repo;

impl UserSession {
    /// Performs what the core decided, in order.
    pub(super) fn perform(&mut self, ctx: &mut Context<Self>) {
        for effect in self.core.take_effects() {
            match effect {
                Effect::Write(batch) => {
                    let lease = self.lease;
                    self.write(ctx, WriteBatch { lease, ..batch }, 0)
                }
                Effect::Rest(backoff) => {
                    ctx.run_later(backoff, |act, ctx| {
                        act.core.rested();
                        act.perform(ctx);
                    });
                }
                Effect::Broadcast(frames) => self.sockets.broadcast(&frames),
                Effect::Send(conn_id, frame) => self.answer(conn_id, Arc::from(vec![frame])),
                Effect::Refuse(conn_id, error) => self.answer_error(conn_id, error),
                Effect::LookUpMessageId { conn_id, message } => {
                    self.look_up_message_id(ctx, conn_id, message)
                }
                Effect::LookUpThread {
                    conn_id,
                    message,
                    thread_id,
                } => {
                    let read = move |conn: &mut _, user: &_| {
                        Ok(repo::threads::is_owned(conn, user, thread_id)?)
                    };
                    self.read_then(ctx, "thread lookup", read, move |act, ctx, owned| {
                        act.core
                            .thread_looked_up(conn_id, message, thread_id, owned);
                        act.perform(ctx);
                    });
                }
                Effect::ExplainUnknownRun {
                    conn_id,
                    raw_id,
                    run_id,
                } => {
                    let read = move |conn: &mut _, user: &_| {
                        Ok(repo::runs::get(conn, user, run_id)?.is_some())
                    };
                    self.read_then(ctx, "run lookup", read, move |act, _, exists| {
                        let refusal = match exists {
                            Ok(true) => Refusal::RunFinished(raw_id.clone()),
                            Ok(false) => Refusal::RunNotFound(raw_id.clone()),
                            Err(()) => Refusal::StorageUnavailable,
                        };
                        act.answer_error(conn_id, refusal.frame(Some(&raw_id)));
                    });
                }
                Effect::ExplainUnknownApproval {
                    conn_id,
                    raw_id,
                    approval_id,
                } => {
                    let read = move |conn: &mut _, user: &_| {
                        Ok(repo::approvals::get(conn, user, approval_id)?.map(|row| row.status))
                    };
                    self.read_then(ctx, "approval lookup", read, move |act, _, found| {
                        let refusal = match found {
                            Ok(Some(status)) => Refusal::ApprovalResolved {
                                id: raw_id.clone(),
                                status,
                            },
                            Ok(None) => Refusal::ApprovalNotFound(raw_id.clone()),
                            Err(()) => Refusal::StorageUnavailable,
                        };
                        act.answer_error(conn_id, refusal.frame(Some(&raw_id)));
                    });
                }
                Effect::AcquireSlot(run_id) => self.acquire_slot(ctx, run_id),
                Effect::ReleaseSlot(run_id) => self.deps.slots.do_send(Release { run_id }),
                Effect::StartSupervisor(start) => self.start_supervisor(ctx, start),
                Effect::CancelSupervisor { run_id, reason } => {
                    self.children.tell(run_id, Cancel { reason })
                }
                Effect::AbortSupervisor(run_id) => self.children.abort(run_id),
                Effect::PauseAttemptTimer(run_id) => self.children.tell(run_id, PauseAttemptTimer),
                Effect::ResumeAttemptTimer(run_id) => {
                    self.children.tell(run_id, ResumeAttemptTimer)
                }
                Effect::ExpireApproval(approval_id, after) => {
                    ctx.run_later(after, move |act, ctx| {
                        act.core.approval_expired(approval_id);
                        act.perform(ctx);
                    });
                }
                Effect::Forget(run_id) => self.children.forget(run_id),
                Effect::RunEnded(status) => {
                    let runs = &self.deps.metrics.runs;
                    runs.with_label_values(&[status.as_str()]).inc();
                }
                Effect::Drained => {
                    if !self.deleting {
                        self.sockets
                            .close_all(close_code::GOING_AWAY, "server shutting down");
                    }
                    for drained in self.drained.drain(..) {
                        let _ = drained.send(());
                    }
                }
            }
        }
        self.report_queued(self.core.queued_runs() as i64);
    }

    /// Asks the database what it knows of a message id the session does not hold.
    fn look_up_message_id(
        &mut self,
        ctx: &mut Context<Self>,
        conn_id: ConnectionId,
        message: UserMessage,
    ) {
        let key = message.client_msg_id.clone().unwrap_or_default();
        let read = move |conn: &mut _, user: &_| {
            let Some(run) = repo::runs::by_client_msg_id(conn, user, &key)? else {
                return Ok(None);
            };
            let acceptance = match run.accept_seq {
                Some(seq) => repo::events::at(conn, user, seq)?.map(|e| e.to_frame()),
                None => None,
            };
            Ok(Some(StoredMessage {
                content: run.content,
                acceptance,
            }))
        };
        self.read_then(ctx, "message id lookup", read, move |act, ctx, found| {
            act.core.message_id_looked_up(conn_id, message, found);
            act.perform(ctx);
        });
    }
}
