//! `Housekeeper`: the deletions nobody waits for. Deleted accounts' rows (listed in
//! `account_purges` by `DELETE /api/account`) are purged, and with retention configured, events
//! of ended runs and usage records older than it are removed (`repo::retention`) — each a
//! chunk per transaction on the user's writer, so other users' batches go in between and no
//! transaction grows with what a user holds. It sweeps at start (finishing what a stopped
//! process left), every `housekeeping_interval`, and when told (`Sweep`).
//!
//! It owns only whether a sweep is running and whether another was asked for meanwhile.

use std::time::Duration;

use actix::prelude::*;

use crate::clock::now_ms;
use crate::config::Config;
use crate::context::UserId;
use crate::store::{Db, DbConnection, StoreError, repo};

/// Sweep now (an account was just deleted); a sweep already running is followed by another.
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct Sweep;

/// The server is stopping: no sweep from now on (a transaction already handed to a writer
/// still completes; every chunk is whole on its own).
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct StopSweeping;

/// What a sweep does: rows per transaction, and how long events and usage records are kept.
#[derive(Debug, Clone, Copy)]
struct Rules {
    /// Rows deleted per transaction.
    chunk: i64,
    /// Events of ended runs older than this go (never, if `None`).
    retain_events: Option<Duration>,
    /// Usage records older than this go (never, if `None`).
    retain_usage: Option<Duration>,
}

/// The background deleter.
pub struct Housekeeper {
    /// Where the deletions run.
    db: Db,
    /// What a sweep deletes.
    rules: Rules,
    /// Time between sweeps.
    every: Duration,
    /// A sweep is in progress.
    sweeping: bool,
    /// A sweep was asked for while one was in progress.
    again: bool,
}

impl Housekeeper {
    /// Sweeps every `housekeeping_interval`, deleting at most `bulk_chunk` rows per
    /// transaction, with `config`'s retention.
    pub fn new(db: Db, config: &Config) -> Self {
        Self {
            db,
            rules: Rules {
                chunk: config.bulk_chunk.max(1) as i64,
                retain_events: config.retain_events,
                retain_usage: config.retain_usage,
            },
            every: config.housekeeping_interval,
            sweeping: false,
            again: false,
        }
    }

    /// Sweeps now, unless a sweep is running: then another follows it if `asked` (a `Sweep`
    /// message), while a timer's tick is simply skipped.
    fn sweep(&mut self, ctx: &mut Context<Self>, asked: bool) {
        if std::mem::replace(&mut self.sweeping, true) {
            self.again |= asked;
            return;
        }
        let (db, rules) = (self.db.clone(), self.rules);
        let sweep = async move { sweep(&db, rules).await };
        ctx.spawn(sweep.into_actor(self).map(|result, act, ctx| {
            act.sweeping = false;
            if let Err(e) = result {
                log::error!("housekeeping stopped: {e}; the next sweep resumes");
            }
            if std::mem::take(&mut act.again) {
                act.sweep(ctx, false);
            }
        }));
    }
}

impl Actor for Housekeeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.sweep(ctx, false);
        ctx.run_interval(self.every.max(Duration::from_millis(10)), |act, ctx| {
            act.sweep(ctx, false)
        });
    }
}

impl Handler<StopSweeping> for Housekeeper {
    type Result = ();

    fn handle(&mut self, _: StopSweeping, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<Sweep> for Housekeeper {
    type Result = ();

    fn handle(&mut self, _: Sweep, ctx: &mut Context<Self>) {
        self.sweep(ctx, true);
    }
}

/// One sweep: deleted accounts, then retention.
async fn sweep(db: &Db, rules: Rules) -> Result<(), StoreError> {
    let purged = purge_deleted_accounts(db, rules.chunk).await?;
    if purged > 0 {
        log::info!("purged {purged} row(s) of deleted accounts");
    }
    if let Some(keep) = rules.retain_events {
        let dropped = drop_old_events(db, cutoff(keep), rules.chunk).await?;
        if dropped > 0 {
            log::info!("retention: removed {dropped} event(s) older than {keep:?}");
        }
    }
    if let Some(keep) = rules.retain_usage {
        let dropped = drop_old_usage(db, cutoff(keep), rules.chunk).await?;
        if dropped > 0 {
            log::info!("retention: removed {dropped} usage record(s) older than {keep:?}");
        }
    }
    Ok(())
}

/// The epoch ms before which rows kept for `keep` have expired.
fn cutoff(keep: Duration) -> i64 {
    now_ms().saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX))
}

/// Removes every user's events past retention, user by user; returns how many.
async fn drop_old_events(db: &Db, cutoff: i64, chunk: i64) -> Result<usize, StoreError> {
    let mut dropped = 0;
    let mut after: Option<String> = None;
    loop {
        let from = after.take();
        let next = db
            .read(move |conn| {
                Ok(repo::retention::next_user_with_events(
                    conn,
                    from.as_deref(),
                )?)
            })
            .await?;
        let Some(raw) = next else {
            return Ok(dropped);
        };
        if let Ok(user) = UserId::from_stored(&raw) {
            let due = move |conn: &mut DbConnection, user: &UserId| {
                repo::retention::events_due(conn, user, cutoff)
            };
            dropped += drop_if_due(db, &user, due, move |conn, user| {
                Ok(repo::retention::drop_old_events(conn, user, cutoff, chunk)?)
            })
            .await?;
        }
        after = Some(raw);
    }
}

/// Removes every user's usage records past retention, user by user; returns how many.
async fn drop_old_usage(db: &Db, cutoff: i64, chunk: i64) -> Result<usize, StoreError> {
    let mut dropped = 0;
    let mut after: Option<String> = None;
    loop {
        let from = after.take();
        let users = db
            .read(move |conn| {
                Ok(repo::retention::users_with_usage(
                    conn,
                    from.as_deref(),
                    100,
                )?)
            })
            .await?;
        let Some(last) = users.last().cloned() else {
            return Ok(dropped);
        };
        for raw in users {
            let Ok(user) = UserId::from_stored(&raw) else {
                continue;
            };
            let due = move |conn: &mut DbConnection, user: &UserId| {
                repo::retention::usage_due(conn, user, cutoff)
            };
            dropped += drop_if_due(db, &user, due, move |conn, user| {
                Ok(repo::retention::drop_old_usage(conn, user, cutoff, chunk)?)
            })
            .await?;
        }
        after = Some(last);
    }
}

/// Asks a reader whether `user` has anything `due` — most users have nothing to remove most of
/// the time, and the writer is everyone's — and if so runs `chunk` until none is left.
async fn drop_if_due<D, F>(db: &Db, user: &UserId, due: D, chunk: F) -> Result<usize, StoreError>
where
    D: FnOnce(&mut DbConnection, &UserId) -> diesel::QueryResult<bool> + Send + 'static,
    F: Fn(&mut DbConnection, &UserId) -> Result<usize, StoreError> + Clone + Send + 'static,
{
    let of = user.clone();
    if !db.read(move |conn| Ok(due(conn, &of)?)).await? {
        return Ok(0);
    }
    until_none(db, user, chunk).await
}

/// Runs `chunk` for `user` on the user's writer, a transaction each time, until it deletes
/// nothing; returns the rows deleted.
async fn until_none<F>(db: &Db, user: &UserId, chunk: F) -> Result<usize, StoreError>
where
    F: Fn(&mut DbConnection, &UserId) -> Result<usize, StoreError> + Clone + Send + 'static,
{
    let mut deleted = 0;
    loop {
        let (of, step) = (user.clone(), chunk.clone());
        let n = db.run_as(user, move |conn| step(conn, &of)).await?;
        if n == 0 {
            return Ok(deleted);
        }
        deleted += n;
    }
}

/// Purges every deleted account listed, a chunk per transaction; returns the rows deleted.
async fn purge_deleted_accounts(db: &Db, chunk: i64) -> Result<usize, StoreError> {
    let keys = db.read(|conn| Ok(repo::accounts::purges(conn)?)).await?;
    let mut purged = 0;
    for raw in keys {
        let Ok(key) = UserId::from_stored(&raw) else {
            log::error!("account_purges holds {raw:?}, which is no account key: left alone");
            continue;
        };
        purged += until_none(db, &key, move |conn, key| {
            Ok(repo::accounts::purge_chunk(conn, key, chunk)?)
        })
        .await?;
        log::info!("user={key} deleted account purged");
    }
    Ok(purged)
}
