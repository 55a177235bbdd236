//! Bulk usage data (an upload, synthetic records) written in bounded chunks, each its own short transaction on the
//! writer, so other users' event batches go in between instead of waiting behind one long
//! transaction. The chunks belong to an upload id that stays pending (its records invisible)
//! until the last one is in: a failed or interrupted upload shows nothing, and its rows are
//! discarded (here on failure, at the next start after a crash).

use diesel::Connection;

use crate::clock::now_ms;
use crate::context::UserId;
use crate::faults::Faults;
use crate::store::repo::accounts;
use crate::store::repo::upload_keys::{self, UploadCounts};
use crate::store::repo::usage::{self, Destination, Inserted};
use crate::store::{Db, DbConnection, StoreError, ownership};
use crate::usage::record::UsageRecord;

/// How bulk records are written: how big a transaction may be, and the most a user may hold.
#[derive(Debug, Clone, Copy)]
pub struct BulkLimits {
    /// The most records in one transaction.
    pub chunk: usize,
    /// How long one transaction's inserts should take: chunks are sized to it as the writes
    /// go (`ChunkSizer`), since another user's event batch waits for the chunk in progress.
    pub chunk_time: std::time::Duration,
    /// The user's cap on stored records (`StoreError::QuotaExceeded` beyond it).
    pub max_records: u64,
}

/// An upload to store: whose, its valid records, how many rows were refused, and the
/// `Idempotency-Key` it came with, if any.
pub struct Upload {
    /// Whose records they are.
    pub user: UserId,
    /// The valid records.
    pub records: Vec<UsageRecord>,
    /// Rows the parser refused (recorded with the key).
    pub rejected: usize,
    /// The client's key: recorded with the counts when the upload becomes visible.
    pub key: Option<String>,
}

/// Stores an upload's records as one all-or-nothing upload in short transactions
/// (`ChunkSizer`); an upload that would take the user over `limits.max_records` stores
/// nothing. Its key, if any, is recorded in the transaction that makes the records visible.
pub async fn store_upload(
    db: Db,
    faults: std::sync::Arc<Faults>,
    upload: Upload,
    limits: BulkLimits,
) -> Result<Inserted, StoreError> {
    let Upload {
        user,
        records,
        rejected,
        key,
    } = upload;
    let upload = uuid::Uuid::new_v4().to_string();
    let (owner, id, node) = (user.clone(), upload.clone(), db.node_id().clone());
    db.run_as(&user, move |conn| {
        still_current(conn, &owner)?;
        Ok(usage::begin_upload(conn, &owner, &id, now_ms(), &node)?)
    })
    .await?;
    let delay = faults.bulk_chunk_delay();
    let to = Destination {
        source: "uploaded",
        upload: Some(&upload),
        max_records: limits.max_records,
    };
    let chunks = insert_in_chunks(&db, delay, &user, records, to, limits);
    let stored = match chunks.await {
        Ok(inserted) => {
            let (owner, id) = (user.clone(), upload.clone());
            let counts = UploadCounts {
                accepted: inserted.accepted,
                rejected,
                duplicates: inserted.duplicates,
            };
            db.run_as(&user, move |conn| {
                still_current(conn, &owner)?;
                usage::finish_upload(conn, &owner, &id)?;
                if let Some(key) = &key {
                    upload_keys::record(conn, &owner, key, counts, now_ms())?;
                }
                Ok(())
            })
            .await
            .map(|()| inserted)
        }
        Err(e) => Err(e),
    };
    match stored {
        Ok(inserted) => Ok(inserted),
        Err(e) => {
            if let Err(cleanup) = discard(&db, &user, &upload).await {
                log::error!("user={user} upload {upload} could not be discarded: {cleanup}");
            }
            Err(e)
        }
    }
}

/// Stores `records` of `user` at `to` in short transactions (`ChunkSizer`), so other users'
/// event batches go in between; `chunk_delay` (fault injection) slows each chunk. Stops at the
/// first chunk that fails (one over the cap included), keeping those before it.
pub async fn insert_in_chunks(
    db: &Db,
    chunk_delay: Option<std::time::Duration>,
    user: &UserId,
    records: Vec<UsageRecord>,
    to: Destination<'_>,
    limits: BulkLimits,
) -> Result<Inserted, StoreError> {
    let mut total = Inserted {
        accepted: 0,
        duplicates: 0,
    };
    let mut sizer = ChunkSizer::new(limits);
    let mut rest = records.into_iter();
    loop {
        let part: Vec<UsageRecord> = rest.by_ref().take(sizer.size()).collect();
        if part.is_empty() {
            return Ok(total);
        }
        if let Some(pause) = chunk_delay {
            actix_web::rt::time::sleep(pause).await;
        }
        let (owner, id) = (user.clone(), to.upload.map(str::to_owned));
        let (source, max_records) = (to.source.to_owned(), to.max_records);
        let records = part.len();
        let sent = std::time::Instant::now();
        let (inserted, took) = db
            .run_as(user, move |conn| {
                still_current(conn, &owner)?;
                still_pending(conn, &owner, id.as_deref())?;
                let to = Destination {
                    source: &source,
                    upload: id.as_deref(),
                    max_records,
                };
                let started = std::time::Instant::now();
                let inserted = usage::insert_new_in(conn, &owner, &part, to, now_ms())?;
                Ok((inserted, started.elapsed()))
            })
            .await?;
        log::debug!(
            "user={user} chunk of {records} records: inserted in {took:?}, {:?} with the commit \
             and the queue",
            sent.elapsed()
        );
        sizer.took(records, took);
        total.accepted += inserted.accepted;
        total.duplicates += inserted.duplicates;
    }
}

/// Sizes a bulk write's chunks so each one's inserts take about `BulkLimits::chunk_time`
/// whatever the machine and the database: the chunk in progress is what another user's event
/// batch waits for on the writer. Only the inserts are timed (the records and the count they
/// add); what a chunk costs whatever its size — the account check, the commit, on PostgreSQL a
/// round trip per statement — comes on top and is not shrunk by smaller chunks. Starts small,
/// then follows the time the last chunk took, at most doubling or halving at a step.
#[derive(Debug)]
pub struct ChunkSizer {
    /// Records in the next chunk.
    size: usize,
    /// The most records in one chunk (`BulkLimits::chunk`).
    max: usize,
    /// How long a chunk's inserts should take.
    target: std::time::Duration,
}

impl ChunkSizer {
    /// The first chunk's size (or the most allowed, if that is less).
    const FIRST: usize = 100;
    /// No chunk smaller than this (unless the most allowed is): a commit per few records
    /// would cost more than it saves.
    const LEAST: usize = 10;

    /// A sizer for `limits`.
    pub fn new(limits: BulkLimits) -> Self {
        let max = limits.chunk.max(1);
        Self {
            size: Self::FIRST.min(max),
            max,
            target: limits.chunk_time,
        }
    }

    /// The next chunk's size.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The last chunk, of `records` records, took `took` to insert.
    pub fn took(&mut self, records: usize, took: std::time::Duration) {
        let (records, took) = (records.max(1) as f64, took.as_secs_f64().max(1e-6));
        let fits = records * self.target.as_secs_f64() / took;
        let size = self.size as f64;
        let next = fits.clamp(size / 2.0, size * 2.0) as usize;
        self.size = next.clamp(Self::LEAST.min(self.max), self.max);
    }
}

/// Refuses a write for an account deleted meanwhile (an agent's write queued after the
/// deletion on the same writer): it would land after the purge began, under a key nobody reads.
fn still_current(conn: &mut DbConnection, user: &UserId) -> Result<(), StoreError> {
    if accounts::is_current(conn, user)? {
        Ok(())
    } else {
        Err(StoreError::AccountDeleted)
    }
}

/// Refuses a chunk of an upload no longer pending: another node found this one lost (it was
/// paused past its lease) and discarded the upload; a chunk stored now would be visible at
/// once, part of an upload.
fn still_pending(
    conn: &mut DbConnection,
    user: &UserId,
    upload: Option<&str>,
) -> Result<(), StoreError> {
    match upload {
        Some(upload) if !usage::is_pending(conn, user, upload)? => Err(StoreError::Unavailable(
            "this upload was discarded while this node was out of reach; send it again".into(),
        )),
        _ => Ok(()),
    }
}

/// Deletes a pending upload's records chunk by chunk, then the upload itself.
async fn discard(db: &Db, user: &UserId, upload: &str) -> Result<(), StoreError> {
    loop {
        let (owner, id) = (user.clone(), upload.to_owned());
        let deleted = db
            .run_as(user, move |conn| {
                Ok(usage::discard_upload_chunk(conn, &owner, &id, 5_000)?)
            })
            .await?;
        if deleted == 0 {
            break;
        }
    }
    let (owner, id) = (user.clone(), upload.to_owned());
    db.run_as(user, move |conn| {
        Ok(usage::finish_upload(conn, &owner, &id)?)
    })
    .await
}

/// At start-up, before anything else of this node writes: discards the uploads a stopped
/// process left pending — never one another live node is still writing. Returns how many.
pub fn discard_leftover_uploads(conn: &mut DbConnection, own: &str) -> Result<usize, StoreError> {
    let live = ownership::live_nodes(conn, own)?;
    let pending = usage::pending_uploads(conn, &live)?;
    for (raw_user, upload) in &pending {
        let Ok(user) = UserId::from_stored(raw_user) else {
            continue;
        };
        conn.transaction(|conn| {
            while usage::discard_upload_chunk(conn, &user, upload, 5_000)? > 0 {}
            usage::finish_upload(conn, &user, upload)
        })?;
    }
    Ok(pending.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sizer(chunk: usize, target_ms: u64) -> ChunkSizer {
        ChunkSizer::new(BulkLimits {
            chunk,
            chunk_time: Duration::from_millis(target_ms),
            max_records: 1,
        })
    }

    #[test]
    fn chunks_follow_the_time_they_take_within_their_bounds() {
        let mut s = sizer(500, 3);
        assert_eq!(s.size(), 100);
        // 100 records in 1 ms: 300 would fit, but a step at most doubles.
        s.took(100, Duration::from_millis(1));
        assert_eq!(s.size(), 200);
        s.took(200, Duration::from_micros(1500));
        assert_eq!(s.size(), 400);
        // Never past the most allowed.
        s.took(400, Duration::from_micros(100));
        assert_eq!(s.size(), 500);
        // A slow chunk: 500 records in 10 ms, 150 would fit; a step at most halves.
        s.took(500, Duration::from_millis(10));
        assert_eq!(s.size(), 250);
        // At the target it stays.
        s.took(250, Duration::from_micros(3000));
        assert_eq!(s.size(), 250);
        // Very slow storage: down to the least, not below.
        for _ in 0..20 {
            let size = s.size();
            s.took(size, Duration::from_secs(1));
        }
        assert_eq!(s.size(), ChunkSizer::LEAST);
    }

    #[test]
    fn a_small_most_allowed_bounds_every_chunk() {
        let mut s = sizer(3, 3);
        assert_eq!(s.size(), 3);
        s.took(3, Duration::from_secs(1));
        assert_eq!(
            s.size(),
            3,
            "the least is the most allowed when that is smaller"
        );
        s.took(3, Duration::ZERO);
        assert_eq!(s.size(), 3);
    }
}
