//! Asking the `ConnectionGate` at the two places a client opens something: the first request
//! of each HTTP connection (`admit_connection`, a middleware) and each WebSocket upgrade
//! (`admit_socket`, before the token is read). Refusals are answered as PROTOCOL.md's
//! errors: 429 `rate_limited` with `Retry-After` for an address over its rate (the connection
//! is then closed), 503 `unavailable` when the server holds all the sockets it may.

use std::cell::Cell;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::{HttpRequest, ResponseError, web};

use super::AppState;
use super::client_addr::Client;
use super::error::ApiError;
use super::gate::{Admit, Opening, Refused, SocketPass};
use crate::error::ErrorCode;

/// Put in each connection's data at accept; its first request takes the mark off.
#[derive(Debug)]
pub struct FreshConnection(Cell<bool>);

impl Default for FreshConnection {
    fn default() -> Self {
        Self(Cell::new(true))
    }
}

/// Who `req` counts as (see `client_addr.rs`).
fn client_of(req: &HttpRequest, state: &AppState) -> Option<Client> {
    let peer = req.peer_addr()?.ip();
    let headers = req.headers();
    // Any sign of a proxy in between: a loopback peer showing one is no local tool.
    let forwarded = ["x-forwarded-for", "forwarded", "x-real-ip", "via"]
        .iter()
        .any(|name| headers.contains_key(*name));
    let forwarded_for = headers
        .get_all("x-forwarded-for")
        .filter_map(|value| value.to_str().ok());
    Some(state.client_addrs.client(peer, forwarded_for, forwarded))
}

/// Asks the gate; what it answered, or the refusal as an error.
async fn admit(
    req: &HttpRequest,
    state: &AppState,
    opening: Opening,
) -> Result<Option<SocketPass>, ApiError> {
    let Some(client) = client_of(req, state) else {
        return Ok(None); // not over TCP (a test's in-process request)
    };
    let rated = !client.exempt;
    if !rated && opening == Opening::Connection {
        return Ok(None);
    }
    let answer = state
        .gate
        .send(Admit {
            client: client.addr,
            opening,
            rated,
        })
        .await
        .map_err(|_| ApiError::new(ErrorCode::Unavailable, "the server is stopping"))?;
    answer.map_err(|refused| {
        let why = match (refused, opening) {
            (Refused::Full, _) => "sockets_full",
            (_, Opening::Connection) => "connection_rate",
            (_, Opening::Socket) => "upgrade_rate",
        };
        state.metrics.edge_refusals.with_label_values(&[why]).inc();
        refusal(refused, opening)
    })
}

fn refusal(refused: Refused, opening: Opening) -> ApiError {
    match refused {
        Refused::TooFast(wait) => {
            let what = match opening {
                Opening::Connection => "connections",
                Opening::Socket => "WebSockets",
            };
            let seconds = u32::try_from(wait.as_secs().max(1)).unwrap_or(u32::MAX);
            ApiError::new(
                ErrorCode::RateLimited,
                format!(
                    "this address opened too many {what} in the last minute; try again in \
                     {seconds} s"
                ),
            )
            .retry_after(seconds)
        }
        Refused::Full => ApiError::new(
            ErrorCode::Unavailable,
            "the server holds as many WebSockets as it can; try again shortly",
        )
        .retry_after(5),
    }
}

/// Middleware: the first request of a connection is admitted by the gate or refused, and the
/// connection closed.
pub async fn admit_connection(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let first = req
        .conn_data::<FreshConnection>()
        .is_some_and(|fresh| fresh.0.replace(false));
    if first
        && let Some(state) = req.app_data::<web::Data<AppState>>().cloned()
        && let Err(refused) = admit(req.request(), &state, Opening::Connection).await
    {
        let mut response = refused.error_response();
        response
            .head_mut()
            .set_connection_type(ConnectionType::Close);
        return Ok(req.into_response(response));
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_boxed_body)
}

/// A WebSocket's place, before its upgrade is looked at further.
pub async fn admit_socket(
    req: &HttpRequest,
    state: &AppState,
) -> Result<Option<SocketPass>, ApiError> {
    admit(req, state, Opening::Socket).await
}
