//! [`tcp_ops`]: one core, the harness playing the I/O layer with random API calls and inputs.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};

use crate::sim::{Call, CheckedCore, Returned};
use crate::{
    Action, BinaryType, Config, Core, Input, Output, ResolveError, SocketId, TcpId, TcpOptions,
};

use super::{error, pick, tcp_call, TcpCall};

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
    pub(super) fn options(&self) -> TcpOptions {
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
