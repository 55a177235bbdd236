//! Start-up recovery: runs a previous process left queued, running or awaiting approval (it
//! crashed or was killed) end `run_interrupted` `crash` — stored as the next events of their
//! users' sequences, delivered when those users connect or resume — and their pending
//! approvals can no longer be answered.
//!
//! Runs before the server accepts connections, so no session of this node is numbering events
//! meanwhile. Only runs of nodes whose lease is gone are touched (or of no node: older rows),
//! and each user's lease moves on to a new epoch first (`leases::fence_out`), so the lost node
//! can write nothing more of theirs; a user another live node holds is left to it.

use diesel::prelude::*;

use crate::clock::now_ms;
use crate::context::{RunId, ThreadId, UserId};
use crate::protocol::payload::RunInterrupted;
use crate::protocol::{Event, InterruptReason, RunStatus};
use crate::store::schema::{approvals, runs};
use crate::store::status::{ApprovalState, live_run_status_texts, run_status_text};
use crate::store::{DbConnection, StoreError, cluster, leases, ownership, repo};

/// Marks every leftover live run of a lost node interrupted; returns how many. `own` is this
/// server's node.
pub fn interrupt_leftover_runs(conn: &mut DbConnection, own: &str) -> Result<usize, StoreError> {
    let live_nodes = ownership::live_nodes(conn, own)?;
    // The one query across users: which users have leftovers. Everything after is per user.
    let users: Vec<String> = runs::table
        .filter(runs::status.eq_any(live_run_status_texts()))
        .filter(
            runs::node_id
                .is_null()
                .or(runs::node_id.ne_all(&live_nodes)),
        )
        .select(runs::user_id)
        .distinct()
        .load(conn)?;
    let mut interrupted = 0;
    for raw in users {
        let Ok(user) = UserId::from_stored(&raw) else {
            continue;
        };
        match conn.transaction(|conn| interrupt_user(conn, &user, own, &live_nodes)) {
            Ok(n) => interrupted += n,
            // Left for the node that claims the user next (a stalled node's transaction still
            // holds their lease, say).
            Err(e) => log::warn!("user={user} runs left for their next claim: {e}"),
        }
    }
    ownership::forget_lost_nodes(conn, own)?;
    Ok(interrupted)
}

fn interrupt_user(
    conn: &mut DbConnection,
    user: &UserId,
    own: &str,
    live_nodes: &[String],
) -> Result<usize, StoreError> {
    // The lost node is fenced out first, so it can write none of this user's events any more;
    // a user a live node claimed meanwhile is that node's to recover.
    if !leases::fence_out(conn, user, own)? {
        return Ok(0);
    }
    let leftovers: Vec<(String, String)> = runs::table
        .filter(runs::user_id.eq(user.as_str()))
        .filter(runs::status.eq_any(live_run_status_texts()))
        .filter(runs::node_id.is_null().or(runs::node_id.ne_all(live_nodes)))
        .order(runs::created_at.asc())
        .select((runs::run_id, runs::thread_id))
        .load(conn)?;
    let now = now_ms();
    let mut seq = repo::events::last_seq(conn, user)?;
    let mut events = Vec::new();
    for (run, thread) in &leftovers {
        let (Ok(run_id), Ok(thread_id)) = (RunId::parse(run), ThreadId::parse(thread)) else {
            continue;
        };
        seq += 1;
        let payload = RunInterrupted {
            reason: InterruptReason::Crash,
        };
        let event = Event::new(payload, Some(thread_id), Some(run_id), None);
        events.push(Event {
            seq,
            ts: now,
            ..event
        });
        diesel::update(
            runs::table
                .filter(runs::user_id.eq(user.as_str()))
                .filter(runs::run_id.eq(run)),
        )
        .set((
            runs::status.eq(run_status_text(RunStatus::Interrupted)),
            runs::finished_at.eq(now),
        ))
        .execute(conn)?;
        diesel::update(
            approvals::table
                .filter(approvals::user_id.eq(user.as_str()))
                .filter(approvals::run_id.eq(run))
                .filter(approvals::status.eq(ApprovalState::Pending.as_text())),
        )
        .set((
            approvals::status.eq(ApprovalState::Interrupted.as_text()),
            approvals::resolved_at.eq(now),
        ))
        .execute(conn)?;
        repo::threads::set_last_run_status(conn, user, thread_id, RunStatus::Interrupted, now)?;
    }
    repo::events::insert(conn, user, &events)?;
    cluster::notify_followers(conn, &[user.as_str()])?;
    Ok(events.len())
}
