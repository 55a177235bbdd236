//! `SessionCore`: everything a user session decides, as plain state. The actor
//! (`session/mod.rs`) turns each message it receives into one call here and then performs the
//! `Effect`s the call left: a batch to write, frames to send, a supervisor to start, a slot
//! to ask for, a read to make. No actor, timer or database is reachable from here, which is
//! what lets `tests.rs` replay thousands of random interleavings against the invariants.
//!
//! The parts: `EventLog` (numbering, durability), `RunTable` (run phases), `Admission`
//! (message order and ids), `Approvals`; `admit.rs` and `runs.rs` hold the rules joining them.

mod admit;
mod runs;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::context::{ApprovalId, ConnectionId, RunId, ThreadId, UserId};
use crate::protocol::{
    ActiveRunInfo, CancelReason, Event, EventKind, EventPayload, FrameError, InterruptReason,
    PROTOCOL_VERSION, RunStatus, ServerFrame, UserMessage,
};
use crate::runtime::rate_limit::TokenBucket;
use crate::runtime::refusal::Refusal;
use crate::runtime::session::admission::Admission;
use crate::runtime::session::approvals::Approvals;
use crate::runtime::session::event_log::EventLog;
use crate::runtime::session::run_table::{Phase, RunStart, RunTable, status_of};
use crate::runtime::socket::Frames;
use crate::store::batch::{WriteBatch, WriteOp};

pub(crate) use admit::StoredMessage;
pub(crate) use runs::ApprovalRequest;

/// The limits and settings a session decides by.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// Runs of the user holding or waiting for a server slot at once.
    pub(crate) max_running: usize,
    /// Runs of the user waiting behind those.
    pub(crate) max_queued: usize,
    /// Most events one write batch holds.
    pub(crate) batch_max: usize,
    /// How long an approval waits for the user.
    pub(crate) approval_timeout: Duration,
    /// `user_message`s a minute, and the burst allowed.
    pub(crate) messages_per_minute: u32,
    pub(crate) message_burst: u32,
    /// The agents a run starts with (`run_started.plan`).
    pub(crate) plan: Vec<String>,
}

/// Something the actor does on the core's behalf, in the order given.
#[derive(Debug)]
pub(crate) enum Effect {
    /// Store this batch; answer with `batch_stored` or `batch_lost`.
    Write(WriteBatch),
    /// Wait this long after a lost batch, then call `rested`.
    Rest(Duration),
    /// Durable events for every socket of the user.
    Broadcast(Frames),
    /// One frame for one socket.
    Send(ConnectionId, Arc<str>),
    /// A refusal for one socket.
    Refuse(ConnectionId, FrameError),
    /// Ask whether the database knows this message id; answer `message_id_looked_up`.
    LookUpMessageId {
        conn_id: ConnectionId,
        message: UserMessage,
    },
    /// Ask whether the thread is the user's; answer `thread_looked_up`.
    LookUpThread {
        conn_id: ConnectionId,
        message: UserMessage,
        thread_id: ThreadId,
    },
    /// Tell the socket why a run or approval the session does not hold cannot be acted on
    /// (finished, or not the user's), from the database.
    ExplainUnknownRun {
        conn_id: ConnectionId,
        raw_id: String,
        run_id: RunId,
    },
    ExplainUnknownApproval {
        conn_id: ConnectionId,
        raw_id: String,
        approval_id: ApprovalId,
    },
    /// Ask the server for a run slot; answer `slot_answered`, and later `slot_granted`.
    AcquireSlot(RunId),
    /// Give a run's slot (or its place in the server's queue) back.
    ReleaseSlot(RunId),
    /// The run's `run_started` is durable: start its supervisor.
    StartSupervisor(RunStart),
    /// Ask the run's supervisor to cancel it (it answers with `run_finished`).
    CancelSupervisor {
        run_id: RunId,
        reason: CancelReason,
    },
    /// Stop the run's supervisor without a word (the session has decided how it ends).
    AbortSupervisor(RunId),
    /// The run's approval waits for the user: its attempt's timeout pauses, then resumes.
    PauseAttemptTimer(RunId),
    ResumeAttemptTimer(RunId),
    /// Call `approval_expired` after this long.
    ExpireApproval(ApprovalId, Duration),
    /// The run left the session (its end is durable, or it was never stored).
    Forget(RunId),
    /// A run ended with this status (for the metrics).
    RunEnded(RunStatus),
    /// Draining is complete: close the sockets and tell whoever waits.
    Drained,
}

/// A run whose first request for a server slot is out, with what its acceptance needs.
struct Acquiring {
    run_id: RunId,
    conn_id: ConnectionId,
    message: UserMessage,
    thread: Option<ThreadId>,
    /// `SlotGranted` came before the answer to the request (the actor serves its mailbox
    /// before the request's reply), so the run starts when the answer says `Waiting`.
    granted: bool,
}

/// The state of one user's session.
pub(crate) struct SessionCore {
    /// Whose session this is; every batch is written for this user.
    user_id: UserId,
    /// The limits in force.
    limits: Limits,
    /// The user's event sequence.
    log: EventLog,
    /// The runs this session accepted and has not seen end durably.
    runs: RunTable,
    /// Messages waiting for admission, and claimed message ids.
    admission: Admission,
    /// The `user_message` rate limit.
    rate: TokenBucket,
    /// Approvals waiting for the user.
    approvals: Approvals,
    /// Threads known to be this user's, so a message to one needs no read.
    threads: HashSet<ThreadId>,
    /// Threads this session deleted: a message to one whose ownership was read before the
    /// deletion (the read raced it) is refused as for a thread that does not exist.
    deleted_threads: HashSet<ThreadId>,
    /// The run being admitted while its first slot request is out.
    acquiring: Option<Acquiring>,
    /// Why no new messages are admitted, if they are not: the server is shutting down, or the
    /// user's account is being deleted.
    closing: Option<Refusal>,
    /// Someone waits for draining to complete.
    drain_wanted: bool,
    /// What the actor has to do, taken by `take_effects`.
    effects: Vec<Effect>,
}

impl SessionCore {
    /// The session of `user_id`, whose highest stored `seq` is `last_seq`.
    pub(crate) fn new(user_id: UserId, last_seq: i64, limits: Limits) -> Self {
        Self {
            log: EventLog::new(last_seq, limits.batch_max),
            rate: TokenBucket::new(limits.message_burst, limits.messages_per_minute),
            user_id,
            limits,
            runs: RunTable::default(),
            admission: Admission::default(),
            approvals: Approvals::default(),
            threads: HashSet::new(),
            deleted_threads: HashSet::new(),
            acquiring: None,
            closing: None,
            drain_wanted: false,
            effects: Vec::new(),
        }
    }

    /// The user's history is loaded: the session stores under the account `key` (the id, or a
    /// later generation after a deletion), numbers after `last_seq`, and the runs a failed
    /// predecessor or a lost node left live (`orphans`) end `run_interrupted` with `reason`.
    pub(crate) fn loaded(
        &mut self,
        key: UserId,
        last_seq: i64,
        orphans: Vec<(RunId, ThreadId)>,
        reason: InterruptReason,
    ) {
        self.user_id = key;
        self.log = EventLog::new(last_seq, self.limits.batch_max);
        self.orphans(orphans, reason);
    }

    /// The effects left by the calls so far, in order.
    pub(crate) fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// Highest durable `seq`.
    pub(crate) fn last_seq(&self) -> i64 {
        self.log.last_seq()
    }

    /// The server is shutting down or the account is being deleted: no new messages are
    /// admitted.
    pub(crate) fn is_draining(&self) -> bool {
        self.closing.is_some()
    }

    /// Runs waiting in a queue (for the metrics).
    pub(crate) fn queued_runs(&self) -> usize {
        self.runs.queued()
    }

    /// Nothing would be lost by stopping: no run, approval, message or write.
    pub(crate) fn is_idle(&self) -> bool {
        self.runs.is_empty()
            && self.approvals.is_empty()
            && self.log.is_settled()
            && self.admission.is_idle()
            && self.acquiring.is_none()
    }

    /// The `connected` frame for a socket joining now.
    pub(crate) fn connected(&self, conn_id: ConnectionId) -> ServerFrame {
        let active_runs = self
            .runs
            .active()
            .map(|(run_id, run)| {
                let waits =
                    run.phase() == Phase::Running && self.approvals.of_run(run_id).is_some();
                let status = if waits {
                    RunStatus::AwaitingApproval
                } else {
                    status_of(run.phase())
                };
                ActiveRunInfo {
                    run_id,
                    thread_id: run.thread_id(),
                    status,
                }
            })
            .collect();
        ServerFrame::Connected {
            user_id: self.user_id.subject_id(),
            connection_id: conn_id.to_string(),
            last_seq: self.last_seq(),
            protocol: PROTOCOL_VERSION,
            active_runs,
            pending_approvals: self.approvals.list(),
        }
    }

    /// The batch in flight is stored: settle its runs and message ids, start the runs whose
    /// `run_started` it holds, and deliver it.
    pub(crate) fn batch_stored(&mut self, batch: &WriteBatch) {
        if !self.log.durable(batch) {
            return;
        }
        let frames: Frames = batch
            .events
            .iter()
            .map(|e| Arc::from(e.to_frame()))
            .collect();
        let mut copies = Vec::new();
        for (event, frame) in batch.events.iter().zip(frames.iter()) {
            let Some(run_id) = event.run_id else {
                continue;
            };
            let Some(run) = self.runs.get(run_id) else {
                continue;
            };
            let key = run.client_msg_id().map(str::to_owned);
            if event.kind.is_terminal() {
                self.runs.remove(run_id);
                self.admission.release(key.as_deref());
                self.effects.push(Effect::Forget(run_id));
                continue;
            }
            if matches!(event.kind, EventKind::RunStarted | EventKind::RunQueued) {
                self.runs.accepted(run_id);
                if let Some(key) = key {
                    copies.push((key, frame.clone()));
                }
            }
            if event.kind == EventKind::RunStarted
                && let Some(start) = self.runs.started(run_id)
            {
                self.effects.push(Effect::StartSupervisor(start));
            }
        }
        self.effects.push(Effect::Broadcast(frames));
        // Copies for repeated messages go after the live events: a client that keeps the
        // highest seq it has seen must never see a copy before the events it follows.
        for (key, frame) in copies {
            for conn_id in self.admission.accepted(&key, frame.clone()) {
                self.effects.push(Effect::Send(conn_id, frame.clone()));
            }
        }
        self.check_drained();
        self.flush();
    }

    /// The batch in flight could not be stored and nothing of it was sent. Its runs can no
    /// longer tell a gapless story: one whose acceptance is stored ends `run_failed`
    /// `storage_unavailable` (stored once storage is back); one whose message never was is
    /// forgotten and its socket told to send it again.
    pub(crate) fn batch_lost(&mut self, batch: &WriteBatch) {
        let Some(rest) = self.log.lost(batch) else {
            return;
        };
        let mut affected: Vec<RunId> = Vec::new();
        for event in &batch.events {
            if event.kind == EventKind::ThreadCreated
                && let Some(thread_id) = event.thread_id
            {
                self.threads.remove(&thread_id);
            }
            if let Some(run_id) = event.run_id
                && !affected.contains(&run_id)
            {
                affected.push(run_id);
            }
        }
        self.log.forget_runs(&affected);
        for run_id in affected {
            self.lose_run(run_id);
        }
        self.promote();
        self.effects.push(Effect::Rest(rest.backoff));
        self.check_drained();
    }

    /// The rest after a lost batch is over.
    pub(crate) fn rested(&mut self) {
        self.log.rested();
        self.flush();
    }

    /// The server drains: refuse new messages, and report `Drained` once every run has
    /// ended and every event is stored.
    pub(crate) fn drain(&mut self) {
        self.close_to_messages(Refusal::ShuttingDown);
    }

    /// The user deletes their account: refuse new messages, cancel every run now
    /// (`run_cancelled`, reason `user`), and report `Drained` once all have ended and every
    /// event is stored.
    pub(crate) fn delete_account(&mut self) {
        self.close_to_messages(Refusal::AccountDeleting);
        self.cancel_all(CancelReason::User);
    }

    /// No new message is admitted from now on (those waiting are refused with `refusal`);
    /// `Drained` is reported once every run has ended and every event is stored.
    fn close_to_messages(&mut self, refusal: Refusal) {
        self.drain_wanted = true;
        for (conn_id, _) in self.admission.take_waiting() {
            self.refuse(conn_id, &refusal, None);
        }
        self.closing.get_or_insert(refusal);
        self.check_drained();
    }

    pub(super) fn check_drained(&mut self) {
        let quiet = self.runs.is_empty()
            && self.approvals.is_empty()
            && self.acquiring.is_none()
            && self.log.is_settled();
        if self.drain_wanted && quiet {
            self.drain_wanted = false;
            self.effects.push(Effect::Drained);
        }
    }

    /// Cuts the next batch if the writer is free.
    fn flush(&mut self) {
        if let Some(batch) = self.log.cut(&self.user_id) {
            self.effects.push(Effect::Write(batch));
        }
    }

    /// Queues an event for the next batch, with the row change it announces.
    fn push(
        &mut self,
        thread_id: ThreadId,
        run_id: Option<RunId>,
        agent: Option<String>,
        payload: impl Into<EventPayload>,
        op: Option<WriteOp>,
    ) {
        let event = Event::new(payload, Some(thread_id), run_id, agent);
        self.log.push(event, op, None);
    }

    fn refuse(&mut self, conn_id: ConnectionId, refusal: &Refusal, reference: Option<&str>) {
        self.effects
            .push(Effect::Refuse(conn_id, refusal.frame(reference)));
    }
}
