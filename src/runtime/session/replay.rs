//! `resume` and `?after_seq=`: a socket's replay from the database, joined to the live stream
//! with no gap and no duplicate.
//!
//! The replay covers `(after_seq, through]`, where `through` is the session's last durable
//! `seq` when the replay starts; live frames that become durable meanwhile wait in the
//! socket's `Replay` and follow `resumed {through_seq}`. Events retention removed are a prefix
//! of the sequence: a replay that starts before the oldest kept is told `truncated
//! {oldest_seq}` first (and, should retention remove the events a later page was about to
//! read, before that page).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::context::ConnectionId;
use crate::protocol::ServerFrame;
use crate::runtime::refusal::Refusal;
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
    /// Tells this replay from a later one on the same socket (a second `resume`).
    generation: u64,
    /// Live frames held until the replay ends.
    buffered: Vec<Arc<str>>,
    /// Their wire bytes.
    buffered_bytes: u64,
}

impl Replay {
    /// A replay numbered `generation`, so the pages of one it replaced are dropped.
    pub(crate) fn new(generation: u64) -> Self {
        Self {
            generation,
            buffered: Vec::new(),
            buffered_bytes: 0,
        }
    }

    /// Which replay this is, checked before each step so a superseded one stops.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

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
    pub(super) fn start_replay(
        &mut self,
        ctx: &mut Context<Self>,
        conn_id: ConnectionId,
        after_seq: i64,
    ) {
        let through = self.durable_seq();
        if after_seq >= through {
            self.sockets.end_replay(conn_id);
            let resumed = ServerFrame::Resumed {
                through_seq: through,
            };
            return self.sockets.send(conn_id, resumed.to_frame());
        }
        let Some(generation) = self.sockets.begin_replay(conn_id) else {
            return;
        };
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
        let limit = self.deps.config.replay_page.max(1);
        let read = move |conn: &mut _, user: &_| {
            let oldest = repo::events::oldest_seq(conn, user)?;
            Ok((
                oldest,
                repo::events::range(conn, user, after, through, limit)?,
            ))
        };
        self.read_then(ctx, "replay", read, move |act, ctx, page| {
            if !act.sockets.replaying(conn_id, generation) {
                return;
            }
            let Ok((oldest, events)) = page else {
                return act.finish_replay(conn_id, Err(Refusal::ReplayUnreadable));
            };
            let last = events.last().map(|e| e.seq);
            let full_page = events.len() as i64 == limit;
            // Retention removed the events before `oldest` (a prefix: the rest has no hole),
            // this page's among them: say where the events go on from.
            let truncated = oldest
                .filter(|oldest| *oldest > after + 1)
                .map(|oldest_seq| Arc::from(ServerFrame::Truncated { oldest_seq }.to_frame()));
            if truncated.is_some() || !events.is_empty() {
                let frames: Frames = truncated
                    .into_iter()
                    .chain(events.iter().map(|e| Arc::from(e.to_frame())))
                    .collect();
                act.sockets.deliver(conn_id, frames);
            }
            let step = match last {
                Some(last) if last < through && full_page => Step::Page { after: last },
                _ => Step::Finish,
            };
            act.when_room(ctx, conn_id, generation, step, through);
        });
    }

    /// Takes the replay's next step once the socket's backlog is within the soft bound, so a
    /// long replay goes at the client's pace instead of piling up in the server (a page can be
    /// large); a client that stops reading is closed by the heartbeat check (`sockets.rs`).
    fn when_room(
        &mut self,
        ctx: &mut Context<Self>,
        conn_id: ConnectionId,
        generation: u64,
        step: Step,
        through: i64,
    ) {
        if !self.sockets.replaying(conn_id, generation) {
            return;
        }
        if !self.sockets.has_room(conn_id) {
            ctx.run_later(REPLAY_ROOM_CHECK, move |act, ctx| {
                act.when_room(ctx, conn_id, generation, step, through)
            });
            return;
        }
        match step {
            Step::Page { after } => self.replay_page(ctx, conn_id, generation, after, through),
            Step::Finish => self.finish_replay(conn_id, Ok(through)),
        }
    }

    /// `resumed` (or, if a page could not be read, the refusal: the client may `resume`
    /// again), then the live frames that waited.
    fn finish_replay(&mut self, conn_id: ConnectionId, through: Result<i64, Refusal>) {
        let Some(replay) = self.sockets.end_replay(conn_id) else {
            return;
        };
        match through {
            Ok(through_seq) => {
                let resumed = ServerFrame::Resumed { through_seq };
                self.sockets.send(conn_id, resumed.to_frame());
            }
            Err(refusal) => self.sockets.send_error(conn_id, refusal.frame(None)),
        }
        if let Some(frames) = replay.take_buffered() {
            self.sockets.deliver(conn_id, frames);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_live_frames_until_the_bound_then_says_too_slow() {
        let mut replay = Replay::new(7);
        assert_eq!(replay.generation(), 7);
        let frame: Arc<str> = Arc::from("x".repeat(100));
        let frames: Frames = Arc::from(vec![frame.clone(), frame]);
        assert!(replay.buffer(frames.clone(), 250), "204 bytes held");
        assert!(
            !replay.buffer(frames, 250),
            "408 bytes would pass the bound"
        );
        let held = replay.take_buffered().expect("frames held");
        assert_eq!(held.len(), 4, "in order, none dropped");
        assert!(Replay::new(8).take_buffered().is_none());
    }
}
