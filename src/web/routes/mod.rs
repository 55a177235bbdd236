//! The HTTP routes of PROTOCOL.md §3, one file per resource.

pub mod account;
pub mod dev_token;
pub mod export;
pub mod health;
pub mod limits;
pub mod runs;
pub mod threads;
pub mod upload_body;
pub mod usage;
