//! Scripted clients: a [`Peer`] that connects to a core's `TCPServerSocket` through the
//! simulated network ([`Sim::peer_connect`]), and how a scripted end stands
//! ([`Sim::peer_state`]).

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, SocketAddr};

use super::conn::{EndKind, EndState};
use super::peer::{PeerEnd, PeerState};
use super::{ConnId, HostId, Peer, Sim, SimError};

impl Sim {
    /// A scripted client: `script` connects from `from` to `to`, where a host's core may
    /// listen with a `TCPServerSocket` ([`Call::ServerListen`](super::Call::ServerListen)).
    /// `from` may be an address no host has (a remote client; it has the default link), or
    /// one of a host (it then has that host's links, partitions, holds and crashes); port 0
    /// takes an ephemeral port that is not live.
    ///
    /// The connection crosses the network as a core's would: latency, faults, black holes,
    /// partitions, holds, resets and crashes; a suspended server's kernel completes it and
    /// queues it in its accept queue (the client is connected and sends; beyond the backlog
    /// the SYN is dropped and sent again on Linux's schedule), one at `max_connections`
    /// accepts and resets it. Nobody listening at `to` (a scripted listener included:
    /// scripted ends talk to cores only) or [`Sim::refuse`] refuses it; an address no host
    /// has, or a black hole, makes it time out after [`Peer::connect_timeout`].
    /// [`Sim::peer_state`] tells how it went; [`Sim::peer_send`], [`Sim::peer_close`],
    /// [`Sim::peer_reset`], [`Sim::peer_pause`] and [`Sim::peer_received`] drive and read it
    /// (what is sent before it connects waits).
    ///
    /// ```
    /// use sockstate::sim::{AfterGreeting, Call, Peer, PeerState, Returned, Sim};
    /// use sockstate::{Event, ServerOptions};
    ///
    /// let mut sim = Sim::new(7);
    /// let server = sim.add_host("server", &["127.0.0.2".parse().unwrap()]).unwrap();
    /// let options = ServerOptions::default().local_port(Some(7));
    /// let Ok(Returned::Listening(_)) = sim.call(server, Call::ServerListen { options }) else {
    ///     panic!()
    /// };
    /// let _ = sim.run(); // listening now
    ///
    /// // A remote client says hello and half-closes; the app's server echoes what it gets
    /// // (in seeded chunks), and closes after the client's FIN.
    /// let from = "192.0.2.1:0".parse().unwrap();
    /// let hello = Peer { after_greeting: AfterGreeting::Close, ..Peer::send("hello") };
    /// let conn = sim.peer_connect(from, "127.0.0.2:7".parse().unwrap(), hello).unwrap();
    /// while let Some((_, event)) = sim.next_event() {
    ///     if let Event::Data { id, data } = event {
    ///         let data = data.as_bytes().to_vec().into();
    ///         sim.call(server, Call::TcpSend { id, data }).unwrap();
    ///     }
    /// }
    /// assert_eq!(sim.peer_received(conn), Some(&b"hello"[..]));
    /// assert_eq!(sim.peer_state(conn), Some(PeerState::Closed));
    ///
    /// // Nobody listens on port 8: refused.
    /// let refused = sim.peer_connect(from, "127.0.0.2:8".parse().unwrap(), Peer::sink()).unwrap();
    /// let _ = sim.run();
    /// assert_eq!(
    ///     sim.peer_state(refused),
    ///     Some(PeerState::Failed(std::io::ErrorKind::ConnectionRefused))
    /// );
    /// assert_eq!(sim.violations(), []);
    /// ```
    pub fn peer_connect(
        &mut self,
        from: SocketAddr,
        to: SocketAddr,
        script: Peer,
    ) -> Result<ConnId, SimError> {
        if to.port() == 0 {
            return Err(SimError::PortZero);
        }
        let unusable = |ip: IpAddr| ip.is_unspecified() || ip.is_multicast();
        if unusable(from.ip()) || unusable(to.ip()) || from.is_ipv4() != to.is_ipv4() {
            return Err(SimError::BadConnect { from, to });
        }
        let host = self.host_of(from.ip());
        if let Some(h) = host.filter(|h| self.hosts[h.0 as usize].down) {
            return Err(SimError::HostDown(h));
        }
        let port = self
            .peer_port(host, from.ip(), from.port())
            .ok_or(SimError::AddressInUse(from))?;
        let from = SocketAddr::new(from.ip(), port);
        let timeout = script.connect_timeout;
        let kind = EndKind::Peer(Box::new(PeerEnd::new(script)));
        let conn = self.new_conn(from, host, kind, to);
        self.syn_start(conn, timeout);
        self.send_syn(conn);
        Ok(conn)
    }

    /// How the scripted end of `conn` stands (`None`: no such connection, or no scripted end).
    pub fn peer_state(&self, conn: ConnId) -> Option<PeerState> {
        let c = self.conns.get(conn.0 as usize)?;
        let end = &c.ends[c.peer_side()?];
        let error = c.peer()?.error;
        Some(match (end.state, error) {
            (EndState::Connecting, _) => PeerState::Connecting,
            (EndState::Open, _) => PeerState::Open,
            (EndState::Closed, Some(error)) => PeerState::Failed(error),
            (EndState::Closed, None) => PeerState::Closed,
        })
    }

    /// The local port of a scripted client at `ip`: `wanted` if it is not live there, or an
    /// ephemeral one. A host's address takes it from the host's own allocator; another
    /// address from [`SimConfig::ephemeral_ports`](super::SimConfig::ephemeral_ports),
    /// skipping every live end there.
    fn peer_port(&mut self, host: Option<HostId>, ip: IpAddr, wanted: u16) -> Option<u16> {
        if let Some(host) = host {
            return self.bind_port(host, ip, wanted);
        }
        let live: BTreeSet<u16> = self
            .conns
            .iter()
            .flat_map(|c| c.ends.iter())
            .filter(|e| e.host.is_none() && e.is_live() && e.addr.ip() == ip)
            .map(|e| e.addr.port())
            .collect();
        if wanted != 0 {
            return (!live.contains(&wanted)).then_some(wanted);
        }
        // The hosts' ephemeral range (`SimConfig::ephemeral_ports`).
        let range = self.cfg.ephemeral_ports.clone();
        let (lo, hi) = ((*range.start()).max(1), *range.end());
        let span = u32::from(hi.checked_sub(lo)?) + 1;
        let first = self.conns.len() as u32 % span;
        (0..span)
            .map(|i| lo + ((first + i) % span) as u16)
            .find(|p| !live.contains(p))
    }

    /// The SYN-ACK reached a scripted client: it is connected and runs its script.
    pub(super) fn peer_established(&mut self, conn: ConnId) {
        self.syn_stop(conn);
        self.conn(conn).ends[0].state = EndState::Open;
        self.note(None, format!("{conn}: scripted client connected"));
        self.peer_pump(conn);
    }

    /// A scripted client's connect failed (refused, or reset before it connected).
    pub(super) fn peer_connect_failed(&mut self, conn: ConnId, error: io::ErrorKind) {
        if let EndKind::Peer(pe) = &mut self.conn(conn).ends[0].kind {
            pe.error = Some(error);
        }
        self.note(
            None,
            format!("{conn}: scripted client's connect fails: {error}"),
        );
    }
}
