//! `enclave backup FILE`: a consistent copy of the SQLite database, safe while the server
//! serves it (see `store/backup.rs`); PostgreSQL is told to use `pg_dump`.

use std::path::Path;

use anyhow::Context;

use enclave::config::Config;
use enclave::store::{self, Backend};

/// Refuses a SQLite database that is not there: opening it would create an empty one (a
/// typo in a path must not be backed up, revoked in or migrated).
pub fn must_exist(backend: &Backend) -> anyhow::Result<()> {
    if let Backend::Sqlite(path) = backend
        && !Path::new(path).exists()
    {
        anyhow::bail!("there is no database at {}", backend.display());
    }
    Ok(())
}

/// Copies the configured database into `file`.
pub fn run(config: &Config, file: &Path) -> anyhow::Result<()> {
    let backend = Backend::from_url(&config.database_url).context("--database")?;
    if !backend.is_sqlite() {
        anyhow::bail!(
            "enclave backup copies SQLite databases; for PostgreSQL use pg_dump: \
             pg_dump --format=custom --file={} '{}'",
            file.display(),
            enclave::store::connection::redact_password(&config.database_url)
        );
    }
    must_exist(&backend)?;
    let pool = store::open_pool(&backend, 1, config.db_timeout, config.sqlite_synchronous)
        .context("opening the database")?;
    let mut conn = pool.get().context("connecting to the database")?;
    store::backup::sqlite_into(&mut conn, file)?;
    let bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    println!(
        "backed up {} to {} ({bytes} bytes, integrity ok)",
        backend.display(),
        file.display()
    );
    Ok(())
}
