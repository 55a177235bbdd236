//! Rows as diesel reads them and `New*` forms as it writes them, one struct per table shape.

use diesel::prelude::*;

use super::schema::{events, runs, threads};

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

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = threads)]
pub struct ThreadRow {
    pub thread_id: String,
    pub user_id: String,
    pub title: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_run_status: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = runs)]
pub struct RunRow {
    pub run_id: String,
    pub user_id: String,
    pub thread_id: String,
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
}
