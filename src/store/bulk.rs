//! Bulk usage data (an upload, synthetic records) written in bounded chunks, each its own short transaction on the
//! writer, so other users' event batches go in between instead of waiting behind one long
//! transaction. The chunks belong to an upload id that stays pending (its records invisible)
//! until the last one is in: a failed or interrupted upload shows nothing, and its rows are
//! discarded (here on failure, at the next start after a crash).

use crate::clock::now_ms;
use crate::context::UserId;
use crate::faults::Faults;
use crate::store::repo::usage::{self, Inserted};
use crate::store::{Db, DbConnection, StoreError};
use crate::usage::record::UsageRecord;

/// Stores `records` of `user` as one all-or-nothing upload in chunks of `chunk` records.
pub async fn store_upload(
    db: Db,
    faults: std::sync::Arc<Faults>,
    user: UserId,
    records: Vec<UsageRecord>,
    chunk: usize,
) -> Result<Inserted, StoreError> {
    let upload = uuid::Uuid::new_v4().to_string();
    let (owner, id) = (user.clone(), upload.clone());
    db.write_with(move |conn| Ok(usage::begin_upload(conn, &owner, &id, now_ms())?))
        .await?;
    let delay = faults.bulk_chunk_delay();
    let chunks = insert_in_chunks(&db, delay, &user, records, "uploaded", Some(&upload), chunk);
    let stored = match chunks.await {
        Ok(inserted) => {
            let (owner, id) = (user.clone(), upload.clone());
            db.write_with(move |conn| Ok(usage::finish_upload(conn, &owner, &id)?))
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

/// Stores `records` of `user` with `source` (belonging to `upload`, if any) in transactions of
/// at most `chunk` records each, so other users' event batches go in between; `chunk_delay`
/// (fault injection) slows each chunk.
pub async fn insert_in_chunks(
    db: &Db,
    chunk_delay: Option<std::time::Duration>,
    user: &UserId,
    records: Vec<UsageRecord>,
    source: &'static str,
    upload: Option<&str>,
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
        let (owner, id) = (user.clone(), upload.map(str::to_owned));
        let inserted = db
            .write_with(move |conn| {
                Ok(usage::insert_new_in(
                    conn,
                    &owner,
                    &part,
                    source,
                    now_ms(),
                    id.as_deref(),
                )?)
            })
            .await?;
        total.accepted += inserted.accepted;
        total.duplicates += inserted.duplicates;
    }
}

/// Deletes a pending upload's records chunk by chunk, then the upload itself.
async fn discard(db: &Db, user: &UserId, upload: &str) -> Result<(), StoreError> {
    loop {
        let (owner, id) = (user.clone(), upload.to_owned());
        let deleted = db
            .write_with(move |conn| Ok(usage::discard_upload_chunk(conn, &owner, &id, 5_000)?))
            .await?;
        if deleted == 0 {
            break;
        }
    }
    let (owner, id) = (user.clone(), upload.to_owned());
    db.write_with(move |conn| Ok(usage::finish_upload(conn, &owner, &id)?))
        .await
}

/// At start-up, before anything else writes: discards the uploads a stopped process left
/// pending. Returns how many.
pub fn discard_leftover_uploads(conn: &mut DbConnection) -> Result<usize, StoreError> {
    let pending = usage::pending_uploads(conn)?;
    for (raw_user, upload) in &pending {
        let Ok(user) = UserId::parse(raw_user) else {
            continue;
        };
        while usage::discard_upload_chunk(conn, &user, upload, 5_000)? > 0 {}
        usage::finish_upload(conn, &user, upload)?;
    }
    Ok(pending.len())
}
