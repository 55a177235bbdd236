//! Rows as diesel reads them and `New*` forms as it writes them, one struct per table shape.

use diesel::prelude::*;

use super::schema::{approvals, events, runs, threads, usage_records};
use super::status::{ApprovalState, run_status_of};
use crate::protocol::RunStatus;

/// One stored event of a user's sequence, as replays and `GET /api/threads/{id}/events` read it.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub user_id: String,
    pub seq: i64,
    pub ts: i64,
    pub thread_id: Option<String>,
    pub run_id: Option<String>,
    pub kind: String,
    pub agent: Option<String>,
    /// The event's `data` object as JSON text.
    pub data: String,
}

/// An event row as the writer inserts it, borrowing what it can from the event.
#[derive(Debug, Insertable)]
#[diesel(table_name = events)]
pub struct NewEvent<'a> {
    pub user_id: &'a str,
    pub seq: i64,
    pub ts: i64,
    pub thread_id: Option<String>,
    pub run_id: Option<String>,
    pub kind: &'a str,
    pub agent: Option<&'a str>,
    /// The event's `data` object as JSON text.
    pub data: String,
}

/// One thread of a user, as `GET /api/threads` lists it.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = threads)]
pub struct ThreadRow {
    pub thread_id: String,
    pub user_id: String,
    pub title: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// Written from a `RunStatus` (`status.rs`); read it with `last_status`.
    pub last_run_status: Option<String>,
}

impl ThreadRow {
    /// The status of the thread's latest run; `None` before its first run is stored.
    pub fn last_status(&self) -> Option<RunStatus> {
        self.last_run_status.as_deref().and_then(run_status_of)
    }
}

/// One run of a user, as `GET /api/runs/{id}`, reports and recovery read it.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = runs)]
pub struct RunRow {
    pub run_id: String,
    pub user_id: String,
    pub thread_id: String,
    /// Written from a `RunStatus` (`status.rs`); read it with `run_status`.
    pub status: String,
    pub content: String,
    pub client_msg_id: Option<String>,
    pub accept_seq: Option<i64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
    pub result: Option<String>,
    pub report_markdown: Option<String>,
    /// The server that runs it (`ownership.rs`).
    pub node_id: Option<String>,
}

impl RunRow {
    /// Where the run is in its life; `None` only for a word enclave never writes.
    pub fn run_status(&self) -> Option<RunStatus> {
        run_status_of(&self.status)
    }
}

/// A step of a run that asked for the user's consent.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = approvals)]
pub struct ApprovalRow {
    pub approval_id: String,
    pub user_id: String,
    pub run_id: String,
    pub action: String,
    pub summary: String,
    /// JSON text.
    pub details: String,
    /// `pending`, or how it was resolved: `approve`, `reject`, `expired`, `cancelled`, or
    /// `interrupted` by start-up recovery. Written from an `ApprovalState`; read it with `state`.
    pub status: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub resolved_at: Option<i64>,
}

impl ApprovalRow {
    /// Where the approval is; `None` only for a word enclave never writes.
    pub fn state(&self) -> Option<ApprovalState> {
        ApprovalState::of(&self.status)
    }
}

/// One stored usage record as the user gave it (and its source), as an export reads it.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = usage_records)]
pub struct UsageRow {
    pub record_id: String,
    pub external_id: Option<String>,
    pub ts: i64,
    pub model: String,
    pub provider: Option<String>,
    pub workload: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    pub latency_ms: i64,
    pub max_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    pub prompt_prefix_hash: Option<String>,
    /// 1 or 0.
    pub interactive: i32,
    /// `ok` or `error`.
    pub status: String,
    /// `uploaded` or `synthetic`.
    pub source: String,
    pub created_at: i64,
}
