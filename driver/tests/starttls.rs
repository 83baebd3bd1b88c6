//! STARTTLS injection through the driver on loopback ([BEHAVIOUR §1](sockstate::behaviour#1-tcpsocket) upgradeToSecure; RFC 3207
//! §4.2, Postfix CVE-2011-0411): a Python peer writes plaintext past the STARTTLS point, as a
//! server after its `220 go ahead` and as a client pipelining commands after `STARTTLS`, one
//! line in the same write, 126 kB in the same write, or one line after the upgrade. Whatever
//! the reads, no plaintext reaches the app after `upgradeToSecure()`, and the socket ends with
//! `Error(SecurityError)` then `Close`.

mod common;

use std::sync::Arc;

use common::*;
use sockstate::tls::pki_types::pem::PemObject;
use sockstate::tls::pki_types::{CertificateDer, PrivateKeyDer};
use sockstate::tls::{self, ServerConfig};
use sockstate_driver::{
    BinaryType, Config, Driver, Event, ServerOptions, SocketId, TcpId, TcpOptions,
};

/// Small reads, so that a short injection behind the go-ahead is a read of its own in the same
/// turn (read but not yet delivered when the app upgrades): the case does not depend on how
/// the kernel joined the segments.
fn small_reads(chunk: usize) -> Config {
    Config::default().read_chunk(chunk).reads_per_turn(16)
}

/// What the app saw of one socket around its `upgradeToSecure()` call.
#[derive(Default)]
struct Seen {
    pending: Vec<u8>,
    /// Bytes delivered before the call, after the go-ahead line (in the go-ahead's `Data`).
    before_after_go_ahead: usize,
    upgraded: bool,
    /// Every event of the socket after the call.
    after: Vec<Event>,
}

impl Seen {
    /// Takes a `Data` before the call: its whole lines, in order.
    fn lines(&mut self, data: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(data);
        let mut lines = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            lines.push(String::from_utf8_lossy(&line).trim_end().to_string());
        }
        lines
    }

    /// The call was made: what is still unparsed was delivered before it.
    fn upgrade(&mut self, driver: &mut Driver, id: TcpId, rest: usize) {
        driver.upgrade_to_secure(id).expect("upgrade in open");
        assert!(driver.tcp(id).unwrap().ssl(), "ssl at once");
        self.upgraded = true;
        self.before_after_go_ahead = rest + self.pending.len();
    }

    /// After the call: no `Data` at all, then `Error(SecurityError)` and `Close`. Returns the
    /// error's message.
    #[track_caller]
    fn failed_closed(&self, case: &str) -> String {
        assert!(self.upgraded, "{case}: the app upgraded");
        let data: usize = (self.after.iter())
            .map(|e| match e {
                Event::Data { data, .. } => data.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(
            data, 0,
            "{case}: {data} bytes of Data after upgradeToSecure()"
        );
        match &self.after[..] {
            [Event::Error { error, .. }, Event::Close { .. }] => {
                assert_eq!(error.name(), "SecurityError", "{case}: {error}");
                error.message.to_string()
            }
            other => panic!("{case}: Error then Close expected, got {other:?}"),
        }
    }
}

// ---- client side: a Python STARTTLS server injects ------------------------------------------

fn client_case(mode: &str, config: Config) -> (Seen, String) {
    let pki = Pki::new(&format!("starttls-inject-{mode}"), &["localhost"]);
    let args = [pki.path("cert.pem"), pki.path("key.pem"), mode.to_string()];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let peer = Peer::python(PY_STARTTLS_INJECT, &args);
    let mut driver = driver(config);
    let options = TcpOptions::default()
        .tls_config(Some(pki.client()))
        .binary_type(BinaryType::ArrayBuffer);
    let id = driver.tcp_open("localhost", peer.port(), options).unwrap();
    let mut seen = Seen::default();
    run(&mut driver, 30, |driver, event| {
        if seen.upgraded {
            seen.after.push(event.clone());
            return !matches!(event, Event::Close { .. });
        }
        match event {
            Event::Data { data, .. } => {
                let lines = seen.lines(data.as_bytes());
                for (i, line) in lines.iter().enumerate() {
                    match line.as_str() {
                        "220-sockstate" | "250-hello" => {}
                        "220 ESMTP" => _ = driver.send(id, "EHLO me\r\n").unwrap(),
                        "250 STARTTLS" => _ = driver.send(id, "STARTTLS\r\n").unwrap(),
                        // A naive app: it upgrades at its go-ahead and ignores what followed
                        // in the same Data (sockcat refuses it; the core cannot tell).
                        "220 go ahead" => {
                            let rest: usize = lines[i + 1..].iter().map(|l| l.len() + 2).sum();
                            seen.upgrade(driver, id, rest);
                            break;
                        }
                        other => panic!("{mode}: unexpected line {other:?} before the upgrade"),
                    }
                }
            }
            Event::Open { .. } => {}
            other => panic!("{mode}: unexpected {other:?} before the upgrade"),
        }
        true
    });
    assert_healthy(&driver);
    assert_eq!(peer.line(10), "handshake failed", "{mode}");
    (seen, mode.to_owned())
}

#[test]
fn a_server_injecting_one_line_with_its_go_ahead_fails_the_upgrade_closed() {
    let _w = watchdog("starttls client small", 60);
    // Reads of 14 bytes: the go-ahead is one, the injected line the next, in the same turn.
    let (seen, case) = client_case("small", small_reads(14));
    assert_eq!(seen.before_after_go_ahead, 0, "the go-ahead came alone");
    let message = seen.failed_closed(&case);
    assert!(
        message.contains("with 14 bytes of plaintext read but not yet delivered"),
        "{message}"
    );
}

#[test]
fn a_server_injecting_126_kb_with_its_go_ahead_never_reaches_the_app_after_the_call() {
    let _w = watchdog("starttls client large", 60);
    // The reproduction: default reads of 64 KiB, several per turn. What came in the go-ahead's
    // own read was delivered before the call; the rest is either read already (dropped, the
    // injection error) or read after the call (given to TLS, which refuses it).
    let (seen, case) = client_case("large", Config::default());
    assert!(seen.before_after_go_ahead < 64 << 10);
    let message = seen.failed_closed(&case);
    eprintln!("large injection, client side: {message}");
}

#[test]
fn a_server_injecting_after_the_client_hello_is_a_tls_error() {
    let _w = watchdog("starttls client late", 60);
    let (seen, case) = client_case("late", Config::default());
    assert_eq!(seen.before_after_go_ahead, 0);
    let message = seen.failed_closed(&case);
    assert!(!message.contains("not yet delivered"), "{message}");
}

// ---- server side: a Python client pipelines commands after STARTTLS -------------------------

/// A client of ours: reads our greeting, then per argv[3]: `small` (`STARTTLS` and one command
/// in the same write), `large` (`STARTTLS` and 126 000 bytes of commands in the same write) or
/// `late` (`STARTTLS`, our go-ahead, then one command in plaintext). It then tries the
/// handshake and prints `handshake ok` or `handshake failed`.
const PY_PIPELINING_CLIENT: &str = r#"
import socket, ssl, sys
port, ca, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
raw = socket.create_connection(('127.0.0.1', port), timeout=20)
def line(s):
    out = b''
    while not out.endswith(b'\n'):
        b = s.recv(1)
        if not b:
            raise OSError('eof in plaintext')
        out += b
    return out
try:
    assert line(raw) == b'220 ESMTP\r\n'
    if mode == 'late':
        raw.sendall(b'STARTTLS\r\n')
        assert line(raw) == b'220 go ahead\r\n'
        raw.sendall(b'RCPT TO:<x@example>\r\n')
    else:
        n = 1 if mode == 'small' else 126000 // 21
        raw.sendall(b'STARTTLS\r\n' + b'RCPT TO:<x@example>\r\n' * n)
    c = ctx.wrap_socket(raw, server_hostname='localhost')
    print('handshake ok', flush=True)
except (ssl.SSLError, OSError):
    print('handshake failed', flush=True)
"#;

fn server_tls(pki: &Pki) -> Arc<ServerConfig> {
    let pem = std::fs::read(pki.path("cert.pem")).unwrap();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(pki.path("key.pem")).unwrap();
    tls::server_config(tls::ServerOptions::new(chain, key)).unwrap()
}

fn server_case(mode: &str, config: Config) -> (Seen, String) {
    let pki = Pki::new(&format!("starttls-pipelining-{mode}"), &["localhost"]);
    let mut driver = driver(config);
    let options = ServerOptions::default()
        .local_address(Some("127.0.0.1".parse().unwrap()))
        .binary_type(BinaryType::ArrayBuffer)
        .tls_config(Some(server_tls(&pki)));
    let server = driver.listen(options).unwrap();
    let mut port = 0;
    run(&mut driver, 10, |driver, event| {
        assert_eq!(event, Event::Open { id: server.into() });
        port = driver
            .server(server)
            .unwrap()
            .local_address()
            .unwrap()
            .port();
        false
    });
    let args = [port.to_string(), pki.path("ca.pem"), mode.to_string()];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let peer = Peer::python(PY_PIPELINING_CLIENT, &args);
    let mut seen = Seen::default();
    let mut socket = None;
    run(&mut driver, 30, |driver, event| {
        if let Event::Connect { socket: s, .. } = event {
            assert!(socket.is_none(), "{mode}: one client");
            socket = Some(s);
            driver.send(s, "220 ESMTP\r\n").unwrap();
            return true;
        }
        let id = socket.expect("Connect first");
        let mine = match &event {
            Event::Data { id: of, .. } | Event::HalfClose { id: of } => *of == id,
            Event::Error { id: of, .. } | Event::Close { id: of } | Event::Drain { id: of } => {
                *of == SocketId::from(id)
            }
            _ => false,
        };
        if !mine {
            return true;
        }
        if seen.upgraded {
            seen.after.push(event.clone());
            return !matches!(event, Event::Close { .. });
        }
        match event {
            Event::Data { data, .. } => {
                let lines = seen.lines(data.as_bytes());
                if let Some(i) = lines.iter().position(|l| l == "STARTTLS") {
                    driver.send(id, "220 go ahead\r\n").unwrap();
                    let rest: usize = lines[i + 1..].iter().map(|l| l.len() + 2).sum();
                    seen.upgrade(driver, id, rest);
                } else {
                    assert_eq!(lines, Vec::<String>::new(), "{mode}: only STARTTLS comes");
                }
            }
            other => panic!("{mode}: unexpected {other:?} before the upgrade"),
        }
        true
    });
    assert_eq!(peer.line(10), "handshake failed", "{mode}");
    assert!(driver.server(server).is_some(), "the server lives on");
    assert_healthy(&driver);
    (seen, mode.to_owned())
}

#[test]
fn a_client_pipelining_one_command_after_starttls_fails_the_upgrade_closed() {
    let _w = watchdog("starttls server small", 60);
    // Reads of 10 bytes: `STARTTLS\r\n` is one; the command follows in reads of its own.
    let (seen, case) = server_case("small", small_reads(10));
    assert_eq!(seen.before_after_go_ahead, 0);
    let message = seen.failed_closed(&case);
    // The command, and the start of the ClientHello Python sends at once when it was read in
    // the same turn (not waiting for the go-ahead): all of it plaintext before the call.
    let dropped: usize = (message.strip_prefix("upgradeToSecure() was called with "))
        .and_then(|m| m.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{message}"));
    assert!(dropped >= 21, "{message}");
    assert!(
        message.contains("bytes of plaintext read but not yet delivered"),
        "{message}"
    );
}

#[test]
fn a_client_pipelining_126_kb_after_starttls_never_reaches_the_app_after_the_call() {
    let _w = watchdog("starttls server large", 60);
    let (seen, case) = server_case("large", Config::default());
    assert!(seen.before_after_go_ahead < 64 << 10);
    let message = seen.failed_closed(&case);
    eprintln!("large injection, server side: {message}");
}

#[test]
fn a_client_sending_plaintext_after_the_go_ahead_is_a_tls_error() {
    let _w = watchdog("starttls server late", 60);
    let (seen, case) = server_case("late", Config::default());
    let message = seen.failed_closed(&case);
    assert!(!message.contains("not yet delivered"), "{message}");
}
