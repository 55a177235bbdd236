//! Token revocations: a user's tokens issued at or before a second are refused
//! (`enclave token revoke`). Keyed by the token's subject, not an account key: a revocation
//! outlives account deletion. Not a per-user read path: each server reads them all, again and
//! again (a row per revoked user).

use diesel::prelude::*;

use crate::context::UserId;
use crate::store::DbConnection;
use crate::store::schema::token_revocations;

/// Refuses `user`'s tokens issued at or before `through` (epoch seconds); an earlier
/// revocation of theirs through a later second (a revoker whose clock ran ahead) stands.
pub fn revoke(conn: &mut DbConnection, user: &UserId, through: i64) -> QueryResult<()> {
    conn.transaction(|conn| {
        let held: Option<i64> = token_revocations::table
            .filter(token_revocations::user_id.eq(user.subject()))
            .select(token_revocations::revoked_through)
            .first(conn)
            .optional()?;
        let through = held.map_or(through, |held| held.max(through));
        let upsert = diesel::insert_into(token_revocations::table)
            .values((
                token_revocations::user_id.eq(user.subject()),
                token_revocations::revoked_through.eq(through),
            ))
            .on_conflict(token_revocations::user_id)
            .do_update()
            .set(token_revocations::revoked_through.eq(through));
        match conn {
            DbConnection::Sqlite(c) => upsert.execute(c)?,
            DbConnection::Pg(c) => upsert.execute(c)?,
        };
        Ok(())
    })
}

/// Every revocation: each revoked subject and the last second revoked.
pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<(String, i64)>> {
    let query = token_revocations::table.select((
        token_revocations::user_id,
        token_revocations::revoked_through,
    ));
    match conn {
        DbConnection::Sqlite(c) => query.load(c),
        DbConnection::Pg(c) => query.load(c),
    }
}
