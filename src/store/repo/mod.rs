//! Plain functions over a `DbConnection`, one file per table. Each takes the user's id right
//! after the connection and filters by it, so no query can reach another user's rows.

pub mod accounts;
pub mod approvals;
pub mod events;
pub mod pages;
pub mod retention;
pub mod revocations;
pub mod runs;
pub mod threads;
pub mod upload_keys;
pub mod usage;
pub mod usage_pass;
pub mod usage_pg;
