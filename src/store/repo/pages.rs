//! A user's rows page by page in a stable order, each read after the last key of the page
//! before: what `GET /api/export` streams. One signature (`PageRead`) over the per-table
//! `page` functions, so the export walks every kind with one loop.

use diesel::QueryResult;

use crate::context::UserId;
use crate::protocol::Event;
use crate::store::connection::DbConnection;
use crate::store::models::{ApprovalRow, RunRow, UsageRow};
use crate::store::repo;

/// Reads at most `limit` rows after a key (`None`: from the start).
pub type PageRead<R, K> = fn(&mut DbConnection, &UserId, Option<&K>, i64) -> QueryResult<Vec<R>>;

/// Runs by id.
pub fn read_runs(
    conn: &mut DbConnection,
    user: &UserId,
    after: Option<&String>,
    limit: i64,
) -> QueryResult<Vec<RunRow>> {
    repo::runs::page(conn, user, after.map(String::as_str), limit)
}

/// Events by `seq`.
pub fn read_events(
    conn: &mut DbConnection,
    user: &UserId,
    after: Option<&i64>,
    limit: i64,
) -> QueryResult<Vec<Event>> {
    repo::events::range(conn, user, after.copied().unwrap_or(0), i64::MAX, limit)
}

/// Approvals by id.
pub fn read_approvals(
    conn: &mut DbConnection,
    user: &UserId,
    after: Option<&String>,
    limit: i64,
) -> QueryResult<Vec<ApprovalRow>> {
    repo::approvals::page(conn, user, after.map(String::as_str), limit)
}

/// Usage records by (`ts`, `record_id`).
pub fn read_usage(
    conn: &mut DbConnection,
    user: &UserId,
    after: Option<&(i64, String)>,
    limit: i64,
) -> QueryResult<Vec<UsageRow>> {
    repo::usage::page(conn, user, after.map(|(ts, id)| (*ts, id.as_str())), limit)
}
