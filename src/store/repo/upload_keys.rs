//! The `completed_uploads` table: the answer each upload sent with an `Idempotency-Key` got,
//! recorded in the transaction that made its records visible. An upload sent again with the
//! same key (its answer was lost, `enclave ingest` re-run) is answered from here and stores
//! nothing twice.

use diesel::prelude::*;

use crate::context::UserId;
use crate::store::connection::DbConnection;
use crate::store::schema::completed_uploads::dsl;

/// What an upload stored, as its answer said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UploadCounts {
    /// Records stored.
    pub accepted: usize,
    /// Rows refused.
    pub rejected: usize,
    /// Records already stored (same id).
    pub duplicates: usize,
}

/// The counts the upload `key` of `user` was answered with, if it completed.
pub fn answered(
    conn: &mut DbConnection,
    user: &UserId,
    key: &str,
) -> QueryResult<Option<UploadCounts>> {
    let row: Option<(i64, i64, i64)> = dsl::completed_uploads
        .filter(dsl::user_id.eq(user.as_str()))
        .filter(dsl::upload_key.eq(key))
        .select((dsl::accepted, dsl::rejected, dsl::duplicates))
        .first(conn)
        .optional()?;
    let count = |n: i64| usize::try_from(n).unwrap_or(0);
    Ok(row.map(|(accepted, rejected, duplicates)| UploadCounts {
        accepted: count(accepted),
        rejected: count(rejected),
        duplicates: count(duplicates),
    }))
}

/// Records that the upload `key` of `user` completed with `counts`. Call in the transaction
/// that makes its records visible.
pub fn record(
    conn: &mut DbConnection,
    user: &UserId,
    key: &str,
    counts: UploadCounts,
    now: i64,
) -> QueryResult<()> {
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    diesel::insert_into(dsl::completed_uploads)
        .values((
            dsl::user_id.eq(user.as_str()),
            dsl::upload_key.eq(key),
            dsl::accepted.eq(count(counts.accepted)),
            dsl::rejected.eq(count(counts.rejected)),
            dsl::duplicates.eq(count(counts.duplicates)),
            dsl::created_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}
