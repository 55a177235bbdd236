//! `enclave loadtest`: the load client users run against their own deployment. It loads and
//! verifies at once: `run` checks the settings, gets the users' tokens and starts the
//! simulated users (`start.rs`, `user/`: one task each, paced by the ramp) in this process or
//! over worker processes (`workers.rs`); `gather.rs` tallies what they report (`report.rs`)
//! into the `Summary`; `verify/` is the verification each user runs on every frame it receives.

mod connect;
pub mod frame;
mod gather;
pub mod process;
pub mod report;
mod start;
mod user;
pub mod verify;
mod workers;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use futures_util::StreamExt;

use crate::auth::Auth;
use crate::context::UserId;

pub use report::Summary;
pub use workers::{WORKER_COMMAND, serve_as_worker};

use connect::Targets;
use gather::{Baseline, gather};

/// How long an idle test holds its sockets when no duration is given.
const DEFAULT_IDLE: Duration = Duration::from_secs(60);

/// Messages each user sends when neither `--messages` nor `--duration` is given.
const DEFAULT_MESSAGES: u64 = 5;

/// Open files a load process keeps for itself beyond its sockets.
const FILES_KEPT: u64 = 64;

/// Dev tokens fetched at once.
const TOKEN_REQUESTS: usize = 16;

/// What the simulated users do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// Hold the sockets open, with a `ping` now and then, for the duration.
    Idle,
    /// Send each message once the previous run has ended.
    Chat,
    /// Send every message at once, then wait for all the runs.
    Burst,
    /// Per message: connect (resuming), send, disconnect once accepted, reconnect with
    /// `?after_seq=` and follow the run to its end.
    Churn,
}

/// A load test, as asked for.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LoadConfig {
    /// `ws://HOST:PORT[/ws]` or `http://HOST:PORT`.
    pub url: String,
    /// Simulated users.
    pub users: usize,
    /// Sockets each user holds (tabs).
    pub sockets_per_user: usize,
    /// New sockets per second while users start (0: no pacing).
    pub ramp: f64,
    /// What each user does.
    pub scenario: Scenario,
    /// How long the load lasts once every user has started: idle users hold their sockets this
    /// long, others start no run after it. Default: idle 60 s, others until their messages
    /// are sent.
    pub duration: Option<Duration>,
    /// Messages per user (default 5, or no limit when a duration is given).
    pub messages: Option<u64>,
    /// The text of each message.
    pub content: String,
    /// A run not ended this long after its message counts as timed out.
    pub run_timeout: Duration,
    /// Chat only: messages per second over all users, sent whether or not earlier runs have
    /// ended (an open loop, for latency at a given rate); `None`: each user sends after its
    /// last run ended.
    pub rate: Option<f64>,
    /// Signs tokens locally; without it tokens come from `POST /api/dev/token`.
    pub secret: Option<String>,
    /// User names are `PREFIX-N` (default: a fresh random prefix, so users start empty).
    pub user_prefix: Option<String>,
    /// Client threads.
    pub threads: usize,
    /// Spread sockets over this many loopback source addresses, 127.0.0.1 up (1: the
    /// system's choice). Only for a server on loopback.
    pub source_addresses: u8,
    /// Processes to spread the users over, each with its own open-file limit: this executable
    /// (which must be `enclave`) again, as `enclave loadtest-worker` (see `workers.rs`). 1: all
    /// in this process; 0: as many as the sockets need.
    pub processes: usize,
    /// The server's process id, to report its memory and CPU.
    pub server_pid: Option<u32>,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// Why a load test could not run.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `--url` cannot be used.
    #[error("--url {url}: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting cannot be used.
    #[error("{0}")]
    BadSetting(String),
    /// Tokens could not be had.
    #[error("getting tokens: {0}")]
    Tokens(String),
    /// The client's runtime could not start.
    #[error("starting the client: {0}")]
    Runtime(#[from] std::io::Error),
}

/// Raises this process's open-file limit to its hard limit (a server or client holding
/// thousands of sockets needs it); the limit now in force.
pub fn raise_file_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            log::warn!("cannot raise the open-file limit: {e}");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |(soft, _)| soft)
        }
    }
}

/// Runs the load test `config` describes and returns what it found.
pub fn run(mut config: LoadConfig) -> Result<Summary, LoadError> {
    check(&config)?;
    let files = raise_file_limit();
    let sockets = config.users.saturating_mul(config.sockets_per_user.max(1)) as u64;
    let per_process = files.saturating_sub(FILES_KEPT).max(1);
    if config.processes == 0 {
        // A limit that cannot be read (0) says nothing: one process.
        config.processes = match files {
            0 => 1,
            _ => usize::try_from(sockets.div_ceil(per_process)).unwrap_or(usize::MAX),
        };
    }
    config.processes = config.processes.clamp(1, config.users);
    // The largest share is one user more than the even split.
    let largest_share =
        (config.users.div_ceil(config.processes) * config.sockets_per_user.max(1)) as u64;
    if files > 0 && largest_share > per_process {
        log::warn!(
            "{sockets} sockets over {} process(es) need more than one process's open-file \
             limit ({files}) each: give more --processes",
            config.processes
        );
    }
    let (targets, tokens) = prepare(&config)?;
    let sources = sources(&config, &targets)?;
    if config.processes > 1 {
        return workers::run(config, tokens);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.threads.max(1))
        .enable_all()
        .build()?;
    Ok(runtime.block_on(async move {
        let shape = Shape::of(&config);
        let baseline = Baseline::now(config.server_pid);
        let (received, live) = start::start(
            &config,
            &shape,
            targets,
            tokens,
            0,
            sources,
            baseline.started(),
        );
        gather(&config, &shape, baseline, received, &live, || {}).await
    }))
}

/// How long the load lasts and how many messages each user sends, from what was asked.
#[derive(Debug, Clone, Copy)]
struct Shape {
    /// From the first socket to the last one opened.
    ramp_time: Duration,
    /// How long the load lasts once every user has started.
    hold: Duration,
    /// Messages each user sends (`u64::MAX`: until the load ends).
    messages: u64,
    /// The test ends by time (idle, or messages without limit), not by a count of runs.
    by_time: bool,
}

impl Shape {
    fn of(config: &LoadConfig) -> Shape {
        let ramp_time = match config.ramp {
            r if r > 0.0 => {
                Duration::try_from_secs_f64((config.users * config.sockets_per_user) as f64 / r)
                    .unwrap_or(Duration::MAX)
            }
            _ => Duration::ZERO,
        };
        let hold = match (config.duration, config.scenario) {
            (Some(duration), _) => duration,
            (None, Scenario::Idle) => DEFAULT_IDLE,
            (None, _) => Duration::from_secs(10 * 365 * 24 * 3600),
        };
        let messages = match (config.messages, config.duration) {
            (Some(messages), _) => messages,
            (None, Some(_)) => u64::MAX,
            (None, None) => DEFAULT_MESSAGES,
        };
        Shape {
            ramp_time,
            hold,
            messages,
            by_time: config.scenario == Scenario::Idle || messages == u64::MAX,
        }
    }
}

/// The loopback source addresses to spread sockets over (`--source-addresses`; empty: the
/// system's choice).
fn sources(config: &LoadConfig, targets: &Targets) -> Result<Vec<IpAddr>, LoadError> {
    if config.source_addresses <= 1 {
        return Ok(Vec::new());
    }
    if !targets.are_loopback() {
        return Err(LoadError::BadSetting(
            "--source-addresses needs a server on a loopback address".to_owned(),
        ));
    }
    Ok((1..=config.source_addresses)
        .map(|n| IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
        .collect())
}

fn check(config: &LoadConfig) -> Result<(), LoadError> {
    let bad = |what: &str| Err(LoadError::BadSetting(what.to_owned()));
    if config.users == 0 {
        return bad("--users must be at least 1");
    }
    if config.sockets_per_user == 0 && config.scenario != Scenario::Churn {
        return bad("--sockets-per-user must be at least 1");
    }
    if !(config.ramp >= 0.0 && config.ramp.is_finite()) {
        return bad("--ramp must be a number of sockets per second, 0 for no pacing");
    }
    match config.rate {
        Some(rate) if !(rate > 0.0 && rate.is_finite()) => {
            return bad("--rate must be a number of messages per second above 0");
        }
        Some(_) if config.scenario != Scenario::Chat => {
            return bad("--rate applies to --scenario chat only");
        }
        Some(rate) if Duration::try_from_secs_f64(config.users as f64 / rate).is_err() => {
            return bad("--rate is too small: each user would wait longer than a lifetime");
        }
        _ => {}
    }
    Ok(())
}

/// Resolves the target and gets every user's name and token.
fn prepare(config: &LoadConfig) -> Result<(Targets, Vec<(String, String)>), LoadError> {
    let prefix = config.user_prefix.clone().unwrap_or_else(|| {
        let fresh = uuid::Uuid::new_v4().simple().to_string();
        format!("lt-{}", fresh.get(..8).unwrap_or(&fresh))
    });
    let names: Vec<String> = (0..config.users).map(|n| format!("{prefix}-{n}")).collect();
    // A token outlives the test.
    let ttl = config.duration.unwrap_or(DEFAULT_IDLE)
        + config.run_timeout
        + Duration::from_secs(24 * 3600);
    actix_web::rt::System::new().block_on(async move {
        let targets = Targets::resolve(&config.url).await?;
        let tokens = match &config.secret {
            Some(secret) => {
                // Issued as the server's own (`ENCLAVE_JWT_ISSUER`/`_AUDIENCE`), so a server
                // that requires them takes these.
                let auth = Auth::with_policy(
                    secret.as_bytes(),
                    &[],
                    std::env::var("ENCLAVE_JWT_ISSUER").ok().as_deref(),
                    std::env::var("ENCLAVE_JWT_AUDIENCE").ok().as_deref(),
                );
                let mut tokens = Vec::with_capacity(names.len());
                for name in names {
                    let user =
                        UserId::parse(&name).map_err(|e| LoadError::Tokens(e.to_string()))?;
                    let token = auth
                        .issue(&user, ttl)
                        .map_err(|e| LoadError::Tokens(e.to_string()))?;
                    tokens.push((name, token));
                }
                tokens
            }
            None => {
                let base = targets.first().http_base();
                let fetched: Vec<_> = futures_util::stream::iter(names)
                    .map(|name| {
                        let base = base.clone();
                        async move {
                            let token = crate::client::dev_token(&base, &name).await;
                            token.map(|token| (name, token))
                        }
                    })
                    .buffered(TOKEN_REQUESTS)
                    .collect()
                    .await;
                fetched.into_iter().collect::<Result<_, _>>().map_err(|e| {
                    LoadError::Tokens(format!(
                        "{e} (give --secret for a server with ENCLAVE_JWT_SECRET)"
                    ))
                })?
            }
        };
        Ok((targets, tokens))
    })
}
