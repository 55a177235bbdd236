//! The way from a `user_message` to a run: `client_msg_id` idempotency, then the thread check,
//! then acceptance — started at once, queued behind the user's executing runs, or refused when
//! the queue is full — and the promotion of queued runs as slots free up.
//!
//! A `client_msg_id` is claimed in the session while its fate is open, so two copies of one
//! message (two tabs, a retry) can never both start a run; once the run's acceptance event is
//! stored, every repeat is answered on its own socket with a copy of that event. After the run
//! ends the claim is dropped and the database answers repeats, across restarts too.

use std::sync::Arc;

use actix::prelude::*;
use serde_json::{Value, json};

use crate::clock::now_ms;
use crate::context::{ConnectionId, RunId, ThreadId, UserContext};
use crate::error::ErrorCode;
use crate::protocol::{EventKind, FrameError, RunStatus, UserMessage};
use crate::runtime::run_events::RunEvents;
use crate::runtime::run_supervisor::RunSupervisor;
use crate::runtime::session::{LiveRun, RunPhase, UserSession};
use crate::store::batch::WriteOp;
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
    fn admission_finished(&mut self, ctx: &mut Context<Self>) {
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
            self.accept(ctx, conn_id, message, None);
            return self.admission_finished(ctx);
        };
        if self.known_threads.contains(&thread_id) {
            self.accept(ctx, conn_id, message, Some(thread_id));
            return self.admission_finished(ctx);
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
                    act.accept(ctx, conn_id, message, Some(thread_id));
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

impl UserSession {
    /// Accepts a message on `thread` (a new one when `None`): stores the acceptance events and
    /// starts the run, or queues it when the user already has the most runs executing. A user
    /// with a full queue is refused (`rate_limited`) and nothing is recorded.
    pub(super) fn accept(
        &mut self,
        ctx: &mut Context<Self>,
        conn_id: ConnectionId,
        message: UserMessage,
        thread: Option<ThreadId>,
    ) {
        let config = &self.deps.config;
        let running = self.runs.values().filter(|r| r.is_running()).count();
        let queued = self.runs.values().filter(|r| r.is_queued()).count();
        let start_now = running < config.max_running_per_user;
        if !start_now && queued >= config.max_queued_per_user {
            let mut error = FrameError::new(
                ErrorCode::RateLimited,
                format!(
                    "{running} runs are executing and {queued} queued, the most allowed; \
                     wait for one to finish"
                ),
            );
            if let Some(id) = &message.client_msg_id {
                error = error.with_ref(id.clone());
            }
            let key = message.client_msg_id.clone();
            return self.release_msg_id(key.as_deref(), Some(conn_id), error);
        }
        let run_id = RunId::new();
        let now = now_ms();
        let with_msg_id = |mut data: Value| {
            if let (Some(id), Some(object)) = (&message.client_msg_id, data.as_object_mut()) {
                object.insert("client_msg_id".into(), json!(id));
            }
            data
        };
        let thread_id = match thread {
            Some(thread_id) => thread_id,
            None => {
                let thread_id = ThreadId::new();
                let title = thread_title(&message.content);
                let op = WriteOp::CreateThread {
                    thread_id,
                    title: title.clone(),
                    ts: now,
                };
                let data = with_msg_id(json!({ "title": title }));
                let kind = EventKind::ThreadCreated;
                self.push(thread_id, Some(run_id), None, kind, data, Some(op));
                self.known_threads.insert(thread_id);
                thread_id
            }
        };
        let data = with_msg_id(json!({ "content": message.content }));
        let kind = EventKind::MessageReceived;
        self.push(thread_id, Some(run_id), None, kind, data, None);
        let (status, kind, data) = if start_now {
            let plan = self.deps.pipeline.names();
            (
                RunStatus::Running,
                EventKind::RunStarted,
                with_msg_id(json!({ "plan": plan })),
            )
        } else {
            let position = queued + 1;
            (
                RunStatus::Queued,
                EventKind::RunQueued,
                with_msg_id(json!({ "position": position, "reason": "user_limit" })),
            )
        };
        let op = WriteOp::CreateRun {
            run_id,
            thread_id,
            status: status.as_str(),
            content: message.content.clone(),
            client_msg_id: message.client_msg_id.clone(),
            accept_seq: 0,
            ts: now,
        };
        self.push(thread_id, Some(run_id), None, kind, data, Some(op));
        self.accepted_runs += 1;
        let phase = if start_now {
            self.spawn_supervisor(
                ctx,
                run_id,
                thread_id,
                message.content,
                message.client_msg_id.as_deref(),
            )
        } else {
            RunPhase::Queued {
                content: message.content,
            }
        };
        self.runs.insert(
            run_id,
            LiveRun {
                thread_id,
                phase,
                order: self.accepted_runs,
                accepted: false,
                origin: conn_id,
                client_msg_id: message.client_msg_id,
            },
        );
        self.flush(ctx);
    }

    /// Starts queued runs, oldest first, while the user has free slots.
    pub(super) fn promote(&mut self, ctx: &mut Context<Self>) {
        loop {
            let running = self.runs.values().filter(|r| r.is_running()).count();
            if running >= self.deps.config.max_running_per_user {
                return;
            }
            let next = self
                .runs
                .iter()
                .filter(|(_, run)| run.is_queued())
                .min_by_key(|(_, run)| run.order)
                .map(|(run_id, _)| *run_id);
            let Some(run_id) = next else {
                return;
            };
            let Some(run) = self.runs.get_mut(&run_id) else {
                return;
            };
            let RunPhase::Queued { content } = std::mem::replace(&mut run.phase, RunPhase::Ending)
            else {
                return;
            };
            let thread_id = run.thread_id;
            let client_msg_id = run.client_msg_id.clone();
            let mut data = json!({ "plan": self.deps.pipeline.names() });
            if let (Some(id), Some(object)) = (&client_msg_id, data.as_object_mut()) {
                object.insert("client_msg_id".into(), json!(id));
            }
            let op = WriteOp::MarkRunning {
                run_id,
                thread_id,
                ts: now_ms(),
            };
            let kind = EventKind::RunStarted;
            self.push(thread_id, Some(run_id), None, kind, data, Some(op));
            let phase =
                self.spawn_supervisor(ctx, run_id, thread_id, content, client_msg_id.as_deref());
            if let Some(run) = self.runs.get_mut(&run_id) {
                run.phase = phase;
            }
        }
    }

    fn spawn_supervisor(
        &self,
        ctx: &mut Context<Self>,
        run_id: RunId,
        thread_id: ThreadId,
        content: String,
        client_msg_id: Option<&str>,
    ) -> RunPhase {
        let user_ctx = UserContext::new(self.user_id.clone(), thread_id, run_id, client_msg_id);
        let events = RunEvents::new(ctx.address().recipient(), thread_id, run_id);
        let supervisor = RunSupervisor::new(
            user_ctx,
            content,
            self.deps.clone(),
            events,
            ctx.address().recipient(),
        )
        .start();
        RunPhase::Running { supervisor }
    }
}

/// A thread's title: the first line of its first message, at most 80 characters.
fn thread_title(content: &str) -> String {
    let first_line = content.lines().next().unwrap_or_default().trim();
    let mut title: String = first_line.chars().take(80).collect();
    if first_line.chars().count() > 80 {
        title.push('…');
    }
    title
}
