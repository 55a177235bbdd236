//! The lines of `GET /api/export` (PROTOCOL.md §3): everything held about the caller as
//! NDJSON, one object per line with a `kind`. The first line says whose export it is and when;
//! the last, `end`, counts what came before it, so a client can tell a whole export from one
//! cut short (which ends with an `error` line, or with nothing).

use serde::Serialize;
use serde_json::Value;

use super::Event;
use super::http::{RunView, ThreadSummary};

/// One line of an export.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExportLine {
    /// The first line.
    Export {
        /// Whose data it is.
        user_id: String,
        /// When the export started, epoch ms.
        exported_at: i64,
        /// The protocol version the lines follow.
        protocol: u32,
    },
    /// A thread, as `GET /api/threads` lists it.
    Thread(ThreadSummary),
    /// A run, as `GET /api/runs/{id}` shows it, with the message that started it.
    Run(ExportedRun),
    /// A stored event, as a replay sends it.
    Event(Event),
    /// An approval a run asked for, and how it was resolved.
    Approval(ExportedApproval),
    /// A usage record as stored.
    Usage(ExportedUsage),
    /// The last line of a whole export: how many lines of each kind came before it.
    End(ExportCounts),
    /// The export stopped early (storage unavailable); the lines before it are all there is.
    Error {
        /// Why.
        message: String,
    },
}

/// How many lines of each kind an export held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ExportCounts {
    pub threads: u64,
    pub runs: u64,
    pub events: u64,
    pub approvals: u64,
    pub usage: u64,
}

/// A run in an export: its view, and what the user sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportedRun {
    #[serde(flatten)]
    pub view: RunView,
    /// The message that started it.
    pub content: String,
    /// The client's id for that message, if it sent one.
    pub client_msg_id: Option<String>,
}

/// An approval in an export.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportedApproval {
    pub approval_id: String,
    pub run_id: String,
    pub action: String,
    pub summary: String,
    pub details: Value,
    /// `pending`, `approve`, `reject`, `expired`, `cancelled` or `interrupted`.
    pub status: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub resolved_at: Option<i64>,
}

/// A usage record in an export, in the fields an upload uses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportedUsage {
    /// The caller's `id`, if the record had one.
    pub id: Option<String>,
    /// enclave's own id of the record.
    pub record_id: String,
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
    pub interactive: bool,
    /// `ok` or `error`.
    pub status: String,
    /// `uploaded` or `synthetic`.
    pub source: String,
    /// When it was stored, epoch ms.
    pub created_at: i64,
}
