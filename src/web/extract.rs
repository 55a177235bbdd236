//! `AuthenticatedUser`: the extractor every protected route takes. It reads the token from
//! `Authorization: Bearer` (`?token=` is for the socket upgrade only) and answers 401 before
//! the handler runs.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use crate::auth::{AuthError, Identity};
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

/// Verifies the request's token (from the header; with `query_allowed`, `?token=` too).
pub fn authenticate(req: &HttpRequest, query_allowed: bool) -> Result<Identity, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::new(crate::error::ErrorCode::Internal, "server misconfigured"))?;
    let token = token_of(req, query_allowed).ok_or(AuthError::Missing)?;
    Ok(state.auth.verify(&token)?)
}

impl FromRequest for AuthenticatedUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req, false).map(AuthenticatedUser))
    }
}
