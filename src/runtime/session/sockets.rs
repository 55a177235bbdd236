//! `Sockets`: a session's attached sockets and everything it sends them. Every frame goes
//! through `deliver`, which either queues it on the socket or closes the socket with 4008 —
//! never drops it. A client that resumes after a 4008 gets what it missed, so a close loses
//! nothing; a dropped frame would be a silent gap.
//!
//! It also bounds what each socket holds, from the session's side, because the socket's actor
//! stops running while its client does not read: bytes queued beyond what the connection has
//! taken (the backlog) may not pass the hard bound when more is queued (so it holds at most
//! the hard bound plus one batch), and a backlog that does not move over two heartbeats is
//! closed once over the soft bound, or after the client timeout at any size. A socket closed
//! so has the client timeout to take the rest of its bytes and the close frame; one that does
//! not (its actor cannot even act on the close) is then cut at the TCP level, which frees the
//! connection and its buffers.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::config::Config;
use crate::context::{ConnectionId, UserId};
use crate::metrics::Metrics;
use crate::protocol::{FrameError, ServerFrame};
use crate::runtime::session::replay::Replay;
use crate::runtime::socket::{ConnectionLink, Frames, Outbound, close_code, one_frame, wire_bytes};

/// Heartbeats in a row without progress after which a backlog over the soft bound is too
/// slow: one could be a busy moment of a loaded machine; two are a client that stopped.
const STALLED_TICKS: u32 = 2;

/// One attached socket.
struct Socket {
    /// Where its frames go: the socket actor's bounded mailbox.
    outbound: Recipient<Outbound>,
    /// Set while a `resume` replays from the database; live frames wait in it.
    replay: Option<Replay>,
    /// What the connection beneath shares: bytes taken, liveness, a way to cut it.
    link: ConnectionLink,
    /// Wire bytes of the frames queued on the socket so far.
    sent: u64,
    /// Bytes taken by the last heartbeat: if none are taken since, the backlog did not move.
    taken_at_tick: u64,
    /// The backlog at the last heartbeat: only a socket with bytes waiting all along is stalled.
    backlog_at_tick: u64,
    /// Heartbeats in a row over which the backlog did not move.
    stalled_ticks: u32,
    /// This socket's share of the queued-bytes gauge.
    reported: i64,
}

impl Socket {
    fn new(outbound: Recipient<Outbound>, link: ConnectionLink) -> Self {
        Self {
            outbound,
            replay: None,
            link,
            sent: 0,
            taken_at_tick: 0,
            backlog_at_tick: 0,
            stalled_ticks: 0,
            reported: 0,
        }
    }

    fn taken(&self) -> u64 {
        self.link.taken.load(Ordering::Relaxed)
    }

    /// Bytes queued for the client (by the session, and by the actor itself) and not yet
    /// taken by its connection.
    fn backlog(&self) -> u64 {
        let own = self.link.own.load(Ordering::Relaxed);
        (self.sent + own).saturating_sub(self.taken())
    }

    /// The actor has not run its heartbeat for `limit`: actix-http no longer polls it.
    fn frozen(&self, now_ms: i64, limit: Duration) -> bool {
        now_ms - self.link.alive_at.load(Ordering::Relaxed) > limit.as_millis() as i64
    }
}

/// Why a socket is closed as too slow.
#[derive(Debug, Clone, Copy)]
enum TooSlow {
    /// Its mailbox is full.
    Mailbox,
    /// More came while its backlog was over the hard bound.
    HardBound,
    /// Its backlog is over the soft bound and did not move over two heartbeats.
    Stalled,
    /// Its backlog did not move for the client timeout.
    Silent,
    /// Live frames held during its replay would pass the hard bound.
    Replay,
    /// Its actor has not run for the client timeout: it cannot act on a close, so the
    /// connection is cut at once.
    Frozen,
}

/// A connection closed as too slow, to be cut at the TCP level at `at`.
struct Cut {
    /// When its grace to take its last bytes and the close frame is over (at once if frozen).
    at: Instant,
    /// Shuts its TCP connection down, taken from its `ConnectionLink` as the socket is forgotten.
    cut: Box<dyn Fn() + Send>,
}

/// The sockets attached to one session.
pub(crate) struct Sockets {
    /// Whose sockets these are (for the logs).
    user_id: UserId,
    /// The bounds and timeouts in force.
    config: Arc<Config>,
    /// The queued-bytes gauge and the slow-socket counter.
    metrics: Arc<Metrics>,
    /// Every attached socket.
    attached: HashMap<ConnectionId, Socket>,
    /// Connections closed as too slow, cut at the TCP level when their grace is over.
    cutting: Vec<Cut>,
    /// Sockets refused at the user's cap (4029), whose frames are dropped until their
    /// `Detach`.
    refused: HashSet<ConnectionId>,
    /// Replays started so far, which numbers each replay's generation.
    replays_started: u64,
}

impl Sockets {
    /// None attached yet: each joins by `Attach`; `user_id` only names them in the logs.
    pub(crate) fn new(user_id: UserId, config: Arc<Config>, metrics: Arc<Metrics>) -> Self {
        Self {
            user_id,
            config,
            metrics,
            attached: HashMap::new(),
            cutting: Vec::new(),
            refused: HashSet::new(),
            replays_started: 0,
        }
    }

    /// No socket is attached and no connection waits to be cut.
    pub(crate) fn is_empty(&self) -> bool {
        self.attached.is_empty() && self.cutting.is_empty()
    }

    /// Sockets attached. Those being cut (closed 4008, their connection not yet gone) are
    /// not counted: their client reconnects at once, as PROTOCOL.md §2 says, and must get in.
    pub(crate) fn attached(&self) -> usize {
        self.attached.len()
    }

    /// Refuses `conn_id` at the user's cap: its frames are dropped until it detaches. (A
    /// socket being cut after a 4008 is not refused: what it sent before is still handled.)
    pub(crate) fn refuse(&mut self, conn_id: ConnectionId) {
        self.refused.insert(conn_id);
    }

    /// Whether `conn_id` was refused at the cap.
    pub(crate) fn is_refused(&self, conn_id: ConnectionId) -> bool {
        self.refused.contains(&conn_id)
    }

    /// A socket joins.
    pub(crate) fn attach(
        &mut self,
        conn_id: ConnectionId,
        outbound: Recipient<Outbound>,
        link: ConnectionLink,
    ) {
        self.attached.insert(conn_id, Socket::new(outbound, link));
    }

    /// Sends one frame to one socket.
    pub(crate) fn send(&mut self, conn_id: ConnectionId, frame: String) {
        self.deliver(conn_id, one_frame(frame));
    }

    /// Sends an `error` frame to one socket.
    pub(crate) fn send_error(&mut self, conn_id: ConnectionId, error: FrameError) {
        self.send(conn_id, ServerFrame::error(error).to_frame());
    }

    /// Durable frames for every socket, live.
    pub(crate) fn broadcast(&mut self, frames: &Frames) {
        let conn_ids: Vec<ConnectionId> = self.attached.keys().copied().collect();
        for conn_id in conn_ids {
            self.deliver_live(conn_id, frames.clone());
        }
    }

    /// Closes every socket with `code`.
    pub(crate) fn close_all(&self, code: u16, reason: &'static str) {
        for socket in self.attached.values() {
            socket.outbound.do_send(Outbound::Close { code, reason });
        }
    }

    /// Starts a replay on `conn_id` (replacing one in progress); its generation, or `None`
    /// if the socket is gone.
    pub(crate) fn begin_replay(&mut self, conn_id: ConnectionId) -> Option<u64> {
        let socket = self.attached.get_mut(&conn_id)?;
        self.replays_started += 1;
        socket.replay = Some(Replay::new(self.replays_started));
        Some(self.replays_started)
    }

    /// Ends `conn_id`'s replay, returning it with the live frames it held.
    pub(crate) fn end_replay(&mut self, conn_id: ConnectionId) -> Option<Replay> {
        self.attached.get_mut(&conn_id)?.replay.take()
    }

    /// `conn_id` is still in the replay `generation` started (not closed, not superseded).
    pub(crate) fn replaying(&self, conn_id: ConnectionId, generation: u64) -> bool {
        self.attached
            .get(&conn_id)
            .and_then(|s| s.replay.as_ref())
            .is_some_and(|r| r.generation() == generation)
    }

    /// The most bytes a socket may have queued and not taken.
    fn hard_bound(&self) -> u64 {
        self.config.socket_outbound_bytes.saturating_mul(16)
    }

    /// `conn_id`'s backlog is within the soft bound (a replay waits for this before each
    /// step). A socket that is gone has no room.
    pub(crate) fn has_room(&self, conn_id: ConnectionId) -> bool {
        let soft_bound = self.config.socket_outbound_bytes;
        self.attached
            .get(&conn_id)
            .is_some_and(|socket| socket.backlog() <= soft_bound)
    }

    /// Queues `frames` on `conn_id`, or closes it 4008 if it cannot take them.
    pub(crate) fn deliver(&mut self, conn_id: ConnectionId, frames: Frames) {
        let hard_bound = self.hard_bound();
        let Some(socket) = self.attached.get_mut(&conn_id) else {
            return;
        };
        let bytes: u64 = frames.iter().map(|f| wire_bytes(f.len())).sum();
        // Checked before the frames are added, so a socket within the bound always takes the
        // next batch however large: a socket holds at most the hard bound plus one batch.
        if socket.backlog() > hard_bound {
            return self.close_too_slow(conn_id, TooSlow::HardBound);
        }
        match socket.outbound.try_send(Outbound::Frames(frames)) {
            Ok(()) => {
                socket.sent += bytes;
                let backlog = socket.backlog() as i64;
                self.metrics
                    .socket_queued_bytes
                    .add(backlog - socket.reported);
                socket.reported = backlog;
            }
            Err(SendError::Full(_)) => self.close_too_slow(conn_id, TooSlow::Mailbox),
            // The actor has stopped; its `Detach` is on the way.
            Err(SendError::Closed(_)) => {
                self.forget(conn_id);
            }
        }
    }

    /// Live `frames` for `conn_id`: held while it replays, else delivered.
    pub(crate) fn deliver_live(&mut self, conn_id: ConnectionId, frames: Frames) {
        let hard_bound = self.hard_bound();
        let Some(socket) = self.attached.get_mut(&conn_id) else {
            return;
        };
        let Some(replay) = socket.replay.as_mut() else {
            return self.deliver(conn_id, frames);
        };
        if !replay.buffer(frames, hard_bound) {
            self.close_too_slow(conn_id, TooSlow::Replay);
        }
    }

    /// Removes a socket from the session, with its share of the gauge.
    pub(crate) fn forget(&mut self, conn_id: ConnectionId) {
        self.refused.remove(&conn_id);
        self.remove(conn_id);
    }

    fn remove(&mut self, conn_id: ConnectionId) -> Option<Socket> {
        let socket = self.attached.remove(&conn_id)?;
        self.metrics.socket_queued_bytes.sub(socket.reported);
        Some(socket)
    }

    /// Closes `conn_id` with 4008; the client resumes later with nothing lost. A client that
    /// has not read up to the close frame within the client timeout has its connection cut.
    fn close_too_slow(&mut self, conn_id: ConnectionId, why: TooSlow) {
        let Some(socket) = self.remove(conn_id) else {
            return;
        };
        log::warn!(
            "user={} socket {conn_id} too slow ({why:?}, {} bytes waiting), closing",
            self.user_id,
            socket.backlog()
        );
        self.metrics.slow_sockets.inc();
        socket.outbound.do_send(Outbound::Close {
            code: close_code::TOO_SLOW,
            reason: "too slow",
        });
        let grace = match why {
            TooSlow::Frozen => Duration::ZERO,
            _ => self.config.client_timeout,
        };
        self.cutting.push(Cut {
            at: Instant::now() + grace,
            cut: socket.link.cut,
        });
    }

    /// Every heartbeat: cuts connections closed a client timeout ago, and closes sockets
    /// whose backlog does not move.
    pub(crate) fn check(&mut self) {
        let config = &self.config;
        let silent_ticks = (config.client_timeout.as_millis()
            / config.heartbeat_interval.as_millis().max(1))
        .max(1) as u32;
        let mut slow = Vec::new();
        let frozen_after = config.client_timeout + config.heartbeat_interval;
        let now_ms = crate::clock::now_ms();
        for (conn_id, socket) in &mut self.attached {
            if socket.frozen(now_ms, frozen_after) {
                slow.push((*conn_id, TooSlow::Frozen));
                continue;
            }
            let taken = socket.taken();
            let backlog = socket.backlog();
            let stalled =
                backlog > 0 && socket.backlog_at_tick > 0 && taken == socket.taken_at_tick;
            socket.stalled_ticks = if stalled { socket.stalled_ticks + 1 } else { 0 };
            socket.taken_at_tick = taken;
            socket.backlog_at_tick = backlog;
            self.metrics
                .socket_queued_bytes
                .add(backlog as i64 - socket.reported);
            socket.reported = backlog as i64;
            if socket.stalled_ticks >= STALLED_TICKS && backlog > config.socket_outbound_bytes {
                slow.push((*conn_id, TooSlow::Stalled));
            } else if socket.stalled_ticks >= silent_ticks {
                slow.push((*conn_id, TooSlow::Silent));
            }
        }
        for (conn_id, why) in slow {
            self.close_too_slow(conn_id, why);
        }
        self.cut_due(Instant::now());
    }

    /// The session stops: its sockets leave the gauge, and connections closed as too slow
    /// are cut now rather than never.
    pub(crate) fn let_go(&mut self) {
        let conn_ids: Vec<ConnectionId> = self.attached.keys().copied().collect();
        for conn_id in conn_ids {
            self.forget(conn_id);
        }
        for due in self.cutting.drain(..) {
            (due.cut)();
        }
    }

    /// Cuts the connections whose grace is over.
    fn cut_due(&mut self, now: Instant) {
        self.cutting.retain(|due| {
            if due.at > now {
                return true;
            }
            (due.cut)();
            false
        });
    }
}
