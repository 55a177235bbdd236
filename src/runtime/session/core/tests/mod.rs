//! `SessionCore` driven without actix: a few scenarios, then a property test that replays
//! random interleavings of messages, agent events, lost batches, cancels, approvals,
//! disconnects and resumes against the model in `world.rs`.

mod ops;
mod world;

use proptest::prelude::*;

use ops::{Op, op};
use world::{MAX_RUNNING, World};

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

#[test]
fn a_message_to_a_thread_deleted_while_its_lookup_was_out_is_refused() {
    let mut world = World::new();
    // A thread of an earlier session: known to the database, not to this session.
    let thread_id = crate::context::ThreadId::new();
    world.stored_threads.push(thread_id);
    let conn_id = world.clients[0].conn_id;
    let message = crate::protocol::UserMessage {
        content: "continue".into(),
        thread_id: Some(thread_id),
        client_msg_id: None,
    };
    world.core.message(conn_id, message, world.now);
    world.perform();
    assert_eq!(world.lookups.len(), 1, "the thread is looked up");
    // The deletion is handled while the read is out; the read still finds the thread.
    let (durable, _) = tokio::sync::oneshot::channel();
    world
        .core
        .delete_thread(thread_id, durable)
        .expect("no run on it yet");
    world.perform();
    world.step(Op::AnswerLookup { fail: false });
    assert!(world.core.runs.is_empty(), "no run on a deleted thread");
    world.settle();
    assert!(world.accepted.is_empty());
}
