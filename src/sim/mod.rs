//! A deterministic simulated network (feature `sim`): any number of [`Core`]s ("hosts", each
//! with its IP addresses) joined by an in-memory network on a virtual clock, plus scripted
//! remote endpoints ([`Peer`]) that accept connections on an address ([`Sim::listen`]) or
//! connect to a core's `TCPServerSocket` ([`Sim::peer_connect`]).
//!
//! The simulator plays the I/O layer of every host: it performs each [`Action`] the cores ask
//! for and feeds back the [`Input`]s a real OS would report, with
//!
//! - TCP pipes with a per-link delay distribution ([`Delay`]), a bandwidth limit, the
//!   sender's send buffer and the receiver's receive window apart (a reader that stops
//!   reading fills its window, then the sender's buffer, then stalls the writer; bytes in the
//!   sender's buffer are unacknowledged), seeded chunking of reads and seeded partial writes
//!   ([`Link`]);
//! - cores' `TCPServerSocket`s accepting other cores' (or their own) connections and scripted
//!   clients' through [`Core::handle_accepted`], a reset when at `max_connections`, and
//!   Linux's accept queue while suspended: the kernel completes the handshake (the client is
//!   connected and sends up to the receive window) for one more connection than the
//!   `listen(2)` backlog (at most [`SimConfig::somaxconn`]), accepted in order on resume; SYNs
//!   beyond are dropped and sent again on the client's SYN schedule; a closed server resets
//!   its queue, a crashed host loses it;
//! - TCP's retransmission timers as Linux's: data or a FIN the other end never acknowledges
//!   (its host crashed or down, [`Sim::silence`], a partition, hold or black hole that lasts)
//!   fails the sending end with `NetworkTimeoutError` after [`TCP_RETRIES2`] (15)
//!   retransmissions backed off from the RTO (`rtt + max(2 rtt, `[`TCP_RTO_MIN`]`)`, doubling up
//!   to [`TCP_RTO_MAX`]), at the first firing 924.6 s (`tcp_model_timeout`) past the first
//!   retransmission: 926.646 s after the send on the default link; a connect's SYN goes again
//!   at 1, 3, 7, 15, 31 and 63 s if dropped, and a connect nobody answers fails at 127 s
//!   ([`TCP_SYN_RETRIES`]; a core's own `connect_timeout` usually fires first, a scripted
//!   client's is [`Peer::connect_timeout`]);
//! - TCP keep-alive ([`TcpOptions::keep_alive`](crate::TcpOptions::keep_alive)) as Linux's:
//!   an idle connection whose other end is silent (crashed, partitioned, black-holed,
//!   [`Sim::silence`]d) fails with `NetworkTimeoutError` after the idle delay plus
//!   [`KEEP_ALIVE_INTERVAL`] × [`KEEP_ALIVE_PROBES`] (75 s × 9, the values the driver leaves),
//!   one that answers stays open, a restarted host resets it; without keep-alive a silent end
//!   goes unnoticed while idle;
//! - UDP datagrams with seeded loss, duplication and reordering ([`Link::udp_loss`],
//!   [`Link::udp_duplicate`], [`Link::udp_reorder`]), multicast groups (a datagram to a group
//!   reaches every member bound to its port; the sender's host only with `loopback`) and
//!   Linux's receive buffer: in bytes ([`SimConfig::rmem_default`], `receive_buffer_size`
//!   capped and doubled), each waiting datagram charged as Linux charges it, one that does
//!   not fit dropped and counted ([`Sim::udp_rcvbuf_errors`]);
//! - ephemeral ports from Linux's range ([`SimConfig::ephemeral_ports`]), never one a live
//!   socket of the host holds, and Linux's errors when none is left;
//! - its own name table for [`Action::Resolve`] ([`Sim::dns`], [`Sim::dns_fail`]); every host
//!   name resolves to the host's addresses;
//! - faults on demand: refuse connections ([`Sim::refuse`]), reset a connection mid-stream
//!   ([`Sim::reset`], [`Sim::peer_reset`]), black-hole an address (nothing gets through until
//!   it heals, [`Sim::black_hole`]), partition two hosts or hold what passes between them,
//!   both ways or one ([`Sim::partition`], [`Sim::hold`], [`Sim::hold_oneway`]), silence one
//!   connection for good ([`Sim::silence`]), fail a connection with any OS error
//!   ([`Sim::fail`]), crash a host and restart it ([`Sim::crash`], [`Sim::restart`]), DNS
//!   failure, and flipped bits ([`Link::flip_rate`]).
//!
//! Our controls against those of turmoil (tokio-rs/turmoil), the most used Rust network
//! simulator:
//!
//! | turmoil | here |
//! |---|---|
//! | `partition` / `partition_oneway` | [`Sim::partition`] / [`Sim::partition_oneway`] (TCP held, datagrams lost) |
//! | `repair` / `repair_oneway` | [`Sim::repair`] / [`Sim::repair_oneway`] |
//! | `hold` / `release` | [`Sim::hold`] / [`Sim::release`] (both ways; nothing lost) |
//! | — | [`Sim::hold_oneway`] / [`Sim::release_oneway`] (one way; nothing lost) |
//! | message loss (`fail_rate`, per link) | [`Link::udp_loss`] (TCP: [`Sim::silence`], [`Sim::black_hole`]) |
//! | latency `min`..`max` drawn `Exp(λ)` (global or per link) | [`Link::delay`] per link ([`Sim::set_link`]): [`Delay::exponential`] (turmoil's), [`Delay::fixed`], [`Delay::uniform`], [`Delay::pareto`] (long tail), or [`Link::latency`] + [`Link::jitter`] |
//! | ephemeral ports 49152–65535 (a panic when used up) | [`SimConfig::ephemeral_ports`] (Linux's 32768–60999; a live port never; used up: `AddrNotAvailable` / `AddrInUse`) |
//! | `udp_capacity` (64 datagrams) | Linux's receive buffer in bytes ([`SimConfig::rmem_default`], `receive_buffer_size`), drops counted |
//! | — | [`Link::bandwidth`], [`Link::send_buffer`], [`Link::recv_buffer`], chunked reads, partial writes, flipped bits |
//! | — | [`Sim::reset`], [`Sim::fail`], [`Sim::refuse`], DNS answers and failures |
//! | — | scripted peers accepting ([`Sim::listen`]) and connecting ([`Sim::peer_connect`], outcome in [`Sim::peer_state`]), the invariant checker ([`CheckedCore`]) |
//! | — | TCP keep-alive probes as Linux's ([`KEEP_ALIVE_INTERVAL`], [`KEEP_ALIVE_PROBES`]) |
//! | `crash` / `bounce` a host | [`Sim::crash`] / [`Sim::restart`] (a fresh core; peers get silence, then resets) |
//! | per-message inspection | [`Sim::held`] (what is held between two hosts: segments with their connection, addresses, bytes and flags; datagrams with their payload) |
//! | — | TCP retransmission give-up and SYN retries as Linux's ([`TCP_RETRIES2`], [`TCP_SYN_RETRIES`]), a suspended server's accept queue |
//! | `step` | [`Sim::next_event`], [`Sim::run_for`] (steps of one event or a span) |
//!
//! A seed reproduces a run exactly: the only randomness is a ChaCha8 stream seeded from it, and
//! every step happens in a fixed order. [`Sim::transcript`] is the ordered record of every call,
//! input, action, event, timer run and network happening.
//!
//! Decisions where an OS would offer choices: a connection to an address no host has is
//! black-holed (the connect times out; its SYN is not sent again); a host closing a socket
//! with unread data sends a reset (as Linux does), and that reset discards what the host's
//! kernel had not put on the
//! wire yet (with a [`Link::bandwidth`] limit, bytes leave at that rate; without one, a write
//! is on the wire at once); data reaching a closed end is answered with a reset, a FIN
//! acknowledged (its kernel keeps the connection in FIN_WAIT2 or TIME_WAIT); a receiver
//! takes a connection's segments in sequence only, so a black hole holds segments and
//! retransmits them in order once healed, never overtaken by later ones, while
//! [`Sim::silence`] loses them for good; reads are handed over at the instant they are due (no
//! read cost).
//!
//! Every host's core runs inside a [`CheckedCore`], which checks the contract's invariants after
//! every step; [`Sim::violations`] lists what broke. Calls made through [`Sim::call`] are
//! checked and recorded; [`Sim::core_mut`] gives the core itself, and checking stops for that
//! host.
//!
//! App code written against [`Sockets`](crate::Sockets) runs on a host through [`Sim::host`]
//! (its calls checked and recorded the same way): see the chapter
//! [Testing your protocol](crate::testing).
//!
//! ```
//! use std::time::Duration;
//! use sockstate::sim::{Call, Peer, Returned, Sim};
//! use sockstate::{Data, ErrorCode, Event, SocketId, TcpOptions};
//!
//! let mut sim = Sim::new(42);
//! let client = sim.add_host("client", &["127.0.0.1".parse().unwrap()]).unwrap();
//! let server = sim.add_host("server", &["127.0.0.2".parse().unwrap()]).unwrap();
//! sim.listen("127.0.0.2:7".parse().unwrap(), Peer::echo()).unwrap();
//!
//! let open = Call::TcpOpen { host: "server".into(), port: 7, options: TcpOptions::default() };
//! let Ok(Returned::Opened(id)) = sim.call(client, open) else { panic!() };
//! let mut echoed = String::new();
//! while let Some((host, event)) = sim.next_event() {
//!     assert_eq!(host, client);
//!     match event {
//!         Event::Open { .. } => {
//!             sim.call(client, Call::TcpSend { id, data: "héllo wörld".into() }).unwrap();
//!         }
//!         Event::Data { data: Data::Text(text), .. } => {
//!             echoed.push_str(&text); // reads arrive in seeded chunks
//!             if echoed.len() == "héllo wörld".len() {
//!                 sim.call(client, Call::TcpClose { id }).unwrap();
//!             }
//!         }
//!         Event::Close { id: closed } => assert_eq!(closed, SocketId::from(id)),
//!         other => panic!("unexpected {other:?}"),
//!     }
//! }
//! assert_eq!(echoed, "héllo wörld");
//! assert_eq!(sim.violations(), []);
//! let _ = server;
//!
//! // Faults: nobody listens on port 8 of the server.
//! let open = Call::TcpOpen { host: "127.0.0.2".into(), port: 8, options: TcpOptions::default() };
//! sim.call(client, open).unwrap();
//! let events: Vec<Event> = sim.run().into_iter().map(|(_, e)| e).collect();
//! assert!(matches!(&events[..], [Event::Error { error, .. }, Event::Close { .. }]
//!     if error.code == ErrorCode::ConnectionRefused));
//! assert!(sim.now() < Duration::from_millis(100));
//! ```

mod check;
mod connect;
mod dgram;
mod keepalive;
mod link;
mod listen;
mod net;
mod paths;
mod peer;
mod ports;
mod record;
mod rng;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use self::check::{CheckedCore, Outcome, Violation};
pub use self::keepalive::{KEEP_ALIVE_INTERVAL, KEEP_ALIVE_PROBES};
pub use self::link::{Delay, Link};
pub use self::peer::{AfterGreeting, Peer, PeerState, PEER_CONNECT_TIMEOUT};
pub use self::record::{Happening, Record};
pub use crate::call::{Call, Returned};

mod host_handle;
pub use self::host_handle::{CheckedAt, SimHost};

pub use self::paths::Held;
mod retransmit;
pub use self::retransmit::{TCP_RETRIES2, TCP_RTO_MAX, TCP_RTO_MIN, TCP_SYN_RETRIES};

use self::net::{Conn, Ev, SockIo};
use self::rng::SimRng;
use crate::{
    Action, ApiError, Config, Core, DnsName, Event, Input, Output, ResolveError, ServerId,
    SocketId, TcpId, UdpId,
};

/// A simulated host: one [`Core`] and its addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostId(u32);

impl fmt::Display for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "h{}", self.0)
    }
}

/// One TCP connection in the simulated network, from its first connect attempt on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u32);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

crate::options_struct! {
    /// Settings of a [`Sim`].
    #[derive(Clone, Debug, PartialEq)]
    pub struct SimConfig {
        /// The configuration of each host's core made by [`Sim::add_host`].
        pub core: Config,
        /// The link between any two hosts unless [`Sim::set_link`] says otherwise (also between
        /// two addresses of one host).
        pub link: Link,
        /// How long the name table takes to answer (default 1 ms).
        pub dns_delay: Duration,
        /// The run stops when the virtual clock would pass this (default 1 hour).
        pub time_limit: Duration,
        /// The run stops after this many steps (default 10 million).
        pub step_limit: u64,
        /// Keep the transcript (default `true`).
        pub record: bool,
        /// Check the invariants on every host (default `true`).
        pub check: bool,
        /// The ports each host hands out for a connect or a bind or listen on port 0 (default
        /// Linux's `net.ipv4.ip_local_port_range`, 32768 to 60999), never one a live socket of
        /// the host holds; when none is left, a connect fails with `AddrNotAvailable` and a
        /// bind or listen with `AddrInUse`, as on Linux.
        pub ephemeral_ports: RangeInclusive<u16>,
        /// A UDP socket's receive buffer in bytes unless it sets `receive_buffer_size`
        /// (default Linux's `net.core.rmem_default`, 212992). Datagrams wait in it while the
        /// socket does not read, each charged its payload and Linux's overhead; one that does
        /// not fit is dropped and counted ([`Sim::udp_rcvbuf_errors`]).
        pub rmem_default: usize,
        /// The most a `receive_buffer_size` sets (default Linux's `net.core.rmem_max`,
        /// 212992): as Linux, the size asked is capped at this and then doubled.
        pub rmem_max: usize,
        /// The simulated OS takes the datagrams of a step's `SendDatagrams` together and
        /// answers with one `Sent` of their count, and hands datagrams of one sender that
        /// arrive together, of one size but the last, to a reading socket as one
        /// `Input::Datagrams`, as UDP GSO and GRO do (default `false`: one datagram at a time,
        /// each its own `Sent` and `Datagram`). What the network does to each is drawn as for
        /// one sent alone.
        pub udp_batches: bool,
        /// Linux's `net.core.somaxconn` (default 4096): a server's accept queue holds
        /// `min(backlog, somaxconn) + 1` connections the kernel completed while the server
        /// does not accept; SYNs beyond are dropped (the client sends them again).
        pub somaxconn: u32,
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            core: Config::default(),
            link: Link::default(),
            dns_delay: Duration::from_millis(1),
            time_limit: Duration::from_secs(3600),
            step_limit: 10_000_000,
            record: true,
            check: true,
            ephemeral_ports: 32768..=60999,
            rmem_default: 212_992,
            rmem_max: 212_992,
            udp_batches: false,
            somaxconn: 4096,
        }
    }
}

/// A misuse of the simulator's own API.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SimError {
    /// No such host.
    UnknownHost(HostId),
    /// No such connection.
    UnknownConn(ConnId),
    /// The connection has no scripted peer end (or it has not accepted yet).
    NotAPeer(ConnId),
    /// The scripted peer has sent FIN or reset: it can send no more.
    PeerDoneSending(ConnId),
    /// The address belongs to no host.
    NoSuchAddress(IpAddr),
    /// Another host has this address already.
    AddressTaken(IpAddr),
    /// Something listens here already.
    AddressInUse(SocketAddr),
    /// Port 0 cannot be listened on.
    PortZero,
    /// Not a valid DNS name.
    BadName(String),
    /// The host is down (crashed and not restarted).
    HostDown(HostId),
    /// A scripted client cannot connect from `from` to `to`: an unspecified or multicast
    /// address, or two address families.
    BadConnect {
        /// The client's address.
        from: SocketAddr,
        /// Where it connects.
        to: SocketAddr,
    },
    /// A [`Delay`] with parameters out of range (why).
    BadDelay(String),
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::UnknownHost(h) => write!(f, "no host {h}"),
            SimError::UnknownConn(c) => write!(f, "no connection {c}"),
            SimError::NotAPeer(c) => write!(f, "connection {c} has no scripted peer"),
            SimError::PeerDoneSending(c) => write!(f, "the peer of {c} has sent FIN or reset"),
            SimError::NoSuchAddress(ip) => write!(f, "no host has the address {ip}"),
            SimError::AddressTaken(ip) => write!(f, "another host has the address {ip}"),
            SimError::AddressInUse(a) => write!(f, "something listens on {a} already"),
            SimError::PortZero => f.write_str("port 0 cannot be listened on"),
            SimError::BadName(n) => write!(f, "{n:?} is not a valid DNS name"),
            SimError::HostDown(h) => write!(f, "host {h} is down"),
            SimError::BadConnect { from, to } => write!(f, "cannot connect from {from} to {to}"),
            SimError::BadDelay(why) => write!(f, "bad delay: {why}"),
        }
    }
}

impl std::error::Error for SimError {}

/// Why a run stopped before everything was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stop {
    /// The virtual clock reached [`SimConfig::time_limit`].
    TimeLimit,
    /// [`SimConfig::step_limit`] steps were taken.
    StepLimit,
}

pub(crate) struct Host {
    name: String,
    ips: Vec<IpAddr>,
    core: CheckedCore,
    deadline: Option<Instant>,
    dirty: bool,
    socks: BTreeMap<TcpId, SockIo>,
    servers: BTreeMap<ServerId, listen::ServerIo>,
    udps: BTreeMap<UdpId, dgram::UdpIo>,
    /// UDP sockets waiting for the answer of their `Resolve`.
    udp_resolving: BTreeSet<UdpId>,
    /// Servers and UDP sockets waiting for their `Listening` or `Bound`.
    opening: BTreeSet<SocketId>,
    next_port: u16,
    /// Datagrams dropped because a socket's receive buffer was full (Linux's `RcvbufErrors`).
    rcvbuf_errors: u64,
    /// Crashed and not restarted: it takes no segment, datagram or call.
    down: bool,
}

/// The simulated network. See the [module docs](self).
pub struct Sim {
    cfg: SimConfig,
    rng: SimRng,
    start: Instant,
    now: Instant,
    seq: u64,
    queue: BTreeMap<(Instant, u64), Ev>,
    hosts: Vec<Host>,
    dns: BTreeMap<String, Result<Vec<IpAddr>, ResolveError>>,
    listeners: BTreeMap<SocketAddr, Peer>,
    refused: BTreeSet<SocketAddr>,
    black_holes: BTreeSet<IpAddr>,
    /// Paths (from, to) that `partition` cuts: TCP holds, datagrams are lost.
    partitioned: BTreeSet<(HostId, HostId)>,
    /// Paths (from, to) that `hold` holds: TCP segments and datagrams wait for `release`.
    holds: BTreeSet<(HostId, HostId)>,
    /// Datagrams `hold` keeps, in the order held.
    held_datagrams: Vec<paths::HeldDatagram>,
    links: BTreeMap<(HostId, HostId), Link>,
    conns: Vec<Conn>,
    /// The connection each socket got established on, kept after its release.
    established: BTreeMap<(HostId, TcpId), ConnId>,
    ready: VecDeque<(HostId, Event)>,
    transcript: Vec<Record>,
    net_violations: Vec<(HostId, Violation)>,
    steps: u64,
    stop: Option<Stop>,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("now", &self.now())
            .field("hosts", &self.hosts.len())
            .field("conns", &self.conns.len())
            .field("scheduled", &self.queue.len())
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// A network with the default settings, its randomness seeded with `seed`.
    pub fn new(seed: u64) -> Sim {
        Sim::with_config(seed, SimConfig::default())
    }

    /// A network with these settings.
    pub fn with_config(seed: u64, cfg: SimConfig) -> Sim {
        // The one real clock reading: `Instant` has no other constructor. Only offsets from it
        // are ever recorded, so runs stay reproducible.
        #[allow(clippy::disallowed_methods)]
        let start = Instant::now();
        Sim {
            cfg,
            rng: SimRng::new(seed),
            start,
            now: start,
            seq: 0,
            queue: BTreeMap::new(),
            hosts: Vec::new(),
            dns: BTreeMap::new(),
            listeners: BTreeMap::new(),
            refused: BTreeSet::new(),
            black_holes: BTreeSet::new(),
            partitioned: BTreeSet::new(),
            holds: BTreeSet::new(),
            held_datagrams: Vec::new(),
            links: BTreeMap::new(),
            conns: Vec::new(),
            established: BTreeMap::new(),
            ready: VecDeque::new(),
            transcript: Vec::new(),
            net_violations: Vec::new(),
            steps: 0,
            stop: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    // ---- hosts, names, listeners ------------------------------------------------------------

    /// Adds a host running a core made from [`SimConfig::core`]. `name` resolves to `ips`.
    pub fn add_host(&mut self, name: &str, ips: &[IpAddr]) -> Result<HostId, SimError> {
        let core = Core::new(self.cfg.core.clone());
        self.add_host_with(name, ips, core)
    }

    /// Adds a host running `core` (which must have no socket yet to be checked), e.g. one made
    /// with [`Core::with_policy`]. `name` resolves to `ips`.
    pub fn add_host_with(
        &mut self,
        name: &str,
        ips: &[IpAddr],
        core: Core,
    ) -> Result<HostId, SimError> {
        for ip in ips {
            if self.host_of(*ip).is_some() {
                return Err(SimError::AddressTaken(*ip));
            }
        }
        self.dns(name, ips)?;
        let mut core = CheckedCore::new(core);
        if !self.cfg.check {
            core.core_mut();
        }
        let id = HostId(self.hosts.len() as u32);
        self.hosts.push(Host {
            name: name.to_owned(),
            ips: ips.to_vec(),
            core,
            deadline: None,
            dirty: false,
            socks: BTreeMap::new(),
            servers: BTreeMap::new(),
            udps: BTreeMap::new(),
            udp_resolving: BTreeSet::new(),
            opening: BTreeSet::new(),
            next_port: *self.cfg.ephemeral_ports.start(),
            rcvbuf_errors: 0,
            down: false,
        });
        Ok(id)
    }

    /// The host's name.
    pub fn host_name(&self, host: HostId) -> Option<&str> {
        self.hosts.get(host.0 as usize).map(|h| h.name.as_str())
    }

    /// The host that has `ip`.
    pub fn host_of(&self, ip: IpAddr) -> Option<HostId> {
        self.hosts
            .iter()
            .position(|h| h.ips.contains(&ip))
            .map(|i| HostId(i as u32))
    }

    /// The host's core (checked), for reading attributes.
    pub fn core(&self, host: HostId) -> Option<&Core> {
        self.hosts.get(host.0 as usize).map(|h| h.core.core())
    }

    /// The host's core, for calls the simulator does not see: from now on its invariants are
    /// not checked. Prefer [`Sim::call`].
    pub fn core_mut(&mut self, host: HostId) -> Option<&mut Core> {
        let h = self.hosts.get_mut(host.0 as usize)?;
        h.dirty = true;
        Some(h.core.core_mut())
    }

    /// Records from now on what reaches `host`'s core (call it right after adding the host):
    /// [`recording`](Sim::recording) then replays on a fresh core with
    /// [`replay::Replay`](crate::replay::Replay), e.g. to debug a failing run step by step.
    pub fn record_host(&mut self, host: HostId) {
        let start = self.start;
        if let Some(h) = self.hosts.get_mut(host.0 as usize) {
            h.core.record(start);
        }
    }

    /// `host`'s recording so far (see [`record_host`](Sim::record_host)).
    pub fn recording(&self, host: HostId) -> Option<Vec<u8>> {
        self.hosts.get(host.0 as usize)?.core.recording()
    }

    /// The host's checked core, for its [`Outcome`]s and streams.
    pub fn checked(&self, host: HostId) -> Option<&CheckedCore> {
        self.hosts.get(host.0 as usize).map(|h| &h.core)
    }

    /// Makes `name` resolve to `ips` (in this order), replacing what it resolved to.
    pub fn dns(&mut self, name: &str, ips: &[IpAddr]) -> Result<(), SimError> {
        self.dns_answer(name, Ok(ips.to_vec()))
    }

    /// Makes resolving `name` fail with `why` (a name never entered fails with `NotFound`).
    pub fn dns_fail(&mut self, name: &str, why: ResolveError) -> Result<(), SimError> {
        self.dns_answer(name, Err(why))
    }

    fn dns_answer(
        &mut self,
        name: &str,
        answer: Result<Vec<IpAddr>, ResolveError>,
    ) -> Result<(), SimError> {
        let key = DnsName::new(name)
            .map_err(|_| SimError::BadName(name.to_owned()))?
            .as_str()
            .to_ascii_lowercase();
        self.dns.insert(key, answer);
        Ok(())
    }

    /// Runs `peer` on every connection accepted at `addr`, an address of a host.
    pub fn listen(&mut self, addr: SocketAddr, peer: Peer) -> Result<(), SimError> {
        if addr.port() == 0 {
            return Err(SimError::PortZero);
        }
        if self.host_of(addr.ip()).is_none() {
            return Err(SimError::NoSuchAddress(addr.ip()));
        }
        if self.listeners.contains_key(&addr) {
            return Err(SimError::AddressInUse(addr));
        }
        self.listeners.insert(addr, peer);
        Ok(())
    }

    /// Stops listening at `addr` (connections already accepted go on).
    pub fn unlisten(&mut self, addr: SocketAddr) {
        self.listeners.remove(&addr);
    }

    /// Turns [`SimConfig::udp_batches`] on or off, before any datagram is sent (the fuzz
    /// targets draw it from their case).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn set_udp_batches(&mut self, on: bool) {
        self.cfg.udp_batches = on;
    }

    /// The link between `a` and `b` (both directions) from now on; connections already made
    /// keep theirs.
    pub fn set_link(&mut self, a: HostId, b: HostId, link: Link) {
        self.links.insert((a.min(b), a.max(b)), link);
    }

    fn link(&self, a: HostId, b: HostId) -> Link {
        self.links
            .get(&(a.min(b), a.max(b)))
            .unwrap_or(&self.cfg.link)
            .clone()
    }

    // ---- faults -----------------------------------------------------------------------------

    /// Connections to `addr` are refused from now on, listener or not.
    pub fn refuse(&mut self, addr: SocketAddr) {
        self.refused.insert(addr);
    }

    /// Nothing to or from `ip` gets through from now on, also segments already on the way:
    /// connects get no answer and connections go quiet (so the core's timers decide). As with
    /// TCP's retransmissions, what was held goes through, in order, once [`Sim::heal`]ed.
    pub fn black_hole(&mut self, ip: IpAddr) {
        self.note(None, format!("black hole {ip}"));
        self.black_holes.insert(ip);
    }

    /// Undoes [`Sim::black_hole`] and [`Sim::refuse`] for `ip`.
    pub fn heal(&mut self, ip: IpAddr) {
        self.note(None, format!("heal {ip}"));
        self.black_holes.remove(&ip);
        self.refused.retain(|a| a.ip() != ip);
        self.retransmit();
    }

    /// The host crashes (turmoil's `crash`): its core and every socket of it vanish at once,
    /// without a segment. Its peers see what Linux peers see: silence (what they send is held,
    /// as their TCP retransmits; connects to it time out; datagrams to it are lost) until
    /// their own timers end it, or until [`Sim::restart`]. Calls on it fail meanwhile. The
    /// transcript and the violations of its core so far are kept.
    pub fn crash(&mut self, host: HostId) -> Result<(), SimError> {
        let h = self
            .hosts
            .get_mut(host.0 as usize)
            .ok_or(SimError::UnknownHost(host))?;
        h.down = true;
        let old = std::mem::replace(
            &mut h.core,
            CheckedCore::new(Core::new(self.cfg.core.clone())),
        );
        h.deadline = None;
        h.dirty = false;
        h.socks.clear();
        h.servers.clear();
        h.udps.clear();
        h.opening.clear();
        let kept = old.violations().iter().map(|v| (host, v.clone()));
        self.net_violations.extend(kept);
        self.note(Some(host), format!("{host} crashes"));
        self.established.retain(|(h, _), _| *h != host);
        self.ready.retain(|(h, _)| *h != host);
        self.held_datagrams.retain(|d| d.host != host);
        // What was on its way to its sockets finds none (a new core reuses their ids).
        self.queue.retain(|_, ev| {
            !matches!(ev, Ev::Resolve { host: h, .. } | Ev::Input { host: h, .. }
                | Ev::Datagram { host: h, .. } | Ev::UdpDeliver { host: h, .. }
                | Ev::UdpFlush { host: h, .. } if *h == host)
        });
        self.crash_ends(host);
        self.keep_alive_forget(host, None);
        Ok(())
    }

    /// The crashed host is back (turmoil's `bounce`), with a fresh core made from
    /// [`SimConfig::core`] and the same addresses: scripted listeners on them accept again,
    /// and what its peers' TCP sends again now reaches it, to be answered with a reset where
    /// it belonged to a connection of before the crash.
    pub fn restart(&mut self, host: HostId) -> Result<(), SimError> {
        let core = Core::new(self.cfg.core.clone());
        self.restart_with(host, core)
    }

    /// [`Sim::restart`] with `core` (which must have no socket yet to be checked).
    pub fn restart_with(&mut self, host: HostId, core: Core) -> Result<(), SimError> {
        let h = self
            .hosts
            .get_mut(host.0 as usize)
            .ok_or(SimError::UnknownHost(host))?;
        let mut core = CheckedCore::new(core);
        if !self.cfg.check {
            core.core_mut();
        }
        h.core = core;
        h.down = false;
        self.note(Some(host), format!("{host} restarts"));
        self.retransmit();
        Ok(())
    }

    /// The connection goes silent for good (the peer vanished): every segment either way is
    /// lost from now on, including those on the way, so writes stall once the buffers are full.
    pub fn silence(&mut self, conn: ConnId) -> Result<(), SimError> {
        let c = self.conn_mut(conn)?;
        c.silenced = true;
        c.faulted = true;
        self.note(None, format!("{conn} silenced"));
        Ok(())
    }

    /// A reset in the middle of the network, in any state: what is on the way is lost (a SYN
    /// included), and one link delay from now both ends get a reset. A core still connecting
    /// gets a refused attempt (`ConnectionRefused`, as Linux reports a reset in SYN_SENT); a
    /// side that has accepted gets `ConnectionReset`. The checker reports a violation if an
    /// end the reset reached is still alive by then.
    pub fn reset(&mut self, conn: ConnId) -> Result<(), SimError> {
        self.conn_mut(conn)?;
        self.kill(conn, io::ErrorKind::ConnectionReset, true);
        Ok(())
    }

    /// The OS reports `error` (a retransmission timeout, say) on each core end of the
    /// connection, now (a core still connecting gets a failed connect with `error`). The
    /// checker reports a violation if such an end is still alive afterwards.
    pub fn fail(&mut self, conn: ConnId, error: io::ErrorKind) -> Result<(), SimError> {
        self.conn_mut(conn)?;
        self.kill(conn, error, false);
        Ok(())
    }

    // ---- scripted peers ---------------------------------------------------------------------

    /// Every connection so far, oldest first.
    pub fn conns(&self) -> impl Iterator<Item = ConnId> + '_ {
        (0..self.conns.len() as u32).map(ConnId)
    }

    /// The connection of a host's socket: the one it got established on (also after its
    /// release), else its latest connect attempt while it is connecting.
    pub fn conn_of(&self, host: HostId, id: TcpId) -> Option<ConnId> {
        if let Some(conn) = self.established.get(&(host, id)) {
            return Some(*conn);
        }
        let sock = self.hosts.get(host.0 as usize)?.socks.get(&id)?;
        sock.attempts.values().max().copied()
    }

    /// The connection's two addresses: the connecting side's, then the accepting side's.
    pub fn conn_addrs(&self, conn: ConnId) -> Option<(SocketAddr, SocketAddr)> {
        let c = self.conns.get(conn.0 as usize)?;
        Some((c.ends[0].addr, c.ends[1].addr))
    }

    /// The cores' sockets at the connection's two ends (connecting side first), where a core
    /// (not a scripted peer) holds that end.
    pub fn conn_sockets(&self, conn: ConnId) -> Option<[Option<(HostId, TcpId)>; 2]> {
        let c = self.conns.get(conn.0 as usize)?;
        Some([c.core_socket(0), c.core_socket(1)])
    }

    /// Whether a fault touched the connection (reset, silence, failure, black hole, flipped
    /// bit, or a scripted reset): then its bytes may legitimately differ or stop.
    pub fn faulted(&self, conn: ConnId) -> bool {
        self.conns.get(conn.0 as usize).is_some_and(|c| c.faulted)
    }

    /// What the scripted peer of `conn` has received so far.
    pub fn peer_received(&self, conn: ConnId) -> Option<&[u8]> {
        self.conns
            .get(conn.0 as usize)?
            .peer()
            .map(|p| &p.received[..])
    }

    /// How many bytes reached the kernel of the scripted peer of `conn` that it has not read
    /// (it is paused, or does not read at all).
    pub fn peer_unread(&self, conn: ConnId) -> Option<usize> {
        self.conns.get(conn.0 as usize)?.peer_unread()
    }

    /// What the scripted peer of `conn` has sent so far (handed to the network).
    pub fn peer_sent(&self, conn: ConnId) -> Option<&[u8]> {
        self.conns.get(conn.0 as usize)?.peer().map(|p| &p.sent[..])
    }

    /// The scripted peer of `conn` sends `data` (an error once it has sent FIN or reset).
    pub fn peer_send(&mut self, conn: ConnId, data: impl Into<Bytes>) -> Result<(), SimError> {
        self.peer_mut(conn)?;
        if self.conns[conn.0 as usize].peer_done_sending() {
            return Err(SimError::PeerDoneSending(conn));
        }
        self.peer_mut(conn)?.queue(data.into());
        self.peer_pump(conn);
        Ok(())
    }

    /// The scripted peer of `conn` sends FIN once everything queued is sent.
    pub fn peer_close(&mut self, conn: ConnId) -> Result<(), SimError> {
        self.peer_mut(conn)?.fin_wanted = true;
        self.peer_pump(conn);
        Ok(())
    }

    /// The scripted peer of `conn` resets the connection (after what it has sent already).
    pub fn peer_reset(&mut self, conn: ConnId) -> Result<(), SimError> {
        let p = self.peer_mut(conn)?;
        p.to_send.clear();
        p.to_send_len = 0;
        p.reset_wanted = true;
        self.peer_pump(conn);
        Ok(())
    }

    /// The scripted peer of `conn` stops (`true`) or starts reading.
    pub fn peer_pause(&mut self, conn: ConnId, paused: bool) -> Result<(), SimError> {
        self.peer_mut(conn)?.paused = paused;
        self.peer_pump(conn);
        Ok(())
    }

    fn conn_mut(&mut self, conn: ConnId) -> Result<&mut Conn, SimError> {
        self.conns
            .get_mut(conn.0 as usize)
            .ok_or(SimError::UnknownConn(conn))
    }

    fn peer_mut(&mut self, conn: ConnId) -> Result<&mut peer::PeerEnd, SimError> {
        self.conn_mut(conn)?
            .peer_mut()
            .ok_or(SimError::NotAPeer(conn))
    }

    // ---- the app side -----------------------------------------------------------------------

    /// Virtual time since the start of the run.
    pub fn now(&self) -> Duration {
        self.now - self.start
    }

    /// The virtual clock itself, for calls made through [`Sim::core_mut`].
    pub fn instant(&self) -> Instant {
        self.now
    }

    /// Makes `call` on the host's core now, checked and recorded.
    pub fn call(&mut self, host: HostId, call: Call) -> Result<Returned, ApiError> {
        let Some(h) = self.hosts.get_mut(host.0 as usize) else {
            return Err(ApiError::new(
                crate::DomException::InvalidStateError,
                format!("the simulation has no host {host}"),
            ));
        };
        if h.down {
            return Err(ApiError::new(
                crate::DomException::InvalidStateError,
                format!("host {host} is down (crashed)"),
            ));
        }
        let result = h.core.call(self.now, &call);
        self.record(
            Some(host),
            Happening::Call {
                call,
                result: result.clone(),
            },
        );
        self.drain(host);
        result
    }

    /// The next event any host's core delivers to its app, running the network and the clock
    /// as far as needed. `None` when nothing more can happen (or a limit stopped the run, see
    /// [`Sim::stopped`]). Events come in the order the cores produced them.
    pub fn next_event(&mut self) -> Option<(HostId, Event)> {
        self.next_event_until(None)
    }

    /// Runs until nothing more can happen, returning every event delivered.
    pub fn run(&mut self) -> Vec<(HostId, Event)> {
        std::iter::from_fn(|| self.next_event()).collect()
    }

    /// Runs for `span` of virtual time, returning every event delivered; the clock then reads
    /// at least `span` more than before.
    pub fn run_for(&mut self, span: Duration) -> Vec<(HostId, Event)> {
        let until = self.now + span;
        let events = std::iter::from_fn(|| self.next_event_until(Some(until))).collect();
        if self.stop.is_none() {
            self.now = self.now.max(until);
        }
        events
    }

    /// The next event if one comes within `span` of virtual time (the clock stops at it);
    /// else `None` and the clock reads `span` more. For apps that answer every event before
    /// the next, on a clock of their own, as a real event loop with a timeout does.
    pub fn next_event_within(&mut self, span: Duration) -> Option<(HostId, Event)> {
        let until = self.now + span;
        let event = self.next_event_until(Some(until));
        if event.is_none() && self.stop.is_none() {
            self.now = self.now.max(until);
        }
        event
    }

    /// Why the run stopped early, if a limit stopped it.
    pub fn stopped(&self) -> Option<Stop> {
        self.stop
    }

    /// Every broken invariant and every impossible request any core made, in order.
    pub fn violations(&self) -> Vec<Violation> {
        let mut all: Vec<Violation> = self.net_violations.iter().map(|(_, v)| v.clone()).collect();
        for h in &self.hosts {
            all.extend(h.core.violations().iter().cloned());
        }
        all
    }

    /// The ordered record of the run (empty when [`SimConfig::record`] is off).
    pub fn transcript(&self) -> &[Record] {
        &self.transcript
    }

    /// The transcript as text, one line per record, hosts named.
    pub fn transcript_text(&self) -> String {
        let mut out = String::new();
        for r in &self.transcript {
            let label = match r.host {
                Some(h) => self.host_name(h).unwrap_or_default().to_owned(),
                None => "net".to_owned(),
            };
            let _ = r.write(&mut out, &label);
            out.push('\n');
        }
        out
    }

    // ---- the loop ---------------------------------------------------------------------------

    fn next_event_until(&mut self, until: Option<Instant>) -> Option<(HostId, Event)> {
        loop {
            for i in 0..self.hosts.len() {
                if std::mem::take(&mut self.hosts[i].dirty) {
                    self.drain(HostId(i as u32));
                }
            }
            if let Some(e) = self.ready.pop_front() {
                return Some(e);
            }
            if !self.advance(until) {
                return None;
            }
        }
    }

    /// Runs the earliest scheduled happening or due timer. `false` when there is none (before
    /// `until`) or a limit is reached.
    fn advance(&mut self, until: Option<Instant>) -> bool {
        if self.stop.is_some() {
            return false;
        }
        let net = self.queue.keys().next().map(|(at, _)| *at);
        let timer = self
            .hosts
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.deadline.map(|at| (at, i)))
            .min();
        let at = match (net, timer) {
            (None, None) => return false,
            (Some(n), Some((t, _))) => n.min(t),
            (Some(n), None) => n,
            (None, Some((t, _))) => t,
        };
        if until.is_some_and(|u| at > u) {
            return false;
        }
        if at > self.start + self.cfg.time_limit {
            self.stop = Some(Stop::TimeLimit);
            return false;
        }
        self.steps += 1;
        if self.steps > self.cfg.step_limit {
            self.stop = Some(Stop::StepLimit);
            return false;
        }
        self.now = self.now.max(at);
        match (net, timer) {
            (Some(n), t) if t.is_none_or(|(t, _)| n <= t) => {
                if let Some((_, ev)) = self.queue.pop_first() {
                    self.process(ev);
                }
            }
            (_, Some((_, i))) => {
                let host = HostId(i as u32);
                self.record(Some(host), Happening::Timers);
                let now = self.now;
                self.hosts[i].core.handle_timeout(now);
                self.drain(host);
            }
            (_, None) => {}
        }
        true
    }

    /// Takes every output of a host's core: actions are carried out, events queued for the app.
    fn drain(&mut self, host: HostId) {
        let i = host.0 as usize;
        let mut count = 0u64;
        loop {
            let out = self.hosts[i].core.poll_output();
            match out {
                Output::Timeout(at) => {
                    self.hosts[i].deadline = at;
                    return;
                }
                Output::Action(action) => {
                    self.record(Some(host), Happening::Action(action.clone()));
                    self.act(host, action);
                }
                Output::Event(event) => {
                    self.record(Some(host), Happening::Event(event.clone()));
                    self.ready.push_back((host, event));
                }
            }
            count += 1;
            if count > 10_000_000 {
                self.violation(host, None, "poll_output does not end".into());
                self.hosts[i].deadline = None;
                return;
            }
        }
    }

    /// Feeds `input` to a host's core now and carries out what follows.
    fn feed(&mut self, host: HostId, input: Input) {
        let i = host.0 as usize;
        let result = self.hosts[i].core.handle_input(self.now, input.clone());
        if let Err(e) = &result {
            let what = format!("the core refused {input:?} from the network: {e}");
            self.violation(host, None, what);
        }
        self.record(Some(host), Happening::Input { input, result });
        self.drain(host);
    }

    fn schedule(&mut self, at: Instant, ev: Ev) {
        self.schedule_keyed(at, ev);
    }

    /// [`schedule`](Self::schedule), returning its key in the queue (to take it out again).
    fn schedule_keyed(&mut self, at: Instant, ev: Ev) -> (Instant, u64) {
        self.seq += 1;
        let key = (at.max(self.now), self.seq);
        self.queue.insert(key, ev);
        key
    }

    fn record(&mut self, host: Option<HostId>, what: Happening) {
        if self.cfg.record {
            self.transcript.push(Record {
                at: self.now - self.start,
                host,
                what,
            });
        }
    }

    fn note(&mut self, host: Option<HostId>, what: String) {
        self.record(host, Happening::Net(what));
    }

    fn violation(&mut self, host: HostId, socket: Option<crate::SocketId>, what: String) {
        let v = Violation { socket, what };
        self.record(Some(host), Happening::Violation(v.clone()));
        self.net_violations.push((host, v));
    }

    /// Carries out one action of a host's core.
    fn act(&mut self, host: HostId, action: Action) {
        match action {
            Action::Resolve { id, name } => {
                match id {
                    crate::SocketId::TcpId(tcp) => self.sock(host, tcp).resolving = true,
                    crate::SocketId::UdpId(udp) => {
                        self.hosts[host.0 as usize].udp_resolving.insert(udp);
                    }
                    crate::SocketId::ServerId(_) => {
                        return self.violation(host, Some(id), "a Resolve for a server".into())
                    }
                }
                let at = self.now + self.cfg.dns_delay;
                self.schedule(at, Ev::Resolve { host, id, name });
            }
            Action::Connect {
                id,
                attempt,
                remote,
                local,
                keep_alive,
                ..
            } => {
                let now = self.now;
                let ka = keep_alive.map(|idle| keepalive::KeepAlive::new(idle, now));
                self.sock(host, id).keep_alive = ka;
                self.connect(host, id, attempt, remote, local);
            }
            Action::AbortConnect { id, attempt } => {
                if let Some(conn) = self.sock(host, id).attempts.remove(&attempt) {
                    self.close_end(conn, 0);
                }
            }
            Action::SetReading {
                id: crate::SocketId::TcpId(id),
                enabled,
            } => match self.sock(host, id).conn {
                Some((conn, side)) => {
                    if let net::EndKind::Core(ce) = &mut self.conns[conn.0 as usize].ends[side].kind
                    {
                        ce.reading = enabled;
                    }
                    if enabled {
                        self.schedule_deliver(conn, side);
                    }
                }
                None => self.violation(host, Some(id.into()), "SetReading before open".into()),
            },
            Action::Write { id, data } => match self.sock(host, id).conn {
                Some((conn, side)) => self.write(host, id, conn, side, data),
                None => self.violation(host, Some(id.into()), "a write before open".into()),
            },
            Action::Shutdown { id } => match self.sock(host, id).conn {
                Some((conn, side)) => self.shutdown(conn, side),
                None => self.violation(host, Some(id.into()), "a FIN before open".into()),
            },
            Action::QueryUnacked { id } => match self.sock(host, id).conn {
                Some((conn, side)) => {
                    let bytes = Some(self.unacked(conn, side));
                    let input = Input::Unacked { id, bytes };
                    self.schedule(self.now, Ev::Input { host, input });
                }
                None => self.violation(host, Some(id.into()), "a query before open".into()),
            },
            Action::Release {
                id: crate::SocketId::TcpId(id),
            } => {
                let sock = self.hosts[host.0 as usize]
                    .socks
                    .remove(&id)
                    .unwrap_or_default();
                for conn in sock.attempts.into_values() {
                    self.close_end(conn, 0);
                }
                if let Some((conn, side)) = sock.conn {
                    self.close_end(conn, side);
                    if sock.keep_alive.is_some() {
                        self.keep_alive_forget(host, Some((conn, side)));
                    }
                }
            }
            Action::Listen {
                id, local, backlog, ..
            } => {
                self.hosts[host.0 as usize].opening.insert(id.into());
                self.server_listen(host, id, local, backlog);
            }
            Action::SetReading {
                id: SocketId::ServerId(id),
                enabled,
            } => self.server_reading(host, id, enabled),
            Action::Release {
                id: SocketId::ServerId(id),
            } => {
                self.hosts[host.0 as usize].opening.remove(&id.into());
                self.server_release(host, id);
            }
            // The sim has no send buffer, interfaces, TTLs or broadcast addresses for UDP,
            // and its `::` takes no IPv4: the other settings change nothing it can show.
            Action::Bind {
                id,
                local,
                reuse_address,
                loopback,
                settings,
            } => {
                self.hosts[host.0 as usize].opening.insert(id.into());
                let rcvbuf = settings.receive_buffer;
                self.udp_bind(host, id, local, reuse_address, loopback, rcvbuf);
            }
            // One at a time, as the simulated OS takes them (see `UdpIo::backlog`), or
            // together.
            Action::SendDatagrams { id, datagrams } if self.cfg.udp_batches => {
                self.udp_send_batch(host, id, datagrams)
            }
            Action::SendDatagrams { id, datagrams } => {
                for (data, remote) in datagrams {
                    self.udp_send_to(host, id, data, remote);
                }
            }
            // A source-specific membership is modelled as the group's (the sim's hosts
            // filter no sources).
            Action::JoinMulticast { id, group, .. } => self.udp_group(host, id, group, true),
            Action::LeaveMulticast { id, group, .. } => self.udp_group(host, id, group, false),
            Action::SetReading {
                id: SocketId::UdpId(id),
                enabled,
            } => self.udp_reading(host, id, enabled),
            Action::Release {
                id: SocketId::UdpId(id),
            } => {
                self.hosts[host.0 as usize].opening.remove(&id.into());
                self.udp_release(host, id);
            }
        }
    }

    fn sock(&mut self, host: HostId, id: TcpId) -> &mut SockIo {
        self.hosts[host.0 as usize].socks.entry(id).or_default()
    }
}
