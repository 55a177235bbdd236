//! An OpenAI-compatible chat completions provider (`ENCLAVE_LLM_URL`, `ENCLAVE_LLM_MODEL`,
//! `ENCLAVE_LLM_API_KEY`): `POST {url}/chat/completions` with `stream: true`, read as
//! server-sent events (`data: {…}` lines, `data: [DONE]` at the end), bounded by the call
//! timeout (default 10 s, shorter than an agent attempt's).

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::Serialize;
use serde_json::Value;

use super::{LlmError, LlmProvider, LlmRequest, OnDelta};

/// The body of `POST /chat/completions`. Fields are declared in sorted order, so the bytes sent
/// are those of the JSON object this replaced (whose keys were sorted).
#[derive(Serialize)]
struct ChatCompletionRequest {
    /// The output cap, `LlmRequest::max_tokens`.
    max_tokens: u32,
    /// The system prompt, then the user's text.
    messages: [ChatMessage; 2],
    /// The configured model (`ENCLAVE_LLM_MODEL`).
    model: String,
    /// Always true: the answer is read as server-sent events.
    stream: bool,
}

/// One message of a `ChatCompletionRequest`.
#[derive(Serialize)]
struct ChatMessage {
    /// The message's text.
    content: String,
    /// Who speaks it: `system` or `user`.
    role: &'static str,
}

/// The provider the server builds when `ENCLAVE_LLM_URL` is set: any endpoint that speaks
/// OpenAI's streamed chat completions.
pub struct OpenAiCompatible {
    base_url: String,
    model: String,
    api_key: Option<String>,
    timeout: Duration,
}

impl OpenAiCompatible {
    /// A provider for `base_url` (a trailing `/` is dropped) that gives up on a call after
    /// `timeout`.
    pub fn new(base_url: &str, model: &str, api_key: Option<String>, timeout: Duration) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            model: model.to_owned(),
            api_key,
            timeout,
        }
    }
}

impl LlmProvider for OpenAiCompatible {
    fn complete(
        &self,
        request: LlmRequest,
        on_delta: OnDelta,
    ) -> LocalBoxFuture<'static, Result<String, LlmError>> {
        let url = format!("{}/chat/completions", self.base_url);
        let body = ChatCompletionRequest {
            max_tokens: request.max_tokens,
            messages: [
                ChatMessage {
                    content: request.system,
                    role: "system",
                },
                ChatMessage {
                    content: request.user,
                    role: "user",
                },
            ],
            model: self.model.clone(),
            stream: true,
        };
        let api_key = self.api_key.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let call = stream_completion(url, api_key, body, on_delta);
            actix::clock::timeout(timeout, call)
                .await
                .unwrap_or(Err(LlmError::Timeout(timeout.as_millis())))
        })
    }
}

async fn stream_completion(
    url: String,
    api_key: Option<String>,
    body: ChatCompletionRequest,
    on_delta: OnDelta,
) -> Result<String, LlmError> {
    let mut req = awc::Client::default()
        .post(&url)
        .timeout(Duration::from_secs(3600))
        .insert_header(("Accept", "text/event-stream"));
    if let Some(key) = api_key {
        req = req.insert_header(("Authorization", format!("Bearer {key}")));
    }
    let mut resp = req
        .send_json(&body)
        .await
        .map_err(|e| LlmError::Unreachable(e.to_string()))?;
    if resp.status().as_u16() != 200 {
        return Err(LlmError::Status(resp.status().as_u16()));
    }
    let mut text = String::new();
    let mut pending: Vec<u8> = Vec::new();
    while let Some(chunk) = resp.next().await {
        let chunk = chunk.map_err(|e| LlmError::Unreachable(e.to_string()))?;
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8(line)
                .map_err(|_| LlmError::Malformed("a line is not UTF-8".into()))?;
            match parse_line(line.trim())? {
                Line::Delta(delta) => {
                    on_delta(&delta);
                    text.push_str(&delta);
                }
                Line::Done => return Ok(text),
                Line::Skip => {}
            }
        }
    }
    Err(LlmError::Malformed(
        "the stream ended without [DONE]".into(),
    ))
}

enum Line {
    Delta(String),
    Done,
    Skip,
}

fn parse_line(line: &str) -> Result<Line, LlmError> {
    if line.is_empty() || line.starts_with(':') {
        return Ok(Line::Skip);
    }
    let Some(data) = line.strip_prefix("data:") else {
        // event:, id:, retry: fields carry nothing we use.
        return Ok(Line::Skip);
    };
    let data = data.trim();
    if data == "[DONE]" {
        return Ok(Line::Done);
    }
    let event: Value =
        serde_json::from_str(data).map_err(|e| LlmError::Malformed(format!("{e}: {data:.80}")))?;
    let choice = event
        .get("choices")
        .and_then(|choices| choices.get(0))
        .ok_or_else(|| LlmError::Malformed(format!("no choices in {data:.80}")))?;
    let content = choice.get("delta").and_then(|delta| delta.get("content"));
    Ok(match content.and_then(Value::as_str) {
        Some(delta) if !delta.is_empty() => Line::Delta(delta.to_owned()),
        _ => Line::Skip,
    })
}
