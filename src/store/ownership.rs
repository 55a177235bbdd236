//! One server per database, until enclave runs as several nodes (DESIGN.md §8). A second
//! server on a database another one uses would end that server's live runs at its start-up and
//! number events the first one numbers too, so it refuses to start instead.
//!
//! SQLite: an exclusive `flock` on `<database>.lock`, held for the server's life and released
//! by the kernel however the process ends. PostgreSQL: the mechanism the cluster keeps — a
//! `nodes` row per server with a lease it renews; a server that finds another's lease renewed
//! refuses, and one that finds a lease left to run out (a killed server) waits for it to
//! expire and takes over. Each run records the node that owns it.

use std::fs::{File, TryLockError};
use std::path::PathBuf;
use std::time::Duration;

use diesel::prelude::*;

use crate::clock::now_ms;
use crate::store::schema::nodes;
use crate::store::{Backend, DbConnection, Pool, StoreError};

/// What this server holds while it uses the database.
pub struct Ownership {
    node_id: String,
    /// The SQLite lock file, locked until dropped.
    _lock: Option<File>,
}

/// Another server uses the database.
#[derive(Debug, thiserror::Error)]
pub enum OwnershipError {
    #[error(
        "another enclave server is using {database} (it holds {lock}); stop it first, or give \
         this one another --database"
    )]
    SqliteLocked { database: String, lock: String },
    #[error(
        "another enclave server (node {node}) is using this database and renewing its lease; \
         stop it first, or give this one another --database"
    )]
    LeaseHeld { node: String },
    #[error("cannot use the lock file {path}: {source}")]
    LockFile {
        path: String,
        source: std::io::Error,
    },
}

impl Ownership {
    /// This server's node id, recorded on the runs it creates.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }
}

/// Claims `backend` for this server. Blocking (it may wait for a stale lease to run out): call
/// it off the async arbiters.
pub fn claim(backend: &Backend, pool: &Pool, lease: Duration) -> Result<Ownership, StoreError> {
    let node_id = uuid::Uuid::new_v4().to_string();
    match backend {
        Backend::Sqlite(path) => {
            let lock = lock_sqlite(path)?;
            Ok(Ownership {
                node_id,
                _lock: Some(lock),
            })
        }
        Backend::Postgres(_) => {
            claim_lease(&mut *pool.get()?, &node_id, lease)?;
            Ok(Ownership {
                node_id,
                _lock: None,
            })
        }
    }
}

fn lock_sqlite(database: &str) -> Result<File, StoreError> {
    let path = PathBuf::from(format!("{database}.lock"));
    let shown = path.display().to_string();
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| OwnershipError::LockFile {
            path: shown.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(OwnershipError::SqliteLocked {
            database: database.to_owned(),
            lock: shown,
        }
        .into()),
        Err(TryLockError::Error(source)) => Err(OwnershipError::LockFile {
            path: shown,
            source,
        }
        .into()),
    }
}

/// Waits until no other node holds a live lease, refusing as soon as one is seen renewed, then
/// writes this node's row.
fn claim_lease(conn: &mut DbConnection, node_id: &str, lease: Duration) -> Result<(), StoreError> {
    let lease_ms = lease.as_millis() as i64;
    let mut seen: Vec<(String, i64)> = Vec::new();
    loop {
        let now = now_ms();
        let claimed = conn.transaction(|conn| {
            // Two servers starting at once must not both find the table free.
            if let DbConnection::Pg(pg) = conn {
                diesel::sql_query("LOCK TABLE nodes IN EXCLUSIVE MODE").execute(pg)?;
            }
            let live: Vec<(String, i64, i64)> = nodes::table
                .filter(nodes::lease_until.gt(now))
                .filter(nodes::node_id.ne(node_id))
                .select((nodes::node_id, nodes::heartbeat_at, nodes::lease_until))
                .load(conn)?;
            if live.is_empty() {
                diesel::insert_into(nodes::table)
                    .values((
                        nodes::node_id.eq(node_id),
                        nodes::started_at.eq(now),
                        nodes::heartbeat_at.eq(now),
                        nodes::lease_until.eq(now + lease_ms),
                    ))
                    .execute(conn)?;
            }
            Ok::<_, diesel::result::Error>(live)
        })?;
        if claimed.is_empty() {
            return Ok(());
        }
        for (node, heartbeat_at, _) in &claimed {
            let renewed = seen
                .iter()
                .any(|(n, before)| n == node && heartbeat_at > before);
            if renewed {
                return Err(OwnershipError::LeaseHeld { node: node.clone() }.into());
            }
        }
        let until = claimed
            .iter()
            .map(|(_, _, until)| *until)
            .max()
            .unwrap_or(now);
        log::warn!(
            "another server's lease on this database runs for {} ms more: waiting to see \
             whether it is renewed",
            until - now
        );
        seen = claimed.into_iter().map(|(n, h, _)| (n, h)).collect();
        let wait = (until - now).clamp(1, lease_ms / 3 + 1) as u64;
        std::thread::sleep(Duration::from_millis(wait));
    }
}

/// Renews this node's lease (PostgreSQL; nothing to do for SQLite, whose lock lasts). False
/// when the node's row is gone: the lease was lost.
pub fn renew(conn: &mut DbConnection, node_id: &str, lease: Duration) -> Result<bool, StoreError> {
    if let DbConnection::Pg(_) = conn {
        let now = now_ms();
        let renewed = diesel::update(nodes::table.filter(nodes::node_id.eq(node_id)))
            .set((
                nodes::heartbeat_at.eq(now),
                nodes::lease_until.eq(now + lease.as_millis() as i64),
            ))
            .execute(conn)?;
        return Ok(renewed == 1);
    }
    Ok(true)
}

/// Gives the database up on a clean stop, so the next server need not wait for the lease.
pub fn release(conn: &mut DbConnection, node_id: &str) -> Result<(), StoreError> {
    diesel::delete(nodes::table.filter(nodes::node_id.eq(node_id))).execute(conn)?;
    Ok(())
}

/// Nodes whose lease is live, other than `own`.
pub fn live_nodes(conn: &mut DbConnection, own: &str) -> Result<Vec<String>, StoreError> {
    Ok(nodes::table
        .filter(nodes::lease_until.gt(now_ms()))
        .filter(nodes::node_id.ne(own))
        .select(nodes::node_id)
        .load(conn)?)
}

/// Forgets nodes other than `own` whose lease ran out (after their runs were recovered).
pub fn forget_lost_nodes(conn: &mut DbConnection, own: &str) -> Result<(), StoreError> {
    diesel::delete(
        nodes::table
            .filter(nodes::lease_until.le(now_ms()))
            .filter(nodes::node_id.ne(own)),
    )
    .execute(conn)?;
    Ok(())
}

/// Renews this node's lease every third of it, on the blocking pool (not behind the writer's
/// queue of batches and bulk chunks).
pub async fn renew_lease(pool: crate::store::Pool, node_id: String, lease: std::time::Duration) {
    let mut every =
        actix_web::rt::time::interval((lease / 3).max(std::time::Duration::from_millis(10)));
    loop {
        every.tick().await;
        let (pool, node_id) = (pool.clone(), node_id.clone());
        let renewed =
            actix_web::web::block(move || renew(&mut *pool.get()?, &node_id, lease)).await;
        match renewed {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => log::error!(
                "this node's lease on the database is gone (another server may take it over): \
                 stop this server"
            ),
            Ok(Err(e)) => log::warn!("could not renew this node's lease: {e}"),
            Err(e) => log::warn!("could not renew this node's lease: {e}"),
        }
    }
}
