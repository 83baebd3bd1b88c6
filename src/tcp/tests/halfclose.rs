//! `halfclose` and the peer's FIN ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket)).

use super::*;

#[test]
fn halfclose_flushes_then_fin_and_data_keeps_arriving() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core.tcp_send(id, "abc").unwrap();
    h.drain();
    h.core.tcp_halfclose(h.now, id).unwrap();
    assert_eq!(state(&h, id), ReadyState::HalfClosed);
    assert_eq!(h.drain(), []);
    refused(h.core.tcp_send(id, "x"), DomException::InvalidStateError);
    assert_eq!(h.input(Input::Written { id, len: 3 }), [shutdown(id)]);
    assert_eq!(
        h.input(Input::Received {
            id,
            data: Bytes::from_static(b"hi")
        }),
        [text(id, "hi")]
    );
    assert_eq!(
        h.deadline(),
        None,
        "a half-closed socket waits for its peer"
    );
    assert_eq!(h.input(Input::Eof { id }), [query(id)]);
    assert_eq!(h.input(unacked(id, 0)), [release(id), close(id)]);
}

#[test]
fn halfclose_while_connecting_sends_fin_once_open() {
    let mut h = Harness::new();
    let id = connecting(&mut h, TcpOptions::default());
    h.core.tcp_halfclose(h.now, id).unwrap();
    assert_eq!(state(&h, id), ReadyState::Connecting);
    let out = h.input(Input::Connected {
        id,
        attempt: 0,
        local: addr(LOCAL),
    });
    assert_eq!(out, [open(id), shutdown(id), reading(id, true)]);
    assert_eq!(state(&h, id), ReadyState::HalfClosed);
}

#[test]
fn a_peer_fin_flushes_our_data_then_closes() {
    let config = Config {
        high_water_mark: 1,
        ..Config::default()
    };
    let mut h = Harness::with_config(config);
    let id = open_socket(&mut h);
    h.core.tcp_send(id, "abc").unwrap();
    h.drain();
    assert_eq!(
        h.input(Input::Received {
            id,
            data: Bytes::from_static(b"bye")
        }),
        [text(id, "bye")]
    );
    assert_eq!(h.input(Input::Eof { id }), []);
    assert_eq!(state(&h, id), ReadyState::Closing);
    assert_eq!(
        h.input(Input::Written { id, len: 3 }),
        [drain(id), shutdown(id), query(id)]
    );
    assert_eq!(h.input(unacked(id, 0)), [release(id), close(id)]);
}

#[test]
fn a_peer_fin_with_nothing_queued_closes_at_once() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    assert_eq!(h.input(Input::Eof { id }), [shutdown(id), query(id)]);
    assert_eq!(h.input(unacked(id, 0)), [release(id), close(id)]);
}

#[test]
fn what_was_queued_behind_the_fin_that_ends_the_socket_is_void() {
    let mut h = Harness::new();
    // The I/O layer says once that it cannot tell what the peer acknowledged: from then on the
    // delivery of a peer's FIN ends a socket whose FIN goes out with it.
    let taught = open_socket(&mut h);
    assert_eq!(
        h.input(Input::Eof { id: taught }),
        [shutdown(taught), query(taught)]
    );
    let unknowable = Input::Unacked {
        id: taught,
        bytes: None,
    };
    assert_eq!(h.input(unknowable), [release(taught), close(taught)]);
    let other = open_socket(&mut h);
    let id = open_socket(&mut h);
    let big = Bytes::from(vec![b'x'; h.core.config().high_water_mark + 1]);
    assert_eq!(h.core.tcp_send(id, big.clone()), Ok(false));
    assert_eq!(
        h.drain(),
        [Output::Action(Action::Write {
            id,
            data: big.clone()
        })]
    );
    // The peer's FIN is read, then the write completes, before the app polls: the Drain that
    // completion arms sits behind the FIN, whose delivery ends the socket.
    h.core.handle_input(h.now, Input::Eof { id }).unwrap();
    let len = big.len();
    h.core
        .handle_input(h.now, Input::Written { id, len })
        .unwrap();
    // What other sockets queued meanwhile stays, in order.
    assert_eq!(h.core.tcp_send(other, "y"), Ok(true));
    assert_eq!(
        h.drain(),
        [shutdown(id), release(id), close(id), write(other, b"y")]
    );
}

#[test]
fn allow_half_open_fires_halfclose_and_stays_writable() {
    let mut h = Harness::new();
    let id = established(
        &mut h,
        TcpOptions {
            allow_half_open: true,
            ..TcpOptions::default()
        },
    );
    assert_eq!(h.input(Input::Eof { id }), [halfclose_event(id)]);
    assert_eq!(state(&h, id), ReadyState::Open);
    assert_eq!(h.core.tcp_send(id, "late"), Ok(true));
    assert_eq!(h.drain(), [write(id, b"late")]);
    h.core.tcp_close(h.now, id).unwrap();
    assert_eq!(
        h.input(Input::Written { id, len: 4 }),
        [shutdown(id), query(id)]
    );
    assert_eq!(h.input(unacked(id, 0)), [release(id), close(id)]);
}

#[test]
fn halfclose_after_the_peer_fin_ends_the_connection() {
    let mut h = Harness::new();
    let id = established(
        &mut h,
        TcpOptions {
            allow_half_open: true,
            ..TcpOptions::default()
        },
    );
    h.input(Input::Eof { id });
    h.core.tcp_halfclose(h.now, id).unwrap();
    assert_eq!(h.drain(), [shutdown(id), query(id)]);
    assert_eq!(h.input(unacked(id, 0)), [release(id), close(id)]);
}

#[test]
fn a_peer_fin_in_halfclosed_closes() {
    let mut h = Harness::new();
    let id = halfclosed(&mut h);
    assert_eq!(h.input(Input::Eof { id }), [query(id)]);
    assert_eq!(h.input(unacked(id, 0)), [release(id), close(id)]);
}
