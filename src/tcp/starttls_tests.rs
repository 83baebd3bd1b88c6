//! `upgradeToSecure` (STARTTLS) against plaintext injection, as exact transcripts: what was
//! read but not yet delivered when the app calls it ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket), RFC 3207 §4.2, Postfix
//! CVE-2011-0411), on a client and on an accepted socket; and the state check that comes
//! before anything else, one test per phase.

use bytes::Bytes;

use super::tls_tests::{connect, plain_open, secure, secure_open, state};
use crate::testkit::tls::{server_config, Ca, Peer};
use crate::testkit::*;
use crate::*;

/// The `Error` that ends an upgrade called with `n` bytes of plaintext read but not delivered.
fn injected(id: TcpId, n: usize) -> Output {
    error(
        id,
        ErrorCode::ProtocolOther,
        &format!(
            "upgradeToSecure() was called with {n} bytes of plaintext read but not yet \
             delivered: the peer sent past the STARTTLS point (a plaintext injection, RFC 3207 \
             §4.2); they are dropped and the upgrade fails closed"
        ),
    )
}

fn received(h: &mut Harness, id: TcpId, data: &'static [u8]) {
    let data = Bytes::from_static(data);
    h.core
        .handle_input(h.now, Input::Received { id, data })
        .expect("a read accepted");
}

/// Polls the fail-closed ending one output at a time: `Release`, then `Error` with
/// `readyState` already `closed`, then `Close`, and the id dead after it.
#[track_caller]
fn fails_closed(h: &mut Harness, id: TcpId, undelivered: usize) {
    let first = h.core.poll_output();
    assert!(first == release(id), "Release first, got {}", short(&first));
    assert_eq!(h.core.poll_output(), injected(id, undelivered));
    assert_eq!(state(h, id), ReadyState::Closed, "closed at the Error");
    assert_eq!(h.core.poll_output(), close(id));
    assert!(h.core.tcp(id).is_none(), "the id is dead after Close");
    assert_eq!(
        h.drain(),
        [],
        "nothing after Close: no Data, no ClientHello"
    );
}

// ---- client side ---------------------------------------------------------------------------

#[test]
fn a_read_not_yet_delivered_at_the_call_is_dropped_and_the_upgrade_fails_closed() {
    let mut h = Harness::new();
    let ca = Ca::new("test CA");
    let (id, _peer, _link) = plain_open(&mut h, &ca);
    // The I/O layer reads twice before the app polls: the go-ahead, then the injection.
    received(&mut h, id, b"220 go ahead\r\n");
    received(&mut h, id, b"250 INJECTED\r\n");
    assert_eq!(h.core.poll_output(), text(id, "220 go ahead\r\n"));
    // The app answers the go-ahead at once, as STARTTLS clients do.
    assert_eq!(h.core.tcp_upgrade_to_secure(id), Ok(()));
    assert!(h.core.tcp(id).unwrap().ssl(), "ssl is true at once");
    fails_closed(&mut h, id, 14);
}

#[test]
fn data_held_while_suspended_at_the_call_is_dropped_and_the_upgrade_fails_closed() {
    let mut h = Harness::new();
    let ca = Ca::new("test CA");
    let (id, _peer, _link) = plain_open(&mut h, &ca);
    assert_eq!(
        h.input(recv(id, b"220 go ahead\r\n")),
        [text(id, "220 go ahead\r\n")]
    );
    h.core.tcp_suspend(id).unwrap();
    assert_eq!(h.drain(), [reading(id, false)]);
    // A read that was in flight when the app suspended: held, not delivered.
    assert_eq!(h.input(recv(id, b"250 INJECTED\r\n")), []);
    assert_eq!(h.core.tcp_upgrade_to_secure(id), Ok(()));
    // The socket ends even while suspended (as on any failure).
    fails_closed(&mut h, id, 14);
}

#[test]
fn the_start_of_a_character_cut_by_the_read_counts_as_undelivered() {
    let mut h = Harness::new();
    let ca = Ca::new("test CA");
    let (id, _peer, _link) = plain_open(&mut h, &ca);
    // "€" is E2 82 AC: the decoder holds its first two bytes, which reached no Data.
    let out = h.input(recv(id, b"220 go ahead\r\n\xe2\x82"));
    assert_eq!(out, [text(id, "220 go ahead\r\n")]);
    assert_eq!(h.core.tcp_upgrade_to_secure(id), Ok(()));
    fails_closed(&mut h, id, 2);
}

#[test]
fn plaintext_delivered_before_the_call_stays_delivered_and_the_handshake_runs() {
    let mut h = Harness::new();
    let ca = Ca::new("test CA");
    let (id, mut peer, mut link) = plain_open(&mut h, &ca);
    received(&mut h, id, b"250-hello\r\n");
    received(&mut h, id, b"220 go ahead\r\n");
    assert_eq!(
        h.drain(),
        [text(id, "250-hello\r\n"), text(id, "220 go ahead\r\n")]
    );
    assert_eq!(h.core.tcp_upgrade_to_secure(id), Ok(()));
    let out = h.drain();
    assert!(
        matches!(&out[..], [Output::Action(Action::Write { data, .. })] if data[0] == 0x16),
        "the ClientHello alone: {out:?}"
    );
    link.run(&mut h, id, &mut peer, out);
    assert!(!peer.conn.is_handshaking());
    peer.send(b"250 secret\r\n");
    link.run(&mut h, id, &mut peer, vec![]);
    assert_eq!(
        link.take_events(),
        [text_event(id, "250 secret\r\n")],
        "only TLS plaintext after the call"
    );
}

#[test]
fn a_large_injection_read_in_two_chunks_never_reaches_the_app_after_the_call() {
    // The reproduction: 126 kB of injected lines behind the go-ahead in one write, read
    // 64 KiB at a time before the app polls.
    let mut h = Harness::new();
    let ca = Ca::new("test CA");
    let (id, _peer, _link) = plain_open(&mut h, &ca);
    let mut wire = b"220 go ahead\r\n".to_vec();
    while wire.len() < 14 + 126_000 {
        wire.extend_from_slice(b"250 INJECTED\r\n");
    }
    let (first, second) = wire.split_at(64 << 10);
    for chunk in [first, second] {
        let data = Bytes::copy_from_slice(chunk);
        h.core
            .handle_input(h.now, Input::Received { id, data })
            .unwrap();
    }
    // The first chunk's Data: the go-ahead and the injection's start, delivered before the
    // call (an app parsing lines sees bytes after its go-ahead; sockcat refuses them).
    let Output::Event(Event::Data { data, .. }) = h.core.poll_output() else {
        panic!("the first read's Data first")
    };
    assert!(data.as_bytes().starts_with(b"220 go ahead\r\n"));
    assert_eq!(h.core.tcp_upgrade_to_secure(id), Ok(()));
    fails_closed(&mut h, id, second.len());
}

// ---- server side (an accepted socket of a server holding a certificate) ---------------------

/// A plain server with a TLS config and one socket it accepted, open and reading.
fn accepted(h: &mut Harness, ca: &Ca) -> TcpId {
    let options = ServerOptions {
        local_address: Some(ip("127.0.0.1")),
        local_port: Some(25),
        tls_config: Some(server_config(ca.leaf(&["127.0.0.1"], 2035))),
        ..ServerOptions::default()
    };
    let server = h.core.server_listen(h.now, options).unwrap();
    h.drain();
    let local = addr("127.0.0.1:25");
    let out = h.input(Input::Listening { id: server, local });
    assert_eq!(out, [open(server), reading(server, true)]);
    let remote = addr("127.0.0.1:50000");
    let Ok(Accepted::Socket(id)) = h.core.handle_accepted(h.now, server, local, remote) else {
        panic!("accepted")
    };
    assert_eq!(h.drain(), [connect_event(server, id), reading(id, true)]);
    id
}

#[test]
fn server_side_commands_pipelined_after_starttls_fail_the_upgrade_closed() {
    let mut h = Harness::new();
    let ca = Ca::new("test CA");
    let id = accepted(&mut h, &ca);
    received(&mut h, id, b"STARTTLS\r\n");
    received(&mut h, id, b"MAIL FROM:<evil@example>\r\n");
    assert_eq!(h.core.poll_output(), text(id, "STARTTLS\r\n"));
    assert_eq!(h.core.tcp_send(id, "220 go ahead\r\n"), Ok(true));
    assert_eq!(h.core.tcp_upgrade_to_secure(id), Ok(()));
    assert!(h.core.tcp(id).unwrap().ssl());
    // Not even the go-ahead is written: the connection is abandoned.
    fails_closed(&mut h, id, 26);
}

#[test]
fn server_side_commands_held_while_suspended_fail_the_upgrade_closed() {
    let mut h = Harness::new();
    let ca = Ca::new("test CA");
    let id = accepted(&mut h, &ca);
    assert_eq!(
        h.input(recv(id, b"STARTTLS\r\n")),
        [text(id, "STARTTLS\r\n")]
    );
    h.core.tcp_suspend(id).unwrap();
    assert_eq!(h.drain(), [reading(id, false)]);
    assert_eq!(h.input(recv(id, b"RCPT TO:<x@example>\r\n")), []);
    h.core.tcp_send(id, "220 go ahead\r\n").unwrap();
    assert_eq!(h.core.tcp_upgrade_to_secure(id), Ok(()));
    fails_closed(&mut h, id, 21);
}

#[test]
fn server_side_upgrade_after_every_command_was_delivered_handshakes() {
    let mut h = Harness::new();
    let ca = Ca::new("test CA");
    let id = accepted(&mut h, &ca);
    assert_eq!(
        h.input(recv(id, b"STARTTLS\r\n")),
        [text(id, "STARTTLS\r\n")]
    );
    h.core.tcp_send(id, "220 go ahead\r\n").unwrap();
    h.core.tcp_upgrade_to_secure(id).unwrap();
    assert_eq!(h.drain(), [write(id, b"220 go ahead\r\n")]);
    // The client's ClientHello, after the call: to TLS, which answers.
    let mut client = Peer::client(ca.client_config(), "127.0.0.1");
    let hello = Bytes::from(client.take());
    let written = h.input(Input::Written { id, len: 14 });
    assert_eq!(written, []);
    let out = h.input(Input::Received { id, data: hello });
    assert!(
        matches!(&out[..], [Output::Action(Action::Write { data, .. })] if data[0] == 0x16),
        "the server's flight: {out:?}"
    );
}

// ---- the state check comes first (BEHAVIOUR §1; issue: a phase the app cannot see) ---------

/// `upgradeToSecure()` is refused with `InvalidStateError` and changes nothing.
#[track_caller]
fn refused_in(h: &mut Harness, id: TcpId, ready_state: &str) {
    let before = h.core.tcp(id).map(|s| (s.ready_state(), s.ssl()));
    if let Some((state, _)) = before {
        assert_eq!(state.as_str(), ready_state);
    }
    let e = h.core.tcp_upgrade_to_secure(id).unwrap_err();
    assert_eq!(e.exception(), DomException::InvalidStateError, "{e}");
    assert_eq!(h.core.tcp(id).map(|s| (s.ready_state(), s.ssl())), before);
    assert_eq!(h.drain(), [], "nothing queued");
}

#[test]
fn upgrade_is_refused_unless_open_and_not_half_closed() {
    let mut h = Harness::new();
    let ca = Ca::new("test CA");
    let c = h
        .core
        .tcp_open(h.now, "127.0.0.1", 1, TcpOptions::default())
        .unwrap();
    h.drain();
    let refused = |h: &mut Harness, id| h.core.tcp_upgrade_to_secure(id).unwrap_err().exception();
    assert_eq!(refused(&mut h, c), DomException::InvalidStateError);
    let (hc, _, _) = plain_open(&mut h, &ca);
    h.core.tcp_halfclose(h.now, hc).unwrap();
    h.drain();
    assert_eq!(refused(&mut h, hc), DomException::InvalidStateError);
    let opts = TcpOptions {
        allow_half_open: true,
        ..TcpOptions::default()
    };
    let (pf, _) = connect(&mut h, "127.0.0.1", opts);
    h.input(Input::Eof { id: pf });
    assert_eq!(refused(&mut h, pf), DomException::InvalidStateError);
    assert!(!h.core.tcp(pf).unwrap().ssl());
    h.drain();
    let (twice, _, _) = plain_open(&mut h, &ca);
    h.core.tcp_upgrade_to_secure(twice).unwrap();
    let first = h.drain();
    h.core.tcp_upgrade_to_secure(twice).unwrap();
    assert_eq!(h.drain(), [], "already secure: nothing");
    assert_eq!(first.len(), 1, "one ClientHello");
}

#[test]
fn upgrade_while_resolving_is_invalid_state() {
    for secure_transport in [false, true] {
        let mut h = Harness::new();
        let options = TcpOptions {
            use_secure_transport: secure_transport,
            ..TcpOptions::default()
        };
        let id = h.core.tcp_open(h.now, "localhost", 443, options).unwrap();
        assert!(matches!(
            &h.drain()[..],
            [Output::Action(Action::Resolve { .. })]
        ));
        refused_in(&mut h, id, "connecting");
    }
}

#[test]
fn upgrade_while_the_connect_is_pending_is_invalid_state() {
    for secure_transport in [false, true] {
        let mut h = Harness::new();
        let options = TcpOptions {
            use_secure_transport: secure_transport,
            ..TcpOptions::default()
        };
        let id = h.core.tcp_open(h.now, "127.0.0.1", 443, options).unwrap();
        assert!(matches!(
            &h.drain()[..],
            [Output::Action(Action::Connect { .. })]
        ));
        refused_in(&mut h, id, "connecting");
    }
}

#[test]
fn upgrade_during_the_handshake_of_a_secure_socket_is_invalid_state() {
    let mut h = Harness::new();
    let ca = Ca::new("test CA");
    let (id, out) = connect(&mut h, "localhost", secure(ca.client_config()));
    assert!(
        matches!(&out[0], Output::Action(Action::Write { .. })),
        "{out:?}"
    );
    refused_in(&mut h, id, "connecting");
}

#[test]
fn upgrade_during_the_handshake_of_a_secure_servers_socket_is_invalid_state() {
    let mut h = Harness::new();
    let ca = Ca::new("test CA");
    let options = ServerOptions {
        local_address: Some(ip("127.0.0.1")),
        local_port: Some(465),
        use_secure_transport: true,
        tls_config: Some(server_config(ca.leaf(&["127.0.0.1"], 2035))),
        ..ServerOptions::default()
    };
    let server = h.core.server_listen(h.now, options).unwrap();
    h.drain();
    let local = addr("127.0.0.1:465");
    h.input(Input::Listening { id: server, local });
    let remote = addr("127.0.0.1:50000");
    let Ok(Accepted::Socket(id)) = h.core.handle_accepted(h.now, server, local, remote) else {
        panic!("accepted")
    };
    assert_eq!(
        h.drain(),
        [reading(id, true)],
        "no Connect before the handshake"
    );
    refused_in(&mut h, id, "connecting");
}

#[test]
fn upgrade_when_open_and_already_secure_does_nothing() {
    let mut h = Harness::new();
    let (id, _peer, _link) = secure_open(&mut h);
    assert_eq!(h.core.tcp_upgrade_to_secure(id), Ok(()));
    assert_eq!(h.drain(), []);
    assert_eq!(state(&h, id), ReadyState::Open);
}

#[test]
fn upgrade_when_halfclosed_is_invalid_state() {
    let mut h = Harness::new();
    let ca = Ca::new("test CA");
    let (id, _peer, _link) = plain_open(&mut h, &ca);
    h.core.tcp_halfclose(h.now, id).unwrap();
    assert_eq!(h.drain(), [shutdown(id)]);
    refused_in(&mut h, id, "halfclosed");
}

#[test]
fn upgrade_when_closing_is_invalid_state() {
    let mut h = Harness::new();
    let ca = Ca::new("test CA");
    let (id, _peer, _link) = plain_open(&mut h, &ca);
    h.core.tcp_close(h.now, id).unwrap();
    h.drain();
    refused_in(&mut h, id, "closing");
}

#[test]
fn upgrade_when_closed_is_invalid_state() {
    let mut h = Harness::new();
    let ca = Ca::new("test CA");
    let (id, _peer, _link) = plain_open(&mut h, &ca);
    let input = Input::Failed {
        id,
        error: std::io::ErrorKind::ConnectionReset,
    };
    h.core.handle_input(h.now, input).unwrap();
    // `closed` while its Error and Close wait to be delivered...
    assert_eq!(state(&h, id), ReadyState::Closed);
    let e = h.core.tcp_upgrade_to_secure(id).unwrap_err();
    assert_eq!(e.exception(), DomException::InvalidStateError);
    h.drain();
    // ...and after Close.
    refused_in(&mut h, id, "closed");
}

/// An output's debug form, cut (a large `Data` would flood the failure message).
fn short(out: &Output) -> String {
    let s = format!("{out:?}");
    match s.char_indices().nth(160) {
        Some((at, _)) => format!("{}... ({} chars)", &s[..at], s.len()),
        None => s,
    }
}

fn recv(id: TcpId, data: &'static [u8]) -> Input {
    Input::Received {
        id,
        data: Bytes::from_static(data),
    }
}

fn text_event(id: TcpId, s: &str) -> Event {
    Event::Data {
        id,
        data: Data::Text(s.to_owned()),
    }
}
