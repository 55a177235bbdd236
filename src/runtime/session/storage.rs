//! How the session talks to the database: event batches to the user's writer, retried up to
//! `store_retries` times before the core hears they are lost, and reads on the reader pool
//! whose answers continue in the actor (`read_then`).

use actix::prelude::*;

use super::UserSession;
use crate::clock::now_ms;
use crate::context::UserId;
use crate::metrics::LiveCount;
use crate::runtime::session::event_log::write_backoff;
use crate::store::StoreError;
use crate::store::batch::WriteBatch;
use crate::store::connection::DbConnection;

impl UserSession {
    /// Hands `batch` to the writer, retrying up to `store_retries` times; then tells the core
    /// whether it is durable or lost.
    pub(super) fn write(&mut self, ctx: &mut Context<Self>, batch: WriteBatch, attempt: u32) {
        let db = self.deps.db.clone();
        let timer = self.deps.metrics.persist_seconds.start_timer();
        let writing = LiveCount::new(&self.deps.metrics.batches_writing);
        let write = async move {
            let result = db.write(batch.clone()).await;
            drop(writing);
            timer.observe_duration();
            (batch, result)
        };
        ctx.spawn(write.into_actor(self).map(move |(batch, result), act, ctx| {
            match result {
                Ok(()) => {
                    let now = now_ms();
                    for event in &batch.events {
                        let seconds = (now - event.ts).max(0) as f64 / 1000.0;
                        act.deps.metrics.delivery_seconds.observe(seconds);
                    }
                    act.core.batch_stored(&batch);
                }
                Err(StoreError::Fenced { .. }) => return act.fenced(ctx),
                Err(e) if attempt < act.deps.config.store_retries => {
                    let backoff = write_backoff(attempt);
                    log::warn!(
                        "user={} write batch failed (attempt {}), retrying in {backoff:?}: {e}",
                        act.user_id,
                        attempt + 1,
                    );
                    ctx.run_later(backoff, move |act, ctx| act.write(ctx, batch, attempt + 1));
                    return;
                }
                Err(e) => {
                    log::error!(
                        "user={} write batch of {} events lost: {e}",
                        act.user_id,
                        batch.events.len()
                    );
                    act.deps.metrics.lost_batches.inc();
                    act.core.batch_lost(&batch);
                }
            }
            act.perform(ctx);
        }));
    }

    /// Runs `query` for this user on a reader thread, then `then` in the actor with its
    /// result (a failure is logged here, as `what`, and passed on as `Err`).
    pub(super) fn read_then<T, Q, K>(
        &mut self,
        ctx: &mut Context<Self>,
        what: &'static str,
        query: Q,
        then: K,
    ) where
        T: Send + 'static,
        Q: FnOnce(&mut DbConnection, &UserId) -> Result<T, StoreError> + Send + 'static,
        K: FnOnce(&mut Self, &mut Context<Self>, Result<T, ()>) + 'static,
    {
        let db = self.deps.db.clone();
        let user = self.user_id.clone();
        let read = async move { db.read(move |conn| query(conn, &user)).await };
        ctx.spawn(read.into_actor(self).map(move |result, act, ctx| {
            let result = result.map_err(|e| log::error!("user={} {what} failed: {e}", act.user_id));
            then(act, ctx, result);
        }));
    }
}
