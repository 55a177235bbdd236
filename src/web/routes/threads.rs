//! `GET /api/threads`, `GET /api/threads/{id}/events` and `DELETE /api/threads/{id}`: a user's
//! threads, one thread's stored events, and deletion (through the user's session, which owns
//! the event sequence). Another user's thread is `not_found`, exactly like a missing one.

use actix_web::{HttpResponse, delete, get, web};
use serde::Deserialize;

use crate::context::ThreadId;
use crate::protocol::http::{Deleted, ErrorBody, EventsPage, ThreadList};
use crate::runtime::session::DeleteThread;
use crate::store::repo;
use crate::web::AppState;
use crate::web::error::ApiError;
use crate::web::extract::AuthenticatedUser;
use crate::web::views::thread_summary;

const MAX_EVENTS_PAGE: i64 = 1000;
const DEFAULT_EVENTS_PAGE: i64 = 200;

const MAX_THREADS_PAGE: usize = 200;
const DEFAULT_THREADS_PAGE: usize = 50;

/// `?before=&limit=` of a threads page: the `updated_at` the last page ended at, and how many
/// to send.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ThreadsQuery {
    /// An `updated_at` from the previous page's `next_before`.
    before: Option<i64>,
    /// Threads per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

/// `GET /api/threads`: a page of the caller's threads, most recently updated first, each with
/// its latest run's status, so a client can show its history; `next_before` asks for the next.
#[utoipa::path(get, path = "/api/threads", tag = "threads", security(("bearer" = [])),
    params(ThreadsQuery),
    responses(
        (status = 200, description = "a page of threads", body = ThreadList),
        (status = 400, description = "a bad limit or before", body = ErrorBody)))]
#[get("/api/threads")]
pub async fn list_threads(
    state: web::Data<AppState>,
    AuthenticatedUser(identity): AuthenticatedUser,
    query: web::Query<ThreadsQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_THREADS_PAGE as i64);
    let limit = usize::try_from(limit)
        .ok()
        .filter(|n| (1..=MAX_THREADS_PAGE).contains(n))
        .ok_or_else(|| {
            ApiError::bad_request(format!("limit must be 1-{MAX_THREADS_PAGE}, got {limit}"))
        })?;
    let before = query.before;
    let user = identity.user_id;
    let (rows, next_before) = state
        .db
        .read_account(&user, move |conn, key| {
            Ok(repo::threads::page(conn, key, before, limit)?)
        })
        .await?;
    let threads = rows.into_iter().map(thread_summary).collect();
    Ok(HttpResponse::Ok().json(ThreadList {
        threads,
        next_before,
    }))
}

/// `?after_seq=&limit=` of an events page: where the last page ended and how many to send.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// 0 or more: events after this `seq`.
    #[param(minimum = 0)]
    after_seq: Option<i64>,
    /// Events per page, 1 to 1000 (default 200).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// `GET /api/threads/{id}/events`: a page of one thread's stored events after `after_seq`,
/// with the `seq` to ask from next while more may follow.
#[utoipa::path(get, path = "/api/threads/{id}/events", tag = "threads", security(("bearer" = [])),
    params(("id" = String, Path, description = "a thread id"), EventsQuery),
    responses(
        (status = 200, description = "a page of events", body = EventsPage),
        (status = 400, description = "a bad limit or after_seq", body = ErrorBody),
        (status = 404, description = "no such thread of the caller's", body = ErrorBody)))]
#[get("/api/threads/{id}/events")]
pub async fn thread_events(
    state: web::Data<AppState>,
    AuthenticatedUser(identity): AuthenticatedUser,
    path: web::Path<String>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let raw_id = path.into_inner();
    let thread = ThreadId::parse(&raw_id).map_err(|_| ApiError::not_found("thread", &raw_id))?;
    let after = query.after_seq.unwrap_or(0);
    let limit = query.limit.unwrap_or(DEFAULT_EVENTS_PAGE);
    if after < 0 {
        return Err(ApiError::bad_request("after_seq must be 0 or more"));
    }
    if !(1..=MAX_EVENTS_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1-{MAX_EVENTS_PAGE}, got {limit}"
        )));
    }
    let user = identity.user_id;
    let page = state
        .db
        .read_account(&user, move |conn, key| {
            if !repo::threads::is_owned(conn, key, thread)? {
                return Ok(None);
            }
            Ok(Some(repo::events::for_thread(
                conn, key, thread, after, limit,
            )?))
        })
        .await?;
    let events = page.ok_or_else(|| ApiError::not_found("thread", &raw_id))?;
    let next_after_seq = match events.last() {
        Some(last) if events.len() as i64 == limit => Some(last.seq),
        _ => None,
    };
    Ok(HttpResponse::Ok().json(EventsPage {
        events,
        next_after_seq,
    }))
}

/// `DELETE /api/threads/{id}`: deletes one of the caller's threads and its runs through the
/// user's session, which refuses while a run of it is active (409).
#[utoipa::path(delete, path = "/api/threads/{id}", tag = "threads", security(("bearer" = [])),
    params(("id" = String, Path, description = "a thread id")),
    responses(
        (status = 200, description = "deleted", body = Deleted<String>),
        (status = 404, description = "no such thread of the caller's", body = ErrorBody),
        (status = 409, description = "a run of it is active", body = ErrorBody)))]
#[delete("/api/threads/{id}")]
pub async fn delete_thread(
    state: web::Data<AppState>,
    AuthenticatedUser(identity): AuthenticatedUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let raw_id = path.into_inner();
    let thread = ThreadId::parse(&raw_id).map_err(|_| ApiError::not_found("thread", &raw_id))?;
    let session = state.session_of(&identity.user_id).await?;
    session.send(DeleteThread { thread_id: thread }).await??;
    Ok(HttpResponse::Ok().json(Deleted { deleted: raw_id }))
}
