//! `UserStore`: the store as an agent sees it. The runtime binds it to the run's user; each
//! method passes that user's id to the repository itself, so an agent cannot write a query or
//! a write for another user. Reads run on the reader threads and writes on the writer, like
//! every other use of `Db`; nothing here blocks the caller's thread.

use crate::context::UserId;
use crate::store::repo::usage::{self, Inserted};
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

/// The user's records in a window, with the window's bounds as resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRecords {
    /// The window's first millisecond.
    pub since: i64,
    /// The window's last millisecond.
    pub until: i64,
    /// The records in it, oldest first.
    pub records: Vec<UsageRecord>,
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

    /// The user's records in `window` (skipping uploads still pending), read in one go on a
    /// reader thread.
    pub async fn usage_in(&self, window: Window) -> Result<WindowRecords, StoreError> {
        let user = self.user.clone();
        self.db
            .read(move |conn| {
                let (since, until) = match window {
                    Window::Between { since, until } => (since, until),
                    Window::UpToLatest { span_ms } => {
                        let latest = usage::latest_ts(conn, &user)?.unwrap_or(0);
                        (latest - span_ms, latest)
                    }
                };
                let records = usage::in_window(conn, &user, since, until)?;
                Ok(WindowRecords {
                    since,
                    until,
                    records,
                })
            })
            .await
    }

    /// Stores generated records (`source = synthetic`) in transactions of at most `chunk`
    /// records each, so other users' event batches go in between; ids the user already has are
    /// counted as duplicates, not stored again.
    pub async fn store_synthetic(
        &self,
        records: Vec<UsageRecord>,
        chunk: usize,
    ) -> Result<Inserted, StoreError> {
        bulk::insert_in_chunks(
            &self.db,
            None,
            &self.user,
            records,
            "synthetic",
            None,
            chunk,
        )
        .await
    }
}
