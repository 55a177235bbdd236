//! `POST /api/dev/token`: in dev mode only, a token for any valid user id, so the bundled page
//! can log in without a token service.

use actix_web::{HttpResponse, post, web};

use crate::context::UserId;
use crate::protocol::http::{DevTokenRequest, ErrorBody, TokenAnswer};
use crate::web::AppState;
use crate::web::error::ApiError;
use crate::web::extract::small_body;

/// `POST /api/dev/token` with `{"user":"alice"}`: a token for that user, so the bundled page
/// can log in; `not_found` unless dev tokens are served.
#[utoipa::path(post, path = "/api/dev/token", tag = "account",
    request_body = DevTokenRequest,
    responses(
        (status = 200, description = "a token", body = TokenAnswer),
        (status = 400, description = "not a user id", body = ErrorBody),
        (status = 404, description = "not in dev mode", body = ErrorBody),
        (status = 413, description = "over 4 KiB", body = ErrorBody)))]
#[post("/api/dev/token")]
pub async fn dev_token(
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    if !state.dev_tokens {
        return Err(ApiError::not_found("route", "/api/dev/token"));
    }
    let body = small_body(payload, 4096).await?;
    let request: DevTokenRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("expected {{\"user\":\"<id>\"}}: {e}")))?;
    let user = UserId::parse(&request.user).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let token = state.auth.issue(&user, state.config.token_ttl)?;
    Ok(HttpResponse::Ok().json(TokenAnswer { token }))
}
