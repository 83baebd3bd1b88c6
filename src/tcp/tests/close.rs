//! `close`: flushing, the close and linger timeouts, resets while closing, and a lost connection
//! ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket), [§4](crate::behaviour#4-errors)).

use super::*;

#[test]
fn close_while_connecting_abandons_without_error() {
    let mut h = Harness::new();
    let id = connecting(&mut h, TcpOptions::default());
    h.core.tcp_close(h.now, id).unwrap();
    assert_eq!(state(&h, id), ReadyState::Closing);
    assert_eq!(h.drain(), [release(id), close(id)]);
    assert!(h.core.tcp(id).is_none());
    assert_eq!(h.deadline(), None, "the connect timer is gone");
    assert_eq!(
        h.bad_input(Input::Connected {
            id,
            attempt: 0,
            local: addr(LOCAL)
        }),
        InputError::UnknownId
    );
}

#[test]
fn close_flushes_then_drain_then_fin_then_close_after_the_peer_fin() {
    let config = Config {
        high_water_mark: 2,
        ..Config::default()
    };
    let mut h = Harness::with_config(config);
    let id = open_socket(&mut h);
    assert_eq!(h.core.tcp_send(id, "abc"), Ok(false));
    h.drain();
    h.core.tcp_close(h.now, id).unwrap();
    assert_eq!(state(&h, id), ReadyState::Closing);
    assert_eq!(h.drain(), []);
    assert_eq!(h.deadline(), Some(h.now + Config::default().close_timeout));
    // Data still arriving is read and discarded: no Data after close().
    assert_eq!(
        h.input(Input::Received {
            id,
            data: Bytes::from_static(b"late")
        }),
        []
    );
    assert_eq!(
        h.input(Input::Written { id, len: 3 }),
        [drain(id), shutdown(id), query(id)]
    );
    // The peer's TCP has not acknowledged everything yet: ask again 1 ms later.
    assert_eq!(h.input(unacked(id, 4)), []);
    assert_eq!(h.deadline(), Some(h.now + Duration::from_millis(1)));
    assert_eq!(h.advance(Duration::from_millis(1)), [query(id)]);
    assert_eq!(h.input(unacked(id, 0)), []);
    assert_eq!(h.deadline(), Some(h.now + Config::default().linger_timeout));
    assert_eq!(h.input(Input::Eof { id }), [release(id), close(id)]);
    assert_eq!(h.deadline(), None);
}

#[test]
fn close_of_a_suspended_socket_reads_again_to_discard() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core.tcp_suspend(id).unwrap();
    assert_eq!(h.drain(), [reading(id, false)]);
    h.core.tcp_close(h.now, id).unwrap();
    assert_eq!(h.drain(), [shutdown(id), query(id), reading(id, true)]);
    assert_eq!(
        h.input(Input::Received {
            id,
            data: Bytes::from_static(b"x")
        }),
        []
    );
    assert_eq!(h.input(unacked(id, 0)), []);
    assert_eq!(h.input(Input::Eof { id }), [release(id), close(id)]);
}

#[test]
fn a_peer_that_does_not_take_the_data_gets_a_close_timeout() {
    let mut h = Harness::new();
    let id = closing(&mut h);
    let timeout = Config::default().close_timeout;
    assert_eq!(h.advance(timeout - Duration::from_millis(1)), []);
    assert_eq!(
        h.advance(Duration::from_millis(1)),
        [
            release(id),
            error(
                id,
                ErrorCode::NetworkTimeout,
                "the peer did not take the queued data within the close timeout"
            ),
            close(id)
        ]
    );
}

#[test]
fn the_linger_timeout_releases_without_error() {
    let mut h = Harness::new();
    let id = closing(&mut h);
    assert_eq!(
        h.input(Input::Written { id, len: 3 }),
        [shutdown(id), query(id)]
    );
    assert_eq!(h.input(unacked(id, 0)), []);
    let linger = Config::default().linger_timeout;
    assert_eq!(h.advance(linger), [release(id), close(id)]);
}

#[test]
fn a_reset_while_closing_is_an_error() {
    let mut h = Harness::new();
    let id = closing(&mut h);
    let out = h.input(Input::Failed {
        id,
        error: ConnectionReset,
    });
    assert_eq!(out, [release(id), io_error(id, ConnectionReset), close(id)]);
}

#[test]
fn close_in_closing_or_closed_does_nothing_and_a_dead_id_is_an_error() {
    let mut h = Harness::new();
    let id = closing(&mut h);
    h.core.tcp_close(h.now, id).unwrap();
    h.core.tcp_halfclose(h.now, id).unwrap();
    assert_eq!(h.drain(), []);
    let d = dead(&mut h);
    refused(h.core.tcp_close(h.now, d), DomException::InvalidStateError);
    refused(
        h.core.tcp_close_immediately(d),
        DomException::InvalidStateError,
    );
    refused(
        h.core.tcp_halfclose(h.now, d),
        DomException::InvalidStateError,
    );
    refused(h.core.tcp_suspend(d), DomException::InvalidStateError);
    refused(h.core.tcp_resume(d), DomException::InvalidStateError);
    assert_eq!(h.drain(), []);
}

#[test]
fn close_immediately_discards_the_queue() {
    let config = Config {
        high_water_mark: 1,
        ..Config::default()
    };
    let mut h = Harness::with_config(config);
    let id = open_socket(&mut h);
    h.core.tcp_send(id, "abc").unwrap();
    h.drain();
    h.core.tcp_close_immediately(id).unwrap();
    assert_eq!(state(&h, id), ReadyState::Closing);
    assert_eq!(buffered(&h, id), 0);
    assert_eq!(h.drain(), [release(id), close(id)], "no drain, no FIN");
    // Also cuts a lingering close short.
    let id = closing(&mut h);
    h.core.tcp_close_immediately(id).unwrap();
    assert_eq!(h.drain(), [release(id), close(id)]);
}

// ---- connection lost ----------------------------------------------------------------------

#[test]
fn a_lost_connection_is_an_error_then_close_and_discards_the_queue() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core.tcp_send(id, "abc").unwrap();
    h.drain();
    h.core
        .handle_input(
            h.now,
            Input::Failed {
                id,
                error: ConnectionReset,
            },
        )
        .unwrap();
    assert_eq!(state(&h, id), ReadyState::Closed);
    assert_eq!(buffered(&h, id), 0);
    assert_eq!(
        h.drain(),
        [release(id), io_error(id, ConnectionReset), close(id)]
    );
    let Some(Output::Event(Event::Error { error, .. })) =
        [io_error(id, ConnectionReset)].into_iter().next()
    else {
        unreachable!()
    };
    assert_eq!(
        (error.name(), error.kind()),
        ("NetworkInterruptError", SocketErrorKind::Network)
    );
}
