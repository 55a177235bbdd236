//! `ConnectionGate`: the actor that owns the server-wide connection limits — how fast each
//! client address may open connections and WebSockets, and how many WebSockets the whole
//! server holds — so that one address cannot starve the others and a flood of sockets gets a
//! 503 instead of the process running out of file descriptors.
//!
//! Every HTTP worker asks it (`Admit`); the per-address allowances live here alone, so they
//! need no lock. A socket admitted holds a `SocketPass` until it closes; dropping the pass
//! gives the place back. Addresses not seen for a while are forgotten every minute.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::client_addr::counted_as;
use crate::runtime::rate_limit::TokenBucket;

/// How fast one address may open connections and sockets, and how many sockets the server
/// holds.
#[derive(Debug, Clone, Copy)]
pub struct GateLimits {
    pub connections_per_minute: u32,
    pub connection_burst: u32,
    pub upgrades_per_minute: u32,
    pub upgrade_burst: u32,
    /// WebSockets open at once, all clients together.
    pub max_sockets: usize,
}

/// Descriptors the server keeps for itself besides its clients' connections: database
/// connections, the listener, log and pipes, the LLM client, with room to spare.
const FILES_KEPT: usize = 256;
/// Connections kept free of WebSockets under the file limit, so that plain requests — the
/// 503s refusing sockets among them — are still answered when the sockets are full.
const FILES_FOR_REQUESTS: usize = 256;

impl GateLimits {
    /// The configured rates and socket cap; a cap of 0 is set from `files` (the open-file
    /// limit): what the server does not keep for itself or for plain requests.
    pub fn from_config(config: &crate::config::Config, files: usize) -> Self {
        let max_sockets = match config.max_sockets_total {
            0 => files
                .saturating_sub(FILES_KEPT + FILES_FOR_REQUESTS + config.db_pool_size as usize)
                .max(1),
            n => n,
        };
        Self {
            connections_per_minute: config.connections_per_minute_per_ip,
            connection_burst: config.connection_burst_per_ip,
            upgrades_per_minute: config.upgrades_per_minute_per_ip,
            upgrade_burst: config.upgrade_burst_per_ip,
            max_sockets,
        }
    }
}

/// Connections each of `workers` HTTP workers may hold so that all of them together stay
/// under `files`: past it a worker stops accepting (the kernel's backlog holds the rest)
/// instead of `accept` failing for want of a descriptor.
pub fn connections_per_worker(files: usize, workers: usize, db_pool: usize) -> usize {
    (files.saturating_sub(FILES_KEPT + db_pool) / workers.max(1)).max(1)
}

/// The process's open-file limit (the soft one, which `enclave serve` raises to the hard one);
/// a generous guess where it cannot be read.
pub fn open_file_limit() -> usize {
    rlimit::getrlimit(rlimit::Resource::NOFILE)
        .ok()
        .and_then(|(soft, _)| usize::try_from(soft).ok())
        .unwrap_or(65_536)
}

/// What a request asks to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// A new HTTP connection (counted at its first request).
    Connection,
    /// A WebSocket.
    Socket,
}

/// Why it may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The address opened too many lately; try again after this.
    TooFast(Duration),
    /// The server holds as many sockets as it may.
    Full,
}

/// Asks to open a connection or socket from `client`; `rated` is false for an address exempt
/// from the per-address rates (the server-wide socket cap still applies).
#[derive(Message)]
#[rtype(result = "Result<Option<SocketPass>, Refused>")]
pub struct Admit {
    pub client: IpAddr,
    pub opening: Opening,
    pub rated: bool,
}

/// A socket's place under the server-wide cap, given back when dropped.
#[derive(Debug)]
pub struct SocketPass {
    gate: Addr<ConnectionGate>,
}

impl Drop for SocketPass {
    fn drop(&mut self) {
        self.gate.do_send(SocketClosed);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct SocketClosed;

/// One address's allowances.
struct Allowance {
    connections: TokenBucket,
    upgrades: TokenBucket,
    last_seen: Instant,
}

/// The actor (see the module comment).
pub struct ConnectionGate {
    limits: GateLimits,
    by_address: HashMap<IpAddr, Allowance>,
    sockets: usize,
}

/// An address quiet this long has a full allowance again and is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(300);

impl ConnectionGate {
    /// A gate with every address's allowance full and no socket open.
    pub fn new(limits: GateLimits) -> Self {
        Self {
            limits,
            by_address: HashMap::new(),
            sockets: 0,
        }
    }

    /// Takes one of `client`'s tokens for `opening`; the wait when there is none.
    fn take(&mut self, client: IpAddr, opening: Opening) -> Result<(), Duration> {
        let limits = self.limits;
        let now = Instant::now();
        let allowance = self
            .by_address
            .entry(counted_as(client))
            .or_insert_with(|| Allowance {
                connections: TokenBucket::new(
                    limits.connection_burst,
                    limits.connections_per_minute,
                ),
                upgrades: TokenBucket::new(limits.upgrade_burst, limits.upgrades_per_minute),
                last_seen: now,
            });
        allowance.last_seen = now;
        let bucket = match opening {
            Opening::Connection => &mut allowance.connections,
            Opening::Socket => &mut allowance.upgrades,
        };
        if bucket.take_at(now) {
            Ok(())
        } else {
            Err(bucket.wait().max(Duration::from_secs(1)))
        }
    }
}

impl Actor for ConnectionGate {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(Duration::from_secs(60), |gate, _| {
            let now = Instant::now();
            gate.by_address
                .retain(|_, allowance| now.duration_since(allowance.last_seen) < FORGET_AFTER);
        });
    }
}

impl Handler<Admit> for ConnectionGate {
    type Result = Result<Option<SocketPass>, Refused>;

    fn handle(&mut self, admit: Admit, ctx: &mut Context<Self>) -> Self::Result {
        if admit.opening == Opening::Socket && self.sockets >= self.limits.max_sockets {
            return Err(Refused::Full);
        }
        if admit.rated {
            self.take(admit.client, admit.opening)
                .map_err(Refused::TooFast)?;
        }
        match admit.opening {
            Opening::Connection => Ok(None),
            Opening::Socket => {
                self.sockets += 1;
                Ok(Some(SocketPass {
                    gate: ctx.address(),
                }))
            }
        }
    }
}

impl Handler<SocketClosed> for ConnectionGate {
    type Result = ();

    fn handle(&mut self, _: SocketClosed, _: &mut Context<Self>) {
        self.sockets = self.sockets.saturating_sub(1);
    }
}
