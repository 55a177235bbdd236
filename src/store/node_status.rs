//! What `enclave cluster-status` shows: every node on a PostgreSQL database with its address,
//! its lease, the users it owns (`user_leases`) and the sessions and sockets it reported at its
//! last renewal. Read-only; SQLite has no nodes.

use diesel::prelude::*;

use crate::clock::now_ms;
use crate::store::schema::{nodes, user_leases};
use crate::store::{DbConnection, StoreError};

/// One node as the database knows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeStatus {
    /// The node's id (one per process: a restarted node is a new node).
    pub node_id: String,
    /// Where it listens.
    pub address: Option<String>,
    /// Its lease has not run out.
    pub live: bool,
    /// Milliseconds until its lease runs out (negative: since it ran out).
    pub lease_left_ms: i64,
    /// Milliseconds since it started.
    pub up_ms: i64,
    /// Users whose sessions it owns.
    pub users: i64,
    /// Sessions in its memory at its last renewal (owned and following).
    pub sessions: i64,
    /// Open WebSocket connections at its last renewal.
    pub sockets: i64,
}

/// Every node, oldest first (empty on SQLite).
pub fn nodes(conn: &mut DbConnection) -> Result<Vec<NodeStatus>, StoreError> {
    let DbConnection::Pg(pg) = conn else {
        return Ok(Vec::new());
    };
    let rows: Vec<(String, Option<String>, i64, i64, i64, i64)> = nodes::table
        .order(nodes::started_at.asc())
        .select((
            nodes::node_id,
            nodes::address,
            nodes::started_at,
            nodes::lease_until,
            nodes::sessions,
            nodes::sockets,
        ))
        .load(pg)?;
    let owners: Vec<(Option<String>, i64)> = user_leases::table
        .filter(user_leases::node_id.is_not_null())
        .group_by(user_leases::node_id)
        .select((user_leases::node_id, diesel::dsl::count_star()))
        .load(pg)?;
    let now = now_ms();
    Ok(rows
        .into_iter()
        .map(
            |(node_id, address, started_at, lease_until, sessions, sockets)| NodeStatus {
                users: owners
                    .iter()
                    .find(|(owner, _)| owner.as_deref() == Some(node_id.as_str()))
                    .map_or(0, |(_, n)| *n),
                node_id,
                address,
                live: lease_until > now,
                lease_left_ms: lease_until - now,
                up_ms: now - started_at,
                sessions,
                sockets,
            },
        )
        .collect())
}
