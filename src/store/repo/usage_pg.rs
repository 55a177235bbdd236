//! PostgreSQL's insert of a chunk of usage records: one statement over column arrays
//! (`unnest`) with 19 parameters whatever the number of rows, instead of a multi-row `VALUES`
//! with 19 parameters a row. A profile of ingest showed the server spending most of its time
//! parsing and analysing each 500-row statement (9,500 parameters; diesel does not keep batch
//! inserts prepared). This one is still sent unprepared (`sql_query` is not cached), but it is
//! short to parse. Duplicate ids are skipped by the unique `(user_id, external_id)` index, as
//! on SQLite.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Double, Integer, Nullable, Text};

use crate::context::UserId;
use crate::usage::record::UsageRecord;

/// The statement: the user, source, time and upload once; each record's columns as arrays.
const INSERT: &str = "INSERT INTO usage_records (record_id, user_id, external_id, ts, model, \
     provider, workload, prompt_tokens, completion_tokens, cached_tokens, latency_ms, max_tokens, \
     cost_usd, prompt_prefix_hash, interactive, status, source, created_at, upload_id) \
     SELECT r.record_id, $1, r.external_id, r.ts, r.model, r.provider, r.workload, \
     r.prompt_tokens, r.completion_tokens, r.cached_tokens, r.latency_ms, r.max_tokens, \
     r.cost_usd, r.prompt_prefix_hash, r.interactive, r.status, $2, $3, $4 \
     FROM unnest($5::text[], $6::text[], $7::bigint[], $8::text[], $9::text[], $10::text[], \
     $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[], $16::float8[], \
     $17::text[], $18::int4[], $19::text[]) AS r(record_id, external_id, ts, model, provider, \
     workload, prompt_tokens, completion_tokens, cached_tokens, latency_ms, max_tokens, \
     cost_usd, prompt_prefix_hash, interactive, status) \
     ON CONFLICT (user_id, external_id) DO NOTHING";

/// Inserts `records` of `user` with `source` at `now` into `upload` (if any), with the record
/// ids `ids` (one per record); returns how many were stored (the rest were duplicates).
pub fn insert(
    conn: &mut PgConnection,
    user: &UserId,
    records: &[UsageRecord],
    ids: Vec<String>,
    (source, now, upload): (&str, i64, Option<&str>),
) -> QueryResult<usize> {
    let column = |f: fn(&UsageRecord) -> i64| records.iter().map(f).collect::<Vec<i64>>();
    let text = |f: fn(&UsageRecord) -> &str| records.iter().map(f).collect::<Vec<&str>>();
    let optional =
        |f: fn(&UsageRecord) -> Option<&str>| records.iter().map(f).collect::<Vec<Option<&str>>>();
    diesel::sql_query(INSERT)
        .bind::<Text, _>(user.as_str())
        .bind::<Text, _>(source)
        .bind::<BigInt, _>(now)
        .bind::<Nullable<Text>, _>(upload)
        .bind::<Array<Text>, _>(ids)
        .bind::<Array<Nullable<Text>>, _>(optional(|r| r.external_id.as_deref()))
        .bind::<Array<BigInt>, _>(column(|r| r.ts))
        .bind::<Array<Text>, _>(text(|r| &r.model))
        .bind::<Array<Nullable<Text>>, _>(optional(|r| r.provider.as_deref()))
        .bind::<Array<Text>, _>(text(|r| &r.workload))
        .bind::<Array<BigInt>, _>(column(|r| r.prompt_tokens))
        .bind::<Array<BigInt>, _>(column(|r| r.completion_tokens))
        .bind::<Array<BigInt>, _>(column(|r| r.cached_tokens))
        .bind::<Array<BigInt>, _>(column(|r| r.latency_ms))
        .bind::<Array<Nullable<BigInt>>, _>(
            records.iter().map(|r| r.max_tokens).collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<Double>>, _>(records.iter().map(|r| r.cost_usd).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(optional(|r| r.prompt_prefix_hash.as_deref()))
        .bind::<Array<Integer>, _>(
            records
                .iter()
                .map(|r| i32::from(r.interactive))
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Text>, _>(text(|r| if r.is_error { "error" } else { "ok" }))
        .execute(conn)
}
