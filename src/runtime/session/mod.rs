//! `UserSession`: one actor per user that holds the user's run-time state and is the single
//! writer of the user's event sequence.
//!
//! What it decides lives in `SessionCore` (plain state, `core/`); the actor turns each message
//! into one call there and performs the `Effect`s it leaves: batches to the writer, frames to
//! the `Sockets`, supervisors started and stopped, slots asked for, reads. The messages it
//! receives sit in `from_sockets.rs`, `from_runs.rs` and `from_http.rs`, by sender.

mod admission;
mod approvals;
mod children;
mod core;
mod event_log;
mod follower;
mod from_cluster;
mod from_http;
mod from_runs;
mod from_sockets;
mod perform;
mod replay;
mod run_table;
mod sockets;
mod storage;

pub use from_http::{BeginIngest, DeleteAccount, DeleteThread, EndIngest};
pub use from_runs::{Emit, RequestApproval, RunFinished, RunOutcome, SlotGranted};
pub use from_sockets::{
    Attach, CloseSockets, Detach, ObjectRequest, ObjectRequestKind, Resume, StartRun,
};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use self::children::Children;
use self::core::{Limits, SessionCore};
use self::follower::Follower;
use self::sockets::Sockets;
use crate::analysis::catalog::Catalog;
use crate::config::Config;
use crate::context::{ConnectionId, UserId};
use crate::faults::Faults;
use crate::llm::Llm;
use crate::metrics::{LiveCount, Metrics};
use crate::protocol::InterruptReason;
use crate::runtime::cluster::mailroom::Mailroom;
use crate::runtime::housekeeper::Sweep;
use crate::runtime::pipeline::Pipeline;
use crate::runtime::refusal::Refusal;
use crate::runtime::run_slots::RunSlots;
use crate::runtime::socket::close_code;
use crate::store::leases::{self, Claim};
use crate::store::{Db, cluster, repo};

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
    /// Told when an account was deleted, so its rows are purged now.
    pub housekeeper: Recipient<Sweep>,
    /// This node's post office to the other nodes (PostgreSQL; `None` on SQLite).
    pub mailroom: Option<Addr<Mailroom>>,
}

/// One user's session.
pub struct UserSession {
    /// Whose session this is: the user's id, and once `started` has loaded it, the key their
    /// current account stores under (`UserId::at_generation`), which every read and write of
    /// the session uses.
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
    /// The user's account is being deleted: no upload may start.
    deleting: bool,
    /// Since when the session has had nothing to do (for passivation).
    idle_since: Option<Instant>,
    /// Told when draining is complete.
    drained: Vec<oneshot::Sender<()>>,
    /// This session's share of the queued-runs gauge.
    reported_queued: i64,
    /// The epoch of this session's claim on the user (`store/leases.rs`), stamped on every
    /// batch it writes; `None` until `started` has claimed the user, and on SQLite.
    lease: Option<i64>,
    /// This session's share of the owned-sessions gauge once it owns the user, or of the
    /// following-sessions gauge once it follows them.
    owned: Option<LiveCount>,
    /// Set when another node owns the user: this session follows it (`follower.rs`).
    follower: Option<Follower>,
    /// Sockets on other nodes whose requests this owner serves, and the node of each.
    remote_sockets: HashMap<ConnectionId, Arc<str>>,
    /// The node whose upload of this user is running (the owner ends it if that node is lost).
    remote_upload: Option<Arc<str>>,
}

impl UserSession {
    /// A session for `user_id`; it numbers nothing before `started` has read the last stored `seq`.
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
            deleting: false,
            idle_since: None,
            drained: Vec::new(),
            reported_queued: 0,
            lease: None,
            owned: None,
            follower: None,
            remote_sockets: HashMap::new(),
            remote_upload: None,
        }
    }

    /// An upload starts under the account's key, unless the account is being deleted or
    /// another upload is in progress.
    fn begin_upload(&mut self) -> Result<UserId, Refusal> {
        if self.deleting {
            return Err(Refusal::AccountDeleting);
        }
        if std::mem::replace(&mut self.uploading, true) {
            return Err(Refusal::UploadRunning);
        }
        Ok(self.user_id.clone())
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

    /// Sets this session's share of the queued-runs gauge to `queued`.
    fn report_queued(&mut self, queued: i64) {
        let change = queued - self.reported_queued;
        self.deps.metrics.queued_runs.add(change);
        self.reported_queued = queued;
    }

    /// The highest `seq` this session's sockets can have had live: the last durable one it
    /// numbered, or, following another node, the last it delivered.
    fn durable_seq(&self) -> i64 {
        match &self.follower {
            Some(follower) => follower.delivered(),
            None => self.core.last_seq(),
        }
    }

    /// Nothing would be lost by stopping (an owner serving sockets on other nodes keeps them).
    fn is_idle(&self) -> bool {
        self.core.is_idle()
            && self.sockets.is_empty()
            && self.remote_sockets.is_empty()
            && !self.uploading
            && !self.deleting
    }
}

impl Actor for UserSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The session must know the user's last stored seq before it numbers anything, so it
        // holds its mailbox (`wait`) for this one read; every later read runs alongside. It is
        // read on the user's writer, after any batch a failed predecessor left there: reading
        // before that batch settles would number events the batch already holds.
        // The account's key is read there too: after a deletion the user starts afresh under
        // a new one, and the deletion's transaction is queued on the same writer.
        // The user is claimed there first (`store/leases.rs`), and `last_seq` read after the
        // claim, so it follows every batch an earlier owner, on any node, stored.
        let db = self.deps.db.clone();
        let user = self.user_id.clone();
        let node = db.node_id().clone();
        let load = async move {
            db.run_as(&user.clone(), move |conn| {
                let key = repo::accounts::key_of(conn, &user)?;
                let claim = leases::claim(conn, &key, &node)?;
                let last_seq = repo::events::last_seq(conn, &key)?;
                let orphans = match claim {
                    Claim::Owned { .. } => repo::runs::live(conn, &key)?,
                    Claim::Elsewhere { .. } => Vec::new(),
                };
                Ok((key, claim, last_seq, orphans))
            })
            .await
        };
        ctx.wait(load.into_actor(self).map(|result, act, ctx| match result {
            Ok((key, Claim::Owned { epoch, took_over }, last_seq, orphans)) => {
                act.user_id = key.clone();
                act.lease = epoch;
                act.owned = Some(LiveCount::new(&act.deps.metrics.owned_sessions));
                log::debug!("user={} session active at seq {last_seq}", act.user_id);
                let reason = match &took_over {
                    Some(node) => {
                        log::warn!("user={} taken over from lost node {node}", act.user_id);
                        act.deps.metrics.failovers.inc();
                        InterruptReason::NodeLost
                    }
                    None => InterruptReason::Crash,
                };
                for (run_id, _) in &orphans {
                    log::warn!("user={} run={run_id} lost with its session", act.user_id);
                }
                // Live runs in the database with no session to run them: a previous session
                // of this user failed, or the node that ran it was lost. They end
                // `run_interrupted`.
                act.core.loaded(key, last_seq, orphans, reason);
                act.perform(ctx);
            }
            Ok((key, Claim::Elsewhere { node }, last_seq, _)) => {
                log::debug!("user={key} follows node {node} from seq {last_seq}");
                act.user_id = key;
                act.owned = Some(LiveCount::new(&act.deps.metrics.followed_sessions));
                act.follower = Some(Follower::new(node, last_seq));
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
        if self.follower.is_some() {
            // On the user's writer, so it comes before the claim of the user's next session
            // here, which may follow them again.
            let (db, user) = (self.deps.db.clone(), self.user_id.clone());
            let node = db.node_id().clone();
            actix::spawn(async move {
                let unfollowed = db
                    .run_as(&user.clone(), move |conn| {
                        cluster::unfollow(conn, &user, &node)
                    })
                    .await;
                if let Err(e) = unfollowed {
                    log::debug!("could not stop following a user: {e}");
                }
            });
        }
        if let Some(epoch) = self.lease.take() {
            // Given up so the user's next session, on any node, need not wait for this node's
            // lease; a claim made since (this session was fenced) keeps its newer epoch.
            let (db, user) = (self.deps.db.clone(), self.user_id.clone());
            actix::spawn(async move {
                let released = db
                    .run_as(&user.clone(), move |conn| {
                        leases::release(conn, &user, epoch)
                    })
                    .await;
                if let Err(e) = released {
                    log::debug!("could not release a user's lease: {e}");
                }
            });
        }
        self.sockets
            .close_all(close_code::SESSION_RESTARTED, "session restarted");
    }
}

/// Whatever stopped the session — also a panic, which skips `stopped` — its sockets and queued
/// runs leave the gauges, and connections closed as too slow are cut now rather than never.
impl Drop for UserSession {
    fn drop(&mut self) {
        self.sockets.let_go();
        self.report_queued(0);
    }
}
