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
use crate::store::{Pool, StoreError, cluster, leases};

/// The most batches stored in one transaction: bounds a group's latency and a retry's work.
const MAX_GROUP: usize = 512;

/// Work for a writer thread, run on its connection.
type Work = Box<dyn FnOnce(&mut WriterThread) + Send>;

/// Where a batch's sender hears whether it is durable.
type Reply = oneshot::Sender<Result<(), StoreError>>;

/// What a writer thread is sent.
enum Job {
    /// A session's batch, and where to say whether it is durable.
    Batch(WriteBatch, Reply),
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
            let result = thread.attempt(|conn| conn.transaction(|conn| work(conn)));
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
            self.metrics.db_panics.with_label_values(&["writer"]).inc();
        }
    }

    /// Stores `group` in one transaction, or batch by batch if that fails (an error or a
    /// panic), and answers each.
    fn store_group(&mut self, group: Vec<(WriteBatch, Reply)>) {
        let group: Vec<_> = group
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
        self.metrics.batches_per_commit.observe(group.len() as f64);
        if group.len() > 1 {
            let batches = group.iter().map(|(batch, _)| batch);
            match self.store(batches) {
                Ok(()) => {
                    for (_, reply) in group {
                        let _ = reply.send(Ok(()));
                    }
                    return;
                }
                Err(StoreError::Pool(e)) => {
                    // No connection: one by one, each would wait the pool's timeout again.
                    return answer_unavailable(group, &e.to_string());
                }
                Err(e) => {
                    log::warn!(
                        "a group of {} batches failed ({e}); storing them one by one",
                        group.len()
                    );
                    self.metrics.group_retries.inc();
                }
            }
        }
        let mut rest = group.into_iter();
        while let Some((batch, reply)) = rest.next() {
            match self.store(std::iter::once(&batch)) {
                Err(StoreError::Pool(e)) => {
                    let reason = e.to_string();
                    let _ = reply.send(Err(StoreError::Unavailable(reason.clone())));
                    return answer_unavailable(rest.collect(), &reason);
                }
                result => {
                    let _ = reply.send(result);
                }
            }
        }
    }

    /// Stores `batches` in one transaction on a connection of their own (`store:panic` faults
    /// strike here, mid-transaction).
    fn store<'a>(
        &self,
        batches: impl Iterator<Item = &'a WriteBatch> + Clone,
    ) -> Result<(), StoreError> {
        let node_id = Arc::clone(&self.node_id);
        let faults = Arc::clone(&self.faults);
        self.attempt(move |conn| {
            conn.transaction(|conn| {
                leases::check(conn, batches.clone())?;
                apply_group(conn, batches.clone(), &node_id)?;
                let users: Vec<&str> = batches.clone().map(|b| b.user_id.as_str()).collect();
                cluster::notify_followers(conn, &users)?;
                if let Some(batch) = batches
                    .clone()
                    .find(|b| faults.take_store_panic(&b.user_id))
                {
                    panic!("store:panic injected for {}", batch.user_id);
                }
                Ok(())
            })
        })
    }

    /// Runs `write` on a connection from the pool, turning a panic into `WritePanicked`. A
    /// connection left inside a transaction (by the panic, or a failed rollback) goes back to
    /// the pool broken, and the pool discards it (`ConnectionManager::has_broken`), so the
    /// next attempt, a retry included, gets a sound one.
    fn attempt<T>(
        &self,
        write: impl FnOnce(&mut DbConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.pool.get()?;
        match std::panic::catch_unwind(AssertUnwindSafe(|| write(&mut conn))) {
            Ok(result) => result,
            Err(_) => {
                log::error!("a write panicked; its connection is discarded");
                self.metrics.db_panics.with_label_values(&["writer"]).inc();
                Err(StoreError::WritePanicked)
            }
        }
    }
}

/// Answers every batch of `group` that the database is unavailable (`reason`).
fn answer_unavailable(group: Vec<(WriteBatch, Reply)>, reason: &str) {
    for (_, reply) in group {
        let _ = reply.send(Err(StoreError::Unavailable(reason.to_owned())));
    }
}

#[cfg(test)]
mod tests;
