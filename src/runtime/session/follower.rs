//! A follower session: the session of a user whose owner is another node (`store/leases.rs`),
//! holding this node's sockets of that user. It numbers nothing and runs nothing. Events it
//! reads from the database when the owner's batches notify this node (`catch_up`), so its
//! sockets get exactly the stored sequence, only once it is durable; the requests of its sockets
//! and of HTTP it relays to the owner as mail (`runtime/cluster/`), and the owner's frames for
//! one socket come back the same way. When the owner's lease is gone the follower closes its
//! sockets with 4009 and stops: they reconnect, and the user is claimed anew.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::{Attach, UserSession};
use crate::context::{ConnectionId, UserId};
use crate::protocol::{ActiveRunInfo, Event, PROTOCOL_VERSION, PendingApprovalInfo, ServerFrame};
use crate::runtime::cluster::mail::{Answer, Command, Mail, Question};
use crate::runtime::cluster::mailroom::{AskOwner, Post};
use crate::runtime::refusal::Refusal;
use crate::runtime::socket::{Frames, Outbound, close_code};
use crate::store::connection::DbConnection;
use crate::store::{StoreError, repo};

/// How long a follower whose read of new events failed waits before reading again.
const RETRY_READ: Duration = Duration::from_millis(200);

/// What a follower session keeps.
pub(super) struct Follower {
    /// The node that owns the user.
    owner: Arc<str>,
    /// The highest `seq` delivered to this session's sockets.
    delivered: i64,
    /// A read of new events is in flight.
    reading: bool,
    /// More was stored since that read began.
    again: bool,
    /// Sockets that sent the owner a request: the owner is told when they go.
    commanded: HashSet<ConnectionId>,
    /// Frames for one socket from the owner, held until the events they follow are
    /// delivered: `(after, socket, frames)`, in arrival order.
    held: Vec<(i64, ConnectionId, Frames)>,
}

impl Follower {
    /// Following `owner`'s user from `last_seq` on.
    pub(super) fn new(owner: String, last_seq: i64) -> Self {
        Self {
            owner: Arc::from(owner),
            delivered: last_seq,
            reading: false,
            again: false,
            commanded: HashSet::new(),
            held: Vec::new(),
        }
    }

    /// The node that owns the user.
    pub(super) fn owner(&self) -> &Arc<str> {
        &self.owner
    }

    /// The highest `seq` delivered.
    pub(super) fn delivered(&self) -> i64 {
        self.delivered
    }
}

impl UserSession {
    /// Reads the events stored since the last one delivered, page by page, and delivers them
    /// to every socket; one read at a time.
    pub(super) fn catch_up(&mut self, ctx: &mut Context<Self>) {
        let Some(follower) = self.follower.as_mut() else {
            return;
        };
        if follower.reading {
            follower.again = true;
            return;
        }
        follower.reading = true;
        follower.again = false;
        let after = follower.delivered;
        let limit = self.deps.config.replay_page.max(1);
        let read = move |conn: &mut _, user: &_| {
            Ok(repo::events::range(conn, user, after, i64::MAX, limit)?)
        };
        self.read_then(ctx, "follow", read, move |act, ctx, events| {
            let Some(follower) = act.follower.as_mut() else {
                return;
            };
            follower.reading = false;
            let Ok(events) = events else {
                ctx.run_later(RETRY_READ, |act, ctx| act.catch_up(ctx));
                return;
            };
            let more = events.len() as i64 == limit || follower.again;
            act.deliver_read(events);
            if more {
                act.catch_up(ctx);
            }
        });
    }

    /// Delivers the events read after `delivered` to every socket, skipping those a read that
    /// ended first delivered already.
    fn deliver_read(&mut self, events: Vec<Event>) {
        let Some(follower) = self.follower.as_mut() else {
            return;
        };
        let fresh: Vec<Event> = events
            .into_iter()
            .filter(|e| e.seq > follower.delivered)
            .collect();
        if let Some(last) = fresh.last() {
            follower.delivered = last.seq;
            let frames: Frames = fresh.iter().map(|e| Arc::from(e.to_frame())).collect();
            self.sockets.broadcast(&frames);
        }
        self.release_held();
    }

    /// Frames the owner sent one socket after its `seq` `after`: delivered once the events up to
    /// `after` are (reading them now if the notification has not come yet).
    pub(super) fn hold_until(
        &mut self,
        ctx: &mut Context<Self>,
        after: i64,
        conn: ConnectionId,
        frames: Frames,
    ) {
        let Some(follower) = self.follower.as_mut() else {
            return;
        };
        follower.held.push((after, conn, frames));
        if after > follower.delivered {
            return self.catch_up(ctx);
        }
        self.release_held();
    }

    /// Delivers the held frames whose events have all been delivered, in order.
    fn release_held(&mut self) {
        let Some(follower) = self.follower.as_mut() else {
            return;
        };
        let delivered = follower.delivered;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut follower.held)
            .into_iter()
            .partition(|(after, _, _)| *after <= delivered);
        follower.held = waiting;
        for (_, conn, frames) in ready {
            self.sockets.deliver(conn, frames);
        }
    }

    /// Brings `delivered` up to what the database holds (a page's worth) before `then`, holding
    /// the mailbox meanwhile: a socket joining or resuming on a follower starts from the
    /// database's last `seq`, not from behind it (the notifications may lag), and nothing of
    /// the socket's is handled before it has joined.
    fn caught_up_then<T, Q, K>(&mut self, ctx: &mut Context<Self>, query: Q, then: K)
    where
        T: Send + 'static,
        Q: FnOnce(&mut DbConnection, &UserId) -> Result<T, StoreError> + Send + 'static,
        K: FnOnce(&mut Self, &mut Context<Self>, Result<T, ()>) + 'static,
    {
        let Some(follower) = &self.follower else {
            return;
        };
        let (after, limit) = (follower.delivered, self.deps.config.replay_page.max(1));
        let (db, user) = (self.deps.db.clone(), self.user_id.clone());
        let read = async move {
            db.read(move |conn| {
                let events = repo::events::range(conn, &user, after, i64::MAX, limit)?;
                Ok((events, query(conn, &user)?))
            })
            .await
        };
        ctx.wait(read.into_actor(self).map(move |read, act, ctx| match read {
            Ok((events, found)) => {
                act.deliver_read(events);
                then(act, ctx, Ok(found));
            }
            Err(e) => {
                log::error!("user={} follower read failed: {e}", act.user_id);
                then(act, ctx, Err(()));
            }
        }));
    }

    /// A `resume` on a follower: replayed once `delivered` has caught up with the database,
    /// so a client that saw more elsewhere is not told its history is not the server's.
    pub(super) fn follower_resume(
        &mut self,
        ctx: &mut Context<Self>,
        conn: ConnectionId,
        after: i64,
    ) {
        self.caught_up_then(
            ctx,
            |_, _| Ok(()),
            move |act, ctx, _| {
                act.start_replay(ctx, conn, after);
            },
        );
    }

    /// A socket joins a follower: `connected` lists the runs and approvals the database holds,
    /// at the `seq` this session has delivered, caught up with the database in the same read;
    /// live events follow from there. A read that fails refuses the socket (4009: it
    /// reconnects).
    pub(super) fn follower_attach(&mut self, ctx: &mut Context<Self>, msg: Attach) {
        let read = |conn: &mut DbConnection, user: &UserId| {
            let runs = repo::runs::live_with_status(conn, user)?;
            let approvals = repo::approvals::pending(conn, user)?;
            Ok((runs, approvals))
        };
        self.caught_up_then(ctx, read, move |act, ctx, found| {
            let (Some(follower), Ok((runs, approvals))) = (&act.follower, found) else {
                msg.socket.do_send(Outbound::Close {
                    code: close_code::SESSION_RESTARTED,
                    reason: "the user's history could not be read; reconnect",
                });
                return;
            };
            let connected = ServerFrame::Connected {
                user_id: act.user_id.subject_id(),
                connection_id: msg.conn_id.to_string(),
                last_seq: follower.delivered(),
                protocol: PROTOCOL_VERSION,
                active_runs: runs
                    .into_iter()
                    .map(|(run_id, thread_id, status)| ActiveRunInfo {
                        run_id,
                        thread_id,
                        status,
                    })
                    .collect(),
                pending_approvals: approvals
                    .into_iter()
                    .filter_map(|row| {
                        Some(PendingApprovalInfo {
                            run_id: crate::context::RunId::parse(&row.run_id).ok()?,
                            approval_id: row.approval_id,
                            action: row.action,
                            expires_at: row.expires_at,
                        })
                    })
                    .collect(),
            };
            act.join(ctx, msg, connected.to_frame());
        });
    }

    /// Relays a socket's request to the owner.
    pub(super) fn relay(&mut self, conn: ConnectionId, command: Command) {
        let (Some(follower), Some(mailroom)) = (self.follower.as_mut(), &self.deps.mailroom) else {
            return;
        };
        if !matches!(command, Command::Detached) {
            follower.commanded.insert(conn);
        }
        mailroom.do_send(Post {
            to: follower.owner.clone(),
            mail: Mail::Command {
                user: self.user_id.subject().to_owned(),
                reply_to: self.deps.db.node_id().to_string(),
                conn,
                command,
            },
        });
    }

    /// A socket left a follower: the owner forgets it, if it ever sent the owner anything.
    pub(super) fn follower_detach(&mut self, conn: ConnectionId) {
        if let Some(follower) = self.follower.as_mut()
            && follower.commanded.remove(&conn)
        {
            self.relay(conn, Command::Detached);
        }
    }

    /// Asks the owner a question for an HTTP request (`None`: tells it, wanting no answer).
    pub(super) fn ask_owner(
        &self,
        question: Question,
        wait: bool,
    ) -> impl Future<Output = Result<Answer, Refusal>> + use<> {
        let mailroom = self.deps.mailroom.clone();
        let owner = self.follower.as_ref().map(|f| f.owner.clone());
        let user = self.user_id.subject().to_owned();
        let reply_to = self.deps.db.node_id().to_string();
        async move {
            let (Some(mailroom), Some(to)) = (mailroom, owner) else {
                return Err(Refusal::SessionUnavailable);
            };
            if !wait {
                let mail = Mail::Ask {
                    user,
                    reply_to,
                    ask: None,
                    question,
                };
                mailroom.do_send(Post { to, mail });
                return Ok(Answer::Done(Ok(())));
            }
            mailroom
                .send(AskOwner { to, user, question })
                .await
                .map_err(|_| Refusal::SessionUnavailable)?
        }
    }
}
