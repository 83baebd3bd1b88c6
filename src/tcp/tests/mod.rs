//! One fixture per state, one test per state × stimulus, each asserting the whole transcript
//! ([BEHAVIOUR §0](crate::behaviour#0-everywhere), [§1](crate::behaviour#1-tcpsocket), [§4](crate::behaviour#4-errors), [§5](crate::behaviour#5-trust)).

use std::io::ErrorKind::{ConnectionRefused, ConnectionReset, HostUnreachable, TimedOut};
use std::time::Duration;

use bytes::Bytes;

use crate::testkit::*;
use crate::*;

const LOCAL: &str = "127.0.0.1:40000";

fn connect(id: TcpId, attempt: u8, remote: &str) -> Output {
    Output::Action(Action::Connect {
        id,
        attempt,
        remote: addr(remote),
        options: Box::new(ConnectOptions {
            local: None,
            no_delay: true,
            keep_alive: None,
            settings: SocketSettings::default(),
        }),
    })
}

fn abort(id: TcpId, attempt: u8) -> Output {
    Output::Action(Action::AbortConnect { id, attempt })
}

fn state(h: &Harness, id: TcpId) -> ReadyState {
    h.core.tcp(id).expect("live socket").ready_state()
}

fn buffered(h: &Harness, id: TcpId) -> usize {
    h.core.tcp(id).expect("live socket").buffered_amount()
}

// ---- fixtures: one per readyState ---------------------------------------------------------

/// `connecting` to 127.0.0.1:80, attempt 0 in flight.
fn connecting(h: &mut Harness, options: TcpOptions) -> TcpId {
    let id = h.core.tcp_open(h.now, "127.0.0.1", 80, options).unwrap();
    let out = h.drain();
    assert!(
        matches!(
            out[..],
            [Output::Action(Action::Connect { attempt: 0, .. })]
        ),
        "{out:?}"
    );
    assert_eq!(state(h, id), ReadyState::Connecting);
    id
}

fn established(h: &mut Harness, options: TcpOptions) -> TcpId {
    let id = connecting(h, options);
    let out = h.input(Input::Connected {
        id,
        attempt: 0,
        local: addr(LOCAL),
    });
    assert_eq!(out, [open(id), reading(id, true)]);
    id
}

/// `open`, binaryType string.
fn open_socket(h: &mut Harness) -> TcpId {
    established(h, TcpOptions::default())
}

/// `halfclosed`: FIN sent.
fn halfclosed(h: &mut Harness) -> TcpId {
    let id = open_socket(h);
    h.core.tcp_halfclose(h.now, id).unwrap();
    assert_eq!(h.drain(), [shutdown(id)]);
    assert_eq!(state(h, id), ReadyState::HalfClosed);
    id
}

/// `closing` with "abc" in flight (not yet written).
fn closing(h: &mut Harness) -> TcpId {
    let id = open_socket(h);
    h.core.tcp_send(id, "abc").unwrap();
    assert_eq!(h.drain(), [write(id, b"abc")]);
    h.core.tcp_close(h.now, id).unwrap();
    assert_eq!(h.drain(), []);
    assert_eq!(state(h, id), ReadyState::Closing);
    id
}

/// `closed` by a reset, `Close` delivered: the id is dead.
fn dead(h: &mut Harness) -> TcpId {
    let id = open_socket(h);
    let out = h.input(Input::Failed {
        id,
        error: ConnectionReset,
    });
    assert_eq!(out, [release(id), io_error(id, ConnectionReset), close(id)]);
    assert!(h.core.tcp(id).is_none());
    id
}

mod close;
mod halfclose;
mod open;
mod resolve;
mod robustness;
mod send;
mod suspend;
