//! The session's write path: events are queued, numbered when a batch is cut, handed to the
//! writer one batch at a time, and fanned out to the user's sockets only once durable.
//!
//! One batch in flight means the events that arrive meanwhile form the next commit (group
//! commit), and a batch that is finally lost leaves no gap: the next one is numbered from the
//! last durable `seq`.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::clock::now_ms;
use crate::context::{ConnectionId, RunId, ThreadId};
use crate::error::ErrorCode;
use crate::protocol::{Event, EventKind, FrameError};
use crate::runtime::run_slots::Release;
use crate::runtime::run_supervisor::{AbortRun, RunOutcome};
use crate::runtime::session::UserSession;
use crate::runtime::socket::Frames;
use crate::store::batch::{WriteBatch, WriteOp};

/// An event waiting for the next batch, numbered when the batch is cut.
pub(super) struct Pending {
    event: Event,
    op: Option<WriteOp>,
    /// Told when the event is durable (dropped unsent if it is lost).
    notify: Option<oneshot::Sender<()>>,
}

impl UserSession {
    /// Queues an event of `run_id` for the next batch; the caller then calls `flush`, so
    /// events pushed together are stored together.
    pub(super) fn push(
        &mut self,
        thread_id: ThreadId,
        run_id: Option<RunId>,
        agent: Option<String>,
        kind: EventKind,
        data: Value,
        op: Option<WriteOp>,
    ) {
        let event = Event {
            kind,
            seq: 0,
            ts: now_ms(),
            thread_id: Some(thread_id),
            run_id,
            agent,
            data,
        };
        self.pending.push_back(Pending {
            event,
            op,
            notify: None,
        });
    }

    /// Like `push`, and `notify` hears when the event is durable.
    pub(super) fn push_notified(
        &mut self,
        event_thread: ThreadId,
        kind: EventKind,
        data: Value,
        op: WriteOp,
        notify: oneshot::Sender<()>,
    ) {
        self.push(event_thread, None, None, kind, data, Some(op));
        if let Some(last) = self.pending.back_mut() {
            last.notify = Some(notify);
        }
    }

    /// Cuts the next batch from `pending` and hands it to the writer, unless one is in flight.
    pub(super) fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.resting || self.pending.is_empty() {
            return;
        }
        let n = self
            .pending
            .len()
            .min(self.deps.config.batch_max_events.max(1));
        let mut events = Vec::with_capacity(n);
        let mut ops = Vec::new();
        for (i, pending) in self.pending.drain(..n).enumerate() {
            self.in_flight_notify.extend(pending.notify);
            let mut event = pending.event;
            event.seq = self.last_seq + 1 + i as i64;
            if let Some(mut op) = pending.op {
                if let WriteOp::CreateRun { accept_seq, .. } = &mut op {
                    *accept_seq = event.seq;
                }
                ops.push(op);
            }
            events.push(event);
        }
        self.writing = true;
        let batch = WriteBatch {
            user_id: self.user_id.clone(),
            ops,
            events,
        };
        self.write(ctx, batch, 0);
    }

    fn write(&mut self, ctx: &mut Context<Self>, batch: WriteBatch, attempt: u32) {
        let db = self.deps.db.clone();
        let timer = self.deps.metrics.persist_seconds.start_timer();
        let writing = Writing::start(self.deps.metrics.batches_writing.clone());
        let write = async move {
            let result = db.write(batch.clone()).await;
            drop(writing);
            timer.observe_duration();
            (batch, result)
        };
        ctx.spawn(
            write
                .into_actor(self)
                .map(move |(batch, result), act, ctx| match result {
                    Ok(()) => {
                        act.on_durable(batch.events);
                        act.flush(ctx);
                    }
                    Err(e) if attempt < act.deps.config.store_retries => {
                        let backoff = write_backoff(attempt);
                        log::warn!(
                            "user={} write batch failed (attempt {}), retrying in {:?}: {e}",
                            act.user_id,
                            attempt + 1,
                            backoff
                        );
                        ctx.run_later(backoff, move |act, ctx| act.write(ctx, batch, attempt + 1));
                    }
                    Err(e) => {
                        log::error!(
                            "user={} write batch of {} events lost: {e}",
                            act.user_id,
                            batch.events.len()
                        );
                        act.deps.metrics.lost_batches.inc();
                        act.on_write_failed(ctx, batch.events);
                        act.promote(ctx);
                        // While storage stays down, wait longer before each next batch.
                        act.lost_in_a_row += 1;
                        act.resting = true;
                        ctx.run_later(write_backoff(act.lost_in_a_row + 1), |act, ctx| {
                            act.resting = false;
                            act.flush(ctx);
                        });
                    }
                }),
        );
    }

    /// The batch is stored: advance `last_seq`, settle runs and message ids, deliver.
    fn on_durable(&mut self, events: Vec<Event>) {
        self.writing = false;
        self.lost_in_a_row = 0;
        for notify in self.in_flight_notify.drain(..) {
            let _ = notify.send(());
        }
        let Some(last) = events.last() else {
            return;
        };
        self.last_seq = last.seq;
        let frames: Frames = events.iter().map(|e| Arc::from(e.to_frame())).collect();
        let now = now_ms();
        for event in &events {
            let seconds = (now - event.ts).max(0) as f64 / 1000.0;
            self.deps.metrics.delivery_seconds.observe(seconds);
        }
        let mut accepted_keys = Vec::new();
        for (event, frame) in events.iter().zip(frames.iter()) {
            let Some(run_id) = event.run_id else {
                continue;
            };
            let Some(run) = self.runs.get_mut(&run_id) else {
                continue;
            };
            let key = run.client_msg_id.clone();
            if event.kind.is_terminal() {
                self.runs.remove(&run_id);
                if let Some(key) = key {
                    self.msg_id_settled(&key);
                }
            } else if matches!(event.kind, EventKind::RunStarted | EventKind::RunQueued) {
                run.accepted = true;
                if let Some(key) = key {
                    accepted_keys.push((key, frame.clone()));
                }
            }
        }
        self.fan_out(frames);
        // Copies for repeated messages go after the live events: a client that keeps the
        // highest seq it has seen must never see a copy before the events it follows.
        for (key, frame) in accepted_keys {
            self.msg_id_accepted(&key, &frame);
        }
        self.check_drained();
    }

    /// The batch could not be stored and nothing of it was sent. Its runs can no longer show
    /// a gapless story, so each is stopped: one whose acceptance is stored ends `run_failed`
    /// `storage_unavailable` (stored and sent once storage is back); one whose message was
    /// never stored is forgotten and its socket told to send it again.
    fn on_write_failed(&mut self, ctx: &mut Context<Self>, events: Vec<Event>) {
        self.writing = false;
        self.in_flight_notify.clear();
        let mut affected: Vec<RunId> = Vec::new();
        for event in &events {
            if event.kind == EventKind::ThreadCreated
                && let Some(thread_id) = event.thread_id
            {
                self.known_threads.remove(&thread_id);
            }
            if let Some(run_id) = event.run_id
                && !affected.contains(&run_id)
            {
                affected.push(run_id);
            }
        }
        self.pending
            .retain(|p| p.event.run_id.is_none_or(|r| !affected.contains(&r)));
        for run_id in affected {
            let Some(run) = self.runs.get_mut(&run_id) else {
                continue;
            };
            if let Some(supervisor) = run.supervisor() {
                supervisor.do_send(AbortRun);
            }
            if run.accepted {
                let thread_id = run.thread_id;
                let error = "storage unavailable: the run's events could not be stored";
                let outcome = RunOutcome::Failed {
                    code: "storage_unavailable",
                    error: error.to_owned(),
                };
                self.push_run_end(ctx, run_id, thread_id, outcome);
            } else if let Some(run) = self.runs.remove(&run_id) {
                if run.is_queued() {
                    self.deps.metrics.queued_runs.dec();
                }
                if run.holds_user_slot() {
                    self.deps.slots.do_send(Release { run_id });
                }
                let mut error = FrameError::new(
                    ErrorCode::Unavailable,
                    "storage unavailable: the message was not stored; send it again",
                );
                if let Some(id) = &run.client_msg_id {
                    error = error.with_ref(id.clone());
                }
                self.release_msg_id(run.client_msg_id.as_deref(), Some(run.origin), error);
            }
        }
    }

    /// Sends durable frames to every socket (`delivery.rs`).
    fn fan_out(&mut self, frames: Frames) {
        let conn_ids: Vec<ConnectionId> = self.sockets.keys().copied().collect();
        for conn_id in conn_ids {
            self.deliver_live(conn_id, frames.clone());
        }
    }
}

/// Counts a batch with the writer until dropped (also when its session dies meanwhile).
struct Writing(prometheus::IntGauge);

impl Writing {
    fn start(gauge: prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// 100 ms × 2ⁿ, capped at 2 s.
fn write_backoff(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.min(5)).min(2000))
}
