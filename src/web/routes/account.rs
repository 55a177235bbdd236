//! `DELETE /api/account`: deletes everything held about the caller, through the user's session,
//! which ends the user's runs and moves the account's key on in one short transaction; the
//! rows themselves are purged in the background (`runtime::housekeeper`).

use actix_web::{HttpResponse, delete, web};

use crate::protocol::http::Deleted;
use crate::runtime::session::DeleteAccount;
use crate::web::AppState;
use crate::web::error::ApiError;
use crate::web::extract::AuthenticatedUser;
use crate::web::routes::usage::RETRY_AFTER_SECS;

/// `DELETE /api/account`: `202 {"deleted": true}` once every route answers the caller as a new
/// user; the user's sockets are closed with 4009.
#[utoipa::path(delete, path = "/api/account", tag = "account", security(("bearer" = [])),
    responses((status = 202, description = "deleted; purged in the background", body = Deleted<bool>)))]
#[delete("/api/account")]
pub async fn delete_account(
    state: web::Data<AppState>,
    AuthenticatedUser(identity): AuthenticatedUser,
) -> Result<HttpResponse, ApiError> {
    let session = state.session_of(&identity.user_id).await?;
    session
        .send(DeleteAccount)
        .await?
        .map_err(|refusal| ApiError::from(refusal).retry_after(RETRY_AFTER_SECS))?;
    Ok(HttpResponse::Accepted().json(Deleted { deleted: true }))
}
