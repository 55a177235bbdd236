//! `SessionRegistry`: finds or spawns the one `UserSession` of a user, spreading sessions over
//! one arbiter per core. It holds only addresses; all user state lives in the sessions.

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;

use crate::context::UserId;
use crate::runtime::session::{CloseSockets, SessionDeps, UserSession};
use crate::runtime::shutdown::Drain;

/// The user's session, spawned if it has none (or its old one stopped).
#[derive(Message)]
#[rtype(result = "Addr<UserSession>")]
pub struct GetSession {
    /// Whose session is wanted: a user has one, so all their sockets and requests meet in it.
    pub user_id: UserId,
}

/// Closes `user_id`'s sockets, if their session is in memory (none started for it).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseSocketsOf {
    /// Whose sockets.
    pub user_id: UserId,
    /// The close code (4001 for a revoked token).
    pub code: u16,
    /// The close frame's reason.
    pub reason: &'static str,
}

/// The only place sessions are spawned, so no user ever gets two writers of their events.
pub struct SessionRegistry {
    /// Handed to every session it spawns.
    deps: SessionDeps,
    /// The arbiters sessions are spread over, so they do not all share one thread.
    arbiters: Vec<ArbiterHandle>,
    /// Round-robin position in `arbiters`.
    next_arbiter: usize,
    /// Each user's session, found again by later requests instead of spawning a rival.
    sessions: HashMap<UserId, Addr<UserSession>>,
}

impl SessionRegistry {
    /// Empty: sessions spawn on first request, on `arbiters` in turn (on its own arbiter if none).
    pub fn new(deps: SessionDeps, arbiters: Vec<ArbiterHandle>) -> Self {
        Self {
            deps,
            arbiters,
            next_arbiter: 0,
            sessions: HashMap::new(),
        }
    }
}

impl SessionRegistry {
    /// Forgets sessions that stopped (passivated or failed) and updates the sessions gauge.
    fn purge(&mut self) {
        self.sessions.retain(|_, session| session.connected());
        self.deps.metrics.sessions.set(self.sessions.len() as i64);
    }
}

impl Actor for SessionRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let every = self.deps.config.passivate_after.min(Duration::from_secs(1));
        ctx.run_interval(every.max(Duration::from_millis(10)), |act, _| act.purge());
    }
}

/// Drains every session in memory (`shutdown.rs`); answers when all are drained.
impl Handler<Drain> for SessionRegistry {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Drain, _: &mut Context<Self>) -> Self::Result {
        self.purge();
        let sessions: Vec<Addr<UserSession>> = self.sessions.values().cloned().collect();
        log::info!("draining {} session(s)", sessions.len());
        Box::pin(async move {
            futures_util::future::join_all(sessions.iter().map(|s| s.send(msg))).await;
        })
    }
}

impl Handler<GetSession> for SessionRegistry {
    type Result = MessageResult<GetSession>;

    fn handle(&mut self, msg: GetSession, _: &mut Context<Self>) -> Self::Result {
        if let Some(session) = self.sessions.get(&msg.user_id)
            && session.connected()
        {
            return MessageResult(session.clone());
        }
        let deps = self.deps.clone();
        let user_id = msg.user_id.clone();
        let session = match self
            .arbiters
            .get(self.next_arbiter % self.arbiters.len().max(1))
        {
            Some(arbiter) => {
                self.next_arbiter = self.next_arbiter.wrapping_add(1);
                UserSession::start_in_arbiter(arbiter, move |_| UserSession::new(user_id, deps))
            }
            None => UserSession::new(user_id, deps).start(),
        };
        self.sessions.insert(msg.user_id, session.clone());
        self.purge();
        MessageResult(session)
    }
}

impl Handler<CloseSocketsOf> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: CloseSocketsOf, _: &mut Context<Self>) {
        if let Some(session) = self.sessions.get(&msg.user_id) {
            session.do_send(CloseSockets {
                code: msg.code,
                reason: msg.reason,
            });
        }
    }
}
