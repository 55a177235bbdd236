//! What the HTTP side (`web/routes/`) asks a user's session, because the session owns what
//! the request touches: one upload at a time per user (`BeginIngest`/`EndIngest`), thread
//! deletion (`DeleteThread`, whose `thread_deleted` the session numbers and stores), and the
//! server's shutdown (`Drain`, from the registry).

use actix::prelude::*;
use tokio::sync::oneshot;

use super::UserSession;
use crate::context::ThreadId;
use crate::runtime::refusal::Refusal;
use crate::runtime::shutdown::Drain;
use crate::store::repo;

/// An upload wants to start; at most one per user runs at a time. Answers whether it may.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct BeginIngest;

/// The upload that began is over (sent by its guard, however the upload ended).
#[derive(Message)]
#[rtype(result = "()")]
pub struct EndIngest;

/// `DELETE /api/threads/{id}`: answered once `thread_deleted` is durable.
#[derive(Message)]
#[rtype(result = "Result<(), Refusal>")]
pub struct DeleteThread {
    /// The thread to delete; one the user does not own reads as not found.
    pub thread_id: ThreadId,
}

impl Handler<BeginIngest> for UserSession {
    type Result = bool;

    fn handle(&mut self, _: BeginIngest, _: &mut Context<Self>) -> bool {
        self.begin_upload()
    }
}

impl Handler<EndIngest> for UserSession {
    type Result = ();

    fn handle(&mut self, _: EndIngest, _: &mut Context<Self>) {
        self.end_upload();
    }
}

/// One of the user's threads goes, not while a run of it is live; its events are erased in
/// the batch that stores `thread_deleted`.
impl Handler<DeleteThread> for UserSession {
    type Result = ResponseActFuture<Self, Result<(), Refusal>>;

    fn handle(&mut self, msg: DeleteThread, _: &mut Context<Self>) -> Self::Result {
        let thread_id = msg.thread_id;
        let db = self.deps.db.clone();
        let user = self.user_id.clone();
        let lookup = async move {
            db.read(move |conn| Ok(repo::threads::is_owned(conn, &user, thread_id)?))
                .await
        };
        Box::pin(lookup.into_actor(self).then(move |owned, act, ctx| {
            let ready = |r| actix::fut::ready(r).boxed_local();
            match owned {
                Ok(true) => {}
                Ok(false) => return ready(Err(Refusal::ThreadNotFound(thread_id))),
                Err(e) => {
                    log::error!("user={} thread lookup failed: {e}", act.user_id);
                    return ready(Err(Refusal::StorageUnavailable));
                }
            }
            let (notify, durable) = oneshot::channel();
            let deleting = act.core.delete_thread(thread_id, notify);
            act.perform(ctx);
            if let Err(refusal) = deleting {
                return ready(Err(refusal));
            }
            async move { durable.await.map_err(|_| Refusal::StorageUnavailable) }
                .into_actor(act)
                .boxed_local()
        }))
    }
}

/// Refuse new messages, let runs finish for the grace period, then cancel the rest; answered
/// once everything is stored and the sockets are closed with 1001.
impl Handler<Drain> for UserSession {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: Drain, ctx: &mut Context<Self>) -> Self::Result {
        let done = self.when_drained();
        ctx.run_later(msg.grace, |act, ctx| {
            act.core.grace_over();
            act.perform(ctx);
        });
        self.core.drain();
        self.perform(ctx);
        Box::pin(
            async move {
                let _ = done.await;
            }
            .into_actor(self),
        )
    }
}
