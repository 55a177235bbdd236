//! What enclave does with each accepted TCP connection before HTTP: `TCP_NODELAY` is read back
//! and counted (the listener sets it, so a small frame is not held for the client's delayed
//! ACK), and a duplicate of the socket is kept as `ConnectionCut`, so a WebSocket whose actor
//! no longer runs can still be shut down (`runtime/delivery.rs`).

use std::any::Any;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::sync::Arc;

use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;

use crate::metrics::Metrics;

/// A duplicate of a connection's socket, kept in the connection's data; shutting it down
/// ends the connection whatever state actix-http is in. Being a duplicate, it always names
/// the same socket, never one a later connection reuses the number of.
#[derive(Clone)]
pub struct ConnectionCut(Arc<std::net::TcpStream>);

impl ConnectionCut {
    /// Shuts the connection down both ways; a connection already closed is left as it is.
    pub fn cut(&self) {
        let _ = self.0.shutdown(Shutdown::Both);
    }
}

/// The `HttpServer::on_connect` callback.
pub fn on_connect(metrics: Arc<Metrics>) -> impl Fn(&dyn Any, &mut Extensions) + Send + Sync {
    move |connection, data| {
        let Some(tcp) = connection.downcast_ref::<TcpStream>() else {
            return;
        };
        let nodelay = tcp.nodelay().unwrap_or(false);
        metrics
            .tcp_connections
            .with_label_values(&[if nodelay { "true" } else { "false" }])
            .inc();
        match tcp.as_fd().try_clone_to_owned() {
            Ok(fd) => {
                data.insert(ConnectionCut(Arc::new(std::net::TcpStream::from(fd))));
            }
            Err(e) => log::warn!("cannot keep a handle on a new connection: {e}"),
        }
    }
}
