//! A TCP proxy on loopback in front of the server, whose connections the test can cut at once
//! and keep refusing for a while — a socket killed mid-run, as a dropped network or a
//! restarted balancer would kill it, while the server runs on.

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy's connections follow: bumped `cut` closes every open one; while `refusing`
/// new ones are closed as they arrive.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Orders {
    cut: u64,
    refusing: bool,
}

pub struct Proxy {
    addr: std::net::SocketAddr,
    orders: watch::Sender<Orders>,
}

impl Proxy {
    /// Starts forwarding a free loopback port to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (orders, watching) = watch::channel(Orders {
            cut: 0,
            refusing: false,
        });
        actix_web::rt::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let now = *watching.borrow();
                if now.refusing {
                    drop(client);
                    continue;
                }
                let mut orders = watching.clone();
                let upstream = upstream.clone();
                actix_web::rt::spawn(async move {
                    let (mut client, Ok(mut server)) =
                        (client, TcpStream::connect(&upstream).await)
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = orders.wait_for(|o| o.cut != now.cut) => {}
                    }
                });
            }
        });
        Self { addr, orders }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Closes every connection open now and refuses new ones until `resume`.
    pub fn cut_and_refuse(&self) {
        self.orders.send_modify(|o| {
            o.cut += 1;
            o.refusing = true;
        });
    }

    /// Lets connections through again.
    pub fn resume(&self) {
        self.orders.send_modify(|o| o.refusing = false);
    }
}
