//! `Housekeeper`: the deletions nobody waits for. Deleted accounts' rows (listed in
//! `account_purges` by `DELETE /api/account`) are purged a chunk per transaction on the
//! account's writer, so other users' batches go in between and no transaction grows with what
//! an account held. It sweeps at start (finishing what a stopped process left), every
//! `housekeeping_interval`, and when told (`Sweep`).
//!
//! It owns only whether a sweep is running and whether another was asked for meanwhile.

use std::time::Duration;

use actix::prelude::*;

use crate::context::UserId;
use crate::store::{Db, StoreError, repo};

/// Sweep now (an account was just deleted); a sweep already running is followed by another.
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct Sweep;

/// The background deleter.
pub struct Housekeeper {
    /// Where the deletions run.
    db: Db,
    /// Rows deleted per transaction.
    chunk: i64,
    /// Time between sweeps.
    every: Duration,
    /// A sweep is in progress.
    sweeping: bool,
    /// A sweep was asked for while one was in progress.
    again: bool,
}

impl Housekeeper {
    /// Sweeps every `every`, deleting at most `chunk` rows per transaction.
    pub fn new(db: Db, chunk: usize, every: Duration) -> Self {
        Self {
            db,
            chunk: chunk.max(1) as i64,
            every,
            sweeping: false,
            again: false,
        }
    }

    fn sweep(&mut self, ctx: &mut Context<Self>) {
        if std::mem::replace(&mut self.sweeping, true) {
            self.again = true;
            return;
        }
        let (db, chunk) = (self.db.clone(), self.chunk);
        let sweep = async move { purge_deleted_accounts(&db, chunk).await };
        ctx.spawn(sweep.into_actor(self).map(|result, act, ctx| {
            act.sweeping = false;
            match result {
                Ok(0) => {}
                Ok(n) => log::info!("purged {n} row(s) of deleted accounts"),
                Err(e) => log::error!("purging deleted accounts stopped: {e}; next sweep resumes"),
            }
            if std::mem::take(&mut act.again) {
                act.sweep(ctx);
            }
        }));
    }
}

impl Actor for Housekeeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.sweep(ctx);
        ctx.run_interval(self.every.max(Duration::from_millis(10)), |act, ctx| {
            act.sweep(ctx)
        });
    }
}

impl Handler<Sweep> for Housekeeper {
    type Result = ();

    fn handle(&mut self, _: Sweep, ctx: &mut Context<Self>) {
        self.sweep(ctx);
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
        loop {
            let of = key.clone();
            let deleted = db
                .run_as(&key, move |conn| {
                    Ok(repo::accounts::purge_chunk(conn, &of, chunk)?)
                })
                .await?;
            if deleted == 0 {
                log::info!("user={key} deleted account purged");
                break;
            }
            purged += deleted;
        }
    }
    Ok(purged)
}
