//! `GET /api/export`: everything held about the caller — threads, runs, events, approvals,
//! usage — as NDJSON (`protocol::export`), streamed: a task reads one page at a time on the
//! reader threads (no reader held for the whole export) and hands each page to the response
//! through a small channel, so a slow client slows the reads instead of filling memory, and a
//! client gone stops them. Pages are separate reads, not one snapshot: what changes during an
//! export may or may not be in it.

use actix_web::{HttpResponse, get, web};
use futures_util::stream;
use tokio::sync::mpsc;
use web_bytes::Bytes;

use crate::clock::now_ms;
use crate::context::UserId;
use crate::protocol::PROTOCOL_VERSION;
use crate::protocol::export::{ExportCounts, ExportLine};
use crate::store::repo::pages::{PageRead, read_approvals, read_events, read_runs, read_usage};
use crate::store::{Db, StoreError, repo};
use crate::web::AppState;
use crate::web::error::ApiError;
use crate::web::extract::AuthenticatedUser;
use crate::web::views::{exported_approval, exported_run, exported_usage, thread_summary};

/// Rows per read.
const PAGE: i64 = 1000;

/// Pages ready ahead of the client.
const PAGES_AHEAD: usize = 2;

/// `GET /api/export`: the caller's data as NDJSON, one object per line with a `kind`.
#[utoipa::path(get, path = "/api/export", tag = "account", security(("bearer" = [])),
    responses((status = 200, description = "everything held about the caller, one JSON object per line with a `kind`", content_type = "application/x-ndjson", body = String)))]
#[get("/api/export")]
pub async fn export(
    state: web::Data<AppState>,
    AuthenticatedUser(identity): AuthenticatedUser,
) -> Result<HttpResponse, ApiError> {
    let (pages, receiver) = mpsc::channel::<Bytes>(PAGES_AHEAD);
    let db = state.db.clone();
    let subject = identity.user_id;
    // The account's rows are read under its key, read once: a deletion meanwhile does not
    // mix a new account's rows into the old one's export.
    let user = db.account_of(&subject).await?;
    actix_web::rt::spawn(async move {
        let mut out = Lines {
            pages,
            buffer: Vec::new(),
        };
        out.push(&ExportLine::Export {
            user_id: subject.as_str().to_owned(),
            exported_at: now_ms(),
            protocol: PROTOCOL_VERSION,
        });
        let last = match write_all(&db, &user, &mut out).await {
            Ok(Some(counts)) => ExportLine::End(counts),
            Ok(None) => return,
            Err(e) => {
                log::error!("user={user} export stopped: {e}");
                ExportLine::Error {
                    message: "storage unavailable; the export is incomplete".into(),
                }
            }
        };
        out.push(&last);
        out.flush().await;
    });
    let body = stream::unfold(receiver, |mut receiver| async move {
        let page = receiver.recv().await?;
        Some((Ok::<_, actix_web::Error>(page), receiver))
    });
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(body))
}

/// NDJSON lines gathered into one chunk per page.
struct Lines {
    pages: mpsc::Sender<Bytes>,
    buffer: Vec<u8>,
}

impl Lines {
    fn push(&mut self, line: &ExportLine) {
        // Serialising plain data to a Vec does not fail; a line that did would be left out.
        if serde_json::to_writer(&mut self.buffer, line).is_ok() {
            self.buffer.push(b'\n');
        }
    }

    /// Sends what is gathered; `false` when the client has gone.
    async fn flush(&mut self) -> bool {
        let page = Bytes::from(std::mem::take(&mut self.buffer));
        page.is_empty() || self.pages.send(page).await.is_ok()
    }
}

/// Writes every line after the first; the counts, or `None` when the client went away.
async fn write_all(
    db: &Db,
    user: &UserId,
    out: &mut Lines,
) -> Result<Option<ExportCounts>, StoreError> {
    let mut counts = ExportCounts::default();
    let owner = user.clone();
    let threads = db
        .read(move |conn| Ok(repo::threads::list(conn, &owner)?))
        .await?;
    for row in threads {
        out.push(&ExportLine::Thread(thread_summary(row)));
        counts.threads += 1;
    }
    if !out.flush().await {
        return Ok(None);
    }
    // Each kind page by page, read after the last key of the page before.
    let Some(runs) = each_page(
        db,
        user,
        out,
        read_runs,
        |r| r.run_id.clone(),
        |row| exported_run(row).map(ExportLine::Run),
    )
    .await?
    else {
        return Ok(None);
    };
    let Some(events) = each_page(
        db,
        user,
        out,
        read_events,
        |e| e.seq,
        |event| Some(ExportLine::Event(event)),
    )
    .await?
    else {
        return Ok(None);
    };
    let Some(approvals) = each_page(
        db,
        user,
        out,
        read_approvals,
        |r| r.approval_id.clone(),
        |row| Some(ExportLine::Approval(exported_approval(row))),
    )
    .await?
    else {
        return Ok(None);
    };
    let Some(usage) = each_page(
        db,
        user,
        out,
        read_usage,
        |r| (r.ts, r.record_id.clone()),
        |row| Some(ExportLine::Usage(exported_usage(row))),
    )
    .await?
    else {
        return Ok(None);
    };
    counts.runs = runs;
    counts.events = events;
    counts.approvals = approvals;
    counts.usage = usage;
    Ok(Some(counts))
}

/// Sends every row `read` finds, a page at a time, as the lines `line` makes of them; how many
/// lines, or `None` when the client went away.
async fn each_page<R, K>(
    db: &Db,
    user: &UserId,
    out: &mut Lines,
    read: PageRead<R, K>,
    key: fn(&R) -> K,
    line: impl Fn(R) -> Option<ExportLine>,
) -> Result<Option<u64>, StoreError>
where
    R: Send + 'static,
    K: Send + 'static,
{
    let mut sent = 0;
    let mut after: Option<K> = None;
    loop {
        let (owner, from) = (user.clone(), after.take());
        let rows = db
            .read(move |conn| Ok(read(conn, &owner, from.as_ref(), PAGE)?))
            .await?;
        let Some(last) = rows.last().map(key) else {
            return Ok(Some(sent));
        };
        after = Some(last);
        for row in rows {
            if let Some(line) = line(row) {
                out.push(&line);
                sent += 1;
            }
        }
        if !out.flush().await {
            return Ok(None);
        }
    }
}
