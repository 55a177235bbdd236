//! Pure pricing and usage math: the price catalog and the aggregates the agents report.
//! Nothing here does IO or knows about actors.

pub mod aggregate;
pub mod catalog;
pub mod optimize;
pub mod plan;
