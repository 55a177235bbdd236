//! Pure pricing and usage math: the price catalog, the aggregates the agents report, the
//! optimisation rules and why they do not apply, and how reports write numbers and user
//! strings. Nothing here does IO or knows about actors.

pub mod aggregate;
pub mod catalog;
pub mod column;
pub mod facts;
pub mod optimize;
pub mod plan;
pub mod prefixes;
pub mod report_text;
pub mod why_not;
pub mod window;
