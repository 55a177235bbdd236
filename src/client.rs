//! A small HTTP client for enclave's own API, used by `enclave ingest`: get a token (dev mode)
//! and send one upload with progress reports.

use futures_util::stream;
use serde_json::Value;

use crate::protocol::http::DevTokenRequest;

/// Bytes per body chunk, and so per progress report.
const CHUNK: usize = 256 * 1024;

/// The largest token answer read (awc's default limit).
const TOKEN_ANSWER_BYTES: usize = 2 << 20;

/// The largest upload answer read: room for every row error it lists.
const UPLOAD_ANSWER_BYTES: usize = 4 << 20;

/// Why a call to the server did not give what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request did not get an answer (connection refused, timeout, …).
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// What went wrong, as the HTTP client says it.
        reason: String,
    },
    /// The server answered, but not with what was asked.
    #[error("the server answered {status}: {body}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The answer's JSON body (`null` if it had none).
        body: Value,
    },
}

/// An answer of the server.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body (`null` if it had none).
    pub body: Value,
    /// Seconds the server asked to wait before trying again (`Retry-After`).
    pub retry_after: Option<u64>,
}

/// How one upload to `POST /api/usage` is sent.
#[derive(Debug, Clone, Copy)]
pub struct UploadOptions<'a> {
    /// The body's content type (`application/x-ndjson`, `text/csv`, `application/json`).
    pub content_type: &'a str,
    /// `?partial=true`: store the valid rows even when some are invalid.
    pub partial: bool,
    /// `?format=`: a provider or gateway export.
    pub format: Option<&'a str>,
    /// The `Idempotency-Key`: the server stores an upload with a given key once.
    pub key: Option<&'a str>,
}

/// A token from a dev-mode server (`POST /api/dev/token`).
pub async fn dev_token(base_url: &str, user: &str) -> Result<String, ClientError> {
    let url = format!("{}/api/dev/token", base_url.trim_end_matches('/'));
    let request = DevTokenRequest {
        user: user.to_owned(),
    };
    let sent = awc::Client::default().post(&url).send_json(&request);
    let Answer { status, body, .. } = answer(sent, &url, TOKEN_ANSWER_BYTES).await?;
    match body.get("token").and_then(Value::as_str) {
        Some(token) if status == 200 => Ok(token.to_owned()),
        _ => Err(ClientError::Refused { status, body }),
    }
}

/// Uploads `body` to `POST /api/usage` as `options` say, calling `progress` with the bytes
/// sent so far.
pub async fn upload_usage(
    base_url: &str,
    token: &str,
    options: &UploadOptions<'_>,
    body: web_bytes::Bytes,
    progress: impl Fn(u64) + 'static,
) -> Result<Answer, ClientError> {
    let mut query = Vec::new();
    if options.partial {
        query.push(String::from("partial=true"));
    }
    if let Some(format) = options.format {
        query.push(format!("format={format}"));
    }
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    };
    let url = format!("{}/api/usage{query}", base_url.trim_end_matches('/'));
    let chunks: Vec<web_bytes::Bytes> = (0..body.len())
        .step_by(CHUNK)
        .map(|at| body.slice(at..(at + CHUNK).min(body.len())))
        .collect();
    let mut sent = 0u64;
    let body = stream::iter(chunks.into_iter().map(move |chunk| {
        sent += chunk.len() as u64;
        progress(sent);
        Ok::<_, std::io::Error>(chunk)
    }));
    let mut request = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(600))
        .finish()
        .post(&url)
        .insert_header(("Authorization", format!("Bearer {token}")))
        .insert_header(("Content-Type", options.content_type));
    if let Some(key) = options.key {
        request = request.insert_header(("Idempotency-Key", key));
    }
    answer(request.send_stream(body), &url, UPLOAD_ANSWER_BYTES).await
}

/// Waits for the answer to the request `sent` to `url`, reading at most `limit` bytes of its
/// JSON body (`null` when it has none, or more).
async fn answer(
    sent: awc::SendClientRequest,
    url: &str,
    limit: usize,
) -> Result<Answer, ClientError> {
    let mut resp = sent.await.map_err(|e| ClientError::Unreachable {
        url: url.to_owned(),
        reason: e.to_string(),
    })?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let body = resp.json().limit(limit).await.unwrap_or(Value::Null);
    Ok(Answer {
        status,
        body,
        retry_after,
    })
}
