//! What a load test checks while it loads, from the frames each socket receives: every socket
//! of a user sees the user's `seq` gapless from where it (re)started and without a repeat, all
//! of a user's sockets see the same event at the same `seq`, no run or thread id shows up for
//! two users, and every run a user saw start ends. `UserVerifier` is one user's part (owned by
//! that user's task, so the load needs no shared state); `Verifier` adds the check across users.
//! Plain state, unit-tested below with planted faults, so a test that reports no violation has
//! really looked. A load test deletes no thread and meets no retention, so `erased` and
//! `truncated` frames, which replays may hold otherwise, are not expected here.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};

use super::frame::Frame;

/// How far past the events held a `seq` may be stored: a server that jumps further has
/// already been reported (`Gap`), and holding the hole would cost gigabytes.
const MAX_AHEAD: usize = 1 << 20;

/// One broken promise of the server, as a load test found it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Violation {
    /// A socket skipped `seq`s: it got `got` where `expected` was next.
    Gap {
        user: String,
        socket: u64,
        expected: i64,
        got: i64,
    },
    /// A socket got a `seq` again (or one below what it had) while live.
    Duplicate { user: String, socket: u64, seq: i64 },
    /// Two sockets of one user got different events at the same `seq`.
    Diverged { user: String, seq: i64 },
    /// A run or thread id seen by `user` that `owner` saw first: another user's data.
    Foreign {
        user: String,
        id: String,
        owner: String,
    },
    /// A socket opened with `user`'s token was told it is someone else's (`connected.user_id`).
    WrongUser { user: String, told: String },
    /// A run the user saw accepted never ended (a timed-out run, at the end of the test).
    Unfinished { user: String, run_id: String },
    /// At the end a socket still lacked events other sockets of its user had received.
    Missing {
        user: String,
        socket: u64,
        last_seq: i64,
        highest: i64,
    },
    /// A frame that is not a JSON object with a string `type` (its first 200 characters).
    Unreadable {
        user: String,
        socket: u64,
        text: String,
    },
}

/// Where one socket is in its user's stream.
#[derive(Debug, Clone, Copy)]
struct SocketPosition {
    /// The last `seq` it received.
    last_seq: i64,
    /// It asked for a replay and has not had `resumed` yet: copies of events it had are allowed.
    replaying: bool,
}

/// What one user's sockets have seen.
#[derive(Debug)]
pub struct UserVerifier {
    /// The user, as the token says.
    user: String,
    /// A hash of each event's text from `first_seq` on, as the first socket to see it got it
    /// (`None`: no socket got that `seq`). Events every socket has passed are dropped, so
    /// memory stays bounded however long the test runs.
    events: VecDeque<Option<u64>>,
    /// The `seq` of `events[0]`.
    first_seq: i64,
    /// Each socket's position; a closed socket keeps its place until it is forgotten.
    sockets: HashMap<u64, SocketPosition>,
    /// Runs seen accepted and not yet seen end.
    open_runs: HashSet<String>,
    /// Run and thread ids seen for the first time, not yet taken by `take_new_ids`.
    new_ids: Vec<String>,
    /// Every run and thread id seen, so each is reported once.
    known_ids: HashSet<String>,
    /// Acceptances one socket may get again: it sent their message again (socket, msg id).
    expected_copies: HashSet<(u64, String)>,
    /// What was found so far.
    violations: Vec<Violation>,
}

impl UserVerifier {
    /// Nothing seen yet for `user`.
    pub fn new(user: &str) -> Self {
        UserVerifier {
            user: user.to_owned(),
            events: VecDeque::new(),
            first_seq: 1,
            sockets: HashMap::new(),
            open_runs: HashSet::new(),
            new_ids: Vec::new(),
            known_ids: HashSet::new(),
            expected_copies: HashSet::new(),
            violations: Vec::new(),
        }
    }

    /// A socket starts after `after_seq`: its next event is `after_seq + 1`. `replaying`: it
    /// asked for a replay (`?after_seq=` or `resume`), so until `resumed` it may also get copies
    /// of events it had (PROTOCOL.md §2).
    pub fn socket_opened(&mut self, socket: u64, after_seq: i64, replaying: bool) {
        let position = SocketPosition {
            last_seq: after_seq,
            replaying,
        };
        self.sockets.insert(socket, position);
        self.prune();
    }

    /// `socket` is gone for good: its place no longer holds events in memory.
    pub fn socket_forgotten(&mut self, socket: u64) {
        self.sockets.remove(&socket);
        self.prune();
    }

    /// Whether `socket` has not yet received every event another socket of the user has.
    pub fn behind(&self, socket: u64) -> bool {
        self.sockets
            .get(&socket)
            .is_some_and(|p| p.last_seq < self.highest_seq())
    }

    /// The end: a `Missing` violation if `socket` is still behind.
    pub fn check_caught_up(&mut self, socket: u64) {
        if let Some(position) = self.sockets.get(&socket)
            && position.last_seq < self.highest_seq()
        {
            self.violations.push(Violation::Missing {
                user: self.user.clone(),
                socket,
                last_seq: position.last_seq,
                highest: self.highest_seq(),
            });
        }
    }

    /// The highest `seq` any socket of the user received (or started after).
    fn highest_seq(&self) -> i64 {
        let held = self.first_seq + self.events.len() as i64 - 1;
        let started = self.sockets.values().map(|p| p.last_seq).max();
        held.max(started.unwrap_or(0))
    }

    /// `socket` sent message `msg_id` again: one copy of its acceptance may come back on it.
    pub fn expect_copy(&mut self, socket: u64, msg_id: &str) {
        self.expected_copies.insert((socket, msg_id.to_owned()));
    }

    /// Whether `socket` asked for a replay and has not had `resumed` yet (its events are not
    /// live, so their latency means nothing).
    pub fn replaying(&self, socket: u64) -> bool {
        self.sockets.get(&socket).is_some_and(|p| p.replaying)
    }

    /// `socket` received `text`, which is not a frame.
    pub fn unreadable(&mut self, socket: u64, text: &str) {
        let user = self.user.clone();
        let text = text.chars().take(200).collect();
        self.violations
            .push(Violation::Unreadable { user, socket, text });
    }

    /// The last `seq` `socket` received (where a reconnect resumes from).
    pub fn last_seq(&self, socket: u64) -> Option<i64> {
        self.sockets.get(&socket).map(|p| p.last_seq)
    }

    /// A frame `socket` received, parsed as `frame` from `text`; unsequenced frames other than
    /// `connected` and `resumed` carry nothing to check.
    pub fn frame(&mut self, socket: u64, frame: &Frame<'_>, text: &str) {
        match frame.kind.as_ref() {
            "connected" => {
                if let Some(told) = frame.user_id.as_deref()
                    && told != self.user
                {
                    let (user, told) = (self.user.clone(), told.to_owned());
                    self.violations.push(Violation::WrongUser { user, told });
                }
                return;
            }
            "resumed" => {
                if let Some(position) = self.sockets.get_mut(&socket) {
                    position.replaying = false;
                }
                return;
            }
            _ => {}
        }
        let Some(seq) = frame.seq else {
            return;
        };
        for id in [&frame.run_id, &frame.thread_id].into_iter().flatten() {
            if !self.known_ids.contains(id.as_ref()) {
                self.known_ids.insert(id.to_string());
                self.new_ids.push(id.to_string());
            }
        }
        let position = self.sockets.entry(socket).or_insert(SocketPosition {
            last_seq: 0,
            replaying: false,
        });
        let hash = hash_of(text);
        if seq <= position.last_seq {
            // Allowed copies: before `resumed`, and the acceptance that answers a message sent
            // again (PROTOCOL.md §2), once; each must still be the same event.
            let copy_allowed = position.replaying
                || frame
                    .acceptance_of()
                    .is_some_and(|id| self.expected_copies.remove(&(socket, id.to_owned())));
            if copy_allowed {
                self.compare(seq, hash);
            } else {
                let user = self.user.clone();
                self.violations
                    .push(Violation::Duplicate { user, socket, seq });
            }
            return;
        }
        if seq != position.last_seq + 1 {
            let expected = position.last_seq + 1;
            let user = self.user.clone();
            self.violations.push(Violation::Gap {
                user,
                socket,
                expected,
                got: seq,
            });
        }
        position.last_seq = seq;
        let first_time = self.compare(seq, hash);
        if first_time && let Some(run_id) = &frame.run_id {
            if frame.is_acceptance() {
                self.open_runs.insert(run_id.to_string());
            } else if frame.is_terminal() {
                self.open_runs.remove(run_id.as_ref());
            }
        }
        self.prune();
    }

    /// Run and thread ids seen for the first time since the last call, for the check across
    /// users.
    pub fn take_new_ids(&mut self) -> Vec<String> {
        std::mem::take(&mut self.new_ids)
    }

    /// The violations found so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// How many runs are open (accepted, not yet ended).
    pub fn open_runs(&self) -> usize {
        self.open_runs.len()
    }

    /// The test is over: every run still open did not end in time.
    pub fn finish(mut self) -> Vec<Violation> {
        for run_id in std::mem::take(&mut self.open_runs) {
            let user = self.user.clone();
            self.violations.push(Violation::Unfinished { user, run_id });
        }
        self.violations
    }

    /// Compares the event at `seq` with what another socket got there, storing it if it is the
    /// first; true when it is the first.
    fn compare(&mut self, seq: i64, hash: u64) -> bool {
        let Ok(index) = usize::try_from(seq - self.first_seq) else {
            return false; // dropped: every socket had passed it
        };
        if index > self.events.len() + MAX_AHEAD {
            return false; // a wild `seq` (reported as a gap) is not worth the memory
        }
        if self.events.len() <= index {
            self.events.resize(index + 1, None);
        }
        let Some(slot) = self.events.get_mut(index) else {
            return false;
        };
        match slot {
            Some(seen) if *seen != hash => {
                let user = self.user.clone();
                self.violations.push(Violation::Diverged { user, seq });
                false
            }
            Some(_) => false,
            None => {
                *slot = Some(hash);
                true
            }
        }
    }

    /// Drops the events every socket has passed.
    fn prune(&mut self) {
        let Some(slowest) = self.sockets.values().map(|p| p.last_seq).min() else {
            return;
        };
        while self.first_seq <= slowest {
            if self.events.pop_front().is_none() {
                // Nothing held: the stream starts after the slowest socket's place.
                self.first_seq = slowest + 1;
                break;
            }
            self.first_seq += 1;
        }
    }
}

/// A hash of an event's text: two sockets got the same event when their hashes agree.
fn hash_of(text: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

mod across_users;

pub use across_users::Verifier;

#[cfg(test)]
mod tests;
