//! `UserSession`: one actor per user that holds the user's run-time state and is the single
//! writer of the user's event sequence.
//!
//! Sockets attach to it, runs emit through it. Every event is numbered here (per-user `seq`,
//! gapless), handed to the writer in a batch, and fanned out to the user's sockets only once
//! the batch is durable. One batch is in flight at a time, so events that arrive meanwhile
//! group into the next commit, and a failed batch can be dropped without leaving a gap.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::analysis::catalog::Catalog;
use crate::config::Config;
use crate::context::{ApprovalId, ConnectionId, RunId, ThreadId, UserId};
use crate::error::ErrorCode;
use crate::faults::Faults;
use crate::llm::Llm;
use crate::metrics::Metrics;
use crate::protocol::{
    ActiveRunInfo, ApprovalDecision, ApprovalOutcome, FrameError, PROTOCOL_VERSION, RunStatus,
    ServerFrame, UserMessage,
};
use crate::runtime::admission::MsgIdClaim;
use crate::runtime::approvals::PendingApproval;
use crate::runtime::delivery::Socket;
use crate::runtime::event_log::Pending;
use crate::runtime::pipeline::Pipeline;
use crate::runtime::rate_limit::TokenBucket;
use crate::runtime::run_events::Emit;
use crate::runtime::run_slots::{Release, RunSlots};
use crate::runtime::run_supervisor::{RunFinished, RunOutcome, RunSupervisor};
use crate::runtime::shutdown::shutting_down;
use crate::runtime::socket::{ConnectionLink, Outbound, close_code, one_frame};
use crate::store::Db;
use crate::store::repo;

/// A socket joins the session; it gets `connected`, then (with `after_seq`) a replay.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Attach {
    pub conn_id: ConnectionId,
    pub socket: Recipient<Outbound>,
    pub link: ConnectionLink,
    pub after_seq: Option<i64>,
}

/// A socket left.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Detach {
    pub conn_id: ConnectionId,
}

/// A validated `user_message` from one of the user's sockets.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartRun {
    pub conn_id: ConnectionId,
    pub message: UserMessage,
}

/// `resume {after_seq}` from one of the user's sockets.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Resume {
    pub conn_id: ConnectionId,
    pub after_seq: i64,
}

/// A request that names an object of this user (`cancel_run`, `approval`), to be answered on
/// the asking socket.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ObjectRequest {
    pub conn_id: ConnectionId,
    pub kind: ObjectRequestKind,
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectRequestKind {
    CancelRun,
    Approval(ApprovalDecision),
}

/// What every session shares read-only: configuration, the database executor, fault
/// injection and the agents.
#[derive(Clone)]
pub struct SessionDeps {
    pub config: Arc<Config>,
    pub db: Db,
    pub faults: Arc<Faults>,
    pub pipeline: Arc<Pipeline>,
    pub catalog: Arc<Catalog>,
    /// The server-wide cap on executing runs.
    pub slots: Addr<RunSlots>,
    /// The LLM provider, if one is configured.
    pub llm: Llm,
    pub metrics: Arc<Metrics>,
}

/// What a queued run waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Awaiting {
    /// Room among the user's executing runs.
    UserSlot,
    /// One of the server's slots (`RunSlots`).
    ServerSlot,
}

/// Where a live run is.
pub(super) enum RunPhase {
    /// Waiting for a slot; `content` is the message it will run on.
    Queued {
        content: String,
        awaiting: Awaiting,
    },
    Running {
        supervisor: Addr<RunSupervisor>,
    },
    /// Its end is pushed and waits to be stored; it emits nothing more.
    Ending,
}

/// A run whose first request for a server slot is out.
pub(super) struct Acquiring {
    pub(super) run_id: RunId,
    /// `SlotGranted` came before the answer to the request (the mailbox is served before
    /// the request's reply), so the run starts at once when the answer says `Waiting`.
    pub(super) granted: bool,
}

/// A run this session accepted and has not yet seen end durably.
pub(super) struct LiveRun {
    pub(super) thread_id: ThreadId,
    pub(super) phase: RunPhase,
    /// Acceptance order, which is queue order.
    pub(super) order: u64,
    /// Its acceptance event (`run_started` or `run_queued`) is stored.
    pub(super) accepted: bool,
    /// The socket that sent the message, told if the message could not be stored.
    pub(super) origin: ConnectionId,
    pub(super) client_msg_id: Option<String>,
    /// The reply channel of an approval cancelled with the run, kept so the stopped agent
    /// never sees an answer.
    pub(super) parked_reply: Option<oneshot::Sender<ApprovalOutcome>>,
}

impl LiveRun {
    pub(super) fn is_running(&self) -> bool {
        matches!(self.phase, RunPhase::Running { .. })
    }

    pub(super) fn is_queued(&self) -> bool {
        matches!(self.phase, RunPhase::Queued { .. })
    }

    /// Counts toward the user's limit: executing, or promoted and waiting for a server slot.
    pub(super) fn holds_user_slot(&self) -> bool {
        matches!(
            self.phase,
            RunPhase::Running { .. }
                | RunPhase::Queued {
                    awaiting: Awaiting::ServerSlot,
                    ..
                }
        )
    }

    pub(super) fn supervisor(&self) -> Option<&Addr<RunSupervisor>> {
        match &self.phase {
            RunPhase::Running { supervisor } => Some(supervisor),
            _ => None,
        }
    }
}

pub struct UserSession {
    pub(super) user_id: UserId,
    pub(super) deps: SessionDeps,
    /// Highest durable `seq`; the next batch starts at `last_seq + 1`.
    pub(super) last_seq: i64,
    pub(super) sockets: HashMap<ConnectionId, Socket>,
    pub(super) runs: HashMap<RunId, LiveRun>,
    /// Threads known to be this user's, so a message to one needs no lookup.
    pub(super) known_threads: HashSet<ThreadId>,
    /// Events waiting for the next batch (`event_log.rs`).
    pub(super) pending: VecDeque<Pending>,
    /// A batch is with the writer.
    pub(super) writing: bool,
    /// Batches lost one after another (storage down), and whether the next waits for a backoff.
    pub(super) lost_in_a_row: u32,
    pub(super) resting: bool,
    /// Who waits for the batch with the writer to be durable.
    pub(super) in_flight_notify: Vec<oneshot::Sender<()>>,
    /// Distinguishes a socket's current replay from a superseded one.
    pub(super) replay_generation: u64,
    /// `client_msg_id`s being admitted or held by live runs (`admission.rs`).
    pub(super) msg_ids: HashMap<String, MsgIdClaim>,
    /// Counts accepted runs, for queue order.
    pub(super) accepted_runs: u64,
    /// The `user_message` rate limit.
    pub(super) message_rate: TokenBucket,
    /// An upload of this user is in progress.
    pub(super) ingesting: bool,
    /// Approvals waiting for the user (`approvals.rs`).
    pub(super) approvals: HashMap<ApprovalId, PendingApproval>,
    /// A message is being admitted (`admission.rs`); the ones behind it wait in order.
    pub(super) admitting: bool,
    pub(super) admission_queue: VecDeque<(ConnectionId, UserMessage)>,
    /// The run being admitted while its first slot request is out (`scheduling.rs`): its
    /// grant may arrive before the answer that says it waits.
    pub(super) acquiring: Option<Acquiring>,
    /// Since when the session has had nothing to do (for passivation).
    idle_since: Option<std::time::Instant>,
    /// The server is shutting down: no new messages (`shutdown.rs`).
    pub(super) draining: bool,
    /// Told when draining is complete.
    pub(super) drained: Vec<oneshot::Sender<()>>,
    /// Connections closed as too slow, cut at the TCP level at these instants
    /// (`delivery.rs`).
    pub(super) cutting: Vec<(Instant, Box<dyn Fn() + Send>)>,
}

impl UserSession {
    pub fn new(user_id: UserId, deps: SessionDeps) -> Self {
        Self {
            user_id,
            last_seq: 0,
            sockets: HashMap::new(),
            runs: HashMap::new(),
            known_threads: HashSet::new(),
            pending: VecDeque::new(),
            writing: false,
            lost_in_a_row: 0,
            resting: false,
            in_flight_notify: Vec::new(),
            replay_generation: 0,
            msg_ids: HashMap::new(),
            accepted_runs: 0,
            ingesting: false,
            approvals: HashMap::new(),
            admitting: false,
            admission_queue: VecDeque::new(),
            acquiring: None,
            idle_since: None,
            draining: false,
            drained: Vec::new(),
            cutting: Vec::new(),
            message_rate: TokenBucket::new(
                deps.config.message_burst,
                deps.config.messages_per_minute,
            ),
            deps,
        }
    }

    /// Nothing would be lost by stopping: no socket, run, approval, message, upload or write.
    fn is_idle(&self) -> bool {
        self.sockets.is_empty()
            && self.runs.is_empty()
            && self.approvals.is_empty()
            && self.pending.is_empty()
            && !self.writing
            && !self.admitting
            && self.admission_queue.is_empty()
            && !self.ingesting
            && self.msg_ids.is_empty()
            && self.cutting.is_empty()
    }

    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }

    pub(crate) fn deps(&self) -> &SessionDeps {
        &self.deps
    }

    pub(crate) fn last_seq(&self) -> i64 {
        self.last_seq
    }

    /// Sends `frame` to one socket (`delivery.rs`: queued, or the socket is closed 4008).
    pub(crate) fn send_to(&mut self, conn_id: ConnectionId, frame: String) {
        self.deliver(conn_id, one_frame(frame));
    }

    pub(super) fn send_error(&mut self, conn_id: ConnectionId, error: FrameError) {
        self.send_to(conn_id, ServerFrame::error(error).to_frame());
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
                act.last_seq = last_seq;
                log::debug!("user={} session active at seq {last_seq}", act.user_id);
                // Live runs in the database with no session to run them: a previous session of
                // this user failed. They end `run_interrupted`.
                for (run_id, thread_id) in orphans {
                    log::warn!("user={} run={run_id} lost with its session", act.user_id);
                    act.deps.slots.do_send(Release { run_id });
                    act.push_run_end(
                        ctx,
                        run_id,
                        thread_id,
                        RunOutcome::Interrupted { reason: "crash" },
                    );
                }
                act.flush(ctx);
            }
            Err(e) => {
                log::error!("user={} session could not load: {e}", act.user_id);
                ctx.stop();
            }
        }));
        ctx.run_interval(self.deps.config.heartbeat_interval, |act, _| {
            act.check_sockets()
        });
        let passivate_after = self.deps.config.passivate_after;
        let every = (passivate_after / 4).clamp(Duration::from_millis(10), Duration::from_secs(30));
        ctx.run_interval(every, move |act, ctx| {
            if !act.is_idle() {
                act.idle_since = None;
                return;
            }
            let since = *act.idle_since.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() >= passivate_after {
                log::debug!("user={} idle: passivating", act.user_id);
                act.deps.metrics.passivations.inc();
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        log::debug!("user={} session stopped", self.user_id);
        for socket in self.sockets.values() {
            socket.outbound.do_send(Outbound::Close {
                code: close_code::SESSION_RESTARTED,
                reason: "session restarted",
            });
        }
        self.let_go_of_sockets();
    }
}

/// A socket joins: `connected`, then the replay it asked for.
impl Handler<Attach> for UserSession {
    type Result = ();

    fn handle(&mut self, msg: Attach, ctx: &mut Context<Self>) {
        let active_runs = self
            .runs
            .iter()
            .filter(|(_, run)| run.is_running() || run.is_queued())
            .map(|(run_id, run)| ActiveRunInfo {
                run_id: *run_id,
                thread_id: run.thread_id,
                status: if !run.is_running() {
                    RunStatus::Queued
                } else if self.approval_of(*run_id).is_some() {
                    RunStatus::AwaitingApproval
                } else {
                    RunStatus::Running
                },
            })
            .collect();
        let connected = ServerFrame::Connected {
            user_id: self.user_id.clone(),
            connection_id: msg.conn_id.to_string(),
            last_seq: self.last_seq,
            protocol: PROTOCOL_VERSION,
            active_runs,
            pending_approvals: self.pending_approval_list(),
        };
        self.sockets
            .insert(msg.conn_id, Socket::new(msg.socket, msg.link));
        self.send_to(msg.conn_id, connected.to_frame());
        if let Some(after_seq) = msg.after_seq {
            self.start_replay(ctx, msg.conn_id, after_seq);
        }
    }
}

/// A socket left; the user's runs go on.
impl Handler<Detach> for UserSession {
    type Result = ();

    fn handle(&mut self, msg: Detach, _: &mut Context<Self>) {
        self.forget_socket(msg.conn_id);
    }
}

/// A message starts a run, on a thread of this user's or a new one (`admission.rs`).
impl Handler<StartRun> for UserSession {
    type Result = ();

    fn handle(&mut self, msg: StartRun, ctx: &mut Context<Self>) {
        if self.draining {
            let mut error = shutting_down();
            if let Some(id) = msg.message.client_msg_id {
                error = error.with_ref(id);
            }
            return self.send_error(msg.conn_id, error);
        }
        if self.deps.faults.take_session_panic(&self.user_id) {
            panic!("injected fault: session of {}", self.user_id);
        }
        if !self.message_rate.take() {
            let wait = self.message_rate.wait();
            let mut error = FrameError::new(
                ErrorCode::RateLimited,
                format!(
                    "too many messages: at most {} a minute in bursts of {}; try again in {} ms",
                    self.deps.config.messages_per_minute,
                    self.deps.config.message_burst,
                    wait.as_millis().max(1)
                ),
            );
            if let Some(id) = msg.message.client_msg_id {
                error = error.with_ref(id);
            }
            return self.send_error(msg.conn_id, error);
        }
        self.admit(ctx, msg.conn_id, msg.message);
    }
}

/// `resume`: replay from the database, then live.
impl Handler<Resume> for UserSession {
    type Result = ();

    fn handle(&mut self, msg: Resume, ctx: &mut Context<Self>) {
        self.start_replay(ctx, msg.conn_id, msg.after_seq);
    }
}

/// `cancel_run` (`cancel.rs`) and `approval` (`approvals.rs`): another user's ids get the same
/// `not_found` as ids that do not exist.
impl Handler<ObjectRequest> for UserSession {
    type Result = ();

    fn handle(&mut self, msg: ObjectRequest, ctx: &mut Context<Self>) {
        match msg.kind {
            ObjectRequestKind::CancelRun => self.cancel(ctx, msg.conn_id, msg.id),
            ObjectRequestKind::Approval(decision) => {
                self.answer_approval(ctx, msg.conn_id, msg.id, decision)
            }
        }
    }
}

/// An event from one of this session's runs.
impl Handler<Emit> for UserSession {
    type Result = ();

    fn handle(&mut self, msg: Emit, ctx: &mut Context<Self>) {
        self.deps.metrics.events_in_flight.dec();
        let running = self
            .runs
            .get(&msg.run_id)
            .is_some_and(|run| run.is_running() && run.thread_id == msg.thread_id);
        if running {
            self.push(
                msg.thread_id,
                Some(msg.run_id),
                msg.agent,
                msg.kind,
                msg.data,
                None,
            );
            self.flush(ctx);
        }
    }
}

/// A run's supervisor is done.
impl Handler<RunFinished> for UserSession {
    type Result = ();

    fn handle(&mut self, msg: RunFinished, ctx: &mut Context<Self>) {
        let Some(run) = self.runs.get(&msg.run_id) else {
            return;
        };
        if !run.is_running() {
            return;
        }
        let thread_id = run.thread_id;
        self.push_run_end(ctx, msg.run_id, thread_id, msg.outcome);
        self.promote(ctx);
        self.flush(ctx);
    }
}
