//! What the simulated users tell the tally (`Report`), the tally itself (`Tally`: histograms,
//! counts, the check across users), and what a load test ends with (`Summary`: the table
//! printed at the end and the `--json` file). The tally is owned by one task; users send to it.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::verify::{Verifier, Violation};

/// The most violations a summary lists (all are counted).
const LISTED_VIOLATIONS: usize = 100;

/// Something a simulated user observed (or, with several processes, the parent of a worker
/// that failed).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum Report {
    /// A socket connected.
    Connected,
    /// A socket could not connect, and why.
    ConnectFailed(String),
    /// The server closed a socket the user meant to keep (close code or reason).
    Dropped(String),
    /// The user reconnected a dropped socket and resumed.
    Reconnected,
    /// Event latencies (server `ts` to receipt), microseconds.
    Latencies(Vec<u64>),
    /// Sequenced events received, on all of the user's sockets.
    Events(u64),
    /// A run ended after `elapsed` (from sending its message to its terminal event), as `outcome`
    /// (`completed`, `failed:CODE`, `cancelled`, `interrupted`).
    RunEnded { elapsed: Duration, outcome: String },
    /// A run did not end in time.
    RunTimedOut,
    /// The server answered an `error` frame with `code`.
    Error(String),
    /// The server refused a message (an `error` naming its `client_msg_id`) with `code`.
    Refused(String),
    /// A message could not be sent (its socket did not take it in time).
    Unsent,
    /// `user` saw these run and thread ids for the first time.
    Ids { user: String, ids: Vec<String> },
    /// The user is done; what its verification found.
    Finished(Vec<Violation>),
    /// A worker process died or wrote what cannot be read (what happened).
    WorkerFailed(String),
}

/// Nearest-rank quantiles of one histogram, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Quantiles {
    /// Samples recorded.
    pub count: u64,
    /// The median.
    pub p50: f64,
    /// The 90th percentile.
    pub p90: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The 99.9th percentile.
    pub p99_9: f64,
    /// The largest sample.
    pub max: f64,
}

impl Quantiles {
    fn of(histogram: &Histogram<u64>) -> Quantiles {
        let ms = |micros: u64| micros as f64 / 1000.0;
        Quantiles {
            count: histogram.len(),
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p99_9: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        }
    }
}

/// What the server process used, read from `/proc` when its pid was given.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerUse {
    /// RSS before the load, KiB.
    pub rss_before_kib: u64,
    /// The highest RSS sampled during the load, KiB.
    pub rss_peak_kib: u64,
    /// RSS at the end, KiB.
    pub rss_after_kib: u64,
    /// (peak − before) / the most sockets open at once, KiB.
    pub rss_per_socket_kib: f64,
    /// CPU seconds (user + system) the server used during the load.
    pub cpu_seconds: f64,
    /// Server CPU microseconds per event delivered.
    pub cpu_micros_per_event: f64,
}

/// The result of a load test.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// What the users did.
    pub scenario: String,
    /// Simulated users.
    pub users: usize,
    /// Sockets each user held.
    pub sockets_per_user: usize,
    /// Processes the users were spread over.
    pub processes: usize,
    /// Worker processes that died or wrote what could not be read (by what happened in
    /// `errors`).
    pub workers_failed: u64,
    /// Seconds from the first connection to the last user done.
    pub elapsed_seconds: f64,
    /// Sockets that connected (reconnects included).
    pub connections_made: u64,
    /// Sockets that could not connect.
    pub connections_failed: u64,
    /// Failed connections by reason.
    pub connect_failures: BTreeMap<String, u64>,
    /// The most sockets open at once (with several processes, sampled from their counters).
    pub sockets_peak: u64,
    /// Sockets the server closed, by close code or reason.
    pub dropped: BTreeMap<String, u64>,
    /// Dropped sockets reconnected, resuming where they were.
    pub reconnects: u64,
    /// Runs that ended `run_completed`.
    pub runs_completed: u64,
    /// Runs that ended `run_failed` (by code in `errors`).
    pub runs_failed: u64,
    /// Runs that ended `run_cancelled`.
    pub runs_cancelled: u64,
    /// Runs that ended `run_interrupted`.
    pub runs_interrupted: u64,
    /// Runs not ended within the run timeout.
    pub runs_timed_out: u64,
    /// Messages the server refused (`rate_limited`, `unavailable`, …): they started no run.
    pub messages_refused: u64,
    /// Messages that could not be sent: the socket did not take them in time.
    pub messages_unsent: u64,
    /// Runs completed per second of `elapsed_seconds`.
    pub runs_per_second: f64,
    /// Sequenced events received on all sockets.
    pub events: u64,
    /// `events` per second of `elapsed_seconds`.
    pub events_per_second: f64,
    /// Server `ts` to receipt; the server stamps whole milliseconds, so add up to 1 ms.
    pub event_latency_ms: Quantiles,
    /// From sending a message to its run's terminal event.
    pub run_time_ms: Quantiles,
    /// `error` frames by code, failed runs as `run_failed:CODE`, and failed worker processes
    /// as `worker N: what happened`.
    pub errors: BTreeMap<String, u64>,
    /// Every violation found (only the first are listed).
    pub violations_found: usize,
    /// The first violations found.
    pub violations: Vec<Violation>,
    /// The server process's memory and CPU, when `--server-pid` was given.
    pub server: Option<ServerUse>,
    /// The load client's CPU seconds, its worker processes' included.
    pub client_cpu_seconds: f64,
}

impl Summary {
    /// Whether the test passed: no violation, no timed-out run, no failed connection, no
    /// failed worker, and every message became a run that completed (none unsent, refused or
    /// failed).
    pub fn passed(&self) -> bool {
        self.violations_found == 0
            && self.runs_timed_out == 0
            && self.connections_failed == 0
            && self.messages_refused == 0
            && self.messages_unsent == 0
            && self.runs_failed == 0
            && self.workers_failed == 0
    }
}

/// The tally of everything users report, owned by one task.
pub struct Tally {
    event_latency: Histogram<u64>,
    run_time: Histogram<u64>,
    verifier: Verifier,
    violations: Vec<Violation>,
    summary: Summary,
}

impl Default for Tally {
    fn default() -> Tally {
        // Microseconds from 1 µs to an hour, three significant digits.
        let histogram =
            || Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("the bounds are valid");
        Tally {
            event_latency: histogram(),
            run_time: histogram(),
            verifier: Verifier::default(),
            violations: Vec::new(),
            summary: Summary::default(),
        }
    }
}

impl Tally {
    /// Counts one report.
    pub fn add(&mut self, report: Report) {
        let s = &mut self.summary;
        match report {
            Report::Connected => s.connections_made += 1,
            Report::ConnectFailed(reason) => {
                s.connections_failed += 1;
                *s.connect_failures.entry(reason).or_default() += 1;
            }
            Report::Dropped(reason) => *s.dropped.entry(reason).or_default() += 1,
            Report::Reconnected => s.reconnects += 1,
            Report::Latencies(micros) => {
                for value in micros {
                    self.event_latency.saturating_record(value.max(1));
                }
            }
            Report::Events(n) => s.events += n,
            Report::RunEnded { elapsed, outcome } => {
                let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
                self.run_time.saturating_record(micros.max(1));
                match outcome.as_str() {
                    "completed" => s.runs_completed += 1,
                    "cancelled" => s.runs_cancelled += 1,
                    "interrupted" => s.runs_interrupted += 1,
                    _ => {
                        s.runs_failed += 1;
                        *s.errors.entry(format!("run_{outcome}")).or_default() += 1;
                    }
                }
            }
            Report::RunTimedOut => s.runs_timed_out += 1,
            Report::Error(code) => *s.errors.entry(code).or_default() += 1,
            Report::Unsent => s.messages_unsent += 1,
            Report::Refused(code) => {
                s.messages_refused += 1;
                *s.errors.entry(code).or_default() += 1;
            }
            Report::Ids { user, ids } => self.verifier.ids_seen(&user, ids),
            Report::Finished(found) => self.violations.extend(found),
            Report::WorkerFailed(what) => {
                s.workers_failed += 1;
                *s.errors.entry(what).or_default() += 1;
            }
        }
    }

    /// Violations across users found so far (each user counts its own in `Live`).
    pub fn foreign(&self) -> usize {
        self.verifier.violations().len()
    }

    /// The summary, once every user is done.
    pub fn finish(mut self, elapsed: Duration) -> Summary {
        let mut violations = self.violations;
        violations.extend(self.verifier.finish());
        let s = &mut self.summary;
        let seconds = elapsed.as_secs_f64().max(1e-9);
        s.elapsed_seconds = elapsed.as_secs_f64();
        s.runs_per_second = s.runs_completed as f64 / seconds;
        s.events_per_second = s.events as f64 / seconds;
        s.event_latency_ms = Quantiles::of(&self.event_latency);
        s.run_time_ms = Quantiles::of(&self.run_time);
        s.violations_found = violations.len();
        violations.truncate(LISTED_VIOLATIONS);
        s.violations = violations;
        self.summary
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q = |q: &Quantiles| {
            format!(
                "p50 {:.1} · p90 {:.1} · p99 {:.1} · p99.9 {:.1} · max {:.1} ms ({} samples)",
                q.p50, q.p90, q.p99, q.p99_9, q.max, q.count
            )
        };
        let counts = |map: &BTreeMap<String, u64>| {
            if map.is_empty() {
                return "none".to_owned();
            }
            map.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(
            f,
            "scenario {}: {} users × {} sockets, {:.1} s, {} process(es)",
            self.scenario, self.users, self.sockets_per_user, self.elapsed_seconds, self.processes
        )?;
        if self.workers_failed > 0 {
            writeln!(f, "  workers      {} failed", self.workers_failed)?;
        }
        writeln!(
            f,
            "  connections  {} made, {} failed ({}), peak {} open, {} reconnects",
            self.connections_made,
            self.connections_failed,
            counts(&self.connect_failures),
            self.sockets_peak,
            self.reconnects
        )?;
        writeln!(f, "  dropped      {}", counts(&self.dropped))?;
        writeln!(
            f,
            "  runs         {} completed, {} failed, {} cancelled, {} interrupted, {} timed out, {} refused, {} unsent · {:.0} completed/s",
            self.runs_completed,
            self.runs_failed,
            self.runs_cancelled,
            self.runs_interrupted,
            self.runs_timed_out,
            self.messages_refused,
            self.messages_unsent,
            self.runs_per_second
        )?;
        writeln!(
            f,
            "  events       {} received · {:.0} events/s",
            self.events, self.events_per_second
        )?;
        writeln!(f, "  event latency {}", q(&self.event_latency_ms))?;
        writeln!(f, "  run time     {}", q(&self.run_time_ms))?;
        writeln!(f, "  errors       {}", counts(&self.errors))?;
        if let Some(server) = &self.server {
            writeln!(
                f,
                "  server       RSS {} → peak {} → {} KiB ({:.1} KiB per socket) · CPU {:.2} s ({:.1} µs per event)",
                server.rss_before_kib,
                server.rss_peak_kib,
                server.rss_after_kib,
                server.rss_per_socket_kib,
                server.cpu_seconds,
                server.cpu_micros_per_event
            )?;
        }
        writeln!(f, "  client CPU   {:.2} s", self.client_cpu_seconds)?;
        writeln!(f, "  violations   {}", self.violations_found)?;
        for violation in &self.violations {
            writeln!(f, "    {violation:?}")?;
        }
        let verdict = if self.passed() { "PASSED" } else { "FAILED" };
        write!(f, "{verdict}")
    }
}
