//! `/healthz` (the process answers), `/readyz` (the database is reachable and migrated, and
//! every writer thread answers) and `/metrics` (Prometheus text).

use actix_web::{HttpResponse, get, web};

use crate::error::ErrorCode;
use crate::protocol::http::{Health, HealthAnswer};
use crate::store;
use crate::web::AppState;
use crate::web::error::ApiError;

/// `GET /healthz`: liveness, answered whenever the process serves HTTP (no token, no database).
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "the process answers", body = HealthAnswer)))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(HealthAnswer { status: Health::Ok })
}

/// How long `/readyz` waits for every writer to answer: a writer busy longer is not ready.
const WRITERS_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// `GET /readyz`: readiness for a load balancer; 503 `unavailable` while the database is
/// unreachable, its migrations are not applied, or a writer thread does not answer with a
/// connection (no token).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "ready for traffic", body = HealthAnswer)))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match state.db.read(store::migrations_current).await {
        Ok(true) => {
            match actix_web::rt::time::timeout(WRITERS_WAIT, state.db.writers_ready()).await {
                Ok(Ok(())) => Ok(HttpResponse::Ok().json(HealthAnswer {
                    status: Health::Ready,
                })),
                Ok(Err(e)) => {
                    log::warn!("readiness check failed on a writer: {e}");
                    Err(ApiError::new(
                        ErrorCode::Unavailable,
                        "database writers unavailable",
                    ))
                }
                Err(_) => Err(ApiError::new(
                    ErrorCode::Unavailable,
                    "database writers busy past the readiness wait",
                )),
            }
        }
        Ok(false) => Err(ApiError::new(
            ErrorCode::Unavailable,
            "database migrations are not applied; run `enclave migrate`",
        )),
        Err(e) => {
            log::warn!("readiness check failed: {e}");
            Err(ApiError::new(
                ErrorCode::Unavailable,
                "database unreachable",
            ))
        }
    }
}

/// `GET /metrics`: every `Metrics` series as Prometheus text, for a scraper (no token).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text", content_type = "text/plain", body = String)))]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
