//! The `approvals` table: steps of runs that waited for the user's consent, and how each was
//! resolved.

use diesel::prelude::*;

use crate::context::{ApprovalId, UserId};
use crate::store::connection::DbConnection;
use crate::store::models::ApprovalRow;
use crate::store::schema::approvals::dsl;
use crate::store::status::ApprovalState;

/// Stores an approval a run asked for, under `user` whatever the row says.
pub fn insert(conn: &mut DbConnection, user: &UserId, row: ApprovalRow) -> QueryResult<()> {
    let row = ApprovalRow {
        user_id: user.as_str().to_owned(),
        ..row
    };
    diesel::insert_into(dsl::approvals)
        .values(&row)
        .execute(conn)
        .map(drop)
}

/// Records how a pending approval was resolved.
pub fn resolve(
    conn: &mut DbConnection,
    user: &UserId,
    approval: ApprovalId,
    state: ApprovalState,
    now: i64,
) -> QueryResult<()> {
    diesel::update(
        dsl::approvals
            .filter(dsl::user_id.eq(user.as_str()))
            .filter(dsl::approval_id.eq(approval.to_string())),
    )
    .set((dsl::status.eq(state.as_text()), dsl::resolved_at.eq(now)))
    .execute(conn)
    .map(drop)
}

/// One of the user's approvals, so an answer to an unknown one can say whether it was
/// already resolved; another user's reads as missing.
pub fn get(
    conn: &mut DbConnection,
    user: &UserId,
    approval: ApprovalId,
) -> QueryResult<Option<ApprovalRow>> {
    dsl::approvals
        .filter(dsl::user_id.eq(user.as_str()))
        .filter(dsl::approval_id.eq(approval.to_string()))
        .select(ApprovalRow::as_select())
        .first(conn)
        .optional()
}

/// The user's approvals still waiting for an answer, oldest first.
pub fn pending(conn: &mut DbConnection, user: &UserId) -> QueryResult<Vec<ApprovalRow>> {
    dsl::approvals
        .filter(dsl::user_id.eq(user.as_str()))
        .filter(dsl::status.eq(ApprovalState::Pending.as_text()))
        .order(dsl::created_at.asc())
        .select(ApprovalRow::as_select())
        .load(conn)
}

/// The user's approvals with `approval_id` after `after` (all from the start with `None`), by
/// id, at most `limit`: a page of an export.
pub fn page(
    conn: &mut DbConnection,
    user: &UserId,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<ApprovalRow>> {
    dsl::approvals
        .filter(dsl::user_id.eq(user.as_str()))
        .filter(dsl::approval_id.gt(after.unwrap_or("")))
        .order(dsl::approval_id.asc())
        .limit(limit)
        .select(ApprovalRow::as_select())
        .load(conn)
}
