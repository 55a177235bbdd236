//! `AuthenticatedUser`: the extractor every protected route takes. It reads the token from
//! `Authorization: Bearer` (`?token=` is for the socket upgrade only) and answers 401 before
//! the handler runs.

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use futures_util::future::LocalBoxFuture;

use crate::auth::{AuthError, Identity};
use crate::runtime::revocations::Honoured;
use crate::web::AppState;
use crate::web::error::ApiError;

/// The verified identity of a request; a handler that takes it runs only for a valid token.
pub struct AuthenticatedUser(pub Identity);

/// The token of a request: from the `Authorization` header, or, where `query_allowed` (the
/// socket upgrade only), from `?token=`. Elsewhere a token in the URL would end up in logs,
/// browser history and `Referer`s.
pub fn token_of(req: &HttpRequest, query_allowed: bool) -> Option<String> {
    if let Some(header) = req.headers().get(actix_web::http::header::AUTHORIZATION) {
        let value = header.to_str().ok()?;
        return value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(|t| t.trim().to_owned());
    }
    if !query_allowed {
        return None;
    }
    web::Query::<TokenQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().token)
}

/// The `?token=` of an upgrade URL, for browsers, which cannot set `Authorization` on a socket.
#[derive(serde::Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

/// Verifies the request's token (from the header; with `query_allowed`, `?token=` too),
/// then that it was not revoked.
pub async fn authenticate(req: &HttpRequest, query_allowed: bool) -> Result<Identity, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::new(crate::error::ErrorCode::Internal, "server misconfigured"))?;
    let token = token_of(req, query_allowed).ok_or(AuthError::Missing)?;
    let identity = state.auth.verify(&token)?;
    let honoured = state
        .revocations
        .send(Honoured {
            subject: identity.user_id.subject().to_owned(),
            issued_at: identity.issued_at,
        })
        .await
        .map_err(|_| {
            ApiError::new(
                crate::error::ErrorCode::Unavailable,
                "the server is stopping",
            )
        })?;
    if !honoured {
        return Err(AuthError::Revoked.into());
    }
    Ok(identity)
}

impl FromRequest for AuthenticatedUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(&req, false).await.map(AuthenticatedUser) })
    }
}

/// A small request body read whole, up to `limit` bytes: beyond it 413 `too_large` in the
/// JSON error shape (actix's own `Bytes` extractor answers its limit in plain text).
pub async fn small_body(mut payload: web::Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    use futures_util::StreamExt;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::new(
                crate::error::ErrorCode::TooLarge,
                format!("the body is over {limit} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
