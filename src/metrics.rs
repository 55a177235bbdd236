//! `Metrics`: the Prometheus series enclave exports on `GET /metrics`. Built once and shared
//! read-only as `Arc<Metrics>`; every series is an atomic counter, gauge or histogram, the
//! only kind of shared mutable state the runtime allows.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Every series `GET /metrics` exports, handed to the actors that count them.
pub struct Metrics {
    registry: Registry,
    /// Sessions in memory (passivated ones are not).
    pub sessions: IntGauge,
    /// Sessions stopped for being idle.
    pub passivations: IntCounter,
    /// Open WebSocket connections.
    pub sockets: IntGauge,
    /// Runs ended, by outcome (`completed`, `failed`, `cancelled`, `interrupted`).
    pub runs: IntCounterVec,
    /// Agent restarts, by agent.
    pub restarts: IntCounterVec,
    /// Agents that ended on their static fallback, by agent.
    pub fallbacks: IntCounterVec,
    /// Seconds from handing a batch to the writer to its commit.
    pub persist_seconds: Histogram,
    /// Sockets closed for not keeping up (4008).
    pub slow_sockets: IntCounter,
    /// Database work that panicked and was survived, by thread (`reader`, `writer`).
    pub db_panics: IntCounterVec,
    /// Sessions of users this node owns (`store/leases.rs`).
    pub owned_sessions: IntGauge,
    /// Sessions following a user another node owns.
    pub followed_sessions: IntGauge,
    /// Renewals of this node's lease on the database.
    pub lease_renewals: IntCounter,
    /// Users this node took over from a node whose lease was gone.
    pub failovers: IntCounter,
    /// Sessions stopped because another node had claimed their user since (a batch refused,
    /// or the claim seen at a lease check).
    pub fenced_sessions: IntCounter,
    /// Sockets closed at once because their user held the most allowed (4029).
    pub sockets_over_cap: IntCounter,
    /// `resume`, `cancel_run` and `approval` frames refused `rate_limited` without a read.
    pub read_frames_limited: IntCounter,
    /// Write batches lost after their retries (their runs end `storage_unavailable`).
    pub lost_batches: IntCounter,
    /// Runs waiting for a slot (the user's or the server's).
    pub queued_runs: IntGauge,
    /// Seconds from an event's creation to its fan-out (stored, then sent).
    pub delivery_seconds: Histogram,
    /// Events emitted by runs and not yet taken by their session (actix shows no mailbox
    /// depth, so the senders and the session count them).
    pub events_in_flight: IntGauge,
    /// Event batches handed to the writer and not yet answered.
    pub batches_writing: IntGauge,
    /// Bytes sessions have queued for sockets that their connections have not yet taken
    /// (each socket at most 16 × `ENCLAVE_SOCKET_OUTBOUND_BYTES`).
    pub socket_queued_bytes: IntGauge,
    /// TCP connections accepted, by whether `TCP_NODELAY` is set on them (read back from the
    /// socket).
    pub tcp_connections: IntCounterVec,
    /// Run supervisors alive (started and not yet dropped): back to 0 once every session has
    /// stopped, whatever stopped it.
    pub supervisors_live: IntGauge,
    /// Agent attempts alive (`AgentRunner`s started and not yet dropped).
    pub agents_live: IntGauge,
    /// Event batches stored by each commit of a writer (group commit: every batch waiting,
    /// of any user, in one transaction).
    pub batches_per_commit: Histogram,
    /// Groups whose transaction failed and were stored batch by batch instead.
    pub group_retries: IntCounter,
    /// Violations of the page's Content-Security-Policy that browsers reported.
    pub csp_reports: IntCounter,
    /// Uploads being read, parsed or stored now (under the server-wide budget).
    pub uploads_in_flight: IntGauge,
    /// Requests refused before their route, by why (`origin`, `connection_rate`,
    /// `upgrade_rate`, `sockets_full`, `uploads_full`).
    pub edge_refusals: IntCounterVec,
}

impl Metrics {
    /// A fresh registry (prefix `enclave_`) with every series registered at 0.
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("enclave".into()), None).expect("a fixed, valid prefix");
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("a valid metric name");
            registry
                .register(Box::new(g.clone()))
                .expect("registered once");
            g
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("a valid metric name");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            c
        };
        let counter_vec = |name: &str, help: &str, label: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &[label]).expect("a valid name");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            c
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                .expect("valid buckets");
            registry
                .register(Box::new(h.clone()))
                .expect("registered once");
            h
        };
        let persist_seconds = histogram(
            "event_persist_seconds",
            "write batch commit latency",
            vec![
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ],
        );
        let delivery_seconds = histogram(
            "event_delivery_seconds",
            "event creation to fan-out",
            vec![0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0],
        );
        let batches_per_commit = histogram(
            "write_batches_per_commit",
            "event batches (of any users) stored by one commit",
            vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0],
        );
        Self {
            sessions: gauge("sessions_active", "user sessions in memory"),
            passivations: counter("sessions_passivated_total", "sessions stopped when idle"),
            sockets: gauge("sockets_open", "open WebSocket connections"),
            runs: counter_vec("runs_total", "runs ended, by outcome", "outcome"),
            restarts: counter_vec("agent_restarts_total", "agent restarts", "agent"),
            fallbacks: counter_vec("agent_fallbacks_total", "agent fallbacks", "agent"),
            persist_seconds,
            slow_sockets: counter("slow_sockets_closed_total", "sockets closed with 4008"),
            db_panics: counter_vec(
                "db_panics_total",
                "database work that panicked, survived by its thread",
                "thread",
            ),
            sockets_over_cap: counter(
                "sockets_over_user_cap_total",
                "sockets closed with 4029: their user held the most allowed",
            ),
            read_frames_limited: counter(
                "read_frames_rate_limited_total",
                "resume, cancel_run and approval frames refused rate_limited",
            ),
            csp_reports: counter(
                "csp_reports_total",
                "violations of the page's policy that browsers reported",
            ),
            uploads_in_flight: gauge("uploads_in_flight", "uploads being read or stored"),
            edge_refusals: counter_vec(
                "edge_refusals_total",
                "requests refused before their route, by why",
                "why",
            ),
            lost_batches: counter(
                "write_batches_lost_total",
                "write batches lost after retries",
            ),
            queued_runs: gauge("runs_queued", "runs waiting for a slot"),
            delivery_seconds,
            events_in_flight: gauge(
                "session_events_in_flight",
                "events on their way to a session",
            ),
            batches_writing: gauge(
                "write_batches_in_flight",
                "event batches with the writer, not yet committed or failed",
            ),
            socket_queued_bytes: gauge(
                "socket_queued_bytes",
                "bytes queued for sockets and not yet taken by their connections",
            ),
            tcp_connections: counter_vec(
                "tcp_connections_total",
                "TCP connections accepted, by TCP_NODELAY",
                "nodelay",
            ),
            supervisors_live: gauge("supervisors_live", "run supervisors alive"),
            agents_live: gauge("agents_live", "agent attempts alive"),
            batches_per_commit,
            group_retries: counter(
                "write_groups_retried_total",
                "groups of batches whose commit failed, then stored batch by batch",
            ),
            owned_sessions: gauge(
                "sessions_owned",
                "sessions of users this node owns (holds the lease of)",
            ),
            followed_sessions: gauge(
                "sessions_following",
                "sessions of users another node owns, relaying this node's sockets",
            ),
            lease_renewals: counter("lease_renewals_total", "renewals of this node's lease"),
            failovers: counter(
                "failovers_total",
                "users taken over from a node whose lease was gone",
            ),
            fenced_sessions: counter(
                "fenced_sessions_total",
                "sessions stopped unwritten: another node had claimed their user since",
            ),
            registry,
        }
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Counts one live thing on a gauge from its creation until it is dropped — also when its
/// owner dies by a panic, which skips actix's `stopped`.
pub struct LiveCount(IntGauge);

impl LiveCount {
    /// Counts one more on `gauge` until the returned value is dropped.
    pub fn new(gauge: &IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for LiveCount {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
