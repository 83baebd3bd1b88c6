//! Fuzz harnesses (feature `fuzzing`): each takes arbitrary bytes, turns them into a run over
//! the core, and panics when an invariant of [`CheckedCore`] or an end-to-end property breaks,
//! not only on a crash. `fuzz/` wraps each in a three-line cargo-fuzz target; `cargo test`
//! replays the checked-in corpus (`tests/fuzz_corpus/<target>/`) through [`run`]; the property
//! tests build the same cases with proptest.
//!
//! - [`tcp_ops`]: one core, the harness playing the I/O layer: random API calls and inputs,
//!   mostly plausible (answering what the core asked) and sometimes not (which the core must
//!   refuse without changing anything).
//! - [`server_ops`]: servers of one core accepting sockets of another, with app calls on both
//!   sides and resets; afterwards each side received exactly what the other sent, where
//!   nothing failed.
//! - [`udp_ops`]: UDP sockets of two cores over a lossy, duplicating, reordering network with
//!   multicast groups; every message is a whole datagram someone sent.
//! - [`tls_records`]: a TLS socket (secure open or STARTTLS after a plaintext prelude) against a
//!   real rustls server, with fuzz-chosen record cuts, flipped bits, injected bytes and app
//!   calls, and plaintext injected past the STARTTLS point (read with the prelude, unpolled
//!   or held at the call, or late); no byte that is not the peer's TLS plaintext (or the
//!   prelude) ever reaches the app, none after the upgrade call, and an injection undelivered
//!   at the call ends the socket with `Error(SecurityError)` + `Close`.
//! - [`replay_file`]: the recording parser and replay ([`crate::replay`]) over arbitrary
//!   bytes, seeded with small real recordings: a damaged file is an error, never a panic.
//! - [`pair_net`]: a core and scripted peers over the simulated network, with fuzz-chosen link
//!   (latency, chunking, partial writes, buffers, bandwidth, flipped bits), faults (reset,
//!   silence, OS failure, black hole, peer reset, DNS failure) and app calls; afterwards the
//!   bytes each side received must be exactly what the other sent, where nothing failed.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};

use crate::sim::SimConfig;
use crate::sim::{AfterGreeting, Call, CheckedCore, ConnId, HostId, Link, Peer, Returned, Sim};
use crate::{
    Action, BinaryType, Bytes, Config, Core, Input, Output, ResolveError, SocketId, TcpId,
    TcpOptions,
};

/// A fuzz target: takes the fuzzer's bytes, panics when an invariant breaks.
pub type Target = fn(&[u8]);

/// The fuzz targets by name, for the corpus replay.
pub const TARGETS: &[(&str, Target)] = &[
    ("tcp_ops", tcp_ops),
    ("pair_net", pair_net),
    ("server_ops", server_ops),
    ("udp_ops", udp_ops),
    ("tls_records", tls_records),
    ("replay_file", replay_file),
];

mod replay_file;
mod tls_records;
pub use replay_file::replay_file;
pub use tls_records::{
    run_tls_records, tls_records, InjectedRead, TlsOp, TlsRecordsCase, MAX_INJECTED,
};

/// Runs the target named `target` on `data`; `false` if there is no such target.
pub fn run(target: &str, data: &[u8]) -> bool {
    match TARGETS.iter().find(|(name, _)| *name == target) {
        Some((_, f)) => {
            f(data);
            true
        }
        None => false,
    }
}

/// Which socket an op names: below 200, a live socket (`n` modulo their number); below 250,
/// any id issued so far, dead ones included; else (or with none issued) an id never issued.
fn pick(live: &[TcpId], ids: &[TcpId], n: u8) -> TcpId {
    let never = TcpId {
        index: 7,
        serial: u64::MAX,
    };
    match n {
        0..200 if !live.is_empty() => live[n as usize % live.len()],
        0..250 if !ids.is_empty() => ids[n as usize % ids.len()],
        _ => never,
    }
}

const ERRORS: [ErrorKind; 8] = [
    ErrorKind::ConnectionRefused,
    ErrorKind::ConnectionReset,
    ErrorKind::ConnectionAborted,
    ErrorKind::BrokenPipe,
    ErrorKind::TimedOut,
    ErrorKind::HostUnreachable,
    ErrorKind::AddrInUse,
    ErrorKind::Other,
];

fn error(n: u8) -> ErrorKind {
    ERRORS[n as usize % ERRORS.len()]
}

/// Bytes of a send: `data` repeated `repeat + 1` times (so that sends cross the limits).
fn payload(data: &[u8], repeat: u8) -> Bytes {
    data.repeat(repeat as usize + 1).into()
}

/// A `TCPSocket` call of the harnesses' ops.
#[derive(Arbitrary, Clone, Debug)]
pub enum TcpCall {
    /// `send(data × (repeat + 1))`.
    Send {
        /// Bytes.
        data: Vec<u8>,
        /// Extra repetitions.
        repeat: u8,
    },
    /// `close()`.
    Close,
    /// `closeImmediately()`.
    CloseImmediately,
    /// `halfclose()`.
    Halfclose,
    /// `suspend()`.
    Suspend,
    /// `resume()`.
    Resume,
}

/// The [`Call`] a [`TcpCall`] on `id` stands for.
fn tcp_call(id: TcpId, call: &TcpCall) -> Call {
    match call {
        TcpCall::Send { data, repeat } => Call::TcpSend {
            id,
            data: payload(data, *repeat),
        },
        TcpCall::Close => Call::TcpClose { id },
        TcpCall::CloseImmediately => Call::TcpCloseImmediately { id },
        TcpCall::Halfclose => Call::TcpHalfclose { id },
        TcpCall::Suspend => Call::TcpSuspend { id },
        TcpCall::Resume => Call::TcpResume { id },
    }
}

// ---- tcp_ops ----------------------------------------------------------------------------------

/// Limits and timeouts for a [`tcp_ops`] run, small so that the fuzzer reaches them.
#[derive(Arbitrary, Clone, Debug)]
pub struct LimitsCase {
    /// High-water mark: 1 + this.
    pub high_water_mark: u8,
    /// Hard cap: the mark plus this.
    pub above_mark: u16,
    /// Held bytes while suspended: 1 + this.
    pub held: u16,
    /// Connect timeout, ms (+1).
    pub connect_ms: u16,
    /// RFC 8305 attempt delay, ms (+1).
    pub attempt_ms: u8,
    /// Close timeout, ms (+1).
    pub close_ms: u16,
    /// Linger, ms (+1).
    pub linger_ms: u16,
}

impl LimitsCase {
    fn config(&self) -> Config {
        let ms = |v: u64| Duration::from_millis(v + 1);
        let mark = self.high_water_mark as usize + 1;
        Config {
            high_water_mark: mark,
            send_buffer_limit: mark + self.above_mark as usize,
            max_held_bytes: self.held as usize + 1,
            connect_timeout: ms(self.connect_ms.into()),
            connection_attempt_delay: ms(self.attempt_ms.into()),
            close_timeout: ms(self.close_ms.into()),
            linger_timeout: ms(self.linger_ms.into()),
            unacked_poll_interval: ms(u64::from(self.linger_ms % 128)),
            max_queued_datagrams: self.held as usize % 64 + 1,
            // 0 (counts as 1) to 3: one datagram in flight, and several.
            max_datagrams_in_flight: self.attempt_ms as usize % 4,
        }
    }
}

/// Options of an open.
#[derive(Arbitrary, Clone, Debug)]
pub struct OptionsCase {
    /// `binaryType` arraybuffer.
    pub binary: bool,
    /// `allowHalfOpen`.
    pub half_open: bool,
    /// `localPort`.
    pub local_port: Option<u16>,
    /// `localAddress`: `Some(true)` ::1, `Some(false)` 127.0.0.1.
    pub local_v6: Option<bool>,
}

impl OptionsCase {
    fn options(&self) -> TcpOptions {
        TcpOptions {
            binary_type: if self.binary {
                BinaryType::ArrayBuffer
            } else {
                BinaryType::String
            },
            allow_half_open: self.half_open,
            local_port: self.local_port,
            local_address: self.local_v6.map(|v6| {
                if v6 {
                    "::1".parse().unwrap_or(IpAddr::from([0u16; 8]))
                } else {
                    IpAddr::from([127, 0, 0, 1])
                }
            }),
            ..TcpOptions::default()
        }
    }
}

const HOSTS: [&str; 10] = [
    "127.0.0.1",
    "::1",
    "localhost",
    "server.test",
    "[::2]",
    "",
    "bad host",
    "a..b",
    "[::1",
    "1.2.3.4.5",
];

const ADDRS: [&str; 6] = ["127.0.0.1", "::1", "127.0.0.2", "::2", "127.0.0.3", "::3"];

fn address(n: u8) -> IpAddr {
    ADDRS[n as usize % ADDRS.len()]
        .parse()
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// One step of a [`tcp_ops`] run: an app call, an input from the I/O layer, or time passing.
/// `raw` inputs are taken as given; the others are adjusted to answer what the core asked for.
#[derive(Arbitrary, Clone, Debug)]
pub enum TcpOp {
    /// `open(HOSTS[host], port)`.
    Open {
        /// Index into the host table.
        host: u8,
        /// The port.
        port: u16,
        /// The options.
        options: OptionsCase,
    },
    /// A `TCPSocket` call on a socket.
    Tcp {
        /// Which socket.
        socket: u8,
        /// What to call.
        call: TcpCall,
    },
    /// `Input::Resolved` with these addresses (indices into a table), or a failure.
    Resolved {
        /// Which socket.
        socket: u8,
        /// Addresses, or `None` for a resolver failure.
        addrs: Option<Vec<u8>>,
    },
    /// `Input::Connected`.
    Connected {
        /// Which socket.
        socket: u8,
        /// Which pending attempt (or this attempt number if `raw`).
        attempt: u8,
        /// Take `attempt` as given.
        raw: bool,
    },
    /// `Input::ConnectFailed`.
    ConnectFailed {
        /// Which socket.
        socket: u8,
        /// Which pending attempt (or this attempt number if `raw`).
        attempt: u8,
        /// Take `attempt` as given.
        raw: bool,
        /// Index into an error table.
        error: u8,
    },
    /// `Input::Received`.
    Received {
        /// Which socket.
        socket: u8,
        /// The bytes.
        data: Vec<u8>,
    },
    /// `Input::Eof`.
    Eof {
        /// Which socket.
        socket: u8,
    },
    /// `Input::Written`: all of the write in flight when `len` is 0x8000 or more, else part of
    /// it (or `len` as given if `raw`).
    Written {
        /// Which socket.
        socket: u8,
        /// Length.
        len: u16,
        /// Take `len` as given.
        raw: bool,
    },
    /// `Input::Failed`.
    Failed {
        /// Which socket.
        socket: u8,
        /// Index into an error table.
        error: u8,
    },
    /// Time passes; timers run.
    Advance {
        /// Milliseconds.
        ms: u16,
    },
    /// `Input::Unacked`: the answer to `Action::QueryUnacked` (asked or not).
    Unacked {
        /// Which socket.
        socket: u8,
        /// Bytes the kernel still holds (`None`: the I/O layer cannot tell).
        bytes: Option<u16>,
    },
}

/// A whole [`tcp_ops`] run.
#[derive(Arbitrary, Clone, Debug)]
pub struct TcpOpsCase {
    /// The core's limits.
    pub limits: LimitsCase,
    /// The steps.
    pub ops: Vec<TcpOp>,
}

/// What the harness, as the I/O layer, knows of a socket from the core's actions.
#[derive(Default, Debug)]
struct IoModel {
    attempts: Vec<u8>,
    in_flight: Option<usize>,
}

/// Fuzz target: random calls and inputs on one core. Panics on any broken invariant.
pub fn tcp_ops(data: &[u8]) {
    if let Ok(case) = TcpOpsCase::arbitrary_take_rest(Unstructured::new(data)) {
        run_tcp_ops(&case);
    }
}

/// Runs a [`TcpOpsCase`]; panics with the violations and the steps if an invariant broke.
pub fn run_tcp_ops(case: &TcpOpsCase) {
    let mut core = CheckedCore::new(Core::new(case.limits.config()));
    #[allow(clippy::disallowed_methods)] // only offsets from it matter
    let mut now = Instant::now();
    let mut ids: Vec<TcpId> = Vec::new();
    let mut io: BTreeMap<TcpId, IoModel> = BTreeMap::new();
    for op in &case.ops {
        step_tcp(&mut core, &mut now, &mut ids, &mut io, op);
        drain(&mut core, &mut io);
    }
    for id in &ids {
        let _ = core.call(now, &Call::TcpCloseImmediately { id: *id });
    }
    drain(&mut core, &mut io);
    core.check_all_closed();
    if core.core().tcp_ids().next().is_some() {
        panic!("sockets left after closing all: {:?}", core.core());
    }
    if !core.violations().is_empty() {
        panic!(
            "invariants broken:\n{:#?}\nsteps: {:#?}",
            core.violations(),
            case
        );
    }
}

fn step_tcp(
    core: &mut CheckedCore,
    now: &mut Instant,
    ids: &mut Vec<TcpId>,
    io: &mut BTreeMap<TcpId, IoModel>,
    op: &TcpOp,
) {
    let live: Vec<TcpId> = core.core().tcp_ids().collect();
    let id = |socket: &u8| pick(&live, ids, *socket);
    let call = match op {
        TcpOp::Open {
            host,
            port,
            options,
        } => {
            let host = HOSTS[*host as usize % HOSTS.len()].to_owned();
            let open = Call::TcpOpen {
                host,
                port: *port,
                options: options.options(),
            };
            if let Ok(Returned::Opened(id)) = core.call(*now, &open) {
                ids.push(id);
            }
            return;
        }
        TcpOp::Tcp { socket, call } => tcp_call(id(socket), call),
        TcpOp::Advance { ms } => {
            *now += Duration::from_millis(u64::from(*ms));
            core.handle_timeout(*now);
            return;
        }
        op => {
            if let Some(input) = input_for(&live, ids, io, op) {
                feed(core, *now, io, input);
            }
            return;
        }
    };
    let _ = core.call(*now, &call);
}

/// The input an op stands for, made plausible from what the core asked unless it is raw.
fn input_for(
    live: &[TcpId],
    ids: &[TcpId],
    io: &BTreeMap<TcpId, IoModel>,
    op: &TcpOp,
) -> Option<Input> {
    Some(match op {
        TcpOp::Resolved { socket, addrs } => Input::Resolved {
            id: pick(live, ids, *socket).into(),
            result: match addrs {
                Some(a) => Ok(a.iter().map(|n| address(*n)).collect()),
                None => Err(ResolveError::Temporary),
            },
        },
        TcpOp::Connected {
            socket,
            attempt,
            raw,
        } => {
            let id = pick(live, ids, *socket);
            let attempt = attempt_of(io, id, *attempt, *raw);
            let local = SocketAddr::new(address(0), 40000 + u16::from(attempt));
            Input::Connected { id, attempt, local }
        }
        TcpOp::ConnectFailed {
            socket,
            attempt,
            raw,
            error: e,
        } => {
            let id = pick(live, ids, *socket);
            let attempt = attempt_of(io, id, *attempt, *raw);
            let error = error(*e);
            Input::ConnectFailed { id, attempt, error }
        }
        TcpOp::Received { socket, data } => Input::Received {
            id: pick(live, ids, *socket),
            data: data.clone().into(),
        },
        TcpOp::Eof { socket } => Input::Eof {
            id: pick(live, ids, *socket),
        },
        TcpOp::Written { socket, len, raw } => {
            let id = pick(live, ids, *socket);
            let len = match io.get(&id).and_then(|m| m.in_flight) {
                Some(w) if !*raw && *len >= 0x8000 => w,
                Some(w) if !*raw && w > 0 => 1 + *len as usize % w,
                _ => *len as usize,
            };
            Input::Written { id, len }
        }
        TcpOp::Unacked { socket, bytes } => Input::Unacked {
            id: pick(live, ids, *socket),
            bytes: bytes.map(usize::from),
        },
        TcpOp::Failed { socket, error: e } => Input::Failed {
            id: pick(live, ids, *socket),
            error: error(*e),
        },
        _ => return None,
    })
}

/// Feeds an input; an accepted one settles what it answered (the core's next actions say what
/// is asked next).
fn feed(core: &mut CheckedCore, now: Instant, io: &mut BTreeMap<TcpId, IoModel>, input: Input) {
    if core.handle_input(now, input.clone()).is_err() {
        return;
    }
    match input {
        Input::Connected { id, .. } => {
            if let Some(m) = io.get_mut(&id) {
                m.attempts.clear();
            }
        }
        Input::ConnectFailed { id, attempt, .. } => {
            if let Some(m) = io.get_mut(&id) {
                m.attempts.retain(|a| *a != attempt);
            }
        }
        Input::Written { id, .. } => {
            if let Some(m) = io.get_mut(&id) {
                m.in_flight = None;
            }
        }
        _ => {}
    }
}

fn attempt_of(io: &BTreeMap<TcpId, IoModel>, id: TcpId, n: u8, raw: bool) -> u8 {
    match io.get(&id) {
        Some(m) if !raw && !m.attempts.is_empty() => m.attempts[n as usize % m.attempts.len()],
        _ => n,
    }
}

/// Drains the core, keeping the I/O model the harness answers from.
fn drain(core: &mut CheckedCore, io: &mut BTreeMap<TcpId, IoModel>) {
    loop {
        match core.poll_output() {
            Output::Timeout(_) => return,
            Output::Action(action) => match action {
                Action::Connect { id, attempt, .. } => {
                    io.entry(id).or_default().attempts.push(attempt);
                }
                Action::AbortConnect { id, attempt } => {
                    io.entry(id).or_default().attempts.retain(|a| *a != attempt);
                }
                Action::Write { id, data } => {
                    io.entry(id).or_default().in_flight = Some(data.len())
                }
                Action::Release {
                    id: SocketId::TcpId(id),
                } => {
                    io.remove(&id);
                }
                _ => {}
            },
            Output::Event(_) => {}
        }
    }
}

// ---- pair_net ---------------------------------------------------------------------------------

/// The link of a [`pair_net`] run.
#[derive(Arbitrary, Clone, Debug)]
pub struct LinkCase {
    /// One-way latency, ms (modulo 100).
    pub latency_ms: u8,
    /// Jitter, ms (modulo 50).
    pub jitter_ms: u8,
    /// Bandwidth in KiB/s (0: unlimited).
    pub bandwidth_kib: u16,
    /// Socket buffers: 1024 + this many bytes per direction, half the sender's send buffer,
    /// half the receiver's receive buffer.
    pub buffer: u16,
    /// Largest read: 1 + this many bytes.
    pub max_read: u16,
    /// Reads take all there is (up to the largest read).
    pub whole_reads: bool,
    /// Writes are taken whole (as far as the buffers allow).
    pub whole_writes: bool,
    /// One data segment in 64 has a bit flipped.
    pub flips: bool,
}

impl LinkCase {
    fn link(&self) -> Link {
        // Bounded so that every run ends well within the time limit: at worst a 1 KiB window
        // per 200 ms round trip, at 1 KiB/s.
        Link {
            latency: Duration::from_millis((self.latency_ms % 100).into()),
            jitter: Duration::from_millis((self.jitter_ms % 50).into()),
            bandwidth: (self.bandwidth_kib > 0).then(|| u64::from(self.bandwidth_kib) << 10),
            send_buffer: (self.buffer as usize + 1024) / 2,
            recv_buffer: (self.buffer as usize + 1024) / 2,
            max_read: self.max_read as usize + 1,
            chunked_reads: !self.whole_reads,
            partial_writes: !self.whole_writes,
            flip_rate: if self.flips { 1.0 / 64.0 } else { 0.0 },
            ..Link::default()
        }
    }
}

/// Where a [`pair_net`] client connects: (host, port).
const TARGETS_NET: [(&str, u16); 10] = [
    ("127.0.0.2", 7),   // echo
    ("127.0.0.2", 9),   // sink
    ("127.0.0.2", 19),  // sends 3000 bytes, then FIN
    ("127.0.0.2", 21),  // never reads
    ("127.0.0.2", 25),  // sends a line, then resets
    ("server.test", 7), // ::2 (echo) first, then 127.0.0.2
    ("127.0.0.2", 80),  // nobody listens: refused
    ("flaky.test", 7),  // the resolver fails
    ("nowhere.test", 7),
    ("::2", 9), // sink over IPv6
];

/// One step of a [`pair_net`] run.
#[derive(Arbitrary, Clone, Debug)]
pub enum PairOp {
    /// `open` to `TARGETS_NET[target]`.
    Open {
        /// Index into the target table.
        target: u8,
        /// `binaryType` arraybuffer.
        binary: bool,
        /// `allowHalfOpen`.
        half_open: bool,
    },
    /// A `TCPSocket` call on a socket.
    Tcp {
        /// Which socket.
        socket: u8,
        /// What to call.
        call: TcpCall,
    },
    /// Let this much virtual time pass.
    Run {
        /// Milliseconds.
        ms: u16,
    },
    /// Reset a connection in the network.
    Reset {
        /// Which connection.
        conn: u8,
    },
    /// A connection goes silent for good.
    Silence {
        /// Which connection.
        conn: u8,
    },
    /// The OS fails a connection.
    Fail {
        /// Which connection.
        conn: u8,
        /// Index into an error table.
        error: u8,
    },
    /// The scripted peer sends.
    PeerSend {
        /// Which connection.
        conn: u8,
        /// Bytes.
        data: Vec<u8>,
    },
    /// The scripted peer sends FIN.
    PeerClose {
        /// Which connection.
        conn: u8,
    },
    /// The scripted peer resets.
    PeerReset {
        /// Which connection.
        conn: u8,
    },
    /// The scripted peer stops or starts reading.
    PeerPause {
        /// Which connection.
        conn: u8,
        /// Stop (`true`) or start.
        paused: bool,
    },
    /// Black-hole the server's IPv4 (`false`) or IPv6 address.
    BlackHole {
        /// Which address.
        v6: bool,
    },
    /// Heal both server addresses.
    Heal,
}

/// A whole [`pair_net`] run.
#[derive(Arbitrary, Clone, Debug)]
pub struct PairNetCase {
    /// The simulator's seed.
    pub seed: u64,
    /// The link between client and server.
    pub link: LinkCase,
    /// High-water mark: 64 × (1 + this) bytes (the hard cap is 64 KiB).
    pub mark: u8,
    /// The steps.
    pub ops: Vec<PairOp>,
}

/// Fuzz target: a core and scripted peers over the simulated network. Panics on any broken
/// invariant, and when bytes arrive other than sent on a connection where nothing failed.
pub fn pair_net(data: &[u8]) {
    if let Ok(case) = PairNetCase::arbitrary_take_rest(Unstructured::new(data)) {
        run_pair_net(&case);
    }
}

/// What the app did to a socket, for the end-to-end checks.
#[derive(Default, Debug)]
struct AppModel {
    conn: Option<ConnId>,
    closed_at_once: bool,
}

/// Runs a [`PairNetCase`]; panics with the violations and the end of the transcript if an
/// invariant or an end-to-end property broke.
pub fn run_pair_net(case: &PairNetCase) {
    let core = Config {
        high_water_mark: (case.mark as usize + 1) * 64,
        send_buffer_limit: 64 << 10,
        connect_timeout: Duration::from_secs(2),
        close_timeout: Duration::from_secs(3),
        linger_timeout: Duration::from_millis(500),
        ..Config::default()
    };
    let cfg = SimConfig {
        core,
        link: case.link.link(),
        time_limit: Duration::from_secs(3600),
        step_limit: 2_000_000,
        ..SimConfig::default()
    };
    let (mut sim, client) = pair_network(case.seed, cfg);
    let mut ids: Vec<TcpId> = Vec::new();
    let mut app: BTreeMap<TcpId, AppModel> = BTreeMap::new();
    for op in &case.ops {
        step_pair(&mut sim, client, &mut ids, &mut app, op);
        for (id, m) in app.iter_mut() {
            if let Some(conn) = sim.conn_of(client, *id) {
                m.conn = Some(conn);
            }
        }
    }
    // The network heals, so that what black holes held is retransmitted as TCP would, and
    // every peer reads what reached it.
    step_pair(&mut sim, client, &mut ids, &mut app, &PairOp::Heal);
    let conns: Vec<ConnId> = sim.conns().collect();
    for conn in conns {
        let _ = sim.peer_pause(conn, false);
    }
    sim.run();
    for (id, m) in app.iter_mut() {
        if sim.core(client).is_some_and(|c| c.tcp(*id).is_some()) {
            m.closed_at_once = true;
            let _ = sim.call(client, Call::TcpCloseImmediately { id: *id });
        }
    }
    sim.run();
    let fail = |sim: &Sim, what: String| -> ! {
        let text = sim.transcript_text();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(120)..].join("\n");
        panic!("{what}\ncase: {case:#?}\n--- transcript (last 120 lines) ---\n{tail}");
    };
    if let Some(stop) = sim.stopped() {
        fail(&sim, format!("the run did not end: {stop:?}"));
    }
    let mut violations = sim.violations();
    if let Some(checked) = sim.checked(client) {
        let mut checked_all = Vec::new();
        for id in &ids {
            if checked.outcome(*id).is_some_and(|o| !o.closed) {
                checked_all.push(*id);
            }
        }
        if !checked_all.is_empty() {
            violations.push(crate::sim::Violation {
                socket: None,
                what: format!("no Close for {checked_all:?}"),
            });
        }
    }
    if !violations.is_empty() {
        fail(&sim, format!("invariants broken: {violations:#?}"));
    }
    end_to_end(&sim, client, &app).unwrap_or_else(|what| fail(&sim, what));
}

/// A client host and a server host with the scripted peers of [`TARGETS_NET`].
fn pair_network(seed: u64, cfg: SimConfig) -> (Sim, HostId) {
    let mut sim = Sim::with_config(seed, cfg);
    let ip = |s: &str| s.parse::<IpAddr>().unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let at = |s: &str| {
        s.parse::<SocketAddr>()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 2], 1)))
    };
    let client = sim
        .add_host("client", &[ip("127.0.0.1"), ip("::1")])
        .expect("a fresh simulation takes the client");
    sim.add_host("server.test", &[ip("::2"), ip("127.0.0.2")])
        .expect("a fresh simulation takes the server");
    let pattern: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let peers = [
        ("127.0.0.2:7", Peer::echo()),
        ("[::2]:7", Peer::echo()),
        ("127.0.0.2:9", Peer::sink()),
        ("[::2]:9", Peer::sink()),
        (
            "127.0.0.2:19",
            Peer {
                after_greeting: AfterGreeting::Close,
                ..Peer::send(pattern)
            },
        ),
        ("127.0.0.2:21", Peer::stall()),
        (
            "127.0.0.2:25",
            Peer {
                after_greeting: AfterGreeting::Reset,
                ..Peer::send("421 going away\r\n")
            },
        ),
    ];
    for (addr, peer) in peers {
        let _ = sim.listen(at(addr), peer);
    }
    let _ = sim.dns_fail("flaky.test", ResolveError::Temporary);
    (sim, client)
}

fn step_pair(
    sim: &mut Sim,
    client: HostId,
    ids: &mut Vec<TcpId>,
    app: &mut BTreeMap<TcpId, AppModel>,
    op: &PairOp,
) {
    let conns: Vec<ConnId> = sim.conns().collect();
    let live: Vec<TcpId> = sim
        .core(client)
        .map(|c| c.tcp_ids().collect())
        .unwrap_or_default();
    let conn = |n: u8| conns.get(n as usize % conns.len().max(1)).copied();
    let call = |sim: &mut Sim, call: Call| {
        let _ = sim.call(client, call);
    };
    match op {
        PairOp::Open {
            target,
            binary,
            half_open,
        } => {
            let (host, port) = TARGETS_NET[*target as usize % TARGETS_NET.len()];
            let options = OptionsCase {
                binary: *binary,
                half_open: *half_open,
                local_port: None,
                local_v6: None,
            }
            .options();
            let open = Call::TcpOpen {
                host: host.into(),
                port,
                options,
            };
            if let Ok(Returned::Opened(id)) = sim.call(client, open) {
                ids.push(id);
                app.insert(id, AppModel::default());
            }
        }
        PairOp::Tcp { socket, call: c } => {
            let id = pick(&live, ids, *socket);
            if let (TcpCall::CloseImmediately, Some(m)) = (c, app.get_mut(&id)) {
                m.closed_at_once |= sim.core(client).is_some_and(|c| c.tcp(id).is_some());
            }
            call(sim, tcp_call(id, c));
        }
        PairOp::Run { ms } => {
            sim.run_for(Duration::from_millis(u64::from(*ms)));
        }
        PairOp::Reset { conn: c } => {
            if let Some(c) = conn(*c) {
                let _ = sim.reset(c);
            }
        }
        PairOp::Silence { conn: c } => {
            if let Some(c) = conn(*c) {
                let _ = sim.silence(c);
            }
        }
        PairOp::Fail { conn: c, error: e } => {
            if let Some(c) = conn(*c) {
                let _ = sim.fail(c, error(*e));
            }
        }
        PairOp::PeerSend { conn: c, data } => {
            if let Some(c) = conn(*c) {
                let _ = sim.peer_send(c, data.clone());
            }
        }
        PairOp::PeerClose { conn: c } => {
            if let Some(c) = conn(*c) {
                let _ = sim.peer_close(c);
            }
        }
        PairOp::PeerReset { conn: c } => {
            if let Some(c) = conn(*c) {
                let _ = sim.peer_reset(c);
            }
        }
        PairOp::PeerPause { conn: c, paused } => {
            if let Some(c) = conn(*c) {
                let _ = sim.peer_pause(c, *paused);
            }
        }
        PairOp::BlackHole { v6 } => {
            let ip = if *v6 { "::2" } else { "127.0.0.2" };
            if let Ok(ip) = ip.parse() {
                sim.black_hole(ip);
            }
        }
        PairOp::Heal => {
            for ip in ["::2", "127.0.0.2"] {
                if let Ok(ip) = ip.parse() {
                    sim.heal(ip);
                }
            }
        }
    }
}

/// Where nothing failed, each side received exactly what the other sent.
fn end_to_end(sim: &Sim, client: HostId, app: &BTreeMap<TcpId, AppModel>) -> Result<(), String> {
    let Some(checked) = sim.checked(client) else {
        return Ok(());
    };
    for (id, m) in app {
        let (Some(conn), Some(outcome)) = (m.conn, checked.outcome(*id)) else {
            continue;
        };
        let (Some(peer_got), Some(peer_sent)) = (sim.peer_received(conn), sim.peer_sent(conn))
        else {
            continue;
        };
        // A clean Close promises that the peer's TCP received every byte sent (BEHAVIOUR §1
        // close), whatever happened to the connection: read by the peer, or still unread in
        // its kernel. Only the bytes' values may differ where a bit was flipped.
        let clean = outcome.closed && outcome.error.is_none() && !m.closed_at_once;
        if clean && outcome.opened {
            if let Some(sent) = checked.sent_bytes(*id) {
                let unread = sim.peer_unread(conn).unwrap_or(0);
                if peer_got.len() + unread != sent.len() {
                    return Err(format!(
                        "{id} on {conn}: clean Close, but the peer's TCP got {} bytes ({} of \
                         them unread), the app sent {}",
                        peer_got.len() + unread,
                        unread,
                        sent.len()
                    ));
                }
            }
        }
        if sim.faulted(conn) || outcome.error.is_some() || !outcome.opened {
            continue;
        }
        if !m.closed_at_once {
            if let Some(sent) = checked.sent_bytes(*id) {
                if peer_got != sent {
                    return Err(format!(
                        "{id} on {conn}: the peer got {} bytes, the app sent {} (graceful close, \
                         no fault)",
                        peer_got.len(),
                        sent.len()
                    ));
                }
            }
        }
        if outcome.end_of_stream && !outcome.closed_by_app {
            if let Some(got) = checked.received_bytes(*id) {
                if got != peer_sent {
                    return Err(format!(
                        "{id} on {conn}: the socket received {} bytes, the peer sent {}",
                        got.len(),
                        peer_sent.len()
                    ));
                }
            }
        }
    }
    Ok(())
}

// ---- server_ops -------------------------------------------------------------------------------

/// One step of a [`server_ops`] run: host `a` connects to servers host `b` runs.
#[derive(Arbitrary, Clone, Debug)]
pub enum ServerOp {
    /// `b` listens on port 7000 + `port % 4`.
    Listen {
        /// Which port.
        port: u8,
        /// `max_connections` (0: none).
        max_connections: u8,
        /// `binaryType` arraybuffer for accepted sockets.
        binary: bool,
    },
    /// `server.close()`.
    ServerClose {
        /// Which server.
        server: u8,
    },
    /// `server.suspend()`.
    ServerSuspend {
        /// Which server.
        server: u8,
    },
    /// `server.resume()`.
    ServerResume {
        /// Which server.
        server: u8,
    },
    /// `a` opens a socket to port 7000 + `port % 4` of `b`.
    Connect {
        /// Which port.
        port: u8,
    },
    /// A TCP call on a socket of `a` (`on_server` false) or `b`.
    Tcp {
        /// On `b`'s accepted sockets.
        on_server: bool,
        /// Which socket.
        socket: u8,
        /// What to call.
        call: TcpCall,
    },
    /// Let this much virtual time pass.
    Run {
        /// Milliseconds.
        ms: u16,
    },
    /// Reset a connection in the network.
    Reset {
        /// Which connection.
        conn: u8,
    },
}

/// A whole [`server_ops`] run.
#[derive(Arbitrary, Clone, Debug)]
pub struct ServerOpsCase {
    /// The simulator's seed.
    pub seed: u64,
    /// The link between the hosts.
    pub link: LinkCase,
    /// The steps.
    pub ops: Vec<ServerOp>,
}

/// Fuzz target: servers of one core accepting sockets of another over the simulated network.
/// Panics on any broken invariant, and when bytes arrive other than sent where nothing failed.
pub fn server_ops(data: &[u8]) {
    if let Ok(case) = ServerOpsCase::arbitrary_take_rest(Unstructured::new(data)) {
        run_server_ops(&case);
    }
}

fn two_cores(seed: u64, link: &LinkCase) -> (Sim, HostId, HostId) {
    let core = Config {
        high_water_mark: 1024,
        send_buffer_limit: 64 << 10,
        connect_timeout: Duration::from_secs(2),
        close_timeout: Duration::from_secs(3),
        linger_timeout: Duration::from_millis(500),
        ..Config::default()
    };
    let cfg = SimConfig {
        core,
        link: link.link(),
        time_limit: Duration::from_secs(3600),
        step_limit: 2_000_000,
        ..SimConfig::default()
    };
    let mut sim = Sim::with_config(seed, cfg);
    let a = sim
        .add_host("a.test", &[IpAddr::from([127, 0, 0, 1])])
        .expect("a fresh simulation takes a");
    let b = sim
        .add_host("b.test", &[IpAddr::from([127, 0, 0, 2])])
        .expect("a fresh simulation takes b");
    (sim, a, b)
}

/// Fails with the end of the transcript.
fn sim_failure(sim: &Sim, what: String, case: &dyn std::fmt::Debug) -> ! {
    let text = sim.transcript_text();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(120)..].join("\n");
    panic!("{what}\ncase: {case:#?}\n--- transcript (last 120 lines) ---\n{tail}");
}

/// Closes every socket left at once, runs to the end and checks what every run must end with.
fn finish(sim: &mut Sim, hosts: &[HostId], case: &dyn std::fmt::Debug) {
    for &h in hosts {
        let Some(core) = sim.core(h) else { continue };
        let tcp: Vec<TcpId> = core.tcp_ids().collect();
        let servers: Vec<crate::ServerId> = core.server_ids().collect();
        let udp: Vec<crate::UdpId> = core.udp_ids().collect();
        for id in tcp {
            let _ = sim.call(h, Call::TcpCloseImmediately { id });
        }
        for id in servers {
            let _ = sim.call(h, Call::ServerClose { id });
        }
        for id in udp {
            let _ = sim.call(h, Call::UdpClose { id });
        }
    }
    sim.run();
    if let Some(stop) = sim.stopped() {
        sim_failure(sim, format!("the run did not end: {stop:?}"), case);
    }
    let mut violations = sim.violations();
    for &h in hosts {
        if let Some(core) = sim.core(h) {
            let left = core.tcp_ids().count() + core.server_ids().count() + core.udp_ids().count();
            if left > 0 {
                violations.push(crate::sim::Violation {
                    socket: None,
                    what: format!("{left} sockets left on {h} after closing all"),
                });
            }
        }
    }
    if !violations.is_empty() {
        sim_failure(sim, format!("invariants broken: {violations:#?}"), case);
    }
}

/// Runs a [`ServerOpsCase`].
pub fn run_server_ops(case: &ServerOpsCase) {
    let (mut sim, a, b) = two_cores(case.seed, &case.link);
    let mut servers: Vec<crate::ServerId> = Vec::new();
    let mut clients: Vec<TcpId> = Vec::new();
    let mut closed_at_once: Vec<(HostId, TcpId)> = Vec::new();
    for op in &case.ops {
        let conns: Vec<ConnId> = sim.conns().collect();
        let server = |n: u8| servers.get(n as usize % servers.len().max(1)).copied();
        match op {
            ServerOp::Listen {
                port,
                max_connections,
                binary,
            } => {
                let options = crate::ServerOptions {
                    local_port: Some(7000 + u16::from(port % 4)),
                    max_connections: (*max_connections > 0).then_some(u32::from(*max_connections)),
                    binary_type: if *binary {
                        BinaryType::ArrayBuffer
                    } else {
                        BinaryType::String
                    },
                    ..crate::ServerOptions::default()
                };
                if let Ok(Returned::Listening(id)) = sim.call(b, Call::ServerListen { options }) {
                    servers.push(id);
                }
            }
            ServerOp::ServerClose { server: n } => {
                if let Some(id) = server(*n) {
                    let _ = sim.call(b, Call::ServerClose { id });
                }
            }
            ServerOp::ServerSuspend { server: n } => {
                if let Some(id) = server(*n) {
                    let _ = sim.call(b, Call::ServerSuspend { id });
                }
            }
            ServerOp::ServerResume { server: n } => {
                if let Some(id) = server(*n) {
                    let _ = sim.call(b, Call::ServerResume { id });
                }
            }
            ServerOp::Connect { port } => {
                let open = Call::TcpOpen {
                    host: "b.test".into(),
                    port: 7000 + u16::from(port % 4),
                    options: TcpOptions::default(),
                };
                if let Ok(Returned::Opened(id)) = sim.call(a, open) {
                    clients.push(id);
                }
            }
            ServerOp::Tcp {
                on_server,
                socket,
                call,
            } => {
                let host = if *on_server { b } else { a };
                let live: Vec<TcpId> = sim
                    .core(host)
                    .map(|c| c.tcp_ids().collect())
                    .unwrap_or_default();
                let Some(&id) = live.get(*socket as usize % live.len().max(1)) else {
                    continue;
                };
                if let TcpCall::CloseImmediately = call {
                    closed_at_once.push((host, id));
                }
                let _ = sim.call(host, tcp_call(id, call));
            }
            ServerOp::Run { ms } => {
                sim.run_for(Duration::from_millis(u64::from(*ms)));
            }
            ServerOp::Reset { conn } => {
                if let Some(c) = conns.get(*conn as usize % conns.len().max(1)) {
                    let _ = sim.reset(*c);
                }
            }
        }
    }
    // Let graceful closes finish before the rest is closed at once.
    sim.run();
    for h in [a, b] {
        for id in sim
            .core(h)
            .map(|c| c.tcp_ids().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            closed_at_once.push((h, id));
        }
    }
    finish(&mut sim, &[a, b], case);
    // Where neither end failed nor was cut short, each received exactly what the other sent.
    let conns: Vec<ConnId> = sim.conns().collect();
    for conn in conns {
        let Some([Some(x), Some(y)]) = sim.conn_sockets(conn) else {
            continue;
        };
        if sim.faulted(conn) {
            continue;
        }
        for (from, to) in [(x, y), (y, x)] {
            let (Some(src), Some(dst)) = (sim.checked(from.0), sim.checked(to.0)) else {
                continue;
            };
            let (Some(out), Some(got)) = (src.outcome(from.1), dst.outcome(to.1)) else {
                continue;
            };
            let whole = out.error.is_none()
                && got.error.is_none()
                && got.end_of_stream
                && !got.closed_by_app
                && !closed_at_once.contains(&from);
            if whole && src.sent_bytes(from.1) != dst.received_bytes(to.1) {
                sim_failure(
                    &sim,
                    format!("{conn}: {} received other bytes than {} sent", to.1, from.1),
                    case,
                );
            }
        }
    }
}

// ---- udp_ops ----------------------------------------------------------------------------------

/// One step of a [`udp_ops`] run: UDP sockets on hosts `a` and `b`.
#[derive(Arbitrary, Clone, Debug)]
pub enum UdpOp {
    /// `new UDPSocket` on `a` or `b`, on port 5000 + `port % 3` (or ephemeral), with or
    /// without a default destination.
    Open {
        /// On `b`.
        on_b: bool,
        /// Which port (`None`: ephemeral).
        port: Option<u8>,
        /// Default destination: port 5000 + this % 3 on the other host.
        remote: Option<u8>,
        /// `loopback`.
        loopback: bool,
    },
    /// `send(data, to?)`: to port 5000 + `to % 3` of `a`, `b` or the group, or the default.
    Send {
        /// Which socket.
        socket: u8,
        /// The datagram.
        data: Vec<u8>,
        /// The destination: `None` the default, else host / group and port.
        to: Option<u8>,
    },
    /// `joinMulticastGroup(239.0.0.1 + group % 2)`.
    Join {
        /// Which socket.
        socket: u8,
        /// Which group.
        group: u8,
    },
    /// `leaveMulticastGroup(...)`.
    Leave {
        /// Which socket.
        socket: u8,
        /// Which group.
        group: u8,
    },
    /// `suspend()`.
    Suspend {
        /// Which socket.
        socket: u8,
    },
    /// `resume()`.
    Resume {
        /// Which socket.
        socket: u8,
    },
    /// `close()`.
    Close {
        /// Which socket.
        socket: u8,
    },
    /// Let this much virtual time pass.
    Run {
        /// Milliseconds.
        ms: u16,
    },
}

/// A whole [`udp_ops`] run.
#[derive(Arbitrary, Clone, Debug)]
pub struct UdpOpsCase {
    /// The simulator's seed.
    pub seed: u64,
    /// Loss, duplication and reordering, in 1/256.
    pub loss: u8,
    /// Duplication, in 1/256.
    pub duplicate: u8,
    /// Reordering window, ms.
    pub reorder_ms: u8,
    /// The steps.
    pub ops: Vec<UdpOp>,
}

/// Fuzz target: UDP sockets of two cores over a lossy, duplicating, reordering network with
/// multicast. Panics on any broken invariant, and on a message that no one sent whole.
pub fn udp_ops(data: &[u8]) {
    if let Ok(case) = UdpOpsCase::arbitrary_take_rest(Unstructured::new(data)) {
        run_udp_ops(&case);
    }
}

/// Runs a [`UdpOpsCase`].
pub fn run_udp_ops(case: &UdpOpsCase) {
    let link = LinkCase {
        latency_ms: 1,
        jitter_ms: 0,
        bandwidth_kib: 0,
        buffer: u16::MAX,
        max_read: u16::MAX,
        whole_reads: true,
        whole_writes: true,
        flips: false,
    };
    let (mut sim, a, b) = two_cores(case.seed, &link);
    let lossy = Link {
        udp_loss: f64::from(case.loss) / 256.0,
        udp_duplicate: f64::from(case.duplicate) / 256.0,
        udp_reorder: Duration::from_millis(case.reorder_ms.into()),
        ..link.link()
    };
    sim.set_link(a, b, lossy.clone());
    sim.set_link(a, a, lossy.clone());
    sim.set_link(b, b, lossy);
    let ip_of = |host: HostId| IpAddr::from([127, 0, 0, if host == a { 1 } else { 2 }]);
    let group = |n: u8| IpAddr::from([239, 0, 0, 1 + n % 2]);
    let mut sockets: Vec<(HostId, crate::UdpId)> = Vec::new();
    let mut sent: Vec<Bytes> = Vec::new();
    let mut events = Vec::new();
    for op in &case.ops {
        let pick = |n: u8| sockets.get(n as usize % sockets.len().max(1)).copied();
        match op {
            UdpOp::Open {
                on_b,
                port,
                remote,
                loopback,
            } => {
                let (host, other) = if *on_b { (b, a) } else { (a, b) };
                let options = crate::UdpOptions {
                    local_port: port.map(|p| 5000 + u16::from(p % 3)),
                    remote_address: remote.map(|_| ip_of(other)),
                    remote_port: remote.map(|p| 5000 + u16::from(p % 3)),
                    loopback: *loopback,
                    ..crate::UdpOptions::default()
                };
                if let Ok(Returned::Bound(id)) = sim.call(host, Call::UdpOpen { options }) {
                    sockets.push((host, id));
                }
            }
            UdpOp::Send { socket, data, to } => {
                let Some((host, id)) = pick(*socket) else {
                    continue;
                };
                let to = to.map(|n| {
                    let ip = match n % 3 {
                        0 => ip_of(a),
                        1 => ip_of(b),
                        _ => group(n / 3),
                    };
                    SocketAddr::new(ip, 5000 + u16::from(n / 3 % 3))
                });
                let data = Bytes::from(data.clone());
                if sim
                    .call(
                        host,
                        Call::UdpSend {
                            id,
                            data: data.clone(),
                            to,
                        },
                    )
                    .is_ok()
                {
                    sent.push(data);
                }
            }
            UdpOp::Join { socket, group: g } => {
                if let Some((host, id)) = pick(*socket) {
                    let _ = sim.call(
                        host,
                        Call::UdpJoin {
                            id,
                            group: group(*g),
                        },
                    );
                }
            }
            UdpOp::Leave { socket, group: g } => {
                if let Some((host, id)) = pick(*socket) {
                    let _ = sim.call(
                        host,
                        Call::UdpLeave {
                            id,
                            group: group(*g),
                        },
                    );
                }
            }
            UdpOp::Suspend { socket } => {
                if let Some((host, id)) = pick(*socket) {
                    let _ = sim.call(host, Call::UdpSuspend { id });
                }
            }
            UdpOp::Resume { socket } => {
                if let Some((host, id)) = pick(*socket) {
                    let _ = sim.call(host, Call::UdpResume { id });
                }
            }
            UdpOp::Close { socket } => {
                if let Some((host, id)) = pick(*socket) {
                    let _ = sim.call(host, Call::UdpClose { id });
                }
            }
            UdpOp::Run { ms } => {
                events.extend(sim.run_for(Duration::from_millis(u64::from(*ms))));
            }
        }
    }
    events.extend(sim.run());
    for (_, event) in &events {
        if let crate::Event::Message { id, data, .. } = event {
            if !sent.contains(data) {
                sim_failure(
                    &sim,
                    format!("{id} got a datagram no one sent: {data:?}"),
                    case,
                );
            }
        }
    }
    finish(&mut sim, &[a, b], case);
}
