//! `POST /api/usage` (upload), `GET /api/usage/summary` and `DELETE /api/usage`: a user's LLM
//! usage records in and out.
//!
//! An upload is all-or-nothing unless `?partial=true`; parsing runs off the async arbiters,
//! the insert on the writer in chunks (`store::bulk`, visible only once whole), and the user's
//! session lets one upload at a time through (a second gets 429 with `Retry-After`). An upload
//! with an `Idempotency-Key` that already completed is answered as it was then
//! (`"replayed": true`) and stores nothing.

use actix::Addr;
use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use serde::Deserialize;

use crate::context::UserId;
use crate::error::ErrorCode;
use crate::protocol::http::{Deleted, ErrorBody, IngestAnswer, UsageSummary};
use crate::runtime::session::UserSession;
use crate::runtime::session::{BeginIngest, EndIngest};
use crate::store::bulk::Upload;
use crate::store::repo::upload_keys;
use crate::store::repo::usage::Inserted;
use crate::store::user_store::{Window, analyse};
use crate::store::{self, repo};
use crate::usage::import::{self, ImportFormat, Imported};
use crate::usage::parse::Format;
use crate::usage::record::{UsageRecord, parse_time};
use crate::web::AppState;
use crate::web::error::ApiError;
use crate::web::extract::AuthenticatedUser;
use crate::web::routes::upload_body::read_body;

/// Seconds a client is asked to wait after a refusal that passes (another upload of the
/// user's still running, the account being deleted).
pub(crate) const RETRY_AFTER_SECS: u32 = 2;

/// `?partial=true` on an upload: store the valid rows instead of refusing the whole batch;
/// `?format=`: a provider or gateway export; `?check=true`: read and check the rows, store
/// nothing (a client cutting a big file checks every part before it stores any).
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// Store the valid rows even when some are invalid.
    #[serde(default)]
    partial: bool,
    /// A provider or gateway export: openai, litellm, helicone, langfuse or otel.
    #[param(pattern = "^(openai|litellm|helicone|langfuse|otel)$")]
    format: Option<String>,
    /// Read and check the rows, store nothing.
    #[serde(default)]
    check: bool,
}

/// Releases the user's upload slot when the upload ends, however it ends.
struct IngestSlot(Addr<UserSession>);

impl Drop for IngestSlot {
    fn drop(&mut self) {
        self.0.do_send(EndIngest);
    }
}

/// `POST /api/usage`: ingests the caller's usage records (NDJSON, CSV or a JSON array) and
/// answers how many were accepted, rejected and already stored; one upload per user at a time.
/// With `?check=true` it stops before storing and answers what it would have.
#[utoipa::path(post, path = "/api/usage", tag = "usage", security(("bearer" = [])),
    params(UploadQuery,
        ("Idempotency-Key" = Option<String>, Header, description = "stores the upload once however often it is sent (1 to 200 characters)")),
    request_body(description = "usage records: NDJSON, CSV with a header row, or a JSON array",
        content(
            (Vec<Object> = "application/json"),
            (String = "application/x-ndjson"),
            (String = "text/csv"))),
    responses(
        (status = 200, description = "stored (or checked)", body = IngestAnswer),
        (status = 400, description = "not UTF-8, malformed, or a bad parameter", body = ErrorBody),
        (status = 403, description = "over the user's record quota", body = ErrorBody),
        (status = 408, description = "the body did not arrive in time", body = ErrorBody),
        (status = 413, description = "over the upload limit", body = ErrorBody),
        (status = 415, description = "not NDJSON, CSV or JSON", body = ErrorBody),
        (status = 422, description = "invalid rows, named in details", body = ErrorBody)))]
#[post("/api/usage")]
pub async fn upload(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    AuthenticatedUser(identity): AuthenticatedUser,
    query: web::Query<UploadQuery>,
) -> Result<HttpResponse, ApiError> {
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let format = Format::from_content_type(content_type).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "content type {content_type:?} is not accepted; send application/x-ndjson, \
                 text/csv or application/json"
            ),
        )
    })?;
    let export = match query.format.as_deref() {
        None => None,
        Some(name) => Some(ImportFormat::named(name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "format {name:?} is not one of openai, litellm, helicone, langfuse, otel"
            ))
        })?),
    };
    // A check stores nothing, so it has nothing to de-duplicate.
    let key = idempotency_key(&req)?.filter(|_| !query.check);
    let session = state.session_of(&identity.user_id).await?;
    // The session answers with the key the user's account stores under.
    let account = session
        .send(BeginIngest)
        .await?
        .map_err(|refusal| ApiError::from(refusal).retry_after(RETRY_AFTER_SECS))?;
    let slot = IngestSlot(session);
    let (bytes, _reserved) = read_body(&req, &state, body).await?;
    // Under the slot, so the same key cannot be in flight twice; after the body is read, so
    // the client, still sending, gets the answer rather than a reset connection.
    if let Some(key) = key.clone() {
        let user = account.clone();
        let earlier = state
            .db
            .read(move |conn| Ok(upload_keys::answered(conn, &user, &key)?))
            .await?;
        if let Some(counts) = earlier {
            return Ok(HttpResponse::Ok().json(IngestAnswer {
                accepted: counts.accepted,
                rejected: counts.rejected,
                duplicates: counts.duplicates,
                details: None,
                replayed: true,
                checked: false,
                format: None,
                fields_used: None,
                fields_ignored: None,
            }));
        }
    }

    let (export, imported) = web::block(move || import::read_upload(format, export, &bytes))
        .await
        .map_err(|_| ApiError::new(ErrorCode::Internal, "the upload could not be parsed"))?
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let Imported {
        parsed,
        fields_used,
        fields_ignored,
    } = imported;
    if parsed.rejected > 0 && !query.partial {
        return Err(ApiError::new(
            ErrorCode::InvalidRows,
            format!(
                "{} of {} rows are invalid and nothing was stored; fix them, or send \
                 ?partial=true to store the valid rows",
                parsed.rejected,
                parsed.rejected + parsed.records.len()
            ),
        )
        .with_details(parsed.errors));
    }
    let (accepted, duplicates) = if query.check {
        (parsed.records.len(), 0)
    } else {
        let inserted =
            store_records(&state, account, parsed.records, parsed.rejected, key, slot).await?;
        (inserted.accepted, inserted.duplicates)
    };
    Ok(HttpResponse::Ok().json(IngestAnswer {
        accepted,
        rejected: parsed.rejected,
        duplicates,
        details: query.partial.then_some(parsed.errors),
        replayed: false,
        checked: query.check,
        format: export.map(ImportFormat::as_str),
        fields_used: export.map(|_| fields_used),
        fields_ignored: export.map(|_| fields_ignored),
    }))
}

/// Stores an upload's valid records. Written in chunks between other users' event batches,
/// visible only once all are in; a task of its own, so a client that leaves mid-way does not
/// stop it half-written.
async fn store_records(
    state: &AppState,
    account: UserId,
    records: Vec<UsageRecord>,
    rejected: usize,
    key: Option<String>,
    slot: IngestSlot,
) -> Result<Inserted, ApiError> {
    let writing = Upload {
        user: account,
        records,
        rejected,
        key,
    };
    let writing = store::bulk::store_upload(
        state.db.clone(),
        state.faults.clone(),
        writing,
        state.config.bulk_limits(),
    );
    // The slot goes with the task: a client gone mid-way frees it only when the write is over.
    let writing = async move {
        let inserted = writing.await;
        drop(slot);
        inserted
    };
    let inserted = actix_web::rt::spawn(writing)
        .await
        .map_err(|_| ApiError::new(ErrorCode::Internal, "the upload was interrupted"))??;
    if state.faults.take_lost_upload_answer() {
        return Err(ApiError::new(
            ErrorCode::Internal,
            "the upload was stored, and its answer lost by fault injection",
        ));
    }
    Ok(inserted)
}

/// The longest `Idempotency-Key` accepted.
const MAX_KEY_CHARS: usize = 128;

/// The request's `Idempotency-Key`, if it has one: 1 to 128 visible ASCII characters.
fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("Idempotency-Key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key)
            if (1..=MAX_KEY_CHARS).contains(&key.len())
                && key.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(Some(key.to_owned()))
        }
        _ => Err(ApiError::bad_request(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_CHARS} visible ASCII characters"
        ))),
    }
}

/// `?since=&until=` of a summary, epoch ms or RFC 3339; either may be left open.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// Epoch milliseconds or RFC 3339; open if absent.
    #[param(pattern = "^([0-9]{1,15}|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9:]+))$")]
    since: Option<String>,
    /// Epoch milliseconds or RFC 3339; open if absent.
    #[param(pattern = "^([0-9]{1,15}|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9:]+))$")]
    until: Option<String>,
}

/// `GET /api/usage/summary`: the caller's spend and tokens per model and workload in a window,
/// priced with the catalog in force (whose date it names).
#[utoipa::path(get, path = "/api/usage/summary", tag = "usage", security(("bearer" = [])),
    params(SummaryQuery),
    responses(
        (status = 200, description = "totals per model and workload", body = UsageSummary),
        (status = 400, description = "a bound that is no time", body = ErrorBody)))]
#[get("/api/usage/summary")]
pub async fn summary(
    state: web::Data<AppState>,
    AuthenticatedUser(identity): AuthenticatedUser,
    query: web::Query<SummaryQuery>,
) -> Result<HttpResponse, ApiError> {
    let bound = |name: &str, raw: &Option<String>, default: i64| match raw {
        None => Ok(default),
        Some(raw) => parse_time(raw).map_err(|e| ApiError::bad_request(format!("{name}: {e}"))),
    };
    let since = bound("since", &query.since, 0)?;
    let until = bound("until", &query.until, i64::MAX)?;
    if since > until {
        return Err(ApiError::bad_request("since is after until"));
    }
    let window = Window::Between { since, until };
    let thresholds = state.config.thresholds.clone();
    let account = state.db.account_of(&identity.user_id).await?;
    let analysis = analyse(
        &state.db,
        account,
        window,
        state.catalog.clone(),
        thresholds,
    )
    .await?;
    let aggregates = analysis.aggregates;
    Ok(HttpResponse::Ok().json(UsageSummary {
        totals: aggregates.totals,
        groups: aggregates.groups,
        unpriced_models: aggregates.unpriced_models,
        catalog_as_of: state.catalog.as_of().to_owned(),
    }))
}

/// `?source=all|uploaded|synthetic` of a usage delete; absent means all.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// all (the default), uploaded or synthetic.
    #[param(pattern = "^(all|uploaded|synthetic)$")]
    source: Option<String>,
}

/// `DELETE /api/usage`: deletes the caller's usage records of one source (or all) and answers
/// `{"deleted": N}`.
#[utoipa::path(delete, path = "/api/usage", tag = "usage", security(("bearer" = [])),
    params(DeleteQuery),
    responses(
        (status = 200, description = "how many records went", body = Deleted<u64>),
        (status = 400, description = "an unknown source", body = ErrorBody)))]
#[delete("/api/usage")]
pub async fn delete_usage(
    state: web::Data<AppState>,
    AuthenticatedUser(identity): AuthenticatedUser,
    query: web::Query<DeleteQuery>,
) -> Result<HttpResponse, ApiError> {
    let source = match query.source.as_deref() {
        None | Some("all") => None,
        Some(source @ ("uploaded" | "synthetic")) => Some(source.to_owned()),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "source {other:?} is not one of all, uploaded, synthetic"
            )));
        }
    };
    // On the user's writer, so the account's key read is ordered with its deletion.
    let user = identity.user_id;
    let deleted = state
        .db
        .run_as(&user.clone(), move |conn| {
            let key = repo::accounts::key_of(conn, &user)?;
            Ok(repo::usage::delete(conn, &key, source.as_deref())?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Deleted { deleted }))
}
