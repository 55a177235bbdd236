//! Which servers use a database. SQLite has one: an exclusive `flock` on `<database>.lock`,
//! held for the server's life and released by the kernel however the process ends, so a
//! second server on the file refuses to start. PostgreSQL has nodes (DESIGN.md §8): every
//! server started on it joins with a `nodes` row and a lease it renews every third of it; the
//! users are shared out by per-user leases (`leases.rs`), and a node whose lease is gone (a
//! killed or paused one) loses its users to whichever node claims them next. Each run records
//! the node that owns it, so start-up recovery touches only runs of lost nodes.

use std::fs::{File, TryLockError};
use std::path::PathBuf;
use std::time::Duration;

use diesel::prelude::*;

use crate::clock::now_ms;
use crate::store::schema::{nodes, user_leases};
use crate::store::{Backend, DbConnection, Pool, StoreError, cluster};

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

/// Takes this server's place on `backend`: SQLite's lock, or a node row on PostgreSQL.
/// Blocking: call it off the async arbiters.
pub fn claim(backend: &Backend, pool: &Pool, lease: Duration) -> Result<Ownership, StoreError> {
    let node_id = uuid::Uuid::new_v4().simple().to_string();
    match backend {
        Backend::Sqlite(path) => {
            let lock = lock_sqlite(path)?;
            Ok(Ownership {
                node_id,
                _lock: Some(lock),
            })
        }
        Backend::Postgres(_) => {
            join(&mut *pool.get()?, &node_id, lease)?;
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

/// Writes this node's row, with a lease it renews from now on. Other nodes' rows are theirs:
/// a node with a live lease shares the database's users with this one (`leases.rs`).
fn join(conn: &mut DbConnection, node_id: &str, lease: Duration) -> Result<(), StoreError> {
    let now = now_ms();
    diesel::insert_into(nodes::table)
        .values((
            nodes::node_id.eq(node_id),
            nodes::started_at.eq(now),
            nodes::heartbeat_at.eq(now),
            nodes::lease_until.eq(now + lease.as_millis() as i64),
        ))
        .execute(conn)?;
    Ok(())
}

/// Renews this node's lease (PostgreSQL; nothing to do for SQLite, whose lock lasts). When the
/// row is gone — the node was paused or cut off past its lease, and another forgot it — it is
/// written again: the node rejoins, and the users claimed meanwhile fence its sessions out.
/// Returns whether it had to rejoin.
pub fn renew(
    conn: &mut DbConnection,
    node_id: &str,
    lease: Duration,
    load: NodeLoad,
) -> Result<bool, StoreError> {
    if let DbConnection::Pg(_) = conn {
        let now = now_ms();
        let renewed = diesel::update(nodes::table.filter(nodes::node_id.eq(node_id)))
            .set((
                nodes::heartbeat_at.eq(now),
                nodes::lease_until.eq(now + lease.as_millis() as i64),
                nodes::sessions.eq(load.sessions),
                nodes::sockets.eq(load.sockets),
            ))
            .execute(conn)?;
        if renewed == 0 {
            join(conn, node_id, lease)?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// What a node reports at each renewal, for `enclave cluster-status`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeLoad {
    /// User sessions in memory (owned and following).
    pub sessions: i64,
    /// Open WebSocket connections.
    pub sockets: i64,
}

/// Records where this node listens, for `enclave cluster-status`.
pub fn announce(conn: &mut DbConnection, node_id: &str, address: &str) -> Result<(), StoreError> {
    diesel::update(nodes::table.filter(nodes::node_id.eq(node_id)))
        .set(nodes::address.eq(address))
        .execute(conn)?;
    Ok(())
}

/// Gives the database up on a clean stop: the users this node still holds are free to claim
/// (not lost: nothing of theirs was live after the drain), and the node's row goes.
pub fn release(conn: &mut DbConnection, node_id: &str) -> Result<(), StoreError> {
    diesel::update(user_leases::table.filter(user_leases::node_id.eq(node_id)))
        .set(user_leases::node_id.eq(None::<String>))
        .execute(conn)?;
    diesel::delete(nodes::table.filter(nodes::node_id.eq(node_id))).execute(conn)?;
    cluster::forget_departed(conn)?;
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

/// Forgets nodes other than `own` whose lease ran out (after their runs were recovered), with
/// what they followed and the mail for them.
pub fn forget_lost_nodes(conn: &mut DbConnection, own: &str) -> Result<(), StoreError> {
    diesel::delete(
        nodes::table
            .filter(nodes::lease_until.le(now_ms()))
            .filter(nodes::node_id.ne(own)),
    )
    .execute(conn)?;
    cluster::forget_departed(conn)?;
    Ok(())
}

/// Renews this node's lease every third of it, on the blocking pool (not behind the writer's
/// queue of batches and bulk chunks). When a renewal comes a whole lease after the last one
/// that succeeded (the process was paused, or the database out of reach), the lease ran out
/// meanwhile and other nodes may have claimed some of this node's users: `lapsed` is told, so
/// the sessions check their claims.
pub async fn renew_lease(
    pool: crate::store::Pool,
    node_id: String,
    lease: std::time::Duration,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    lapsed: tokio::sync::mpsc::UnboundedSender<()>,
) {
    let mut every =
        actix_web::rt::time::interval((lease / 3).max(std::time::Duration::from_millis(10)));
    let mut last_renewed = std::time::Instant::now();
    loop {
        every.tick().await;
        let (pool, node_id) = (pool.clone(), node_id.clone());
        let attempted = std::time::Instant::now();
        let load = NodeLoad {
            sessions: metrics.sessions.get(),
            sockets: metrics.sockets.get(),
        };
        let renewed =
            actix_web::web::block(move || renew(&mut *pool.get()?, &node_id, lease, load)).await;
        match renewed {
            Ok(Ok(rejoined)) => {
                metrics.lease_renewals.inc();
                if rejoined || last_renewed.elapsed() >= lease {
                    log::warn!(
                        "this node's lease on the database ran out before it was renewed (was \
                         it paused?): users other nodes claimed meanwhile are theirs now"
                    );
                    let _ = lapsed.send(());
                }
                last_renewed = attempted;
            }
            Ok(Err(e)) => log::warn!("could not renew this node's lease: {e}"),
            Err(e) => log::warn!("could not renew this node's lease: {e}"),
        }
    }
}
