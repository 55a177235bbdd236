//! `ErrorCode`: the error codes of PROTOCOL.md, shared by the WebSocket `error` frame and the
//! HTTP error body.
//!
//! Each module has its own `thiserror` enum; at the edge (web/, the session's answers) those
//! become one of these codes. `web/error.rs` maps a code to its HTTP status.

use serde::Serialize;

/// The closed set of error codes a client may see, in an `error` frame or an HTTP error body;
/// each module's own error becomes one of these at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    NotFound,
    Conflict,
    TooLarge,
    UnsupportedMediaType,
    InvalidRows,
    RateLimited,
    Unavailable,
    /// A per-user limit on stored data would be exceeded.
    QuotaExceeded,
    /// A browser origin this server does not serve.
    Forbidden,
    /// A path served, with a method it does not take.
    MethodNotAllowed,
    /// A request body that did not arrive in time.
    RequestTimeout,
    Internal,
}

impl ErrorCode {
    /// The wire spelling, e.g. `not_found`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::TooLarge => "too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::InvalidRows => "invalid_rows",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::QuotaExceeded => "quota_exceeded",
            Self::Forbidden => "forbidden",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RequestTimeout => "request_timeout",
            Self::Internal => "internal",
        }
    }
}
