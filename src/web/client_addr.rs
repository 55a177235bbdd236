//! Who a request comes from, for the per-address limits: the TCP peer, or — when the peer is
//! a trusted proxy (`http.trusted_proxies`) — the nearest address in `X-Forwarded-For` that
//! is not itself a trusted proxy. A header from anyone else is ignored, so a client cannot
//! pick the address it is limited as. Only a loopback peer that forwards for nobody is exempt
//! (by default): a proxy on the same host never makes its clients exempt. Addresses are
//! compared in canonical form, so an IPv4 client of a dual-stack listener counts as itself.
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

    /// Who a request from `peer` counts as, given its `X-Forwarded-For` values in order and
    /// whether it carries any forwarding header at all (`X-Forwarded-For` or `Forwarded`).
    pub fn client<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl Iterator<Item = &'a str>,
        forwarded: bool,
    ) -> Client {
        let peer = peer.to_canonical();
        // A loopback peer forwarding for nobody is a local tool (trusted proxy or not); one
        // forwarding for someone never is exempt.
        let exempt = self.exempt_loopback && peer.is_loopback() && !forwarded;
        if exempt || !self.is_trusted(peer) {
            return Client { addr: peer, exempt };
        }
        // Rightmost first: each proxy appends the address it heard from.
        let hops: Vec<&str> = forwarded_for.flat_map(|value| value.split(',')).collect();
        for hop in hops.iter().rev() {
            match parse_hop(hop).map(|addr| addr.to_canonical()) {
                Some(addr) if self.is_trusted(addr) => continue,
                Some(addr) => {
                    return Client {
                        addr,
                        exempt: false,
                    };
                }
                // Garbage from the far side of the proxies: counted as the proxy.
                None => break,
            }
        }
        // Through a trusted proxy that named nobody: counted as the proxy, never exempt.
        Client {
            addr: peer,
            exempt: false,
        }
    }
}

/// Who a request counts as for the per-address limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The address whose allowance it spends.
    pub addr: IpAddr,
    /// Whether it spends none (a local tool on loopback, not forwarding for anyone).
    pub exempt: bool,
}

/// One `X-Forwarded-For` hop: an address, with or without a port (`192.0.2.7:4711`,
/// `[2001:db8::1]:4711`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
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
        let client = |peer: &str, xff: &[&str], forwarded| {
            policy.client(ip(peer), xff.iter().copied(), forwarded)
        };
        // Through two trusted hops: the first untrusted address from the right, not exempt.
        let behind = client("127.0.0.1", &xff, true);
        assert_eq!((behind.addr, behind.exempt), (ip("203.0.113.7"), false));
        // From an untrusted peer the header is ignored.
        assert_eq!(client("192.0.2.1", &xff, true).addr, ip("192.0.2.1"));
        // A trusted proxy naming nobody usable: the proxy, never exempt.
        let garbage = client("127.0.0.1", &["not-an-address"], true);
        assert_eq!((garbage.addr, garbage.exempt), (ip("127.0.0.1"), false));
        // A hop with a port.
        let with_port = client("10.0.0.5", &["203.0.113.9:4711"], true);
        assert_eq!(with_port.addr, ip("203.0.113.9"));
        let v6_port = client("10.0.0.5", &["[2001:db8::1]:4711"], true);
        assert_eq!(v6_port.addr, ip("2001:db8::1"));
        // A local tool on the proxy's host, forwarding for nobody: exempt though loopback is
        // a trusted proxy.
        assert!(client("127.0.0.1", &[], false).exempt);
        assert_eq!(
            client("10.0.0.5", &["x, 10.0.0.9"], true).addr,
            ip("10.0.0.5")
        );
        assert!(ClientAddrPolicy::new(&["not-an-ip".into()], true).is_err());
    }

    #[test]
    fn loopback_is_exempt_only_when_it_forwards_for_nobody() {
        let policy = ClientAddrPolicy::new(&[], true).expect("valid");
        assert!(
            policy
                .client(ip("127.0.0.1"), std::iter::empty(), false)
                .exempt
        );
        assert!(policy.client(ip("::1"), std::iter::empty(), false).exempt);
        // A proxy on this host that is not listed: its clients share its allowance.
        let proxied = policy.client(ip("127.0.0.1"), ["203.0.113.7"].into_iter(), true);
        assert_eq!((proxied.addr, proxied.exempt), (ip("127.0.0.1"), false));
        assert!(
            !policy
                .client(ip("203.0.113.7"), std::iter::empty(), false)
                .exempt
        );
        let strict = ClientAddrPolicy::new(&[], false).expect("valid");
        assert!(
            !strict
                .client(ip("127.0.0.1"), std::iter::empty(), false)
                .exempt
        );
    }

    #[test]
    fn ipv4_clients_of_a_dual_stack_listener_count_as_themselves() {
        let policy = ClientAddrPolicy::new(&["127.0.0.1".into()], true).expect("valid");
        let mapped = ip("::ffff:192.0.2.1");
        assert_eq!(
            policy.client(mapped, std::iter::empty(), false).addr,
            ip("192.0.2.1")
        );
        let local = ClientAddrPolicy::new(&[], true).expect("valid");
        assert!(
            local
                .client(ip("::ffff:127.0.0.1"), std::iter::empty(), false)
                .exempt
        );
        let through = policy.client(ip("::ffff:127.0.0.1"), ["203.0.113.7"].into_iter(), true);
        assert_eq!(through.addr, ip("203.0.113.7"));
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        assert_eq!(counted_as(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(counted_as(ip("192.0.2.1")), ip("192.0.2.1"));
    }
}
