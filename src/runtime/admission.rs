//! The way from a `user_message` to a run: one message at a time in arrival order,
//! `client_msg_id` idempotency, then the thread check, then acceptance (`scheduling.rs`).
//!
//! A `client_msg_id` is claimed in the session while its fate is open, so two copies of one
//! message (two tabs, a retry) can never both start a run; once the run's acceptance event is
//! stored, every repeat is answered on its own socket with a copy of that event. After the run
//! ends the claim is dropped and the database answers repeats, across restarts too.

use std::sync::Arc;

use actix::prelude::*;

use crate::context::{ConnectionId, ThreadId};
use crate::error::ErrorCode;
use crate::protocol::{FrameError, UserMessage};
use crate::runtime::session::UserSession;
use crate::store::repo;

/// A `client_msg_id` whose message is being admitted or whose run is live.
pub(super) struct MsgIdClaim {
    /// The first message's content; a repeat with other content is a `conflict`.
    content: String,
    /// The stored acceptance event, once durable.
    acceptance: Option<Arc<str>>,
    /// Sockets that sent a repeat before the acceptance was stored.
    waiters: Vec<ConnectionId>,
}

/// What the database remembers of a message id.
struct StoredMessage {
    content: String,
    acceptance: Option<String>,
}

impl UserSession {
    /// Queues `message` for admission. Messages are admitted one at a time, in arrival order,
    /// although admitting one may wait for the database.
    pub(super) fn admit(
        &mut self,
        ctx: &mut Context<Self>,
        conn_id: ConnectionId,
        message: UserMessage,
    ) {
        self.admission_queue.push_back((conn_id, message));
        if !self.admitting {
            self.admission_finished(ctx);
        }
    }

    /// The message being admitted is settled: admit the next one.
    pub(super) fn admission_finished(&mut self, ctx: &mut Context<Self>) {
        self.admitting = false;
        if let Some((conn_id, message)) = self.admission_queue.pop_front() {
            self.admitting = true;
            self.admit_one(ctx, conn_id, message);
        }
    }

    /// Admits `message`: a repeat is answered, a new message goes on to its thread.
    fn admit_one(&mut self, ctx: &mut Context<Self>, conn_id: ConnectionId, message: UserMessage) {
        let Some(key) = message.client_msg_id.clone() else {
            return self.admit_to_thread(ctx, conn_id, message);
        };
        if let Some(claim) = self.msg_ids.get_mut(&key) {
            if claim.content != message.content {
                self.send_error(conn_id, repeat_conflict(&key));
                return self.admission_finished(ctx);
            }
            match &claim.acceptance {
                Some(frame) => {
                    let frame = frame.to_string();
                    self.send_to(conn_id, frame);
                }
                None => claim.waiters.push(conn_id),
            }
            return self.admission_finished(ctx);
        }
        self.msg_ids.insert(
            key.clone(),
            MsgIdClaim {
                content: message.content.clone(),
                acceptance: None,
                waiters: Vec::new(),
            },
        );
        let db = self.deps.db.clone();
        let user = self.user_id.clone();
        let lookup_key = key.clone();
        let lookup = async move {
            db.read(move |conn| {
                let Some(run) = repo::runs::by_client_msg_id(conn, &user, &lookup_key)? else {
                    return Ok(None);
                };
                let acceptance = match run.accept_seq {
                    Some(seq) => repo::events::at(conn, &user, seq)?.map(|e| e.to_frame()),
                    None => None,
                };
                Ok(Some(StoredMessage {
                    content: run.content,
                    acceptance,
                }))
            })
            .await
        };
        ctx.spawn(
            lookup
                .into_actor(self)
                .map(move |found, act, ctx| match found {
                    Ok(None) => act.admit_to_thread(ctx, conn_id, message),
                    Ok(Some(stored)) => {
                        let Some(claim) = act.msg_ids.remove(&key) else {
                            return act.admission_finished(ctx);
                        };
                        let askers = std::iter::once(conn_id).chain(claim.waiters);
                        match stored.acceptance {
                            Some(frame) if stored.content == message.content => {
                                for asker in askers {
                                    act.send_to(asker, frame.clone());
                                }
                            }
                            _ => {
                                for asker in askers {
                                    act.send_error(asker, repeat_conflict(&key));
                                }
                            }
                        }
                        act.admission_finished(ctx);
                    }
                    Err(e) => {
                        log::error!("user={} message id lookup failed: {e}", act.user_id);
                        act.release_msg_id(Some(&key), Some(conn_id), storage_unavailable(&key));
                        act.admission_finished(ctx);
                    }
                }),
        );
    }

    /// The thread check: a message to an existing thread needs it to be this user's.
    fn admit_to_thread(
        &mut self,
        ctx: &mut Context<Self>,
        conn_id: ConnectionId,
        message: UserMessage,
    ) {
        let Some(thread_id) = message.thread_id else {
            return self.accept(ctx, conn_id, message, None);
        };
        if self.known_threads.contains(&thread_id) {
            return self.accept(ctx, conn_id, message, Some(thread_id));
        }
        let db = self.deps.db.clone();
        let user = self.user_id.clone();
        let lookup = async move {
            db.read(move |conn| Ok(repo::threads::is_owned(conn, &user, thread_id)?))
                .await
        };
        ctx.spawn(lookup.into_actor(self).map(move |owned, act, ctx| {
            let key = message.client_msg_id.clone();
            let refuse = |error: FrameError| match &key {
                Some(id) => error.with_ref(id.clone()),
                None => error,
            };
            match owned {
                Ok(true) => {
                    act.known_threads.insert(thread_id);
                    return act.accept(ctx, conn_id, message, Some(thread_id));
                }
                Ok(false) => {
                    let error = refuse(thread_not_found(thread_id));
                    act.release_msg_id(key.as_deref(), Some(conn_id), error);
                }
                Err(e) => {
                    log::error!("user={} thread lookup failed: {e}", act.user_id);
                    let error = refuse(FrameError::new(
                        ErrorCode::Unavailable,
                        "storage unavailable; try again",
                    ));
                    act.release_msg_id(key.as_deref(), Some(conn_id), error);
                }
            }
            act.admission_finished(ctx);
        }));
    }

    /// The message with `key` was not admitted: forget its claim and tell the sender and any
    /// socket that repeated it.
    pub(super) fn release_msg_id(
        &mut self,
        key: Option<&str>,
        sender: Option<ConnectionId>,
        error: FrameError,
    ) {
        let waiters = key
            .and_then(|k| self.msg_ids.remove(k))
            .map(|claim| claim.waiters)
            .unwrap_or_default();
        for conn_id in sender.into_iter().chain(waiters) {
            self.send_error(conn_id, error.clone());
        }
    }

    /// The acceptance event of the run holding `key` is stored: remember it and answer the
    /// repeats that waited for it.
    pub(super) fn msg_id_accepted(&mut self, key: &str, frame: &Arc<str>) {
        let Some(claim) = self.msg_ids.get_mut(key) else {
            return;
        };
        claim.acceptance = Some(frame.clone());
        let waiters = std::mem::take(&mut claim.waiters);
        for conn_id in waiters {
            self.send_to(conn_id, frame.to_string());
        }
    }

    /// The run holding `key` ended durably: from now on the database answers repeats.
    pub(super) fn msg_id_settled(&mut self, key: &str) {
        self.msg_ids.remove(key);
    }
}

fn repeat_conflict(key: &str) -> FrameError {
    FrameError::new(
        ErrorCode::Conflict,
        format!("client_msg_id {key:?} was already used for a different message"),
    )
    .with_ref(key)
}

fn storage_unavailable(key: &str) -> FrameError {
    FrameError::new(ErrorCode::Unavailable, "storage unavailable; try again").with_ref(key)
}

fn thread_not_found(thread_id: ThreadId) -> FrameError {
    FrameError::new(ErrorCode::NotFound, format!("thread {thread_id} not found"))
}
