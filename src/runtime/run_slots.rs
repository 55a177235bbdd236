//! `RunSlots`: the server-wide cap on executing runs. Sessions ask it for a slot before a run
//! starts; when none is free the request waits in its user's line, and freed slots go round
//! the users with waiting runs in turn, so one busy user cannot starve the others.
//!
//! It is an actor like any other: its counts are its own state, changed only by messages.

use std::collections::{HashMap, VecDeque};

use actix::prelude::*;

use crate::context::{RunId, UserId};
use crate::runtime::session::SlotGranted;

/// Asks for a slot for `run_id`. Answers `Granted`, or `Waiting` — then `SlotGranted` follows
/// on `notify` when a slot frees up.
#[derive(Message)]
#[rtype(result = "SlotAnswer")]
pub struct Acquire {
    /// Whose line the run waits in when no slot is free, so freed slots go round the users in turn.
    pub user_id: UserId,
    /// The run the slot is for, which `Release` names later to give it back.
    pub run_id: RunId,
    /// The session to tell `SlotGranted`; a slot whose session has gone is taken back.
    pub notify: Recipient<SlotGranted>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, MessageResponse)]
/// Whether the run may start now, or must wait for the `SlotGranted` that follows on `notify`.
pub enum SlotAnswer {
    Granted,
    Waiting,
}

/// The run holding (or waiting for) a slot is over.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Release {
    /// The run whose slot is free again, or which leaves its user's line if it was still waiting.
    pub run_id: RunId,
}

/// The server's one slot table, shared by every session, so `max_running_total` holds across users.
pub struct RunSlots {
    /// The most runs holding a slot at once (`max_running_total`).
    capacity: usize,
    /// Runs holding a slot, with their session: a slot whose session has gone (it failed
    /// before the run's end was recorded) is taken back.
    running: HashMap<RunId, Recipient<SlotGranted>>,
    /// Each user's waiting runs, oldest first.
    waiting: HashMap<UserId, VecDeque<(RunId, Recipient<SlotGranted>)>>,
    /// Users with waiting runs, in the order they get the next free slots.
    turn: VecDeque<UserId>,
}

impl RunSlots {
    /// The slot table with `capacity` slots, at least one, or no run could ever start.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            running: HashMap::new(),
            waiting: HashMap::new(),
            turn: VecDeque::new(),
        }
    }

    /// Puts `run_id` at the end of its user's line.
    fn enqueue(&mut self, user_id: UserId, run_id: RunId, notify: Recipient<SlotGranted>) {
        let line = self.waiting.entry(user_id.clone()).or_default();
        if line.is_empty() {
            self.turn.push_back(user_id);
        }
        line.push_back((run_id, notify));
    }

    /// Takes back the slots of runs whose session has gone.
    fn reclaim_lost_slots(&mut self) {
        self.running.retain(|_, session| session.connected());
    }

    /// Hands free slots to waiting runs, one user at a time in turn.
    fn grant_free_slots(&mut self) {
        self.reclaim_lost_slots();
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
            // A session whose mailbox is merely full still gets its grant (`do_send` ignores
            // the bound): a grant dropped here would leave its run waiting forever. Only a
            // session that has gone cannot use the slot, which then goes to the next run.
            match notify.try_send(SlotGranted { run_id }) {
                Ok(()) => {
                    self.running.insert(run_id, notify);
                }
                Err(SendError::Full(grant)) => {
                    notify.do_send(grant);
                    self.running.insert(run_id, notify);
                }
                Err(SendError::Closed(_)) => {}
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
        if self.running.len() >= self.capacity {
            self.reclaim_lost_slots();
        }
        if self.running.len() < self.capacity && self.waiting.is_empty() {
            self.running.insert(msg.run_id, msg.notify);
            return SlotAnswer::Granted;
        }
        self.enqueue(msg.user_id, msg.run_id, msg.notify);
        SlotAnswer::Waiting
    }
}

impl Handler<Release> for RunSlots {
    type Result = ();

    fn handle(&mut self, msg: Release, _: &mut Context<Self>) {
        if self.running.remove(&msg.run_id).is_none() {
            for line in self.waiting.values_mut() {
                line.retain(|(run_id, _)| *run_id != msg.run_id);
            }
            self.waiting.retain(|_, line| !line.is_empty());
            self.turn.retain(|user| self.waiting.contains_key(user));
        }
        self.grant_free_slots();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Stands in for a session: records the grants it is sent.
    struct Grants(Vec<RunId>);

    impl Actor for Grants {
        type Context = Context<Self>;
    }

    impl Handler<SlotGranted> for Grants {
        type Result = ();
        fn handle(&mut self, msg: SlotGranted, _: &mut Context<Self>) {
            self.0.push(msg.run_id);
        }
    }

    #[derive(Message)]
    #[rtype(result = "Vec<RunId>")]
    struct Seen;

    impl Handler<Seen> for Grants {
        type Result = MessageResult<Seen>;
        fn handle(&mut self, _: Seen, _: &mut Context<Self>) -> Self::Result {
            MessageResult(self.0.clone())
        }
    }

    #[actix::test]
    async fn a_full_mailbox_does_not_lose_a_grant() {
        let session = Grants::create(|ctx| {
            ctx.set_mailbox_capacity(1);
            Grants(Vec::new())
        });
        let notify = session.clone().recipient::<SlotGranted>();

        // The session is busy (it has not run since): its mailbox fills, and a sender that
        // queued past the bound is parked, so its next `try_send` finds the mailbox full.
        let filler = RunId::new();
        notify.do_send(SlotGranted { run_id: filler });
        assert!(notify.try_send(SlotGranted { run_id: filler }).is_ok());
        let probe = notify.try_send(SlotGranted { run_id: filler });
        assert!(matches!(probe, Err(SendError::Full(_))), "mailbox not full");

        let mut slots = RunSlots::new(1);
        let holder = RunId::new();
        slots.running.insert(holder, session.clone().recipient());
        let waiting = RunId::new();
        slots.enqueue(UserId::parse("alice").unwrap(), waiting, notify);
        slots.running.remove(&holder);
        slots.grant_free_slots();
        assert!(
            slots.running.contains_key(&waiting),
            "the slot went nowhere"
        );
        assert!(slots.waiting.is_empty() && slots.turn.is_empty());
        let seen = session.send(Seen).await.unwrap();
        assert_eq!(seen, vec![filler, filler, waiting]);
    }

    /// Stops the stand-in, as a session that failed or passivated.
    #[derive(Message)]
    #[rtype(result = "()")]
    struct Stop;

    impl Handler<Stop> for Grants {
        type Result = ();
        fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
            ctx.stop();
        }
    }

    #[actix::test]
    async fn a_gone_session_gives_its_slot_to_the_next_run() {
        let gone = Grants::create(|_| Grants(Vec::new()));
        let gone_notify = gone.clone().recipient::<SlotGranted>();
        let live = Grants::create(|_| Grants(Vec::new()));
        let mut slots = RunSlots::new(1);
        let holder = RunId::new();
        slots.running.insert(holder, live.clone().recipient());
        let (lost, next) = (RunId::new(), RunId::new());
        slots.enqueue(UserId::parse("alice").unwrap(), lost, gone_notify.clone());
        slots.enqueue(
            UserId::parse("bob").unwrap(),
            next,
            live.clone().recipient(),
        );
        gone.send(Stop).await.unwrap();
        while gone_notify.connected() {
            tokio::task::yield_now().await;
        }

        slots.running.remove(&holder);
        slots.grant_free_slots();
        assert!(slots.running.contains_key(&next) && !slots.running.contains_key(&lost));
        assert_eq!(live.send(Seen).await.unwrap(), vec![next]);
    }

    #[actix::test]
    async fn the_slot_of_a_session_that_failed_is_taken_back() {
        let failed = Grants::create(|_| Grants(Vec::new()));
        let live = Grants::create(|_| Grants(Vec::new()));
        let mut slots = RunSlots::new(1);
        // The failed session's run holds the only slot; its end will never be recorded.
        slots
            .running
            .insert(RunId::new(), failed.clone().recipient());
        let next = RunId::new();
        slots.enqueue(
            UserId::parse("bob").unwrap(),
            next,
            live.clone().recipient(),
        );
        failed.send(Stop).await.unwrap();
        let failed = failed.recipient::<SlotGranted>();
        while failed.connected() {
            tokio::task::yield_now().await;
        }

        slots.grant_free_slots();
        assert_eq!(slots.running.len(), 1);
        assert!(slots.running.contains_key(&next));
        assert_eq!(live.send(Seen).await.unwrap(), vec![next]);
    }
}
