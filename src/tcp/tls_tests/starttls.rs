//! `upgradeToSecure` (STARTTLS) on a plain socket: plaintext first, then the handshake, then
//! records ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket)).

use super::*;

#[test]
fn starttls_writes_queued_bytes_as_plaintext_then_the_handshake_then_records() {
    let mut h = Harness::new();
    let ca = Ca::new("test CA");
    let (id, mut peer, mut link) = plain_open(&mut h, &ca);
    assert_eq!(h.core.tcp_send(id, "STARTTLS\r\n"), Ok(true));
    let first = h.drain();
    assert_eq!(
        first,
        [write(id, b"STARTTLS\r\n")],
        "in flight, not yet written"
    );
    h.core.tcp_upgrade_to_secure(id).unwrap();
    assert!(h.core.tcp(id).unwrap().ssl(), "ssl is true at once");
    assert_eq!(h.drain(), [], "the ClientHello waits for the plaintext");
    assert_eq!(h.core.tcp_send(id, "secret"), Ok(true));
    assert_eq!(buffered(&h, id), 10 + 6);
    assert_eq!(h.drain(), []);
    link.peer_plain_first = 10;
    link.run(&mut h, id, &mut peer, first);
    assert_eq!(link.peer_plain, b"STARTTLS\r\n");
    assert_eq!(
        link.wire[10], 0x16,
        "a handshake record follows the plaintext at once"
    );
    assert!(
        !link.wire.windows(6).any(|w| w == b"secret"),
        "sent after the call: encrypted"
    );
    assert_eq!(peer.plain, b"secret");
    assert_eq!(buffered(&h, id), 0);
    assert_eq!(link.events, [], "no Open for an upgrade");
    assert_eq!(state(&h, id), ReadyState::Open);
}

#[test]
fn starttls_counts_buffered_amount_until_the_records_are_written_and_drains_once() {
    let config = Config {
        high_water_mark: 4,
        ..Config::default()
    };
    let mut h = Harness::with_config(config);
    let ca = Ca::new("test CA");
    let (id, mut peer, mut link) = plain_open(&mut h, &ca);
    h.core.tcp_upgrade_to_secure(id).unwrap();
    let out = h.drain();
    assert_eq!(h.core.tcp_send(id, "0123456789"), Ok(false));
    link.run(&mut h, id, &mut peer, out);
    assert_eq!(peer.plain, b"0123456789");
    assert_eq!(link.events, [Event::Drain { id: id.into() }]);
    assert_eq!(link.buffered_at_drain, [0], "exactly 0 when Drain fires");
}

#[test]
fn received_bytes_before_the_call_are_plaintext_and_after_it_never() {
    let mut h = Harness::new();
    let ca = Ca::new("test CA");
    let (id, _peer, _link) = plain_open(&mut h, &ca);
    let out = h.input(Input::Received {
        id,
        data: Bytes::from_static(b"220 go ahead\r\n"),
    });
    assert_eq!(out, [text(id, "220 go ahead\r\n")]);
    h.core.tcp_upgrade_to_secure(id).unwrap();
    h.drain();
    // A plaintext injection after the call goes to TLS, which refuses it; never to the app.
    let out = h.input(Input::Received {
        id,
        data: Bytes::from_static(b"250 INJECTED\r\n"),
    });
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::Event(Event::Data { .. }))),
        "{out:?}"
    );
    assert!(
        matches!(&out[..], [r, Output::Event(Event::Error { error, .. }), c]
        if *r == release(id) && error.kind() == SocketErrorKind::SecurityProtocol && *c == close(id)),
        "{out:?}"
    );
}

#[test]
fn bytes_sent_after_the_upgrade_never_join_plaintext_still_queued() {
    let mut h = Harness::new();
    let ca = Ca::new("test CA");
    let (id, mut peer, mut link) = plain_open(&mut h, &ca);
    h.core.tcp_send(id, "EHLO a\r\n").unwrap(); // in flight
    h.core.tcp_send(id, "STARTTLS\r\n").unwrap(); // queued behind it, small
    let first = h.drain();
    h.core.tcp_upgrade_to_secure(id).unwrap();
    h.core.tcp_send(id, "secret").unwrap(); // small too: must not be merged into the above
    link.peer_plain_first = 8 + 10;
    link.run(&mut h, id, &mut peer, first);
    assert_eq!(link.peer_plain, b"EHLO a\r\nSTARTTLS\r\n");
    assert!(!link.wire.windows(6).any(|w| w == b"secret"));
    assert_eq!(peer.plain, b"secret");
}
