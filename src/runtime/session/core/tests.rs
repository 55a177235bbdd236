//! `SessionCore` driven without actix: a few scenarios, then a property test that replays
//! random interleavings of messages, agent events, lost batches, cancels, approvals,
//! disconnects and resumes against a model of the writer, the server's slots and the sockets,
//! and checks the session's invariants after every step and once everything has settled.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::agents::RunAnswer;
use crate::protocol::ApprovalDecision;
use crate::runtime::run_slots::SlotAnswer;
use crate::runtime::run_supervisor::RunOutcome;
use crate::runtime::session::run_table::Awaiting;

const MAX_RUNNING: usize = 2;
const MAX_QUEUED: usize = 2;
const SERVER_SLOTS: usize = 3;
const SOCKETS: usize = 3;

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

/// One step of the world.
#[derive(Debug, Clone)]
enum Op {
    /// A socket sends a message: to a new thread (`thread` 0), a stored thread, or a thread
    /// that is not the user's; with one of a few `client_msg_id`s or none.
    Message {
        conn: usize,
        thread: u8,
        key: Option<u8>,
        content: u8,
    },
    StoreBatch,
    LoseBatch,
    Rested,
    AnswerSlot,
    DeliverGrant,
    AnswerLookup {
        fail: bool,
    },
    Emit {
        run: usize,
    },
    Finish {
        run: usize,
        fail: bool,
    },
    Cancel {
        run: usize,
    },
    AskApproval {
        run: usize,
    },
    Approve {
        approval: usize,
    },
    Expire {
        approval: usize,
    },
    Detach {
        conn: usize,
    },
    Reattach {
        conn: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..SOCKETS, 0u8..4, proptest::option::of(0u8..3), 0u8..2).prop_map(
            |(conn, thread, key, content)| Op::Message { conn, thread, key, content }
        ),
        6 => Just(Op::StoreBatch),
        1 => Just(Op::LoseBatch),
        2 => Just(Op::Rested),
        3 => Just(Op::AnswerSlot),
        2 => Just(Op::DeliverGrant),
        3 => proptest::bool::weighted(0.2).prop_map(|fail| Op::AnswerLookup { fail }),
        4 => (0usize..8).prop_map(|run| Op::Emit { run }),
        2 => (0usize..8, any::<bool>()).prop_map(|(run, fail)| Op::Finish { run, fail }),
        1 => (0usize..8).prop_map(|run| Op::Cancel { run }),
        1 => (0usize..8).prop_map(|run| Op::AskApproval { run }),
        1 => (0usize..4).prop_map(|approval| Op::Approve { approval }),
        1 => (0usize..4).prop_map(|approval| Op::Expire { approval }),
        1 => (0..SOCKETS).prop_map(|conn| Op::Detach { conn }),
        1 => (0..SOCKETS).prop_map(|conn| Op::Reattach { conn }),
    ]
}

/// A socket as the client sees it.
struct Client {
    conn_id: ConnectionId,
    attached: bool,
    /// The `seq` it resumed after, and the sequenced events it received since, in order.
    from: i64,
    seqs: Vec<i64>,
}

/// The session's surroundings, playing the actor's part for each effect.
struct World {
    core: SessionCore,
    now: Instant,
    /// Durable events by seq, and the rows the stored batches made.
    store: BTreeMap<i64, Arc<str>>,
    stored_runs: HashMap<RunId, (String, Option<String>, i64)>,
    stored_threads: Vec<ThreadId>,
    accepted: HashSet<RunId>,
    ended: HashSet<RunId>,
    in_flight: Option<WriteBatch>,
    resting: bool,
    /// The server's slots: holders and the waiting line.
    holding: HashSet<RunId>,
    waiting: VecDeque<RunId>,
    slot_answers: VecDeque<(RunId, SlotAnswer)>,
    grants: VecDeque<RunId>,
    lookups: VecDeque<Effect>,
    /// Runs with a live supervisor, and those asked to cancel.
    supervised: Vec<(RunId, ThreadId)>,
    cancelling: HashMap<RunId, crate::protocol::CancelReason>,
    approvals: Vec<ApprovalId>,
    /// Every run id the session mentioned, for cancels of live and finished runs.
    runs_seen: Vec<RunId>,
    clients: Vec<Client>,
}

impl World {
    fn new() -> Self {
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

    fn perform(&mut self) {
        for effect in self.core.take_effects() {
            match effect {
                Effect::Write(batch) => {
                    assert!(self.in_flight.is_none(), "one batch in flight");
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
                Effect::ReleaseSlot(run_id) => {
                    self.waiting.retain(|r| *r != run_id);
                    if self.holding.remove(&run_id)
                        && let Some(next) = self.waiting.pop_front()
                    {
                        self.holding.insert(next);
                        self.grants.push_back(next);
                    }
                }
                Effect::StartSupervisor(start) => {
                    assert!(
                        self.accepted.contains(&start.run_id),
                        "started once accepted"
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
                Effect::Drained => {}
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

    fn store_batch(&mut self) {
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

    fn answer_lookup(&mut self, fail: bool) {
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

    fn step(&mut self, op: Op) {
        match op {
            Op::Message {
                conn,
                thread,
                key,
                content,
            } => {
                let thread_id = match thread {
                    0 => None,
                    1 => Some(ThreadId::new()),
                    n => self.stored_threads.get(usize::from(n) - 2).copied(),
                };
                let message = UserMessage {
                    content: format!("message {content}"),
                    thread_id,
                    client_msg_id: key.map(|k| format!("m{k}")),
                };
                self.now += Duration::from_millis(1);
                let conn_id = self.clients[conn].conn_id;
                self.core.message(conn_id, message, self.now);
            }
            Op::StoreBatch => self.store_batch(),
            Op::LoseBatch => {
                if let Some(batch) = self.in_flight.take() {
                    self.core.batch_lost(&batch);
                }
            }
            Op::Rested => {
                if std::mem::take(&mut self.resting) {
                    self.core.rested();
                }
            }
            Op::AnswerSlot => {
                if let Some((run_id, answer)) = self.slot_answers.pop_front() {
                    self.core.slot_answered(run_id, Ok(answer));
                }
            }
            Op::DeliverGrant => {
                if let Some(run_id) = self.grants.pop_front() {
                    self.core.slot_granted(run_id);
                }
            }
            Op::AnswerLookup { fail } => return self.answer_lookup(fail),
            Op::Emit { run } => {
                if let Some((run_id, thread_id)) = self.pick_supervised(run) {
                    let event = crate::protocol::payload::AgentThinking {
                        text: "working".into(),
                    };
                    let agent = Some("data".to_owned());
                    self.core.run_event(run_id, thread_id, agent, event.into());
                }
            }
            Op::Finish { run, fail } => self.finish(run, fail),
            Op::Cancel { run } => {
                if let Some(run_id) = self.runs_seen.get(run).copied() {
                    let conn_id = self.clients[0].conn_id;
                    self.core.cancel(conn_id, run_id.to_string());
                }
            }
            Op::AskApproval { run } => {
                if let Some((run_id, thread_id)) = self.pick_supervised(run) {
                    let (reply, _answer) = tokio::sync::oneshot::channel();
                    self.core.approval_requested(ApprovalRequest {
                        run_id,
                        thread_id,
                        agent: "synthetic_data".into(),
                        action: "generate".into(),
                        summary: "generate records".into(),
                        details: Value::Null,
                        reply,
                    });
                }
            }
            Op::Approve { approval } => {
                if let Some(id) = self.approvals.get(approval).copied() {
                    let conn_id = self.clients[1].conn_id;
                    let decision = ApprovalDecision::Approve;
                    self.core
                        .approval_answered(conn_id, id.to_string(), decision);
                }
            }
            Op::Expire { approval } => {
                if let Some(id) = self.approvals.get(approval).copied() {
                    self.core.approval_expired(id);
                }
            }
            Op::Detach { conn } => self.clients[conn].attached = false,
            Op::Reattach { conn } => self.reattach(conn),
        }
        self.perform();
    }

    fn pick_supervised(&self, run: usize) -> Option<(RunId, ThreadId)> {
        if self.supervised.is_empty() {
            return None;
        }
        self.supervised.get(run % self.supervised.len()).copied()
    }

    /// A supervisor ends its run: cancelled if asked, else completed or failed.
    fn finish(&mut self, run: usize, fail: bool) {
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
                summary: "done".into(),
                report_markdown: String::new(),
                result: json!({}),
            }),
        };
        self.core.run_finished(run_id, outcome);
    }

    /// The client reconnects and resumes after the last `seq` it saw: the replay is what the
    /// store holds up to the session's `last_seq`, then the live stream follows.
    fn reattach(&mut self, conn: usize) {
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
    fn settle(&mut self) {
        for _ in 0..10_000 {
            if self.in_flight.is_some() {
                self.store_batch();
            } else if self.resting {
                self.resting = false;
                self.core.rested();
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

    fn check_settled(&self) {
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn random_interleavings_keep_the_invariants(ops in proptest::collection::vec(op(), 1..160)) {
        let mut world = World::new();
        for op in ops {
            world.step(op);
        }
        world.settle();
        world.check_settled();
    }
}

#[test]
fn a_queued_run_starts_when_a_running_one_ends() {
    let mut world = World::new();
    for content in 0..3 {
        world.step(Op::Message {
            conn: 0,
            thread: 0,
            key: None,
            content,
        });
        world.step(Op::AnswerSlot);
    }
    world.step(Op::StoreBatch);
    world.step(Op::StoreBatch);
    assert_eq!(world.supervised.len(), MAX_RUNNING, "two start, one waits");
    assert_eq!(world.core.runs.queued(), 1);
    world.step(Op::Finish {
        run: 0,
        fail: false,
    });
    world.settle();
    world.check_settled();
    assert_eq!(world.ended.len(), 3);
}

#[test]
fn a_lost_acceptance_is_refused_and_leaves_no_run() {
    let mut world = World::new();
    world.step(Op::Message {
        conn: 0,
        thread: 0,
        key: Some(1),
        content: 0,
    });
    world.step(Op::AnswerLookup { fail: false });
    world.step(Op::AnswerSlot);
    world.step(Op::LoseBatch);
    assert!(world.core.runs.is_empty(), "the run was never stored");
    assert!(world.holding.is_empty(), "its slot is back");
    assert!(
        world.supervised.is_empty(),
        "no supervisor for an unstored run"
    );
    world.settle();
    world.check_settled();
    assert!(world.store.is_empty());
}
