//! An upload's body, read under the server-wide budget: its declared length (or the largest
//! upload allowed) is reserved first — 503 `unavailable` when there is no room — and the body
//! must then arrive within a deadline set by that size at the slowest rate allowed, or it is
//! answered 408 `request_timeout`, so a client trickling its body cannot hold its place.

use std::time::Duration;

use actix_web::{HttpRequest, web};
use futures_util::StreamExt;

use crate::error::ErrorCode;
use crate::web::AppState;
use crate::web::error::ApiError;
use crate::web::routes::usage::RETRY_AFTER_SECS;
use crate::web::upload_budget::{Reserve, UploadPass};

/// The whole body, at most `max_upload_bytes`, and the reservation to hold until the upload
/// has ended.
pub async fn read_body(
    req: &HttpRequest,
    state: &AppState,
    mut body: web::Payload,
) -> Result<(web::BytesMut, UploadPass), ApiError> {
    let config = &state.config;
    let limit = config.max_upload_bytes;
    let reserved = reserve_upload(req, state, limit).await?;
    let deadline = read_deadline(
        reserved.bytes(),
        config.upload_min_bytes_per_second,
        config.upload_read_grace,
    );
    let read = async {
        let mut bytes = web::BytesMut::new();
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
            if bytes.len() + chunk.len() > limit {
                return Err(ApiError::new(
                    ErrorCode::TooLarge,
                    format!("the upload is over {limit} bytes; split it into smaller files"),
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    };
    let bytes = actix_web::rt::time::timeout(deadline, read)
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::RequestTimeout,
                format!(
                    "the upload was not sent within {} (the slowest rate allowed is {} bytes \
                     a second); send it again faster or in smaller parts",
                    crate::config::format_duration(deadline),
                    config.upload_min_bytes_per_second
                ),
            )
        })??;
    Ok((bytes, reserved))
}

/// The upload's share of the server-wide budget: its declared length (or the largest allowed),
/// held until the upload ends; 503 `unavailable` when there is no room now.
async fn reserve_upload(
    req: &HttpRequest,
    state: &AppState,
    limit: usize,
) -> Result<UploadPass, ApiError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let bytes = declared.unwrap_or(limit as u64).min(limit as u64);
    let pass = state
        .uploads
        .send(Reserve { bytes })
        .await
        .map_err(|_| ApiError::new(ErrorCode::Unavailable, "the server is stopping"))?;
    pass.ok_or_else(|| {
        state
            .metrics
            .edge_refusals
            .with_label_values(&["uploads_full"])
            .inc();
        ApiError::new(
            ErrorCode::Unavailable,
            "the server is reading as many uploads as it can; try again shortly",
        )
        .retry_after(RETRY_AFTER_SECS)
    })
}

/// How long an upload of `bytes` may take to arrive: `grace`, plus its size at `min_rate`
/// bytes a second.
fn read_deadline(bytes: u64, min_rate: u64, grace: Duration) -> Duration {
    grace + Duration::from_secs(bytes / min_rate.max(1))
}
