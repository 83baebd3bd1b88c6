//! Opening a secure socket: the handshake before open, certificate failures and their names,
//! configs built with rustls's dangerous API, IP hosts, the handshake timeout, client certificates,
//! ALPN ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket), [§4](crate::behaviour#4-errors)).

use super::*;

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
