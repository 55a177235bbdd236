//! A window's usage records read for analysis, in one pass and in bounded memory: first the
//! prompt prefix hashes (a `GROUP BY` the database does), then the records oldest first, a page
//! at a time (keyset pagination on `(ts, record_id)`), each fed to a `WindowPass` and dropped.
//! Both reads see one snapshot (a read-only transaction, repeatable read on PostgreSQL), so a
//! concurrent upload is in all of the analysis or none of it. Runs on a reader thread; between
//! pages it asks `go_on` whether anyone still waits for the answer, so a cancelled or timed-out
//! run stops the work, not just the wait.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use crate::analysis::aggregate::Aggregates;
use crate::analysis::catalog::Catalog;
use crate::analysis::optimize::Thresholds;
use crate::analysis::prefixes::Prefixes;
use crate::analysis::window::{WindowFacts, WindowPass};
use crate::context::UserId;
use crate::store::StoreError;
use crate::store::connection::DbConnection;
use crate::store::repo::usage::{StoredColumns, from_row, visible};
use crate::store::schema::usage_records::dsl;

/// Records read per page.
const PAGE: i64 = 10_000;

/// What to analyse: whose records, between which times, priced how.
pub struct PassRequest<'a> {
    /// Whose records.
    pub user: &'a UserId,
    /// The window's first millisecond.
    pub since: i64,
    /// The window's last millisecond.
    pub until: i64,
    /// Prices the records.
    pub catalog: &'a Catalog,
    /// The rules' thresholds (the caching threshold decides which prefixes count).
    pub thresholds: &'a Thresholds,
}

/// Analyses the window `request` names; `go_on` false between pages stops it with
/// `StoreError::Abandoned`.
pub fn analyse_window(
    conn: &mut DbConnection,
    request: &PassRequest<'_>,
    go_on: &dyn Fn() -> bool,
) -> Result<(Aggregates, WindowFacts), StoreError> {
    let postgres = matches!(conn, DbConnection::Pg(_));
    conn.transaction(|conn| {
        if postgres {
            // The first statement of the transaction: one snapshot for both reads.
            conn.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
        }
        pass(conn, request, go_on)
    })
}

/// Both reads of the pass (inside the snapshot).
fn pass(
    conn: &mut DbConnection,
    request: &PassRequest<'_>,
    go_on: &dyn Fn() -> bool,
) -> Result<(Aggregates, WindowFacts), StoreError> {
    let prefixes = prefixes(conn, request)?;
    let mut pass = WindowPass::new(request.catalog, prefixes);
    let mut after: Option<(i64, String)> = None;
    loop {
        if !go_on() {
            return Err(StoreError::Abandoned);
        }
        let page = page(conn, request, after.as_ref())?;
        let Some((last_ts, last_id, _)) = page.last() else {
            break;
        };
        after = Some((*last_ts, last_id.clone()));
        let full = page.len() as i64 == PAGE;
        for (_, _, row) in page {
            pass.add(&from_row(row));
        }
        if !full {
            break;
        }
    }
    Ok(pass.finish())
}

/// One prefix hash of a group: model, workload, hash, uses, shortest prompt.
type PrefixRow = (String, String, Option<String>, i64, Option<i64>);

/// The window's prefix hashes with their uses and shortest prompt.
fn prefixes(conn: &mut DbConnection, request: &PassRequest<'_>) -> Result<Prefixes, StoreError> {
    let rows: Vec<PrefixRow> = dsl::usage_records
        .filter(dsl::user_id.eq(request.user.as_str()))
        .filter(visible())
        .filter(dsl::ts.ge(request.since))
        .filter(dsl::ts.le(request.until))
        .filter(dsl::prompt_prefix_hash.is_not_null())
        .group_by((dsl::model, dsl::workload, dsl::prompt_prefix_hash))
        .select((
            dsl::model,
            dsl::workload,
            dsl::prompt_prefix_hash,
            diesel::dsl::count_star(),
            diesel::dsl::min(dsl::prompt_tokens),
        ))
        .load(conn)?;
    let mut prefixes = Prefixes::new(request.thresholds.caching_min_repeats);
    for (model, workload, hash, uses, shortest) in rows {
        if let Some(hash) = hash {
            let uses = u64::try_from(uses).unwrap_or(0);
            prefixes.add(&model, &workload, &hash, uses, shortest.unwrap_or(0));
        }
    }
    Ok(prefixes)
}

/// One page of records after `after` (`(ts, record_id)`), oldest first.
fn page(
    conn: &mut DbConnection,
    request: &PassRequest<'_>,
    after: Option<&(i64, String)>,
) -> Result<Vec<(i64, String, StoredColumns)>, StoreError> {
    let mut query = dsl::usage_records
        .filter(dsl::user_id.eq(request.user.as_str()))
        .filter(visible())
        .filter(dsl::ts.le(request.until))
        .into_boxed();
    query = match after {
        None => query.filter(dsl::ts.ge(request.since)),
        Some((ts, id)) => query.filter(
            dsl::ts
                .ge(*ts)
                .and(dsl::ts.gt(*ts).or(dsl::record_id.gt(id.clone()))),
        ),
    };
    let rows = query
        .order((dsl::ts.asc(), dsl::record_id.asc()))
        .limit(PAGE)
        .select((
            dsl::ts,
            dsl::record_id,
            (
                dsl::external_id,
                dsl::ts,
                dsl::model,
                dsl::provider,
                dsl::workload,
                (
                    dsl::prompt_tokens,
                    dsl::completion_tokens,
                    dsl::cached_tokens,
                ),
                dsl::latency_ms,
                dsl::max_tokens,
                dsl::cost_usd,
                dsl::prompt_prefix_hash,
                dsl::interactive,
                dsl::status,
            ),
        ))
        .load(conn)?;
    Ok(rows)
}
