//! `SessionRegistry`: finds or spawns the one `UserSession` of a user, spreading sessions over
//! one arbiter per core. It holds only addresses; all user state lives in the sessions.

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;

use crate::context::UserId;
use crate::runtime::cluster::mail::{Command, Mail, Question};
use crate::runtime::cluster::{CatchUp, CheckLeases, EventsStored, FromNode, NodesLost};
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

impl SessionRegistry {
    /// The user's session in memory, if there is one.
    fn live_session(&self, user_id: &UserId) -> Option<&Addr<UserSession>> {
        self.sessions.get(user_id).filter(|s| s.connected())
    }

    /// The user's session, spawned if it has none (or its old one stopped).
    fn session_of(&mut self, user_id: UserId) -> Addr<UserSession> {
        if let Some(session) = self.live_session(&user_id) {
            return session.clone();
        }
        let deps = self.deps.clone();
        let spawned = user_id.clone();
        let session = match self
            .arbiters
            .get(self.next_arbiter % self.arbiters.len().max(1))
        {
            Some(arbiter) => {
                self.next_arbiter = self.next_arbiter.wrapping_add(1);
                UserSession::start_in_arbiter(arbiter, move |_| UserSession::new(spawned, deps))
            }
            None => UserSession::new(spawned, deps).start(),
        };
        self.sessions.insert(user_id, session.clone());
        self.purge();
        session
    }

    /// Tells every session in memory.
    fn tell_all<M>(&self, msg: M)
    where
        M: Message<Result = ()> + Clone + Send + 'static,
        UserSession: Handler<M>,
    {
        for session in self.sessions.values() {
            session.do_send(msg.clone());
        }
    }
}

impl Handler<GetSession> for SessionRegistry {
    type Result = MessageResult<GetSession>;

    fn handle(&mut self, msg: GetSession, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.session_of(msg.user_id))
    }
}

/// A letter from another node: a request wakes the user's session; frames for a socket go to
/// the session holding it, if it is still here.
impl Handler<FromNode> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: FromNode, _: &mut Context<Self>) {
        let Some(user) = msg.mail.user().and_then(|user| UserId::parse(user).ok()) else {
            return;
        };
        // What only a session that is here can use wakes none.
        let for_live_only = matches!(
            msg.mail,
            Mail::Frames { .. }
                | Mail::AccountDeleted { .. }
                | Mail::Command {
                    command: Command::Detached,
                    ..
                }
                | Mail::Ask {
                    question: Question::EndIngest,
                    ..
                }
        );
        if for_live_only {
            if let Some(session) = self.live_session(&user) {
                session.do_send(msg);
            }
            return;
        }
        self.session_of(user).do_send(msg);
    }
}

/// New events of a user this node follows: for their session, if it is still here.
impl Handler<EventsStored> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: EventsStored, _: &mut Context<Self>) {
        let subject = msg.user.subject_id();
        if let Some(session) = self.live_session(&subject) {
            session.do_send(msg);
        }
    }
}

impl Handler<NodesLost> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: NodesLost, _: &mut Context<Self>) {
        self.tell_all(msg);
    }
}

impl Handler<CheckLeases> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: CheckLeases, _: &mut Context<Self>) {
        self.tell_all(msg);
    }
}

impl Handler<CatchUp> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: CatchUp, _: &mut Context<Self>) {
        self.tell_all(msg);
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
