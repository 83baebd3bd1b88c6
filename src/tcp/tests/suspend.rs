//! `suspend`/`resume`: counted, held data, bounds; and events already queued when the app calls
//! ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket)).

use super::*;

#[test]
fn suspend_is_counted_and_stops_reading() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core.tcp_suspend(id).unwrap();
    h.core.tcp_suspend(id).unwrap();
    assert_eq!(h.drain(), [reading(id, false)]);
    h.core.tcp_resume(id).unwrap();
    assert_eq!(h.drain(), []);
    assert_eq!(h.core.tcp(id).unwrap().suspend_count(), 1);
    h.core.tcp_resume(id).unwrap();
    assert_eq!(h.drain(), [reading(id, true)]);
    refused(h.core.tcp_resume(id), DomException::InvalidStateError);
    assert_eq!(h.drain(), []);
}

#[test]
fn a_suspend_before_open_applies_from_the_start() {
    let mut h = Harness::new();
    let id = connecting(&mut h, TcpOptions::default());
    h.core.tcp_suspend(id).unwrap();
    assert_eq!(h.drain(), []);
    assert_eq!(
        h.input(Input::Connected {
            id,
            attempt: 0,
            local: addr(LOCAL)
        }),
        [open(id)]
    );
    h.core.tcp_resume(id).unwrap();
    assert_eq!(h.drain(), [reading(id, true)]);
}

#[test]
fn data_read_while_suspended_is_held_until_resume_and_the_fin_after_it() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core.tcp_suspend(id).unwrap();
    h.drain();
    // A read that was already in flight.
    assert_eq!(
        h.input(Input::Received {
            id,
            data: Bytes::from_static(b"held")
        }),
        []
    );
    assert_eq!(h.input(Input::Eof { id }), []);
    assert_eq!(state(&h, id), ReadyState::Open);
    h.core.tcp_resume(id).unwrap();
    assert_eq!(h.drain(), [text(id, "held"), shutdown(id), query(id)]);
    assert_eq!(h.input(unacked(id, 0)), [release(id), close(id)]);
}

#[test]
fn close_after_a_held_fin_keeps_the_fin_and_does_not_read_again() {
    // Found by the property tests: close() dropped the held FIN with the held data, then asked
    // to read again, accepted data after the FIN and waited a linger for a FIN already seen.
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core.tcp_suspend(id).unwrap();
    assert_eq!(h.drain(), [reading(id, false)]);
    assert_eq!(h.input(Input::Eof { id }), []);
    h.core.tcp_close(h.now, id).unwrap();
    assert_eq!(h.drain(), [shutdown(id), query(id)]);
    assert_eq!(h.input(unacked(id, 0)), [release(id), close(id)]);
    assert!(h.core.tcp(id).is_none());
}

#[test]
fn holding_is_bounded() {
    let config = Config {
        max_held_bytes: 4,
        ..Config::default()
    };
    let mut h = Harness::with_config(config);
    let id = open_socket(&mut h);
    h.core.tcp_suspend(id).unwrap();
    h.drain();
    h.input(Input::Received {
        id,
        data: Bytes::from_static(b"abcd"),
    });
    let err = h.bad_input(Input::Received {
        id,
        data: Bytes::from_static(b"e"),
    });
    assert!(matches!(err, InputError::Unexpected(_)));
    h.core.tcp_resume(id).unwrap();
    assert_eq!(h.drain(), [text(id, "abcd"), reading(id, true)]);
}

#[test]
fn sending_and_drain_continue_while_suspended() {
    let config = Config {
        high_water_mark: 1,
        ..Config::default()
    };
    let mut h = Harness::with_config(config);
    let id = open_socket(&mut h);
    h.core.tcp_suspend(id).unwrap();
    h.drain();
    assert_eq!(h.core.tcp_send(id, "ab"), Ok(false));
    assert_eq!(h.drain(), [write(id, b"ab")]);
    assert_eq!(h.input(Input::Written { id, len: 2 }), [drain(id)]);
}

#[test]
fn held_data_is_not_lost_when_the_connection_fails() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core.tcp_suspend(id).unwrap();
    h.drain();
    h.input(Input::Received {
        id,
        data: Bytes::from_static(b"last words"),
    });
    let out = h.input(Input::Failed {
        id,
        error: ConnectionReset,
    });
    assert_eq!(
        out,
        [
            text(id, "last words"),
            release(id),
            io_error(id, ConnectionReset),
            close(id)
        ]
    );
}

// ---- events already queued when the app calls (found by the driver) -----------------------

/// Two reads queued as events; the app takes the first, then calls `call`.
fn two_reads_then(call: impl FnOnce(&mut Harness, TcpId)) -> (Harness, TcpId, Vec<Output>) {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core
        .handle_input(
            h.now,
            Input::Received {
                id,
                data: Bytes::from_static(b"one"),
            },
        )
        .unwrap();
    h.core
        .handle_input(
            h.now,
            Input::Received {
                id,
                data: Bytes::from_static(b"two"),
            },
        )
        .unwrap();
    h.core.handle_input(h.now, Input::Eof { id }).unwrap();
    assert_eq!(h.core.poll_output(), text(id, "one"));
    call(&mut h, id);
    let rest = h.drain();
    (h, id, rest)
}

#[test]
fn no_data_is_delivered_after_suspend_even_if_it_was_already_read() {
    let (mut h, id, rest) = two_reads_then(|h, id| h.core.tcp_suspend(id).unwrap());
    assert_eq!(rest, [], "neither the data nor the FIN behind it");
    assert_eq!(state(&h, id), ReadyState::Open);
    h.core.tcp_resume(id).unwrap();
    assert_eq!(h.drain(), [text(id, "two"), shutdown(id), query(id)]);
    assert_eq!(h.input(unacked(id, 0)), [release(id), close(id)]);
}

#[test]
fn no_data_is_delivered_after_close_even_if_it_was_already_read() {
    let (mut h, id, rest) = two_reads_then(|h, id| h.core.tcp_close(h.now, id).unwrap());
    // The peer's FIN was read already: our FIN, then the release once the peer has it all.
    assert_eq!(rest, [shutdown(id), query(id)]);
    assert_eq!(h.input(unacked(id, 0)), [release(id), close(id)]);
}
