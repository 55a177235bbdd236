//! `Outbound`: what a user session sends to one of its sockets. The socket actor (web/ws.rs)
//! receives it through a `Recipient<Outbound>` with a bounded mailbox, so the session never
//! learns the socket's type and a slow socket never stalls it.

use std::sync::Arc;

use actix::Message;

/// Close codes PROTOCOL.md §2 gives the server.
pub mod close_code {
    pub const GOING_AWAY: u16 = 1001;
    pub const POLICY: u16 = 1008;
    pub const TOKEN_EXPIRED: u16 = 4001;
    pub const HEARTBEAT_TIMEOUT: u16 = 4002;
    pub const TOO_SLOW: u16 = 4008;
    pub const SESSION_RESTARTED: u16 = 4009;
}

/// Text frames, already serialised once and shared by every socket of the user.
pub type Frames = Arc<[Arc<str>]>;

#[derive(Message, Clone)]
#[rtype(result = "()")]
pub enum Outbound {
    /// Frames to send, in order.
    Frames(Frames),
    /// Close the socket with this code and reason.
    Close { code: u16, reason: &'static str },
}

impl Outbound {
    /// A single frame.
    pub fn text(frame: String) -> Self {
        Self::Frames(Arc::from(vec![Arc::<str>::from(frame)]))
    }
}
