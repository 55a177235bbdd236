//! The `threads` table: a user's conversations.

use diesel::prelude::*;

use crate::context::{ThreadId, UserId};
use crate::protocol::RunStatus;
use crate::store::connection::DbConnection;
use crate::store::models::ThreadRow;
use crate::store::schema::threads::dsl;
use crate::store::status::run_status_text;

/// Stores a new thread of `user`'s, with no run yet.
pub fn insert(
    conn: &mut DbConnection,
    user: &UserId,
    thread: ThreadId,
    title: &str,
    now: i64,
) -> QueryResult<()> {
    let row = ThreadRow {
        thread_id: thread.to_string(),
        user_id: user.as_str().to_owned(),
        title: title.to_owned(),
        created_at: now,
        updated_at: now,
        last_run_status: None,
    };
    diesel::insert_into(dsl::threads)
        .values(&row)
        .execute(conn)
        .map(drop)
}

/// Whether `thread` exists and belongs to `user`.
pub fn is_owned(conn: &mut DbConnection, user: &UserId, thread: ThreadId) -> QueryResult<bool> {
    let found: i64 = thread_of(user.as_str(), &thread.to_string())
        .count()
        .get_result(conn)?;
    Ok(found > 0)
}

/// All of the user's threads, most recently updated first (for the export).
pub fn list(conn: &mut DbConnection, user: &UserId) -> QueryResult<Vec<ThreadRow>> {
    dsl::threads
        .filter(dsl::user_id.eq(user.as_str()))
        .order((dsl::updated_at.desc(), dsl::thread_id.asc()))
        .select(ThreadRow::as_select())
        .load(conn)
}

/// One page of the user's threads, most recently updated first: about `limit` of those updated
/// before `before` (all of them when `None`), and the `updated_at` to ask the next page
/// before, while more may follow. A page never ends inside a group of threads updated in the
/// same millisecond (the next page, "updated before", would skip the rest of the group): it
/// ends before the group, or — when the whole page is one group — holds all of it.
pub fn page(
    conn: &mut DbConnection,
    user: &UserId,
    before: Option<i64>,
    limit: usize,
) -> QueryResult<(Vec<ThreadRow>, Option<i64>)> {
    let mut rows: Vec<ThreadRow> = dsl::threads
        .filter(dsl::user_id.eq(user.as_str()))
        .filter(dsl::updated_at.lt(before.unwrap_or(i64::MAX)))
        .order((dsl::updated_at.desc(), dsl::thread_id.asc()))
        .limit(limit as i64 + 1)
        .select(ThreadRow::as_select())
        .load(conn)?;
    let Some(first_left_out) = rows.get(limit).map(|row| row.updated_at) else {
        return Ok((rows, None));
    };
    rows.truncate(limit);
    while rows
        .last()
        .is_some_and(|row| row.updated_at == first_left_out)
    {
        rows.pop();
    }
    if let Some(last) = rows.last() {
        let next = last.updated_at;
        return Ok((rows, Some(next)));
    }
    let group = dsl::threads
        .filter(dsl::user_id.eq(user.as_str()))
        .filter(dsl::updated_at.eq(first_left_out))
        .order(dsl::thread_id.asc())
        .select(ThreadRow::as_select())
        .load(conn)?;
    Ok((group, Some(first_left_out)))
}

/// Records the status of the thread's latest run.
pub fn set_last_run_status(
    conn: &mut DbConnection,
    user: &UserId,
    thread: ThreadId,
    status: RunStatus,
    now: i64,
) -> QueryResult<()> {
    diesel::update(thread_of(user.as_str(), &thread.to_string()))
        .set((
            dsl::last_run_status.eq(run_status_text(status)),
            dsl::updated_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}

/// Deletes the thread and its runs, and erases its events' contents (their `seq`, `ts`,
/// `thread_id` and `run_id` stay, so the user's sequence has no gap).
pub fn delete(conn: &mut DbConnection, user: &UserId, thread: ThreadId) -> QueryResult<()> {
    use crate::store::schema::{approvals, events, runs};
    let thread_text = thread.to_string();
    diesel::update(
        events::table
            .filter(events::user_id.eq(user.as_str()))
            .filter(events::thread_id.eq(&thread_text)),
    )
    .set((
        events::kind.eq("erased"),
        events::agent.eq(None::<String>),
        events::data.eq("null"),
    ))
    .execute(conn)?;
    // The approvals its runs asked for go with the runs.
    let runs_of_thread: Vec<String> = runs::table
        .filter(runs::user_id.eq(user.as_str()))
        .filter(runs::thread_id.eq(&thread_text))
        .select(runs::run_id)
        .load(conn)?;
    diesel::delete(
        approvals::table
            .filter(approvals::user_id.eq(user.as_str()))
            .filter(approvals::run_id.eq_any(&runs_of_thread)),
    )
    .execute(conn)?;
    diesel::delete(
        runs::table
            .filter(runs::user_id.eq(user.as_str()))
            .filter(runs::thread_id.eq(&thread_text)),
    )
    .execute(conn)?;
    diesel::delete(thread_of(user.as_str(), &thread_text))
        .execute(conn)
        .map(drop)
}

/// The user's thread with id `thread`: what every query and update of one thread filters on.
#[diesel::dsl::auto_type(no_type_alias)]
fn thread_of<'a>(user: &'a str, thread: &'a str) -> _ {
    dsl::threads
        .filter(dsl::user_id.eq(user))
        .filter(dsl::thread_id.eq(thread))
}
