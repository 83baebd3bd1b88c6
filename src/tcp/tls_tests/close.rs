//! Ending a TLS stream: garbage records, truncation, close_notify before FIN and from the peer
//! ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket), [§4](crate::behaviour#4-errors)).

use super::*;

#[test]
fn garbage_records_are_a_security_error() {
    let mut h = Harness::new();
    let (id, _peer, _link) = secure_open(&mut h);
    let out = h.input(Input::Received {
        id,
        data: Bytes::from_static(b"\x17\x03\x03\x00\x05hello"),
    });
    assert_eq!(out.len(), 3, "{out:?}");
    assert_eq!(out[0], release(id));
    let Output::Event(Event::Error { error, .. }) = &out[1] else {
        panic!("{out:?}")
    };
    assert_eq!(
        (error.name(), error.kind()),
        ("SecurityError", SocketErrorKind::SecurityProtocol)
    );
    assert_eq!(out[2], close(id));
}

#[test]
fn a_fin_without_close_notify_is_reported_as_truncation_after_the_data() {
    let mut h = Harness::new();
    let (id, mut peer, mut link) = secure_open(&mut h);
    peer.send(b"partial");
    link.run(&mut h, id, &mut peer, vec![]);
    let out = h.input(Input::Eof { id });
    assert_eq!(
        link.take_events(),
        [Event::Data {
            id,
            data: Data::Text("partial".into())
        }]
    );
    assert!(
        matches!(&out[..], [r, Output::Event(Event::Error { error, .. }), c]
        if *r == release(id) && error.code == ErrorCode::ProtocolOther
            && error.message.contains("truncated") && *c == close(id)),
        "{out:?}"
    );
}

#[test]
fn close_sends_close_notify_before_fin_and_ends_after_the_peers() {
    let config = Config {
        high_water_mark: 1,
        ..Config::default()
    };
    let mut h = Harness::with_config(config);
    let (id, mut peer, mut link) = secure_open(&mut h);
    assert_eq!(h.core.tcp_send(id, "bye"), Ok(false));
    h.core.tcp_close(h.now, id).unwrap();
    let out = h.drain();
    link.run(&mut h, id, &mut peer, out);
    assert_eq!(peer.plain, b"bye");
    assert!(peer.closed_notify, "close_notify reached the peer");
    assert!(link.fin_from_us);
    assert_eq!(link.take_events(), [Event::Drain { id: id.into() }]);
    assert_eq!(link.buffered_at_drain, [0]);
    assert_eq!(state(&h, id), ReadyState::Closing);
    // The peer answers with its close_notify and FIN.
    peer.conn.send_close_notify();
    link.run(&mut h, id, &mut peer, vec![]);
    assert_eq!(h.input(Input::Eof { id }), [release(id), close(id)]);
}

#[test]
fn a_peer_close_notify_ends_the_stream_like_a_fin() {
    let mut h = Harness::new();
    let (id, mut peer, mut link) = secure_open(&mut h);
    peer.send(b"last");
    peer.conn.send_close_notify();
    link.run(&mut h, id, &mut peer, vec![]);
    assert_eq!(
        link.take_events(),
        [Event::Data {
            id,
            data: Data::Text("last".into())
        }]
    );
    assert!(link.fin_from_us, "we answered with close_notify and FIN");
    assert!(peer.closed_notify);
    assert_eq!(state(&h, id), ReadyState::Closing);
    assert_eq!(h.input(Input::Eof { id }), [release(id), close(id)]);
}

#[test]
fn garbage_after_our_close_notify_is_discarded_when_closing() {
    let mut h = Harness::new();
    let (id, mut peer, mut link) = secure_open(&mut h);
    h.core.tcp_close(h.now, id).unwrap();
    let out = h.drain();
    link.run(&mut h, id, &mut peer, out);
    assert!(peer.closed_notify && link.fin_from_us);
    // Nothing more can reach the app: a corrupt record is read and dropped, no TLS involved.
    let garbage = Bytes::from_static(b"\x17\x03\x03\x00\x05hello");
    assert_eq!(h.input(Input::Received { id, data: garbage }), []);
    assert_eq!(h.input(Input::Eof { id }), [release(id), close(id)]);
}

#[test]
fn garbage_after_a_tls_half_close_is_a_protocol_error_not_a_panic() {
    let mut h = Harness::new();
    let (id, mut peer, mut link) = secure_open(&mut h);
    h.core.tcp_halfclose(h.now, id).unwrap();
    let out = h.drain();
    link.run(&mut h, id, &mut peer, out);
    assert!(peer.closed_notify && link.fin_from_us);
    assert_eq!(state(&h, id), ReadyState::HalfClosed);
    // Data still arrives after our close_notify...
    peer.send(b"still here");
    link.run(&mut h, id, &mut peer, vec![]);
    assert_eq!(
        link.take_events(),
        [Event::Data {
            id,
            data: Data::Text("still here".into())
        }]
    );
    // ...and a corrupt record is an error (rustls would trip a debug assertion on it).
    let garbage = Bytes::from_static(b"\x17\x03\x03\x00\x05hello");
    let out = h.input(Input::Received { id, data: garbage });
    assert!(
        matches!(&out[..], [r, Output::Event(Event::Error { error, .. }), c]
        if *r == release(id) && error.kind() == SocketErrorKind::SecurityProtocol && *c == close(id)),
        "{out:?}"
    );
}
