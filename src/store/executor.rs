//! The database executor: all blocking diesel work runs here, on `SyncArbiter` threads, never
//! on an async arbiter.
//!
//! `DbWriter` (one thread per SQLite file, a few for PostgreSQL) applies `WriteBatch`es;
//! `DbReader` threads run read closures built from `repo` functions. `Db` is the cloneable
//! handle the rest of enclave holds.

use std::sync::Arc;

use actix::prelude::*;
use diesel::Connection;

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
        let mut conn = self.pool.get()?;
        msg.0.apply(&mut conn)?;
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
    writer: Addr<DbWriter>,
}

impl Db {
    /// Starts `readers` reader threads and `writers` writer threads on `pool`; call inside a
    /// running actix system.
    pub fn start(pool: Pool, readers: usize, writers: usize, faults: Arc<Faults>) -> Self {
        let reader_pool = pool.clone();
        let reader = SyncArbiter::start(readers.max(1), move || DbReader {
            pool: reader_pool.clone(),
        });
        let writer = SyncArbiter::start(writers.max(1), move || DbWriter {
            pool: pool.clone(),
            faults: faults.clone(),
        });
        Self { reader, writer }
    }

    /// Runs `query` on a reader thread.
    pub async fn read<T, F>(&self, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
    {
        self.reader.send(Read(Box::new(query))).await?
    }

    /// Runs `write` in one transaction on the writer thread.
    pub async fn write_with<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
    {
        self.writer.send(WriteWith(Box::new(write))).await?
    }

    /// Applies `batch` on the writer thread.
    pub async fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.writer.send(Write(batch)).await?
    }
}
