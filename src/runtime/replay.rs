//! `resume` and `?after_seq=`: a socket's replay from the database, joined to the live stream
//! with no gap and no duplicate.
//!
//! The replay covers `(after_seq, through]`, where `through` is the session's last durable
//! `seq` when the replay starts; live frames that become durable meanwhile wait in the
//! socket's `Replay` buffer and follow `resumed {through_seq}`.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::context::ConnectionId;
use crate::error::ErrorCode;
use crate::protocol::{FrameError, ServerFrame};
use crate::runtime::session::UserSession;
use crate::runtime::socket::{Frames, wire_bytes};
use crate::store::repo;

/// How often a replay waiting for its socket's backlog to shrink looks again.
const REPLAY_ROOM_CHECK: Duration = Duration::from_millis(5);

/// What a replay does next.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Read and send the events after `after`.
    Page { after: i64 },
    /// Send `resumed` and the live frames held meanwhile.
    Finish,
}

/// A replay in progress on one socket.
pub(crate) struct Replay {
    generation: u64,
    buffered: Vec<Arc<str>>,
    /// Their wire bytes.
    buffered_bytes: u64,
}

impl Replay {
    /// Holds live frames until the replay ends; false when they would pass `max_bytes` (the
    /// socket is then too slow).
    pub(crate) fn buffer(&mut self, frames: Frames, max_bytes: u64) -> bool {
        self.buffered_bytes += frames.iter().map(|f| wire_bytes(f.len())).sum::<u64>();
        self.buffered.extend(frames.iter().cloned());
        self.buffered_bytes <= max_bytes
    }

    /// The held frames, as one message.
    fn take_buffered(self) -> Option<Frames> {
        (!self.buffered.is_empty()).then(|| Frames::from(self.buffered))
    }
}

impl UserSession {
    /// Starts (or restarts) `conn_id`'s replay of every event after `after_seq`.
    pub(crate) fn start_replay(
        &mut self,
        ctx: &mut Context<Self>,
        conn_id: ConnectionId,
        after_seq: i64,
    ) {
        let through = self.last_seq();
        self.replay_generation += 1;
        let generation = self.replay_generation;
        let Some(socket) = self.sockets.get_mut(&conn_id) else {
            return;
        };
        if after_seq >= through {
            socket.replay = None;
            self.send_to(
                conn_id,
                ServerFrame::Resumed {
                    through_seq: through,
                }
                .to_frame(),
            );
            return;
        }
        socket.replay = Some(Replay {
            generation,
            buffered: Vec::new(),
            buffered_bytes: 0,
        });
        let step = Step::Page { after: after_seq };
        self.when_room(ctx, conn_id, generation, step, through);
    }

    fn replay_page(
        &mut self,
        ctx: &mut Context<Self>,
        conn_id: ConnectionId,
        generation: u64,
        after: i64,
        through: i64,
    ) {
        let db = self.deps().db.clone();
        let user = self.user_id().clone();
        let limit = self.deps().config.replay_page.max(1);
        let read = async move {
            db.read(move |conn| Ok(repo::events::range(conn, &user, after, through, limit)?))
                .await
        };
        ctx.spawn(read.into_actor(self).map(move |result, act, ctx| {
            if !act.replaying(conn_id, generation) {
                return;
            }
            match result {
                Ok(events) => {
                    let last = events.last().map(|e| e.seq);
                    let full_page = events.len() as i64 == limit;
                    if !events.is_empty() {
                        let frames: Frames = events
                            .iter()
                            .map(|e| std::sync::Arc::from(e.to_frame()))
                            .collect();
                        act.deliver(conn_id, frames);
                    }
                    let step = match last {
                        Some(last) if last < through && full_page => Step::Page { after: last },
                        _ => Step::Finish,
                    };
                    act.when_room(ctx, conn_id, generation, step, through);
                }
                Err(e) => {
                    log::error!("user={} replay failed: {e}", act.user_id());
                    act.finish_replay_failed(conn_id);
                }
            }
        }));
    }

    /// `conn_id` is still in the replay `generation` started (not closed, not superseded).
    fn replaying(&self, conn_id: ConnectionId, generation: u64) -> bool {
        self.sockets
            .get(&conn_id)
            .and_then(|s| s.replay.as_ref())
            .is_some_and(|r| r.generation == generation)
    }

    /// Takes the replay's next step once the socket's backlog is within the soft bound, so a
    /// long replay goes at the client's pace instead of piling up in the server (a page can be
    /// large); a client that stops reading is closed by the heartbeat check (`delivery.rs`).
    fn when_room(
        &mut self,
        ctx: &mut Context<Self>,
        conn_id: ConnectionId,
        generation: u64,
        step: Step,
        through: i64,
    ) {
        if !self.replaying(conn_id, generation) {
            return;
        }
        if !self.has_room(conn_id) {
            ctx.run_later(REPLAY_ROOM_CHECK, move |act, ctx| {
                act.when_room(ctx, conn_id, generation, step, through)
            });
            return;
        }
        match step {
            Step::Page { after } => self.replay_page(ctx, conn_id, generation, after, through),
            Step::Finish => self.finish_replay(conn_id, through),
        }
    }

    /// `resumed`, then the live frames that waited.
    fn finish_replay(&mut self, conn_id: ConnectionId, through: i64) {
        let Some(replay) = self.sockets.get_mut(&conn_id).and_then(|s| s.replay.take()) else {
            return;
        };
        self.send_to(
            conn_id,
            ServerFrame::Resumed {
                through_seq: through,
            }
            .to_frame(),
        );
        if let Some(frames) = replay.take_buffered() {
            self.deliver(conn_id, frames);
        }
    }

    /// The replay could not be read: say so and go live; the client may `resume` again.
    fn finish_replay_failed(&mut self, conn_id: ConnectionId) {
        let Some(replay) = self.sockets.get_mut(&conn_id).and_then(|s| s.replay.take()) else {
            return;
        };
        let error = FrameError::new(
            ErrorCode::Unavailable,
            "storage unavailable: the replay could not be read; send resume again",
        );
        self.send_to(conn_id, ServerFrame::error(error).to_frame());
        if let Some(frames) = replay.take_buffered() {
            self.deliver(conn_id, frames);
        }
    }
}
