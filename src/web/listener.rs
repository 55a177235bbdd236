//! The HTTP listener: actix-web's `HttpServer` with enclave's app — its routes and the
//! middleware every request passes in order — and the connection settings that keep a flood
//! of clients from exhausting the process: connections per worker under the open-file limit,
//! a deadline for each request's head (the WebSocket handshake's too), Nagle off.

use std::net::SocketAddr;

use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};

use super::admission::admit_connection;
use super::gate::{connections_per_worker, open_file_limit};
use super::{AppState, configure, connection, edge};
use crate::config::Config;

/// Binds `config.bind` and starts serving the app over `state` (inside a running actix
/// system); the server to run until stopped, and the address it listens on.
pub fn start(
    config: &Config,
    state: web::Data<AppState>,
) -> std::io::Result<(actix_web::dev::Server, SocketAddr)> {
    let workers = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    let files = open_file_limit();
    let per_worker = connections_per_worker(files, workers, config.db_pool_size as usize);
    log::debug!("open-file limit {files}: at most {per_worker} connections per HTTP worker");
    let on_connect = connection::on_connect(state.metrics.clone());
    let http = HttpServer::new(move || {
        // The last wrapped is the first a request meets: headers on every answer, the
        // connection's admission, the origin guard, CORS, then HEAD and OPTIONS.
        App::new()
            .app_data(state.clone())
            .configure(configure)
            .wrap(from_fn(edge::head_and_options))
            .wrap(state.origins.cors())
            .wrap(from_fn(edge::origin_guard))
            .wrap(from_fn(admit_connection))
            .wrap(edge::security_headers())
    })
    .on_connect(on_connect)
    .workers(workers)
    .max_connections(per_worker)
    .client_request_timeout(config.request_timeout)
    // Events are small frames sent as they happen: without it each waits ~40 ms for the
    // client's delayed ACK (Nagle).
    .tcp_nodelay(true)
    .shutdown_timeout(config.shutdown_grace.as_secs())
    .disable_signals()
    .bind(&config.bind)?;
    let addr = http
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("no address bound"))?;
    Ok((http.run(), addr))
}
