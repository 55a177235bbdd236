//! `enclave backup FILE`: a consistent copy of a SQLite database taken while the server
//! serves (`VACUUM INTO`, which reads one snapshot and writes a compact new file), checked
//! with `PRAGMA integrity_check`. PostgreSQL has `pg_dump` for this.

use std::path::Path;

use diesel::prelude::*;
use diesel::sql_types::Text;

use super::{DbConnection, StoreError};

#[derive(QueryableByName)]
struct Check {
    #[diesel(sql_type = Text)]
    integrity_check: String,
}

/// Copies the database `conn` is open on into `target`, which must not exist yet.
pub fn sqlite_into(conn: &mut DbConnection, target: &Path) -> Result<(), StoreError> {
    let DbConnection::Sqlite(c) = conn else {
        return Err(StoreError::Backup(
            "enclave backup copies SQLite databases; for PostgreSQL use pg_dump".into(),
        ));
    };
    if target.exists() {
        return Err(StoreError::Backup(format!(
            "{} exists; name a new file",
            target.display()
        )));
    }
    let path = target
        .to_str()
        .ok_or_else(|| StoreError::Backup("the backup's path is not UTF-8".into()))?;
    diesel::sql_query(format!("VACUUM INTO '{}'", path.replace('\'', "''"))).execute(c)?;
    let mut copy = SqliteConnection::establish(path)
        .map_err(|e| StoreError::Backup(format!("cannot open the copy: {e}")))?;
    let checks: Vec<Check> = diesel::sql_query("PRAGMA integrity_check").load(&mut copy)?;
    match checks.first().map(|c| c.integrity_check.as_str()) {
        Some("ok") => Ok(()),
        other => Err(StoreError::Backup(format!(
            "the copy failed its integrity check: {other:?}"
        ))),
    }
}
