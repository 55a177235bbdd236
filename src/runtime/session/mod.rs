//! `UserSession`: one actor per user that holds the user's run-time state and is the single
//! writer of the user's event sequence.
//!
//! What it decides lives in `SessionCore` (plain state, `core/`); the actor turns each message
//! into one call there and performs the `Effect`s it leaves: batches to the writer, frames to
//! the `Sockets`, supervisors started and stopped, slots asked for, reads. The messages it
//! receives sit in `from_sockets.rs`, `from_runs.rs` and `from_http.rs`, by sender.

mod admission;
mod approvals;
mod core;
mod event_log;
mod from_http;
mod from_runs;
mod from_sockets;
mod replay;
mod run_table;
mod sockets;

pub use from_http::{BeginIngest, DeleteThread, EndIngest};
pub use from_runs::{Emit, RequestApproval, RunFinished, SlotGranted};
pub use from_sockets::{Attach, Detach, ObjectRequest, ObjectRequestKind, Resume, StartRun};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use self::core::{Effect, Limits, SessionCore, StoredMessage};
use self::sockets::Sockets;
use crate::analysis::catalog::Catalog;
use crate::clock::now_ms;
use crate::config::Config;
use crate::context::{ConnectionId, RunId, UserContext, UserId};
use crate::faults::Faults;
use crate::llm::Llm;
use crate::metrics::Metrics;
use crate::protocol::UserMessage;
use crate::runtime::attempt_timer::{PauseAttemptTimer, ResumeAttemptTimer};
use crate::runtime::pipeline::Pipeline;
use crate::runtime::refusal::Refusal;
use crate::runtime::run_events::RunEvents;
use crate::runtime::run_slots::{Acquire, Release, RunSlots};
use crate::runtime::run_supervisor::{AbortRun, Cancel, RunSupervisor};
use crate::runtime::session::event_log::write_backoff;
use crate::runtime::session::run_table::RunStart;
use crate::runtime::socket::close_code;
use crate::store::batch::WriteBatch;
use crate::store::connection::DbConnection;
use crate::store::{Db, StoreError, repo};

/// What every session shares read-only: configuration, the database executor, fault
/// injection and the agents.
#[derive(Clone)]
pub struct SessionDeps {
    /// The server's configuration.
    pub config: Arc<Config>,
    /// The database executor (writers and readers).
    pub db: Db,
    /// Faults injected for tests and demonstrations.
    pub faults: Arc<Faults>,
    /// The agents runs are made of.
    pub pipeline: Arc<Pipeline>,
    /// The price catalog agents analyse with.
    pub catalog: Arc<Catalog>,
    /// The server-wide cap on executing runs.
    pub slots: Addr<RunSlots>,
    /// The LLM provider, if one is configured.
    pub llm: Llm,
    /// The Prometheus series.
    pub metrics: Arc<Metrics>,
}

/// The supervisors of a session's runs: its children. Dropping the session (a normal stop, or
/// a panic that skips `stopped`) drops this, which stops every one of them.
#[derive(Default)]
struct Children(HashMap<RunId, Addr<RunSupervisor>>);

impl Drop for Children {
    fn drop(&mut self) {
        for supervisor in self.0.values() {
            supervisor.do_send(AbortRun);
        }
    }
}

/// One user's session.
pub struct UserSession {
    /// Whose session this is.
    user_id: UserId,
    /// What it shares with every session.
    deps: SessionDeps,
    /// Everything it decides.
    core: SessionCore,
    /// The user's attached sockets.
    sockets: Sockets,
    /// Its runs' supervisors, started once each run's `run_started` is durable.
    children: Children,
    /// An upload of this user is in progress (one at a time).
    uploading: bool,
    /// Since when the session has had nothing to do (for passivation).
    idle_since: Option<Instant>,
    /// Told when draining is complete.
    drained: Vec<oneshot::Sender<()>>,
    /// This session's share of the queued-runs gauge.
    reported_queued: i64,
}

impl UserSession {
    pub fn new(user_id: UserId, deps: SessionDeps) -> Self {
        let config = &deps.config;
        let limits = Limits {
            max_running: config.max_running_per_user,
            max_queued: config.max_queued_per_user,
            batch_max: config.batch_max_events,
            approval_timeout: config.approval_timeout,
            messages_per_minute: config.messages_per_minute,
            message_burst: config.message_burst,
            plan: deps
                .pipeline
                .names()
                .into_iter()
                .map(str::to_owned)
                .collect(),
        };
        Self {
            core: SessionCore::new(user_id.clone(), 0, limits),
            sockets: Sockets::new(user_id.clone(), config.clone(), deps.metrics.clone()),
            user_id,
            deps,
            children: Children::default(),
            uploading: false,
            idle_since: None,
            drained: Vec::new(),
            reported_queued: 0,
        }
    }

    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }

    /// An upload starts, unless one is in progress (false then).
    fn begin_upload(&mut self) -> bool {
        !std::mem::replace(&mut self.uploading, true)
    }

    /// The upload in progress is over.
    fn end_upload(&mut self) {
        self.uploading = false;
    }

    /// Hears when the session has drained (`Effect::Drained`).
    fn when_drained(&mut self) -> oneshot::Receiver<()> {
        let (drained, done) = oneshot::channel();
        self.drained.push(drained);
        done
    }

    /// Nothing would be lost by stopping.
    fn is_idle(&self) -> bool {
        self.core.is_idle() && self.sockets.is_empty() && !self.uploading
    }

    /// Performs what the core decided, in order.
    fn perform(&mut self, ctx: &mut Context<Self>) {
        for effect in self.core.take_effects() {
            match effect {
                Effect::Write(batch) => self.write(ctx, batch, 0),
                Effect::Rest(backoff) => {
                    ctx.run_later(backoff, |act, ctx| {
                        act.core.rested();
                        act.perform(ctx);
                    });
                }
                Effect::Broadcast(frames) => self.sockets.broadcast(&frames),
                Effect::Send(conn_id, frame) => {
                    self.sockets.deliver(conn_id, Arc::from(vec![frame]));
                }
                Effect::Refuse(conn_id, error) => self.sockets.send_error(conn_id, error),
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
                        act.sockets
                            .send_error(conn_id, refusal.frame(Some(&raw_id)));
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
                        act.sockets
                            .send_error(conn_id, refusal.frame(Some(&raw_id)));
                    });
                }
                Effect::AcquireSlot(run_id) => self.acquire_slot(ctx, run_id),
                Effect::ReleaseSlot(run_id) => self.deps.slots.do_send(Release { run_id }),
                Effect::StartSupervisor(start) => self.start_supervisor(ctx, start),
                Effect::CancelSupervisor { run_id, reason } => {
                    if let Some(supervisor) = self.children.0.get(&run_id) {
                        supervisor.do_send(Cancel { reason });
                    }
                }
                Effect::AbortSupervisor(run_id) => {
                    if let Some(supervisor) = self.children.0.remove(&run_id) {
                        supervisor.do_send(AbortRun);
                    }
                }
                Effect::PauseAttemptTimer(run_id) => {
                    if let Some(supervisor) = self.children.0.get(&run_id) {
                        supervisor.do_send(PauseAttemptTimer);
                    }
                }
                Effect::ResumeAttemptTimer(run_id) => {
                    if let Some(supervisor) = self.children.0.get(&run_id) {
                        supervisor.do_send(ResumeAttemptTimer);
                    }
                }
                Effect::ExpireApproval(approval_id, after) => {
                    ctx.run_later(after, move |act, ctx| {
                        act.core.approval_expired(approval_id);
                        act.perform(ctx);
                    });
                }
                Effect::Forget(run_id) => {
                    self.children.0.remove(&run_id);
                }
                Effect::RunEnded(status) => {
                    let runs = &self.deps.metrics.runs;
                    runs.with_label_values(&[status.as_str()]).inc();
                }
                Effect::Drained => {
                    self.sockets
                        .close_all(close_code::GOING_AWAY, "server shutting down");
                    for drained in self.drained.drain(..) {
                        let _ = drained.send(());
                    }
                }
            }
        }
        let queued = self.core.queued_runs() as i64;
        self.deps
            .metrics
            .queued_runs
            .add(queued - self.reported_queued);
        self.reported_queued = queued;
    }

    /// Hands `batch` to the writer, retrying up to `store_retries` times; then tells the core
    /// whether it is durable or lost.
    fn write(&mut self, ctx: &mut Context<Self>, batch: WriteBatch, attempt: u32) {
        let db = self.deps.db.clone();
        let timer = self.deps.metrics.persist_seconds.start_timer();
        let writing = crate::metrics::LiveCount::new(&self.deps.metrics.batches_writing);
        let write = async move {
            let result = db.write(batch.clone()).await;
            drop(writing);
            timer.observe_duration();
            (batch, result)
        };
        ctx.spawn(write.into_actor(self).map(move |(batch, result), act, ctx| {
            match result {
                Ok(()) => {
                    let now = now_ms();
                    for event in &batch.events {
                        let seconds = (now - event.ts).max(0) as f64 / 1000.0;
                        act.deps.metrics.delivery_seconds.observe(seconds);
                    }
                    act.core.batch_stored(&batch);
                }
                Err(e) if attempt < act.deps.config.store_retries => {
                    let backoff = write_backoff(attempt);
                    log::warn!(
                        "user={} write batch failed (attempt {}), retrying in {backoff:?}: {e}",
                        act.user_id,
                        attempt + 1,
                    );
                    ctx.run_later(backoff, move |act, ctx| act.write(ctx, batch, attempt + 1));
                    return;
                }
                Err(e) => {
                    log::error!(
                        "user={} write batch of {} events lost: {e}",
                        act.user_id,
                        batch.events.len()
                    );
                    act.deps.metrics.lost_batches.inc();
                    act.core.batch_lost(&batch);
                }
            }
            act.perform(ctx);
        }));
    }

    /// Runs `query` for this user on a reader thread, then `then` in the actor with its
    /// result (a failure is logged here, as `what`, and passed on as `Err`).
    fn read_then<T, Q, K>(&mut self, ctx: &mut Context<Self>, what: &'static str, query: Q, then: K)
    where
        T: Send + 'static,
        Q: FnOnce(&mut DbConnection, &UserId) -> Result<T, StoreError> + Send + 'static,
        K: FnOnce(&mut Self, &mut Context<Self>, Result<T, ()>) + 'static,
    {
        let db = self.deps.db.clone();
        let user = self.user_id.clone();
        let read = async move { db.read(move |conn| query(conn, &user)).await };
        ctx.spawn(read.into_actor(self).map(move |result, act, ctx| {
            let result = result.map_err(|e| log::error!("user={} {what} failed: {e}", act.user_id));
            then(act, ctx, result);
        }));
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

    /// Asks `RunSlots` for a slot for `run_id`.
    fn acquire_slot(&mut self, ctx: &mut Context<Self>, run_id: RunId) {
        let acquire = self.deps.slots.send(Acquire {
            user_id: self.user_id.clone(),
            run_id,
            notify: ctx.address().recipient(),
        });
        ctx.spawn(acquire.into_actor(self).map(move |answer, act, ctx| {
            act.core.slot_answered(run_id, answer.map_err(|_| ()));
            act.perform(ctx);
        }));
    }

    /// Starts the supervisor of a run whose `run_started` is durable, as this session's child.
    fn start_supervisor(&mut self, ctx: &mut Context<Self>, start: RunStart) {
        let RunStart {
            run_id,
            thread_id,
            content,
            client_msg_id,
        } = start;
        let user_ctx = UserContext::new(
            self.user_id.clone(),
            thread_id,
            run_id,
            client_msg_id.as_deref(),
        );
        let session = ctx.address();
        let events = RunEvents::new(
            session.clone().recipient(),
            session.clone().recipient(),
            thread_id,
            run_id,
            self.deps.metrics.events_in_flight.clone(),
        );
        let supervisor = RunSupervisor::new(
            user_ctx,
            content,
            self.deps.clone(),
            events,
            session.recipient(),
        )
        .start();
        self.children.0.insert(run_id, supervisor);
    }
}

impl Actor for UserSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The session must know the user's last stored seq before it numbers anything, so it
        // holds its mailbox (`wait`) for this one read; every later read runs alongside. It is
        // read on the user's writer, after any batch a failed predecessor left there: reading
        // before that batch settles would number events the batch already holds.
        let db = self.deps.db.clone();
        let user = self.user_id.clone();
        let load = async move {
            db.read_after_writes(&user.clone(), move |conn| {
                let last_seq = repo::events::last_seq(conn, &user)?;
                let orphans = repo::runs::live(conn, &user)?;
                Ok((last_seq, orphans))
            })
            .await
        };
        ctx.wait(load.into_actor(self).map(|result, act, ctx| match result {
            Ok((last_seq, orphans)) => {
                log::debug!("user={} session active at seq {last_seq}", act.user_id);
                for (run_id, _) in &orphans {
                    log::warn!("user={} run={run_id} lost with its session", act.user_id);
                }
                // Live runs in the database with no session to run them: a previous session
                // of this user failed. They end `run_interrupted`.
                act.core.loaded(last_seq, orphans);
                act.perform(ctx);
            }
            Err(e) => {
                log::error!("user={} session could not load: {e}", act.user_id);
                ctx.stop();
            }
        }));
        ctx.run_interval(self.deps.config.heartbeat_interval, |act, _| {
            act.sockets.check()
        });
        let passivate_after = self.deps.config.passivate_after;
        let every = (passivate_after / 4).clamp(Duration::from_millis(10), Duration::from_secs(30));
        ctx.run_interval(every, move |act, ctx| {
            if !act.is_idle() {
                act.idle_since = None;
                return;
            }
            let since = *act.idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= passivate_after {
                log::debug!("user={} idle: passivating", act.user_id);
                act.deps.metrics.passivations.inc();
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        log::debug!("user={} session stopped", self.user_id);
        self.sockets
            .close_all(close_code::SESSION_RESTARTED, "session restarted");
        self.sockets.let_go();
        self.deps.metrics.queued_runs.sub(self.reported_queued);
        self.reported_queued = 0;
    }
}
