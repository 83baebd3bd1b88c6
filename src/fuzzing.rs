//! Fuzz harnesses (feature `fuzzing`): each takes arbitrary bytes, turns them into a run over
//! the core, and panics when an invariant of [`CheckedCore`](crate::sim::CheckedCore) or an
//! end-to-end property breaks, not only on a crash. `fuzz/` wraps each in a three-line
//! cargo-fuzz target; `cargo test` replays the checked-in corpus (`tests/fuzz_corpus/<target>/`)
//! through [`run`]; the property tests build the same cases with proptest.
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

use std::io::ErrorKind;
use std::net::IpAddr;
use std::time::Duration;

use arbitrary::Arbitrary;

use crate::sim::SimConfig;
use crate::sim::{Call, HostId, Link, Sim};
use crate::{Bytes, Config, TcpId};

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

mod pair_net;
mod replay_file;
mod server_ops;
mod tcp_ops;
mod tls_records;
mod udp_ops;
pub use pair_net::{pair_net, run_pair_net, PairNetCase, PairOp};
pub use replay_file::replay_file;
pub use server_ops::{run_server_ops, server_ops, ServerOp, ServerOpsCase};
pub use tcp_ops::{run_tcp_ops, tcp_ops, LimitsCase, OptionsCase, TcpOp, TcpOpsCase};
pub use tls_records::{
    run_tls_records, tls_records, InjectedRead, TlsOp, TlsRecordsCase, MAX_INJECTED,
};
pub use udp_ops::{run_udp_ops, udp_ops, UdpOp, UdpOpsCase};

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
