//! `GET /ws` and `WsConnection`, the one actor per socket (actix-web-actors, kept to this
//! module). It authenticates at upgrade, then only relays: frames in → typed messages to the
//! user's session; `Outbound` from the session → frames out. It holds no user state.
//!
//! Frame rules (PROTOCOL.md §2): a whole message over the limit closes 1009, invalid UTF-8
//! closes 1007, a bad message gets an `error` frame (20 in a row close 1008), the server pings
//! every 10 s and closes a silent socket with 4002, and an expiring token closes it with 4001.
//! Frames that cost a read (`resume`, `cancel_run`, `approval`) are rate limited per socket
//! here, so a flood of them never reaches the session's mailbox or the database.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_http::ws::Item;
use actix_web::{Error, HttpRequest, HttpResponse, get, web};
use actix_web_actors::ws::{self, CloseCode, CloseReason, ProtocolError};
use serde::Deserialize;

use crate::clock::now_ms;
use crate::config::Config;
use crate::context::{ConnectionId, UserId};
use crate::error::ErrorCode;
use crate::metrics::Metrics;
use crate::protocol::{ClientFrame, FrameError, ServerFrame};
use crate::runtime::rate_limit::TokenBucket;
use crate::runtime::session::{
    Attach, Detach, ObjectRequest, ObjectRequestKind, Resume, StartRun, UserSession,
};
use crate::runtime::socket::{ConnectionLink, Outbound, close_code, wire_bytes};
use crate::web::AppState;
use crate::web::admission::admit_socket;
use crate::web::connection::ConnectionCut;
use crate::web::error::ApiError;
use crate::web::extract::authenticate;
use crate::web::gate::SocketPass;
use crate::web::taken::Taken;

const CLOSE_INVALID_PAYLOAD: u16 = 1007;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_PROTOCOL: u16 = 1002;

/// The upgrade URL's `?after_seq=N`: replay from there on attach, like a `resume` sent first
/// but without the race.
#[derive(Deserialize)]
pub struct WsQuery {
    after_seq: Option<i64>,
}

/// Upgrades an authenticated request; anything wrong is answered with HTTP before upgrade.
#[utoipa::path(get, path = "/ws", tag = "socket",
    description = "The WebSocket (PROTOCOL.md §2): the client sends `ClientFrame`s, the server \
        `ServerFrame`s and sequenced `Event`s (see the schemas). A browser passes its token as \
        `?token=`; any other client may use the header.",
    params(
        ("token" = Option<String>, Query, description = "the token, for browsers"),
        ("after_seq" = Option<i64>, Query, description = "replay every event after this seq first")),
    security((), ("bearer" = [])),
    responses(
        (status = 101, description = "switching to the WebSocket protocol"),
        (status = 400, description = "not a WebSocket upgrade, or a negative after_seq", body = crate::protocol::http::ErrorBody),
        (status = 401, description = "no valid token", body = crate::protocol::http::ErrorBody)))]
#[get("/ws")]
pub async fn upgrade(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
    query: web::Query<WsQuery>,
) -> Result<HttpResponse, Error> {
    let pass = admit_socket(&req, &state).await?;
    // Browsers cannot set headers on a WebSocket: here alone `?token=` is read too.
    let identity = authenticate(&req, true).await?;
    if query.after_seq.is_some_and(|s| s < 0) {
        return Err(ApiError::bad_request("after_seq must be 0 or more").into());
    }
    let session = state.session_of(&identity.user_id).await?;
    let taken = Arc::new(AtomicU64::new(0));
    let cut = req.conn_data::<ConnectionCut>().cloned();
    let own = Arc::new(AtomicU64::new(0));
    let alive_at = Arc::new(AtomicI64::new(now_ms()));
    let link = ConnectionLink {
        taken: taken.clone(),
        own: own.clone(),
        alive_at: alive_at.clone(),
        cut: Box::new(move || {
            if let Some(cut) = &cut {
                cut.cut();
            }
        }),
    };
    let connection = WsConnection {
        link: Some(link),
        own,
        alive_at,
        metrics: state.metrics.clone(),
        conn_id: ConnectionId::new(),
        _pass: pass,
        user_id: identity.user_id,
        session,
        config: state.config.clone(),
        expires_at_ms: identity.expires_at_ms,
        after_seq: query.after_seq,
        last_heard: Instant::now(),
        bad_streak: 0,
        fragments: None,
        read_frames: TokenBucket::new(
            state.config.read_frame_burst,
            state.config.read_frames_per_minute,
        ),
    };
    let codec = actix_http::ws::Codec::new().max_size(state.config.max_message_bytes);
    let frames = ws::WebsocketContext::with_codec(connection, stream, codec);
    let mut handshake = ws::handshake(&req)
        .map_err(|e| ApiError::bad_request(format!("not a WebSocket upgrade: {e}")))?;
    Ok(handshake.streaming(Taken::new(Box::pin(frames), taken)))
}

/// A message arriving in several frames.
struct Fragments {
    text: bool,
    data: Vec<u8>,
}

/// The actor behind one open `/ws` socket: it parses the client's frames for the user's session,
/// writes the session's frames out, and closes the socket on a bad streak, silence or expiry.
pub struct WsConnection {
    /// Handed to the session on attach.
    link: Option<ConnectionLink>,
    /// Shared with the session through the link: bytes this actor writes on its own, and
    /// when its heartbeat last ran.
    own: Arc<AtomicU64>,
    alive_at: Arc<AtomicI64>,
    /// Counts open sockets.
    metrics: Arc<Metrics>,
    /// This socket's place under the server-wide cap, given back when the actor is dropped.
    _pass: Option<SocketPass>,
    conn_id: ConnectionId,
    user_id: UserId,
    session: Addr<UserSession>,
    config: Arc<Config>,
    /// The token's expiry; the socket closes with 4001 then.
    expires_at_ms: i64,
    /// `?after_seq=` on the upgrade URL: replay on attach.
    after_seq: Option<i64>,
    /// When the client last sent anything (heartbeat).
    last_heard: Instant,
    /// Consecutive refused messages.
    bad_streak: u32,
    fragments: Option<Fragments>,
    /// The allowance of frames that cost a read (`resume`, `cancel_run`, `approval`): beyond
    /// it they are refused here, before they reach the session or the database.
    read_frames: TokenBucket,
}

impl WsConnection {
    /// A text frame of the actor's own (not from the session), counted for the session.
    fn own_text(&self, ctx: &mut ws::WebsocketContext<Self>, frame: String) {
        self.own
            .fetch_add(wire_bytes(frame.len()), Ordering::Relaxed);
        ctx.text(frame);
    }

    fn close(&self, ctx: &mut ws::WebsocketContext<Self>, code: u16, reason: &str) {
        ctx.close(Some(CloseReason {
            code: CloseCode::from(code),
            description: Some(reason.to_owned()),
        }));
        ctx.stop();
    }

    fn refuse(&mut self, ctx: &mut ws::WebsocketContext<Self>, error: FrameError) {
        self.own_text(ctx, ServerFrame::error(error).to_frame());
        self.bad_streak += 1;
        if self.bad_streak >= self.config.max_bad_messages {
            self.close(ctx, close_code::POLICY, "too many bad messages");
        }
    }

    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        let frame = match ClientFrame::parse(text, self.config.max_content_chars) {
            Ok(frame) => frame,
            Err(error) => return self.refuse(ctx, error),
        };
        self.bad_streak = 0;
        if !self.session.connected() {
            // The session failed: the client reconnects (a fresh one starts) and resends.
            return self.close(ctx, close_code::SESSION_RESTARTED, "session restarted");
        }
        let conn_id = self.conn_id;
        if let Some(reference) = frame.read_cost()
            && !self.read_frames.take_at(Instant::now())
        {
            self.metrics.read_frames_limited.inc();
            let error = FrameError::new(
                ErrorCode::RateLimited,
                format!(
                    "too many resume, cancel_run and approval frames: at most {} a minute on a \
                     socket, in bursts of {}",
                    self.config.read_frames_per_minute, self.config.read_frame_burst
                ),
            );
            let error = match reference {
                Some(id) => error.with_ref(id),
                None => error,
            };
            return self.own_text(ctx, ServerFrame::error(error).to_frame());
        }
        match frame {
            ClientFrame::UserMessage(message) => {
                self.session.do_send(StartRun { conn_id, message });
            }
            ClientFrame::Resume { after_seq } => {
                self.session.do_send(Resume { conn_id, after_seq });
            }
            ClientFrame::Ping { nonce } => {
                self.own_text(ctx, ServerFrame::Pong { nonce }.to_frame())
            }
            ClientFrame::CancelRun { run_id } => self.session.do_send(ObjectRequest {
                conn_id,
                kind: ObjectRequestKind::CancelRun,
                id: run_id,
            }),
            ClientFrame::Approval {
                approval_id,
                decision,
            } => self.session.do_send(ObjectRequest {
                conn_id,
                kind: ObjectRequestKind::Approval(decision),
                id: approval_id,
            }),
        }
    }

    /// Collects a fragmented message, enforcing the size limit on the whole.
    fn on_fragment(&mut self, item: Item, ctx: &mut ws::WebsocketContext<Self>) {
        let (chunk, last) = match item {
            Item::FirstText(chunk) => {
                self.fragments = Some(Fragments {
                    text: true,
                    data: Vec::new(),
                });
                (chunk, false)
            }
            Item::FirstBinary(chunk) => {
                self.fragments = Some(Fragments {
                    text: false,
                    data: Vec::new(),
                });
                (chunk, false)
            }
            Item::Continue(chunk) => (chunk, false),
            Item::Last(chunk) => (chunk, true),
        };
        let Some(fragments) = self.fragments.as_mut() else {
            return self.close(ctx, CLOSE_PROTOCOL, "continuation without a first frame");
        };
        if fragments.data.len() + chunk.len() > self.config.max_message_bytes {
            return self.close(ctx, CLOSE_TOO_BIG, "message too big");
        }
        fragments.data.extend_from_slice(&chunk);
        if !last {
            return;
        }
        let Some(Fragments { text, data }) = self.fragments.take() else {
            return;
        };
        if !text {
            return self.refuse(ctx, binary_refused());
        }
        match String::from_utf8(data) {
            Ok(text) => self.on_text(&text, ctx),
            Err(_) => self.close(ctx, CLOSE_INVALID_PAYLOAD, "invalid UTF-8"),
        }
    }

    fn heartbeat(&self, ctx: &mut ws::WebsocketContext<Self>) {
        // A client that does not take its bytes is closed by the session (4008), which sees
        // the backlog even while this actor is not polled.
        ctx.run_interval(self.config.heartbeat_interval, |act, ctx| {
            act.alive_at.store(now_ms(), Ordering::Relaxed);
            if !act.session.connected() {
                act.close(ctx, close_code::SESSION_RESTARTED, "session restarted");
            } else if act.last_heard.elapsed() > act.config.client_timeout {
                log::info!(
                    "user={} socket {} heartbeat timeout",
                    act.user_id,
                    act.conn_id
                );
                act.close(ctx, close_code::HEARTBEAT_TIMEOUT, "heartbeat timeout");
            } else {
                act.own.fetch_add(wire_bytes(0), Ordering::Relaxed);
                ctx.ping(b"");
            }
        });
    }
}

fn binary_refused() -> FrameError {
    FrameError::bad_request("binary frames are not accepted; send JSON text frames")
}

impl Actor for WsConnection {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.metrics.sockets.inc();
        ctx.set_mailbox_capacity(self.config.socket_outbound_capacity);
        self.heartbeat(ctx);
        let until_expiry = Duration::from_millis((self.expires_at_ms - now_ms()).max(0) as u64);
        ctx.run_later(until_expiry, |act, ctx| {
            act.close(ctx, close_code::TOKEN_EXPIRED, "token expired");
        });
        let Some(link) = self.link.take() else {
            return;
        };
        let attach = self.session.send(Attach {
            conn_id: self.conn_id,
            socket: ctx.address().recipient(),
            link,
            after_seq: self.after_seq,
        });
        ctx.spawn(attach.into_actor(self).map(|result, act, ctx| {
            if result.is_err() {
                // The session stopped before it took the socket: the client reconnects and
                // resumes on a fresh one.
                act.close(ctx, close_code::SESSION_RESTARTED, "session restarted");
            }
        }));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.metrics.sockets.dec();
        self.session.do_send(Detach {
            conn_id: self.conn_id,
        });
    }
}

/// Frames from the client.
impl StreamHandler<Result<ws::Message, ProtocolError>> for WsConnection {
    fn handle(&mut self, item: Result<ws::Message, ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match item {
            Ok(ws::Message::Text(text)) => self.on_text(&text, ctx),
            Ok(ws::Message::Binary(_)) => self.refuse(ctx, binary_refused()),
            Ok(ws::Message::Continuation(item)) => self.on_fragment(item, ctx),
            Ok(ws::Message::Ping(payload)) => {
                self.own
                    .fetch_add(wire_bytes(payload.len()), Ordering::Relaxed);
                ctx.pong(&payload);
            }
            Ok(ws::Message::Pong(_)) | Ok(ws::Message::Nop) => {}
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Err(ProtocolError::Overflow) => self.close(ctx, CLOSE_TOO_BIG, "message too big"),
            // actix-web-actors reports a text frame that is not UTF-8 as an I/O error.
            Err(ProtocolError::Io(_)) => self.close(ctx, CLOSE_INVALID_PAYLOAD, "invalid UTF-8"),
            Err(e) => {
                log::debug!(
                    "user={} socket {} protocol error: {e}",
                    self.user_id,
                    self.conn_id
                );
                self.close(ctx, CLOSE_PROTOCOL, "protocol error");
            }
        }
    }
}

/// Frames and closes from the session.
impl Handler<Outbound> for WsConnection {
    type Result = ();

    fn handle(&mut self, msg: Outbound, ctx: &mut Self::Context) {
        match msg {
            Outbound::Frames(frames) => {
                for frame in frames.iter() {
                    ctx.text(&**frame);
                }
            }
            Outbound::Close { code, reason } => self.close(ctx, code, reason),
        }
    }
}
