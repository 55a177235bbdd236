//! A load test over several processes (`--processes`): one process may open only so many files
//! (its hard `RLIMIT_NOFILE`; 20,000 here), so a bigger load is split. The parent (`run`) gives each worker — this
//! executable again, as `enclave loadtest-worker` — its share of the users and their tokens on
//! its standard input; each worker (`serve_as_worker`) runs its users as a one-process test
//! does and writes what they report to its standard output, one JSON line each, with its
//! progress counters now and then. The parent feeds every report to its one tally, so the
//! histograms, the counts and the check across users (no id seen by two users) cover all
//! processes. A worker that dies or writes nonsense fails the test, and the parent then stops
//! the others by closing their standard input, which every worker watches: a worker whose
//! parent is gone stops too.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{
    mpsc::{self, UnboundedSender},
    oneshot,
};

use super::connect::Targets;
use super::gather::{Baseline, TICK, gather};
use super::report::{Report, Summary};
use super::user::Live;
use super::{LoadConfig, LoadError, Shape, check, raise_file_limit, sources, start};

/// The hidden command a worker process runs (`enclave loadtest-worker`).
pub const WORKER_COMMAND: &str = "loadtest-worker";

/// What a worker is given: the test, and its share of the users.
#[derive(Serialize, Deserialize)]
struct Task {
    config: LoadConfig,
    /// The whole test's number of the first user here.
    first_index: usize,
    /// This worker's users and their tokens.
    tokens: Vec<(String, String)>,
    /// How long ago the load started, when the task was written: every worker paces its ramp
    /// and ends its load on the parent's clock.
    since_start: Duration,
}

/// One line a worker writes.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    /// Something one of its users reported.
    Report(Report),
    /// Its progress counters now.
    Live(Counters),
    /// Every one of its users is done: its last line. A worker that ends without it failed.
    Done,
}

/// A worker's progress counters (`Live`), as it last wrote them.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
struct Counters {
    sockets: u64,
    runs: u64,
    events: u64,
    violations: u64,
}

impl Counters {
    fn of(live: &Live) -> Counters {
        Counters {
            sockets: live.sockets.load(Ordering::Relaxed),
            runs: live.runs.load(Ordering::Relaxed),
            events: live.events.load(Ordering::Relaxed),
            violations: live.violations.load(Ordering::Relaxed),
        }
    }

    /// Adds to `live` how far these counters moved from `before`: the parent's counters are the
    /// sums of its workers'. The peak of open sockets is the highest sum seen this way.
    fn add_change(&self, before: &Counters, live: &Live) {
        let moved = |counter: &AtomicU64, from: u64, to: u64| {
            if to >= from {
                counter.fetch_add(to - from, Ordering::Relaxed);
            } else {
                counter.fetch_sub(from - to, Ordering::Relaxed);
            }
        };
        moved(&live.sockets, before.sockets, self.sockets);
        moved(&live.runs, before.runs, self.runs);
        moved(&live.events, before.events, self.events);
        moved(&live.violations, before.violations, self.violations);
        let open = live.sockets.load(Ordering::Relaxed);
        live.sockets_peak.fetch_max(open, Ordering::Relaxed);
    }
}

/// Runs `config` over `config.processes` workers (re-running this executable, which must be
/// `enclave`), the users' `tokens` split between them in order; the summary of them all. With
/// several processes the peak of open sockets is sampled from the workers' counters (every
/// `TICK`).
pub(super) fn run(config: LoadConfig, tokens: Vec<(String, String)>) -> Result<Summary, LoadError> {
    let exe = std::env::current_exe()?;
    let processes = config.processes.clamp(1, tokens.len().max(1));
    let shape = Shape::of(&config);
    let baseline = Baseline::now(config.server_pid);
    let mut children = Vec::with_capacity(processes);
    let (even, extra) = (tokens.len() / processes, tokens.len() % processes);
    let mut tokens = tokens.into_iter();
    let mut first_index = 0;
    for n in 0..processes {
        let share: Vec<_> = tokens
            .by_ref()
            .take(even + usize::from(n < extra))
            .collect();
        let users = share.len();
        let task = Task {
            config: LoadConfig {
                threads: (config.threads / processes).max(1),
                processes: 1,
                secret: None,
                server_pid: None,
                progress: false,
                ..config.clone()
            },
            first_index,
            tokens: share,
            since_start: baseline.started().elapsed(),
        };
        first_index += users;
        match spawn(&exe, &task) {
            Ok(child) => children.push(child),
            Err(e) => {
                for (mut child, _, _) in children {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                return Err(e);
            }
        }
    }
    let live = Arc::new(Live::default());
    let stopping = Arc::new(AtomicBool::new(false));
    let (reports, received) = mpsc::unbounded_channel();
    let mut stdins = Vec::with_capacity(children.len());
    let relays: Vec<_> = children
        .into_iter()
        .enumerate()
        .map(|(n, (child, stdin, stdout))| {
            stdins.push(stdin);
            let relay = Relay {
                worker: n,
                reports: reports.clone(),
                live: Arc::clone(&live),
                stopping: Arc::clone(&stopping),
            };
            std::thread::spawn(move || relay.run(child, stdout))
        })
        .collect();
    drop(reports);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    // One worker failed: the test has failed, so the others stop.
    let stop = {
        let stopping = Arc::clone(&stopping);
        move || {
            stopping.store(true, Ordering::Relaxed);
            stdins.clear();
        }
    };
    let config = LoadConfig {
        processes,
        ..config
    };
    let summary = runtime.block_on(gather(&config, &shape, baseline, received, &live, stop));
    for relay in relays {
        let _ = relay.join();
    }
    Ok(summary)
}

/// Starts a worker on `task` (written as one line to its stdin, which stays open: closing it
/// stops the worker).
fn spawn(
    exe: &std::path::Path,
    task: &Task,
) -> Result<(Child, ChildStdin, ChildStdout), LoadError> {
    let mut child = Command::new(exe)
        .arg(WORKER_COMMAND)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let pipes = child.stdin.take().zip(child.stdout.take());
    let started = match pipes {
        Some((mut stdin, stdout)) => {
            let mut line = serde_json::to_vec(task).map_err(|e| LoadError::Runtime(e.into()))?;
            line.push(b'\n');
            stdin
                .write_all(&line)
                .map(|()| (stdin, stdout))
                .map_err(LoadError::from)
        }
        None => Err(LoadError::BadSetting("a worker without pipes".to_owned())),
    };
    match started {
        Ok((stdin, stdout)) => Ok((child, stdin, stdout)),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

/// Passes one worker's lines on to the gathering side.
struct Relay {
    /// The worker's number.
    worker: usize,
    reports: UnboundedSender<Report>,
    live: Arc<Live>,
    /// Set once the parent stops the workers: a worker that ends then was stopped, not failed.
    stopping: Arc<AtomicBool>,
}

impl Relay {
    /// Passes the worker's lines on until it exits: reports to the tally, counters to `live`.
    /// A worker that fails is reported, and its sockets no longer counted as open.
    fn run(self, mut child: Child, stdout: ChildStdout) {
        let mut last = Counters::default();
        let mut trouble = None;
        let mut done = false;
        for line in BufReader::new(stdout).lines() {
            let parsed = line
                .map_err(|e| e.to_string())
                .and_then(|line| serde_json::from_str::<Line>(&line).map_err(|e| e.to_string()));
            match parsed {
                Ok(Line::Report(report)) => {
                    let _ = self.reports.send(report);
                }
                Ok(Line::Live(now)) => {
                    now.add_change(&last, &self.live);
                    last = now;
                }
                Ok(Line::Done) => done = true,
                Err(e) => {
                    trouble = Some(format!("an unreadable line ({e})"));
                    let _ = child.kill();
                    break;
                }
            }
        }
        let trouble = match child.wait() {
            Ok(status) if status.success() && done => trouble,
            Ok(status) => trouble.or_else(|| Some(format!("ended unfinished ({status})"))),
            Err(e) => Some(format!("cannot be waited for ({e})")),
        };
        let Some(trouble) = trouble else { return };
        Counters { sockets: 0, ..last }.add_change(&last, &self.live);
        if !self.stopping.load(Ordering::Relaxed) {
            let what = format!("worker {}: {trouble}", self.worker);
            let _ = self.reports.send(Report::WorkerFailed(what));
        }
    }
}

/// The worker's side (`enclave loadtest-worker`): reads its task, one line on stdin, runs its
/// users and writes what they report to stdout until they are done, or until stdin closes
/// (the parent stopped it, or is gone).
pub fn serve_as_worker() -> Result<(), LoadError> {
    let mut line = String::new();
    let mut stdin = std::io::stdin().lock();
    stdin.read_line(&mut line)?;
    let task: Task = serde_json::from_str(&line)
        .map_err(|e| LoadError::BadSetting(format!("reading the worker's task: {e}")))?;
    drop(stdin);
    let (closed, stdin_closed) = oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = closed.send(());
    });
    let config = task.config;
    check(&config)?;
    let files = raise_file_limit();
    let sockets = (task.tokens.len() * config.sockets_per_user) as u64;
    if sockets + super::FILES_KEPT > files {
        log::warn!("a worker's {sockets} sockets need more than its open-file limit ({files})");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let targets = Targets::resolve(&config.url).await?;
        let sources = sources(&config, &targets)?;
        let shape = Shape::of(&config);
        let (mut received, live) = start::start(
            &config,
            &shape,
            targets,
            task.tokens,
            task.first_index,
            sources,
            Instant::now()
                .checked_sub(task.since_start)
                .unwrap_or_else(Instant::now),
        );
        let mut out = BufWriter::new(std::io::stdout().lock());
        let mut tick = tokio::time::interval(TICK);
        let mut stdin_closed = std::pin::pin!(stdin_closed);
        loop {
            tokio::select! {
                _ = &mut stdin_closed => {
                    return Err(LoadError::BadSetting("stopped: the load test's parent closed \
                        this worker's input".to_owned()));
                }
                report = received.recv() => match report {
                    Some(report) => write_line(&mut out, &Line::Report(report))?,
                    None => break,
                },
                _ = tick.tick() => {
                    write_line(&mut out, &Line::Live(Counters::of(&live)))?;
                    out.flush()?;
                }
            }
        }
        write_line(&mut out, &Line::Live(Counters::of(&live)))?;
        write_line(&mut out, &Line::Done)?;
        out.flush()?;
        Ok(())
    })
}

/// Writes one line to the parent. A pipe write may wait for the parent to read; meanwhile the
/// users' reports wait in their (unbounded) channel.
fn write_line(out: &mut impl Write, line: &impl Serialize) -> Result<(), LoadError> {
    serde_json::to_writer(&mut *out, line).map_err(|e| LoadError::Runtime(e.into()))?;
    out.write_all(b"\n")?;
    Ok(())
}
