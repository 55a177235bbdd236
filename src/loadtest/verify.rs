//! `Verifier`: what a load test checks while it loads, from the frames each socket receives —
//! every socket of a user sees the user's `seq` gapless from where it (re)started and without a
//! repeat, all of a user's sockets see the same event at the same `seq`, no run or thread id
//! shows up for two users, and every run a user saw start ends. Plain state, unit-tested below
//! with planted faults, so a load test that reports no violation has really looked.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

/// One broken promise of the server, as a load test found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A socket skipped `seq`s: it got `got` where `expected` was next.
    Gap {
        user: String,
        socket: u64,
        expected: i64,
        got: i64,
    },
    /// A socket got a `seq` again (or one below what it had).
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
}

/// What one user's sockets have seen.
#[derive(Default)]
struct UserStream {
    /// Each event's text by `seq`, as the first socket to see it got it.
    events: HashMap<i64, String>,
    /// Each socket's last `seq`.
    last_seq: HashMap<u64, i64>,
    /// Runs seen accepted and not yet seen end.
    open_runs: HashSet<String>,
}

/// The verification of one load test, over every user and socket.
#[derive(Default)]
pub struct Verifier {
    /// What each user has seen.
    users: HashMap<String, UserStream>,
    /// The user each run and thread id was first seen by.
    owners: HashMap<String, String>,
    /// What was found so far.
    violations: Vec<Violation>,
}

impl Verifier {
    /// A socket of `user` starts (or resumes) after `after_seq`: its next event is `after_seq + 1`.
    pub fn socket_opened(&mut self, user: &str, socket: u64, after_seq: i64) {
        let stream = self.users.entry(user.to_owned()).or_default();
        stream.last_seq.insert(socket, after_seq);
    }

    /// A frame `socket` of `user` received; unsequenced frames (`connected`, `pong`, …) are
    /// ignored.
    pub fn frame(&mut self, user: &str, socket: u64, text: &str) {
        let Ok(frame) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let kind = frame
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind == "connected"
            && let Some(told) = frame.get("user_id").and_then(Value::as_str)
            && told != user
        {
            let (user, told) = (user.to_owned(), told.to_owned());
            return self.violations.push(Violation::WrongUser { user, told });
        }
        let Some(seq) = frame.get("seq").and_then(Value::as_i64) else {
            return;
        };
        for key in ["run_id", "thread_id"] {
            if let Some(id) = frame.get(key).and_then(Value::as_str) {
                self.owned_by(user, id);
            }
        }
        let stream = self.users.entry(user.to_owned()).or_default();
        let last = stream.last_seq.entry(socket).or_insert(0);
        if seq <= *last {
            let user = user.to_owned();
            return self
                .violations
                .push(Violation::Duplicate { user, socket, seq });
        }
        if seq != *last + 1 {
            self.violations.push(Violation::Gap {
                user: user.to_owned(),
                socket,
                expected: *last + 1,
                got: seq,
            });
        }
        *last = seq;
        match stream.events.get(&seq) {
            Some(seen) if seen != text => {
                let user = user.to_owned();
                return self.violations.push(Violation::Diverged { user, seq });
            }
            Some(_) => return,
            None => {
                stream.events.insert(seq, text.to_owned());
            }
        }
        if let Some(run_id) = frame.get("run_id").and_then(Value::as_str) {
            if matches!(kind, "run_started" | "run_queued") {
                stream.open_runs.insert(run_id.to_owned());
            } else if is_terminal(kind) {
                stream.open_runs.remove(run_id);
            }
        }
    }

    /// The violations found so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// The test is over: every run still open did not end in time.
    pub fn finish(mut self) -> Vec<Violation> {
        for (user, stream) in &self.users {
            for run_id in &stream.open_runs {
                self.violations.push(Violation::Unfinished {
                    user: user.clone(),
                    run_id: run_id.clone(),
                });
            }
        }
        self.violations
    }

    /// Records `id` as `user`'s, or a `Foreign` violation if another user saw it first.
    fn owned_by(&mut self, user: &str, id: &str) {
        match self.owners.get(id) {
            Some(owner) if owner != user => self.violations.push(Violation::Foreign {
                user: user.to_owned(),
                id: id.to_owned(),
                owner: owner.clone(),
            }),
            Some(_) => {}
            None => {
                self.owners.insert(id.to_owned(), user.to_owned());
            }
        }
    }
}

/// Whether an event of `kind` ends its run.
fn is_terminal(kind: &str) -> bool {
    matches!(
        kind,
        "run_completed" | "run_failed" | "run_cancelled" | "run_interrupted"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64, kind: &str, run: &str) -> String {
        format!(r#"{{"type":"{kind}","seq":{seq},"ts":1,"thread_id":"t-{run}","run_id":"{run}"}}"#)
    }

    /// A user's whole run, as the server sends it.
    fn run(user_run: &str) -> Vec<String> {
        vec![
            event(1, "message_received", user_run),
            event(2, "run_started", user_run),
            event(3, "agent_started", user_run),
            event(4, "run_completed", user_run),
        ]
    }

    fn feed(verifier: &mut Verifier, user: &str, socket: u64, frames: &[String]) {
        verifier.socket_opened(user, socket, 0);
        for frame in frames {
            verifier.frame(user, socket, frame);
        }
    }

    #[test]
    fn a_clean_stream_on_two_sockets_passes_and_a_wrong_user_does_not() {
        let mut verifier = Verifier::default();
        feed(&mut verifier, "alice", 1, &run("a1"));
        feed(&mut verifier, "alice", 2, &run("a1"));
        feed(&mut verifier, "bob", 3, &run("b1"));
        verifier.frame("alice", 1, r#"{"type":"pong","nonce":1}"#);
        verifier.frame("alice", 1, r#"{"type":"connected","user_id":"alice"}"#);
        assert!(verifier.violations().is_empty());
        verifier.frame("alice", 1, r#"{"type":"connected","user_id":"bob"}"#);
        assert_eq!(
            verifier.finish(),
            [Violation::WrongUser {
                user: "alice".into(),
                told: "bob".into()
            }]
        );
    }

    #[test]
    fn catches_a_planted_gap_and_a_duplicate() {
        let mut frames = run("a1");
        frames.remove(2);
        let mut verifier = Verifier::default();
        feed(&mut verifier, "alice", 1, &frames);
        let repeated = run("a1")[1].clone();
        verifier.frame("alice", 1, &repeated);
        let found = verifier.finish();
        assert_eq!(
            found,
            [
                Violation::Gap {
                    user: "alice".into(),
                    socket: 1,
                    expected: 3,
                    got: 4
                },
                Violation::Duplicate {
                    user: "alice".into(),
                    socket: 1,
                    seq: 2
                },
            ]
        );
    }

    #[test]
    fn catches_a_foreign_id_a_divergence_and_an_unfinished_run() {
        let mut verifier = Verifier::default();
        feed(&mut verifier, "alice", 1, &run("a1"));
        verifier.socket_opened("bob", 2, 0);
        verifier.frame("bob", 2, &event(1, "message_received", "a1"));
        verifier.socket_opened("bob", 3, 0);
        verifier.frame("bob", 3, &event(1, "message_received", "b9"));
        verifier.frame("bob", 3, &event(2, "run_started", "b9"));
        let found = verifier.finish();
        assert!(found.contains(&Violation::Foreign {
            user: "bob".into(),
            id: "a1".into(),
            owner: "alice".into()
        }));
        assert!(found.contains(&Violation::Diverged {
            user: "bob".into(),
            seq: 1
        }));
        assert!(found.contains(&Violation::Unfinished {
            user: "bob".into(),
            run_id: "b9".into()
        }));
    }

    #[test]
    fn a_resumed_socket_continues_from_its_resume_point() {
        let mut verifier = Verifier::default();
        feed(&mut verifier, "alice", 1, &run("a1"));
        verifier.socket_opened("alice", 2, 2);
        for frame in &run("a1")[2..] {
            verifier.frame("alice", 2, frame);
        }
        assert!(verifier.finish().is_empty());
    }
}
