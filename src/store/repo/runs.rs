//! The `runs` table: one row per request, its status and final answer.

use diesel::prelude::*;

use crate::context::{RunId, ThreadId, UserId};
use crate::protocol::RunStatus;
use crate::store::connection::DbConnection;
use crate::store::models::RunRow;
use crate::store::schema::runs::dsl;
use crate::store::status::{live_run_status_texts, run_status_of, run_status_text};

/// Stores a new run as `user`'s, whatever user the row names.
pub fn insert(conn: &mut DbConnection, user: &UserId, row: RunRow) -> QueryResult<()> {
    let row = RunRow {
        user_id: user.as_str().to_owned(),
        ..row
    };
    diesel::insert_into(dsl::runs)
        .values(&row)
        .execute(conn)
        .map(drop)
}

/// What a run's row becomes when it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEnd {
    /// `Completed`, `Failed`, `Cancelled` or `Interrupted`.
    pub status: RunStatus,
    /// When it ended, epoch milliseconds.
    pub finished_at: i64,
    /// Why it failed, for a failed run.
    pub error: Option<String>,
    /// The final answer's JSON, for a completed run.
    pub result: Option<String>,
    /// The final report, for a completed run.
    pub report_markdown: Option<String>,
}

impl RunEnd {
    /// An end with `status` at `finished_at` and nothing else to record.
    pub fn new(status: RunStatus, finished_at: i64) -> Self {
        Self {
            status,
            finished_at,
            error: None,
            result: None,
            report_markdown: None,
        }
    }
}

/// Records how the run ended.
pub fn finish(conn: &mut DbConnection, user: &UserId, run: RunId, end: RunEnd) -> QueryResult<()> {
    diesel::update(run_of(user.as_str(), &run.to_string()))
        .set((
            dsl::status.eq(run_status_text(end.status)),
            dsl::finished_at.eq(end.finished_at),
            dsl::error.eq(end.error),
            dsl::result.eq(end.result),
            dsl::report_markdown.eq(end.report_markdown),
        ))
        .execute(conn)
        .map(drop)
}

/// The user's run `run`, if it exists.
pub fn get(conn: &mut DbConnection, user: &UserId, run: RunId) -> QueryResult<Option<RunRow>> {
    run_of(user.as_str(), &run.to_string())
        .select(RunRow::as_select())
        .first(conn)
        .optional()
}

/// The user's run started by the message with `client_msg_id`, if any.
pub fn by_client_msg_id(
    conn: &mut DbConnection,
    user: &UserId,
    client_msg_id: &str,
) -> QueryResult<Option<RunRow>> {
    dsl::runs
        .filter(dsl::user_id.eq(user.as_str()))
        .filter(dsl::client_msg_id.eq(client_msg_id))
        .select(RunRow::as_select())
        .first(conn)
        .optional()
}

/// A queued run starts executing.
pub fn mark_running(
    conn: &mut DbConnection,
    user: &UserId,
    run: RunId,
    now: i64,
) -> QueryResult<()> {
    diesel::update(run_of(user.as_str(), &run.to_string()))
        .set((
            dsl::status.eq(run_status_text(RunStatus::Running)),
            dsl::started_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}

/// A live run's status changes (`running` ↔ `awaiting_approval`).
pub fn set_status(
    conn: &mut DbConnection,
    user: &UserId,
    run: RunId,
    status: RunStatus,
) -> QueryResult<()> {
    diesel::update(run_of(user.as_str(), &run.to_string()))
        .set(dsl::status.eq(run_status_text(status)))
        .execute(conn)
        .map(drop)
}

/// The user's runs that have not ended, oldest first.
pub fn live(conn: &mut DbConnection, user: &UserId) -> QueryResult<Vec<(RunId, ThreadId)>> {
    Ok(live_with_status(conn, user)?
        .into_iter()
        .map(|(run, thread, _)| (run, thread))
        .collect())
}

/// The user's runs that have not ended, oldest first, with their status (what a follower's
/// `connected` lists).
pub fn live_with_status(
    conn: &mut DbConnection,
    user: &UserId,
) -> QueryResult<Vec<(RunId, ThreadId, RunStatus)>> {
    let rows: Vec<(String, String, String)> = dsl::runs
        .filter(dsl::user_id.eq(user.as_str()))
        .filter(dsl::status.eq_any(live_run_status_texts()))
        .order(dsl::created_at.asc())
        .select((dsl::run_id, dsl::thread_id, dsl::status))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(r, t, s)| {
            Some((
                RunId::parse(&r).ok()?,
                ThreadId::parse(&t).ok()?,
                run_status_of(&s)?,
            ))
        })
        .collect())
}

/// The user's run with id `run`: what every query and update of one run filters on.
#[diesel::dsl::auto_type(no_type_alias)]
fn run_of<'a>(user: &'a str, run: &'a str) -> _ {
    dsl::runs
        .filter(dsl::user_id.eq(user))
        .filter(dsl::run_id.eq(run))
}

/// The user's runs with `run_id` after `after` (all from the start with `None`), by id, at
/// most `limit`: a page of an export.
pub fn page(
    conn: &mut DbConnection,
    user: &UserId,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<RunRow>> {
    dsl::runs
        .filter(dsl::user_id.eq(user.as_str()))
        .filter(dsl::run_id.gt(after.unwrap_or("")))
        .order(dsl::run_id.asc())
        .limit(limit)
        .select(RunRow::as_select())
        .load(conn)
}
