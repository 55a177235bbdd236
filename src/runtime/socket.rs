//! `Outbound`: what a user session sends to one of its sockets. The socket actor (web/ws.rs)
//! receives it through a `Recipient<Outbound>` with a bounded mailbox, so the session never
//! learns the socket's type and a slow socket never stalls it. `ConnectionLink` is what the
//! connection under the actor shares with the session, so the session can bound a socket whose
//! actor no longer runs (`delivery.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64};

use actix::Message;

/// Close codes PROTOCOL.md §2 gives the server.
pub mod close_code {
    /// The server shuts down: the client reconnects once it is back and resumes.
    pub const GOING_AWAY: u16 = 1001;
    /// The client sent too many bad messages in a row (`max_bad_messages`).
    pub const POLICY: u16 = 1008;
    /// The token the socket was opened with has expired: the client reconnects with a fresh one.
    pub const TOKEN_EXPIRED: u16 = 4001;
    /// Nothing was heard from the client for the client timeout, so its connection is freed.
    pub const HEARTBEAT_TIMEOUT: u16 = 4002;
    /// The client does not take its frames: closing, not dropping, keeps its resume gapless.
    pub const TOO_SLOW: u16 = 4008;
    /// The user's session stopped under the socket: reconnecting starts a fresh one.
    pub const SESSION_RESTARTED: u16 = 4009;
    /// The user already holds the most sockets allowed: the client tries again only after
    /// closing another, with backoff.
    pub const TOO_MANY_SOCKETS: u16 = 4029;
}

/// Text frames, already serialised once and shared by every socket of the user.
pub type Frames = Arc<[Arc<str>]>;

#[derive(Message, Clone)]
#[rtype(result = "()")]
/// What a session sends a socket, through a `Recipient`, so it never learns the socket's type.
pub enum Outbound {
    /// Frames to send, in order.
    Frames(Frames),
    /// Close the socket with this code and reason.
    Close { code: u16, reason: &'static str },
}

/// A single frame, as `Frames`.
pub fn one_frame(frame: String) -> Frames {
    Arc::from(vec![Arc::<str>::from(frame)])
}

/// The connection beneath a socket actor, as its session sees it. actix-http stops polling a
/// WebSocket's actor while its write buffer is full (a client that does not read), so neither
/// the actor's timers nor its mailbox run then; these two work regardless.
pub struct ConnectionLink {
    /// Bytes of WebSocket frames the connection has taken from the actor so far, counted as
    /// actix-http pulls them.
    pub taken: Arc<AtomicU64>,
    /// Wire bytes of frames the actor wrote on its own (pongs, pings, error replies), which
    /// `taken` counts too.
    pub own: Arc<AtomicU64>,
    /// When the actor last ran its heartbeat (epoch ms): an actor that stops running (its
    /// client does not read) stops moving it.
    pub alive_at: Arc<AtomicI64>,
    /// Shuts the TCP connection down, which wakes actix-http with an error so it drops the
    /// connection and its actor; for a socket told to close that never got to.
    pub cut: Box<dyn Fn() + Send>,
}

/// Bytes a text frame of `payload` bytes takes on the wire from the server (unmasked header).
pub fn wire_bytes(payload: usize) -> u64 {
    let header = match payload {
        0..=125 => 2,
        126..=65535 => 4,
        _ => 10,
    };
    (payload + header) as u64
}
