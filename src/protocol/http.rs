//! The JSON bodies of the HTTP API's answers (PROTOCOL.md §3), one type per shape, so the
//! routes in `web/routes/` name their fields once instead of building `json!` objects.
//!
//! Keys are serialised in the order PROTOCOL.md lists them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::analysis::aggregate::{GroupStats, Totals};
use crate::error::ErrorCode;
use crate::protocol::{Event, RunStatus};
use crate::usage::record::RowError;

/// `POST /api/dev/token`'s body: `{"user":"alice"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DevTokenRequest {
    /// The user id to sign a token for (validated as a JWT `sub`).
    pub user: String,
}

/// `POST /api/dev/token`'s answer: `{"token":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenAnswer {
    /// A signed JWT for the user.
    pub token: String,
}

/// What `/healthz` and `/readyz` say when all is well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// `/healthz`: the process answers.
    Ok,
    /// `/readyz`: the database is reachable and migrated.
    Ready,
}

/// `/healthz` and `/readyz`'s answer: `{"status":"ok"}` or `{"status":"ready"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HealthAnswer {
    /// How healthy.
    pub status: Health,
}

/// `GET /api/runs/{id}`: one run's status and answer.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RunView {
    /// The run.
    pub run_id: String,
    /// Its thread.
    pub thread_id: String,
    /// Where it is in its life: `queued`, `running`, `awaiting_approval`, `completed`,
    /// `failed`, `cancelled` or `interrupted`.
    #[schema(value_type = String)]
    pub status: RunStatus,
    /// Unix epoch milliseconds, as are the two below.
    pub created_at: i64,
    /// Null while queued.
    pub started_at: Option<i64>,
    /// Null until it ends.
    pub finished_at: Option<i64>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// `run_completed.result`; null unless completed.
    pub result: Value,
    /// `run_completed.report_markdown`; null unless completed.
    pub report_markdown: Option<String>,
}

/// One thread in `GET /api/threads`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ThreadSummary {
    /// The thread.
    pub thread_id: String,
    /// From its first message.
    pub title: String,
    /// Unix epoch milliseconds.
    pub created_at: i64,
    /// Unix epoch milliseconds of its latest run's latest status change.
    pub updated_at: i64,
    /// Its latest run's status; null before its first run is stored.
    #[schema(value_type = Option<String>)]
    pub last_run_status: Option<RunStatus>,
}

/// `GET /api/threads`: the user's threads, most recently updated first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ThreadList {
    /// Newest first.
    pub threads: Vec<ThreadSummary>,
    /// The `updated_at` to ask the next page `before`; `None` on the last page.
    pub next_before: Option<i64>,
}

/// `GET /api/threads/{id}/events`: one page of a thread's stored events.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EventsPage {
    /// Oldest first, as stored.
    pub events: Vec<Event>,
    /// The `after_seq` of the next page; null on the last page.
    pub next_after_seq: Option<i64>,
}

/// Every HTTP error's body: `{"error":{"code","message","details","id"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// The error itself, under one key so a client tells errors from answers at a glance.
    pub error: ErrorDetail<'a>,
}

/// What went wrong (PROTOCOL.md §3).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail<'a> {
    /// The PROTOCOL.md code, which also gave the HTTP status.
    pub code: ErrorCode,
    /// A sentence for a person: what was wrong and what to do.
    pub message: &'a str,
    /// The rows refused, for `invalid_rows`; empty otherwise.
    pub details: &'a [RowError],
    /// Names the server's log line for this error, for an operator to find it.
    pub id: &'a str,
}

/// A deletion's answer, `{"deleted": …}`: the thread's id, or how many usage records went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Deleted<T> {
    /// What was deleted.
    pub deleted: T,
}

/// `POST /api/usage`'s answer: `{"accepted","rejected","duplicates"}`, plus `details` with
/// `?partial=true`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct IngestAnswer {
    /// Records stored.
    pub accepted: usize,
    /// Rows refused (only with `partial=true`; otherwise a 422).
    pub rejected: usize,
    /// Records whose `id` the user already had, skipped.
    pub duplicates: usize,
    /// Why each refused row was refused (first 100), only with `partial=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<RowError>>,
    /// `true` when the `Idempotency-Key` had already completed: these are the counts it was
    /// answered with then, and nothing was stored now.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
    /// `true` for `?check=true`: the rows were read and checked, nothing was stored, and
    /// `accepted` counts the valid rows (stored ones are not looked up: `duplicates` is 0).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub checked: bool,
    /// The export format read (`format=`, or recognised), absent for enclave's own layout.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub format: Option<&'static str>,
    /// With `format`: the export's fields mapped to record fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields_used: Option<Vec<String>>,
    /// With `format`: the export's fields present and not used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields_ignored: Option<Vec<String>>,
}

/// `GET /api/limits`: the server's limits a client shapes its requests by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Limits {
    /// The largest upload body, in bytes (bigger files go in several uploads).
    pub max_upload_bytes: usize,
    /// The largest WebSocket message, in bytes.
    pub max_message_bytes: usize,
    /// The most characters in a `user_message`'s `content`.
    pub max_content_chars: usize,
    /// The most usage records stored per user.
    pub max_records_per_user: u64,
}

/// `GET /api/usage/summary`: totals per model and workload in the window.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UsageSummary {
    /// The whole window.
    pub totals: Totals,
    /// Per model × workload, largest spend first.
    pub groups: Vec<GroupStats>,
    /// Models priced by tokens only (not in the catalog).
    pub unpriced_models: Vec<String>,
    /// The date of the price catalog used.
    pub catalog_as_of: String,
}
