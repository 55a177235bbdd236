//! `EventLog`: the user's event sequence as the session keeps it. Events wait unnumbered, are
//! numbered when a batch is cut, go to the writer one batch at a time, and count as the
//! user's history only once that batch is durable. Plain state, no actors: the session feeds
//! it and performs what it returns, and the unit tests below drive it directly.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::context::{RunId, UserId};
use crate::protocol::Event;
use crate::store::batch::{WriteBatch, WriteOp};

/// An event waiting for the next batch.
struct Pending {
    /// The event, `seq` still 0: it is numbered when its batch is cut.
    event: Event,
    /// The row change the event announces, committed with it.
    op: Option<WriteOp>,
    /// Told when the event is durable; dropped unsent if it is lost.
    notify: Option<oneshot::Sender<()>>,
}

/// The batch with the writer.
struct InFlight {
    /// The `seq` of its first event: with `last`, it tells this batch's answer from stale ones.
    first: i64,
    /// The `seq` of its last event, the highest durable `seq` once the batch is stored.
    last: i64,
    /// Who waits for it to be durable.
    notify: Vec<oneshot::Sender<()>>,
}

/// What a lost batch means for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rest {
    /// How long the next batch waits (storage is probably down); then call `rested`.
    pub(crate) backoff: Duration,
}

/// The numbering and write state of one user's events.
pub(crate) struct EventLog {
    /// Highest durable `seq`; the next batch starts right after it. Only `durable` moves it,
    /// which is what keeps the stored and delivered sequence gapless after a lost batch.
    last_seq: i64,
    /// Events waiting for the next batch, in the order they were pushed.
    pending: VecDeque<Pending>,
    /// The one batch with the writer: events arriving meanwhile group into the next commit.
    in_flight: Option<InFlight>,
    /// Batches lost one after another, for the backoff before the next.
    lost_in_a_row: u32,
    /// After a loss the next batch waits for `rested`.
    resting: bool,
    /// The most events one batch holds.
    batch_max: usize,
}

impl EventLog {
    /// A log continuing after `last_seq`, the highest `seq` stored for the user.
    pub(crate) fn new(last_seq: i64, batch_max: usize) -> Self {
        Self {
            last_seq,
            pending: VecDeque::new(),
            in_flight: None,
            lost_in_a_row: 0,
            resting: false,
            batch_max: batch_max.max(1),
        }
    }

    /// Highest durable `seq`.
    pub(crate) fn last_seq(&self) -> i64 {
        self.last_seq
    }

    /// Nothing waits and nothing is with the writer.
    pub(crate) fn is_settled(&self) -> bool {
        self.pending.is_empty() && self.in_flight.is_none()
    }

    /// Queues `event` (its `seq` is set when its batch is cut) with the row change it
    /// announces, and optionally someone to tell once it is durable.
    pub(crate) fn push(
        &mut self,
        event: Event,
        op: Option<WriteOp>,
        notify: Option<oneshot::Sender<()>>,
    ) {
        self.pending.push_back(Pending { event, op, notify });
    }

    /// Cuts the next batch for `user_id`, numbered from `last_seq + 1`, unless a batch is in
    /// flight, the log rests after a loss, or nothing waits.
    pub(crate) fn cut(&mut self, user_id: &UserId) -> Option<WriteBatch> {
        if self.in_flight.is_some() || self.resting || self.pending.is_empty() {
            return None;
        }
        let n = self.pending.len().min(self.batch_max);
        let mut events = Vec::with_capacity(n);
        let mut ops = Vec::new();
        let mut notify = Vec::new();
        let first = self.last_seq + 1;
        for (seq, pending) in (first..).zip(self.pending.drain(..n)) {
            notify.extend(pending.notify);
            let mut event = pending.event;
            event.seq = seq;
            if let Some(mut op) = pending.op {
                if let WriteOp::CreateRun { accept_seq, .. } = &mut op {
                    *accept_seq = seq;
                }
                ops.push(op);
            }
            events.push(event);
        }
        let last = first + events.len() as i64 - 1;
        self.in_flight = Some(InFlight {
            first,
            last,
            notify,
        });
        Some(WriteBatch {
            user_id: user_id.clone(),
            ops,
            events,
            // The session stamps its claim's epoch on the way to the writer.
            lease: None,
        })
    }

    /// The batch in flight is stored: its events are the user's history now. Returns false
    /// (and changes nothing) for a batch that is not the one in flight.
    pub(crate) fn durable(&mut self, batch: &WriteBatch) -> bool {
        if !self.is_in_flight(batch) {
            return false;
        }
        let Some(in_flight) = self.in_flight.take() else {
            return false;
        };
        self.last_seq = in_flight.last;
        self.lost_in_a_row = 0;
        for notify in in_flight.notify {
            let _ = notify.send(());
        }
        true
    }

    /// The batch in flight could not be stored: its numbers are free again (the next batch
    /// reuses them) and the next batch waits for the returned backoff. `None` for a batch
    /// that is not the one in flight.
    pub(crate) fn lost(&mut self, batch: &WriteBatch) -> Option<Rest> {
        if !self.is_in_flight(batch) {
            return None;
        }
        self.in_flight = None;
        self.lost_in_a_row += 1;
        self.resting = true;
        Some(Rest {
            backoff: write_backoff(self.lost_in_a_row + 1),
        })
    }

    /// The backoff after a loss is over: the next batch may be cut.
    pub(crate) fn rested(&mut self) {
        self.resting = false;
    }

    /// Drops the waiting events of `runs` (they can no longer tell a gapless story).
    pub(crate) fn forget_runs(&mut self, runs: &[RunId]) {
        self.pending
            .retain(|p| p.event.run_id.is_none_or(|r| !runs.contains(&r)));
    }

    fn is_in_flight(&self, batch: &WriteBatch) -> bool {
        let (Some(in_flight), Some(first), Some(last)) =
            (&self.in_flight, batch.events.first(), batch.events.last())
        else {
            return false;
        };
        in_flight.first == first.seq && in_flight.last == last.seq
    }
}

/// The wait before retrying a write, or before the batch after a lost one: 100 ms × 2ⁿ,
/// capped at 2 s.
pub(crate) fn write_backoff(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.min(5)).min(2000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::ThreadId;
    use crate::protocol::EventKind;

    fn user() -> UserId {
        UserId::parse("alice").expect("a valid user id")
    }

    fn event(run_id: Option<RunId>) -> Event {
        Event {
            kind: EventKind::AgentThinking,
            seq: 0,
            ts: 0,
            thread_id: Some(ThreadId::new()),
            run_id,
            agent: None,
            data: serde_json::Value::Null,
        }
    }

    fn seqs(batch: &WriteBatch) -> Vec<i64> {
        batch.events.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn numbers_after_the_stored_seq_one_batch_at_a_time() {
        let mut log = EventLog::new(7, 2);
        for _ in 0..3 {
            log.push(event(None), None, None);
        }
        let first = log.cut(&user()).expect("a batch");
        assert_eq!(seqs(&first), [8, 9]);
        log.push(event(None), None, None);
        assert!(log.cut(&user()).is_none(), "one batch in flight");
        assert!(log.durable(&first));
        assert_eq!(log.last_seq(), 9);
        let second = log.cut(&user()).expect("the rest");
        assert_eq!(seqs(&second), [10, 11]);
        assert!(log.durable(&second));
        assert!(log.is_settled());
    }

    #[test]
    fn a_lost_batch_frees_its_numbers_and_rests() {
        let mut log = EventLog::new(0, 10);
        let (notify, durable) = oneshot::channel();
        log.push(event(None), None, Some(notify));
        let lost = log.cut(&user()).expect("a batch");
        let rest = log.lost(&lost).expect("it was in flight");
        assert_eq!(rest.backoff, write_backoff(2));
        assert!(matches!(
            durable.blocking_recv(),
            Err(oneshot::error::RecvError { .. })
        ));
        log.push(event(None), None, None);
        assert!(log.cut(&user()).is_none(), "resting after a loss");
        log.rested();
        let next = log.cut(&user()).expect("a batch after the rest");
        assert_eq!(seqs(&next), [1], "renumbered from the last durable seq");
        assert_eq!(log.last_seq(), 0);
    }

    #[test]
    fn tells_who_waits_once_durable_and_numbers_acceptance() {
        let mut log = EventLog::new(3, 10);
        let (notify, mut durable) = oneshot::channel();
        let op = WriteOp::CreateThread {
            thread_id: ThreadId::new(),
            title: String::new(),
            ts: 0,
        };
        log.push(event(None), Some(op), Some(notify));
        let batch = log.cut(&user()).expect("a batch");
        assert_eq!(batch.ops.len(), 1);
        assert!(durable.try_recv().is_err(), "not before the write");
        assert!(log.durable(&batch));
        assert!(durable.try_recv().is_ok());
    }

    #[test]
    fn ignores_answers_for_other_batches_and_forgets_runs() {
        let mut log = EventLog::new(0, 10);
        let run = RunId::new();
        log.push(event(Some(run)), None, None);
        let batch = log.cut(&user()).expect("a batch");
        let mut stranger = batch.clone();
        if let Some(e) = stranger.events.first_mut() {
            e.seq = 99;
        }
        assert!(!log.durable(&stranger));
        assert!(log.lost(&stranger).is_none());
        log.push(event(Some(run)), None, None);
        log.push(event(None), None, None);
        log.forget_runs(&[run]);
        assert!(log.lost(&batch).is_some());
        log.rested();
        let next = log.cut(&user()).expect("the other event");
        assert_eq!(next.events.len(), 1);
        assert_eq!(next.events.first().and_then(|e| e.run_id), None);
    }
}
