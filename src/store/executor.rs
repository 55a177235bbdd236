//! The database executor: all blocking diesel work runs here, on threads of its own (readers
//! on a `SyncArbiter`, writers on plain threads), never on an async arbiter.
//!
//! `Writer` threads (`writer/`: one per SQLite file, a few for PostgreSQL) store
//! `WriteBatch`es with group commit; `DbReader` threads run read closures built from `repo`
//! functions. `Db` is the cloneable handle the rest of enclave holds.

use std::hash::{Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use actix::prelude::*;

use crate::context::UserId;
use crate::faults::Faults;
use crate::metrics::Metrics;
use crate::store::batch::WriteBatch;
use crate::store::connection::DbConnection;
use crate::store::writer::Writer;
use crate::store::{Pool, StoreError, repo};

/// A query closure, built from `repo` functions.
type Query<T> = Box<dyn FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send>;

/// A read to run on a reader thread.
pub struct Read<T>(Query<T>);

impl<T: Send + 'static> Message for Read<T> {
    type Result = Result<T, StoreError>;
}

/// Serves reads from the pool; a read that panics is answered `ReadPanicked` and the thread
/// goes on (a `SyncArbiter` thread that panicked would be gone for good).
pub struct DbReader {
    pool: Pool,
    faults: Arc<Faults>,
    metrics: Arc<Metrics>,
}

impl Actor for DbReader {
    type Context = SyncContext<Self>;
}

/// The cluster's own work on a reader thread (`Db::aside`): not a read of a request, so an
/// injected `store:read_panic` is left for the reads it is meant for.
pub struct Aside<T>(Query<T>);

impl<T: Send + 'static> Message for Aside<T> {
    type Result = Result<T, StoreError>;
}

impl<T: Send + 'static> Handler<Read<T>> for DbReader {
    type Result = Result<T, StoreError>;

    fn handle(&mut self, msg: Read<T>, _: &mut SyncContext<Self>) -> Self::Result {
        self.run(msg.0, true)
    }
}

impl<T: Send + 'static> Handler<Aside<T>> for DbReader {
    type Result = Result<T, StoreError>;

    fn handle(&mut self, msg: Aside<T>, _: &mut SyncContext<Self>) -> Self::Result {
        self.run(msg.0, false)
    }
}

impl DbReader {
    /// Runs `query` on a pooled connection, surviving a panic in it; `faulty`: an injected
    /// read panic may strike it.
    fn run<T>(&mut self, query: Query<T>, faulty: bool) -> Result<T, StoreError> {
        let mut conn = self.pool.get()?;
        let faults = &self.faults;
        let read = AssertUnwindSafe(|| {
            if faulty && faults.take_read_panic() {
                panic!("store:read_panic injected");
            }
            query(&mut conn)
        });
        std::panic::catch_unwind(read).unwrap_or_else(|_| {
            // A connection the panic left inside a transaction goes back broken and the pool
            // discards it (`ConnectionManager::has_broken`).
            log::error!("a read panicked; the reader goes on");
            self.metrics.db_panics.with_label_values(&["reader"]).inc();
            Err(StoreError::ReadPanicked)
        })
    }
}

/// The handle to the executor threads.
#[derive(Clone)]
pub struct Db {
    reader: Addr<DbReader>,
    /// One writer thread per slot; a user's writes always go to the same one, so they are
    /// applied in the order they were sent.
    writers: Arc<[Writer]>,
    /// The first of them, which also takes `write_with` work.
    first_writer: Writer,
    /// This node's id: on the runs it creates and the users it claims (`leases.rs`).
    node_id: Arc<str>,
}

impl Db {
    /// Starts `readers` reader threads on `pool` and `writers` writer threads on `writer_pool`;
    /// call inside a running actix system (the readers are a `SyncArbiter`). `node_id` is
    /// recorded on the runs the writers create.
    pub fn start(
        pool: Pool,
        writer_pool: Pool,
        readers: usize,
        writers: usize,
        faults: Arc<Faults>,
        node_id: &str,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StoreError> {
        let reader_pool = pool.clone();
        let (reader_faults, reader_metrics) = (faults.clone(), metrics.clone());
        let reader = SyncArbiter::start(readers.max(1), move || DbReader {
            pool: reader_pool.clone(),
            faults: reader_faults.clone(),
            metrics: reader_metrics.clone(),
        });
        let node_id: Arc<str> = Arc::from(node_id);
        let start_writer = |n: usize| {
            let name = format!("db-writer-{n}");
            let metrics = Arc::clone(&metrics);
            Writer::start(
                name,
                writer_pool.clone(),
                faults.clone(),
                node_id.clone(),
                metrics,
            )
        };
        let writers: Arc<[Writer]> = (0..writers.max(1))
            .map(start_writer)
            .collect::<Result<Vec<_>, _>>()?
            .into();
        let first_writer = writers
            .first()
            .cloned()
            .expect("at least one writer was started");
        Ok(Self {
            reader,
            writers,
            first_writer,
            node_id,
        })
    }

    /// This node's id.
    pub fn node_id(&self) -> &Arc<str> {
        &self.node_id
    }

    /// The writer that applies `user`'s writes: chosen by the subject, so every account key of
    /// one subject (`UserId::at_generation`) shares it, and an account's deletion is ordered
    /// with every write of the account before and after it.
    fn writer_of(&self, user: &UserId) -> &Writer {
        let mut hasher = std::hash::DefaultHasher::new();
        user.subject().hash(&mut hasher);
        let slot = (hasher.finish() % self.writers.len() as u64) as usize;
        self.writers.get(slot).unwrap_or(&self.first_writer)
    }

    /// Runs `query` on a reader thread.
    pub async fn read<T, F>(&self, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
    {
        self.reader.send(Read(Box::new(query))).await?
    }

    /// Runs `work` on a reader thread: the cluster's small writes (mail, followers, the view
    /// of live nodes), which must not queue behind the writers' batches and upload chunks
    /// (they queue with the reads instead).
    pub async fn aside<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
    {
        self.reader.send(Aside(Box::new(work))).await?
    }

    /// Runs `query` on a reader thread for the current account of `user` (a token's subject),
    /// whose key (`repo::accounts::key_of`) it is given: after a deletion, the new account's.
    pub async fn read_account<T, F>(&self, user: &UserId, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection, &UserId) -> Result<T, StoreError> + Send + 'static,
    {
        let subject = user.clone();
        self.read(move |conn| {
            let key = repo::accounts::key_of(conn, &subject)?;
            query(conn, &key)
        })
        .await
    }

    /// The key the current account of `user` (a token's subject) stores under.
    pub async fn account_of(&self, user: &UserId) -> Result<UserId, StoreError> {
        self.read_account(user, |_, key| Ok(key.clone())).await
    }

    /// Runs `work` in one transaction on `user`'s writer thread, after every write of `user`
    /// sent before it has been applied: a restarted session reads its last `seq` so, and a
    /// user's uploads, usage deletions and account deletion are ordered with their batches.
    pub async fn run_as<T, F>(&self, user: &UserId, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
    {
        self.writer_of(user).run(work).await
    }

    /// Runs `write` in one transaction on a writer thread (work of no one user).
    pub async fn write_with<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
    {
        self.first_writer.run(write).await
    }

    /// Whether every writer thread answers and gets a connection (for `/readyz`).
    pub async fn writers_ready(&self) -> Result<(), StoreError> {
        let probes = self.writers.iter().map(|writer| writer.run(|_| Ok(())));
        futures_util::future::join_all(probes)
            .await
            .into_iter()
            .collect()
    }

    /// Waits until every writer has applied what was queued on it so far.
    pub async fn settle_writers(&self) {
        let settled = self.writers.iter().map(|writer| writer.run(|_| Ok(())));
        futures_util::future::join_all(settled).await;
    }

    /// Applies `batch` on its user's writer thread.
    /// The batch is queued when this is called, so a user's batches keep the calls' order.
    pub fn write(&self, batch: WriteBatch) -> impl Future<Output = Result<(), StoreError>> + use<> {
        self.writer_of(&batch.user_id).write(batch)
    }
}
