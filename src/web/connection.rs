//! What enclave does with each accepted TCP connection before HTTP: `TCP_NODELAY` is read back
//! and counted (the listener sets it, so a small frame is not held for the client's delayed
//! ACK), and the socket's descriptor number and identity are kept as `ConnectionCut`, so a
//! WebSocket whose actor no longer runs can still be shut down (`runtime/session/sockets.rs`).

use std::any::Any;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;

use crate::metrics::Metrics;

/// A connection's socket, by descriptor number and identity (the kernel's `socket:[inode]`),
/// kept in the connection's data. Shutting it down ends the connection whatever state
/// actix-http is in.
///
/// Why not a duplicate descriptor: it would take a second descriptor per connection and halve
/// the sockets one process holds. A number alone could name a later connection that reused
/// it, so the identity is checked right before the shutdown: a descriptor closed since is
/// left alone, and one reused names another socket, which is left alone too.
#[derive(Clone, Debug)]
pub struct ConnectionCut {
    /// The descriptor number actix-http's connection holds.
    fd: RawFd,
    /// What `/proc/self/fd/N` named at accept: `socket:[inode]`, unique among open sockets.
    identity: PathBuf,
}

impl ConnectionCut {
    /// The cut of the socket `fd` refers to now; `None` where `/proc` cannot say which it is.
    pub fn of(fd: RawFd) -> Option<Self> {
        let identity = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
        Some(Self { fd, identity })
    }

    /// Shuts the connection down both ways; a connection already closed is left as it is.
    pub fn cut(&self) {
        let Ok(now) = std::fs::read_link(format!("/proc/self/fd/{}", self.fd)) else {
            return; // closed
        };
        if now != self.identity {
            return; // closed, and the number reused by another socket
        }
        // SAFETY: `borrow_raw` asks that the descriptor stay open while borrowed; it was just
        // checked to be this connection's socket, open. It could still be closed, and its
        // number reused, between that check and this call (actix-http closes connections on
        // other threads): a window of microseconds in which `shutdown` would reach whatever
        // socket took the number (a client's, a database or LLM connection), which then fails
        // and is re-established as after any network error. No memory is touched either way.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = socket2::SockRef::from(&fd).shutdown(Shutdown::Both);
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
        data.insert(super::admission::FreshConnection::default());
        match ConnectionCut::of(tcp.as_raw_fd()) {
            Some(cut) => {
                data.insert(cut);
            }
            None => log::debug!("cannot identify a new connection's socket in /proc/self/fd"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn cuts_its_own_socket_and_leaves_a_reused_number_alone() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut client = std::net::TcpStream::connect(addr).expect("connect");
        let (served, _) = listener.accept().expect("accept");
        let cut = ConnectionCut::of(served.as_raw_fd()).expect("identified");
        cut.cut();
        let mut buf = [0u8; 1];
        assert_eq!(client.read(&mut buf).expect("eof after the cut"), 0);

        // A number that now names another socket (as after a close and a reuse): spared.
        let mut other_client = std::net::TcpStream::connect(addr).expect("connect");
        let (other, _) = listener.accept().expect("accept");
        let stale = ConnectionCut {
            fd: other.as_raw_fd(),
            identity: cut.identity.clone(),
        };
        stale.cut();
        other_client
            .set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .expect("timeout");
        let kept = other_client.read(&mut buf);
        assert!(
            kept.is_err(),
            "still open: the read timed out, got {kept:?}"
        );
    }
}
