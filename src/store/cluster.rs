//! What nodes on one PostgreSQL database tell each other through it: a node follows the users
//! whose sockets it holds while another node owns them (`user_watchers`), and is notified of
//! each of their stored batches; and nodes send each other mail (`cluster_mail`): the rows
//! hold the bodies, a notification on the addressee's channel says rows wait.
//!
//! Notifications are PostgreSQL's `NOTIFY`, sent by the transaction that stores what they
//! announce, so they arrive only once it is committed: a follower never reads ahead of what is
//! durable. Their payloads are ids only (`e:<user>`, `mail`); the content is read from rows.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, Text};

use crate::context::UserId;
use crate::store::schema::{cluster_mail, user_watchers};
use crate::store::{DbConnection, StoreError};

/// The payload that says mail waits.
pub const MAIL_WAITS: &str = "mail";

/// The prefix of the payload that names a user with new events (`e:<user>`).
pub const EVENTS_OF: &str = "e:";

/// The channel `node` listens on.
pub fn channel_of(node: &str) -> String {
    format!("enclave_{node}")
}

/// `node` follows `user` from now on (inside the caller's transaction).
pub fn follow(pg: &mut diesel::PgConnection, user: &UserId, node: &str) -> Result<(), StoreError> {
    diesel::insert_into(user_watchers::table)
        .values((
            user_watchers::user_id.eq(user.as_str()),
            user_watchers::node_id.eq(node),
        ))
        .on_conflict_do_nothing()
        .execute(pg)?;
    Ok(())
}

/// `node` follows `user` again (after its lease lapsed: its rows may have been forgotten).
pub fn follow_again(conn: &mut DbConnection, user: &UserId, node: &str) -> Result<(), StoreError> {
    match conn {
        DbConnection::Pg(pg) => follow(pg, user, node),
        DbConnection::Sqlite(_) => Ok(()),
    }
}

/// `node` no longer follows `user`.
pub fn unfollow(conn: &mut DbConnection, user: &UserId, node: &str) -> Result<(), StoreError> {
    if let DbConnection::Pg(pg) = conn {
        diesel::delete(
            user_watchers::table
                .filter(user_watchers::user_id.eq(user.as_str()))
                .filter(user_watchers::node_id.eq(node)),
        )
        .execute(pg)?;
    }
    Ok(())
}

/// The nodes that follow `user` (PostgreSQL).
pub fn followers_of(conn: &mut DbConnection, user: &UserId) -> Result<Vec<String>, StoreError> {
    let DbConnection::Pg(pg) = conn else {
        return Ok(Vec::new());
    };
    Ok(user_watchers::table
        .filter(user_watchers::user_id.eq(user.as_str()))
        .select(user_watchers::node_id)
        .load(pg)?)
}

/// Forgets what departed nodes — whose `nodes` row is gone: stopped cleanly, or forgotten
/// after their lease ran out — followed, and the mail for them (PostgreSQL). A node whose
/// lease merely lapsed keeps both: it may be paused and come back.
pub fn forget_departed(conn: &mut DbConnection) -> Result<(), StoreError> {
    if let DbConnection::Pg(pg) = conn {
        pg.batch_execute(
            "DELETE FROM user_watchers WHERE node_id NOT IN (SELECT node_id FROM nodes); \
             DELETE FROM cluster_mail WHERE to_node NOT IN (SELECT node_id FROM nodes)",
        )?;
    }
    Ok(())
}

/// Notifies every node that follows one of `users`, inside the transaction that stores their
/// events (a no-op on SQLite).
pub fn notify_followers(conn: &mut DbConnection, users: &[&str]) -> Result<(), StoreError> {
    let DbConnection::Pg(pg) = conn else {
        return Ok(());
    };
    if users.is_empty() {
        return Ok(());
    }
    diesel::sql_query(
        "SELECT pg_notify('enclave_' || node_id, 'e:' || user_id) FROM user_watchers \
         WHERE user_id = ANY($1)",
    )
    .bind::<Array<Text>, _>(users)
    .execute(pg)?;
    Ok(())
}

/// A letter to store: to whom, its number among the sender's, its body.
#[derive(Debug, Clone)]
pub struct Letter {
    /// The addressee node.
    pub to: String,
    /// Numbered by the sender, in sending order.
    pub sent_seq: i64,
    /// The mail, as JSON.
    pub body: String,
}

/// Stores `letters` from `from` and notifies their addressees, in one transaction.
pub fn send(conn: &mut DbConnection, from: &str, letters: &[Letter]) -> Result<(), StoreError> {
    let DbConnection::Pg(pg) = conn else {
        return Ok(());
    };
    pg.transaction(|pg| {
        let rows: Vec<_> = letters
            .iter()
            .map(|letter| {
                (
                    cluster_mail::to_node.eq(&letter.to),
                    cluster_mail::from_node.eq(from),
                    cluster_mail::sent_seq.eq(letter.sent_seq),
                    cluster_mail::body.eq(&letter.body),
                )
            })
            .collect();
        // A retry of letters whose commit was stored but not acknowledged stores none twice.
        diesel::insert_into(cluster_mail::table)
            .values(&rows)
            .on_conflict_do_nothing()
            .execute(pg)?;
        let mut addressees: Vec<&str> = letters.iter().map(|l| l.to.as_str()).collect();
        addressees.sort_unstable();
        addressees.dedup();
        for to in addressees {
            diesel::sql_query("SELECT pg_notify($1, $2)")
                .bind::<Text, _>(channel_of(to))
                .bind::<Text, _>(MAIL_WAITS)
                .execute(pg)?;
        }
        Ok(())
    })
}

/// Takes every letter waiting for `node`: `(from, body)`, each sender's in sending order.
pub fn take(conn: &mut DbConnection, node: &str) -> Result<Vec<(String, String)>, StoreError> {
    let DbConnection::Pg(pg) = conn else {
        return Ok(Vec::new());
    };
    let mut letters: Vec<(String, i64, String)> =
        diesel::delete(cluster_mail::table.filter(cluster_mail::to_node.eq(node)))
            .returning((
                cluster_mail::from_node,
                cluster_mail::sent_seq,
                cluster_mail::body,
            ))
            .get_results(pg)?;
    letters.sort_unstable_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    Ok(letters
        .into_iter()
        .map(|(from, _, body)| (from, body))
        .collect())
}
