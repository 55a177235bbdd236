//! Where the load goes and how one socket gets there: `Target` is a server's WebSocket
//! address parsed from `--url`, `open` makes one WebSocket connection with small buffers (a
//! load client holds thousands), from a chosen loopback source address when one source runs
//! out of ports, with the user's id as the routing hint (`?user=`) a load balancer in front of
//! several nodes hashes on. `Targets` are the servers of a comma-separated `--url` (nodes of
//! one cluster): a user's sockets go to them in turn, so its second socket is on another node.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::LoadError;

/// A load client's socket.
pub type Socket = WebSocketStream<TcpStream>;

/// How long a connection and its upgrade may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes read from the socket at a time; a frame larger than this still arrives whole.
const READ_BUFFER: usize = 4 * 1024;

/// The server under load.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` as given, for the `Host` header.
    authority: String,
    /// The WebSocket path (`/ws` unless the URL names another).
    path: String,
    /// Where to connect.
    addr: SocketAddr,
}

/// The servers of `--url`: one, or the nodes of a cluster.
#[derive(Debug, Clone)]
pub struct Targets {
    /// The first server (dev tokens are asked of it).
    first: Target,
    /// The others.
    more: Vec<Target>,
}

impl Targets {
    /// Resolves every comma-separated URL of `urls`.
    pub async fn resolve(urls: &str) -> Result<Targets, LoadError> {
        let mut targets = Vec::new();
        for url in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            targets.push(Target::resolve(url).await?);
        }
        let mut all = targets.into_iter();
        let first = all.next().ok_or_else(|| LoadError::BadUrl {
            url: urls.to_owned(),
            reason: "give at least one ws://HOST:PORT".to_owned(),
        })?;
        Ok(Targets {
            first,
            more: all.collect(),
        })
    }

    /// Where socket `socket` of user `user` goes: the users' first sockets are spread over the
    /// servers, and each next socket of a user goes to the next server.
    pub fn for_socket(&self, user: usize, socket: u64) -> &Target {
        let at = (user as u64).wrapping_add(socket) % (self.more.len() as u64 + 1);
        match at.checked_sub(1) {
            Some(other) => self.more.get(other as usize).unwrap_or(&self.first),
            None => &self.first,
        }
    }

    /// The first server (dev tokens are asked of it).
    pub fn first(&self) -> &Target {
        &self.first
    }

    /// Whether every server is on a loopback address.
    pub fn are_loopback(&self) -> bool {
        std::iter::once(&self.first)
            .chain(&self.more)
            .all(Target::is_loopback)
    }
}

impl Target {
    /// Parses `ws://host:port[/path]` or `http://host:port` (then `/ws`) and resolves the host.
    pub async fn resolve(url: &str) -> Result<Target, LoadError> {
        let bad = |reason: &str| LoadError::BadUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = ["ws://", "http://"]
            .iter()
            .find_map(|scheme| url.strip_prefix(scheme))
            .ok_or_else(|| bad("give ws://HOST:PORT or http://HOST:PORT (TLS is not supported)"))?;
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(bad("it names no host"));
        }
        let path = match path.trim_end_matches('/') {
            "" => "/ws".to_owned(),
            path if path.contains('?') => return Err(bad("leave out the query")),
            path => path.to_owned(),
        };
        let with_port = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let addr = tokio::net::lookup_host(&with_port)
            .await
            .map_err(|e| bad(&format!("cannot resolve {authority}: {e}")))?
            .next()
            .ok_or_else(|| bad("the host has no address"))?;
        Ok(Target {
            authority: authority.to_owned(),
            path,
            addr,
        })
    }

    /// The server's HTTP base URL, for `POST /api/dev/token`.
    pub fn http_base(&self) -> String {
        format!("http://{}", self.authority)
    }

    /// Whether the server is on a loopback address (then sources can be spread over 127.0.0.x).
    pub fn is_loopback(&self) -> bool {
        self.addr.ip().is_loopback()
    }

    /// Opens a WebSocket as `user`, the holder of `token`, from `source` if given, asking for a
    /// replay after `after_seq` if given. The error is a short reason, for counting.
    pub async fn open(
        &self,
        user: &str,
        token: &str,
        after_seq: Option<i64>,
        source: Option<IpAddr>,
    ) -> Result<Socket, String> {
        let connecting = self.connect(user, token, after_seq, source);
        match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(result) => result,
            Err(_) => Err("timed out".to_owned()),
        }
    }

    async fn connect(
        &self,
        user: &str,
        token: &str,
        after_seq: Option<i64>,
        source: Option<IpAddr>,
    ) -> Result<Socket, String> {
        let socket = match self.addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(|e| io_reason(&e))?;
        if let Some(ip) = source {
            socket
                .bind(SocketAddr::new(ip, 0))
                .map_err(|e| io_reason(&e))?;
        }
        let stream = socket.connect(self.addr).await.map_err(|e| io_reason(&e))?;
        stream.set_nodelay(true).map_err(|e| io_reason(&e))?;
        let after = after_seq.map_or(String::new(), |seq| format!("&after_seq={seq}"));
        let url = format!(
            "ws://{}{}?token={token}&user={user}{after}",
            self.authority, self.path
        );
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(0);
        match tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await {
            Ok((socket, _)) => Ok(socket),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(format!("http {}", response.status().as_u16()))
            }
            Err(e) => Err(format!("handshake: {e}")),
        }
    }
}

/// A short name for an IO error, for counting failures by kind.
fn io_reason(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(24) => "too many open files (EMFILE)".to_owned(),
        Some(99) => "no free source port (EADDRNOTAVAIL)".to_owned(),
        _ => e.kind().to_string(),
    }
}
