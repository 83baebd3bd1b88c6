//! `send`: destinations, datagrams in flight, sizes, the high-water mark and hard caps, `drain`;
//! and one message per datagram received ([BEHAVIOUR §3](crate::behaviour#3-udpsocket)).

use super::*;

#[test]
fn send_is_invalid_state_unless_open() {
    let mut h = Harness::new();
    let o = opening(&mut h, with_default_destination());
    refused(
        h.core.udp_send(o, "x", None),
        DomException::InvalidStateError,
    );
    let c = closing(&mut h);
    refused(
        h.core.udp_send(c, "x", None),
        DomException::InvalidStateError,
    );
    let d = dead(&mut h);
    refused(
        h.core.udp_send(d, "x", None),
        DomException::InvalidStateError,
    );
    assert_eq!(h.drain(), []);
    assert_eq!((buffered(&h, o), buffered(&h, c)), (0, 3));
}

#[test]
fn datagrams_go_to_the_given_or_the_default_destination_together() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    assert_eq!(h.core.udp_send(id, "one", None), Ok(true));
    assert_eq!(h.core.udp_send(id, "two", Some(addr(OTHER))), Ok(true));
    assert_eq!(h.core.udp_send(id, b"", None), Ok(true));
    assert_eq!(
        h.drain(),
        [send_all(
            id,
            &[(b"one", PEER), (b"two", OTHER), (b"", PEER)]
        )],
        "all in flight at once, in order, in one action"
    );
    assert_eq!(buffered(&h, id), 6, "until each is answered");
    assert_eq!(h.input(Input::Sent { id, count: 1 }), []);
    assert_eq!(buffered(&h, id), 3, "the oldest answered");
    assert_eq!(h.input(Input::Sent { id, count: 2 }), []);
    assert_eq!(buffered(&h, id), 0);
    assert_eq!(
        h.bad_input(Input::Sent { id, count: 1 }),
        InputError::Unexpected("a send completed but none was in flight")
    );
}

#[test]
fn datagrams_in_flight_are_bounded_by_the_config_and_follow_as_answered() {
    let mut h = Harness::with_config(Config {
        max_datagrams_in_flight: 2,
        ..Config::default()
    });
    let id = open_socket(&mut h);
    for d in ["a", "b", "c", "d"] {
        h.core.udp_send(id, d, None).unwrap();
    }
    assert_eq!(h.drain(), [send_all(id, &[(b"a", PEER), (b"b", PEER)])]);
    assert_eq!(
        h.input(Input::Sent { id, count: 1 }),
        [send_to(id, b"c", PEER)]
    );
    h.core.udp_send(id, "e", None).unwrap();
    assert_eq!(h.drain(), [], "two in flight: b and c");
    assert_eq!(
        h.input(Input::Sent { id, count: 2 }),
        [send_all(id, &[(b"d", PEER), (b"e", PEER)])]
    );
}

#[test]
fn datagrams_go_one_at_a_time_with_one_in_flight() {
    let mut h = Harness::with_config(Config {
        max_datagrams_in_flight: 1,
        ..Config::default()
    });
    let id = open_socket(&mut h);
    assert_eq!(h.core.udp_send(id, "one", None), Ok(true));
    assert_eq!(h.core.udp_send(id, "two", Some(addr(OTHER))), Ok(true));
    assert_eq!(h.core.udp_send(id, b"", None), Ok(true));
    assert_eq!(buffered(&h, id), 6);
    assert_eq!(h.drain(), [send_to(id, b"one", PEER)], "one in flight");
    assert_eq!(
        h.input(Input::Sent { id, count: 1 }),
        [send_to(id, b"two", OTHER)]
    );
    assert_eq!(buffered(&h, id), 3);
    assert_eq!(
        h.input(Input::Sent { id, count: 1 }),
        [send_to(id, b"", PEER)]
    );
    assert_eq!(h.input(Input::Sent { id, count: 1 }), []);
    assert_eq!(buffered(&h, id), 0);
}

#[test]
fn a_send_without_a_valid_destination_is_invalid_access() {
    let mut h = Harness::new();
    let id = bound(&mut h, UdpOptions::default());
    refused(
        h.core.udp_send(id, "x", None),
        DomException::InvalidAccessError,
    );
    for to in ["127.0.0.1:0", "0.0.0.0:7", "[::1]:7"] {
        refused(
            h.core.udp_send(id, "x", Some(addr(to))),
            DomException::InvalidAccessError,
        );
    }
    assert_eq!(h.drain(), []);
    assert_eq!(buffered(&h, id), 0);
    assert_eq!(h.core.udp_send(id, "x", Some(addr(PEER))), Ok(true));
}

#[test]
fn a_payload_larger_than_a_datagram_is_invalid_access() {
    let mut h = Harness::new();
    let v4 = open_socket(&mut h);
    let err = h
        .core
        .udp_send(v4, vec![0u8; MAX_DATAGRAM_V4 + 1], None)
        .unwrap_err();
    assert_eq!(err.exception(), DomException::InvalidAccessError);
    assert_eq!(
        err.message(),
        "a datagram to 127.0.0.1:7000 carries at most 65507 bytes; this one has 65508"
    );
    assert_eq!(h.drain(), []);
    assert_eq!(
        h.core.udp_send(v4, vec![0u8; MAX_DATAGRAM_V4], None),
        Ok(true)
    );
    assert_eq!(h.drain().len(), 1, "the largest datagram goes out");

    let v6 = bound(
        &mut h,
        UdpOptions {
            local_address: Some(ip("::")),
            ..UdpOptions::default()
        },
    );
    let to = Some(addr("[::1]:7"));
    refused(
        h.core.udp_send(v6, vec![0u8; MAX_DATAGRAM_V6 + 1], to),
        DomException::InvalidAccessError,
    );
    assert_eq!(
        h.core.udp_send(v6, vec![0u8; MAX_DATAGRAM_V6], to),
        Ok(true)
    );
    // An IPv4-mapped destination goes out as IPv4.
    let mapped = Some(addr("[::ffff:127.0.0.1]:7"));
    refused(
        h.core.udp_send(v6, vec![0u8; MAX_DATAGRAM_V4 + 1], mapped),
        DomException::InvalidAccessError,
    );
    assert_eq!(buffered(&h, v6), MAX_DATAGRAM_V6);
}

#[test]
fn send_returns_true_up_to_exactly_the_high_water_mark_and_drain_fires_once_empty() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    assert_eq!(h.core.udp_send(id, vec![1u8; 65_507], None), Ok(true));
    assert_eq!(h.core.udp_send(id, vec![2u8; 29], None), Ok(true));
    assert_eq!(buffered(&h, id), 65_536);
    assert_eq!(h.core.udp_send(id, vec![3u8; 1], None), Ok(false));
    assert_eq!(h.core.udp_send(id, vec![4u8; 1], None), Ok(false));
    assert_eq!(h.drain().len(), 1, "all four in flight, in one action");
    // bufferedAmount is exact per datagram answered, and Drain waits for the last.
    for left in [29 + 1 + 1, 1 + 1, 1] {
        assert_eq!(h.input(Input::Sent { id, count: 1 }), []);
        assert_eq!(buffered(&h, id), left);
    }
    assert_eq!(h.input(Input::Sent { id, count: 1 }), [drain(id)], "once");
    assert_eq!(buffered(&h, id), 0);
    // Below the mark: no drain.
    h.core.udp_send(id, "x", None).unwrap();
    h.drain();
    assert_eq!(h.input(Input::Sent { id, count: 1 }), []);
}

#[test]
fn the_hard_caps_are_quota_exceeded_and_queue_nothing() {
    let mut h = Harness::with_config(Config {
        send_buffer_limit: 10,
        max_queued_datagrams: 3,
        ..config(4)
    });
    let id = open_socket(&mut h);
    h.core.udp_send(id, vec![0u8; 8], None).unwrap();
    refused(
        h.core.udp_send(id, vec![0u8; 3], None),
        DomException::QuotaExceededError,
    );
    assert_eq!(buffered(&h, id), 8);
    h.core.udp_send(id, b"", None).unwrap();
    h.core.udp_send(id, b"", None).unwrap();
    refused(
        h.core.udp_send(id, b"", None),
        DomException::QuotaExceededError,
    );
    assert_eq!(state(&h, id), ReadyState::Open);
    assert_eq!(h.drain().len(), 1);
    h.input(Input::Sent { id, count: 1 });
    assert_eq!(h.core.udp_send(id, vec![0u8; 2], None), Ok(true));
}

#[test]
fn a_datagram_the_os_refuses_is_an_error_and_the_socket_stays_open() {
    let mut h = Harness::with_config(config(1));
    let id = open_socket(&mut h);
    assert_eq!(h.core.udp_send(id, "ab", None), Ok(false));
    h.core.udp_send(id, "cd", Some(addr(OTHER))).unwrap();
    assert_eq!(h.drain(), [send_all(id, &[(b"ab", PEER), (b"cd", OTHER)])]);
    let out = h.input(Input::SendFailed {
        id,
        error: ConnectionRefused,
    });
    let refused_error = Output::Event(Event::Error {
        id: id.into(),
        error: SocketError {
            code: ErrorCode::ConnectionRefused,
            message: format!(
                "the datagram to {PEER} was dropped: {}",
                std::io::Error::from(ConnectionRefused)
            )
            .into(),
        },
    });
    assert_eq!(out, [refused_error], "the oldest one failed");
    assert_eq!((state(&h, id), buffered(&h, id)), (ReadyState::Open, 2));
    // The last one failing still empties the queue: Drain after the Error.
    let out = h.input(Input::SendFailed {
        id,
        error: HostUnreachable,
    });
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(matches!(&out[0], Output::Event(Event::Error { error, .. })
        if error.name() == "NetworkError" && error.message.contains(OTHER)));
    assert_eq!(out[1], drain(id));
    assert_eq!(h.core.udp_send(id, "ef", None), Ok(false));
    assert_eq!(h.drain(), [send_to(id, b"ef", PEER)]);
}

// ---- messages -----------------------------------------------------------------------------

#[test]
fn every_datagram_is_one_message_with_its_source() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    let out = h.input(datagram(id, b"\xffhello\0", OTHER));
    assert_eq!(out, [message(id, b"\xffhello\0", OTHER)]);
    let out = h.input(datagram(id, b"", "[::ffff:1.2.3.4]:9"));
    assert_eq!(out, [message(id, b"", "[::ffff:1.2.3.4]:9")]);
}
