//! Accounts and their deletion. A subject (the token's `sub`) stores its rows under the key of
//! its current account (`UserId::at_generation`): `DELETE /api/account` moves the generation on
//! in one short transaction — from then on every route reads and writes under a new key that
//! holds nothing — and lists the old key in `account_purges`, whose rows `purge_chunk` then
//! deletes a chunk per transaction in the background.

use diesel::prelude::*;

use crate::context::UserId;
use crate::store::DbConnection;
use crate::store::schema::{
    account_purges, accounts, approvals, completed_uploads, events, pending_uploads, runs, threads,
};

use super::usage;

/// The key of `subject`'s current account: the subject itself until its first deletion.
pub fn key_of(conn: &mut DbConnection, subject: &UserId) -> QueryResult<UserId> {
    let generation: Option<i64> = accounts::table
        .filter(accounts::user_id.eq(subject.subject()))
        .select(accounts::generation)
        .first(conn)
        .optional()?;
    Ok(subject.at_generation(generation.unwrap_or(0)))
}

/// Whether `key` still names its subject's current account (not a deleted one).
pub fn is_current(conn: &mut DbConnection, key: &UserId) -> QueryResult<bool> {
    Ok(key_of(conn, key)? == *key)
}

/// Deletes the account `key` names, if it is the subject's current one: the subject's next
/// key holds nothing, and `key` is listed for the background purge. Returns the new key
/// (`None` if `key` was already deleted). One short transaction, whatever the account holds.
pub fn delete(conn: &mut DbConnection, key: &UserId, now: i64) -> QueryResult<Option<UserId>> {
    if !is_current(conn, key)? {
        return Ok(None);
    }
    let next = key.generation() + 1;
    let row = (
        accounts::user_id.eq(key.subject()),
        accounts::generation.eq(next),
        accounts::deleted_at.eq(now),
    );
    let upsert = diesel::insert_into(accounts::table)
        .values(row)
        .on_conflict(accounts::user_id)
        .do_update()
        .set((accounts::generation.eq(next), accounts::deleted_at.eq(now)));
    let purge = diesel::insert_into(account_purges::table)
        .values((
            account_purges::user_key.eq(key.as_str()),
            account_purges::requested_at.eq(now),
        ))
        .on_conflict_do_nothing();
    match conn {
        DbConnection::Sqlite(c) => {
            upsert.execute(c)?;
            purge.execute(c)?;
        }
        DbConnection::Pg(c) => {
            upsert.execute(c)?;
            purge.execute(c)?;
        }
    }
    Ok(Some(key.at_generation(next)))
}

/// The keys of deleted accounts whose rows are not all purged yet.
pub fn purges(conn: &mut DbConnection) -> QueryResult<Vec<String>> {
    account_purges::table
        .select(account_purges::user_key)
        .order(account_purges::requested_at)
        .load(conn)
}

/// Deletes up to `limit` rows of the deleted account `key`, table by table (events first,
/// usage records and their count last); returns how many. Once nothing is left, the key
/// leaves `account_purges` in the transaction that finds so (it returns 0 then: call until 0).
pub fn purge_chunk(conn: &mut DbConnection, key: &UserId, limit: i64) -> QueryResult<usize> {
    type Step = fn(&mut DbConnection, &str, i64) -> QueryResult<usize>;
    let tables: [Step; 6] = [
        some_events,
        some_approvals,
        some_runs,
        some_threads,
        some_completed_uploads,
        some_pending_uploads,
    ];
    let mut deleted = 0;
    for step in tables {
        let room = limit - deleted as i64;
        if room > 0 {
            deleted += step(conn, key.as_str(), room)?;
        }
    }
    let room = limit - deleted as i64;
    if room > 0 {
        deleted += usage::purge_chunk(conn, key, room)?;
    }
    if deleted == 0 {
        usage::forget_count(conn, key)?;
        diesel::delete(account_purges::table.filter(account_purges::user_key.eq(key.as_str())))
            .execute(conn)?;
    }
    Ok(deleted)
}

/// `fn $name(conn, user, limit)`: deletes up to `limit` rows of `user` from `$table`, chosen by
/// its key column `$id` of type `$ty`; returns how many.
macro_rules! delete_some {
    ($name:ident, $table:ident, $id:ident, $ty:ty) => {
        fn $name(conn: &mut DbConnection, user: &str, limit: i64) -> QueryResult<usize> {
            let ids: Vec<$ty> = $table::table
                .filter($table::user_id.eq(user))
                .select($table::$id)
                .limit(limit)
                .load(conn)?;
            if ids.is_empty() {
                return Ok(0);
            }
            diesel::delete(
                $table::table
                    .filter($table::user_id.eq(user))
                    .filter($table::$id.eq_any(&ids)),
            )
            .execute(conn)
        }
    };
}

delete_some!(some_events, events, seq, i64);
delete_some!(some_approvals, approvals, approval_id, String);
delete_some!(some_runs, runs, run_id, String);
delete_some!(some_threads, threads, thread_id, String);
delete_some!(
    some_completed_uploads,
    completed_uploads,
    upload_key,
    String
);
delete_some!(some_pending_uploads, pending_uploads, upload_id, String);
