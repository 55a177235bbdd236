//! The `events` table: a user's sequenced events, keyed `(user_id, seq)`.

use diesel::dsl::max;
use diesel::prelude::*;

use crate::context::{RunId, ThreadId, UserId};
use crate::protocol::{Event, EventKind};
use crate::store::connection::DbConnection;
use crate::store::models::{EventRow, NewEvent};
use crate::store::schema::events::dsl;

/// Rows per PostgreSQL insert statement: 4,000 bound values (8 per row), well within its
/// limit of 65,535, and few statements for a big group.
const ROWS_PER_INSERT: usize = 500;

/// Appends `events` (already numbered by the user's session).
pub fn insert(conn: &mut DbConnection, user: &UserId, batch: &[Event]) -> QueryResult<()> {
    let rows: Vec<NewEvent<'_>> = rows_of(user, batch).collect();
    insert_rows(conn, &rows)
}

/// `user`'s `events` as rows to insert.
pub fn rows_of<'a>(
    user: &'a UserId,
    events: &'a [Event],
) -> impl Iterator<Item = NewEvent<'a>> + 'a {
    events.iter().map(move |event| NewEvent {
        user_id: user.as_str(),
        seq: event.seq,
        ts: event.ts,
        thread_id: event.thread_id.map(|t| t.to_string()),
        run_id: event.run_id.map(|r| r.to_string()),
        kind: event.kind.as_str(),
        agent: event.agent.as_deref(),
        data: event.data.to_string(),
    })
}

/// Inserts `rows` (of any users, each with its own `user_id`): PostgreSQL takes them in
/// multi-row statements (one round trip per `ROWS_PER_INSERT`); SQLite, in-process, takes them
/// one prepared statement at a time (diesel offers it no multi-row insert of optional columns).
pub fn insert_rows(conn: &mut DbConnection, rows: &[NewEvent<'_>]) -> QueryResult<()> {
    match conn {
        DbConnection::Pg(conn) => {
            for chunk in rows.chunks(ROWS_PER_INSERT) {
                diesel::insert_into(dsl::events)
                    .values(chunk)
                    .execute(conn)?;
            }
        }
        DbConnection::Sqlite(conn) => {
            for row in rows {
                diesel::insert_into(dsl::events).values(row).execute(conn)?;
            }
        }
    }
    Ok(())
}

/// The user's highest stored `seq`, 0 when there is none.
pub fn last_seq(conn: &mut DbConnection, user: &UserId) -> QueryResult<i64> {
    let last: Option<i64> = dsl::events
        .filter(dsl::user_id.eq(user.as_str()))
        .select(max(dsl::seq))
        .first(conn)?;
    Ok(last.unwrap_or(0))
}

/// The lowest `seq` of `user`'s stored events (retention removes a prefix), if any.
pub fn oldest_seq(conn: &mut DbConnection, user: &UserId) -> QueryResult<Option<i64>> {
    dsl::events
        .filter(dsl::user_id.eq(user.as_str()))
        .select(diesel::dsl::min(dsl::seq))
        .first(conn)
}

/// Events with `after < seq <= through`, oldest first, at most `limit`.
pub fn range(
    conn: &mut DbConnection,
    user: &UserId,
    after: i64,
    through: i64,
    limit: i64,
) -> QueryResult<Vec<Event>> {
    let rows: Vec<EventRow> = dsl::events
        .filter(dsl::user_id.eq(user.as_str()))
        .filter(dsl::seq.gt(after))
        .filter(dsl::seq.le(through))
        .order(dsl::seq.asc())
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// One thread's events with `seq > after`, oldest first, at most `limit`.
pub fn for_thread(
    conn: &mut DbConnection,
    user: &UserId,
    thread: ThreadId,
    after: i64,
    limit: i64,
) -> QueryResult<Vec<Event>> {
    let rows: Vec<EventRow> = dsl::events
        .filter(dsl::user_id.eq(user.as_str()))
        .filter(dsl::thread_id.eq(thread.to_string()))
        .filter(dsl::seq.gt(after))
        .order(dsl::seq.asc())
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// A stored row as the event it was. Rows are written only by `insert`, so their ids and JSON
/// parse; anything else is shown rather than dropped, to keep `seq` gapless.
fn from_row(row: EventRow) -> Event {
    Event {
        kind: EventKind::from_wire(&row.kind).unwrap_or(EventKind::Erased),
        seq: row.seq,
        ts: row.ts,
        thread_id: row
            .thread_id
            .as_deref()
            .and_then(|t| ThreadId::parse(t).ok()),
        run_id: row.run_id.as_deref().and_then(|r| RunId::parse(r).ok()),
        agent: row.agent,
        data: serde_json::from_str(&row.data).unwrap_or(serde_json::Value::Null),
    }
}

/// The user's event with this `seq`, if stored.
pub fn at(conn: &mut DbConnection, user: &UserId, seq: i64) -> QueryResult<Option<Event>> {
    Ok(range(conn, user, seq - 1, seq, 1)?.into_iter().next())
}
