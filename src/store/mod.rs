//! Persistence: schema, rows, repositories, the write batch and the executor threads.
//!
//! Nothing outside this module names diesel except through `repo` functions run by the `Db`
//! executor. SQLite (a file, WAL) is the embedded default; PostgreSQL the production path.

pub mod backup;
pub mod batch;
pub mod bulk;
pub mod cluster;
pub mod connection;
pub mod executor;
pub mod leases;
pub mod models;
pub mod node_status;
pub mod ownership;
pub mod recovery;
pub mod repo;
pub mod schema;
pub mod status;
pub mod user_store;
pub mod writer;

use std::time::Duration;

use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub use connection::{Backend, DbConnection, SqliteSync};
pub use executor::Db;
pub use user_store::UserStore;

/// The connections the `Db` executor's threads take, to SQLite or PostgreSQL alike.
pub type Pool = r2d2::Pool<connection::ConnectionManager>;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Why a database operation failed; an HTTP request it fails is logged and answered `unavailable`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("migrations failed: {0}")]
    Migration(String),
    #[error("backup: {0}")]
    Backup(String),
    #[error("database executor stopped")]
    Mailbox(#[from] actix::MailboxError),
    #[error("write failed by fault injection")]
    Injected,
    #[error("the database writer stopped")]
    WriterStopped,
    #[error("a write failed on a server bug (it panicked); see the log")]
    WritePanicked,
    #[error("a read failed on a server bug (it panicked); see the log")]
    ReadPanicked,
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Connect(#[from] connection::ConnectError),
    #[error(transparent)]
    Ownership(#[from] ownership::OwnershipError),
    #[error("the blocking pool stopped: {0}")]
    Blocking(String),
    #[error("nobody waits for the answer any more (the run was cancelled or timed out)")]
    Abandoned,
    /// The write would take the user over their cap on stored usage records; nothing of it was
    /// stored.
    #[error(
        "storing these records would take you over your limit of {limit} usage records; \
         delete some (DELETE /api/usage) first"
    )]
    QuotaExceeded {
        /// The cap.
        limit: u64,
    },
    /// The account the write was for has been deleted (`DELETE /api/account`) meanwhile;
    /// nothing of the write was stored.
    #[error("the account was deleted")]
    AccountDeleted,
    /// Another node claimed the user since this session did (`leases.rs`): nothing of the
    /// write was stored, and the session must stop.
    #[error("user {user} is now owned by another node; this session's write was refused")]
    Fenced {
        /// The user (the key their account stores under).
        user: String,
    },
}

/// Opens a pool of `size` connections to `backend`.
pub fn open_pool(
    backend: &Backend,
    size: u32,
    timeout: Duration,
    sync: SqliteSync,
) -> Result<Pool, StoreError> {
    let manager = connection::ConnectionManager::new(backend.clone(), timeout, sync);
    pool_of(manager, size, timeout)
}

/// Opens a pool of `size` connections for the writer threads (on SQLite: a bigger page cache
/// and statement journals in memory, `connection.rs`).
pub fn open_writer_pool(
    backend: &Backend,
    size: u32,
    timeout: Duration,
    sync: SqliteSync,
) -> Result<Pool, StoreError> {
    let manager = connection::ConnectionManager::new(backend.clone(), timeout, sync);
    pool_of(manager.for_writers(), size, timeout)
}

fn pool_of(
    manager: connection::ConnectionManager,
    size: u32,
    timeout: Duration,
) -> Result<Pool, StoreError> {
    // No background work in the pool: a connection is opened only while a checkout waits for
    // it, and none is closed on a timer (a broken one is found at checkout). r2d2 otherwise
    // opens a spare and reaps idle ones on its own threads, and a libpq connect racing the
    // process's exit crashed it (OpenSSL's exit handler; `main.rs` ends with `_exit` too).
    Ok(r2d2::Pool::builder()
        .max_size(size.max(2))
        .min_idle(Some(0))
        .idle_timeout(None)
        .max_lifetime(None)
        .connection_timeout(timeout)
        .build(manager)?)
}

/// The PostgreSQL advisory lock migrations run under ("enclave" in ASCII).
const MIGRATION_LOCK: i64 = 0x0065_6e63_6c61_7665;

/// Applies every pending migration; returns how many ran. On PostgreSQL it holds an advisory
/// lock meanwhile, so servers (or `enclave migrate`s) starting together take turns: the first
/// migrates, the others wait and find nothing left to do. On SQLite one write transaction
/// around them all does the same.
pub fn migrate(conn: &mut DbConnection) -> Result<usize, StoreError> {
    let ran = match conn {
        // One write transaction around them all: a second process waits for the first.
        DbConnection::Sqlite(c) => {
            c.immediate_transaction(|c| c.run_pending_migrations(MIGRATIONS).map(|v| v.len()))
        }
        DbConnection::Pg(c) => {
            use diesel::RunQueryDsl;
            let lock = |c: &mut diesel::PgConnection, call: &str| {
                diesel::sql_query(format!("SELECT {call}($1)"))
                    .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK)
                    .execute(c)
            };
            lock(c, "pg_advisory_lock")?;
            let ran = c.run_pending_migrations(MIGRATIONS).map(|v| v.len());
            lock(c, "pg_advisory_unlock")?;
            ran
        }
    };
    ran.map_err(|e| StoreError::Migration(e.to_string()))
}

/// Whether every migration has been applied (for `/readyz`).
pub fn migrations_current(conn: &mut DbConnection) -> Result<bool, StoreError> {
    let pending = match conn {
        DbConnection::Sqlite(c) => c.has_pending_migration(MIGRATIONS),
        DbConnection::Pg(c) => c.has_pending_migration(MIGRATIONS),
    };
    pending
        .map(|p| !p)
        .map_err(|e| StoreError::Migration(e.to_string()))
}
