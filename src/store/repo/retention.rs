//! Retention: removing what is older than the operator keeps (`ENCLAVE_RETAIN_EVENTS`,
//! `ENCLAVE_RETAIN_USAGE`), a chunk per transaction, for the `Housekeeper`.
//!
//! Events go only as a prefix of a user's sequence — the oldest first, stopping at the first
//! one that is recent, belongs to a run that has not ended or has an unanswered approval, or is
//! the user's latest (which keeps `last_seq`) — so what remains is always `[oldest, last]`
//! without a hole, and a replay from before it is answered `truncated {oldest_seq}`.

use std::collections::HashSet;

use diesel::prelude::*;

use crate::context::UserId;
use crate::store::DbConnection;
use crate::store::schema::{approvals, events, usage_counts, usage_records};
use crate::store::status::ApprovalState;

use super::usage;

/// The next user, in id order after `after`, who has stored events: one index seek.
pub fn next_user_with_events(
    conn: &mut DbConnection,
    after: Option<&str>,
) -> QueryResult<Option<String>> {
    events::table
        .filter(events::user_id.gt(after.unwrap_or("")))
        .order(events::user_id.asc())
        .select(events::user_id)
        .first(conn)
        .optional()
}

/// Up to `limit` users, in id order after `after`, who hold usage records.
pub fn users_with_usage(
    conn: &mut DbConnection,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<String>> {
    usage_counts::table
        .filter(usage_counts::user_id.gt(after.unwrap_or("")))
        .filter(usage_counts::records.gt(0))
        .order(usage_counts::user_id.asc())
        .select(usage_counts::user_id)
        .limit(limit)
        .load(conn)
}

/// Whether `user`'s oldest event is older than `cutoff` and not their latest: the cheap look
/// (two index seeks) before `drop_old_events`.
pub fn events_due(conn: &mut DbConnection, user: &UserId, cutoff: i64) -> QueryResult<bool> {
    let oldest: Option<(i64, i64)> = events::table
        .filter(events::user_id.eq(user.as_str()))
        .order(events::seq.asc())
        .select((events::seq, events::ts))
        .first(conn)
        .optional()?;
    let Some((seq, ts)) = oldest else {
        return Ok(false);
    };
    Ok(ts < cutoff && seq < super::events::last_seq(conn, user)?)
}

/// Whether `user` holds a usage record older than `cutoff` (one seek on `(user_id, ts)`).
pub fn usage_due(conn: &mut DbConnection, user: &UserId, cutoff: i64) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        usage_records::table
            .filter(usage_records::user_id.eq(user.as_str()))
            .filter(usage_records::ts.lt(cutoff)),
    ))
    .get_result(conn)
}

/// Runs of `user` whose events must stay: those that have not ended, and those with an
/// approval not yet answered.
fn runs_in_use(conn: &mut DbConnection, user: &UserId) -> QueryResult<HashSet<String>> {
    let mut in_use: HashSet<String> = super::runs::live(conn, user)?
        .into_iter()
        .map(|(run, _)| run.to_string())
        .collect();
    let awaiting: Vec<String> = approvals::table
        .filter(approvals::user_id.eq(user.as_str()))
        .filter(approvals::status.eq(ApprovalState::Pending.as_text()))
        .select(approvals::run_id)
        .load(conn)?;
    in_use.extend(awaiting);
    Ok(in_use)
}

/// Removes up to `limit` of the oldest events of `user` stored before `cutoff` (epoch ms),
/// stopping at the first that must stay (see the module); returns how many (call until 0).
pub fn drop_old_events(
    conn: &mut DbConnection,
    user: &UserId,
    cutoff: i64,
    limit: i64,
) -> QueryResult<usize> {
    let in_use = runs_in_use(conn, user)?;
    let last = super::events::last_seq(conn, user)?;
    let oldest: Vec<(i64, i64, Option<String>)> = events::table
        .filter(events::user_id.eq(user.as_str()))
        .order(events::seq.asc())
        .select((events::seq, events::ts, events::run_id))
        .limit(limit)
        .load(conn)?;
    let through = oldest
        .iter()
        .take_while(|(seq, ts, run)| {
            *seq < last && *ts < cutoff && run.as_ref().is_none_or(|r| !in_use.contains(r))
        })
        .last()
        .map(|(seq, _, _)| *seq);
    let Some(through) = through else {
        return Ok(0);
    };
    diesel::delete(
        events::table
            .filter(events::user_id.eq(user.as_str()))
            .filter(events::seq.le(through)),
    )
    .execute(conn)
}

/// Removes up to `limit` usage records of `user` whose `ts` is before `cutoff` (epoch ms),
/// none while a run of the user is live (it may be reading them); returns how many.
pub fn drop_old_usage(
    conn: &mut DbConnection,
    user: &UserId,
    cutoff: i64,
    limit: i64,
) -> QueryResult<usize> {
    if !super::runs::live(conn, user)?.is_empty() {
        return Ok(0);
    }
    usage::delete_older_chunk(conn, user, cutoff, limit)
}

#[cfg(test)]
mod tests {
    use diesel::RunQueryDsl;
    use r2d2::ManageConnection;

    use super::*;
    use crate::context::{RunId, ThreadId};
    use crate::protocol::Event;
    use crate::protocol::payload::ThreadDeleted;
    use crate::store::connection::{Backend, ConnectionManager, SqliteSync};
    use crate::store::{migrate, repo};

    /// A migrated SQLite file's connection.
    fn connection() -> DbConnection {
        let dir = std::env::temp_dir().join(format!("enclave-retention-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let url = format!("sqlite://{}", dir.join("r.db").display());
        let backend = Backend::from_url(&url).expect("a sqlite url");
        let manager =
            ConnectionManager::new(backend, std::time::Duration::from_secs(5), SqliteSync::Full);
        let mut conn = manager.connect().expect("connection");
        migrate(&mut conn).expect("migrations");
        conn
    }

    /// Stores `user`'s events `(seq, ts, run)`.
    fn events(conn: &mut DbConnection, user: &UserId, rows: &[(i64, i64, Option<RunId>)]) {
        let thread = ThreadId::new();
        let events: Vec<Event> = rows
            .iter()
            .map(|(seq, ts, run)| {
                let mut event = Event::new(ThreadDeleted {}, Some(thread), *run, None);
                (event.seq, event.ts) = (*seq, *ts);
                event
            })
            .collect();
        repo::events::insert(conn, user, &events).expect("stored");
    }

    /// A run of `user` in `status`.
    fn run(conn: &mut DbConnection, user: &UserId, run: RunId, status: &str) {
        diesel::sql_query(format!(
            "INSERT INTO runs (run_id, user_id, thread_id, status, content, created_at) \
             VALUES ('{run}', '{user}', '{}', '{status}', 'x', 0)",
            ThreadId::new()
        ))
        .execute(conn)
        .expect("run stored");
    }

    fn seqs_left(conn: &mut DbConnection, user: &UserId) -> Vec<i64> {
        events::table
            .filter(events::user_id.eq(user.as_str()))
            .order(events::seq.asc())
            .select(events::seq)
            .load(conn)
            .expect("read")
    }

    #[test]
    fn only_a_prefix_goes_stopping_at_what_must_stay() {
        let conn = &mut connection();
        let alice = UserId::parse("alice").expect("valid");
        let bob = UserId::parse("bob").expect("valid");
        let (ended, live, waiting) = (RunId::new(), RunId::new(), RunId::new());
        run(conn, &alice, ended, "completed");
        run(conn, &alice, live, "running");
        run(conn, &alice, waiting, "completed");
        diesel::sql_query(format!(
            "INSERT INTO approvals (approval_id, user_id, run_id, action, summary, details, \
             status, created_at, expires_at) VALUES ('a1', 'alice', '{waiting}', 'x', 'x', '{{}}', \
             'pending', 0, 0)"
        ))
        .execute(conn)
        .expect("approval stored");
        events(
            conn,
            &alice,
            &[
                (1, 10, Some(ended)),
                (2, 11, None),
                (3, 12, Some(ended)),
                (4, 13, Some(live)),
                (5, 14, Some(ended)),
            ],
        );
        events(conn, &bob, &[(1, 10, None), (2, 11, None)]);

        assert!(events_due(conn, &alice, 100).expect("read"));
        assert!(
            !events_due(conn, &alice, 10).expect("read"),
            "nothing before 10"
        );
        assert_eq!(
            drop_old_events(conn, &alice, 100, 2).expect("chunk"),
            2,
            "a chunk at most"
        );
        assert_eq!(drop_old_events(conn, &alice, 100, 2).expect("chunk"), 1);
        assert_eq!(
            drop_old_events(conn, &alice, 100, 2).expect("chunk"),
            0,
            "the live run stays"
        );
        assert_eq!(seqs_left(conn, &alice), vec![4, 5]);

        // The live run ends: all but the latest go, and the latest keeps `last_seq`.
        diesel::sql_query(format!(
            "UPDATE runs SET status = 'completed' WHERE run_id = '{live}'"
        ))
        .execute(conn)
        .expect("run ended");
        assert_eq!(drop_old_events(conn, &alice, 100, 10).expect("chunk"), 1);
        assert_eq!(seqs_left(conn, &alice), vec![5]);
        assert!(!events_due(conn, &alice, 100).expect("read"));
        assert_eq!(repo::events::last_seq(conn, &alice).expect("read"), 5);

        // A run with a pending approval keeps its events even once marked ended.
        events(conn, &alice, &[(6, 15, Some(waiting)), (7, 16, None)]);
        assert_eq!(
            drop_old_events(conn, &alice, 100, 10).expect("chunk"),
            1,
            "only seq 5"
        );
        assert_eq!(seqs_left(conn, &alice), vec![6, 7]);
        // Recent events stay whatever their run.
        assert_eq!(drop_old_events(conn, &bob, 11, 10).expect("chunk"), 1);
        assert_eq!(seqs_left(conn, &bob), vec![2]);
    }
}
