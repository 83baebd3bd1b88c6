//! TLS through the core with no sockets: our socket against a rustls peer driven by hand
//! ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket) TLS rules, §4 Security* names).

use std::collections::VecDeque;

use bytes::Bytes;

use crate::testkit::tls::{client_config_with, server_config, server_config_with, Ca, Peer};
use crate::testkit::*;
use crate::*;

/// Both ends of the wire between our socket and the peer, and what crossed it.
#[derive(Default)]
pub(super) struct Link {
    /// Bytes our socket writes that the peer reads as plaintext before its TLS starts
    /// (a STARTTLS server reading the command).
    pub(super) peer_plain_first: usize,
    pub(super) peer_plain: Vec<u8>,
    pub(super) peer_error: Option<rustls::Error>,
    /// Every write of ours, in order.
    pub(super) wire: Vec<u8>,
    /// Ciphertext (or plaintext) on its way to us.
    pub(super) to_us: VecDeque<u8>,
    /// Largest read handed to the core.
    pub(super) chunk: usize,
    pub(super) reading: bool,
    pub(super) fin_from_us: bool,
    pub(super) released: bool,
    pub(super) events: Vec<Event>,
    pub(super) buffered_at_drain: Vec<usize>,
}

impl Link {
    fn new() -> Link {
        Link {
            chunk: 16 << 10,
            ..Link::default()
        }
    }

    /// Plays the network until neither side has anything more to say.
    pub(super) fn run(&mut self, h: &mut Harness, id: TcpId, peer: &mut Peer, outs: Vec<Output>) {
        let mut pending: VecDeque<Output> = outs.into();
        for _ in 0..1_000_000 {
            while let Some(out) = pending.pop_front() {
                match out {
                    Output::Action(Action::Write { id: w, data }) if w == id => {
                        self.wire.extend_from_slice(&data);
                        let plain = self.peer_plain_first.min(data.len());
                        self.peer_plain_first -= plain;
                        self.peer_plain.extend_from_slice(&data[..plain]);
                        if self.peer_error.is_none() {
                            self.peer_error = peer.feed(&data[plain..]).err();
                        }
                        pending.extend(h.input(Input::Written {
                            id,
                            len: data.len(),
                        }));
                    }
                    Output::Action(Action::SetReading { enabled, .. }) => self.reading = enabled,
                    Output::Action(Action::Shutdown { .. }) => self.fin_from_us = true,
                    // The link delivers every write at once: the peer's TCP has it all.
                    Output::Action(Action::QueryUnacked { id }) => {
                        pending.extend(h.input(unacked(id, 0)));
                    }
                    Output::Action(Action::Release { .. }) => self.released = true,
                    Output::Action(other) => panic!("unexpected action {other:?}"),
                    Output::Event(event) => {
                        if let Event::Drain { .. } = event {
                            self.buffered_at_drain.push(buffered(h, id));
                        }
                        self.events.push(event);
                    }
                    Output::Timeout(_) => unreachable!(),
                }
            }
            // After its own error the peer still sends its alert.
            self.to_us.extend(peer.take());
            if self.reading && !self.released && !self.to_us.is_empty() {
                let n = self.chunk.min(self.to_us.len());
                let data: Vec<u8> = self.to_us.drain(..n).collect();
                pending.extend(h.input(Input::Received {
                    id,
                    data: data.into(),
                }));
                continue;
            }
            return;
        }
        panic!("the link did not settle");
    }

    /// The data events' bytes.
    pub(super) fn data(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for e in &self.events {
            if let Event::Data { data, .. } = e {
                out.extend_from_slice(data.as_bytes());
            }
        }
        out
    }

    pub(super) fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

pub(super) fn buffered(h: &Harness, id: TcpId) -> usize {
    h.core.tcp(id).map_or(0, |s| s.buffered_amount())
}

pub(super) fn state(h: &Harness, id: TcpId) -> ReadyState {
    h.core.tcp(id).expect("live socket").ready_state()
}

fn ev_error(id: TcpId, code: ErrorCode) -> impl Fn(&Event) -> bool {
    move |e| matches!(e, Event::Error { id: i, error } if *i == SocketId::from(id) && error.code == code)
}

/// Opens `host` (resolved to 127.0.0.1) and connects; returns the outputs after `Connected`.
pub(super) fn connect(h: &mut Harness, host: &str, options: TcpOptions) -> (TcpId, Vec<Output>) {
    let id = h.core.tcp_open(h.now, host, 443, options).unwrap();
    let out = h.drain();
    let attempt = match &out[..] {
        [Output::Action(Action::Resolve { .. })] => {
            let result = Ok(vec!["127.0.0.1".parse().unwrap()]);
            match &h.input(Input::Resolved {
                id: id.into(),
                result,
            })[..]
            {
                [Output::Action(Action::Connect { attempt, .. })] => *attempt,
                other => panic!("{other:?}"),
            }
        }
        [Output::Action(Action::Connect { attempt, .. })] => *attempt,
        other => panic!("{other:?}"),
    };
    let out = h.input(Input::Connected {
        id,
        attempt,
        local: addr("127.0.0.1:40000"),
    });
    (id, out)
}

pub(super) fn secure(config: std::sync::Arc<crate::tls::ClientConfig>) -> TcpOptions {
    TcpOptions {
        use_secure_transport: true,
        tls_config: Some(config),
        ..TcpOptions::default()
    }
}

/// A secure socket to "localhost", open, with its peer and link.
pub(super) fn secure_open(h: &mut Harness) -> (TcpId, Peer, Link) {
    secure_open_as(h, BinaryType::String)
}

fn secure_open_as(h: &mut Harness, binary_type: BinaryType) -> (TcpId, Peer, Link) {
    let ca = Ca::new("test CA");
    let mut peer = Peer::server(server_config(ca.leaf(&["localhost"], 2035)));
    let options = TcpOptions {
        binary_type,
        ..secure(ca.client_config())
    };
    let (id, out) = connect(h, "localhost", options);
    let mut link = Link::new();
    link.run(h, id, &mut peer, out);
    assert_eq!(link.take_events(), [Event::Open { id: id.into() }]);
    (id, peer, link)
}

#[test]
fn use_secure_transport_opens_only_after_the_handshake() {
    let mut h = Harness::new();
    let ca = Ca::new("test CA");
    let mut peer = Peer::server(server_config(ca.leaf(&["localhost"], 2035)));
    let (id, out) = connect(&mut h, "localhost", secure(ca.client_config()));
    assert_eq!(state(&h, id), ReadyState::Connecting);
    assert!(h.core.tcp(id).unwrap().ssl());
    // The ClientHello goes out and reading starts; no Open yet.
    assert!(
        matches!(&out[..], [Output::Action(Action::Write { data, .. }), r]
        if data[0] == 0x16 && *r == reading(id, true)),
        "{out:?}"
    );
    assert_eq!(
        h.core.tcp_send(id, "early").unwrap_err().exception(),
        DomException::InvalidStateError
    );
    let mut link = Link::new();
    link.run(&mut h, id, &mut peer, out);
    assert_eq!(link.events, [Event::Open { id: id.into() }]);
    assert_eq!(state(&h, id), ReadyState::Open);
    assert!(!peer.conn.is_handshaking());
}

#[test]
fn data_flows_encrypted_both_ways() {
    let mut h = Harness::new();
    let (id, mut peer, mut link) = secure_open(&mut h);
    let wire_before = link.wire.len();
    assert_eq!(h.core.tcp_send(id, "hello, peer"), Ok(true));
    let out = h.drain();
    link.run(&mut h, id, &mut peer, out);
    assert_eq!(peer.plain, b"hello, peer");
    let wire = &link.wire[wire_before..];
    assert!(
        !wire.windows(5).any(|w| w == b"hello"),
        "plaintext never on the wire"
    );
    peer.send("hello, socket".as_bytes());
    link.run(&mut h, id, &mut peer, vec![]);
    assert_eq!(
        link.take_events(),
        [Event::Data {
            id,
            data: Data::Text("hello, socket".into())
        }]
    );
}

#[test]
fn each_certificate_failure_has_its_name_and_closes_before_open() {
    let ca = Ca::new("test CA");
    let other_ca = Ca::new("other CA");
    let tls13 = Some(vec![&rustls::version::TLS13]);
    let tls12 = Some(vec![&rustls::version::TLS12]);
    let cases = [
        (
            "untrusted",
            server_config(other_ca.leaf(&["localhost"], 2035)),
            ca.client_config(),
            ErrorCode::UntrustedCertificateIssuer,
            "SecurityUntrustedCertificateIssuerError",
        ),
        (
            "expired",
            server_config(ca.leaf(&["localhost"], 2025)),
            ca.client_config(),
            ErrorCode::ExpiredCertificate,
            "SecurityExpiredCertificateError",
        ),
        (
            "mismatch",
            server_config(ca.leaf(&["other.example"], 2035)),
            ca.client_config(),
            ErrorCode::CertificateDomainMismatch,
            "SecurityCertificateDomainMismatchError",
        ),
        (
            "version",
            server_config_with(ca.leaf(&["localhost"], 2035), tls12),
            client_config_with(ca.roots(), tls13),
            ErrorCode::UnsupportedTlsVersion,
            "SecurityUnsupportedTLSVersionError",
        ),
    ];
    for (case, server, client, code, name) in cases {
        let mut h = Harness::new();
        let mut peer = Peer::server(server);
        let (id, out) = connect(&mut h, "localhost", secure(client));
        let mut link = Link::new();
        link.run(&mut h, id, &mut peer, out);
        assert!(link.released, "{case}");
        assert_eq!(link.events.len(), 2, "{case}: {:?}", link.events);
        assert!(
            ev_error(id, code)(&link.events[0]),
            "{case}: {:?}",
            link.events
        );
        let Event::Error { error, .. } = &link.events[0] else {
            unreachable!()
        };
        assert_eq!(error.name(), name, "{case}");
        assert_eq!(link.events[1], Event::Close { id: id.into() }, "{case}");
        assert!(h.core.tcp(id).is_none(), "{case}");
    }
}

/// A verifier that accepts any certificate, as an embedder could build with rustls's
/// `dangerous()` API ([BEHAVIOUR §5](crate::behaviour#5-trust): honoured as given; sockstate has no such switch itself).
#[derive(Debug)]
struct AcceptAnything(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[test]
fn a_config_built_with_rustls_dangerous_api_is_honoured_as_given() {
    // What the docs of `TcpOptions::tls_config` say: no switch of ours turns verification
    // off, but an embedder's own config is used as it is.
    let untrusted = Ca::new("nobody trusts this CA");
    let provider = crate::tls::provider();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(AcceptAnything(provider)))
        .with_no_client_auth();
    let mut h = Harness::new();
    let mut peer = Peer::server(server_config(untrusted.leaf(&["localhost"], 2035)));
    let (id, out) = connect(&mut h, "localhost", secure(std::sync::Arc::new(config)));
    let mut link = Link::new();
    link.run(&mut h, id, &mut peer, out);
    assert_eq!(link.events, [Event::Open { id: id.into() }]);
    // The same server through a config of ours (trusting another CA) is refused.
    let mut h = Harness::new();
    let mut peer = Peer::server(server_config(untrusted.leaf(&["localhost"], 2035)));
    let ours = Ca::new("test CA").client_config();
    let (id, out) = connect(&mut h, "localhost", secure(ours));
    let mut link = Link::new();
    link.run(&mut h, id, &mut peer, out);
    assert!(
        ev_error(id, ErrorCode::UntrustedCertificateIssuer)(&link.events[0]),
        "{:?}",
        link.events
    );
}

#[test]
fn an_ip_host_is_verified_against_the_ip_address() {
    let mut h = Harness::new();
    let ca = Ca::new("test CA");
    let mut peer = Peer::server(server_config(ca.leaf(&["127.0.0.1"], 2035)));
    let (id, out) = connect(&mut h, "127.0.0.1", secure(ca.client_config()));
    let mut link = Link::new();
    link.run(&mut h, id, &mut peer, out);
    assert_eq!(link.events, [Event::Open { id: id.into() }]);
}

#[test]
fn the_handshake_is_bounded_by_the_connect_timeout() {
    let mut h = Harness::new();
    let ca = Ca::new("test CA");
    let (id, _) = connect(&mut h, "localhost", secure(ca.client_config()));
    let out = h.advance(Config::default().connect_timeout);
    assert_eq!(
        out,
        [
            release(id),
            error(
                id,
                ErrorCode::NetworkTimeout,
                "the TLS handshake did not complete within the connect timeout"
            ),
            close(id)
        ]
    );
}

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

// ---- upgradeToSecure (STARTTLS) ------------------------------------------------------------

/// A plain socket to 127.0.0.1, open, whose peer will start TLS as a server.
pub(super) fn plain_open(h: &mut Harness, ca: &Ca) -> (TcpId, Peer, Link) {
    let options = TcpOptions {
        tls_config: Some(ca.client_config()),
        ..TcpOptions::default()
    };
    let (id, out) = connect(h, "127.0.0.1", options);
    assert_eq!(out, [open(id), reading(id, true)]);
    let peer = Peer::server(server_config(ca.leaf(&["127.0.0.1"], 2035)));
    let mut link = Link::new();
    link.reading = true;
    (id, peer, link)
}

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
fn large_transfers_both_ways_arrive_whole_and_drain_at_zero() {
    let config = Config {
        send_buffer_limit: 64 << 20,
        ..Config::default()
    };
    let mut h = Harness::with_config(config);
    let (id, mut peer, mut link) = secure_open_as(&mut h, BinaryType::ArrayBuffer);
    link.chunk = 37_000; // reads that cut records anywhere
    let payload: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut falses = 0;
    for piece in payload.chunks(100_000) {
        if !h.core.tcp_send(id, piece).unwrap() {
            falses += 1;
        }
    }
    assert!(falses > 0);
    assert_eq!(buffered(&h, id), payload.len());
    let out = h.drain();
    link.run(&mut h, id, &mut peer, out);
    assert!(peer.plain == payload, "the peer got every byte, in order");
    assert_eq!(link.take_events(), [Event::Drain { id: id.into() }]);
    assert_eq!(link.buffered_at_drain, [0]);
    // And back, in arraybuffer-sized pieces the app reassembles.
    peer.send(&payload);
    link.run(&mut h, id, &mut peer, vec![]);
    let got = link.data();
    assert_eq!(got.len(), payload.len());
    assert!(got == payload, "we got every byte, in order");
}

#[test]
fn small_plaintext_has_a_buffer_of_its_own_and_large_plaintext_is_part_of_a_kept_block() {
    let mut h = Harness::new();
    let (id, mut peer, mut link) = secure_open_as(&mut h, BinaryType::ArrayBuffer);
    link.chunk = 64 << 10;
    let parts = |link: &mut Link| -> Vec<Bytes> {
        (link.take_events().into_iter())
            .map(|e| match e {
                Event::Data {
                    data: Data::Bytes(b),
                    ..
                } => b,
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    };
    peer.send(b"ping");
    link.run(&mut h, id, &mut peer, vec![]);
    let small = parts(&mut link);
    assert_eq!(small, [Bytes::from_static(b"ping")]);
    assert!(
        small[0].is_unique(),
        "its own allocation: keeping it keeps no block alive"
    );
    let large = vec![7u8; 100 << 10];
    peer.send(&large);
    link.run(&mut h, id, &mut peer, vec![]);
    let got = parts(&mut link);
    assert_eq!(got.concat(), large);
    assert!(
        got.iter().all(|b| b.len() <= 4 << 10 || !b.is_unique()),
        "large parts share the block the core keeps for the next receive"
    );
    assert!(got.iter().any(|b| b.len() > 4 << 10));
}

#[test]
fn a_client_certificate_is_presented_when_the_server_asks() {
    let ca = Ca::new("test CA");
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        std::sync::Arc::new(ca.roots()),
        crate::tls::provider(),
    )
    .build()
    .unwrap();
    let (chain, key) = ca.leaf(&["localhost"], 2035);
    let server = rustls::ServerConfig::builder_with_details(
        crate::tls::provider(),
        std::sync::Arc::new(crate::testkit::tls::FixedTime),
    )
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_client_cert_verifier(verifier)
    .with_single_cert(chain, key)
    .unwrap();
    let server = std::sync::Arc::new(server);
    let client_cert = ca.leaf(&["client.example"], 2035);
    for (with_cert, opens) in [(true, true), (false, false)] {
        let client = crate::tls::client_config(crate::tls::ClientOptions {
            roots: Some(ca.roots()),
            client_auth: with_cert.then(|| (client_cert.0.clone(), client_cert.1.clone_key())),
            time: Some(std::sync::Arc::new(crate::testkit::tls::FixedTime)),
            ..Default::default()
        })
        .unwrap();
        let mut h = Harness::new();
        let mut peer = Peer::server(server.clone());
        let (id, out) = connect(&mut h, "localhost", secure(client));
        let mut link = Link::new();
        link.run(&mut h, id, &mut peer, out);
        if opens {
            assert_eq!(link.events, [Event::Open { id: id.into() }]);
            assert!(peer.conn.peer_certificates().is_some_and(|c| c.len() == 1));
        } else {
            // TLS 1.3: the client opens, then learns of the refusal from the server's alert.
            assert!(
                link.events.contains(&Event::Close { id: id.into() }),
                "{:?}",
                link.events
            );
            assert!(
                link.events
                    .iter()
                    .any(|e| matches!(e, Event::Error { error, .. }
                if error.kind() != SocketErrorKind::Network)),
                "{:?}",
                link.events
            );
        }
    }
}

#[test]
fn alpn_is_offered_and_the_agreed_protocol_is_readable() {
    let ca = Ca::new("test CA");
    let client = crate::tls::client_config(crate::tls::ClientOptions {
        roots: Some(ca.roots()),
        alpn: vec![b"h2".to_vec(), b"imap".to_vec()],
        time: Some(std::sync::Arc::new(crate::testkit::tls::FixedTime)),
        ..Default::default()
    })
    .unwrap();
    let (chain, key) = ca.leaf(&["localhost"], 2035);
    let mut options = crate::tls::ServerOptions::new(chain, key);
    options.alpn = vec![b"imap".to_vec()];
    options.time = Some(std::sync::Arc::new(crate::testkit::tls::FixedTime));
    let mut peer = Peer::server(crate::tls::server_config(options).unwrap());
    let mut h = Harness::new();
    let (id, out) = connect(&mut h, "localhost", secure(client));
    assert_eq!(h.core.tcp(id).unwrap().alpn_protocol(), None);
    assert_eq!(h.core.tcp(id).unwrap().tls_info(), None);
    let mut link = Link::new();
    link.run(&mut h, id, &mut peer, out);
    assert_eq!(link.events, [Event::Open { id: id.into() }]);
    assert_eq!(h.core.tcp(id).unwrap().alpn_protocol(), Some(&b"imap"[..]));
    // What the handshake agreed on: TLS 1.3, its suite and group, the server's leaf.
    let info = h.core.tcp(id).unwrap().tls_info().unwrap();
    assert_eq!(info.version, rustls::ProtocolVersion::TLSv1_3);
    assert!(format!("{:?}", info.cipher_suite).starts_with("TLS13_"));
    assert!(info.key_exchange_group.is_some());
    assert_eq!(info.peer_certificates.len(), 1);
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

/// The lengths of the TLS records `data` is made of (whole records only).
fn records(data: &[u8]) -> Vec<usize> {
    let mut lens = Vec::new();
    let mut rest = data;
    while rest.len() >= 5 {
        let len = 5 + usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        assert!(len <= rest.len(), "whole records");
        lens.push(len);
        rest = &rest[len..];
    }
    assert!(rest.is_empty(), "whole records");
    lens
}

/// The only output of `out`: a write of ours.
fn only_write(id: TcpId, out: &[Output]) -> Bytes {
    match out {
        [Output::Action(Action::Write { id: w, data })] if *w == id => data.clone(),
        other => panic!("one write expected: {other:?}"),
    }
}

/// Where the next ciphertext to write starts, inside the socket.
fn wire_front(h: &Harness, id: TcpId) -> *const u8 {
    let tls = h.core.tcp(id).unwrap().tls.as_deref().unwrap();
    tls.wire.front().unwrap().0.as_ptr()
}

#[test]
fn send_then_close_in_one_turn_leave_in_one_write_with_the_close_notify() {
    let mut h = Harness::new();
    let (id, mut peer, _) = secure_open(&mut h);
    h.core.tcp_send(id, "x").unwrap();
    h.core.tcp_close(h.now, id).unwrap();
    let data = only_write(id, &h.drain());
    // The data record (1 byte, its type and a 16-byte tag) and the close_notify alert.
    assert_eq!(records(&data), [5 + 1 + 1 + 16, 5 + 2 + 1 + 16]);
    peer.feed(&data).unwrap();
    assert_eq!(peer.plain, b"x");
    assert!(peer.closed_notify, "close_notify is in the same write");
    assert_eq!(buffered(&h, id), 1, "until the OS took the record");
    let len = data.len();
    assert_eq!(
        h.input(Input::Written { id, len }),
        [shutdown(id), query(id)]
    );
    assert_eq!(buffered(&h, id), 0);
}

#[test]
fn a_joined_write_releases_each_records_plaintext_exactly_and_its_rest_is_not_copied_again() {
    let mut h = Harness::new();
    let (id, mut peer, _) = secure_open(&mut h);
    h.core.tcp_send(id, "abc").unwrap();
    h.core.tcp_close(h.now, id).unwrap();
    let data = only_write(id, &h.drain());
    let [first, notify] = records(&data)[..] else {
        panic!("two records");
    };
    // Part of the data record: its plaintext still counts, and the rest of the write goes out
    // entry by entry as the socket holds it (what the joined write copied is not copied again).
    let rest = only_write(id, &h.input(Input::Written { id, len: 5 }));
    assert_eq!(buffered(&h, id), 3);
    assert_eq!(rest.len(), first - 5, "the rest of the data record alone");
    assert_eq!(rest.as_ptr(), wire_front(&h, id), "not copied");
    let last = only_write(id, &h.input(Input::Written { id, len: first - 6 }));
    assert_eq!(
        buffered(&h, id),
        3,
        "one byte of its record is still unwritten"
    );
    assert_eq!(last.len(), 1);
    let alert = only_write(id, &h.input(Input::Written { id, len: 1 }));
    assert_eq!(
        buffered(&h, id),
        0,
        "its record is written, the alert is not"
    );
    assert_eq!(alert.len(), notify);
    assert_eq!(alert.as_ptr(), wire_front(&h, id), "not copied");
    assert_eq!(
        h.input(Input::Written { id, len: notify }),
        [shutdown(id), query(id)]
    );
    peer.feed(&data).unwrap();
    assert_eq!(peer.plain, b"abc");
    assert!(peer.closed_notify);
}

#[test]
fn large_records_go_out_as_encrypted_and_an_armed_drain_still_precedes_the_close_notify() {
    let mut h = Harness::new();
    let (id, mut peer, _) = secure_open(&mut h);
    let payload = Bytes::from(vec![7u8; 64 << 10]);
    assert_eq!(h.core.tcp_send(id, payload), Ok(true));
    assert_eq!(h.core.tcp_send(id, "!"), Ok(false));
    h.core.tcp_close(h.now, id).unwrap();
    let bulk = only_write(id, &h.drain());
    assert_eq!(records(&bulk), [5 + (16 << 10) + 17; 4]);
    assert_eq!(
        bulk.as_ptr(),
        wire_front(&h, id),
        "the records as encrypted: no copy"
    );
    let len = bulk.len();
    let last = only_write(id, &h.input(Input::Written { id, len }));
    assert_eq!(
        records(&last),
        [5 + 1 + 17],
        "the last record alone: Drain is armed"
    );
    let out = h.input(Input::Written {
        id,
        len: last.len(),
    });
    let [Output::Event(Event::Drain { .. }), notify] = &out[..] else {
        panic!("Drain, then the close_notify: {out:?}");
    };
    let notify = only_write(id, std::slice::from_ref(notify));
    let len = notify.len();
    assert_eq!(
        h.input(Input::Written { id, len }),
        [shutdown(id), query(id)]
    );
    for data in [&bulk, &last, &notify] {
        peer.feed(data).unwrap();
    }
    assert_eq!(peer.plain.len(), (64 << 10) + 1);
    assert!(peer.closed_notify);
}

#[test]
fn data_sent_on_open_leaves_with_the_clients_finished() {
    let mut h = Harness::new();
    let ca = Ca::new("test CA");
    let mut peer = Peer::server(server_config(ca.leaf(&["localhost"], 2035)));
    let (id, out) = connect(&mut h, "localhost", secure(ca.client_config()));
    let hello = only_write(id, &out[..1]);
    peer.feed(&hello).unwrap();
    assert_eq!(
        h.input(Input::Written {
            id,
            len: hello.len()
        }),
        []
    );
    let flight = Bytes::from(peer.take());
    h.core
        .handle_input(h.now, Input::Received { id, data: flight })
        .unwrap();
    assert_eq!(
        h.core.poll_output(),
        Output::Event(Event::Open { id: id.into() })
    );
    // The app answers Open at once: its record joins the Finished flight not yet handed out.
    h.core.tcp_send(id, "hello").unwrap();
    let data = only_write(id, &h.drain());
    peer.feed(&data).unwrap();
    assert!(!peer.conn.is_handshaking());
    assert_eq!(peer.plain, b"hello");
}
