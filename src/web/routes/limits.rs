//! `GET /api/limits`: the limits a client shapes its requests by (the upload size the page
//! cuts a big file to, the longest message it lets a user type), so no client hard-codes a
//! server's configuration.

use actix_web::{HttpResponse, get, web};

use crate::protocol::http::Limits;
use crate::web::AppState;
use crate::web::extract::AuthenticatedUser;

/// `GET /api/limits`: the server's upload, message and storage limits.
#[utoipa::path(get, path = "/api/limits", tag = "usage", security(("bearer" = [])),
    responses((status = 200, description = "the limits", body = Limits)))]
#[get("/api/limits")]
pub async fn limits(state: web::Data<AppState>, _user: AuthenticatedUser) -> HttpResponse {
    let config = &state.config;
    HttpResponse::Ok().json(Limits {
        max_upload_bytes: config.max_upload_bytes,
        max_message_bytes: config.max_message_bytes,
        max_content_chars: config.max_content_chars,
        max_records_per_user: config.max_records_per_user,
    })
}
