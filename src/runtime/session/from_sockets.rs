//! What the user's sockets (`web/ws.rs`) send the session: attach and detach, messages that
//! start runs, `resume`, and requests naming a run or an approval.

use std::time::Instant;

use actix::prelude::*;

use super::UserSession;
use crate::context::ConnectionId;
use crate::protocol::{ApprovalDecision, UserMessage};
use crate::runtime::cluster::mail::Command;
use crate::runtime::socket::{ConnectionLink, Outbound, close_code};

/// A socket joins the session; it gets `connected`, then (with `after_seq`) a replay.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Attach {
    /// The socket joining, the key it is known by until `Detach`.
    pub conn_id: ConnectionId,
    /// Where the session sends the socket's frames.
    pub socket: Recipient<Outbound>,
    /// What the connection beneath shares with the session (`sockets.rs`).
    pub link: ConnectionLink,
    /// Replay every event after this `seq` first.
    pub after_seq: Option<i64>,
}

/// A socket left; the user's runs go on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Detach {
    /// The socket that left; its frames stop and its share of the gauge goes.
    pub conn_id: ConnectionId,
}

/// A validated `user_message` from one of the user's sockets.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartRun {
    /// The sending socket, told if the message is refused or could not be stored.
    pub conn_id: ConnectionId,
    /// The message, validated by the socket; the run is made of it.
    pub message: UserMessage,
}

/// `resume {after_seq}` from one of the user's sockets.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Resume {
    /// The socket to replay to.
    pub conn_id: ConnectionId,
    /// The last `seq` the client has; the replay sends what follows it.
    pub after_seq: i64,
}

/// A request that names an object of this user (`cancel_run`, `approval`), to be answered on
/// the asking socket. Another user's ids get the same `not_found` as ids that do not exist.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ObjectRequest {
    /// The asking socket, which alone hears a refusal.
    pub conn_id: ConnectionId,
    /// Whether it cancels a run or answers an approval, and how.
    pub kind: ObjectRequestKind,
    /// The id as the client sent it (echoed as `ref`).
    pub id: String,
}

/// Which request an `ObjectRequest` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectRequestKind {
    CancelRun,
    Approval(ApprovalDecision),
}

/// `connected`, then the replay asked for; or, when the user already holds the most sockets
/// allowed, a close with 4029: the socket never joins, the frames it sends before the close
/// reaches it are dropped, and its `Detach` ends that.
impl Handler<Attach> for UserSession {
    type Result = ();

    fn handle(&mut self, msg: Attach, ctx: &mut Context<Self>) {
        if self.sockets.attached() >= self.deps.config.max_sockets_per_user {
            self.deps.metrics.sockets_over_cap.inc();
            self.sockets.refuse(msg.conn_id);
            msg.socket.do_send(Outbound::Close {
                code: close_code::TOO_MANY_SOCKETS,
                reason: "too many sockets for this user",
            });
            return;
        }
        if self.follower.is_some() {
            return self.follower_attach(ctx, msg);
        }
        let connected = self.core.connected(msg.conn_id).to_frame();
        self.join(ctx, msg, connected);
    }
}

impl UserSession {
    /// The socket joins: `connected`, then the replay it asked for.
    pub(super) fn join(&mut self, ctx: &mut Context<Self>, msg: Attach, connected: String) {
        self.sockets.attach(msg.conn_id, msg.socket, msg.link);
        self.sockets.send(msg.conn_id, connected);
        if let Some(after_seq) = msg.after_seq {
            self.start_replay(ctx, msg.conn_id, after_seq);
        }
    }
}

impl Handler<Detach> for UserSession {
    type Result = ();

    fn handle(&mut self, msg: Detach, _: &mut Context<Self>) {
        self.sockets.forget(msg.conn_id);
        self.follower_detach(msg.conn_id);
    }
}

/// A message starts a run, on a thread of this user's or a new one.
impl Handler<StartRun> for UserSession {
    type Result = ();

    fn handle(&mut self, msg: StartRun, ctx: &mut Context<Self>) {
        if self.sockets.is_refused(msg.conn_id) {
            return;
        }
        if self.follower.is_some() {
            let message = msg.message;
            return self.relay(msg.conn_id, Command::Message { message });
        }
        if !self.core.is_draining() && self.deps.faults.take_session_panic(&self.user_id) {
            panic!("injected fault: session of {}", self.user_id);
        }
        self.core.message(msg.conn_id, msg.message, Instant::now());
        self.perform(ctx);
    }
}

/// Replay from the database, then live.
impl Handler<Resume> for UserSession {
    type Result = ();

    fn handle(&mut self, msg: Resume, ctx: &mut Context<Self>) {
        if self.sockets.is_refused(msg.conn_id) {
            return;
        }
        if self.follower.is_some() {
            return self.follower_resume(ctx, msg.conn_id, msg.after_seq);
        }
        self.start_replay(ctx, msg.conn_id, msg.after_seq);
    }
}

impl Handler<ObjectRequest> for UserSession {
    type Result = ();

    fn handle(&mut self, msg: ObjectRequest, ctx: &mut Context<Self>) {
        if self.sockets.is_refused(msg.conn_id) {
            return;
        }
        if self.follower.is_some() {
            let command = match msg.kind {
                ObjectRequestKind::CancelRun => Command::CancelRun { id: msg.id },
                ObjectRequestKind::Approval(decision) => Command::Approval {
                    id: msg.id,
                    decision,
                },
            };
            return self.relay(msg.conn_id, command);
        }
        match msg.kind {
            ObjectRequestKind::CancelRun => self.core.cancel(msg.conn_id, msg.id),
            ObjectRequestKind::Approval(decision) => {
                self.core.approval_answered(msg.conn_id, msg.id, decision)
            }
        }
        self.perform(ctx);
    }
}

/// Closes every socket of the user with `code` (a revoked token's: 4001); the runs go on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseSockets {
    /// The close code (4001 for a revoked token).
    pub code: u16,
    /// The close frame's reason.
    pub reason: &'static str,
}

impl Handler<CloseSockets> for UserSession {
    type Result = ();

    fn handle(&mut self, msg: CloseSockets, _: &mut Context<Self>) {
        self.sockets.close_all(msg.code, msg.reason);
    }
}
