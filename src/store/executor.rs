//! The database executor: all blocking diesel work runs here, on `SyncArbiter` threads, never
//! on an async arbiter.
//!
//! `DbWriter` (one thread per SQLite file, a few for PostgreSQL) applies `WriteBatch`es;
//! `DbReader` threads run read closures built from `repo` functions. `Db` is the cloneable
//! handle the rest of enclave holds.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use actix::prelude::*;
use diesel::Connection;

use crate::context::UserId;
use crate::faults::Faults;
use crate::store::batch::WriteBatch;
use crate::store::connection::DbConnection;
use crate::store::{Pool, StoreError};

/// A query closure, built from `repo` functions.
type Query<T> = Box<dyn FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send>;

/// A read to run on a reader thread.
pub struct Read<T>(Query<T>);

impl<T: Send + 'static> Message for Read<T> {
    type Result = Result<T, StoreError>;
}

/// A write other than an event batch (an upload, a deletion), run in one transaction on the
/// writer thread.
pub struct WriteWith<T>(Query<T>);

impl<T: Send + 'static> Message for WriteWith<T> {
    type Result = Result<T, StoreError>;
}

/// Applies one batch in one transaction.
pub struct Write(pub WriteBatch);

impl Message for Write {
    type Result = Result<(), StoreError>;
}

/// Serves reads from the pool.
pub struct DbReader {
    pool: Pool,
}

impl Actor for DbReader {
    type Context = SyncContext<Self>;
}

impl<T: Send + 'static> Handler<Read<T>> for DbReader {
    type Result = Result<T, StoreError>;

    fn handle(&mut self, msg: Read<T>, _: &mut SyncContext<Self>) -> Self::Result {
        let mut conn = self.pool.get()?;
        (msg.0)(&mut conn)
    }
}

/// Applies write batches; with SQLite the only thread that writes.
pub struct DbWriter {
    pool: Pool,
    faults: Arc<Faults>,
    /// This server's node id, recorded on the runs it creates.
    node_id: Arc<str>,
}

impl Actor for DbWriter {
    type Context = SyncContext<Self>;
}

impl Handler<Write> for DbWriter {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: Write, _: &mut SyncContext<Self>) -> Self::Result {
        if self.faults.take_store_failure() {
            return Err(StoreError::Injected);
        }
        if let Some(delay) = self.faults.store_delay() {
            // A writer thread of its own (SyncArbiter): waiting here blocks no arbiter.
            std::thread::sleep(delay);
        }
        let mut conn = self.pool.get()?;
        msg.0.apply(&mut conn, &self.node_id)?;
        Ok(())
    }
}

impl<T: Send + 'static> Handler<WriteWith<T>> for DbWriter {
    type Result = Result<T, StoreError>;

    fn handle(&mut self, msg: WriteWith<T>, _: &mut SyncContext<Self>) -> Self::Result {
        let mut conn = self.pool.get()?;
        conn.transaction(|conn| (msg.0)(conn))
    }
}

/// The handle to the executor threads.
#[derive(Clone)]
pub struct Db {
    reader: Addr<DbReader>,
    /// One single-threaded writer per slot; a user's writes always go to the same one, so
    /// they are applied in the order they were sent.
    writers: Arc<[Addr<DbWriter>]>,
    /// The first of them, which also takes `write_with` work.
    first_writer: Addr<DbWriter>,
}

impl Db {
    /// Starts `readers` reader threads and `writers` writer threads on `pool`; call inside a
    /// running actix system. `node_id` is recorded on the runs the writers create.
    pub fn start(
        pool: Pool,
        readers: usize,
        writers: usize,
        faults: Arc<Faults>,
        node_id: &str,
    ) -> Self {
        let reader_pool = pool.clone();
        let reader = SyncArbiter::start(readers.max(1), move || DbReader {
            pool: reader_pool.clone(),
        });
        let node_id: Arc<str> = Arc::from(node_id);
        let start_writer = || {
            let (pool, faults, node_id) = (pool.clone(), faults.clone(), node_id.clone());
            SyncArbiter::start(1, move || DbWriter {
                pool: pool.clone(),
                faults: faults.clone(),
                node_id: node_id.clone(),
            })
        };
        let first_writer = start_writer();
        let writers = std::iter::once(first_writer.clone())
            .chain((1..writers).map(|_| start_writer()))
            .collect();
        Self {
            reader,
            writers,
            first_writer,
        }
    }

    /// The writer that applies `user`'s writes.
    fn writer_of(&self, user: &UserId) -> &Addr<DbWriter> {
        let mut hasher = std::hash::DefaultHasher::new();
        user.as_str().hash(&mut hasher);
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

    /// Runs `query` on `user`'s writer thread, after every write of `user` sent before it has
    /// been applied (a restarted session reads its last `seq` so).
    pub async fn read_after_writes<T, F>(&self, user: &UserId, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
    {
        let writer = self.writer_of(user);
        writer.send(WriteWith(Box::new(query))).await?
    }

    /// Runs `write` in one transaction on a writer thread.
    pub async fn write_with<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
    {
        self.first_writer.send(WriteWith(Box::new(write))).await?
    }

    /// Applies `batch` on its user's writer thread.
    pub async fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let writer = self.writer_of(&batch.user_id);
        writer.send(Write(batch)).await?
    }
}
