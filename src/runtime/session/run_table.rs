//! `RunTable`: every run a session has accepted and not yet seen end durably, and the one
//! place a run's phase changes. Queued runs wait for room among the user's runs, then for a
//! server slot; a run with its slot starts (`Starting`) and gets its supervisor only once its
//! `run_started` is durable (`Running`); once its end is pushed it is `Ending` until that end
//! is durable, when it leaves the table. Plain state, unit-tested below.

use std::collections::HashMap;

use tokio::sync::oneshot;

use crate::context::{ConnectionId, RunId, ThreadId};
use crate::protocol::{ApprovalOutcome, RunStatus};

/// What a queued run waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Awaiting {
    /// Room among the user's runs (`max_running_per_user`).
    UserSlot,
    /// One of the server's slots (`RunSlots`), asked for.
    ServerSlot,
}

/// Where a live run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Queued(Awaiting),
    /// It has its slot and its `run_started` is pushed; the supervisor starts once that is
    /// durable.
    Starting,
    /// Its supervisor executes it.
    Running,
    /// Its end is pushed and waits to be stored; nothing more of it is accepted.
    Ending,
}

/// A run this session accepted and has not yet seen end durably.
pub(crate) struct LiveRun {
    /// The thread it runs on (events of other threads are refused).
    thread_id: ThreadId,
    /// Where it is in its life; only this table changes it.
    phase: Phase,
    /// The message it runs on, handed to its supervisor when it starts.
    content: String,
    /// Acceptance order, which is queue order.
    order: u64,
    /// Its acceptance event (`run_started` or `run_queued`) is stored: a lost batch then
    /// ends it `run_failed` instead of forgetting it.
    accepted: bool,
    /// The socket that sent the message, told if the message could not be stored.
    origin: ConnectionId,
    /// The client's id for the message, whose claim the run holds while live.
    client_msg_id: Option<String>,
    /// The reply channel of an approval cancelled with the run, kept so the stopped agent
    /// never sees an answer.
    parked_reply: Option<oneshot::Sender<ApprovalOutcome>>,
}

impl LiveRun {
    /// Its thread, which its end and `connected.active_runs` name.
    pub(crate) fn thread_id(&self) -> ThreadId {
        self.thread_id
    }

    /// Where it is, which decides what a cancel, a lost batch or its supervisor's end does to it.
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether a lost batch fails it (its acceptance is stored) or forgets it.
    pub(crate) fn is_accepted(&self) -> bool {
        self.accepted
    }

    /// The socket told to send the message again when it could not be stored.
    pub(crate) fn origin(&self) -> ConnectionId {
        self.origin
    }

    /// The client's id for the message, carried by its `run_started` and released when it goes.
    pub(crate) fn client_msg_id(&self) -> Option<&str> {
        self.client_msg_id.as_deref()
    }

    /// Counts toward the user's limit: executing, starting, or waiting for a server slot.
    pub(crate) fn holds_user_slot(&self) -> bool {
        matches!(
            self.phase,
            Phase::Starting | Phase::Running | Phase::Queued(Awaiting::ServerSlot)
        )
    }
}

/// A run that got its slot, as its supervisor needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunStart {
    /// The run to supervise, which its events name.
    pub(crate) run_id: RunId,
    /// The thread it runs on, which its events must name to be kept.
    pub(crate) thread_id: ThreadId,
    /// The user's message, moved out of the table for the agents to read.
    pub(crate) content: String,
    /// The client's id for the message, which the run's `UserContext` carries.
    pub(crate) client_msg_id: Option<String>,
}

/// What ending a run changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ended {
    /// It was waiting in the user's or the server's queue.
    pub(crate) was_queued: bool,
    /// It held or waited for a server slot, which must be given back.
    pub(crate) held_slot: bool,
    /// Its supervisor runs and must be stopped or told.
    pub(crate) had_supervisor: bool,
}

/// The session's live runs.
#[derive(Default)]
pub(crate) struct RunTable {
    /// Every live run by id.
    runs: HashMap<RunId, LiveRun>,
    /// Runs accepted so far, for queue order.
    accepted_total: u64,
}

impl RunTable {
    /// A live run, to read: only the methods below change one.
    pub(crate) fn get(&self, run_id: RunId) -> Option<&LiveRun> {
        self.runs.get(&run_id)
    }

    /// No run is live: the session may passivate, or finish draining.
    pub(crate) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Runs holding or waiting for a server slot (the user's limit counts these).
    pub(crate) fn occupying(&self) -> usize {
        self.runs.values().filter(|r| r.holds_user_slot()).count()
    }

    /// Runs waiting in a queue.
    pub(crate) fn queued(&self) -> usize {
        self.runs
            .values()
            .filter(|r| matches!(r.phase, Phase::Queued(_)))
            .count()
    }

    /// Whether `run_id` is executing on `thread_id`, so its events are accepted.
    pub(crate) fn is_running_on(&self, run_id: RunId, thread_id: ThreadId) -> bool {
        self.runs
            .get(&run_id)
            .is_some_and(|r| r.phase == Phase::Running && r.thread_id == thread_id)
    }

    /// Whether a live run is on `thread_id`.
    pub(crate) fn any_on_thread(&self, thread_id: ThreadId) -> bool {
        self.runs.values().any(|r| r.thread_id == thread_id)
    }

    /// Live run ids, for the session's shutdown.
    pub(crate) fn ids(&self) -> Vec<RunId> {
        self.runs.keys().copied().collect()
    }

    /// Runs a client sees as active (`connected.active_runs`), with their phase.
    pub(crate) fn active(&self) -> impl Iterator<Item = (RunId, &LiveRun)> {
        self.runs
            .iter()
            .filter(|(_, r)| r.phase != Phase::Ending)
            .map(|(id, r)| (*id, r))
    }

    /// Records a newly accepted run in `phase` (`Queued` or `Starting`).
    pub(crate) fn insert(
        &mut self,
        run_id: RunId,
        thread_id: ThreadId,
        phase: Phase,
        content: String,
        origin: ConnectionId,
        client_msg_id: Option<String>,
    ) {
        self.accepted_total += 1;
        self.runs.insert(
            run_id,
            LiveRun {
                thread_id,
                phase,
                content,
                order: self.accepted_total,
                accepted: false,
                origin,
                client_msg_id,
                parked_reply: None,
            },
        );
    }

    /// The oldest run waiting for room among the user's runs, now to wait for a server slot,
    /// if the user has room (fewer than `max_running` occupying).
    pub(crate) fn promote_next(&mut self, max_running: usize) -> Option<RunId> {
        if self.occupying() >= max_running {
            return None;
        }
        let (run_id, run) = self
            .runs
            .iter_mut()
            .filter(|(_, r)| r.phase == Phase::Queued(Awaiting::UserSlot))
            .min_by_key(|(_, r)| r.order)?;
        run.phase = Phase::Queued(Awaiting::ServerSlot);
        Some(*run_id)
    }

    /// A queued run got its server slot: it is `Starting`. `None` if it is not queued (gone,
    /// ending), when the slot must be given back.
    pub(crate) fn slot_granted(&mut self, run_id: RunId) -> Option<ThreadId> {
        let run = self.runs.get_mut(&run_id)?;
        if !matches!(run.phase, Phase::Queued(_)) {
            return None;
        }
        run.phase = Phase::Starting;
        Some(run.thread_id)
    }

    /// Its acceptance event is durable.
    pub(crate) fn accepted(&mut self, run_id: RunId) {
        if let Some(run) = self.runs.get_mut(&run_id) {
            run.accepted = true;
        }
    }

    /// Its `run_started` is durable: a `Starting` run is `Running`, and what its supervisor
    /// needs is returned. `None` for a run that ended meanwhile.
    pub(crate) fn started(&mut self, run_id: RunId) -> Option<RunStart> {
        let run = self.runs.get_mut(&run_id)?;
        if run.phase != Phase::Starting {
            return None;
        }
        run.phase = Phase::Running;
        Some(RunStart {
            run_id,
            thread_id: run.thread_id,
            content: std::mem::take(&mut run.content),
            client_msg_id: run.client_msg_id.clone(),
        })
    }

    /// Its end is pushed: it is `Ending`. `None` for a run that is gone or already ending.
    pub(crate) fn end(&mut self, run_id: RunId) -> Option<Ended> {
        let run = self.runs.get_mut(&run_id)?;
        if run.phase == Phase::Ending {
            return None;
        }
        let ended = Ended {
            was_queued: matches!(run.phase, Phase::Queued(_)),
            held_slot: run.holds_user_slot(),
            had_supervisor: run.phase == Phase::Running,
        };
        run.phase = Phase::Ending;
        Some(ended)
    }

    /// Keeps the reply channel of `run_id`'s cancelled approval until the run is gone.
    pub(crate) fn park_reply(&mut self, run_id: RunId, reply: oneshot::Sender<ApprovalOutcome>) {
        if let Some(run) = self.runs.get_mut(&run_id) {
            run.parked_reply = Some(reply);
        }
    }

    /// The run leaves the table (its end is durable, or it was never stored).
    pub(crate) fn remove(&mut self, run_id: RunId) -> Option<LiveRun> {
        self.runs.remove(&run_id)
    }
}

/// The status a client sees for a live run in `phase` (`awaiting_approval` is the caller's).
pub(crate) fn status_of(phase: Phase) -> RunStatus {
    match phase {
        Phase::Queued(_) => RunStatus::Queued,
        Phase::Starting | Phase::Running | Phase::Ending => RunStatus::Running,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table_with(phases: &[Phase]) -> (RunTable, Vec<RunId>) {
        let mut table = RunTable::default();
        let thread = ThreadId::new();
        let ids = phases
            .iter()
            .map(|phase| {
                let id = RunId::new();
                table.insert(id, thread, *phase, "hi".into(), ConnectionId::new(), None);
                id
            })
            .collect();
        (table, ids)
    }

    #[test]
    fn promotes_oldest_first_while_the_user_has_room() {
        let queued = Phase::Queued(Awaiting::UserSlot);
        let (mut table, ids) = table_with(&[Phase::Starting, queued, queued]);
        assert_eq!(table.occupying(), 1);
        assert_eq!(table.queued(), 2);
        assert_eq!(table.promote_next(2), ids.get(1).copied());
        assert_eq!(table.promote_next(2), None, "two occupy now");
        assert_eq!(table.occupying(), 2);
        assert_eq!(
            table.queued(),
            2,
            "waiting for a server slot is still queued"
        );
    }

    #[test]
    fn a_run_gets_its_supervisor_only_when_started_durably() {
        let (mut table, ids) = table_with(&[Phase::Queued(Awaiting::ServerSlot)]);
        let id = ids[0];
        let thread = table.get(id).map(LiveRun::thread_id);
        assert_eq!(table.slot_granted(id), thread);
        assert!(!table.is_running_on(id, thread.unwrap_or_default()));
        let start = table.started(id).expect("starting");
        assert_eq!(start.content, "hi");
        assert!(table.is_running_on(id, start.thread_id));
        assert_eq!(table.started(id), None, "started once");
        assert_eq!(
            table.slot_granted(id),
            None,
            "a running run gives the slot back"
        );
    }

    #[test]
    fn ending_reports_what_to_release_once() {
        let (mut table, ids) = table_with(&[
            Phase::Queued(Awaiting::UserSlot),
            Phase::Queued(Awaiting::ServerSlot),
            Phase::Running,
        ]);
        let ended: Vec<Ended> = ids.iter().filter_map(|id| table.end(*id)).collect();
        let released: Vec<bool> = ended.iter().map(|e| e.held_slot).collect();
        assert_eq!(released, [false, true, true]);
        assert_eq!(ended.iter().filter(|e| e.was_queued).count(), 2);
        assert_eq!(ended.iter().filter(|e| e.had_supervisor).count(), 1);
        assert!(ids.iter().all(|id| table.end(*id).is_none()), "ends once");
        assert_eq!(table.started(ids[2]), None);
        assert_eq!(table.occupying(), 0);
        for id in &ids {
            assert!(table.remove(*id).is_some());
        }
        assert!(table.is_empty());
    }
}
