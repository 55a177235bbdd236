//! `WriteBatch`: what one user session hands the writer in one go — row changes and the events
//! that announce them — applied in one transaction, rolled back whole on error.
//!
//! Keeping a run's row change in the same transaction as its event means the runs table and
//! the event stream never disagree.

use diesel::Connection;

use crate::context::{ApprovalId, RunId, ThreadId, UserId};
use crate::protocol::{ApprovalOutcome, Event, RunStatus};
use crate::store::connection::DbConnection;
use crate::store::models::{ApprovalRow, RunRow};
use crate::store::repo::{self, runs::RunEnd};
use crate::store::status::{ApprovalState, run_status_text};

/// One row change in a batch; the user comes from the batch.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    CreateThread {
        thread_id: ThreadId,
        title: String,
        ts: i64,
    },
    CreateRun {
        run_id: RunId,
        thread_id: ThreadId,
        /// `Running` or `Queued`.
        status: RunStatus,
        content: String,
        client_msg_id: Option<String>,
        accept_seq: i64,
        ts: i64,
    },
    /// A queued run starts.
    MarkRunning {
        run_id: RunId,
        thread_id: ThreadId,
        ts: i64,
    },
    FinishRun {
        run_id: RunId,
        thread_id: ThreadId,
        end: RunEnd,
    },
    /// A run asks for consent (and waits, `awaiting_approval`).
    CreateApproval {
        approval_id: ApprovalId,
        run_id: RunId,
        thread_id: ThreadId,
        action: String,
        summary: String,
        details: String,
        ts: i64,
        expires_at: i64,
    },
    /// The approval is answered, expired or cancelled; the run goes on (`running`).
    ResolveApproval {
        approval_id: ApprovalId,
        run_id: RunId,
        thread_id: ThreadId,
        outcome: ApprovalOutcome,
        ts: i64,
    },
    /// The thread, its runs and its events' contents go (before the batch's own events are
    /// written, so `thread_deleted` itself stays).
    DeleteThread { thread_id: ThreadId },
}

/// Everything one session flushes at once.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteBatch {
    pub user_id: UserId,
    pub ops: Vec<WriteOp>,
    pub events: Vec<Event>,
    /// The epoch of the writing session's claim on the user (`leases.rs`), checked in the
    /// batch's transaction; `None` on SQLite, where one node owns every user.
    pub lease: Option<i64>,
}

impl WriteBatch {
    /// Applies the batch in one transaction; runs it creates are owned by `node_id`.
    pub fn apply(&self, conn: &mut DbConnection, node_id: &str) -> diesel::QueryResult<()> {
        conn.transaction(|conn| self.apply_within(conn, node_id))
    }

    /// Applies the batch inside the caller's transaction.
    pub fn apply_within(&self, conn: &mut DbConnection, node_id: &str) -> diesel::QueryResult<()> {
        apply_group(conn, std::slice::from_ref(self), node_id)
    }
}

/// Applies `batches` (of any users) inside the caller's transaction, in order: each batch's row
/// changes, then its events, which are gathered into as few insert statements as the order
/// allows (a thread deletion erases the events stored before it, so those go in first).
pub fn apply_group<'a>(
    conn: &mut DbConnection,
    batches: impl IntoIterator<Item = &'a WriteBatch>,
    node_id: &str,
) -> diesel::QueryResult<()> {
    let mut rows = Vec::new();
    for batch in batches {
        if batch
            .ops
            .iter()
            .any(|op| matches!(op, WriteOp::DeleteThread { .. }))
        {
            repo::events::insert_rows(conn, &rows)?;
            rows.clear();
        }
        for op in &batch.ops {
            apply_op(conn, &batch.user_id, node_id, op)?;
        }
        rows.extend(repo::events::rows_of(&batch.user_id, &batch.events));
    }
    repo::events::insert_rows(conn, &rows)
}

fn apply_op(
    conn: &mut DbConnection,
    user: &UserId,
    node_id: &str,
    op: &WriteOp,
) -> diesel::QueryResult<()> {
    match op {
        WriteOp::CreateThread {
            thread_id,
            title,
            ts,
        } => repo::threads::insert(conn, user, *thread_id, title, *ts),
        WriteOp::CreateRun {
            run_id,
            thread_id,
            status,
            content,
            client_msg_id,
            accept_seq,
            ts,
        } => {
            let row = RunRow {
                run_id: run_id.to_string(),
                user_id: user.as_str().to_owned(),
                thread_id: thread_id.to_string(),
                status: run_status_text(*status).to_owned(),
                content: content.clone(),
                client_msg_id: client_msg_id.clone(),
                accept_seq: Some(*accept_seq),
                created_at: *ts,
                started_at: (*status == RunStatus::Running).then_some(*ts),
                finished_at: None,
                error: None,
                result: None,
                report_markdown: None,
                node_id: Some(node_id.to_owned()),
            };
            repo::runs::insert(conn, user, row)?;
            repo::threads::set_last_run_status(conn, user, *thread_id, *status, *ts)
        }
        WriteOp::CreateApproval {
            approval_id,
            run_id,
            thread_id,
            action,
            summary,
            details,
            ts,
            expires_at,
        } => {
            let row = ApprovalRow {
                approval_id: approval_id.to_string(),
                user_id: user.as_str().to_owned(),
                run_id: run_id.to_string(),
                action: action.clone(),
                summary: summary.clone(),
                details: details.clone(),
                status: ApprovalState::Pending.as_text().to_owned(),
                created_at: *ts,
                expires_at: *expires_at,
                resolved_at: None,
            };
            repo::approvals::insert(conn, user, row)?;
            let status = RunStatus::AwaitingApproval;
            repo::runs::set_status(conn, user, *run_id, status)?;
            repo::threads::set_last_run_status(conn, user, *thread_id, status, *ts)
        }
        WriteOp::ResolveApproval {
            approval_id,
            run_id,
            thread_id,
            outcome,
            ts,
        } => {
            let state = ApprovalState::Resolved(*outcome);
            repo::approvals::resolve(conn, user, *approval_id, state, *ts)?;
            repo::runs::set_status(conn, user, *run_id, RunStatus::Running)?;
            repo::threads::set_last_run_status(conn, user, *thread_id, RunStatus::Running, *ts)
        }
        WriteOp::DeleteThread { thread_id } => repo::threads::delete(conn, user, *thread_id),
        WriteOp::MarkRunning {
            run_id,
            thread_id,
            ts,
        } => {
            repo::runs::mark_running(conn, user, *run_id, *ts)?;
            repo::threads::set_last_run_status(conn, user, *thread_id, RunStatus::Running, *ts)
        }
        WriteOp::FinishRun {
            run_id,
            thread_id,
            end,
        } => {
            repo::runs::finish(conn, user, *run_id, end.clone())?;
            repo::threads::set_last_run_status(conn, user, *thread_id, end.status, end.finished_at)
        }
    }
}
