//! TLS clients through the driver against Python's `ssl` and `openssl s_server` on loopback.

mod common;

use common::*;
use sockstate_driver::{BinaryType, Config, Data, Event, TcpOptions};

fn secure(pki: &Pki) -> TcpOptions {
    TcpOptions::default()
        .use_secure_transport(true)
        .tls_config(Some(pki.client()))
        .binary_type(BinaryType::ArrayBuffer)
}

#[test]
fn a_secure_socket_opens_after_the_handshake_and_echoes_through_python_ssl() {
    let _w = watchdog("tls echo", 60);
    let pki = Pki::new("echo", &["localhost"]);
    let peer = Peer::python(PY_TLS_ECHO, &[&pki.path("cert.pem"), &pki.path("key.pem")]);
    let mut driver = driver(Config::default());
    let id = driver
        .tcp_open("localhost", peer.port(), secure(&pki))
        .unwrap();
    let data = Stream::new(21).take(1 << 20);
    let mut echoed = Vec::new();
    let mut log = Vec::new();
    run(&mut driver, 30, |driver, event| {
        match &event {
            Event::Open { .. } => {
                assert!(driver.tcp(id).unwrap().ssl());
                driver.send(id, data.clone()).unwrap();
                log.push(event.clone());
            }
            Event::Data { data: d, .. } => {
                echoed.extend_from_slice(d.as_bytes());
                if echoed.len() == data.len() {
                    driver.close(id).unwrap();
                }
            }
            _ => log.push(event.clone()),
        }
        !matches!(event, Event::Close { .. })
    });
    assert_eq!(
        log,
        [
            Event::Open { id: id.into() },
            Event::Drain { id: id.into() },
            Event::Close { id: id.into() }
        ]
    );
    assert!(echoed == data, "the echo differs");
    assert_eq!(peer.line(10), format!("{} TLSv1.3", data.len()));
    assert_healthy(&driver);
}

#[test]
fn starttls_after_an_smtp_style_exchange_with_python_ssl() {
    let _w = watchdog("starttls", 60);
    let pki = Pki::new("starttls", &["localhost"]);
    let peer = Peer::python(
        PY_STARTTLS_SMTP,
        &[&pki.path("cert.pem"), &pki.path("key.pem")],
    );
    let mut driver = driver(Config::default());
    let options = TcpOptions::default().tls_config(Some(pki.client()));
    let id = driver.tcp_open("localhost", peer.port(), options).unwrap();
    let mut pending = String::new();
    let mut lines = Vec::new();
    run(&mut driver, 30, |driver, event| {
        match event {
            Event::Data {
                data: Data::Text(t),
                ..
            } => {
                pending.push_str(&t);
                while let Some(end) = pending.find("\r\n") {
                    let line: String = pending.drain(..end + 2).collect();
                    let line = line.trim_end().to_string();
                    let ssl = driver.tcp(id).unwrap().ssl();
                    match line.as_str() {
                        "220-sockstate" => {}
                        "220 ESMTP" => _ = driver.send(id, "EHLO me\r\n").unwrap(),
                        "250-hello" => {}
                        "250 STARTTLS" => _ = driver.send(id, "STARTTLS\r\n").unwrap(),
                        "220 go ahead" => {
                            assert!(!ssl);
                            driver.upgrade_to_secure(id).unwrap();
                            assert!(driver.tcp(id).unwrap().ssl(), "ssl is true at once");
                            driver.send(id, "EHLO again\r\n").unwrap();
                        }
                        "250 got EHLO again" => {
                            assert!(ssl);
                            driver.close(id).unwrap();
                        }
                        other => panic!("unexpected line {other:?}"),
                    }
                    lines.push(line);
                }
            }
            Event::Open { .. } | Event::Close { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
        driver.tcp(id).is_some()
    });
    assert_eq!(lines.last().map(String::as_str), Some("250 got EHLO again"));
    assert_eq!(peer.line(10), "ok TLSv1.3 EHLO again");
    assert_healthy(&driver);
}

#[test]
fn openssl_s_server_reverses_lines_over_tls() {
    let _w = watchdog("s_server", 60);
    let pki = Pki::new("s_server", &["localhost"]);
    let mut server = std::process::Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            "127.0.0.1:0",
            "-naccept",
            "1",
            "-rev",
        ])
        .args(["-cert", &pki.path("cert.pem"), "-key", &pki.path("key.pem")])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl must be installed to run the TLS tests");
    let mut out = std::io::BufReader::new(server.stdout.take().unwrap());
    let port: u16 = loop {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut out, &mut line).unwrap() == 0 {
            panic!("openssl s_server printed no ACCEPT line");
        }
        if let Some(addr) = line.trim().strip_prefix("ACCEPT ") {
            break addr.rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    let mut driver = driver(Config::default());
    let options = TcpOptions::default()
        .use_secure_transport(true)
        .tls_config(Some(pki.client()));
    let id = driver.tcp_open("localhost", port, options).unwrap();
    let mut text = String::new();
    run(&mut driver, 30, |driver, event| {
        match event {
            Event::Open { .. } => _ = driver.send(id, "sockstate\n").unwrap(),
            Event::Data {
                data: Data::Text(t),
                ..
            } => {
                text.push_str(&t);
                if text.contains("etatskcos") {
                    driver.close(id).unwrap();
                }
            }
            Event::Close { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
        driver.tcp(id).is_some()
    });
    assert!(text.contains("etatskcos"), "{text:?}");
    let _ = server.kill();
    let _ = server.wait();
    assert_healthy(&driver);
}

#[test]
fn an_untrusted_issuer_fails_before_open() {
    let _w = watchdog("untrusted", 60);
    let pki = Pki::new("untrusted", &["localhost"]);
    let peer = Peer::python(PY_TLS_ECHO, &[&pki.path("cert.pem"), &pki.path("key.pem")]);
    let mut driver = driver(Config::default());
    let options = TcpOptions::default().use_secure_transport(true)
// Mozilla's roots: our test CA is not among them
;
    let id = driver.tcp_open("localhost", peer.port(), options).unwrap();
    let log = until_close(&mut driver, id, 30);
    match &log[..] {
        [Event::Error { error, .. }, Event::Close { .. }] => {
            assert_eq!(
                error.name(),
                "SecurityUntrustedCertificateIssuerError",
                "{error}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(peer.line(10), "handshake failed");
    assert_healthy(&driver);
}

#[test]
fn a_certificate_for_another_name_fails_before_open() {
    let _w = watchdog("mismatch", 60);
    let pki = Pki::new("mismatch", &["other.test"]);
    let peer = Peer::python(PY_TLS_ECHO, &[&pki.path("cert.pem"), &pki.path("key.pem")]);
    let mut driver = driver(Config::default());
    let id = driver
        .tcp_open("localhost", peer.port(), secure(&pki))
        .unwrap();
    let log = until_close(&mut driver, id, 30);
    match &log[..] {
        [Event::Error { error, .. }, Event::Close { .. }] => {
            assert_eq!(
                error.name(),
                "SecurityCertificateDomainMismatchError",
                "{error}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(driver.tcp(id).is_none());
    assert_eq!(peer.line(10), "handshake failed");
    assert_healthy(&driver);
}
