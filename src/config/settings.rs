//! The table of every setting: its key in `enclave.toml` (`section.name`), the environment
//! variable(s) overriding it, what it does, and how its value is read and shown (a `Kind`).
//!
//! The file reader, the environment reader, `enclave config show` and the documented example
//! file all walk this one table, so a setting added here is configurable, overridable, shown
//! and documented everywhere at once.

use toml::Value;

use super::Config;
use super::kinds::{
    Flag, Kind, Millis, Number, OptMillis, OptSpan, OptText, OptUrl, Secret, SecretList, Span,
    Text, TextList, Url,
};

/// One setting (see the module comment).
pub struct Setting {
    /// `section.name` in the file.
    pub key: &'static str,
    /// The variables that override it; setting more than one is an error.
    pub envs: &'static [&'static str],
    /// What it does, for the documented file.
    pub doc: &'static str,
    /// Its value is never shown or logged.
    pub secret: bool,
    pub(super) from_env: fn(&mut Config, &str) -> Result<(), String>,
    pub(super) from_file: fn(&mut Config, &Value) -> Result<(), String>,
    /// Its value as a TOML literal; `None` when unset.
    pub(super) show: fn(&Config) -> Option<String>,
}

impl Setting {
    /// The section of the file it is in.
    pub fn section(&self) -> &'static str {
        self.key.split_once('.').map_or("", |(section, _)| section)
    }

    /// The name within its section.
    pub fn name(&self) -> &'static str {
        self.key.split_once('.').map_or(self.key, |(_, name)| name)
    }
}

macro_rules! setting {
    (secret $key:literal, [$($env:literal),+], $kind:ident, $field:ident, $doc:literal) => {
        Setting {
            secret: true,
            ..setting!($key, [$($env),+], $kind, $field, $doc)
        }
    };
    ($key:literal, [$($env:literal),+], $kind:ident, $($field:ident).+, $doc:literal) => {
        Setting {
            key: $key,
            envs: &[$($env),+],
            doc: $doc,
            secret: false,
            from_env: |c, raw| {
                c.$($field).+ = <$kind as Kind<_>>::from_env(raw)?;
                Ok(())
            },
            from_file: |c, value| {
                c.$($field).+ = <$kind as Kind<_>>::from_file(value)?;
                Ok(())
            },
            show: |c| <$kind as Kind<_>>::show(&c.$($field).+),
        }
    };
}

/// Every setting, in the order the documented file lists them.
#[rustfmt::skip]
pub static SETTINGS: &[Setting] = &[
    // [server]
    setting!("server.bind", ["ENCLAVE_BIND"], Text, bind,
        "Address and port to listen on; port 0 picks a free one. Without auth secrets, only a \
         loopback address is allowed (or dev = true)."),
    setting!("server.dev", ["ENCLAVE_DEV"], Flag, dev,
        "Serve POST /api/dev/token (a token for any user name) even with auth secrets set."),
    setting!("server.session_arbiters", ["ENCLAVE_SESSION_ARBITERS"], Number, session_arbiters,
        "Threads the user sessions are spread over; 0 means one per core."),
    setting!("server.shutdown_grace", ["ENCLAVE_SHUTDOWN_GRACE_MS"], Millis, shutdown_grace,
        "How long a stopping server lets runs and connections finish."),
    // [http]
    setting!("http.allowed_origins", ["ENCLAVE_ALLOWED_ORIGINS"], TextList, allowed_origins,
        "Browser origins besides the server's own (e.g. \"https://app.example.com\") that may \
         open /ws and call the API (CORS). Outside dev mode a request from any other Origin is \
         refused 403; a request without Origin (not a browser) is never refused for it."),
    setting!("http.trusted_proxies", ["ENCLAVE_TRUSTED_PROXIES"], TextList, trusted_proxies,
        "Reverse proxies (addresses or CIDR blocks, e.g. \"127.0.0.1\") whose X-Forwarded-For \
         names the client; from anyone else the header is ignored."),
    setting!("http.exempt_loopback", ["ENCLAVE_EXEMPT_LOOPBACK"], Flag, exempt_loopback,
        "A loopback client forwarding for nobody (no X-Forwarded-For, Forwarded, X-Real-IP or \
         Via: local tools, enclave loadtest) is exempt from the per-address rates; a proxy's \
         request never is."),
    setting!("http.connections_per_minute_per_ip", ["ENCLAVE_CONNECTIONS_PER_MINUTE_PER_IP"],
        Number, connections_per_minute_per_ip,
        "New connections one client address may open per minute…"),
    setting!("http.connection_burst_per_ip", ["ENCLAVE_CONNECTION_BURST_PER_IP"], Number,
        connection_burst_per_ip,
        "…in bursts of at most this many; beyond, 429 and the connection is closed."),
    setting!("http.upgrades_per_minute_per_ip", ["ENCLAVE_UPGRADES_PER_MINUTE_PER_IP"], Number,
        upgrades_per_minute_per_ip,
        "WebSockets one client address may open per minute…"),
    setting!("http.upgrade_burst_per_ip", ["ENCLAVE_UPGRADE_BURST_PER_IP"], Number,
        upgrade_burst_per_ip,
        "…in bursts of at most this many; beyond, 429."),
    setting!("http.request_timeout", ["ENCLAVE_REQUEST_TIMEOUT_MS"], Millis, request_timeout,
        "How long a client has to send a request's head, a WebSocket handshake's included."),
    // [database]
    setting!("database.url", ["DATABASE_URL"], Url, database_url,
        "sqlite://PATH (a file, the default) or postgres://USER@HOST:PORT/DB."),
    setting!("database.pool_size", ["ENCLAVE_DB_POOL_SIZE"], Number, db_pool_size,
        "Connections in the read pool."),
    setting!("database.readers", ["ENCLAVE_DB_READERS"], Number, db_reader_threads,
        "Threads serving reads."),
    setting!("database.writers", ["ENCLAVE_DB_WRITERS"], Number, db_writer_threads,
        "Writer threads on PostgreSQL (SQLite always has one)."),
    setting!("database.timeout", ["ENCLAVE_DB_TIMEOUT_MS"], Millis, db_timeout,
        "How long a request waits for a connection before the database counts as unavailable."),
    setting!("database.node_lease", ["ENCLAVE_NODE_LEASE_MS"], Millis, node_lease,
        "PostgreSQL: how long this server's claim on the database lasts unless renewed."),
    setting!("database.sqlite_synchronous", ["ENCLAVE_SQLITE_SYNCHRONOUS"], Text,
        sqlite_synchronous,
        "SQLite: full (a delivered event survives power loss) or normal (faster)."),
    setting!("database.batch_max_events", ["ENCLAVE_BATCH_MAX_EVENTS"], Number, batch_max_events,
        "Most events one write transaction carries."),
    setting!("database.store_retries", ["ENCLAVE_STORE_RETRIES"], Number, store_retries,
        "Times a failed event write is retried before its runs fail."),
    setting!("database.replay_page", ["ENCLAVE_REPLAY_PAGE"], Number, replay_page,
        "Events read per page when a client resumes."),
    setting!("database.bulk_chunk", ["ENCLAVE_BULK_CHUNK"], Number, bulk_chunk,
        "Most records per transaction of an upload or synthetic data."),
    setting!("database.bulk_chunk_time", ["ENCLAVE_BULK_CHUNK_MS"], OptMillis, bulk_chunk_time,
        "How long one bulk transaction should take (default 1ms on SQLite, 3ms on PostgreSQL)."),
    // [auth]
    setting!(secret "auth.secrets", ["ENCLAVE_JWT_SECRETS", "ENCLAVE_JWT_SECRET"], SecretList,
        jwt_secrets,
        "HS256 secrets, each at least 32 bytes: the first signs, every one verifies (rotate by \
         putting the new one first). None: dev mode with a random secret."),
    setting!("auth.issuer", ["ENCLAVE_JWT_ISSUER"], OptText, jwt_issuer,
        "The iss tokens are issued with and must carry."),
    setting!("auth.audience", ["ENCLAVE_JWT_AUDIENCE"], OptText, jwt_audience,
        "The aud tokens are issued with and must carry."),
    setting!("auth.token_ttl", ["ENCLAVE_TOKEN_TTL"], Span, token_ttl,
        "Lifetime of the tokens the dev endpoint and `enclave ingest` issue (`enclave token` \
         has its own --ttl, 24h by default)."),
    setting!("auth.revocation_check", ["ENCLAVE_REVOCATION_CHECK_MS"], Millis,
        revocation_check,
        "How often the server reads tokens revoked since it last looked (enclave token revoke \
         takes effect within this)."),
    // [sockets]
    setting!("sockets.max_total", ["ENCLAVE_MAX_SOCKETS_TOTAL"], Number, max_sockets_total,
        "WebSockets open at once on this server; more get 503. 0: the open-file limit less \
         what the server needs besides."),
    setting!("sockets.max_per_user", ["ENCLAVE_MAX_SOCKETS_PER_USER"], Number, max_sockets_per_user,
        "Sockets one user may hold open; another is closed with 4029."),
    setting!("sockets.max_message_bytes", ["ENCLAVE_MAX_MESSAGE_BYTES"], Number, max_message_bytes,
        "Largest WebSocket message, fragments reassembled; larger closes the socket (1009)."),
    setting!("sockets.max_bad_messages", ["ENCLAVE_MAX_BAD_MESSAGES"], Number, max_bad_messages,
        "Bad messages in a row after which a socket is closed (1008)."),
    setting!("sockets.heartbeat", ["ENCLAVE_HEARTBEAT_MS"], Millis, heartbeat_interval,
        "How often the server pings a socket."),
    setting!("sockets.client_timeout", ["ENCLAVE_CLIENT_TIMEOUT_MS"], Millis, client_timeout,
        "A socket silent this long is closed (4002)."),
    setting!("sockets.outbound_frames", ["ENCLAVE_SOCKET_OUTBOUND"], Number,
        socket_outbound_capacity,
        "Frames queued for one socket before its client counts as too slow (4008)."),
    setting!("sockets.outbound_bytes", ["ENCLAVE_SOCKET_OUTBOUND_BYTES"], Number,
        socket_outbound_bytes,
        "Bytes waiting for one client without progress before it counts as too slow (4008)."),
    setting!("sockets.read_frames_per_minute", ["ENCLAVE_READ_FRAMES_PER_MINUTE"], Number,
        read_frames_per_minute,
        "resume, cancel_run and approval frames one socket may send per minute…"),
    setting!("sockets.read_frame_burst", ["ENCLAVE_READ_FRAME_BURST"], Number, read_frame_burst,
        "…in bursts of at most this many; beyond, rate_limited."),
    // [runs]
    setting!("runs.max_content_chars", ["ENCLAVE_MAX_CONTENT_CHARS"], Number, max_content_chars,
        "Longest user message, in characters."),
    setting!("runs.messages_per_minute", ["ENCLAVE_MESSAGES_PER_MINUTE"], Number,
        messages_per_minute,
        "Messages one user may send per minute…"),
    setting!("runs.message_burst", ["ENCLAVE_MESSAGE_BURST"], Number, message_burst,
        "…in bursts of at most this many; beyond, rate_limited."),
    setting!("runs.max_running_per_user", ["ENCLAVE_MAX_RUNNING_PER_USER"], Number,
        max_running_per_user,
        "Runs of one user executing at once (one awaiting approval counts)."),
    setting!("runs.max_queued_per_user", ["ENCLAVE_MAX_QUEUED_PER_USER"], Number,
        max_queued_per_user,
        "Runs of one user waiting for a slot; beyond, rate_limited."),
    setting!("runs.max_running_total", ["ENCLAVE_MAX_RUNNING_TOTAL"], Number, max_running_total,
        "Runs executing at once on this server, all users together; more wait their turn."),
    setting!("runs.approval_timeout", ["ENCLAVE_APPROVAL_TIMEOUT_MS"], Millis, approval_timeout,
        "How long an approval waits for the user."),
    setting!("runs.agent_timeout", ["ENCLAVE_AGENT_TIMEOUT_MS"], Millis, agent_timeout,
        "One agent attempt's time limit."),
    setting!("runs.max_restarts", ["ENCLAVE_MAX_RESTARTS"], Number, max_restarts,
        "Restarts of one agent within restart_period before the run fails."),
    setting!("runs.restart_period", ["ENCLAVE_RESTART_PERIOD_MS"], Millis, restart_period,
        "The window max_restarts counts in."),
    setting!("runs.backoff_base", ["ENCLAVE_BACKOFF_BASE_MS"], Millis, backoff_base,
        "Backoff before restart n: backoff_base × 2ⁿ, capped…"),
    setting!("runs.backoff_cap", ["ENCLAVE_BACKOFF_CAP_MS"], Millis, backoff_cap,
        "…at this (plus up to 10% jitter)."),
    setting!("runs.passivate_after", ["ENCLAVE_PASSIVATE_AFTER_MS"], Millis, passivate_after,
        "A user with no sockets, runs or approvals this long is unloaded from memory."),
    // [usage]
    setting!("usage.max_upload_bytes", ["ENCLAVE_MAX_UPLOAD_BYTES"], Number, max_upload_bytes,
        "Largest usage upload (413 beyond); `enclave ingest` splits bigger files."),
    setting!("usage.max_concurrent_uploads", ["ENCLAVE_MAX_CONCURRENT_UPLOADS"], Number,
        max_concurrent_uploads,
        "Uploads the whole server reads at once (each user has one at a time); beyond, 503."),
    setting!("usage.upload_min_bytes_per_second", ["ENCLAVE_UPLOAD_MIN_BYTES_PER_SECOND"], Number,
        upload_min_bytes_per_second,
        "The slowest an upload may arrive: it has upload_read_grace plus its declared size at \
         this rate (so 32 MiB has 9 minutes); slower, 408 request_timeout."),
    setting!("usage.upload_read_grace", ["ENCLAVE_UPLOAD_READ_GRACE_MS"], Millis,
        upload_read_grace,
        "What every upload has to arrive on top of its size at the slowest rate."),
    setting!("usage.max_upload_bytes_total", ["ENCLAVE_MAX_UPLOAD_BYTES_TOTAL"], Number,
        max_upload_bytes_total,
        "Bytes those uploads may declare together (one without Content-Length counts as \
         max_upload_bytes; an upload takes about three times its size in memory); beyond, 503."),
    setting!("usage.max_records_per_user", ["ENCLAVE_MAX_RECORDS_PER_USER"], Number,
        max_records_per_user,
        "Most usage records one user may store (quota_exceeded beyond)."),
    setting!("usage.prices", ["ENCLAVE_PRICES"], OptText, prices_path,
        "A price catalog file (JSON) replacing the built-in one."),
    setting!("usage.synthetic_approval_threshold", ["ENCLAVE_SYNTHETIC_APPROVAL_THRESHOLD"],
        Number, synthetic_approval_threshold,
        "Synthetic data requests above this many records need the user's approval."),
    setting!("usage.synthetic_max_records", ["ENCLAVE_SYNTHETIC_MAX_RECORDS"], Number,
        synthetic_max_records,
        "Most synthetic records one request generates."),
    setting!("usage.synthetic_batch", ["ENCLAVE_SYNTHETIC_BATCH"], Number, synthetic_batch,
        "Synthetic records stored per transaction (and per progress event)."),
    // [retention]
    setting!("retention.events", ["ENCLAVE_RETAIN_EVENTS"], OptSpan, retain_events,
        "How long finished runs' events are kept (at least 1d); unset keeps them forever."),
    setting!("retention.usage", ["ENCLAVE_RETAIN_USAGE"], OptSpan, retain_usage,
        "How long usage records are kept, by their ts; unset keeps them forever."),
    setting!("retention.housekeeping", ["ENCLAVE_HOUSEKEEPING_MS"], Millis, housekeeping_interval,
        "How often deleted accounts are purged and retention applied."),
    // [llm]
    setting!("llm.url", ["ENCLAVE_LLM_URL"], OptUrl, llm_url,
        "An OpenAI-compatible API (…/v1) for the agents' prose; unset: deterministic text."),
    setting!("llm.model", ["ENCLAVE_LLM_MODEL"], Text, llm_model,
        "The model asked."),
    setting!(secret "llm.api_key", ["ENCLAVE_LLM_API_KEY"], Secret, llm_api_key,
        "Bearer key for llm.url, if it needs one."),
    setting!("llm.timeout", ["ENCLAVE_LLM_TIMEOUT_MS"], Millis, llm_timeout,
        "One LLM call's time limit (the agent falls back to its own text after it)."),
    // [rules]
    setting!("rules.substitution_max_p95_completion", ["ENCLAVE_SUBSTITUTION_MAX_P95_COMPLETION"],
        Number, thresholds.substitution_max_p95_completion,
        "Model substitution: largest p95 completion tokens of a workload moved to a cheaper \
         model."),
    setting!("rules.substitution_max_p95_prompt", ["ENCLAVE_SUBSTITUTION_MAX_P95_PROMPT"], Number,
        thresholds.substitution_max_p95_prompt,
        "Model substitution: largest p95 prompt tokens."),
    setting!("rules.substitution_max_error_rate", ["ENCLAVE_SUBSTITUTION_MAX_ERROR_RATE"], Number,
        thresholds.substitution_max_error_rate,
        "Model substitution: largest error rate (0-1)."),
    setting!("rules.caching_min_repeats", ["ENCLAVE_CACHING_MIN_REPEATS"], Number,
        thresholds.caching_min_repeats,
        "Prompt caching: fewest repeats of a prefix worth caching."),
    setting!("rules.max_tokens_factor", ["ENCLAVE_MAX_TOKENS_FACTOR"], Number,
        thresholds.max_tokens_factor,
        "max_tokens tuning: a cap at least this many times the p99 completion is too loose."),
    setting!("rules.retry_avoidable_share", ["ENCLAVE_RETRY_AVOIDABLE_SHARE"], Number,
        thresholds.retry_avoidable_share,
        "Retries: the share of failed requests' spend counted avoidable (0-1)."),
    // [testing]
    setting!("testing.faults", ["ENCLAVE_FAULTS"], Text, faults,
        "Fault injection for tests (see src/faults.rs); leave empty."),
];

/// The setting with `key`.
pub fn find(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}
