//! The verifier against planted faults: each kind of violation is caught, and a clean stream
//! passes.

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
    verifier.socket_opened("bob", 3, 0);
    verifier.frame("bob", 2, &event(1, "message_received", "a1"));
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
fn a_resumed_socket_continues_from_its_resume_point_and_may_see_copies_before_resumed() {
    let mut verifier = Verifier::default();
    feed(&mut verifier, "alice", 1, &run("a1"));
    verifier.socket_opened("alice", 2, 2);
    // A copy of an event it had, before `resumed`: allowed.
    verifier.frame("alice", 2, &run("a1")[1]);
    for frame in &run("a1")[2..] {
        verifier.frame("alice", 2, frame);
    }
    verifier.frame("alice", 2, r#"{"type":"resumed","through_seq":4}"#);
    assert!(verifier.violations().is_empty());
    // After `resumed`, a copy is a duplicate.
    verifier.frame("alice", 2, &run("a1")[3]);
    assert_eq!(
        verifier.finish(),
        [Violation::Duplicate {
            user: "alice".into(),
            socket: 2,
            seq: 4
        }]
    );
}

#[test]
fn a_copy_that_differs_during_replay_is_a_divergence() {
    let mut verifier = Verifier::default();
    // Socket 3 has seen nothing yet, so the events stay held for it.
    verifier.socket_opened("alice", 3, 0);
    feed(&mut verifier, "alice", 1, &run("a1"));
    verifier.socket_opened("alice", 2, 3);
    verifier.frame("alice", 2, &event(3, "agent_started", "other"));
    assert!(verifier.finish().contains(&Violation::Diverged {
        user: "alice".into(),
        seq: 3
    }));
}

#[test]
fn a_socket_that_stops_short_of_its_sibling_is_missing_events() {
    let mut user = UserVerifier::new("alice");
    user.socket_opened(1, 40, false);
    user.socket_opened(2, 40, false);
    for (socket, last) in [(1, 43), (2, 42)] {
        for seq in 41..=last {
            let text = event(seq, "agent_thinking", "a1");
            let frame = serde_json::from_str(&text).expect("test frame");
            user.frame(socket, &frame, &text);
        }
    }
    assert!(!user.behind(1));
    assert!(user.behind(2));
    assert!(
        user.events.len() <= 2,
        "a user's history before the test is not held"
    );
    user.check_caught_up(1);
    user.check_caught_up(2);
    assert_eq!(
        user.finish(),
        [Violation::Missing {
            user: "alice".into(),
            socket: 2,
            last_seq: 42,
            highest: 43
        }]
    );
}

#[test]
fn memory_holds_only_events_some_socket_has_not_passed() {
    let mut user = UserVerifier::new("alice");
    user.socket_opened(1, 0, false);
    user.socket_opened(2, 0, false);
    let frames: Vec<String> = (1..=1000)
        .map(|seq| event(seq, "agent_thinking", "a1"))
        .collect();
    for text in &frames {
        let frame = serde_json::from_str(text).expect("test frame");
        user.frame(1, &frame, text);
    }
    assert_eq!(user.events.len(), 1000, "socket 2 has seen none of them");
    for text in &frames {
        let frame = serde_json::from_str(text).expect("test frame");
        user.frame(2, &frame, text);
    }
    assert!(user.events.is_empty());
    assert_eq!(user.first_seq, 1001);
    assert!(user.finish().is_empty());
}

#[test]
fn the_acceptance_copy_answering_a_repeated_message_is_not_a_duplicate() {
    let accepted = r#"{"type":"run_started","seq":2,"ts":1,"thread_id":"t-a1","run_id":"a1","data":{"client_msg_id":"m1"}}"#;
    let mut verifier = Verifier::default();
    verifier.socket_opened("alice", 1, 0);
    verifier.socket_opened("alice", 2, 0);
    // A third socket has read nothing yet, so the events stay held and copies are compared.
    verifier.socket_opened("alice", 3, 0);
    verifier.frame("alice", 1, &event(1, "message_received", "a1"));
    verifier.frame("alice", 1, accepted);
    verifier.frame("alice", 2, &event(1, "message_received", "a1"));
    verifier.frame("alice", 2, accepted);
    // The message is sent again on socket 1: the server answers with the same acceptance.
    verifier.user("alice").expect_copy(1, "m1");
    verifier.frame("alice", 1, accepted);
    assert!(verifier.violations().is_empty());
    assert!(verifier.user("alice").violations().is_empty());
    // Once: a second copy, or a copy nobody sent again for, is a duplicate.
    verifier.frame("alice", 1, accepted);
    verifier.frame("alice", 2, accepted);
    // Any other repeated event is still a duplicate, and a changed acceptance diverges.
    verifier.frame("alice", 1, &event(1, "message_received", "a1"));
    let changed = accepted.replace(r#""ts":1"#, r#""ts":2"#);
    verifier.user("alice").expect_copy(2, "m1");
    verifier.frame("alice", 2, &changed);
    let found = verifier.finish();
    for (socket, seq) in [(1, 2), (2, 2), (1, 1)] {
        let duplicate = Violation::Duplicate {
            user: "alice".into(),
            socket,
            seq,
        };
        assert!(found.contains(&duplicate), "{duplicate:?} in {found:?}");
    }
    assert!(found.contains(&Violation::Diverged {
        user: "alice".into(),
        seq: 2
    }));
}

#[test]
fn a_wild_seq_is_a_gap_and_holds_no_memory() {
    let mut user = UserVerifier::new("alice");
    user.socket_opened(1, 0, false);
    user.socket_opened(2, 0, false);
    let text = event(i64::MAX / 2, "agent_thinking", "a1");
    let frame = serde_json::from_str(&text).expect("test frame");
    user.frame(1, &frame, &text);
    assert!(user.events.len() < 1024, "held {}", user.events.len());
    assert!(matches!(user.violations(), [Violation::Gap { .. }]));
}

#[test]
fn a_socket_behind_where_a_sibling_started_is_missing_events() {
    let mut user = UserVerifier::new("alice");
    user.socket_opened(1, 4, false);
    user.socket_opened(2, 5, false);
    assert!(user.behind(1));
    assert!(!user.behind(2));
}
