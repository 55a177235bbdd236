//! Requests from the HTTP side that need the user's session, because it owns what they
//! touch: one upload at a time per user (`BeginIngest`/`EndIngest`), and thread deletion
//! (`DeleteThread`), whose `thread_deleted` event the session numbers and stores.

use actix::prelude::*;
use serde_json::json;
use tokio::sync::oneshot;

use crate::context::ThreadId;
use crate::protocol::EventKind;
use crate::runtime::session::UserSession;
use crate::store::batch::WriteOp;
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
#[rtype(result = "Result<(), ThreadDeleteError>")]
pub struct DeleteThread {
    pub thread_id: ThreadId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ThreadDeleteError {
    #[error("thread not found")]
    NotFound,
    #[error("a run of this thread is still active; cancel it or wait for it to finish")]
    Active,
    #[error("storage unavailable; try again")]
    Unavailable,
}

/// One upload at a time per user.
impl Handler<BeginIngest> for UserSession {
    type Result = bool;

    fn handle(&mut self, _: BeginIngest, _: &mut Context<Self>) -> bool {
        !std::mem::replace(&mut self.ingesting, true)
    }
}

impl Handler<EndIngest> for UserSession {
    type Result = ();

    fn handle(&mut self, _: EndIngest, _: &mut Context<Self>) {
        self.ingesting = false;
    }
}

/// Deletes one of the user's threads: not while a run of it is live; its events are erased in
/// the same batch that stores `thread_deleted`.
impl Handler<DeleteThread> for UserSession {
    type Result = ResponseActFuture<Self, Result<(), ThreadDeleteError>>;

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
                Ok(false) => return ready(Err(ThreadDeleteError::NotFound)),
                Err(_) => return ready(Err(ThreadDeleteError::Unavailable)),
                Ok(true) => {}
            }
            if act.runs.values().any(|run| run.thread_id == thread_id) {
                return ready(Err(ThreadDeleteError::Active));
            }
            act.known_threads.remove(&thread_id);
            let (notify, durable) = oneshot::channel();
            let op = WriteOp::DeleteThread { thread_id };
            act.push_notified(thread_id, EventKind::ThreadDeleted, json!({}), op, notify);
            act.flush(ctx);
            async move { durable.await.map_err(|_| ThreadDeleteError::Unavailable) }
                .into_actor(act)
                .boxed_local()
        }))
    }
}
