//! One simulated user of a load test: its sockets, the scenario it plays on them, and its
//! verification. Each user is one task that owns all of this, so users share nothing but the
//! channel to the tally and a few progress counters. A socket the server drops is reconnected
//! with `?after_seq=` and resumes, as a real client would.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::stream::{BoxStream, SelectAll, SplitSink};
use tokio::sync::mpsc::UnboundedSender;
use tokio_tungstenite::tungstenite::Message;

use super::Scenario;
use super::connect::{Socket, Targets};
use super::report::Report;
use super::verify::UserVerifier;

mod frames;
mod sockets;

/// How often an idle socket sends a `ping` frame.
const PING_EVERY: Duration = Duration::from_secs(20);

/// How many times a user reconnects sockets the server dropped.
const RECONNECTS: u32 = 5;

/// Latency samples a user collects before sending them to the tally.
const LATENCY_BATCH: usize = 256;

/// How long a user waits at the end for all its sockets to have every event.
const CATCH_UP: Duration = Duration::from_secs(10);

/// The longest a frame may take to send before its socket counts as stuck.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The pause after a refused message before the next.
const REFUSED_PAUSE: Duration = Duration::from_millis(100);

/// What every user of one load test shares (read-only, and counters).
pub struct Plan {
    /// The servers (one, or a cluster's nodes).
    pub targets: Targets,
    /// What each user does.
    pub scenario: Scenario,
    /// Simulated users.
    pub users: usize,
    /// Sockets each user holds.
    pub sockets_per_user: usize,
    /// Messages each user sends (chat, burst, churn).
    pub messages: u64,
    /// The message each run starts with.
    pub content: String,
    /// Unique to this test run, in every `client_msg_id`.
    pub run_tag: String,
    /// No new run starts after this; idle users hold their sockets until then.
    pub load_until: Instant,
    /// A run not ended this long after its message is timed out.
    pub run_timeout: Duration,
    /// Chat open loop: each user sends a message every this long, whether or not its last run
    /// has ended (`--rate`); `None`, each after the last run ended.
    pub send_every: Option<Duration>,
    /// Source addresses to spread sockets over (empty: the system's choice).
    pub sources: Vec<IpAddr>,
    /// Where users report.
    pub reports: UnboundedSender<Report>,
    /// Counters for the progress line.
    pub live: Arc<Live>,
}

/// Counters the progress line reads while users run.
#[derive(Debug, Default)]
pub struct Live {
    /// Sockets open now.
    pub sockets: AtomicU64,
    /// The most sockets open at once.
    pub sockets_peak: AtomicU64,
    /// Runs ended (or timed out).
    pub runs: AtomicU64,
    /// Sequenced events received.
    pub events: AtomicU64,
    /// Violations found.
    pub violations: AtomicU64,
}

/// Something one socket yielded: a message, or its end (with why).
enum Incoming {
    Message(Message),
    Ended(String),
}

/// One simulated user.
struct User {
    name: String,
    token: String,
    /// The user's number, spreading its sockets over source addresses.
    index: usize,
    plan: Arc<Plan>,
    verifier: UserVerifier,
    /// Every open socket's incoming frames, tagged with the socket's id.
    incoming: SelectAll<BoxStream<'static, (u64, Incoming)>>,
    /// Every open socket's sending half.
    outgoing: BTreeMap<u64, SplitSink<Socket, Message>>,
    /// Sockets opened without a replay, registered with the verifier on `connected`.
    awaiting_connected: HashSet<u64>,
    /// Sockets closed on purpose; their end is not a drop.
    closing: HashSet<u64>,
    /// The close code each socket got, if any.
    close_codes: HashMap<u64, String>,
    next_socket: u64,
    reconnects_left: u32,
    /// Messages sent and not yet accepted, by `client_msg_id`, with when they were sent.
    pending: HashMap<String, Instant>,
    /// The socket each message was (last) sent on.
    sent_on: HashMap<String, u64>,
    /// Messages to send again on a socket that replaced a dropped one, once its replay is done.
    resend_after_resumed: HashMap<u64, Vec<String>>,
    /// Runs accepted and not yet ended, by `run_id`, with when their message was sent.
    running: HashMap<String, Instant>,
    sent: u64,
    /// A message was refused since the last send.
    refused: bool,
    /// A run timed out: the user stops.
    gave_up: bool,
    latencies: Vec<u64>,
    events: u64,
    violations_reported: usize,
    next_ping: Option<Instant>,
}

/// Plays `plan.scenario` as user `name` (the `index`th) holding `token`, reporting as it goes.
pub async fn simulate(plan: Arc<Plan>, index: usize, name: String, token: String) {
    let mut user = User {
        verifier: UserVerifier::new(&name),
        name,
        token,
        index,
        plan,
        incoming: SelectAll::new(),
        outgoing: BTreeMap::new(),
        awaiting_connected: HashSet::new(),
        closing: HashSet::new(),
        close_codes: HashMap::new(),
        next_socket: 0,
        reconnects_left: RECONNECTS,
        pending: HashMap::new(),
        sent_on: HashMap::new(),
        resend_after_resumed: HashMap::new(),
        running: HashMap::new(),
        sent: 0,
        refused: false,
        gave_up: false,
        latencies: Vec::new(),
        events: 0,
        violations_reported: 0,
        next_ping: None,
    };
    match user.plan.scenario {
        Scenario::Idle => user.idle().await,
        Scenario::Chat => user.chat().await,
        Scenario::Burst => user.burst().await,
        Scenario::Churn => user.churn().await,
    }
    user.finish().await;
}

impl User {
    /// Holds the sockets until the load ends, pinging now and then.
    async fn idle(&mut self) {
        self.connect_all(self.plan.sockets_per_user).await;
        let offset = PING_EVERY.mul_f64((self.index % 97) as f64 / 97.0);
        self.next_ping = Some(Instant::now() + offset);
        while self.step(self.plan.load_until).await {}
    }

    /// Sends each message after the previous run has ended.
    async fn chat(&mut self) {
        self.connect_all(self.plan.sockets_per_user).await;
        if let Some(every) = self.plan.send_every {
            return self.chat_open_loop(every).await;
        }
        while self.may_send() {
            let Some(driver) = self.driver() else { break };
            if !self.send_message(driver).await {
                break;
            }
            self.settle().await;
        }
    }

    /// Sends a message every `every` (the users' sends spread evenly over it), then waits for
    /// the runs still going.
    async fn chat_open_loop(&mut self, every: Duration) {
        let users = self.plan.users.max(1) as f64;
        let mut next = Instant::now() + every.mul_f64((self.index as f64 % users) / users);
        while self.may_send() {
            while self.step(next).await {}
            let Some(driver) = self.driver() else { break };
            if !self.send_message(driver).await {
                break;
            }
            next += every;
        }
        while self.outstanding() {
            self.step(far_future()).await;
        }
    }

    /// Sends every message at once, then waits for all the runs.
    async fn burst(&mut self) {
        self.connect_all(self.plan.sockets_per_user).await;
        for _ in 0..self.plan.messages {
            let Some(driver) = self.driver() else { break };
            if !self.send_message(driver).await {
                break;
            }
        }
        while self.outstanding() {
            self.step(far_future()).await;
        }
    }

    /// For each message: connects (resuming where the last socket was), sends, leaves once the
    /// run is accepted, reconnects with `?after_seq=` and follows it to its end. Sockets beyond
    /// the first stay connected throughout, watching the same stream.
    async fn churn(&mut self) {
        self.connect_all(self.plan.sockets_per_user.saturating_sub(1))
            .await;
        let mut resume_from = None;
        while self.may_send() {
            let Some(driver) = self.connect(resume_from).await else {
                break;
            };
            if !self.send_message(driver).await {
                break;
            }
            while !self.pending.is_empty() {
                self.step(far_future()).await;
            }
            resume_from = self.close(driver).await;
            if self.outstanding() {
                let Some(driver) = self.connect(resume_from).await else {
                    break;
                };
                self.settle().await;
                resume_from = self.close(driver).await;
            }
        }
    }

    /// Waits for every outstanding run to end, then pauses if a message was refused.
    async fn settle(&mut self) {
        while self.outstanding() {
            self.step(far_future()).await;
        }
        if std::mem::take(&mut self.refused) {
            let until = Instant::now() + REFUSED_PAUSE;
            while self.step(until).await {}
        }
    }

    fn may_send(&self) -> bool {
        self.sent < self.plan.messages && Instant::now() < self.plan.load_until && !self.gave_up
    }

    fn outstanding(&self) -> bool {
        !self.pending.is_empty() || !self.running.is_empty()
    }

    /// The socket messages are sent on: the oldest open one.
    fn driver(&self) -> Option<u64> {
        self.outgoing
            .keys()
            .copied()
            .find(|id| !self.closing.contains(id))
    }

    async fn connect_all(&mut self, sockets: usize) {
        for _ in 0..sockets {
            self.connect(None).await;
        }
    }

    /// The user is done: closes its sockets and hands its verification to the tally.
    async fn finish(mut self) {
        let deadline = Instant::now() + CATCH_UP;
        while self.lagging() && self.step(deadline).await {}
        let open: Vec<u64> = self.outgoing.keys().copied().collect();
        for socket in open {
            self.verifier.check_caught_up(socket);
        }
        self.flush();
        let open: Vec<u64> = self.outgoing.keys().copied().collect();
        for socket in open {
            self.send_on(socket, Message::Close(None)).await;
        }
        let open = std::mem::take(&mut self.outgoing);
        self.plan
            .live
            .sockets
            .fetch_sub(open.len() as u64, Ordering::Relaxed);
        let reports = self.plan.reports.clone();
        let _ = reports.send(Report::Finished(self.verifier.finish()));
    }

    fn report(&self, report: Report) {
        // The tally outlives every user; if it is gone the test is over anyway.
        let _ = self.plan.reports.send(report);
    }
}

/// A deadline that never comes in a load test.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(10 * 365 * 24 * 3600)
}
