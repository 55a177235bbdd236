//! Users' LLM usage records: validation (`record`) and upload parsing (`parse`). Storage is
//! in `store::repo::usage`; the HTTP routes in `web::routes::usage`.

pub mod parse;
pub mod record;
pub mod synthetic;
