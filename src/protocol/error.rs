//! `FrameError`: why a client frame or request was refused, with the `ErrorCode` and message
//! the `error` frame answers it with.
//!
//! Parsing (`client.rs`) and the session's checks make these; `ServerFrame::error` sends them.

use crate::error::ErrorCode;

/// A client frame that could not be accepted, with the code and message to answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    /// The PROTOCOL.md code the client sees.
    pub code: ErrorCode,
    /// Lowercase, names the bad value, says what to do.
    pub message: String,
    /// The offending id, echoed as `ref`.
    pub reference: Option<String>,
}

impl FrameError {
    /// A refusal with `code` and `message`, naming no id.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            reference: None,
        }
    }

    /// The most common refusal: a malformed or invalid frame.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// Names the offending `run_id`, `approval_id` or `client_msg_id` (`ref` on the wire).
    pub fn with_ref(mut self, reference: impl Into<String>) -> Self {
        self.reference = Some(reference.into());
        self
    }
}
