//! The gathering side of a load test: `gather` feeds what the users report — from tasks in this
//! process or from worker processes (`workers.rs`) — to the tally, keeps the progress bar and
//! the server's process sampled while they run, and makes the `Summary` once every user is
//! done. It owns the tally; users only send to it.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc::UnboundedReceiver;

use super::report::{Report, ServerUse, Summary, Tally};
use super::user::Live;
use super::{LoadConfig, Shape, process};

/// How often the progress bar and the server's RSS are refreshed.
pub(super) const TICK: Duration = Duration::from_millis(250);

/// The server's and this client's use before the load, to subtract at the end.
#[derive(Debug, Clone, Copy)]
pub(super) struct Baseline {
    rss_kib: u64,
    server_cpu_seconds: f64,
    client_cpu_seconds: f64,
    started: Instant,
}

impl Baseline {
    /// Reads the server's (`server_pid`) and this client's use now; the load starts now.
    pub(super) fn now(server_pid: Option<u32>) -> Baseline {
        let pid = server_pid.map(|pid| pid.to_string());
        Baseline {
            rss_kib: pid.as_deref().and_then(process::rss_kib).unwrap_or(0),
            server_cpu_seconds: pid.as_deref().and_then(process::cpu_seconds).unwrap_or(0.0),
            client_cpu_seconds: process::own_and_children_cpu_seconds().unwrap_or(0.0),
            started: Instant::now(),
        }
    }

    /// When the load started.
    pub(super) fn started(&self) -> Instant {
        self.started
    }
}

/// Tallies every report until every sender is gone, then summarises; calls `stop_workers` once
/// a worker process failed.
pub(super) async fn gather(
    config: &LoadConfig,
    shape: &Shape,
    baseline: Baseline,
    mut received: UnboundedReceiver<Report>,
    live: &Live,
    mut stop_workers: impl FnMut(),
) -> Summary {
    let pid = config.server_pid.map(|pid| pid.to_string());
    let bar = progress_bar(config, shape);
    let mut tally = Tally::default();
    let mut rss_peak = baseline.rss_kib;
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            report = received.recv() => match report {
                Some(report) => {
                    if matches!(report, Report::WorkerFailed(_)) {
                        stop_workers();
                    }
                    tally.add(report);
                }
                None => break,
            },
            _ = tick.tick() => {
                if let Some(rss) = pid.as_deref().and_then(process::rss_kib) {
                    rss_peak = rss_peak.max(rss);
                }
                show(&bar, live, shape.by_time, baseline.started, tally.foreign());
            }
        }
    }
    bar.finish_and_clear();
    let mut summary = tally.finish(baseline.started.elapsed());
    summary.scenario = format!("{:?}", config.scenario).to_lowercase();
    summary.users = config.users;
    summary.sockets_per_user = config.sockets_per_user;
    summary.processes = config.processes.max(1);
    summary.sockets_peak = live.sockets_peak.load(Ordering::Relaxed);
    // This process's time includes its workers', once they have been waited for.
    summary.client_cpu_seconds =
        process::own_and_children_cpu_seconds().unwrap_or(0.0) - baseline.client_cpu_seconds;
    if let Some(pid) = pid.as_deref() {
        let cpu_seconds = process::cpu_seconds(pid).unwrap_or(baseline.server_cpu_seconds)
            - baseline.server_cpu_seconds;
        let per_socket = match summary.sockets_peak {
            0 => 0.0,
            n => rss_peak.saturating_sub(baseline.rss_kib) as f64 / n as f64,
        };
        summary.server = Some(ServerUse {
            rss_before_kib: baseline.rss_kib,
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

/// A bar of runs ended out of all to run, or of seconds (`by_time`) when that is unknown.
fn progress_bar(config: &LoadConfig, shape: &Shape) -> ProgressBar {
    let length = if shape.by_time {
        shape.hold.as_secs()
    } else {
        (config.users as u64).saturating_mul(shape.messages)
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
