//! Who a request comes from, for the per-address limits: the TCP peer, or — when the peer is
//! a trusted proxy (`http.trusted_proxies`) — the nearest address in `X-Forwarded-For` that
//! is not itself a trusted proxy. A header from anyone else is ignored, so a client cannot
//! pick the address it is limited as.
//!
//! IPv6 clients are counted by their /64, the block one host usually holds.

use std::net::IpAddr;

use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` is believed, and whether loopback clients are exempt.
#[derive(Debug, Clone, Default)]
pub struct ClientAddrPolicy {
    trusted: Vec<IpNet>,
    exempt_loopback: bool,
}

impl ClientAddrPolicy {
    /// Parses `trusted` (addresses or CIDR blocks); the error names the entry.
    pub fn new(trusted: &[String], exempt_loopback: bool) -> Result<Self, String> {
        let trusted = trusted
            .iter()
            .map(|entry| parse_net(entry).ok_or_else(|| entry.clone()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            trusted,
            exempt_loopback,
        })
    }

    fn is_trusted(&self, addr: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&addr))
    }

    /// The client behind `peer`, given the request's `X-Forwarded-For` values in order.
    pub fn client<'a>(&self, peer: IpAddr, forwarded_for: impl Iterator<Item = &'a str>) -> IpAddr {
        if !self.is_trusted(peer) {
            return peer;
        }
        // Rightmost first: each proxy appends the address it heard from.
        let hops: Vec<&str> = forwarded_for.flat_map(|value| value.split(',')).collect();
        for hop in hops.iter().rev() {
            match hop.trim().parse::<IpAddr>() {
                Ok(addr) if self.is_trusted(addr) => continue,
                Ok(addr) => return addr,
                // Garbage from the far side of the proxies: the last address believed.
                Err(_) => break,
            }
        }
        peer
    }

    /// Whether `client` is exempt from the per-address limits (loopback, unless configured
    /// otherwise: the load client and local tools).
    pub fn is_exempt(&self, client: IpAddr) -> bool {
        self.exempt_loopback && client.is_loopback()
    }
}

/// An address or block: `10.0.0.0/8`, `::1`, `192.0.2.7`.
pub fn parse_net(entry: &str) -> Option<IpNet> {
    let entry = entry.trim();
    entry
        .parse::<IpNet>()
        .ok()
        .or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
}

/// The key `addr` is counted under: itself, or its /64 for IPv6.
pub fn counted_as(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let policy =
            ClientAddrPolicy::new(&["127.0.0.1".into(), "10.0.0.0/8".into()], true).expect("valid");
        let xff = ["198.51.100.9, 203.0.113.7", "10.1.2.3"];
        // Through two trusted hops: the first untrusted address from the right.
        assert_eq!(
            policy.client(ip("127.0.0.1"), xff.into_iter()),
            ip("203.0.113.7")
        );
        // From an untrusted peer the header is ignored.
        assert_eq!(
            policy.client(ip("192.0.2.1"), xff.into_iter()),
            ip("192.0.2.1")
        );
        // A trusted peer with no header, or garbage in it: the peer.
        assert_eq!(
            policy.client(ip("127.0.0.1"), std::iter::empty()),
            ip("127.0.0.1")
        );
        assert_eq!(
            policy.client(ip("10.0.0.5"), ["x, 10.0.0.9"].into_iter()),
            ip("10.0.0.5")
        );
        assert!(policy.is_exempt(ip("127.0.0.1")));
        assert!(!policy.is_exempt(ip("203.0.113.7")));
        assert!(ClientAddrPolicy::new(&["not-an-ip".into()], true).is_err());
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        assert_eq!(counted_as(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(counted_as(ip("192.0.2.1")), ip("192.0.2.1"));
    }
}
