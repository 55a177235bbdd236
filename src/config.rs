//! `Config`: every address, limit and timeout enclave uses, with its default and its
//! `ENCLAVE_*` environment override.
//!
//! Built once at start-up (`Config::from_env`), then shared read-only as `Arc<Config>`; the CLI
//! overrides a few fields after loading. Tests build one with `Config::for_database` and shorten
//! what they need.

use std::time::Duration;

use crate::analysis::optimize::Thresholds;
use crate::store::SqliteSync;

mod env_vars;
mod kinds;
mod load;
mod settings;
pub mod show;

pub use env_vars::parse_duration;
pub use kinds::format_duration;
pub use load::{ConfigFile, DEFAULT_CONFIG_FILE, Loaded, Origin};
pub use settings::{SETTINGS, Setting};

/// The shortest secret accepted: an HS256 key shorter than its 32-byte hash is easier to guess.
pub const MIN_SECRET_BYTES: usize = 32;

/// Where enclave keeps its data when nothing is configured: a SQLite file in the working
/// directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://enclave.db";
/// Where enclave listens when nothing is configured: loopback only, so a first start exposes
/// nothing.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// A configuration that cannot be used; each names the variable, flag or file key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} = {value} is not valid: {reason}")]
    Invalid {
        /// The variable or flag, or `FILE: key`.
        name: String,
        /// Its value as set, quoted ("(not shown)" for a secret).
        value: String,
        /// Why it cannot be used.
        reason: String,
    },
    #[error("{}: unknown key {key}{hint}", path.display())]
    UnknownKey {
        path: std::path::PathBuf,
        key: String,
        /// " (did you mean …?)", or nothing.
        hint: String,
    },
    #[error("cannot read the configuration file {}: {reason}", path.display())]
    File {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("{0} are both set: set one, not both")]
    Conflict(String),
}

/// The server's settings (see the module comment).
#[derive(Debug, Clone)]
pub struct Config {
    /// `ADDR:PORT` to listen on; port 0 picks a free one.
    pub bind: String,
    /// `sqlite://path`, a bare path, or `postgres://…`.
    pub database_url: String,
    /// HS256 secrets for user tokens: the first signs, every one verifies
    /// (`ENCLAVE_JWT_SECRETS=new,old…`); none = dev mode with a random secret.
    pub jwt_secrets: Vec<String>,
    /// The `iss` tokens are issued with and must carry, if any.
    pub jwt_issuer: Option<String>,
    /// The `aud` tokens are issued with and must carry, if any.
    pub jwt_audience: Option<String>,
    /// Browser origins allowed besides the server's own (`scheme://host[:port]`).
    pub allowed_origins: Vec<String>,
    /// New connections one client address may open per minute…
    pub connections_per_minute_per_ip: u32,
    /// …in bursts of at most this many.
    pub connection_burst_per_ip: u32,
    /// WebSocket upgrades one client address may make per minute…
    pub upgrades_per_minute_per_ip: u32,
    /// …in bursts of at most this many.
    pub upgrade_burst_per_ip: u32,
    /// Proxies (addresses or CIDR blocks) whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<String>,
    /// Loopback clients are exempt from the per-address rates.
    pub exempt_loopback: bool,
    /// WebSockets open at once on this server; 0 (the default) sets it from the open-file
    /// limit, less what the server needs besides.
    pub max_sockets_total: usize,
    /// How long a client has to send a request's head (the handshake of an upgrade too).
    pub request_timeout: Duration,
    /// Enables `POST /api/dev/token` even when a secret is configured.
    pub dev: bool,
    /// Largest WebSocket message after reassembly of fragments (PROTOCOL.md: 128 KiB).
    pub max_message_bytes: usize,
    /// Longest `user_message.content`, in Unicode scalar values.
    pub max_content_chars: usize,
    /// Consecutive bad messages after which a socket is closed with 1008.
    pub max_bad_messages: u32,
    /// How often the server pings a socket.
    pub heartbeat_interval: Duration,
    /// A socket silent for this long is closed with 4002.
    pub client_timeout: Duration,
    /// Frames a socket actor may have queued before it counts as too slow (4008).
    pub socket_outbound_capacity: usize,
    /// Bytes a socket may have waiting for its client: more with no progress over a heartbeat,
    /// or 16 times as many at any time, and it counts as too slow (4008).
    pub socket_outbound_bytes: u64,
    /// Most events one write batch (one transaction) carries.
    pub batch_max_events: usize,
    /// Times a failed write batch is retried (with backoff) before its runs fail.
    pub store_retries: u32,
    /// Events read per page when replaying for `resume`.
    pub replay_page: i64,
    /// Connections in the read pool.
    pub db_pool_size: u32,
    /// Threads serving reads (the write side always has one thread per database file).
    pub db_reader_threads: usize,
    /// Writer threads on PostgreSQL, each committing its users' batches in groups (SQLite
    /// always has exactly one).
    pub db_writer_threads: usize,
    /// How long a pool checkout waits before the database counts as unavailable.
    pub db_timeout: Duration,
    /// How long a server's claim on a PostgreSQL database lasts unless renewed (every third of
    /// it); a server killed without a clean stop holds the database this long.
    pub node_lease: Duration,
    /// The most records per transaction of a bulk write (an upload, synthetic data), and rows
    /// per transaction of a background deletion.
    pub bulk_chunk: usize,
    /// How long one transaction of a bulk write should take: its chunks are sized to it, since
    /// other users' event batches wait for the chunk in progress. Unset: 1 ms on SQLite (one
    /// writer for everyone), 3 ms on PostgreSQL (each writer serves a share of the users, and
    /// every statement costs a round trip of its own).
    pub bulk_chunk_time: Option<Duration>,
    /// SQLite's `PRAGMA synchronous`: `full` (default: durable means on disk) or `normal`.
    pub sqlite_synchronous: SqliteSync,
    /// Arbiters the user sessions are spread over; 0 (the default) means one per core.
    pub session_arbiters: usize,
    /// Runs of one user executing at once (a run awaiting approval counts).
    pub max_running_per_user: usize,
    /// Runs of one user waiting for a slot; beyond it messages are `rate_limited`.
    pub max_queued_per_user: usize,
    /// Runs executing at once on this server, all users together; more wait their turn.
    pub max_running_total: usize,
    /// `user_message`s a user may send per minute…
    pub messages_per_minute: u32,
    /// …in bursts of at most this many.
    pub message_burst: u32,
    /// Frames that cost the server a read (`resume`, `cancel_run`, `approval`) one socket may
    /// send per minute…
    pub read_frames_per_minute: u32,
    /// …in bursts of at most this many; beyond, `rate_limited` without a read.
    pub read_frame_burst: u32,
    /// Sockets one user may hold open at once; another is closed with 4029.
    pub max_sockets_per_user: usize,
    /// How long an approval waits for the user before it expires.
    pub approval_timeout: Duration,
    /// Restarts of one agent allowed within `restart_period` before the supervisor gives up.
    pub max_restarts: u32,
    /// The window `max_restarts` counts restarts in.
    pub restart_period: Duration,
    /// Backoff before restart n (from 0): `backoff_base × 2ⁿ`, capped, plus up to 10% jitter.
    pub backoff_base: Duration,
    /// The longest backoff before a restart, jitter aside.
    pub backoff_cap: Duration,
    /// A session with no sockets, runs or approvals for this long is stopped (passivated).
    pub passivate_after: Duration,
    /// Per-agent attempt timeout.
    pub agent_timeout: Duration,
    /// How often the server reads revocations written since it last looked.
    pub revocation_check: Duration,
    /// Default lifetime of tokens from `enclave token` and the dev endpoint.
    pub token_ttl: Duration,
    /// How long a stopping server waits for open connections before it closes them.
    pub shutdown_grace: Duration,
    /// How often the housekeeper looks for deleted accounts to purge and, with retention set,
    /// for rows past it (`ENCLAVE_HOUSEKEEPING_MS`).
    pub housekeeping_interval: Duration,
    /// How long the events of finished runs are kept (`ENCLAVE_RETAIN_EVENTS`, e.g. `30d`);
    /// `None`, the default, keeps them forever.
    pub retain_events: Option<Duration>,
    /// How long usage records are kept, by their `ts` (`ENCLAVE_RETAIN_USAGE`, e.g. `400d`);
    /// `None`, the default, keeps them forever.
    pub retain_usage: Option<Duration>,
    /// A price catalog file replacing the built-in one (`ENCLAVE_PRICES`).
    pub prices_path: Option<String>,
    /// Largest usage upload.
    pub max_upload_bytes: usize,
    /// Uploads the whole server reads at once.
    pub max_concurrent_uploads: usize,
    /// The slowest an upload's body may arrive, in bytes a second (over its declared size,
    /// plus half a minute); slower, 408 and its place in the budget is freed.
    pub upload_min_bytes_per_second: u64,
    /// What every upload has on top of its size at that rate.
    pub upload_read_grace: Duration,
    /// Bytes those uploads may hold together (each reserves its `Content-Length`, or
    /// `max_upload_bytes` when it declares none).
    pub max_upload_bytes_total: u64,
    /// The most usage records one user may store; beyond it uploads and synthetic data are
    /// refused with `quota_exceeded`.
    pub max_records_per_user: u64,
    /// Synthetic requests above this many records need the user's approval.
    pub synthetic_approval_threshold: u64,
    /// The most synthetic records one request generates.
    pub synthetic_max_records: u64,
    /// Synthetic records stored per transaction (and per `progress` event).
    pub synthetic_batch: u64,
    /// An OpenAI-compatible API base URL (`…/v1`); none = deterministic agents only.
    pub llm_url: Option<String>,
    /// The model asked at `llm_url`.
    pub llm_model: String,
    /// The bearer key for `llm_url`, if it needs one.
    pub llm_api_key: Option<String>,
    /// One LLM call's limit (shorter than an agent attempt's, so a hanging LLM means the
    /// agent's own fallback, not a restart).
    pub llm_timeout: Duration,
    /// The optimisation rules' thresholds (PROTOCOL.md §4 defaults).
    pub thresholds: Thresholds,
    /// Fault injection (`ENCLAVE_FAULTS`), off unless set.
    pub faults: String,
}

impl Config {
    /// Defaults for `database_url`, with no environment consulted.
    pub fn for_database(database_url: &str) -> Self {
        Self {
            bind: DEFAULT_BIND.to_owned(),
            database_url: database_url.to_owned(),
            jwt_secrets: Vec::new(),
            jwt_issuer: None,
            jwt_audience: None,
            allowed_origins: Vec::new(),
            connections_per_minute_per_ip: 300,
            connection_burst_per_ip: 100,
            upgrades_per_minute_per_ip: 120,
            upgrade_burst_per_ip: 60,
            trusted_proxies: Vec::new(),
            exempt_loopback: true,
            max_sockets_total: 0,
            request_timeout: Duration::from_secs(5),
            dev: false,
            max_message_bytes: 128 * 1024,
            max_content_chars: 16_384,
            max_bad_messages: 20,
            heartbeat_interval: Duration::from_secs(10),
            client_timeout: Duration::from_secs(30),
            socket_outbound_capacity: 1024,
            socket_outbound_bytes: 4 * 1024 * 1024,
            batch_max_events: 512,
            store_retries: 3,
            replay_page: 1000,
            db_pool_size: 8,
            db_reader_threads: 4,
            db_writer_threads: 4,
            db_timeout: Duration::from_secs(5),
            sqlite_synchronous: SqliteSync::Full,
            node_lease: Duration::from_secs(10),
            bulk_chunk: 500,
            bulk_chunk_time: None,
            session_arbiters: 0,
            max_running_per_user: 5,
            max_queued_per_user: 20,
            max_running_total: 512,
            messages_per_minute: 60,
            message_burst: 20,
            read_frames_per_minute: 120,
            read_frame_burst: 20,
            max_sockets_per_user: 10,
            approval_timeout: Duration::from_secs(600),
            max_restarts: 3,
            restart_period: Duration::from_secs(60),
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(2),
            passivate_after: Duration::from_secs(300),
            agent_timeout: Duration::from_secs(30),
            token_ttl: Duration::from_secs(24 * 3600),
            revocation_check: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(5),
            housekeeping_interval: Duration::from_secs(60),
            retain_events: None,
            retain_usage: None,
            prices_path: None,
            max_upload_bytes: 32 * 1024 * 1024,
            max_concurrent_uploads: 16,
            upload_min_bytes_per_second: 64 * 1024,
            upload_read_grace: Duration::from_secs(30),
            max_upload_bytes_total: 128 * 1024 * 1024,
            max_records_per_user: 10_000_000,
            synthetic_approval_threshold: 10_000,
            synthetic_max_records: 1_000_000,
            synthetic_batch: 5_000,
            llm_url: None,
            llm_model: String::from("gpt-4o-mini"),
            llm_api_key: None,
            llm_timeout: Duration::from_secs(10),
            thresholds: Thresholds::default(),
            faults: String::new(),
        }
    }

    /// How uploads and synthetic data are written: transactions of about `bulk_chunk_time` (or
    /// the backend's default) and at most `bulk_chunk` records, up to `max_records_per_user`.
    pub fn bulk_limits(&self) -> crate::store::bulk::BulkLimits {
        crate::store::bulk::BulkLimits {
            chunk: self.bulk_chunk,
            chunk_time: self.bulk_chunk_time.unwrap_or_else(
                || match crate::store::Backend::from_url(&self.database_url) {
                    Ok(crate::store::Backend::Postgres(_)) => Duration::from_millis(3),
                    _ => Duration::from_millis(1),
                },
            ),
            max_records: self.max_records_per_user,
        }
    }

    /// The secret tokens are signed with, if any (`None`: dev mode).
    pub fn jwt_secret(&self) -> Option<&str> {
        self.jwt_secrets.first().map(String::as_str)
    }

    /// The arbiters user sessions are spread over: `session_arbiters`, or one per core.
    pub fn session_arbiter_count(&self) -> usize {
        match self.session_arbiters {
            0 => std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
            n => n,
        }
    }

    /// Defaults overridden by the `ENCLAVE_*` variables (and `DATABASE_URL`); no file is read.
    /// `Loaded::load` also reads `enclave.toml` and tells where each value came from.
    pub fn from_env() -> Result<Self, ConfigError> {
        Loaded::load(ConfigFile::Skip)?.finish()
    }
}

/// The shortest `ENCLAVE_RETAIN_EVENTS`: PROTOCOL.md §2 answers a repeated `client_msg_id`
/// from its stored acceptance for 24 hours.
const MIN_RETAIN_EVENTS: Duration = Duration::from_secs(24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_chunks_take_a_millisecond_on_sqlite_and_three_on_postgresql() {
        let sqlite = Config::for_database("sqlite:///tmp/x.db");
        assert_eq!(sqlite.bulk_limits().chunk_time, Duration::from_millis(1));
        let mut pg = Config::for_database("postgres://u@h/db");
        assert_eq!(pg.bulk_limits().chunk_time, Duration::from_millis(3));
        pg.bulk_chunk_time = Some(Duration::from_millis(7));
        assert_eq!(pg.bulk_limits().chunk_time, Duration::from_millis(7));
        assert_eq!(pg.bulk_limits().chunk, 500);
    }
}
