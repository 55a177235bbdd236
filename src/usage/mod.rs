//! Users' LLM usage records: validation (`record`, within `bounds`) and upload parsing
//! (`parse`). Storage is
//! in `store::repo::usage`; the HTTP routes in `web::routes::usage`.

pub mod bounds;
pub mod import;
pub mod parse;
pub mod record;
pub mod synthetic;
