//! Stored rows as the API shows them: one conversion per resource, shared by its own route and
//! by `GET /api/export`, so an export shows each thing exactly as the other routes do.

use serde_json::Value;

use crate::protocol::export::{ExportedApproval, ExportedRun, ExportedUsage};
use crate::protocol::http::{RunView, ThreadSummary};
use crate::store::models::{ApprovalRow, RunRow, ThreadRow, UsageRow};

/// A thread as `GET /api/threads` lists it.
pub fn thread_summary(row: ThreadRow) -> ThreadSummary {
    ThreadSummary {
        last_run_status: row.last_status(),
        thread_id: row.thread_id,
        title: row.title,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// A run as `GET /api/runs/{id}` shows it; `None` for a status word enclave never writes
/// (logged).
pub fn run_view(row: RunRow) -> Option<RunView> {
    let Some(status) = row.run_status() else {
        log::error!("run {} has the unknown status {:?}", row.run_id, row.status);
        return None;
    };
    Some(RunView {
        status,
        result: json_or_null(row.result.as_deref()),
        run_id: row.run_id,
        thread_id: row.thread_id,
        created_at: row.created_at,
        started_at: row.started_at,
        finished_at: row.finished_at,
        error: row.error,
        report_markdown: row.report_markdown,
    })
}

/// A run in an export: its view and the message that started it.
pub fn exported_run(mut row: RunRow) -> Option<ExportedRun> {
    let content = std::mem::take(&mut row.content);
    let client_msg_id = row.client_msg_id.take();
    Some(ExportedRun {
        view: run_view(row)?,
        content,
        client_msg_id,
    })
}

/// An approval in an export.
pub fn exported_approval(row: ApprovalRow) -> ExportedApproval {
    ExportedApproval {
        details: json_or_null(Some(&row.details)),
        approval_id: row.approval_id,
        run_id: row.run_id,
        action: row.action,
        summary: row.summary,
        status: row.status,
        created_at: row.created_at,
        expires_at: row.expires_at,
        resolved_at: row.resolved_at,
    }
}

/// A usage record in an export.
pub fn exported_usage(row: UsageRow) -> ExportedUsage {
    ExportedUsage {
        id: row.external_id,
        record_id: row.record_id,
        ts: row.ts,
        model: row.model,
        provider: row.provider,
        workload: row.workload,
        prompt_tokens: row.prompt_tokens,
        completion_tokens: row.completion_tokens,
        cached_tokens: row.cached_tokens,
        latency_ms: row.latency_ms,
        max_tokens: row.max_tokens,
        cost_usd: row.cost_usd,
        prompt_prefix_hash: row.prompt_prefix_hash,
        interactive: row.interactive != 0,
        status: row.status,
        source: row.source,
        created_at: row.created_at,
    }
}

/// Stored JSON text as a value (`null` when absent or unreadable).
fn json_or_null(text: Option<&str>) -> Value {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null)
}
