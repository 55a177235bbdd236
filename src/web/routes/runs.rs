//! `GET /api/runs/{id}`, `GET /api/reports/{run_id}.md` and `.html`: one run's status and
//! answer, and its report as markdown or as sanitised HTML. Another user's run is `not_found`.

use actix_web::{HttpResponse, get, web};

use crate::context::{RunId, UserId};
use crate::error::ErrorCode;
use crate::protocol::http::{ErrorBody, RunView};
use crate::store::models::RunRow;
use crate::store::repo;
use crate::web::AppState;
use crate::web::error::ApiError;
use crate::web::extract::AuthenticatedUser;
use crate::web::views::run_view;

/// `GET /api/runs/{id}`: one of the caller's runs, its status, times, error, result and report,
/// for a client that did not watch it on the socket.
#[utoipa::path(get, path = "/api/runs/{id}", tag = "runs", security(("bearer" = [])),
    params(("id" = String, Path, description = "a run id")),
    responses(
        (status = 200, description = "the run", body = RunView),
        (status = 404, description = "no such run of the caller's", body = ErrorBody)))]
#[get("/api/runs/{id}")]
pub async fn get_run(
    state: web::Data<AppState>,
    AuthenticatedUser(identity): AuthenticatedUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let raw_id = path.into_inner();
    let row = users_run(&state, identity.user_id, &raw_id)
        .await?
        .ok_or_else(|| ApiError::not_found("run", &raw_id))?;
    let view = run_view(row)
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "the run could not be read"))?;
    Ok(HttpResponse::Ok().json(view))
}

/// `GET /api/reports/{id}.md`: the report of one of the caller's runs as markdown; `not_found`
/// until the run has one.
#[utoipa::path(get, path = "/api/reports/{id}.md", tag = "runs", security(("bearer" = [])),
    params(("id" = String, Path, description = "a run id")),
    responses(
        (status = 200, description = "the report", content_type = "text/markdown", body = String),
        (status = 404, description = "no such run, or no report yet", body = ErrorBody)))]
#[get("/api/reports/{id}.md")]
pub async fn get_report(
    state: web::Data<AppState>,
    AuthenticatedUser(identity): AuthenticatedUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let report = users_report(&state, identity.user_id, &path.into_inner()).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/markdown; charset=utf-8")
        .body(report))
}

/// `GET /api/reports/{id}.html`: the same report as a sanitised HTML fragment, for the page to
/// insert (`web/markdown.rs`); served so that, opened on its own, nothing in it can run.
#[utoipa::path(get, path = "/api/reports/{id}.html", tag = "runs", security(("bearer" = [])),
    params(("id" = String, Path, description = "a run id")),
    responses(
        (status = 200, description = "the report as sanitised HTML", content_type = "text/html", body = String),
        (status = 404, description = "no such run, or no report yet", body = ErrorBody)))]
#[get("/api/reports/{id}.html")]
pub async fn get_report_html(
    state: web::Data<AppState>,
    AuthenticatedUser(identity): AuthenticatedUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let report = users_report(&state, identity.user_id, &path.into_inner()).await?;
    let html = web::block(move || crate::web::markdown::report_html(&report))
        .await
        .map_err(|_| ApiError::new(ErrorCode::Internal, "the report could not be rendered"))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; frame-ancestors 'none'",
        ))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(html))
}

/// The report of the user's run named `raw_id`; `not_found` while there is none.
async fn users_report(state: &AppState, user: UserId, raw_id: &str) -> Result<String, ApiError> {
    users_run(state, user, raw_id)
        .await?
        .and_then(|row| row.report_markdown)
        .ok_or_else(|| ApiError::not_found("report", raw_id))
}

/// The user's run named `raw_id`; `None` when the id is not a run id, or names no run of
/// this user (another user's run reads as missing).
async fn users_run(
    state: &AppState,
    user: UserId,
    raw_id: &str,
) -> Result<Option<RunRow>, ApiError> {
    let Ok(run) = RunId::parse(raw_id) else {
        return Ok(None);
    };
    Ok(state
        .db
        .read_account(&user, move |conn, key| Ok(repo::runs::get(conn, key, run)?))
        .await?)
}
