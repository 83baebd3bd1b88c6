//! One fixture per state, one test per state × stimulus, each asserting the whole transcript
//! ([BEHAVIOUR §0](crate::behaviour#0-everywhere), [§3](crate::behaviour#3-udpsocket), [§5](crate::behaviour#5-trust)).

use std::io::ErrorKind::{AddrInUse, AddrNotAvailable, ConnectionRefused, HostUnreachable};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bytes::Bytes;

use crate::testkit::*;
use crate::*;

const LOCAL: &str = "0.0.0.0:40000";
const PEER: &str = "127.0.0.1:7000";
const OTHER: &str = "127.0.0.2:7001";
const GROUP: &str = "239.255.255.250";

fn state(h: &Harness, id: UdpId) -> ReadyState {
    h.core.udp(id).expect("live socket").ready_state()
}

fn buffered(h: &Harness, id: UdpId) -> usize {
    h.core.udp(id).expect("live socket").buffered_amount()
}

fn groups(h: &Harness, id: UdpId) -> Vec<IpAddr> {
    h.core
        .udp(id)
        .expect("live socket")
        .multicast_groups()
        .to_vec()
}

fn with_default_destination() -> UdpOptions {
    UdpOptions {
        remote_address: Some(ip("127.0.0.1")),
        remote_port: Some(7000),
        ..UdpOptions::default()
    }
}

fn datagram(id: UdpId, data: &[u8], from: &str) -> Input {
    Input::Datagram {
        id,
        data: Bytes::copy_from_slice(data),
        remote: addr(from),
    }
}

fn config(high_water_mark: usize) -> Config {
    Config {
        high_water_mark,
        ..Config::default()
    }
}

// ---- fixtures: one per readyState ---------------------------------------------------------

/// `opening`: `Bind` asked, no answer yet.
fn opening(h: &mut Harness, options: UdpOptions) -> UdpId {
    let id = h.core.udp_open(h.now, options).unwrap();
    let out = h.drain();
    assert!(
        matches!(out[..], [Output::Action(Action::Bind { id: b, .. })] if b == id),
        "{out:?}"
    );
    assert_eq!(state(h, id), ReadyState::Opening);
    id
}

fn bound(h: &mut Harness, options: UdpOptions) -> UdpId {
    let id = opening(h, options);
    let out = h.input(Input::Bound {
        id,
        local: addr(LOCAL),
    });
    assert_eq!(out, [open(id), reading(id, true)]);
    id
}

/// `open`, bound to 0.0.0.0:40000, default destination 127.0.0.1:7000.
fn open_socket(h: &mut Harness) -> UdpId {
    bound(h, with_default_destination())
}

/// `closing`: "abc" to the default destination in flight when `close()` was called.
fn closing(h: &mut Harness) -> UdpId {
    let id = open_socket(h);
    h.core.udp_send(id, "abc", None).unwrap();
    assert_eq!(h.drain(), [send_to(id, b"abc", PEER)]);
    h.core.udp_close(h.now, id).unwrap();
    assert_eq!(h.drain(), [reading(id, false)]);
    assert_eq!(state(h, id), ReadyState::Closing);
    id
}

/// `closed` by `close()` with nothing queued, `Release` and `Close` not yet delivered.
fn closed(h: &mut Harness) -> UdpId {
    let id = open_socket(h);
    h.core.udp_close(h.now, id).unwrap();
    assert_eq!(state(h, id), ReadyState::Closed);
    id
}

/// `closed`, `Close` delivered: the id is dead.
fn dead(h: &mut Harness) -> UdpId {
    let id = closed(h);
    assert_eq!(h.drain(), [release(id), close(id)]);
    assert!(h.core.udp(id).is_none());
    id
}

mod batch;
mod close;
mod multicast;
mod open;
mod resolve;
mod robustness;
mod send;
mod suspend;
