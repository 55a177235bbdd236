//! `GET /api/openapi.json`: the OpenAPI 3.1 description of the HTTP API, generated with
//! utoipa from the handlers' annotations and the protocol's types, plus the WebSocket frames
//! as schemas (`ClientFrame`, `ServerFrame`, `Event`).
//!
//! Answers every route may give — 429 and 503 from the edge, 500 — and 401 on every route
//! that takes a token are added to each operation here rather than repeated on each handler.

use actix_web::{HttpResponse, get};
use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::protocol::http::ErrorBody;
use crate::protocol::{ApprovalDecision, Event, ServerFrame};
use crate::web::routes;

/// A frame a client sends on the socket (PROTOCOL.md §2), by `type`.
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Starts a run.
    UserMessage {
        /// 1 to 16,384 characters, no NUL.
        content: String,
        /// Continues a thread of the user's; absent starts a new one.
        thread_id: Option<String>,
        /// The client's idempotency key, 1 to 64 characters: a repeat within 24 hours is
        /// answered from the first.
        client_msg_id: Option<String>,
    },
    /// Answers an `approval_required`.
    Approval {
        /// From `approval_required`.
        approval_id: String,
        /// `approve` or `reject`.
        #[schema(value_type = String)]
        decision: ApprovalDecision,
    },
    /// Cancels a queued or running run.
    CancelRun {
        /// The run.
        run_id: String,
    },
    /// Replays every event after `after_seq`, then `resumed`, then live.
    Resume {
        /// 0 or more.
        after_seq: i64,
    },
    /// Answered with `pong` echoing `nonce`.
    Ping {
        /// Any JSON value.
        #[schema(value_type = Object)]
        nonce: Option<serde_json::Value>,
    },
}

/// The document: every route, and the socket's frames.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "enclave",
        description = "Chat-style, multi-agent LLM usage optimisation: the HTTP API and the \
                       WebSocket frames (PROTOCOL.md).",
        license(name = "MIT"),
    ),
    paths(
        routes::health::healthz,
        routes::health::readyz,
        routes::health::metrics,
        routes::dev_token::dev_token,
        routes::threads::list_threads,
        routes::threads::thread_events,
        routes::threads::delete_thread,
        routes::runs::get_run,
        routes::runs::get_report,
        routes::runs::get_report_html,
        routes::limits::limits,
        routes::usage::upload,
        routes::usage::summary,
        routes::usage::delete_usage,
        routes::export::export,
        routes::account::delete_account,
        crate::web::page::index,
        crate::web::page::asset,
        crate::web::page::csp_report,
        crate::web::ws::upgrade,
        openapi_json,
    ),
    components(schemas(ClientFrame, ServerFrame, Event, ErrorBody)),
    modifiers(&CommonAnswers),
)]
pub struct ApiDoc;

/// Adds the bearer scheme and the answers every operation may give.
struct CommonAnswers;

impl Modify for CommonAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        let error = |description: &str| -> RefOr<Response> {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
                .into()
        };
        for item in openapi.paths.paths.values_mut() {
            for operation in [item.get.as_mut(), item.post.as_mut(), item.delete.as_mut()]
                .into_iter()
                .flatten()
            {
                let takes_token = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                let answers = &mut operation.responses.responses;
                if takes_token {
                    answers
                        .entry("401".into())
                        .or_insert_with(|| error("no valid token (missing, expired, revoked)"));
                }
                answers.entry("403".into()).or_insert_with(|| {
                    error("a browser origin not served (only with an Origin header)")
                });
                answers
                    .entry("429".into())
                    .or_insert_with(|| error("over a rate; see Retry-After"));
                answers
                    .entry("503".into())
                    .or_insert_with(|| error("unavailable (storage, a cap, shutting down)"));
                answers
                    .entry("500".into())
                    .or_insert_with(|| error("a bug, logged under the error's id"));
            }
        }
    }
}

/// `GET /api/openapi.json`: this document (no token).
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations",
    responses((status = 200, description = "the OpenAPI 3.1 document", body = Object)))]
#[get("/api/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
