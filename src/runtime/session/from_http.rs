//! What the HTTP side (`web/routes/`) asks a user's session, because the session owns what
//! the request touches: one upload at a time per user (`BeginIngest`/`EndIngest`), thread
//! deletion (`DeleteThread`, whose `thread_deleted` the session numbers and stores), account
//! deletion (`DeleteAccount`: the session ends its runs, then moves the account's key on), and
//! the server's shutdown (`Drain`, from the registry).

use actix::prelude::*;
use tokio::sync::oneshot;

use super::UserSession;
use crate::clock::now_ms;
use crate::context::{ThreadId, UserId};
use crate::runtime::cluster::mail::{Answer, Question};
use crate::runtime::housekeeper::Sweep;
use crate::runtime::refusal::Refusal;
use crate::runtime::shutdown::Drain;
use crate::runtime::socket::close_code;
use crate::store::repo;

/// An upload wants to start; at most one per user runs at a time. Answers the key the user's
/// account stores under, or why it may not.
#[derive(Message)]
#[rtype(result = "Result<UserId, Refusal>")]
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

/// `DELETE /api/account`: answered once the account is deleted — its runs ended
/// `run_cancelled`, every event stored, and the account's key moved on in one short
/// transaction, so every route answers as for a new user. The session then closes the user's
/// sockets with 4009 and stops; the housekeeper purges the old key's rows.
#[derive(Message)]
#[rtype(result = "Result<(), Refusal>")]
pub struct DeleteAccount;

impl Handler<BeginIngest> for UserSession {
    type Result = ResponseActFuture<Self, Result<UserId, Refusal>>;

    fn handle(&mut self, _: BeginIngest, _: &mut Context<Self>) -> Self::Result {
        if self.follower.is_none() {
            return Box::pin(actix::fut::ready(self.begin_upload()));
        }
        // The follower holds the upload too (it does not passivate under it, so its end
        // reaches the owner through it).
        let asked = self.ask_owner(Question::BeginIngest, true);
        Box::pin(asked.into_actor(self).map(|answer, act, _| {
            let key = match answer? {
                Answer::Key(key) => key.and_then(|key| {
                    UserId::from_stored(&key).map_err(|_| Refusal::SessionUnavailable)
                }),
                Answer::Done(_) => Err(Refusal::SessionUnavailable),
            }?;
            act.uploading = true;
            Ok(key)
        }))
    }
}

/// What a follower's HTTP request hears from the owner's session, as that session's own
/// handler answers (`Done`).
fn done(answer: Result<Answer, Refusal>) -> Result<(), Refusal> {
    match answer? {
        Answer::Done(done) => done,
        Answer::Key(_) => Err(Refusal::SessionUnavailable),
    }
}

impl Handler<DeleteAccount> for UserSession {
    type Result = ResponseActFuture<Self, Result<(), Refusal>>;

    fn handle(&mut self, _: DeleteAccount, ctx: &mut Context<Self>) -> Self::Result {
        if self.follower.is_some() {
            // The owner deletes; this node's sockets then close as the owner's do.
            let asked = self.ask_owner(Question::DeleteAccount, true);
            return Box::pin(asked.into_actor(self).map(|answer, act, ctx| {
                let deleted = done(answer);
                if deleted.is_ok() {
                    act.sockets
                        .close_all(close_code::SESSION_RESTARTED, "account deleted");
                    ctx.stop();
                }
                deleted
            }));
        }
        if self.deleting {
            return Box::pin(actix::fut::ready(Err(Refusal::AccountDeleting)));
        }
        if self.uploading {
            // Its chunks are written under the account's key; they must not land after it.
            return Box::pin(actix::fut::ready(Err(Refusal::UploadRunning)));
        }
        self.deleting = true;
        let drained = self.when_drained();
        self.core.delete_account();
        self.perform(ctx);
        let db = self.deps.db.clone();
        let key = self.user_id.clone();
        let delete = async move {
            let _ = drained.await;
            let account = key.clone();
            db.run_as(&key, move |conn| {
                Ok(repo::accounts::delete(conn, &account, now_ms())?)
            })
            .await
        };
        Box::pin(delete.into_actor(self).map(|deleted, act, ctx| {
            // Deleted or not, this session's runs are over and it refuses messages: a fresh
            // session, started by the user's next request, reads the account anew.
            act.sockets
                .close_all(close_code::SESSION_RESTARTED, "account deleted");
            ctx.stop();
            match deleted {
                Ok(_) => {
                    log::info!("user={} account deleted", act.user_id);
                    act.tell_followers_deleted();
                    act.deps.housekeeper.do_send(Sweep);
                    Ok(())
                }
                Err(e) => {
                    log::error!("user={} account deletion failed: {e}", act.user_id);
                    Err(Refusal::StorageUnavailable)
                }
            }
        }))
    }
}

impl Handler<EndIngest> for UserSession {
    type Result = ();

    fn handle(&mut self, _: EndIngest, _: &mut Context<Self>) {
        if self.follower.is_some() {
            self.uploading = false;
            actix::spawn(self.ask_owner(Question::EndIngest, false));
            return;
        }
        self.end_upload();
    }
}

/// One of the user's threads goes, not while a run of it is live; its events are erased in
/// the batch that stores `thread_deleted`.
impl Handler<DeleteThread> for UserSession {
    type Result = ResponseActFuture<Self, Result<(), Refusal>>;

    fn handle(&mut self, msg: DeleteThread, _: &mut Context<Self>) -> Self::Result {
        let thread_id = msg.thread_id;
        if self.follower.is_some() {
            let asked = self.ask_owner(Question::DeleteThread { thread_id }, true);
            return Box::pin(async move { done(asked.await) }.into_actor(self));
        }
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
