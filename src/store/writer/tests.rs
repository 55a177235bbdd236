//! The writer against a real SQLite file: groups commit together, a bad or panicking batch
//! fails alone, faults strike only the users they name, and nothing is answered `Ok` before
//! its commit.

use super::*;
use crate::context::{ThreadId, UserId};
use crate::protocol::Event;
use crate::protocol::payload::ThreadDeleted;
use crate::store::batch::WriteOp;
use crate::store::connection::{Backend, ConnectionManager, SqliteSync};
use crate::store::{migrate, open_pool, repo};
use r2d2::ManageConnection;

/// A writer on a fresh, migrated SQLite file, and a way to open connections of its own to
/// read what is committed (not one of the writer's pool, which may hold what is not).
fn writer(faults: Faults) -> (Writer, ConnectionManager, Arc<Metrics>, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("enclave-writer-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite://{}", dir.join("w.db").display());
    let backend = Backend::from_url(&url).expect("a sqlite url");
    let timeout = std::time::Duration::from_secs(5);
    let pool = open_pool(&backend, 2, timeout, SqliteSync::Full).expect("pool");
    migrate(&mut pool.get().expect("connection")).expect("migrations");
    let metrics = Arc::new(Metrics::new());
    let writer = Writer::start(
        "test-writer".into(),
        pool.clone(),
        Arc::new(faults),
        Arc::from("node"),
        Arc::clone(&metrics),
    )
    .expect("writer");
    let reader = ConnectionManager::new(backend, timeout, SqliteSync::Full);
    (writer, reader, metrics, dir)
}

/// A batch of `user`'s events numbered `seqs`.
fn batch(user: &str, seqs: &[i64]) -> WriteBatch {
    let thread = ThreadId::new();
    let events = seqs
        .iter()
        .map(|seq| {
            let mut event = Event::new(ThreadDeleted {}, Some(thread), None, None);
            event.seq = *seq;
            event
        })
        .collect();
    WriteBatch {
        user_id: UserId::parse(user).expect("a valid user"),
        ops: Vec::new(),
        events,
        lease: None,
    }
}

/// `user`'s last committed `seq`.
fn last_seq(reader: &ConnectionManager, user: &str) -> i64 {
    let user = UserId::parse(user).expect("a valid user");
    let mut conn = reader.connect().expect("connection");
    repo::events::last_seq(&mut conn, &user).expect("read")
}

/// Holds the writer until the returned sender is dropped or sent to, so what is written
/// meanwhile waits in its queue and is grouped.
fn hold(writer: &Writer) -> (std::sync::mpsc::Sender<()>, impl Future<Output = ()>) {
    let (open, gate) = std::sync::mpsc::channel::<()>();
    let held = writer.run(move |_| {
        let _ = gate.recv();
        Ok(())
    });
    (open, async move { held.await.expect("the gate job") })
}

#[tokio::test(flavor = "current_thread")]
async fn waiting_batches_of_many_users_commit_together_and_a_bad_one_fails_alone() {
    let (writer, pool, metrics, dir) = writer(Faults::none());
    let (open, held) = hold(&writer);
    let alice = writer.write(batch("alice", &[1, 2]));
    let bob = writer.write(batch("bob", &[1]));
    // Two events at one `seq`: the primary key refuses it, and with it the group.
    let mallory = writer.write(batch("mallory", &[1, 1]));
    let carol = writer.write(batch("carol", &[1, 2, 3]));
    open.send(()).expect("the writer waits");
    held.await;
    assert!(alice.await.is_ok());
    assert!(bob.await.is_ok());
    assert!(matches!(mallory.await, Err(StoreError::Query(_))));
    assert!(carol.await.is_ok());
    assert_eq!(metrics.group_retries.get(), 1, "the group failed once");
    assert_eq!(metrics.batches_per_commit.get_sample_count(), 1);
    assert_eq!(
        metrics.batches_per_commit.get_sample_sum(),
        4.0,
        "one group of 4"
    );
    let stored: Vec<i64> = ["alice", "bob", "mallory", "carol"]
        .iter()
        .map(|user| last_seq(&pool, user))
        .collect();
    assert_eq!(stored, [2, 1, 0, 3]);

    // Without a bad batch, one commit stores the whole group.
    let (open, held) = hold(&writer);
    let writes: Vec<_> = (0..10)
        .map(|n| writer.write(batch(&format!("user-{n}"), &[1])))
        .collect();
    drop(open);
    held.await;
    for write in writes {
        assert!(write.await.is_ok());
    }
    assert_eq!(metrics.group_retries.get(), 1);
    assert_eq!(metrics.batches_per_commit.get_sample_sum(), 14.0);
    assert_eq!(metrics.batches_per_commit.get_sample_count(), 2);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "current_thread")]
async fn a_thread_deleted_in_a_group_erases_the_events_stored_before_it_in_that_group() {
    let (writer, pool, metrics, dir) = writer(Faults::none());
    let (open, held) = hold(&writer);
    let earlier = batch("alice", &[1, 2]);
    let thread = earlier
        .events
        .first()
        .and_then(|e| e.thread_id)
        .expect("a thread");
    let mut deletion = batch("alice", &[3]);
    deletion
        .ops
        .push(WriteOp::DeleteThread { thread_id: thread });
    for event in &mut deletion.events {
        event.thread_id = Some(thread);
    }
    let writes = [writer.write(earlier), writer.write(deletion)];
    drop(open);
    held.await;
    for write in writes {
        assert!(write.await.is_ok());
    }
    assert_eq!(
        metrics.batches_per_commit.get_sample_sum(),
        2.0,
        "one group of 2"
    );
    let alice = UserId::parse("alice").expect("a valid user");
    let mut conn = pool.connect().expect("connection");
    let kinds: Vec<String> = repo::events::range(&mut conn, &alice, 0, 10, 10)
        .expect("read")
        .iter()
        .map(|e| e.kind.as_str().to_owned())
        .collect();
    assert_eq!(kinds, ["erased", "erased", "thread_deleted"]);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "current_thread")]
async fn injected_failures_fail_only_the_named_users_batches() {
    let faults = Faults::parse("store:fail:2@alice").expect("valid");
    let (writer, pool, _, dir) = writer(faults);
    let (open, held) = hold(&writer);
    let first = writer.write(batch("alice", &[1]));
    let bob = writer.write(batch("bob", &[1]));
    let second = writer.write(batch("alice", &[1]));
    let third = writer.write(batch("alice", &[1]));
    drop(open);
    held.await;
    assert!(matches!(first.await, Err(StoreError::Injected)));
    assert!(bob.await.is_ok());
    assert!(matches!(second.await, Err(StoreError::Injected)));
    assert!(third.await.is_ok(), "two failures, then writes go through");
    assert_eq!(last_seq(&pool, "alice"), 1);
    assert_eq!(last_seq(&pool, "bob"), 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "current_thread")]
async fn a_panicking_write_fails_its_caller_and_the_writer_goes_on() {
    let (writer, pool, _, dir) = writer(Faults::none());
    let panicked = writer.run(|conn| -> Result<(), StoreError> {
        repo::events::insert(conn, &UserId::parse("mallory").expect("valid"), &[])?;
        panic!("a bug in a write")
    });
    assert!(matches!(panicked.await, Err(StoreError::WritePanicked)));
    // The connection left inside the panicked transaction is not handed out again: had it
    // been, this write would be a savepoint in that transaction, never committed.
    assert!(writer.write(batch("alice", &[1])).await.is_ok());
    assert_eq!(last_seq(&pool, "alice"), 1, "committed");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "current_thread")]
async fn a_batch_that_panics_fails_alone_and_the_rest_of_its_group_is_committed() {
    // Mallory's batch panics in the group's transaction and again on its own.
    let (writer, pool, metrics, dir) =
        writer(Faults::parse("store:panic:2@mallory").expect("valid"));
    let (open, held) = hold(&writer);
    let writes = [
        writer.write(batch("alice", &[1])),
        writer.write(batch("mallory", &[1])),
        writer.write(batch("bob", &[1, 2])),
    ];
    drop(open);
    held.await;
    let [alice, mallory, bob] = writes;
    assert!(alice.await.is_ok());
    assert!(matches!(mallory.await, Err(StoreError::WritePanicked)));
    assert!(bob.await.is_ok());
    assert_eq!(metrics.group_retries.get(), 1);
    let committed: Vec<i64> = ["alice", "mallory", "bob"]
        .iter()
        .map(|user| last_seq(&pool, user))
        .collect();
    assert_eq!(committed, [1, 0, 2]);
    assert!(writer.write(batch("carol", &[1])).await.is_ok());
    assert_eq!(
        last_seq(&pool, "carol"),
        1,
        "the writer goes on, committing"
    );
    let _ = std::fs::remove_dir_all(dir);
}
