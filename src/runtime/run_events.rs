//! `RunEvents`: the only way a run's supervisor and agents emit events. It is bound to one
//! run of one user's session, so an agent cannot address another run, thread or user.

use actix::{Message, Recipient};
use serde_json::Value;

use crate::context::{RunId, ThreadId};
use crate::protocol::EventKind;

/// An event of a run, for its session to number, store and fan out.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Emit {
    pub run_id: RunId,
    pub thread_id: ThreadId,
    pub agent: Option<String>,
    pub kind: EventKind,
    pub data: Value,
}

#[derive(Clone)]
pub struct RunEvents {
    session: Recipient<Emit>,
    thread_id: ThreadId,
    run_id: RunId,
}

impl RunEvents {
    pub fn new(session: Recipient<Emit>, thread_id: ThreadId, run_id: RunId) -> Self {
        Self {
            session,
            thread_id,
            run_id,
        }
    }

    /// Sends one event of this run to its session (never blocks; the session's mailbox keeps
    /// the run's events in emission order).
    pub fn emit(&self, kind: EventKind, agent: Option<&str>, data: Value) {
        self.session.do_send(Emit {
            run_id: self.run_id,
            thread_id: self.thread_id,
            agent: agent.map(str::to_owned),
            kind,
            data,
        });
    }
}
