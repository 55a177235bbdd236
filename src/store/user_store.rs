//! `UserStore`: the store as an agent sees it. The runtime binds it to the run's user; each
//! method passes that user's id to the repository itself, so an agent cannot write a query or
//! a write for another user. Reads run on the reader threads and writes on the writer, like
//! every other use of `Db`; nothing here blocks the caller's thread.

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::analysis::aggregate::Aggregates;
use crate::analysis::catalog::Catalog;
use crate::analysis::optimize::Thresholds;
use crate::analysis::window::WindowFacts;
use crate::context::UserId;
use crate::store::bulk::BulkLimits;
use crate::store::repo::usage::{self, Destination, Inserted};
use crate::store::repo::usage_pass::{PassRequest, analyse_window};
use crate::store::{Db, StoreError, bulk};
use crate::usage::record::UsageRecord;

/// Which of the user's records a read covers (`ts` in epoch milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The records with `since <= ts <= until`.
    Between {
        /// The window's first millisecond.
        since: i64,
        /// The window's last millisecond.
        until: i64,
    },
    /// The `span_ms` milliseconds up to the user's latest record (up to 0 with no records), so
    /// a window with no date stated covers the user's most recent data, however old.
    UpToLatest {
        /// How far back from the latest record the window reaches.
        span_ms: i64,
    },
}

/// A window of the user's records, analysed: its bounds as resolved, and what one pass over
/// its records found.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowAnalysis {
    /// The window's first millisecond.
    pub since: i64,
    /// The window's last millisecond.
    pub until: i64,
    /// What every report shows.
    pub aggregates: Aggregates,
    /// What the rules and the plan price from.
    pub facts: WindowFacts,
}

/// The database handle of one user: every query and write is that user's.
#[derive(Clone)]
pub struct UserStore {
    /// The executor threads everything runs on.
    db: Db,
    /// The user every query filters by and every write stores for; set by the runtime.
    user: UserId,
}

impl UserStore {
    /// The store of `user` (the runtime builds one per run, for the run's user).
    pub fn new(db: Db, user: UserId) -> Self {
        Self { db, user }
    }

    /// Whose data this is.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// Analyses the user's records in `window` (skipping uploads still pending) in one pass
    /// on a reader thread (`repo::usage_pass`), priced with `catalog`. Dropping the future stops
    /// the pass at its next page.
    pub async fn analyse_usage(
        &self,
        window: Window,
        catalog: Arc<Catalog>,
        thresholds: Thresholds,
    ) -> Result<WindowAnalysis, StoreError> {
        analyse(&self.db, self.user.clone(), window, catalog, thresholds).await
    }

    /// Stores generated records (`source = synthetic`) in short transactions (see
    /// `bulk::ChunkSizer`), so other users' event batches go in between; ids the user
    /// already has are counted as duplicates, not stored again. A chunk that would take the
    /// user over `limits.max_records` is not stored (`StoreError::QuotaExceeded`).
    pub async fn store_synthetic(
        &self,
        records: Vec<UsageRecord>,
        limits: BulkLimits,
    ) -> Result<Inserted, StoreError> {
        let to = Destination {
            source: "synthetic",
            upload: None,
            max_records: limits.max_records,
        };
        bulk::insert_in_chunks(&self.db, None, &self.user, records, to, limits).await
    }

    /// How many usage records the user has stored (one key lookup).
    pub async fn stored_records(&self) -> Result<u64, StoreError> {
        let user = self.user.clone();
        let count = self
            .db
            .read(move |conn| Ok(usage::stored_count(conn, &user)?))
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}

/// Analyses `user`'s records in `window` on a reader thread (see `UserStore::analyse_usage`;
/// also what `GET /api/usage/summary` answers from).
pub async fn analyse(
    db: &Db,
    user: UserId,
    window: Window,
    catalog: Arc<Catalog>,
    thresholds: Thresholds,
) -> Result<WindowAnalysis, StoreError> {
    // The receiving end lives as long as this future: dropped, the pass sees it between
    // pages and stops.
    let (still_waited_for, _waiting) = oneshot::channel::<()>();
    db.read(move |conn| {
        let (since, until) = match window {
            Window::Between { since, until } => (since, until),
            Window::UpToLatest { span_ms } => {
                let latest = usage::latest_ts(conn, &user)?.unwrap_or(0);
                (latest.saturating_sub(span_ms), latest)
            }
        };
        let request = PassRequest {
            user: &user,
            since,
            until,
            catalog: &catalog,
            thresholds: &thresholds,
        };
        let go_on = || !still_waited_for.is_closed();
        let (aggregates, facts) = analyse_window(conn, &request, &go_on)?;
        Ok(WindowAnalysis {
            since,
            until,
            aggregates,
            facts,
        })
    })
    .await
}
