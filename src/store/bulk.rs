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
use crate::store::{Db, DbConnection, StoreError};
use crate::usage::record::UsageRecord;

/// How bulk records are written: records per transaction, and the most a user may hold.
#[derive(Debug, Clone, Copy)]
pub struct BulkLimits {
    /// Records per transaction.
    pub chunk: usize,
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

/// Stores an upload's records as one all-or-nothing upload in transactions of
/// `limits.chunk` records; an upload that would take the user over `limits.max_records` stores
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
    let (owner, id) = (user.clone(), upload.clone());
    db.run_as(&user, move |conn| {
        still_current(conn, &owner)?;
        Ok(usage::begin_upload(conn, &owner, &id, now_ms())?)
    })
    .await?;
    let delay = faults.bulk_chunk_delay();
    let to = Destination {
        source: "uploaded",
        upload: Some(&upload),
        max_records: limits.max_records,
    };
    let chunks = insert_in_chunks(&db, delay, &user, records, to, limits.chunk);
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

/// Stores `records` of `user` at `to` in transactions of at most `chunk` records each, so
/// other users' event batches go in between; `chunk_delay` (fault injection) slows each chunk.
/// Stops at the first chunk that fails (one over the cap included), keeping those before it.
pub async fn insert_in_chunks(
    db: &Db,
    chunk_delay: Option<std::time::Duration>,
    user: &UserId,
    records: Vec<UsageRecord>,
    to: Destination<'_>,
    chunk: usize,
) -> Result<Inserted, StoreError> {
    let mut total = Inserted {
        accepted: 0,
        duplicates: 0,
    };
    let mut rest = records.into_iter();
    loop {
        let part: Vec<UsageRecord> = rest.by_ref().take(chunk.max(1)).collect();
        if part.is_empty() {
            return Ok(total);
        }
        if let Some(pause) = chunk_delay {
            actix_web::rt::time::sleep(pause).await;
        }
        let (owner, id) = (user.clone(), to.upload.map(str::to_owned));
        let (source, max_records) = (to.source.to_owned(), to.max_records);
        let inserted = db
            .run_as(user, move |conn| {
                still_current(conn, &owner)?;
                let to = Destination {
                    source: &source,
                    upload: id.as_deref(),
                    max_records,
                };
                usage::insert_new_in(conn, &owner, &part, to, now_ms())
            })
            .await?;
        total.accepted += inserted.accepted;
        total.duplicates += inserted.duplicates;
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

/// At start-up, before anything else writes: discards the uploads a stopped process left
/// pending. Returns how many.
pub fn discard_leftover_uploads(conn: &mut DbConnection) -> Result<usize, StoreError> {
    let pending = usage::pending_uploads(conn)?;
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
