//! From a `user_message` to an accepted run: the drain and rate checks, admission one message
//! at a time, the `client_msg_id` check (the session's claims, then the database), the thread
//! check, the user's limits and a server slot, then the acceptance events — `thread_created`,
//! `message_received` and `run_started` or `run_queued` — pushed together.

use std::sync::Arc;
use std::time::Instant;

use super::{Acquiring, Effect, SessionCore};
use crate::clock::now_ms;
use crate::context::{ConnectionId, RunId, ThreadId};
use crate::protocol::payload;
use crate::protocol::{EventPayload, QueueReason, RunStatus, UserMessage};
use crate::runtime::refusal::Refusal;
use crate::runtime::run_slots::SlotAnswer;
use crate::runtime::session::admission::ClaimResult;
use crate::runtime::session::run_table::{Awaiting, Phase};
use crate::store::batch::WriteOp;

/// What the database remembers of a message id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredMessage {
    /// The message it was used for.
    pub(crate) content: String,
    /// Its run's acceptance event as a frame, if that run was accepted.
    pub(crate) acceptance: Option<String>,
}

/// Whether admitting a message finished or waits for an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admitting {
    Settled,
    Waiting,
}

/// How a run enters the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Acceptance {
    Start,
    Queued(Awaiting),
}

impl SessionCore {
    /// A validated `user_message` from one of the user's sockets, arriving at `now`.
    pub(crate) fn message(&mut self, conn_id: ConnectionId, message: UserMessage, now: Instant) {
        let key = message.client_msg_id.clone();
        if let Some(closing) = self.closing.clone() {
            return self.refuse(conn_id, &closing, key.as_deref());
        }
        if !self.rate.take_at(now) {
            let refusal = Refusal::MessageRate {
                per_minute: self.limits.messages_per_minute,
                burst: self.limits.message_burst,
                retry_ms: u64::try_from(self.rate.wait().as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
            };
            return self.refuse(conn_id, &refusal, key.as_deref());
        }
        if let Some((conn_id, message)) = self.admission.arrive(conn_id, message)
            && self.admit(conn_id, message) == Admitting::Settled
        {
            self.admit_next();
        }
        self.flush();
    }

    /// The database's answer about a message id the session did not know.
    pub(crate) fn message_id_looked_up(
        &mut self,
        conn_id: ConnectionId,
        message: UserMessage,
        found: Result<Option<StoredMessage>, ()>,
    ) {
        let key = message.client_msg_id.clone();
        let admitting = match found {
            Ok(None) => self.admit_to_thread(conn_id, message),
            Ok(Some(stored)) => {
                let askers: Vec<ConnectionId> = std::iter::once(conn_id)
                    .chain(self.admission.release(key.as_deref()))
                    .collect();
                match stored.acceptance {
                    Some(frame) if stored.content == message.content => {
                        let frame: Arc<str> = Arc::from(frame);
                        for asker in askers {
                            self.effects.push(Effect::Send(asker, frame.clone()));
                        }
                    }
                    _ => {
                        let refusal = Refusal::MessageIdReused(key.clone().unwrap_or_default());
                        for asker in askers {
                            self.refuse(asker, &refusal, key.as_deref());
                        }
                    }
                }
                Admitting::Settled
            }
            Err(()) => {
                self.turn_away(conn_id, key.as_deref(), &Refusal::StorageUnavailable);
                Admitting::Settled
            }
        };
        self.answered(admitting);
    }

    /// The database's answer whether `thread_id` is the user's.
    pub(crate) fn thread_looked_up(
        &mut self,
        conn_id: ConnectionId,
        message: UserMessage,
        thread_id: ThreadId,
        owned: Result<bool, ()>,
    ) {
        let key = message.client_msg_id.clone();
        // A deletion that came in while the read was out wins: the thread is gone.
        let owned = owned.map(|owned| owned && !self.deleted_threads.contains(&thread_id));
        let admitting = match owned {
            Ok(true) => {
                self.threads.insert(thread_id);
                self.accept(conn_id, message, Some(thread_id))
            }
            Ok(false) => {
                let refusal = Refusal::ThreadNotFound(thread_id);
                self.turn_away(conn_id, key.as_deref(), &refusal);
                Admitting::Settled
            }
            Err(()) => {
                self.turn_away(conn_id, key.as_deref(), &Refusal::StorageUnavailable);
                Admitting::Settled
            }
        };
        self.answered(admitting);
    }

    /// An answer the admission waited for is in: if that settled the message, the next ones
    /// are admitted.
    fn answered(&mut self, admitting: Admitting) {
        if admitting == Admitting::Settled {
            self.admit_next();
        }
        self.flush();
    }

    /// The server's answer to a slot request (`Err`: the server is stopping).
    pub(crate) fn slot_answered(&mut self, run_id: RunId, answer: Result<SlotAnswer, ()>) {
        let Some(acquiring) = self.acquiring.take_if(|a| a.run_id == run_id) else {
            // A promoted run's request: a grant starts it, `Waiting` means `slot_granted`
            // comes later.
            if answer == Ok(SlotAnswer::Granted) {
                self.slot_granted(run_id);
            }
            return;
        };
        if let Some(closing) = self.closing.clone() {
            // The session closed while the slot was asked for (a drain, the account's
            // deletion): nothing of the message may be stored now.
            if answer.is_ok() {
                self.effects.push(Effect::ReleaseSlot(run_id));
            }
            let key = acquiring.message.client_msg_id.clone();
            self.turn_away(acquiring.conn_id, key.as_deref(), &closing);
            self.admit_next();
            return self.check_drained();
        }
        let acceptance = match answer {
            Ok(SlotAnswer::Granted) => Acceptance::Start,
            Ok(SlotAnswer::Waiting) if acquiring.granted => Acceptance::Start,
            Ok(SlotAnswer::Waiting) => Acceptance::Queued(Awaiting::ServerSlot),
            Err(()) => {
                let key = acquiring.message.client_msg_id.clone();
                self.turn_away(acquiring.conn_id, key.as_deref(), &Refusal::ShuttingDown);
                self.admit_next();
                return self.flush();
            }
        };
        let Acquiring {
            conn_id,
            message,
            thread,
            ..
        } = acquiring;
        self.record_acceptance(conn_id, run_id, message, thread, acceptance);
        self.admit_next();
        self.flush();
    }

    /// A queued run got a server slot: it starts. A slot for a run that is gone or no longer
    /// waits goes back.
    pub(crate) fn slot_granted(&mut self, run_id: RunId) {
        if let Some(acquiring) = self.acquiring.as_mut().filter(|a| a.run_id == run_id) {
            // Not yet accepted: the answer to its request starts it.
            acquiring.granted = true;
            return;
        }
        let Some(thread_id) = self.runs.slot_granted(run_id) else {
            return self.effects.push(Effect::ReleaseSlot(run_id));
        };
        let key = self
            .runs
            .get(run_id)
            .and_then(|r| r.client_msg_id())
            .map(str::to_owned);
        let started = self.run_started(key);
        let op = WriteOp::MarkRunning {
            run_id,
            thread_id,
            ts: now_ms(),
        };
        self.push(thread_id, Some(run_id), None, started, Some(op));
        self.flush();
    }

    /// Admits the messages waiting, until one waits for an answer.
    fn admit_next(&mut self) {
        while let Some((conn_id, message)) = self.admission.next() {
            if self.admit(conn_id, message) == Admitting::Waiting {
                return;
            }
        }
    }

    /// Admits one message: a repeat of a claimed id is answered, a new one goes on.
    fn admit(&mut self, conn_id: ConnectionId, message: UserMessage) -> Admitting {
        let Some(key) = message.client_msg_id.clone() else {
            return self.admit_to_thread(conn_id, message);
        };
        match self.admission.claim(&key, &message.content, conn_id) {
            ClaimResult::New => {
                self.effects
                    .push(Effect::LookUpMessageId { conn_id, message });
                Admitting::Waiting
            }
            ClaimResult::Conflict => {
                self.refuse(conn_id, &Refusal::MessageIdReused(key.clone()), Some(&key));
                Admitting::Settled
            }
            ClaimResult::Copy(frame) => {
                self.effects.push(Effect::Send(conn_id, frame));
                Admitting::Settled
            }
            ClaimResult::Waiting => Admitting::Settled,
        }
    }

    /// The thread check: a message to an existing thread needs it to be this user's.
    fn admit_to_thread(&mut self, conn_id: ConnectionId, message: UserMessage) -> Admitting {
        match message.thread_id {
            None => self.accept(conn_id, message, None),
            Some(thread_id) if self.threads.contains(&thread_id) => {
                self.accept(conn_id, message, Some(thread_id))
            }
            Some(thread_id) => {
                self.effects.push(Effect::LookUpThread {
                    conn_id,
                    message,
                    thread_id,
                });
                Admitting::Waiting
            }
        }
    }

    /// The user's limits: room among the user's runs asks the server for a slot; else the run
    /// queues, unless the queue is full too.
    fn accept(
        &mut self,
        conn_id: ConnectionId,
        message: UserMessage,
        thread: Option<ThreadId>,
    ) -> Admitting {
        let (running, queued) = (self.runs.occupying(), self.runs.queued());
        let run_id = RunId::new();
        if running < self.limits.max_running {
            self.effects.push(Effect::AcquireSlot(run_id));
            self.acquiring = Some(Acquiring {
                run_id,
                conn_id,
                message,
                thread,
                granted: false,
            });
            return Admitting::Waiting;
        }
        if queued >= self.limits.max_queued {
            let key = message.client_msg_id.clone();
            self.turn_away(
                conn_id,
                key.as_deref(),
                &Refusal::RunLimit { running, queued },
            );
            return Admitting::Settled;
        }
        let acceptance = Acceptance::Queued(Awaiting::UserSlot);
        self.record_acceptance(conn_id, run_id, message, thread, acceptance);
        Admitting::Settled
    }

    /// Pushes the acceptance events and records the run, starting or queued.
    fn record_acceptance(
        &mut self,
        conn_id: ConnectionId,
        run_id: RunId,
        message: UserMessage,
        thread: Option<ThreadId>,
        acceptance: Acceptance,
    ) {
        let now = now_ms();
        let key = message.client_msg_id.clone();
        let thread_id = match thread {
            Some(thread_id) => thread_id,
            None => {
                let thread_id = ThreadId::new();
                let title = thread_title(&message.content);
                let created = payload::ThreadCreated {
                    title: title.clone(),
                    client_msg_id: key.clone(),
                };
                let op = WriteOp::CreateThread {
                    thread_id,
                    title,
                    ts: now,
                };
                self.push(thread_id, Some(run_id), None, created, Some(op));
                self.threads.insert(thread_id);
                thread_id
            }
        };
        let received = payload::MessageReceived {
            content: message.content.clone(),
            client_msg_id: key.clone(),
        };
        self.push(thread_id, Some(run_id), None, received, None);
        let (status, accepted, phase): (_, EventPayload, _) = match acceptance {
            Acceptance::Start => {
                let started = self.run_started(key.clone());
                (RunStatus::Running, started.into(), Phase::Starting)
            }
            Acceptance::Queued(awaiting) => {
                let queued = payload::RunQueued {
                    position: self.runs.queued() + 1,
                    reason: match awaiting {
                        Awaiting::UserSlot => QueueReason::UserLimit,
                        Awaiting::ServerSlot => QueueReason::ServerBusy,
                    },
                    client_msg_id: key.clone(),
                };
                (RunStatus::Queued, queued.into(), Phase::Queued(awaiting))
            }
        };
        let op = WriteOp::CreateRun {
            run_id,
            thread_id,
            status,
            content: message.content.clone(),
            client_msg_id: key.clone(),
            accept_seq: 0,
            ts: now,
        };
        self.push(thread_id, Some(run_id), None, accepted, Some(op));
        self.runs
            .insert(run_id, thread_id, phase, message.content, conn_id, key);
    }

    /// `run_started`: the plan, and the client's message id.
    fn run_started(&self, client_msg_id: Option<String>) -> payload::RunStarted {
        payload::RunStarted {
            plan: self.limits.plan.clone(),
            client_msg_id,
        }
    }

    /// A message that will not become a run: its claim goes, and its sender and every
    /// socket that repeated it hear why.
    pub(super) fn turn_away(
        &mut self,
        conn_id: ConnectionId,
        key: Option<&str>,
        refusal: &Refusal,
    ) {
        let waiters = self.admission.release(key);
        for asker in std::iter::once(conn_id).chain(waiters) {
            self.refuse(asker, refusal, key);
        }
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
