//! The `usage_records` table: a user's LLM API requests, uploaded or synthetic.
//!
//! An upload is written in chunks under an upload id listed in `pending_uploads` until its last
//! chunk is in; every read here skips the records of a pending upload, so other users' writes
//! go between the chunks and an interrupted upload shows nothing.
//!
//! `usage_counts` holds each user's number of stored records, changed in the same transaction
//! as every insert and delete here, so the per-user cap costs one key lookup per chunk.

use diesel::prelude::*;

use crate::context::UserId;
use crate::store::StoreError;
use crate::store::connection::DbConnection;
use crate::store::models::UsageRow;
use crate::store::schema::usage_counts::dsl as counts;
use crate::store::schema::usage_records::dsl;
use crate::store::schema::{pending_uploads, usage_counts};
use crate::usage::record::UsageRecord;

/// Rows per insert statement (well under SQLite's bind limit).
const CHUNK: usize = 500;

/// How an insert went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    pub accepted: usize,
    /// Records whose `id` was already stored for this user (or repeated in the upload).
    pub duplicates: usize,
}

/// Where inserted records go: their source, the upload they belong to (invisible while it is
/// pending), and the most records the user may hold once they are in.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    /// `uploaded` or `synthetic`.
    pub source: &'a str,
    /// The pending upload the records belong to, if any.
    pub upload: Option<&'a str>,
    /// The user's cap on stored records.
    pub max_records: u64,
}

impl<'a> Destination<'a> {
    /// Records of `source`, visible at once, with no cap.
    pub fn uncapped(source: &'a str) -> Self {
        Self {
            source,
            upload: None,
            max_records: u64::MAX,
        }
    }
}

/// Stores `records` with `source`, skipping ids the user already has, with no cap. Call inside
/// a transaction (the writer runs it in one).
pub fn insert_new(
    conn: &mut DbConnection,
    user: &UserId,
    records: &[UsageRecord],
    source: &str,
    now: i64,
) -> Result<Inserted, StoreError> {
    insert_new_in(conn, user, records, Destination::uncapped(source), now)
}

/// Stores `records` of `user` at `to`, skipping ids the user already has; refuses them all
/// (`StoreError::QuotaExceeded`) when they would take the user over `to.max_records`. Call
/// inside a transaction, which the refusal rolls back.
pub fn insert_new_in(
    conn: &mut DbConnection,
    user: &UserId,
    records: &[UsageRecord],
    to: Destination<'_>,
    now: i64,
) -> Result<Inserted, StoreError> {
    let Destination { source, upload, .. } = to;
    // Time-ordered ids, so new records go at the end of the primary key's B-tree instead of at
    // random pages of it.
    let ids: Vec<String> = records
        .iter()
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let accepted = match conn {
        DbConnection::Pg(c) => {
            super::usage_pg::insert(c, user, records, ids, (source, now, upload))?
        }
        DbConnection::Sqlite(c) => insert_values(c, user, records, &ids, to, now)?,
    };
    let duplicates = records.len() - accepted;
    let held = add_to_count(conn, user, accepted as i64)?;
    if u64::try_from(held).unwrap_or(0) > to.max_records {
        return Err(StoreError::QuotaExceeded {
            limit: to.max_records,
        });
    }
    Ok(Inserted {
        accepted,
        duplicates,
    })
}

/// The records as multi-row `INSERT`s of `CHUNK` rows (SQLite); returns how many were stored.
fn insert_values(
    conn: &mut diesel::sqlite::SqliteConnection,
    user: &UserId,
    records: &[UsageRecord],
    ids: &[String],
    to: Destination<'_>,
    now: i64,
) -> Result<usize, StoreError> {
    let Destination { source, upload, .. } = to;
    let mut rows = Vec::with_capacity(records.len());
    for (record, id) in records.iter().zip(ids) {
        // One stored record: the record, whose user and source it is, and the upload it
        // belongs to (invisible while that upload is pending).
        rows.push((
            dsl::record_id.eq(id.as_str()),
            dsl::user_id.eq(user.as_str()),
            dsl::external_id.eq(record.external_id.as_deref()),
            dsl::ts.eq(record.ts),
            dsl::model.eq(record.model.as_str()),
            dsl::provider.eq(record.provider.as_deref()),
            dsl::workload.eq(record.workload.as_str()),
            dsl::prompt_tokens.eq(record.prompt_tokens),
            dsl::completion_tokens.eq(record.completion_tokens),
            dsl::cached_tokens.eq(record.cached_tokens),
            dsl::latency_ms.eq(record.latency_ms),
            dsl::max_tokens.eq(record.max_tokens),
            dsl::cost_usd.eq(record.cost_usd),
            dsl::prompt_prefix_hash.eq(record.prompt_prefix_hash.as_deref()),
            dsl::interactive.eq(i32::from(record.interactive)),
            dsl::status.eq(if record.is_error { "error" } else { "ok" }),
            dsl::source.eq(source),
            dsl::created_at.eq(now),
            dsl::upload_id.eq(upload),
        ));
    }
    // An id the user already has (or that came earlier in these records) is skipped by the
    // unique index on (user_id, external_id) itself: no lookup before the insert, and no plan
    // for one to go wrong. (MultiConnection has no multi-row INSERT: the SQLite connection.)
    let mut accepted = 0;
    for chunk in rows.chunks(CHUNK) {
        accepted += diesel::insert_into(dsl::usage_records)
            .values(chunk)
            .on_conflict((dsl::user_id, dsl::external_id))
            .do_nothing()
            .execute(conn)?;
    }
    Ok(accepted)
}

/// Lists `upload`, written by `node`, as pending: its records stay invisible until
/// `finish_upload`.
pub fn begin_upload(
    conn: &mut DbConnection,
    user: &UserId,
    upload: &str,
    now: i64,
    node: &str,
) -> QueryResult<()> {
    diesel::insert_into(pending_uploads::table)
        .values((
            pending_uploads::upload_id.eq(upload),
            pending_uploads::user_id.eq(user.as_str()),
            pending_uploads::created_at.eq(now),
            pending_uploads::node_id.eq(node),
        ))
        .execute(conn)
        .map(drop)
}

/// Whether `upload` is still pending (not finished, not discarded); on PostgreSQL its row is
/// then share-locked until the caller's transaction ends, so a discard waits for the chunk.
pub fn is_pending(conn: &mut DbConnection, user: &UserId, upload: &str) -> QueryResult<bool> {
    let pending = pending_uploads::table
        .filter(pending_uploads::user_id.eq(user.as_str()))
        .filter(pending_uploads::upload_id.eq(upload))
        .select(pending_uploads::upload_id);
    let found: Option<String> = match conn {
        DbConnection::Pg(pg) => pending.for_share().first(pg).optional()?,
        DbConnection::Sqlite(lite) => pending.first(lite).optional()?,
    };
    Ok(found.is_some())
}

/// Makes every record of `upload` visible at once.
pub fn finish_upload(conn: &mut DbConnection, user: &UserId, upload: &str) -> QueryResult<()> {
    diesel::delete(
        pending_uploads::table
            .filter(pending_uploads::user_id.eq(user.as_str()))
            .filter(pending_uploads::upload_id.eq(upload)),
    )
    .execute(conn)
    .map(drop)
}

/// Deletes up to `limit` records of a pending `upload` of `user`; returns how many (call
/// until 0, then `finish_upload` forgets it).
pub fn discard_upload_chunk(
    conn: &mut DbConnection,
    user: &UserId,
    upload: &str,
    limit: i64,
) -> QueryResult<usize> {
    let ids: Vec<String> = dsl::usage_records
        .filter(dsl::user_id.eq(user.as_str()))
        .filter(dsl::upload_id.eq(upload))
        .select(dsl::record_id)
        .limit(limit)
        .load(conn)?;
    delete_records(conn, user, &ids)
}

/// Deletes up to `limit` of the records of `user`, pending or not (a deleted account's, for
/// the purge); returns how many.
pub fn purge_chunk(conn: &mut DbConnection, user: &UserId, limit: i64) -> QueryResult<usize> {
    let ids: Vec<String> = dsl::usage_records
        .filter(dsl::user_id.eq(user.as_str()))
        .select(dsl::record_id)
        .limit(limit)
        .load(conn)?;
    delete_records(conn, user, &ids)
}

/// Deletes up to `limit` visible records of `user` whose `ts` is before `cutoff` (retention);
/// returns how many.
pub fn delete_older_chunk(
    conn: &mut DbConnection,
    user: &UserId,
    cutoff: i64,
    limit: i64,
) -> QueryResult<usize> {
    let ids: Vec<String> = dsl::usage_records
        .filter(dsl::user_id.eq(user.as_str()))
        .filter(dsl::ts.lt(cutoff))
        .filter(visible())
        .select(dsl::record_id)
        .limit(limit)
        .load(conn)?;
    delete_records(conn, user, &ids)
}

/// Deletes the records of `user` named by `ids` and counts them off; returns how many.
fn delete_records(conn: &mut DbConnection, user: &UserId, ids: &[String]) -> QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    let deleted = diesel::delete(
        dsl::usage_records
            .filter(dsl::user_id.eq(user.as_str()))
            .filter(dsl::record_id.eq_any(ids)),
    )
    .execute(conn)?;
    add_to_count(conn, user, -(deleted as i64))?;
    Ok(deleted)
}

/// Forgets the stored count of `user`, who holds no records any more (a purged account).
pub fn forget_count(conn: &mut DbConnection, user: &UserId) -> QueryResult<()> {
    diesel::delete(counts::usage_counts.filter(counts::user_id.eq(user.as_str()))).execute(conn)?;
    Ok(())
}

/// Every pending upload, of any user, not written by one of `live_nodes`: left by a process
/// that stopped mid-upload.
pub fn pending_uploads(
    conn: &mut DbConnection,
    live_nodes: &[String],
) -> QueryResult<Vec<(String, String)>> {
    pending_uploads::table
        .filter(
            pending_uploads::node_id
                .is_null()
                .or(pending_uploads::node_id.ne_all(live_nodes)),
        )
        .select((pending_uploads::user_id, pending_uploads::upload_id))
        .load(conn)
}

/// A record is visible unless its upload is still pending; one condition of the same query,
/// so a read never sees part of an upload.
#[diesel::dsl::auto_type]
pub(crate) fn visible() -> _ {
    let pending = pending_uploads::table
        .filter(pending_uploads::upload_id.nullable().eq(dsl::upload_id))
        .select(pending_uploads::upload_id);
    dsl::upload_id
        .is_null()
        .or(diesel::dsl::not(diesel::dsl::exists(pending)))
}

/// Deletes the user's records, all or of one `source`; returns how many. Records of an upload
/// still being written are not the user's yet and stay.
pub fn delete(conn: &mut DbConnection, user: &UserId, source: Option<&str>) -> QueryResult<usize> {
    let deleted = match source {
        Some(source) => diesel::delete(
            dsl::usage_records
                .filter(dsl::user_id.eq(user.as_str()))
                .filter(visible())
                .filter(dsl::source.eq(source)),
        )
        .execute(conn),
        None => diesel::delete(
            dsl::usage_records
                .filter(dsl::user_id.eq(user.as_str()))
                .filter(visible()),
        )
        .execute(conn),
    }?;
    add_to_count(conn, user, -(deleted as i64))?;
    Ok(deleted)
}

/// How many records `user` has stored, pending uploads included.
pub fn stored_count(conn: &mut DbConnection, user: &UserId) -> QueryResult<i64> {
    counts::usage_counts
        .filter(counts::user_id.eq(user.as_str()))
        .select(counts::records)
        .first(conn)
        .optional()
        .map(Option::unwrap_or_default)
}

/// Adds `delta` (negative for deletes) to `user`'s stored count; returns the new count. Call in
/// the transaction that inserted or deleted the records.
fn add_to_count(conn: &mut DbConnection, user: &UserId, delta: i64) -> QueryResult<i64> {
    if delta != 0 {
        let upsert = diesel::insert_into(usage_counts::table)
            .values((counts::user_id.eq(user.as_str()), counts::records.eq(delta)))
            .on_conflict(counts::user_id)
            .do_update()
            .set(counts::records.eq(counts::records + delta));
        match conn {
            DbConnection::Sqlite(c) => upsert.execute(c)?,
            DbConnection::Pg(c) => upsert.execute(c)?,
        };
    }
    stored_count(conn, user)
}

/// The time of the user's latest record, if any.
pub fn latest_ts(conn: &mut DbConnection, user: &UserId) -> QueryResult<Option<i64>> {
    dsl::usage_records
        .filter(dsl::user_id.eq(user.as_str()))
        .filter(visible())
        .select(diesel::dsl::max(dsl::ts))
        .first(conn)
}

/// The user's visible records after `after` in (`ts`, `record_id`) order (all from the start
/// with `None`), at most `limit`: a page of an export, read through the `(user_id, ts)` index.
pub fn page(
    conn: &mut DbConnection,
    user: &UserId,
    after: Option<(i64, &str)>,
    limit: i64,
) -> QueryResult<Vec<UsageRow>> {
    let (ts, id) = after.unwrap_or((i64::MIN, ""));
    dsl::usage_records
        .filter(dsl::user_id.eq(user.as_str()))
        .filter(visible())
        .filter(dsl::ts.ge(ts))
        .filter(dsl::ts.gt(ts).or(dsl::record_id.gt(id)))
        .order((dsl::ts.asc(), dsl::record_id.asc()))
        .limit(limit)
        .select(UsageRow::as_select())
        .load(conn)
}
