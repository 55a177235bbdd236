//! `enclave loadtest`: the load client users run against their own deployment. It loads and
//! verifies at once: `run` starts the simulated users (`user/`, one task each, paced by the
//! ramp), shows progress, and returns the `Summary` the tally (`report.rs`) made of what they
//! saw; `verify/` is the verification each user runs on every frame it receives.

mod connect;
pub mod frame;
pub mod process;
pub mod report;
mod user;
pub mod verify;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc;

use crate::auth::Auth;
use crate::context::UserId;

pub use report::Summary;

use connect::Target;
use report::{ServerUse, Tally};
use user::{Live, Plan};

/// How long an idle test holds its sockets when no duration is given.
const DEFAULT_IDLE: Duration = Duration::from_secs(60);

/// Messages each user sends when neither `--messages` nor `--duration` is given.
const DEFAULT_MESSAGES: u64 = 5;

/// Dev tokens fetched at once.
const TOKEN_REQUESTS: usize = 16;

/// What the simulated users do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
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
#[derive(Debug, Clone)]
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
pub fn run(config: LoadConfig) -> Result<Summary, LoadError> {
    check(&config)?;
    let files = raise_file_limit();
    let sockets = config.users.saturating_mul(config.sockets_per_user) as u64;
    if sockets + 64 > files {
        log::warn!(
            "{sockets} sockets need more than this process's open-file limit ({files}); \
             run several load clients"
        );
    }
    let (target, tokens) = prepare(&config)?;
    let sources = if config.source_addresses > 1 {
        if !target.is_loopback() {
            return Err(LoadError::BadSetting(
                "--source-addresses needs a server on a loopback address".to_owned(),
            ));
        }
        (1..=config.source_addresses)
            .map(|n| IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
            .collect()
    } else {
        Vec::new()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.threads.max(1))
        .enable_all()
        .build()?;
    Ok(runtime.block_on(load(config, target, tokens, sources)))
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
fn prepare(config: &LoadConfig) -> Result<(Target, Vec<(String, String)>), LoadError> {
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
        let target = Target::resolve(&config.url).await?;
        let tokens = match &config.secret {
            Some(secret) => {
                let auth = Auth::new(secret.as_bytes());
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
                let base = target.http_base();
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
        Ok((target, tokens))
    })
}

/// The load itself, on the client's runtime.
async fn load(
    config: LoadConfig,
    target: Target,
    tokens: Vec<(String, String)>,
    sources: Vec<IpAddr>,
) -> Summary {
    let pid = config.server_pid.map(|pid| pid.to_string());
    let rss_before = pid.as_deref().and_then(process::rss_kib).unwrap_or(0);
    let cpu_before = pid.as_deref().and_then(process::cpu_seconds).unwrap_or(0.0);
    let client_cpu_before = process::cpu_seconds("self").unwrap_or(0.0);
    let started = Instant::now();
    let ramp_time = match config.ramp {
        r if r > 0.0 => {
            Duration::from_secs_f64((config.users * config.sockets_per_user) as f64 / r)
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
    let (reports, mut received) = mpsc::unbounded_channel();
    let live = Arc::new(Live::default());
    let plan = Arc::new(Plan {
        target,
        scenario: config.scenario,
        users: config.users,
        sockets_per_user: config.sockets_per_user,
        messages: if config.scenario == Scenario::Idle {
            0
        } else {
            messages
        },
        content: config.content.clone(),
        run_tag: uuid::Uuid::new_v4().simple().to_string(),
        load_until: started + ramp_time + hold,
        run_timeout: config.run_timeout,
        send_every: config
            .rate
            .and_then(|rate| Duration::try_from_secs_f64(config.users as f64 / rate).ok()),
        sources,
        reports,
        live: Arc::clone(&live),
    });
    let by_time = config.scenario == Scenario::Idle || plan.messages == u64::MAX;
    let bar = progress_bar(&config, plan.messages, hold, by_time);
    let users = tokio::spawn(start_users(
        Arc::clone(&plan),
        tokens,
        config.ramp,
        config.sockets_per_user,
    ));
    drop(plan);
    let mut tally = Tally::default();
    let mut rss_peak = rss_before;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            report = received.recv() => match report {
                Some(report) => tally.add(report),
                None => break,
            },
            _ = tick.tick() => {
                if let Some(rss) = pid.as_deref().and_then(process::rss_kib) {
                    rss_peak = rss_peak.max(rss);
                }
                show(&bar, &live, by_time, started, tally.foreign());
            }
        }
    }
    // Every sender is gone, so every user is done.
    let _ = users.await;
    bar.finish_and_clear();
    let mut summary = tally.finish(started.elapsed());
    summary.scenario = format!("{:?}", config.scenario).to_lowercase();
    summary.users = config.users;
    summary.sockets_per_user = config.sockets_per_user;
    summary.sockets_peak = live.sockets_peak.load(Ordering::Relaxed);
    summary.client_cpu_seconds = process::cpu_seconds("self").unwrap_or(0.0) - client_cpu_before;
    if let Some(pid) = pid.as_deref() {
        let cpu_seconds = process::cpu_seconds(pid).unwrap_or(cpu_before) - cpu_before;
        let per_socket = match summary.sockets_peak {
            0 => 0.0,
            n => rss_peak.saturating_sub(rss_before) as f64 / n as f64,
        };
        summary.server = Some(ServerUse {
            rss_before_kib: rss_before,
            rss_peak_kib: rss_peak,
            rss_after_kib: process::rss_kib(pid).unwrap_or(0),
            rss_per_socket_kib: per_socket,
            cpu_seconds,
            cpu_micros_per_event: match summary.events {
                0 => 0.0,
                n => cpu_seconds * 1e6 / n as f64,
            },
        });
    }
    summary
}

/// Starts one task per user, `ramp` sockets per second; returns once every user is done.
async fn start_users(plan: Arc<Plan>, tokens: Vec<(String, String)>, ramp: f64, sockets: usize) {
    let started = tokio::time::Instant::now();
    let mut users = tokio::task::JoinSet::new();
    for (index, (name, token)) in tokens.into_iter().enumerate() {
        if ramp > 0.0 {
            let at = Duration::from_secs_f64((index * sockets) as f64 / ramp);
            tokio::time::sleep_until(started + at).await;
        }
        users.spawn(user::simulate(Arc::clone(&plan), index, name, token));
    }
    drop(plan);
    while users.join_next().await.is_some() {}
}

/// A bar of runs ended out of all to run, or of seconds (`by_time`) when that is unknown.
fn progress_bar(config: &LoadConfig, messages: u64, hold: Duration, by_time: bool) -> ProgressBar {
    let length = if by_time {
        hold.as_secs()
    } else {
        (config.users as u64).saturating_mul(messages)
    };
    let target = if config.progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(length), target);
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Updates the bar; `foreign` counts the violations across users found so far.
fn show(bar: &ProgressBar, live: &Live, by_time: bool, started: Instant, foreign: usize) {
    let runs = live.runs.load(Ordering::Relaxed);
    bar.set_position(if by_time {
        started.elapsed().as_secs()
    } else {
        runs
    });
    let violations = foreign as u64 + live.violations.load(Ordering::Relaxed);
    bar.set_message(format!(
        "{} sockets · {runs} runs · {} events · {violations} violations",
        live.sockets.load(Ordering::Relaxed),
        live.events.load(Ordering::Relaxed),
    ));
}
