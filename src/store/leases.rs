//! Per-user leases: which node owns each user's session, with a fencing epoch (PostgreSQL).
//!
//! Nodes on one database share its users, and a user's `UserSession` runs on one node at a
//! time. The `user_leases` row says which, and its `epoch` moves on at every claim. A session
//! learns its epoch when it starts; every batch it writes carries it, and the writer checks it
//! in the batch's own transaction under a share lock on the row (`check`). A node that was
//! paused or cut off while another claimed the user cannot write one more of the user's
//! events: its batch is refused `Fenced`. A claim locks the row for update, so it waits for a
//! batch in flight, and the claimer reads `last_seq` after it: `seq` stays gapless across
//! owners.
//!
//! A row per user rather than an advisory lock per user: 50,000 of those would exhaust
//! PostgreSQL's lock table, and a lock held by a pooled connection ends with that connection,
//! not with the node. SQLite has one node (`ownership.rs`), so every call here is a no-op
//! there and nothing is fenced.

use diesel::prelude::*;

use crate::clock::now_ms;
use crate::context::UserId;
use crate::store::batch::WriteBatch;
use crate::store::schema::{nodes, user_leases};
use crate::store::{DbConnection, StoreError, cluster};

/// The longest a claim waits for the user's row.
const CLAIM_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What a claim on a user found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This node owns the user now.
    Owned {
        /// The epoch every write of the session carries (`None` on SQLite: nothing to fence).
        epoch: Option<i64>,
        /// The node that held the user before and whose lease is gone: its runs were lost
        /// with it (`run_interrupted` `node_lost`).
        took_over: Option<String>,
    },
    /// Another node, whose lease is live, owns the user.
    Elsewhere {
        /// That node's id.
        node: String,
    },
}

/// Claims `user` for `node`, inside the caller's transaction: unless another node with a live
/// lease holds the user, the row moves to `node` with the next epoch (which fences out every
/// earlier holder, this node's own earlier sessions included). When another does, `node`
/// follows the user (`cluster::follow`) and the answer names the owner.
pub fn claim(conn: &mut DbConnection, user: &UserId, node: &str) -> Result<Claim, StoreError> {
    let DbConnection::Pg(pg) = conn else {
        return Ok(Claim::Owned {
            epoch: None,
            took_over: None,
        });
    };
    let (holder, epoch) = lock_row(pg, user)?;
    if let Some(other) = live_other(pg, &holder, node)? {
        // Under the row's lock, which waits for the owner's batch in flight and holds its
        // next one until this commits: every batch stored after the caller reads `last_seq`
        // notifies this node.
        cluster::follow(pg, user, node)?;
        return Ok(Claim::Elsewhere {
            node: other.to_owned(),
        });
    }
    let next = epoch + 1;
    diesel::update(user_leases::table.find(user.as_str()))
        .set((user_leases::node_id.eq(node), user_leases::epoch.eq(next)))
        .execute(pg)?;
    Ok(Claim::Owned {
        epoch: Some(next),
        took_over: holder.filter(|holder| holder != node),
    })
}

/// Takes `user` from a node whose lease is gone, for start-up recovery, inside the caller's
/// transaction: the epoch moves on and nobody holds the user, so the lost node can write none
/// of its events any more. False (and nothing changed) when a node with a live lease, other
/// than `own`, holds the user: its runs are its own.
pub fn fence_out(conn: &mut DbConnection, user: &UserId, own: &str) -> Result<bool, StoreError> {
    let DbConnection::Pg(pg) = conn else {
        return Ok(true);
    };
    let (holder, epoch) = lock_row(pg, user)?;
    if live_other(pg, &holder, own)?.is_some() {
        return Ok(false);
    }
    diesel::update(user_leases::table.find(user.as_str()))
        .set((
            user_leases::node_id.eq(None::<String>),
            user_leases::epoch.eq(epoch + 1),
        ))
        .execute(pg)?;
    Ok(true)
}

/// Gives `user` up, if this session's claim (`epoch`) is still the latest: the next claim, on
/// any node, takes the user without waiting for this node's lease.
pub fn release(conn: &mut DbConnection, user: &UserId, epoch: i64) -> Result<(), StoreError> {
    if let DbConnection::Pg(pg) = conn {
        diesel::update(
            user_leases::table
                .find(user.as_str())
                .filter(user_leases::epoch.eq(epoch)),
        )
        .set(user_leases::node_id.eq(None::<String>))
        .execute(pg)?;
    }
    Ok(())
}

/// The latest epoch of `user`'s claims (`None` on SQLite, or for a user never claimed).
pub fn epoch_of(conn: &mut DbConnection, user: &UserId) -> Result<Option<i64>, StoreError> {
    let DbConnection::Pg(pg) = conn else {
        return Ok(None);
    };
    Ok(user_leases::table
        .find(user.as_str())
        .select(user_leases::epoch)
        .first(pg)
        .optional()?)
}

/// Refuses the first of `batches` whose session's claim is no longer the latest
/// (`StoreError::Fenced`), inside the transaction that stores them; the rows stay share-locked
/// until it ends, so no claim can move an epoch on between this check and the commit.
pub fn check<'a>(
    conn: &mut DbConnection,
    batches: impl Iterator<Item = &'a WriteBatch>,
) -> Result<(), StoreError> {
    let DbConnection::Pg(pg) = conn else {
        return Ok(());
    };
    let claimed: Vec<(&str, i64)> = batches
        .filter_map(|batch| Some((batch.user_id.as_str(), batch.lease?)))
        .collect();
    if claimed.is_empty() {
        return Ok(());
    }
    let users: Vec<&str> = claimed.iter().map(|(user, _)| *user).collect();
    let current: Vec<(String, i64)> = user_leases::table
        .filter(user_leases::user_id.eq_any(&users))
        .select((user_leases::user_id, user_leases::epoch))
        .for_share()
        .load(pg)?;
    for (user, epoch) in claimed {
        let latest = current.iter().find(|(u, _)| u == user).map(|(_, e)| *e);
        if latest != Some(epoch) {
            return Err(StoreError::Fenced {
                user: user.to_owned(),
            });
        }
    }
    Ok(())
}

/// The user's row, created unheld if it is new, locked for update: `(holder, epoch)`. A batch
/// of the holder's in flight holds the row a moment; one held longer (its node stalled inside
/// the transaction, until the database ends it) fails the claim after `CLAIM_WAIT`, and the
/// claim is tried again with the user's next request rather than stalling a writer.
fn lock_row(
    pg: &mut diesel::PgConnection,
    user: &UserId,
) -> Result<(Option<String>, i64), StoreError> {
    diesel::sql_query(format!(
        "SET LOCAL lock_timeout = {}",
        CLAIM_WAIT.as_millis()
    ))
    .execute(pg)?;
    diesel::insert_into(user_leases::table)
        .values((
            user_leases::user_id.eq(user.as_str()),
            user_leases::epoch.eq(0_i64),
        ))
        .on_conflict_do_nothing()
        .execute(pg)?;
    Ok(user_leases::table
        .find(user.as_str())
        .select((user_leases::node_id, user_leases::epoch))
        .for_update()
        .first(pg)?)
}

/// The holder of a user's row, if it is a node other than `own` whose lease is live.
fn live_other<'a>(
    pg: &mut diesel::PgConnection,
    holder: &'a Option<String>,
    own: &str,
) -> Result<Option<&'a str>, StoreError> {
    let Some(holder) = holder.as_deref().filter(|holder| *holder != own) else {
        return Ok(None);
    };
    let live: i64 = nodes::table
        .filter(nodes::node_id.eq(holder))
        .filter(nodes::lease_until.gt(now_ms()))
        .count()
        .get_result(pg)?;
    Ok((live > 0).then_some(holder))
}
