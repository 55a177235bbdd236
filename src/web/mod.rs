//! The HTTP side: routes, the WebSocket actor, auth extraction and the JSON error shape.
//!
//! Nothing here touches diesel: handlers run `store::repo` functions through the `Db`
//! executor, and sockets only talk to their user's session.

pub mod admission;
pub mod client_addr;
pub mod connection;
pub mod edge;
pub mod error;
pub mod extract;
pub mod gate;
pub mod listener;
pub mod markdown;
pub mod openapi;
pub mod page;
pub mod routes;
pub mod taken;
pub mod upload_budget;
pub mod views;
pub mod ws;

use std::sync::Arc;

use actix::Addr;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::analysis::catalog::Catalog;
use crate::auth::Auth;
use crate::config::Config;
use crate::context::UserId;
use crate::error::ErrorCode;
use crate::faults::Faults;
use crate::metrics::Metrics;
use crate::runtime::registry::{GetSession, SessionRegistry};
use crate::runtime::session::UserSession;
use crate::store::Db;
use error::ApiError;

/// What every handler shares, read-only.
pub struct AppState {
    pub config: Arc<Config>,
    pub auth: Arc<Auth>,
    pub db: Db,
    pub registry: Addr<SessionRegistry>,
    pub catalog: Arc<Catalog>,
    pub metrics: Arc<Metrics>,
    /// Fault injection (bulk writes are slowed by it in tests).
    pub faults: Arc<Faults>,
    /// `POST /api/dev/token` is served.
    pub dev_tokens: bool,
    /// Which browser origins are served.
    pub origins: edge::OriginPolicy,
    /// The server-wide connection limits.
    pub gate: Addr<gate::ConnectionGate>,
    /// Which address a request counts as, for the gate.
    pub client_addrs: client_addr::ClientAddrPolicy,
    /// The token revocations, asked for every authenticated request.
    pub revocations: Addr<crate::runtime::revocations::Revocations>,
    /// The server-wide bound on uploads being read.
    pub uploads: Addr<upload_budget::UploadBudget>,
}

impl AppState {
    /// The session of `user`, started if it has none.
    pub async fn session_of(&self, user: &UserId) -> Result<Addr<UserSession>, ApiError> {
        self.registry
            .send(GetSession {
                user_id: user.clone(),
            })
            .await
            .map_err(ApiError::from)
    }
}

/// Registers every route on an actix-web app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::QueryConfig::default().error_handler(|e, _| {
            ApiError::bad_request(format!("invalid query string: {e}")).into()
        }),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|e, _| ApiError::bad_request(format!("invalid path: {e}")).into()),
    )
    .service(page::index)
    .service(page::asset)
    .service(page::csp_report)
    .service(routes::health::healthz)
    .service(routes::health::readyz)
    .service(routes::health::metrics)
    .service(openapi::openapi_json)
    .service(routes::dev_token::dev_token)
    .service(routes::threads::list_threads)
    .service(routes::threads::thread_events)
    .service(routes::runs::get_run)
    .service(routes::runs::get_report)
    .service(routes::runs::get_report_html)
    .service(routes::threads::delete_thread)
    .service(routes::limits::limits)
    .service(routes::usage::upload)
    .service(routes::usage::summary)
    .service(routes::usage::delete_usage)
    .service(routes::export::export)
    .service(routes::account::delete_account)
    .service(ws::upgrade)
    .default_service(web::to(not_found));
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        ErrorCode::NotFound,
        format!("no route for {} {}", req.method(), req.path()),
    ))
}
