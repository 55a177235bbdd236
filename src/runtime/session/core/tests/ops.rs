//! The steps of the tests' world: `Op`, one thing that happens around a session (a message, a
//! stored or lost batch, an answer, an agent event, a cancel, a disconnect…), the strategy
//! that draws them, and `World::step`, which makes one happen.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::Value;

use super::world::{SERVER_SLOTS, SOCKETS, World};
use crate::context::{RunId, ThreadId};
use crate::protocol::{ApprovalDecision, UserMessage};
use crate::runtime::session::core::ApprovalRequest;

/// One step of the world.
#[derive(Debug, Clone)]
pub(super) enum Op {
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
    /// Another user's run takes a free server slot, or gives one back.
    OtherTakes,
    OtherFrees,
    /// The server drains (`Drain`), and later its grace period ends.
    Drain,
    GraceOver,
    /// The user deletes their account (`DeleteAccount`): every run is cancelled at once.
    DeleteAccount,
    Reattach {
        conn: usize,
    },
}

pub(super) fn op() -> impl Strategy<Value = Op> {
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
        1 => proptest::bool::weighted(0.05).prop_map(|drain| if drain { Op::Drain } else { Op::Rested }),
        1 => Just(Op::GraceOver),
        1 => proptest::bool::weighted(0.05)
            .prop_map(|delete| if delete { Op::DeleteAccount } else { Op::Rested }),
        2 => Just(Op::OtherTakes),
        2 => Just(Op::OtherFrees),
    ]
}

impl World {
    pub(super) fn step(&mut self, op: Op) {
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
            Op::OtherTakes => {
                if self.holding.len() < SERVER_SLOTS {
                    let other = RunId::new();
                    self.holding.insert(other);
                    self.others.push(other);
                }
            }
            Op::OtherFrees => {
                if let Some(other) = self.others.pop() {
                    self.release_slot(other);
                }
            }
            Op::Drain => {
                self.drain_asked = true;
                self.core.drain();
            }
            Op::GraceOver => {
                if self.drain_asked {
                    self.core.grace_over();
                }
            }
            Op::DeleteAccount => {
                self.drain_asked = true;
                self.core.delete_account();
            }
        }
        self.perform();
    }
}
