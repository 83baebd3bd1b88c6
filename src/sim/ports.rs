//! Local ports in the simulated network: which a host's live sockets hold, and ephemeral ports
//! handed out from [`SimConfig::ephemeral_ports`](super::SimConfig::ephemeral_ports) as Linux
//! does from `net.ipv4.ip_local_port_range`, never one a live socket of the host holds.
//!
//! Linux's own search starts at a hashed offset and prefers even ports for `connect` and odd
//! ones for `bind`; the sim goes through the range in order from where it stopped last time,
//! wrapping around, so that a seed names the same ports. Where Linux lets connections to
//! different destinations share a local port, the sim gives every connection a port of its
//! own (as Linux does for connections to one destination): the stricter of the two.

use std::io;
use std::net::IpAddr;

use super::conn::{End, EndKind, EndState};
use super::{HostId, Sim};

/// Whether two local addresses overlap: the same, or either one unspecified (`0.0.0.0` or
/// `::` takes every address of its family, as the sim's `::` takes no IPv4).
pub(crate) fn overlap(a: IpAddr, b: IpAddr) -> bool {
    a == b || (a.is_ipv4() == b.is_ipv4() && (a.is_unspecified() || b.is_unspecified()))
}

impl Sim {
    /// Whether a live TCP socket of `host` holds `port` on an address overlapping `ip`: a
    /// connection's end (connecting or open; not the accepting end of a SYN not yet answered,
    /// which is no socket), a core's server or a scripted listener.
    fn tcp_port_held(&self, host: HostId, ip: IpAddr, port: u16) -> bool {
        let ends = self.conns.iter().flat_map(|c| c.ends.iter());
        let socket =
            |e: &&End| !(matches!(e.kind, EndKind::Nobody) && e.state == EndState::Connecting);
        ends.filter(|e| e.host == Some(host) && e.is_live() && socket(e))
            .any(|e| e.addr.port() == port && overlap(e.addr.ip(), ip))
            || self.hosts[host.0 as usize]
                .servers
                .values()
                .any(|s| s.local.port() == port && overlap(s.local.ip(), ip))
            || self.listeners.keys().any(|a| {
                a.port() == port && overlap(a.ip(), ip) && self.host_of(a.ip()) == Some(host)
            })
    }

    /// A local TCP port of `host` at `ip` for a listen: `wanted` if no live socket holds it,
    /// else an ephemeral port for 0; `None` (Linux: `EADDRINUSE`) if taken or exhausted.
    pub(super) fn bind_port(&mut self, host: HostId, ip: IpAddr, wanted: u16) -> Option<u16> {
        match wanted {
            0 => self.ephemeral(host, |s, port| s.tcp_port_held(host, ip, port)),
            port => (!self.tcp_port_held(host, ip, port)).then_some(port),
        }
    }

    /// [`bind_port`](Sim::bind_port) for a connect: a port asked for and held is
    /// `AddrInUse`; no ephemeral port left is `AddrNotAvailable`, as Linux's `connect`
    /// reports (`EADDRNOTAVAIL`).
    pub(super) fn connect_port(
        &mut self,
        host: HostId,
        ip: IpAddr,
        wanted: u16,
    ) -> Result<u16, io::ErrorKind> {
        match (wanted, self.bind_port(host, ip, wanted)) {
            (_, Some(port)) => Ok(port),
            (0, None) => Err(io::ErrorKind::AddrNotAvailable),
            (_, None) => Err(io::ErrorKind::AddrInUse),
        }
    }

    /// The next port of the ephemeral range, from where the last search stopped and wrapping
    /// around, that `held` does not hold; `None` once every port of the range was tried.
    pub(super) fn ephemeral(
        &mut self,
        host: HostId,
        held: impl Fn(&Sim, u16) -> bool,
    ) -> Option<u16> {
        let range = self.cfg.ephemeral_ports.clone();
        let (first, last) = ((*range.start()).max(1), *range.end());
        if first > last {
            return None;
        }
        for _ in 0..=(last - first) {
            let h = &mut self.hosts[host.0 as usize];
            let port = if (first..=last).contains(&h.next_port) {
                h.next_port
            } else {
                first
            };
            h.next_port = if port == last { first } else { port + 1 };
            if !held(self, port) {
                return Some(port);
            }
        }
        None
    }
}
