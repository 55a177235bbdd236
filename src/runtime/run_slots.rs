//! `RunSlots`: the server-wide cap on executing runs. Sessions ask it for a slot before a run
//! starts; when none is free the request waits in its user's line, and freed slots go round
//! the users with waiting runs in turn, so one busy user cannot starve the others.
//!
//! It is an actor like any other: its counts are its own state, changed only by messages.

use std::collections::{HashMap, HashSet, VecDeque};

use actix::prelude::*;

use crate::context::{RunId, UserId};

/// Asks for a slot for `run_id`. Answers `Granted`, or `Waiting` — then `SlotGranted` follows
/// on `notify` when a slot frees up.
#[derive(Message)]
#[rtype(result = "SlotAnswer")]
pub struct Acquire {
    pub user_id: UserId,
    pub run_id: RunId,
    pub notify: Recipient<SlotGranted>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, MessageResponse)]
pub enum SlotAnswer {
    Granted,
    Waiting,
}

/// A waiting run got its slot.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct SlotGranted {
    pub run_id: RunId,
}

/// The run holding (or waiting for) a slot is over.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Release {
    pub run_id: RunId,
}

pub struct RunSlots {
    capacity: usize,
    /// Runs holding a slot.
    running: HashSet<RunId>,
    /// Each user's waiting runs, oldest first.
    waiting: HashMap<UserId, VecDeque<(RunId, Recipient<SlotGranted>)>>,
    /// Users with waiting runs, in the order they get the next free slots.
    turn: VecDeque<UserId>,
}

impl RunSlots {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            running: HashSet::new(),
            waiting: HashMap::new(),
            turn: VecDeque::new(),
        }
    }

    /// Hands free slots to waiting runs, one user at a time in turn.
    fn grant_free_slots(&mut self) {
        while self.running.len() < self.capacity {
            let Some(user) = self.turn.pop_front() else {
                return;
            };
            let Some(line) = self.waiting.get_mut(&user) else {
                continue;
            };
            let Some((run_id, notify)) = line.pop_front() else {
                self.waiting.remove(&user);
                continue;
            };
            if line.is_empty() {
                self.waiting.remove(&user);
            } else {
                self.turn.push_back(user);
            }
            // A session that has gone cannot use the slot: give it to the next run.
            if notify.try_send(SlotGranted { run_id }).is_ok() {
                self.running.insert(run_id);
            }
        }
    }
}

impl Actor for RunSlots {
    type Context = Context<Self>;
}

impl Handler<Acquire> for RunSlots {
    type Result = SlotAnswer;

    fn handle(&mut self, msg: Acquire, _: &mut Context<Self>) -> SlotAnswer {
        if self.running.len() < self.capacity && self.waiting.is_empty() {
            self.running.insert(msg.run_id);
            return SlotAnswer::Granted;
        }
        let line = self.waiting.entry(msg.user_id.clone()).or_default();
        if line.is_empty() {
            self.turn.push_back(msg.user_id);
        }
        line.push_back((msg.run_id, msg.notify));
        SlotAnswer::Waiting
    }
}

impl Handler<Release> for RunSlots {
    type Result = ();

    fn handle(&mut self, msg: Release, _: &mut Context<Self>) {
        if !self.running.remove(&msg.run_id) {
            for line in self.waiting.values_mut() {
                line.retain(|(run_id, _)| *run_id != msg.run_id);
            }
            self.waiting.retain(|_, line| !line.is_empty());
            self.turn.retain(|user| self.waiting.contains_key(user));
        }
        self.grant_free_slots();
    }
}
