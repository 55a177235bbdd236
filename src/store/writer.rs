//! The writer thread, with group commit: it takes every event batch waiting for it, of every
//! user, and stores them in one transaction, so one commit (one fsync) serves them all; then
//! each batch's sender is told its batch is durable. A group that fails is retried batch by
//! batch, so one user's failing batch fails only that user's write. Other writes (uploads,
//! deletions, reads that must follow a user's writes) run between groups, in order.
//!
//! A plain thread fed by a channel rather than an actix `SyncArbiter` actor, because grouping
//! needs to see everything waiting in the queue, and an actor sees one message at a time.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use diesel::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::faults::Faults;
use crate::metrics::Metrics;
use crate::store::batch::{WriteBatch, apply_group};
use crate::store::connection::DbConnection;
use crate::store::{Pool, StoreError};

/// The most batches stored in one transaction: bounds a group's latency and a retry's work.
const MAX_GROUP: usize = 512;

/// Work for a writer thread, run on its connection.
type Work = Box<dyn FnOnce(&mut WriterThread) + Send>;

/// A connection the writer holds for one job.
type PooledConnection = r2d2::PooledConnection<crate::store::connection::ConnectionManager>;

/// What a writer thread is sent.
enum Job {
    /// A session's batch, and where to say whether it is durable.
    Batch(WriteBatch, oneshot::Sender<Result<(), StoreError>>),
    /// Anything else, run alone (it replies itself).
    Other(Work),
}

/// The handle to one writer thread; cloning it shares the thread.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
}

/// The state of one writer thread.
pub struct WriterThread {
    pool: Pool,
    faults: Arc<Faults>,
    /// This server's node id, recorded on the runs it creates.
    node_id: Arc<str>,
    /// Where group sizes and retries are counted.
    metrics: Arc<Metrics>,
}

impl Writer {
    /// Starts writer thread `name` on `pool`.
    pub fn start(
        name: String,
        pool: Pool,
        faults: Arc<Faults>,
        node_id: Arc<str>,
        metrics: Arc<Metrics>,
    ) -> Result<Writer, StoreError> {
        let (jobs, queue) = mpsc::unbounded_channel();
        let thread = WriterThread {
            pool,
            faults,
            node_id,
            metrics,
        };
        std::thread::Builder::new()
            .name(name)
            .spawn(move || thread.serve(queue))
            .map_err(|e| StoreError::Blocking(format!("cannot start a writer thread: {e}")))?;
        Ok(Writer { jobs })
    }

    /// Stores `batch`, grouped with whatever else is waiting; `Ok` once it is durable. The
    /// batch is queued when this is called, not when the future is first polled, so a user's
    /// writes keep the order of the calls.
    pub fn write(&self, batch: WriteBatch) -> impl Future<Output = Result<(), StoreError>> + use<> {
        let (reply, answer) = oneshot::channel();
        let queued = self.jobs.send(Job::Batch(batch, reply));
        async move {
            queued.map_err(|_| StoreError::WriterStopped)?;
            answer.await.map_err(|_| StoreError::WriterStopped)?
        }
    }

    /// Runs `work` in one transaction on the writer thread, after everything queued before it
    /// (queued when this is called).
    pub fn run<T, F>(&self, work: F) -> impl Future<Output = Result<T, StoreError>> + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Job::Other(Box::new(move |thread: &mut WriterThread| {
            let result = thread
                .connection()
                .and_then(|mut conn| conn.transaction(|conn| work(conn)));
            let _ = reply.send(result);
        }));
        let queued = self.jobs.send(job);
        async move {
            queued.map_err(|_| StoreError::WriterStopped)?;
            answer.await.map_err(|_| StoreError::WriterStopped)?
        }
    }
}

impl WriterThread {
    /// Serves jobs until every `Writer` handle is gone.
    fn serve(mut self, mut queue: mpsc::UnboundedReceiver<Job>) {
        let mut held = None;
        loop {
            let Some(job) = held.take().or_else(|| queue.blocking_recv()) else {
                return;
            };
            let batches = match job {
                Job::Other(work) => {
                    self.guarded(work);
                    continue;
                }
                Job::Batch(batch, reply) => {
                    let mut group = vec![(batch, reply)];
                    while group.len() < MAX_GROUP {
                        match queue.try_recv() {
                            Ok(Job::Batch(batch, reply)) => group.push((batch, reply)),
                            Ok(other) => {
                                held = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    group
                }
            };
            self.guarded(Box::new(move |thread: &mut WriterThread| {
                thread.store_group(batches)
            }));
        }
    }

    /// Runs `work`, surviving a panic in it (its callers' replies are dropped, so they learn
    /// the write failed).
    fn guarded(&mut self, work: Work) {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| work(self)));
        if outcome.is_err() {
            log::error!("a write panicked; the writer goes on");
        }
    }

    /// Stores `group` in one transaction, or batch by batch if that fails, and answers each.
    fn store_group(&mut self, group: Vec<(WriteBatch, oneshot::Sender<Result<(), StoreError>>)>) {
        let mut group: Vec<_> = group
            .into_iter()
            .filter_map(|(batch, reply)| {
                if self.faults.take_store_failure(&batch.user_id) {
                    let _ = reply.send(Err(StoreError::Injected));
                    return None;
                }
                Some((batch, reply))
            })
            .collect();
        if group.is_empty() {
            return;
        }
        if let Some(delay) = self.faults.store_delay() {
            // A thread of its own: waiting here blocks no arbiter.
            std::thread::sleep(delay * group.len() as u32);
        }
        let mut conn = match self.connection() {
            Ok(conn) => conn,
            Err(e) => {
                let reason = e.to_string();
                for (_, reply) in group {
                    let _ = reply.send(Err(StoreError::Unavailable(reason.clone())));
                }
                return;
            }
        };
        let node_id = Arc::clone(&self.node_id);
        if group.len() == 1 {
            self.metrics.batches_per_commit.observe(1.0);
            if let Some((batch, reply)) = group.pop() {
                let _ = reply.send(batch.apply(&mut conn, &node_id).map_err(StoreError::from));
            }
            return;
        }
        self.metrics.batches_per_commit.observe(group.len() as f64);
        let stored = conn
            .transaction(|conn| apply_group(conn, group.iter().map(|(batch, _)| batch), &node_id));
        match stored {
            Ok(()) => {
                for (_, reply) in group {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(e) => {
                log::warn!(
                    "a group of {} batches failed ({e}); storing them one by one",
                    group.len()
                );
                self.metrics.group_retries.inc();
                for (batch, reply) in group {
                    let _ = reply.send(batch.apply(&mut conn, &node_id).map_err(StoreError::from));
                }
            }
        }
    }

    fn connection(&self) -> Result<PooledConnection, StoreError> {
        Ok(self.pool.get()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{ThreadId, UserId};
    use crate::protocol::Event;
    use crate::protocol::payload::ThreadDeleted;
    use crate::store::batch::WriteOp;
    use crate::store::connection::{Backend, SqliteSync};
    use crate::store::{migrate, open_pool, repo};

    /// A writer on a fresh, migrated SQLite file.
    fn writer(faults: Faults) -> (Writer, Pool, Arc<Metrics>, std::path::PathBuf) {
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
        (writer, pool, metrics, dir)
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
        }
    }

    fn last_seq(pool: &Pool, user: &str) -> i64 {
        let user = UserId::parse(user).expect("a valid user");
        repo::events::last_seq(&mut pool.get().expect("connection"), &user).expect("read")
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
        let mut conn = pool.get().expect("connection");
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
        let panicked = writer.run(|_| -> Result<(), StoreError> { panic!("a bug in a write") });
        assert!(matches!(panicked.await, Err(StoreError::WriterStopped)));
        assert!(writer.write(batch("alice", &[1])).await.is_ok());
        assert_eq!(last_seq(&pool, "alice"), 1);
        let _ = std::fs::remove_dir_all(dir);
    }
}
