//! A window's usage records read for analysis, in one pass and in bounded memory: first the
//! prompt prefix hashes (a `GROUP BY` the database does), then the records themselves, in no
//! particular order — SQLite steps one statement, PostgreSQL fetches from a cursor a page at a
//! time — each fed to a `WindowPass` and dropped. Records are read in the table's order where
//! that is cheaper: through the index every record is a random page read. On SQLite a window
//! that is a large part of the table is read by scanning the table (`Reach`, six times faster);
//! PostgreSQL's index scans are off for the pass, so it reads them by bitmap (or sequential)
//! scan, five to ten times faster than its index scan over a big window. Both reads
//! see one snapshot (one transaction; read-only and repeatable read on PostgreSQL), so a
//! concurrent upload is in all of the analysis or none of it. Runs on a reader thread; every
//! page it asks `go_on` whether anyone still waits for the answer, so a cancelled or timed-out
//! run stops the work, not just the wait.

use diesel::connection::SimpleConnection;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text};

use crate::analysis::aggregate::Aggregates;
use crate::analysis::catalog::Catalog;
use crate::analysis::optimize::Thresholds;
use crate::analysis::prefixes::Prefixes;
use crate::analysis::window::{WindowFacts, WindowPass};
use crate::context::UserId;
use crate::store::StoreError;
use crate::store::connection::DbConnection;
use crate::store::repo::usage::visible;
use crate::store::schema::usage_records::dsl;
use crate::usage::record::UsageRecord;

/// Records read between two checks that someone still waits (and per cursor fetch).
const PAGE: usize = 10_000;

/// The columns the pass reads, and which records: the caller's, in the window, not part of an
/// upload still being written. Binds: user, since, until.
const SELECT: &str = "SELECT record_id, ts, model, workload, \
     prompt_tokens, completion_tokens, cached_tokens, latency_ms, max_tokens, cost_usd, \
     prompt_prefix_hash, interactive, status FROM usage_records \
     WHERE user_id = {user} AND ts >= {since} AND ts <= {until} \
     AND (upload_id IS NULL OR NOT EXISTS \
     (SELECT 1 FROM pending_uploads p WHERE p.upload_id = usage_records.upload_id))";

/// A record as the SQLite pass reads it, by position.
type SqliteRow = (
    String,
    i64,
    String,
    String,
    (i64, i64, i64, i64),
    Option<i64>,
    Option<f64>,
    Option<String>,
    i32,
    String,
);

/// One record as the pass reads it (the analysis needs neither its external id nor its
/// provider).
#[derive(QueryableByName)]
struct PassRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    record_id: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    ts: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    model: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    workload: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    prompt_tokens: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    completion_tokens: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    cached_tokens: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    latency_ms: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    max_tokens: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    cost_usd: Option<f64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    prompt_prefix_hash: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    interactive: i32,
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
}

impl PassRow {
    /// The record, and its id.
    fn into_record(self) -> (UsageRecord, String) {
        let record = UsageRecord {
            external_id: None,
            ts: self.ts,
            model: self.model,
            provider: None,
            workload: self.workload,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            cached_tokens: self.cached_tokens,
            latency_ms: self.latency_ms,
            max_tokens: self.max_tokens,
            cost_usd: self.cost_usd,
            prompt_prefix_hash: self.prompt_prefix_hash,
            interactive: self.interactive != 0,
            is_error: self.status == "error",
        };
        (record, self.record_id)
    }
}

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

/// Analyses the window `request` names; `go_on` false before a read or between pages stops it
/// with `StoreError::Abandoned`. The sorting at the end happens after the snapshot is let go.
pub fn analyse_window(
    conn: &mut DbConnection,
    request: &PassRequest<'_>,
    go_on: &dyn Fn() -> bool,
) -> Result<(Aggregates, WindowFacts), StoreError> {
    if !go_on() {
        return Err(StoreError::Abandoned);
    }
    // Most runs of most users have no records: one cheap read instead of a pass.
    let any: bool = diesel::select(diesel::dsl::exists(
        dsl::usage_records
            .filter(dsl::user_id.eq(request.user.as_str()))
            .filter(dsl::ts.ge(request.since))
            .filter(dsl::ts.le(request.until)),
    ))
    .get_result(conn)?;
    if !any {
        let prefixes = Prefixes::new(request.thresholds.caching_min_repeats);
        return Ok(WindowPass::new(request.catalog, prefixes).finish());
    }
    let postgres = matches!(conn, DbConnection::Pg(_));
    let pass = conn.transaction(|conn| {
        if postgres {
            // The first statement of the transaction: one snapshot for both reads. Then the
            // records in the table's order (a bitmap scan), not the index's: through the index
            // each record of a big window is a random heap read (1.9 s against 0.36 s for
            // 1,000,000 synthetic records, 4.1 s against 0.36 s for uploaded ones; a table just
            // loaded has no statistics, and a cursor's plan favours the index), and a small
            // window reads few pages either way.
            conn.batch_execute(
                "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; \
                 SET LOCAL enable_indexscan = off",
            )?;
        }
        pass(conn, request, go_on)
    })?;
    Ok(pass.finish())
}

/// Both reads of the pass (inside the snapshot); the pass, every record taken.
fn pass<'a>(
    conn: &mut DbConnection,
    request: &PassRequest<'a>,
    go_on: &dyn Fn() -> bool,
) -> Result<WindowPass<'a>, StoreError> {
    let reach = Reach::choose(conn, request)?;
    let prefixes = prefixes(conn, request, reach)?;
    let mut pass = WindowPass::new(request.catalog, prefixes);
    let mut take = |row: PassRow| {
        let (record, id) = row.into_record();
        pass.add(&record, &id);
    };
    match conn {
        DbConnection::Sqlite(c) => {
            // Columns by position (by name costs a lookup per column per row).
            let rows = dsl::usage_records
                .filter(sql::<Bool>(user_condition(reach)).bind::<Text, _>(request.user.as_str()))
                .filter(visible())
                .filter(dsl::ts.ge(request.since))
                .filter(dsl::ts.le(request.until))
                .select((
                    dsl::record_id,
                    dsl::ts,
                    dsl::model,
                    dsl::workload,
                    (
                        dsl::prompt_tokens,
                        dsl::completion_tokens,
                        dsl::cached_tokens,
                        dsl::latency_ms,
                    ),
                    dsl::max_tokens,
                    dsl::cost_usd,
                    dsl::prompt_prefix_hash,
                    dsl::interactive,
                    dsl::status,
                ))
                .load_iter::<SqliteRow, diesel::connection::DefaultLoadingMode>(c)?;
            for (n, row) in rows.enumerate() {
                if n % PAGE == 0 && !go_on() {
                    return Err(StoreError::Abandoned);
                }
                let (id, ts, model, workload, (prompt, completion, cached, latency), rest) = {
                    let r = row?;
                    (r.0, r.1, r.2, r.3, r.4, (r.5, r.6, r.7, r.8, r.9))
                };
                let (max_tokens, cost_usd, prompt_prefix_hash, interactive, status) = rest;
                take(PassRow {
                    record_id: id,
                    ts,
                    model,
                    workload,
                    prompt_tokens: prompt,
                    completion_tokens: completion,
                    cached_tokens: cached,
                    latency_ms: latency,
                    max_tokens,
                    cost_usd,
                    prompt_prefix_hash,
                    interactive,
                    status,
                });
            }
        }
        DbConnection::Pg(c) => {
            let sql = SELECT
                .replace("{user}", "$1")
                .replace("{since}", "$2")
                .replace("{until}", "$3");
            diesel::sql_query(format!("DECLARE usage_pass NO SCROLL CURSOR FOR {sql}"))
                .bind::<Text, _>(request.user.as_str())
                .bind::<BigInt, _>(request.since)
                .bind::<BigInt, _>(request.until)
                .execute(c)?;
            loop {
                if !go_on() {
                    return Err(StoreError::Abandoned);
                }
                let page: Vec<PassRow> =
                    diesel::sql_query(format!("FETCH {PAGE} FROM usage_pass")).load(c)?;
                let full = page.len() == PAGE;
                page.into_iter().for_each(&mut take);
                if !full {
                    break;
                }
            }
            c.batch_execute("CLOSE usage_pass")?;
        }
    }
    Ok(pass)
}

/// How a pass reaches the user's records on SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Through the index on `(user_id, ts)`: a random page read per record, cheap while the
    /// window is a small part of the table.
    Index,
    /// Reading the whole table in storage order, skipping other users' rows: six times faster
    /// per row than through the index, so the better way once the window is a large part
    /// of the table.
    TableScan,
}

/// A window this share of the table or more is read by scanning the table (`Reach`).
const SCAN_SHARE: i64 = 6;

impl Reach {
    /// Scans the table on SQLite when the window holds a sixth of its rows or more; PostgreSQL's
    /// planner makes that choice itself.
    fn choose(conn: &mut DbConnection, request: &PassRequest<'_>) -> Result<Reach, StoreError> {
        let DbConnection::Sqlite(c) = conn else {
            return Ok(Reach::Index);
        };
        let in_window: i64 = dsl::usage_records
            .filter(dsl::user_id.eq(request.user.as_str()))
            .filter(dsl::ts.ge(request.since))
            .filter(dsl::ts.le(request.until))
            .count()
            .get_result(c)?;
        let table_rows: Option<i64> = diesel::select(sql::<diesel::sql_types::Nullable<BigInt>>(
            "(SELECT max(rowid) FROM usage_records)",
        ))
        .get_result(c)?;
        let scan = in_window > 0 && in_window.saturating_mul(SCAN_SHARE) >= table_rows.unwrap_or(0);
        Ok(if scan { Reach::TableScan } else { Reach::Index })
    }
}

/// The condition on `user_id` (one bind) for `reach`: `|| ''` keeps SQLite off the index.
fn user_condition(reach: Reach) -> &'static str {
    match reach {
        Reach::Index => "usage_records.user_id = ",
        Reach::TableScan => "usage_records.user_id || '' = ",
    }
}

/// One prefix hash of a group: model, workload, hash, uses, shortest prompt.
type PrefixRow = (String, String, Option<String>, i64, Option<i64>);

/// The window's prefix hashes with their uses and shortest prompt.
fn prefixes(
    conn: &mut DbConnection,
    request: &PassRequest<'_>,
    reach: Reach,
) -> Result<Prefixes, StoreError> {
    let query = dsl::usage_records
        .filter(sql::<Bool>(user_condition(reach)).bind::<Text, _>(request.user.as_str()))
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
        ));
    let mut prefixes = Prefixes::new(request.thresholds.caching_min_repeats);
    // Streamed, one hash at a time: only the hashes that qualify are kept.
    let mut fold = |row: PrefixRow| {
        let (model, workload, hash, uses, shortest) = row;
        if let Some(hash) = hash {
            let uses = u64::try_from(uses).unwrap_or(0);
            prefixes.add(&model, &workload, &hash, uses, shortest.unwrap_or(0));
        }
    };
    match conn {
        DbConnection::Sqlite(c) => {
            let rows = query.load_iter::<PrefixRow, diesel::connection::DefaultLoadingMode>(c)?;
            for row in rows {
                fold(row?);
            }
        }
        DbConnection::Pg(c) => {
            let rows = query.load_iter::<PrefixRow, diesel::pg::PgRowByRowLoadingMode>(c)?;
            for row in rows {
                fold(row?);
            }
        }
    }
    Ok(prefixes)
}
