//! `ApiError`: an `ErrorCode` with its message as an HTTP response,
//! `{"error":{"code","message","details","id"}}` with PROTOCOL.md §3's status. The `id` names
//! the log line of the answer (and of the internals behind it, which the client never reads).

use std::fmt;

use crate::protocol::http::{ErrorBody, ErrorDetail};
use crate::usage::record::RowError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::auth::AuthError;
use crate::error::ErrorCode;
use crate::runtime::refusal::Refusal;
use crate::store::StoreError;

/// What every HTTP handler fails with: the `ErrorCode` and message a client reads in the JSON
/// error body, sent with the code's status.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    /// The rows refused, for `invalid_rows`.
    details: Vec<RowError>,
    /// Seconds for a `Retry-After` header.
    retry_after: Option<u32>,
    /// Names the log line for this error (`error.id` in the body).
    id: String,
}

impl ApiError {
    /// An error with `code` and a message the client reads (never internals for `internal`).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: Vec::new(),
            retry_after: None,
            id: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    /// Adds the refused rows an `invalid_rows` upload answer lists in `details`.
    pub fn with_details(mut self, details: Vec<RowError>) -> Self {
        self.details = details;
        self
    }

    /// Tells the client when to try again (`Retry-After`), as a 429 for a second upload does.
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The answer for a missing object, and for another user's, which must read the same.
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} {id:?} not found"))
    }

    /// The answer for a malformed query, body or id the client can fix.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
}

/// The HTTP status of each code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::InvalidRows => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::QuotaExceeded | ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_of(self.code)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Some(seconds) = self.retry_after {
            response.insert_header(("Retry-After", seconds.to_string()));
        }
        let id = &self.id;
        if self.status_code().is_server_error() {
            log::warn!("error id={id} {}: {}", self.code.as_str(), self.message);
        } else {
            log::info!("error id={id} {}: {}", self.code.as_str(), self.message);
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
                details: &self.details,
                id,
            },
        })
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::QuotaExceeded { .. } => {
                return Self::new(ErrorCode::QuotaExceeded, e.to_string());
            }
            StoreError::ReadPanicked | StoreError::WritePanicked => {
                // A bug, logged where it happened: the client hears no internals.
                return Self::new(
                    ErrorCode::Internal,
                    "the server failed on a bug while answering; it has been logged",
                );
            }
            _ => {}
        }
        let answer = Self::new(
            ErrorCode::Unavailable,
            "storage unavailable; try again shortly",
        );
        log::error!(
            "error id={} storage error answering a request: {e}",
            answer.id
        );
        answer
    }
}

/// A session's refusal, with its code and message.
impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        Self::new(refusal.code(), refusal.to_string())
    }
}

/// A session or the registry stopped before answering: restarting, or shutting down.
impl From<actix::MailboxError> for ApiError {
    fn from(_: actix::MailboxError) -> Self {
        Refusal::SessionUnavailable.into()
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        Self::new(ErrorCode::Unauthorized, e.to_string())
    }
}
