//! `DbConnection` (one diesel `MultiConnection` over SQLite and PostgreSQL) and the r2d2
//! `ConnectionManager` that opens it.
//!
//! The backend is chosen from the URL scheme here rather than by `MultiConnection::establish`,
//! which hides the real connection error; SQLite connections get their pragmas (WAL,
//! `synchronous=FULL` unless configured otherwise, `busy_timeout`, `foreign_keys`) as they open.

use std::time::Duration;

use diesel::connection::{SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

/// A connection to whichever database enclave was configured with.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

/// Which database a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file path.
    Sqlite(String),
    /// A `postgres://` or `postgresql://` URL.
    Postgres(String),
}

impl Backend {
    /// `postgres://…` and `postgresql://…` are PostgreSQL; `sqlite://path`, `sqlite:path` and
    /// a bare path are SQLite files.
    pub fn from_url(url: &str) -> Result<Self, ConnectError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() || path.contains("://") {
            return Err(ConnectError::UnknownScheme(redact_password(url)));
        }
        Ok(Self::Sqlite(path.to_owned()))
    }

    /// Whether this is a SQLite file, which allows one writer thread only (the file has one lock).
    pub fn is_sqlite(&self) -> bool {
        matches!(self, Self::Sqlite(_))
    }

    /// The URL without a password, for logs and start-up messages.
    pub fn display(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{path}"),
            Self::Postgres(url) => redact_password(url),
        }
    }
}

/// `url` with its password masked (`user:***@host`, `password=***` in the query), for logs
/// and output; a URL without one is returned as it is.
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The authority ends at the first `/`, `?` or `#`; its userinfo at its last `@`.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _))
                        if key.eq_ignore_ascii_case("password")
                            || key.eq_ignore_ascii_case("sslpassword") =>
                    {
                        format!("{key}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Why a database URL could not be understood or a connection opened or set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("database URL {0:?} is neither postgres://… nor a SQLite path (sqlite://enclave.db)")]
    UnknownScheme(String),
    #[error("cannot open the database: {0}")]
    Open(#[from] diesel::ConnectionError),
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
}

/// A SQLite writer connection's page cache, in KiB (SQLite's default, which the readers keep,
/// is 2 MiB): room for the upper levels of the usage table's indexes, so a bulk insert does
/// not read them back from the OS for every row. Filled only as pages are used. Readers mostly
/// stream a table once, which a big cache would only hold on to (per reader).
const SQLITE_WRITER_CACHE_KIB: u32 = 16 * 1024;

/// How hard SQLite makes a commit durable (`PRAGMA synchronous`). `Full`, the default, syncs
/// the WAL at every commit, so an event a client has seen survives a power loss and its `seq`
/// is never reused; `Normal` may lose the last commits on power loss (not on a crash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteSync {
    Full,
    Normal,
}

impl SqliteSync {
    fn pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
        }
    }
}

impl std::fmt::Display for SqliteSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Full => "full",
            Self::Normal => "normal",
        })
    }
}

impl std::str::FromStr for SqliteSync {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        match raw.to_ascii_lowercase().as_str() {
            "full" => Ok(Self::Full),
            "normal" => Ok(Self::Normal),
            _ => Err(format!(
                "unknown synchronous mode {raw:?}; use full or normal"
            )),
        }
    }
}

/// Opens `DbConnection`s for r2d2.
#[derive(Debug)]
pub struct ConnectionManager {
    backend: Backend,
    /// How long a SQLite connection waits for the file's write lock before failing.
    busy_timeout: Duration,
    sync: SqliteSync,
    /// The connections are the writers' (SQLite: a bigger page cache, statement journals in
    /// memory).
    for_writers: bool,
}

impl ConnectionManager {
    /// A manager for `backend`; `busy_timeout` and `sync` apply to SQLite connections only.
    pub fn new(backend: Backend, busy_timeout: Duration, sync: SqliteSync) -> Self {
        Self {
            backend,
            busy_timeout,
            sync,
            for_writers: false,
        }
    }

    /// The same, for the writer threads' connections.
    pub fn for_writers(self) -> Self {
        Self {
            for_writers: true,
            ..self
        }
    }
}

/// How long PostgreSQL lets a session sit idle inside a transaction before ending it.
const PG_IDLE_IN_TRANSACTION: std::time::Duration = std::time::Duration::from_secs(30);

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = ConnectError;

    fn connect(&self) -> Result<DbConnection, ConnectError> {
        match &self.backend {
            Backend::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(path)?;
                conn.batch_execute(&format!(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = {}; \
                     PRAGMA busy_timeout = {}; PRAGMA foreign_keys = ON;",
                    self.sync.pragma(),
                    self.busy_timeout.as_millis()
                ))?;
                if self.for_writers {
                    // `temp_store = MEMORY`: a multi-row insert inside a transaction keeps a
                    // statement journal (to undo just that statement); on disk that was a
                    // temporary file created, written page by page and deleted for every chunk
                    // of an upload. (Readers keep the default: a big sort spills to a file.)
                    conn.batch_execute(&format!(
                        "PRAGMA cache_size = -{SQLITE_WRITER_CACHE_KIB}; \
                         PRAGMA temp_store = MEMORY;"
                    ))?;
                }
                Ok(DbConnection::Sqlite(conn))
            }
            Backend::Postgres(url) => {
                let mut conn = PgConnection::establish(url)?;
                // A node stalled inside a transaction (paused, cut off) holds its row locks —
                // a user's lease among them — until the database ends that session: within
                // this long, so another node's claim (`leases.rs`) goes through.
                conn.batch_execute(&format!(
                    "SET idle_in_transaction_session_timeout = {}",
                    PG_IDLE_IN_TRANSACTION.as_millis()
                ))?;
                Ok(DbConnection::Pg(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), ConnectError> {
        conn.batch_execute("SELECT 1")?;
        Ok(())
    }

    /// A connection dropped while its thread panics, or still inside a transaction (a panic
    /// mid-transaction, a failed rollback), is not handed out again: its next "transaction"
    /// would be a savepoint in the old one, answered but never committed.
    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        std::thread::panicking()
            || <<DbConnection as Connection>::TransactionManager as TransactionManager<
                DbConnection,
            >>::is_broken_transaction_manager(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_and_nothing_else_is_touched() {
        let cases = [
            ("postgres://u:pw@h:5432/db", "postgres://u:***@h:5432/db"),
            ("postgres://u@h/db", "postgres://u@h/db"),
            (
                "postgres://h:5432/db?application_name=a@b",
                "postgres://h:5432/db?application_name=a@b",
            ),
            ("postgres://u:p@ss@h/db", "postgres://u:***@h/db"),
            (
                "postgres://h/db?user=u&password=pw&sslpassword=k",
                "postgres://h/db?user=u&password=***&sslpassword=***",
            ),
            (
                "https://api.example/v1/models/m@v1",
                "https://api.example/v1/models/m@v1",
            ),
            ("sqlite://enclave.db", "sqlite://enclave.db"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_password(url), shown, "{url}");
        }
    }

    #[test]
    fn backend_from_url() {
        assert_eq!(
            Backend::from_url("sqlite://enclave.db").ok(),
            Some(Backend::Sqlite("enclave.db".into()))
        );
        assert_eq!(
            Backend::from_url("/tmp/x.db").ok(),
            Some(Backend::Sqlite("/tmp/x.db".into()))
        );
        assert!(matches!(
            Backend::from_url("postgres://u:p@h/db"),
            Ok(Backend::Postgres(_))
        ));
        assert!(Backend::from_url("mysql://h/db").is_err());
        assert_eq!(
            Backend::from_url("postgres://u:secret@h/db")
                .expect("valid")
                .display(),
            "postgres://u:***@h/db"
        );
    }

    /// `PRAGMA synchronous` as a connection reports it: 2 is FULL, 1 NORMAL.
    fn synchronous_of(sync: SqliteSync) -> i32 {
        #[derive(QueryableByName)]
        struct Sync {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            synchronous: i32,
        }
        let dir = std::env::temp_dir().join(format!("enclave-sync-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("s.db").display().to_string();
        let manager = ConnectionManager::new(Backend::Sqlite(path), Duration::from_secs(1), sync);
        let DbConnection::Sqlite(mut conn) =
            r2d2::ManageConnection::connect(&manager).expect("opens")
        else {
            panic!("a SQLite connection");
        };
        let rows: Vec<Sync> = diesel::sql_query("PRAGMA synchronous")
            .load(&mut conn)
            .expect("pragma reads");
        let _ = std::fs::remove_dir_all(&dir);
        rows.first().expect("one row").synchronous
    }

    /// `.cargo/config.toml` builds SQLite without its per-call connection lock: each
    /// connection is used by one thread at a time.
    #[test]
    fn sqlite_is_built_multi_threaded() {
        // SAFETY: a plain query of a compile-time setting.
        assert_eq!(unsafe { libsqlite3_sys::sqlite3_threadsafe() }, 2);
    }

    #[test]
    fn sqlite_commits_are_synced_unless_configured_otherwise() {
        assert_eq!(
            crate::config::Config::for_database("x.db").sqlite_synchronous,
            SqliteSync::Full
        );
        assert_eq!(synchronous_of(SqliteSync::Full), 2);
        assert_eq!(synchronous_of(SqliteSync::Normal), 1);
        assert_eq!("NORMAL".parse(), Ok(SqliteSync::Normal));
        assert!("off".parse::<SqliteSync>().is_err());
    }
}
