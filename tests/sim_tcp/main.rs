//! End-to-end TCPSocket scenarios over the simulated network, each under many seeds (seeded
//! chunking of reads, partial writes, jitter). Every run also passes the invariant checker of
//! every host. `SIM_SEEDS=n` runs n seeds per scenario (default 24).

#[path = "../common/mod.rs"]
mod common;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use common::{clean, ensure, seeds};
use sockstate::sim::{AfterGreeting, Call, HostId, Link, Peer, Returned, Sim, SimConfig};
use sockstate::{
    BinaryType, Bytes, Config, Data, DomException, ErrorCode, Event, ReadyState, ResolveError,
    SocketId, TcpId, TcpOptions,
};

const SERVER: &str = "127.0.0.2";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A client host and a server host (also named "server.test") on a jittery link.
fn net(seed: u64, link: Link) -> (Sim, HostId, HostId) {
    net_with(seed, link, Config::default())
}

fn net_with(seed: u64, link: Link, core: Config) -> (Sim, HostId, HostId) {
    let cfg = SimConfig::default().link(link).core(core);
    let mut sim = Sim::with_config(seed, cfg);
    let client = sim
        .add_host(
            "client",
            &["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
        )
        .unwrap();
    let server = sim
        .add_host(
            "server.test",
            &[SERVER.parse().unwrap(), "::2".parse().unwrap()],
        )
        .unwrap();
    (sim, client, server)
}

fn jittery() -> Link {
    Link::default()
        .latency(Duration::from_millis(2))
        .jitter(Duration::from_millis(3))
}

fn open(sim: &mut Sim, host: HostId, target: &str, port: u16, options: TcpOptions) -> TcpId {
    let call = Call::TcpOpen {
        host: target.into(),
        port,
        options,
    };
    match sim.call(host, call) {
        Ok(Returned::Opened(id)) => id,
        other => panic!("open failed: {other:?}"),
    }
}

fn send(sim: &mut Sim, host: HostId, id: TcpId, data: impl Into<Bytes>) -> bool {
    match sim.call(
        host,
        Call::TcpSend {
            id,
            data: data.into(),
        },
    ) {
        Ok(Returned::Sent(below)) => below,
        other => panic!("send failed: {other:?}"),
    }
}

fn state(sim: &Sim, host: HostId, id: TcpId) -> Option<ReadyState> {
    sim.core(host)?.tcp(id).map(|s| s.ready_state())
}

/// The kinds of the events, for transcript assertions that ignore data chunking.
fn kinds(events: &[Event]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for e in events {
        let k = match e {
            Event::Open { .. } => "open",
            Event::Data { .. } => "data",
            Event::Drain { .. } => "drain",
            Event::HalfClose { .. } => "halfclose",
            Event::Error { .. } => "error",
            Event::Close { .. } => "close",
            _ => "other",
        };
        if !(k == "data" && out.last() == Some(&"data")) {
            out.push(k);
        }
    }
    out
}

fn error_code(events: &[Event]) -> Option<ErrorCode> {
    events.iter().find_map(|e| match e {
        Event::Error { error, .. } => Some(error.code),
        _ => None,
    })
}

fn bytes_of(events: &[Event]) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Data { data, .. } => Some(data.as_bytes().to_vec()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Seeded bytes (xorshift), for bulk transfers.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

mod closing;
mod failures;
mod transfers;
