//! What the session hears from the cluster (`runtime/cluster/`): letters from other nodes
//! (`FromNode`), notifications of the user's stored events (`EventsStored`, `CatchUp`), and
//! lost nodes (`NodesLost`). An owner serves the requests followers relay — a relayed socket
//! is answered by mail (`answer`) — and a follower delivers what the owner sends back, or
//! passes a request on if the user's owner has changed.

use std::sync::Arc;

use actix::prelude::*;

use super::{DeleteAccount, DeleteThread, ObjectRequest, ObjectRequestKind, StartRun, UserSession};
use crate::context::ConnectionId;
use crate::protocol::{FrameError, ServerFrame};
use crate::runtime::cluster::mail::{Answer, Command, Mail, Question};
use crate::runtime::cluster::mailroom::Post;
use crate::runtime::cluster::{CatchUp, CheckLeases, EventsStored, FromNode, NodesLost};
use crate::runtime::refusal::Refusal;
use crate::runtime::socket::{Frames, close_code, one_frame};
use crate::store::{cluster, leases};

impl UserSession {
    /// Frames for one socket: to it here, or by mail to the node holding it.
    pub(super) fn answer(&mut self, conn: ConnectionId, frames: Frames) {
        let (Some(node), Some(mailroom)) = (self.remote_sockets.get(&conn), &self.deps.mailroom)
        else {
            return self.sockets.deliver(conn, frames);
        };
        mailroom.do_send(Post {
            to: node.clone(),
            mail: Mail::Frames {
                user: self.user_id.subject().to_owned(),
                conn,
                after: self.core.last_seq(),
                frames: frames.iter().map(|f| f.to_string()).collect(),
            },
        });
    }

    /// An `error` frame for one socket, here or on another node.
    pub(super) fn answer_error(&mut self, conn: ConnectionId, error: FrameError) {
        self.answer(conn, one_frame(ServerFrame::error(error).to_frame()));
    }

    /// A request a follower relayed: served as if its socket were here.
    fn serve_command(
        &mut self,
        ctx: &mut Context<Self>,
        reply_to: String,
        conn: ConnectionId,
        command: Command,
    ) {
        let kind = match command {
            Command::Detached => {
                self.remote_sockets.remove(&conn);
                return;
            }
            Command::Message { message } => {
                self.remote_sockets.insert(conn, Arc::from(reply_to));
                let start = StartRun {
                    conn_id: conn,
                    message,
                };
                return Handler::<StartRun>::handle(self, start, ctx);
            }
            Command::CancelRun { id } => (ObjectRequestKind::CancelRun, id),
            Command::Approval { id, decision } => (ObjectRequestKind::Approval(decision), id),
        };
        self.remote_sockets.insert(conn, Arc::from(reply_to));
        let request = ObjectRequest {
            conn_id: conn,
            kind: kind.0,
            id: kind.1,
        };
        Handler::<ObjectRequest>::handle(self, request, ctx);
    }

    /// A question a follower asked for an HTTP request: answered as the session answers its
    /// own node's requests.
    fn serve_question(
        &mut self,
        ctx: &mut Context<Self>,
        reply_to: String,
        ask: Option<u64>,
        question: Question,
    ) {
        let reply_to: Arc<str> = Arc::from(reply_to);
        let answer = match question {
            Question::BeginIngest => {
                let began = self.begin_upload().map(|key| key.to_string());
                if began.is_ok() {
                    self.remote_upload = Some(reply_to.clone());
                }
                Answer::Key(began)
            }
            Question::EndIngest => {
                self.remote_upload = None;
                self.end_upload();
                return;
            }
            Question::DeleteThread { thread_id } => {
                let asked = ctx.address().send(DeleteThread { thread_id });
                return self.answer_later(reply_to, ask, asked);
            }
            Question::DeleteAccount => {
                let asked = ctx.address().send(DeleteAccount);
                return self.answer_later(reply_to, ask, asked);
            }
        };
        self.send_answer(reply_to, ask, answer);
    }

    /// Answers `ask` once the session's own handler has.
    fn answer_later(
        &self,
        reply_to: Arc<str>,
        ask: Option<u64>,
        asked: impl Future<Output = Result<Result<(), Refusal>, MailboxError>> + 'static,
    ) {
        let (Some(mailroom), Some(ask)) = (self.deps.mailroom.clone(), ask) else {
            return;
        };
        actix::spawn(async move {
            let done = asked.await.unwrap_or(Err(Refusal::SessionUnavailable));
            mailroom.do_send(Post {
                to: reply_to,
                mail: Mail::Answer {
                    ask,
                    answer: Answer::Done(done),
                },
            });
        });
    }

    /// The account was deleted: every node following the user closes its sockets too.
    pub(super) fn tell_followers_deleted(&self) {
        let Some(mailroom) = self.deps.mailroom.clone() else {
            return;
        };
        let (db, key) = (self.deps.db.clone(), self.user_id.clone());
        let user = self.user_id.subject().to_owned();
        actix::spawn(async move {
            let Ok(nodes) = db
                .aside(move |conn| cluster::followers_of(conn, &key))
                .await
            else {
                return;
            };
            for node in nodes {
                let mail = Mail::AccountDeleted { user: user.clone() };
                mailroom.do_send(Post {
                    to: Arc::from(node),
                    mail,
                });
            }
        });
    }

    fn send_answer(&self, reply_to: Arc<str>, ask: Option<u64>, answer: Answer) {
        if let (Some(mailroom), Some(ask)) = (&self.deps.mailroom, ask) {
            mailroom.do_send(Post {
                to: reply_to,
                mail: Mail::Answer { ask, answer },
            });
        }
    }
}

impl Handler<FromNode> for UserSession {
    type Result = ();

    fn handle(&mut self, msg: FromNode, ctx: &mut Context<Self>) {
        if let Some(follower) = &self.follower {
            match msg.mail {
                Mail::Frames {
                    conn,
                    after,
                    frames,
                    ..
                } => {
                    let frames: Frames = frames.into_iter().map(Arc::from).collect();
                    self.hold_until(ctx, after, conn, frames);
                }
                Mail::AccountDeleted { .. } => {
                    self.sockets
                        .close_all(close_code::SESSION_RESTARTED, "account deleted");
                    ctx.stop();
                }
                // The user's owner is elsewhere now: the request goes on to it.
                mail @ (Mail::Command { .. } | Mail::Ask { .. }) => {
                    if let Some(mailroom) = &self.deps.mailroom {
                        let to = follower.owner().clone();
                        mailroom.do_send(Post { to, mail });
                    }
                }
                Mail::Answer { .. } => {}
            }
            return;
        }
        match msg.mail {
            Mail::Command {
                reply_to,
                conn,
                command,
                ..
            } => self.serve_command(ctx, reply_to, conn, command),
            Mail::Ask {
                reply_to,
                ask,
                question,
                ..
            } => self.serve_question(ctx, reply_to, ask, question),
            Mail::Frames { .. } | Mail::Answer { .. } | Mail::AccountDeleted { .. } => {}
        }
    }
}

impl Handler<EventsStored> for UserSession {
    type Result = ();

    fn handle(&mut self, _: EventsStored, ctx: &mut Context<Self>) {
        self.catch_up(ctx);
    }
}

/// An owner whose claim is no longer the latest stops, unwritten; a follower follows again.
impl Handler<CheckLeases> for UserSession {
    type Result = ();

    fn handle(&mut self, _: CheckLeases, ctx: &mut Context<Self>) {
        if self.follower.is_some() {
            // Followed again (another node may have forgotten this one meanwhile), then
            // caught up with what was stored while no notification could come.
            let (db, user) = (self.deps.db.clone(), self.user_id.clone());
            let node = db.node_id().clone();
            let follow = async move {
                let user_key = user.clone();
                db.run_as(&user, move |conn| {
                    cluster::follow_again(conn, &user_key, &node)
                })
                .await
            };
            ctx.spawn(follow.into_actor(self).map(|_, act, ctx| act.catch_up(ctx)));
            return;
        }
        let Some(epoch) = self.lease else {
            return;
        };
        let (db, user) = (self.deps.db.clone(), self.user_id.clone());
        let read = async move { db.aside(move |conn| leases::epoch_of(conn, &user)).await };
        ctx.spawn(read.into_actor(self).map(move |latest, act, ctx| {
            if let Ok(latest) = latest
                && latest != Some(epoch)
            {
                act.fenced(ctx);
            }
        }));
    }
}

impl UserSession {
    /// Another node claimed the user since this session did (this one was paused or cut off
    /// past its lease): it numbers the user's events now, and nothing more may be written
    /// here. The session stops; its sockets close 4009 and reconnect to the new owner.
    pub(super) fn fenced(&mut self, ctx: &mut Context<Self>) {
        log::warn!(
            "user={} was claimed by another node: this session stops unwritten",
            self.user_id
        );
        self.deps.metrics.fenced_sessions.inc();
        self.lease = None;
        ctx.stop();
    }
}

impl Handler<CatchUp> for UserSession {
    type Result = ();

    fn handle(&mut self, _: CatchUp, ctx: &mut Context<Self>) {
        self.catch_up(ctx);
    }
}

/// A follower of a lost node closes its sockets (they reconnect, and the user is claimed
/// anew); an owner forgets the lost nodes' sockets and their upload.
impl Handler<NodesLost> for UserSession {
    type Result = ();

    fn handle(&mut self, msg: NodesLost, ctx: &mut Context<Self>) {
        let lost = |node: &Arc<str>| msg.nodes.iter().any(|n| **n == **node);
        if let Some(follower) = &self.follower {
            if lost(follower.owner()) {
                log::info!("user={} lost its owner node: reconnect", self.user_id);
                self.sockets
                    .close_all(close_code::SESSION_RESTARTED, "the user's node was lost");
                ctx.stop();
            }
            return;
        }
        self.remote_sockets.retain(|_, node| !lost(node));
        if self.remote_upload.as_ref().is_some_and(lost) {
            self.remote_upload = None;
            self.end_upload();
        }
    }
}
