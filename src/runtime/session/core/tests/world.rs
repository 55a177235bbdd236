//! The world around a `SessionCore` in the tests: a model of the writer (batches stored or
//! lost), the server's slots, the database's answers, the supervisors and the user's sockets,
//! playing the actor's part for every effect and checking the session's invariants after
//! every step (`check_limits`) and once everything has settled (`check_settled`).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::agents::RunAnswer;
use crate::runtime::run_slots::SlotAnswer;
use crate::runtime::session::RunOutcome;
use crate::runtime::session::core::*;
use crate::runtime::session::run_table::Awaiting;

pub(super) const MAX_RUNNING: usize = 2;
const MAX_QUEUED: usize = 2;
/// Fewer than the user may run at once, and other users take slots too (`Op::OtherTakes`), so
/// the user's requests wait, and grants race the answers to them.
pub(super) const SERVER_SLOTS: usize = 2;
pub(super) const SOCKETS: usize = 3;

fn limits() -> Limits {
    Limits {
        max_running: MAX_RUNNING,
        max_queued: MAX_QUEUED,
        batch_max: 4,
        approval_timeout: Duration::from_secs(60),
        messages_per_minute: 60,
        message_burst: 100_000,
        plan: vec!["data".into(), "reporting".into()],
    }
}

/// A socket as the client sees it.
pub(super) struct Client {
    pub(super) conn_id: ConnectionId,
    pub(super) attached: bool,
    /// The `seq` it resumed after, and the sequenced events it received since, in order.
    pub(super) from: i64,
    pub(super) seqs: Vec<i64>,
}

/// The session's surroundings, playing the actor's part for each effect.
pub(super) struct World {
    pub(super) core: SessionCore,
    pub(super) now: Instant,
    /// Durable events by seq, and the rows the stored batches made.
    pub(super) store: BTreeMap<i64, Arc<str>>,
    pub(super) stored_runs: HashMap<RunId, (String, Option<String>, i64)>,
    pub(super) stored_threads: Vec<ThreadId>,
    pub(super) accepted: HashSet<RunId>,
    pub(super) ended: HashSet<RunId>,
    pub(super) in_flight: Option<WriteBatch>,
    pub(super) resting: bool,
    /// The server's slots: holders and the waiting line.
    pub(super) holding: HashSet<RunId>,
    pub(super) waiting: VecDeque<RunId>,
    pub(super) slot_answers: VecDeque<(RunId, SlotAnswer)>,
    pub(super) grants: VecDeque<RunId>,
    pub(super) lookups: VecDeque<Effect>,
    /// Runs with a live supervisor, and those asked to cancel.
    pub(super) supervised: Vec<(RunId, ThreadId)>,
    pub(super) cancelling: HashMap<RunId, crate::protocol::CancelReason>,
    pub(super) approvals: Vec<ApprovalId>,
    /// Every run id the session mentioned, for cancels of live and finished runs.
    pub(super) runs_seen: Vec<RunId>,
    pub(super) clients: Vec<Client>,
    /// The server asked the session to drain, and the session said it has.
    pub(super) drain_asked: bool,
    /// Runs whose `run_started` is stored: only these may get a supervisor.
    pub(super) started_durably: HashSet<RunId>,
    /// Slots other users hold.
    pub(super) others: Vec<RunId>,
    pub(super) drained: bool,
}

impl World {
    pub(super) fn new() -> Self {
        let mut world = Self {
            core: SessionCore::new(UserId::parse("alice").expect("valid"), 0, limits()),
            now: Instant::now(),
            store: BTreeMap::new(),
            stored_runs: HashMap::new(),
            stored_threads: Vec::new(),
            accepted: HashSet::new(),
            ended: HashSet::new(),
            in_flight: None,
            resting: false,
            holding: HashSet::new(),
            waiting: VecDeque::new(),
            slot_answers: VecDeque::new(),
            grants: VecDeque::new(),
            lookups: VecDeque::new(),
            supervised: Vec::new(),
            cancelling: HashMap::new(),
            approvals: Vec::new(),
            runs_seen: Vec::new(),
            clients: Vec::new(),
            drain_asked: false,
            started_durably: HashSet::new(),
            others: Vec::new(),
            drained: false,
        };
        for _ in 0..SOCKETS {
            let conn_id = ConnectionId::new();
            world.clients.push(Client {
                conn_id,
                attached: true,
                from: 0,
                seqs: Vec::new(),
            });
        }
        world
    }

    pub(super) fn perform(&mut self) {
        for effect in self.core.take_effects() {
            match effect {
                Effect::Write(batch) => {
                    assert!(self.in_flight.is_none(), "one batch in flight");
                    // What a drained session writes would land after a deletion's transaction.
                    assert!(!self.drained, "nothing is written once drained");
                    self.in_flight = Some(batch);
                }
                Effect::Rest(_) => self.resting = true,
                Effect::Broadcast(frames) => {
                    for frame in frames.iter() {
                        let seq = seq_of(frame);
                        assert_eq!(self.store.get(&seq), Some(frame), "delivered only durable");
                        for client in self.clients.iter_mut().filter(|c| c.attached) {
                            client.seqs.push(seq);
                        }
                    }
                }
                Effect::Send(..) | Effect::Refuse(..) | Effect::RunEnded(_) => {}
                effect @ (Effect::LookUpMessageId { .. }
                | Effect::LookUpThread { .. }
                | Effect::ExplainUnknownRun { .. }
                | Effect::ExplainUnknownApproval { .. }) => self.lookups.push_back(effect),
                Effect::AcquireSlot(run_id) => {
                    self.runs_seen.push(run_id);
                    let answer = if self.holding.len() < SERVER_SLOTS {
                        self.holding.insert(run_id);
                        SlotAnswer::Granted
                    } else {
                        self.waiting.push_back(run_id);
                        SlotAnswer::Waiting
                    };
                    self.slot_answers.push_back((run_id, answer));
                }
                Effect::ReleaseSlot(run_id) => self.release_slot(run_id),
                Effect::StartSupervisor(start) => {
                    assert!(
                        self.started_durably.contains(&start.run_id),
                        "started once its run_started is stored"
                    );
                    self.supervised.push((start.run_id, start.thread_id));
                }
                Effect::CancelSupervisor { run_id, reason } => {
                    self.cancelling.insert(run_id, reason);
                }
                Effect::AbortSupervisor(run_id) | Effect::Forget(run_id) => {
                    self.supervised.retain(|(r, _)| *r != run_id);
                }
                Effect::PauseAttemptTimer(_) | Effect::ResumeAttemptTimer(_) => {}
                Effect::ExpireApproval(approval_id, _) => self.approvals.push(approval_id),
                Effect::Drained => {
                    assert!(self.drain_asked, "drained only when asked");
                    assert!(self.core.runs.is_empty(), "drained with no run left");
                    self.drained = true;
                }
            }
        }
        self.check_limits();
    }

    fn check_limits(&self) {
        let runs = &self.core.runs;
        assert!(runs.occupying() <= MAX_RUNNING, "user's running limit");
        let waiting_for_user = runs
            .ids()
            .into_iter()
            .filter(|id| {
                runs.get(*id)
                    .is_some_and(|r| r.phase() == Phase::Queued(Awaiting::UserSlot))
            })
            .count();
        assert!(waiting_for_user <= MAX_QUEUED, "user's queue limit");
        assert!(self.holding.len() <= SERVER_SLOTS, "server's slots");
    }

    /// A slot (or a place in the server's line) is given back; the next waiting run gets it.
    pub(super) fn release_slot(&mut self, run_id: RunId) {
        self.waiting.retain(|r| *r != run_id);
        if self.holding.remove(&run_id)
            && let Some(next) = self.waiting.pop_front()
        {
            self.holding.insert(next);
            self.grants.push_back(next);
        }
    }

    pub(super) fn store_batch(&mut self) {
        let Some(batch) = self.in_flight.take() else {
            return;
        };
        let expected_first = self.store.keys().next_back().copied().unwrap_or(0) + 1;
        for (i, event) in batch.events.iter().enumerate() {
            assert_eq!(event.seq, expected_first + i as i64, "gapless numbering");
            self.store.insert(event.seq, Arc::from(event.to_frame()));
            if let Some(run_id) = event.run_id {
                if matches!(event.kind, EventKind::RunStarted | EventKind::RunQueued) {
                    self.accepted.insert(run_id);
                }
                if event.kind == EventKind::RunStarted {
                    self.started_durably.insert(run_id);
                }
                if event.kind.is_terminal() {
                    assert!(self.ended.insert(run_id), "one terminal event per run");
                }
            }
        }
        for op in &batch.ops {
            match op {
                WriteOp::CreateRun {
                    run_id,
                    content,
                    client_msg_id,
                    accept_seq,
                    ..
                } => {
                    let row = (content.clone(), client_msg_id.clone(), *accept_seq);
                    self.stored_runs.insert(*run_id, row);
                }
                WriteOp::CreateThread { thread_id, .. } => {
                    self.stored_threads.push(*thread_id);
                }
                _ => {}
            }
        }
        self.core.batch_stored(&batch);
    }

    pub(super) fn answer_lookup(&mut self, fail: bool) {
        let Some(effect) = self.lookups.pop_front() else {
            return;
        };
        match effect {
            Effect::LookUpMessageId { conn_id, message } => {
                let key = message.client_msg_id.clone();
                let found = self.stored_runs.values().find(|(_, k, _)| *k == key).map(
                    |(content, _, seq)| StoredMessage {
                        content: content.clone(),
                        acceptance: self.store.get(seq).map(|f| f.to_string()),
                    },
                );
                let found = if fail { Err(()) } else { Ok(found) };
                self.core.message_id_looked_up(conn_id, message, found);
            }
            Effect::LookUpThread {
                conn_id,
                message,
                thread_id,
            } => {
                let owned = self.stored_threads.contains(&thread_id);
                let owned = if fail { Err(()) } else { Ok(owned) };
                self.core
                    .thread_looked_up(conn_id, message, thread_id, owned);
            }
            _ => {}
        }
        self.perform();
    }

    pub(super) fn pick_supervised(&self, run: usize) -> Option<(RunId, ThreadId)> {
        if self.supervised.is_empty() {
            return None;
        }
        self.supervised.get(run % self.supervised.len()).copied()
    }

    /// A supervisor ends its run: cancelled if asked, else completed or failed.
    pub(super) fn finish(&mut self, run: usize, fail: bool) {
        let Some((run_id, _)) = self.pick_supervised(run) else {
            return;
        };
        self.supervised.retain(|(r, _)| *r != run_id);
        let outcome = match self.cancelling.remove(&run_id) {
            Some(reason) => RunOutcome::Cancelled { reason },
            None if fail => RunOutcome::Failed {
                code: crate::protocol::FailureCode::AgentFailed,
                error: "it failed".into(),
            },
            None => RunOutcome::Completed(RunAnswer {
                full_report_markdown: None,
                summary: "done".into(),
                report_markdown: String::new(),
                result: json!({}),
            }),
        };
        self.core.run_finished(run_id, outcome);
    }

    /// The client reconnects and resumes after the last `seq` it saw: the replay is what the
    /// store holds up to the session's `last_seq`, then the live stream follows.
    pub(super) fn reattach(&mut self, conn: usize) {
        let through = self.core.last_seq();
        let client = &mut self.clients[conn];
        if client.attached {
            return;
        }
        let after = client.seqs.last().copied().unwrap_or(client.from);
        client.attached = true;
        client.from = after;
        client.seqs.clear();
        if after < through {
            let replay = self.store.range(after + 1..=through).map(|(seq, _)| *seq);
            client.seqs.extend(replay);
        }
    }

    /// Everything pending happens, successfully, until nothing is left.
    pub(super) fn settle(&mut self) {
        for _ in 0..10_000 {
            if self.in_flight.is_some() {
                self.store_batch();
            } else if self.resting {
                self.resting = false;
                self.core.rested();
            } else if let Some(other) = self.others.pop() {
                self.release_slot(other);
            } else if let Some((run_id, answer)) = self.slot_answers.pop_front() {
                self.core.slot_answered(run_id, Ok(answer));
            } else if let Some(run_id) = self.grants.pop_front() {
                self.core.slot_granted(run_id);
            } else if !self.lookups.is_empty() {
                self.answer_lookup(false);
            } else if let Some(id) = self.approvals.pop() {
                self.core.approval_expired(id);
            } else if !self.supervised.is_empty() {
                self.finish(0, false);
            } else {
                return;
            }
            self.perform();
        }
        panic!("the session did not settle");
    }

    pub(super) fn check_settled(&self) {
        assert_eq!(
            self.drained, self.drain_asked,
            "a drain completes once all has settled"
        );
        assert!(self.core.is_idle(), "nothing left in the session");
        assert!(
            self.holding.is_empty() && self.waiting.is_empty(),
            "slots given back"
        );
        let last = self.store.keys().next_back().copied().unwrap_or(0);
        assert_eq!(self.core.last_seq(), last);
        let seqs: Vec<i64> = self.store.keys().copied().collect();
        assert_eq!(seqs, (1..=last).collect::<Vec<_>>(), "the store is gapless");
        for run_id in &self.accepted {
            assert!(self.ended.contains(run_id), "every admitted run ends");
        }
        for client in self.clients.iter().filter(|c| c.attached) {
            let expected: Vec<i64> = (client.from + 1..=last).collect();
            assert_eq!(
                client.seqs, expected,
                "each socket got every durable event once"
            );
        }
    }
}

fn seq_of(frame: &str) -> i64 {
    let value: Value = serde_json::from_str(frame).expect("an event frame");
    value["seq"].as_i64().expect("a seq")
}
