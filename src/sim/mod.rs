//! A deterministic simulated network (feature `sim`): any number of [`Core`](crate::Core)s ("hosts", each
//! with its IP addresses) joined by an in-memory network on a virtual clock, plus scripted
//! remote endpoints ([`Peer`]) that accept connections on an address ([`Sim::listen`]) or
//! connect to a core's `TCPServerSocket` ([`Sim::peer_connect`]).
//!
//! The simulator plays the I/O layer of every host: it performs each [`Action`](crate::Action) the cores ask
//! for and feeds back the [`Input`](crate::Input)s a real OS would report, with
//!
//! - TCP pipes with a per-link delay distribution ([`Delay`]), a bandwidth limit, the
//!   sender's send buffer and the receiver's receive window apart (a reader that stops
//!   reading fills its window, then the sender's buffer, then stalls the writer; bytes in the
//!   sender's buffer are unacknowledged), seeded chunking of reads and seeded partial writes
//!   ([`Link`]);
//! - cores' `TCPServerSocket`s accepting other cores' (or their own) connections and scripted
//!   clients' through [`Core::handle_accepted`](crate::Core::handle_accepted), a reset when at `max_connections`, and
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
//! - its own name table for [`Action::Resolve`](crate::Action::Resolve) ([`Sim::dns`], [`Sim::dns_fail`]); every host
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
mod scenario;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

pub use self::check::{CheckedCore, Outcome, Violation};
pub use self::keepalive::{KEEP_ALIVE_INTERVAL, KEEP_ALIVE_PROBES};
pub use self::link::{Delay, Link};
pub use self::peer::{AfterGreeting, Peer, PeerState, PEER_CONNECT_TIMEOUT};
pub use self::record::{Happening, Record};
pub use self::scenario::{Fault, LinkRule, Scenario, ScenarioRun, Step, Timed};
pub use crate::call::{Call, Returned};

mod host_handle;
pub use self::host_handle::{CheckedAt, SimHost};

pub use self::paths::Held;
mod retransmit;
pub use self::retransmit::{TCP_RETRIES2, TCP_RTO_MAX, TCP_RTO_MIN, TCP_SYN_RETRIES};

mod conn;
mod event_loop;
mod faults;
mod hosts;
mod stream;
mod teardown;

use self::conn::Conn;
use self::net::{Ev, SockIo};
use self::rng::SimRng;
use crate::{ApiError, Config, Event, ResolveError, ServerId, SocketId, TcpId, UdpId};

/// A simulated host: one [`Core`](crate::Core) and its addresses.
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
}
