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
use crate::store::schema::{approvals, events, runs, usage_counts};
use crate::store::status::{ApprovalState, live_run_status_texts};

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

/// Runs of `user` whose events must stay: those that have not ended, and those with an
/// approval not yet answered.
fn runs_in_use(conn: &mut DbConnection, user: &UserId) -> QueryResult<HashSet<String>> {
    let mut in_use: HashSet<String> = runs::table
        .filter(runs::user_id.eq(user.as_str()))
        .filter(runs::status.eq_any(live_run_status_texts()))
        .select(runs::run_id)
        .load::<String>(conn)?
        .into_iter()
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
    let live: i64 = runs::table
        .filter(runs::user_id.eq(user.as_str()))
        .filter(runs::status.eq_any(live_run_status_texts()))
        .count()
        .get_result(conn)?;
    if live > 0 {
        return Ok(0);
    }
    usage::delete_older_chunk(conn, user, cutoff, limit)
}
