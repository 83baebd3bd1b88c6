//! The `sockcat` binary against real peers on loopback.

// The loopback test helpers are the driver's (Python peers, the watchdog, the test PKI).
#[path = "../../driver/tests/common/mod.rs"]
mod common;
mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use support::*;

#[test]
fn connect_pipes_stdin_through_an_echo_server_and_back() {
    let _w = watchdog("sockcat connect", 60);
    let peer = Peer::python(ECHO_SERVER, &["127.0.0.1"]);
    let port = peer.port().to_string();
    let input = Stream::new(5).take(3 << 20);
    let out = sockcat(&["-v", "connect", "127.0.0.1", &port], input.clone(), 30);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout == input, "the echo differs");
    let err = stderr(&out);
    assert!(err.contains(" open 127.0.0.1:"), "{err}");
    assert!(err.contains(" close"), "{err}");
    assert!(
        err.contains("sent 3145728 bytes, received 3145728 bytes"),
        "{err}"
    );
    assert_eq!(
        peer.line(10),
        format!("{} {}", input.len(), crc32(0, &input))
    );
}

#[test]
fn connect_to_a_refused_port_fails_with_one_line() {
    let (_holder, port) = refusing_port();
    let out = sockcat(&["connect", "127.0.0.1", &port.to_string()], vec![], 10);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("sockcat: ConnectionRefusedError"), "{err}");
}

#[test]
fn bad_arguments_fail_clearly_without_a_panic() {
    for args in [
        &["connect", "127.0.0.1", "0"][..],
        &["connect", "127.0.0.1"],
        &["connect", "not a host", "80"],
        &["connect", "nonexistent.invalid", "80"],
        &["frobnicate"],
    ] {
        let out = sockcat(args, vec![], 20);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.trim().is_empty(), "{args:?} said nothing");
    }
}

#[test]
fn connect_tls_with_a_ca_file_echoes_through_python_ssl() {
    let _w = watchdog("sockcat tls", 60);
    let pki = Pki::new("sockcat-tls", &["localhost"]);
    let peer = Peer::python(PY_TLS_ECHO, &[&pki.path("cert.pem"), &pki.path("key.pem")]);
    let port = peer.port().to_string();
    let ca = pki.path("ca.pem");
    let args = ["-v", "connect", "--tls", "--ca", &ca, "localhost", &port];
    let out = sockcat(&args, b"secret words\n".to_vec(), 30);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"secret words\n");
    assert_eq!(peer.line(10), "13 TLSv1.3");
}

#[test]
fn connect_tls_to_an_untrusted_server_fails_with_one_line() {
    let _w = watchdog("sockcat untrusted", 60);
    let pki = Pki::new("sockcat-untrusted", &["localhost"]);
    let peer = Peer::python(PY_TLS_ECHO, &[&pki.path("cert.pem"), &pki.path("key.pem")]);
    let port = peer.port().to_string();
    let out = sockcat(&["connect", "--tls", "localhost", &port], vec![], 30);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("sockcat: SecurityUntrustedCertificateIssuerError"),
        "{err}"
    );
    let missing = sockcat(
        &[
            "connect",
            "--tls",
            "--ca",
            "/nonexistent/ca.pem",
            "localhost",
            &port,
        ],
        vec![],
        10,
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).starts_with("sockcat: /nonexistent/ca.pem:"));
}

#[test]
fn connect_starttls_smtp_upgrades_after_the_prelude() {
    let _w = watchdog("sockcat starttls", 60);
    let pki = Pki::new("sockcat-starttls", &["localhost"]);
    let peer = Peer::python(
        PY_STARTTLS_SMTP,
        &[&pki.path("cert.pem"), &pki.path("key.pem")],
    );
    let port = peer.port().to_string();
    let ca = pki.path("ca.pem");
    let args = [
        "connect",
        "--starttls",
        "smtp",
        "--ca",
        &ca,
        "localhost",
        &port,
    ];
    let out = sockcat(&args, b"EHLO again\r\n".to_vec(), 30);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(peer.line(10), "ok TLSv1.3 EHLO again");
    assert_eq!(
        out.stdout, b"250 got EHLO again\r\n",
        "only what came after the upgrade"
    );
}

#[test]
fn connect_starttls_refuses_any_byte_after_the_go_ahead_line() {
    let _w = watchdog("sockcat starttls injection", 90);
    let pki = Pki::new("sockcat-inject", &["localhost"]);
    for mode in ["small", "large", "late"] {
        let args = [pki.path("cert.pem"), pki.path("key.pem"), mode.to_string()];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let peer = Peer::python(PY_STARTTLS_INJECT, &args);
        let port = peer.port().to_string();
        let ca = pki.path("ca.pem");
        let args = [
            "connect",
            "--starttls",
            "smtp",
            "--ca",
            &ca,
            "localhost",
            &port,
        ];
        let out = sockcat(&args, b"EHLO again\r\n".to_vec(), 30);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{mode}: {err}");
        assert_eq!(err.lines().count(), 1, "{mode}: one line: {err}");
        assert!(err.starts_with("sockcat: "), "{mode}: {err}");
        if mode != "late" {
            // Caught in the prelude, before any upgrade: the line says what happened.
            assert!(
                err.contains("bytes after its STARTTLS answer"),
                "{mode}: {err}"
            );
        }
        assert!(
            out.stdout.is_empty(),
            "{mode}: nothing printed: {:?}",
            String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(200)])
        );
        assert_eq!(peer.line(10), "handshake failed", "{mode}");
    }
}

#[test]
fn demo_exits_0_and_prints_the_events_it_promises() {
    let out = sockcat(&["demo"], vec![], 60);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for promised in [
        "send(65539 bytes) returned false; bufferedAmount is 65539",
        "bufferedAmount is 0 at drain",
        " drain",
        " connect: tcp#",
        "upgradeToSecure(), the server's end",
        "upgradeToSecure(), the client's end",
        "data, \"a secret, encrypted\\r\\n\"",
        "the handshake is done and verified (ssl: true)",
        "joined 239.255.",
        "message from 127.0.0.1:",
        " close",
        "4 scenes passed",
    ] {
        assert!(
            text.contains(promised),
            "{promised:?} missing from:\n{text}"
        );
    }
}

#[test]
fn listen_echo_serves_a_python_client() {
    let _w = watchdog("sockcat listen echo", 60);
    let server = Running::start(&["listen", "0", "--bind", "127.0.0.1", "--echo"], vec![]);
    let port = server.port("sockcat: listening on 127.0.0.1:");
    let peer = Peer::python(
        r#"
import os, socket, sys, threading, zlib
c = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=20)
data = os.urandom(4 << 20)
t = threading.Thread(target=lambda: (c.sendall(data), c.shutdown(socket.SHUT_WR))); t.start()
got = bytearray()
while True:
    d = c.recv(1 << 16)
    if not d:
        break
    got += d
t.join()
print(len(got), got == data, flush=True)
"#,
        &[&port.to_string()],
    );
    assert_eq!(peer.line(30), format!("{} True", 4 << 20));
}

#[test]
fn listen_joins_the_first_connection_to_stdin_and_stdout() {
    let _w = watchdog("sockcat listen pipe", 60);
    let server = Running::start(
        &["-v", "listen", "0", "--bind", "127.0.0.1"],
        b"from our stdin\n".to_vec(),
    );
    let port = server.port("sockcat: listening on 127.0.0.1:");
    let peer = Peer::python(
        r#"
import socket, sys
c = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=20)
got = b''
while True:
    d = c.recv(1 << 16)
    if not d:
        break
    got += d
c.sendall(b'from the peer\n')
c.close()
print(got.decode().strip(), flush=True)
"#,
        &[&port.to_string()],
    );
    assert_eq!(peer.line(20), "from our stdin");
    let (status, stdout) = server.wait(20);
    assert!(status.success());
    assert_eq!(stdout, b"from the peer\n");
}

#[test]
fn listen_tls_self_signed_serves_a_python_ssl_client_that_trusts_the_printed_certificate() {
    let _w = watchdog("sockcat listen tls", 60);
    let server = Running::start(
        &[
            "listen",
            "0",
            "--bind",
            "127.0.0.1",
            "--echo",
            "--tls",
            "--self-signed",
        ],
        vec![],
    );
    let lines = server.until("sockcat: listening on 127.0.0.1:", 20);
    let pem: String = lines
        .iter()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .take_while(|l| !l.starts_with("sockcat: listening"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(pem.contains("END CERTIFICATE"), "{lines:?}");
    let port: u16 = lines
        .last()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("sockcat-selfsigned-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("cert.pem");
    std::fs::write(&ca, pem).unwrap();
    let peer = Peer::python(
        r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
raw = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=20)
c = ctx.wrap_socket(raw, server_hostname='localhost')
c.sendall(b'verified hello')
print(c.recv(64).decode(), c.version(), flush=True)
"#,
        &[&port.to_string(), &ca.to_string_lossy()],
    );
    assert_eq!(peer.line(20), "verified hello TLSv1.3");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn listen_tls_without_a_certificate_fails_with_one_line() {
    let out = sockcat(&["listen", "0", "--tls"], vec![], 10);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(
        err.trim(),
        "sockcat: --tls needs --cert and --key, or --self-signed"
    );
}

#[test]
fn udp_prints_datagrams_from_python_and_sends_stdin_lines_to_it() {
    let _w = watchdog("sockcat udp", 60);
    let receiver = Running::start(&["udp", "--bind", "127.0.0.1:0", "--count", "2"], vec![]);
    let port = receiver.port("sockcat: bound to 127.0.0.1:");
    let peer = Peer::python(
        r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('127.0.0.1', 0)); s.settimeout(20)
print(s.getsockname()[1], flush=True)
s.sendto(b'first', ('127.0.0.1', int(sys.argv[1])))
s.sendto(b'second', ('127.0.0.1', int(sys.argv[1])))
got = [s.recvfrom(100)[0].decode() for _ in range(2)]
print(' '.join(got), flush=True)
"#,
        &[&port.to_string()],
    );
    let py_port = peer.port();
    let (status, stdout) = receiver.wait(20);
    assert!(status.success());
    assert_eq!(stdout, b"first\nsecond\n");
    let to = format!("127.0.0.1:{py_port}");
    let out = sockcat(
        &["udp", "--bind", "127.0.0.1:0", "--to", &to],
        b"line one\nline two\n".to_vec(),
        20,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(peer.line(20), "line one line two");
}

// ---- netcat's flags, against netcat-openbsd, openssl and Python ---------------------------

/// A Python TCP server on 127.0.0.1 that prints its port, accepts one connection (`c`, from
/// `a`), then runs `then`.
fn accepting(then: &str) -> Peer {
    let script = format!(
        "import socket\n\
         srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(1); srv.settimeout(20)\n\
         print(srv.getsockname()[1], flush=True)\n\
         c, a = srv.accept()\n{then}\n"
    );
    Peer::python(&script, &[])
}

#[test]
fn host_port_connects_to_nc_listening_both_ways() {
    if !have("nc") {
        return;
    }
    let _w = watchdog("sockcat HOST PORT to nc -l", 60);
    let port = free_port().to_string();
    let nc = Tool::start(
        "nc",
        &["-l", "127.0.0.1", &port],
        Some(b"from nc\n".to_vec()),
    );
    let out = sockcat_once_listening(&["127.0.0.1", &port], b"from sockcat\n", 20);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"from nc\n");
    let (nc_out, _) = nc.finish(5);
    assert_eq!(nc_out, "from sockcat\n");
}

#[test]
fn dash_l_serves_nc_both_ways() {
    if !have("nc") {
        return;
    }
    let _w = watchdog("sockcat -l with nc", 60);
    let server = Running::start(&["-l", "-s", "127.0.0.1", "0"], b"from sockcat\n".to_vec());
    let port = server.port("sockcat: listening on 127.0.0.1:").to_string();
    // nc's stdin stays open: its FIN would end sockcat's side before sockcat's stdin is read.
    let mut nc = Command::new("nc")
        .args(["127.0.0.1", &port])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut nc_in = nc.stdin.take().unwrap();
    nc_in.write_all(b"from nc\n").unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(nc.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "from sockcat\n");
    drop(nc_in);
    let _ = nc.kill();
    let _ = nc.wait();
    let (status, stdout) = server.wait(20);
    assert!(status.success());
    assert_eq!(stdout, b"from nc\n");
}

#[test]
fn dash_u_to_nc_u_l_gets_the_reply_of_the_last_sender() {
    if !have("nc") {
        return;
    }
    let _w = watchdog("sockcat -u to nc -u -l", 60);
    let port = free_port().to_string();
    // nc -u -l answers whoever sent its first datagram, with its stdin.
    let mut nc = Tool::start("nc", &["-u", "-l", "127.0.0.1", &port], None);
    thread::sleep(Duration::from_millis(300));
    let reply = thread::spawn({
        let mut stdin = nc.stdin.take();
        move || {
            thread::sleep(Duration::from_millis(500));
            if let Some(s) = stdin.as_mut() {
                let _ = s.write_all(b"reply\n");
            }
            thread::sleep(Duration::from_secs(3));
        }
    });
    let out = sockcat(
        &["-u", "-w", "2", "127.0.0.1", &port],
        b"hello\n".to_vec(),
        20,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"reply\n");
    let (nc_out, _) = nc.finish(0);
    assert_eq!(nc_out, "hello\n");
    let _ = reply.join();
}

#[test]
fn dash_u_dash_l_replies_to_the_last_sender_and_holds_stdin_until_one_arrives() {
    if !have("nc") {
        return;
    }
    let _w = watchdog("sockcat -u -l with nc -u", 60);
    let server = Running::start(
        &["-u", "-l", "-w", "2", "-s", "127.0.0.1", "0"],
        b"reply\n".to_vec(),
    );
    let port = server.port("sockcat: bound to 127.0.0.1:").to_string();
    let nc = Tool::start(
        "nc",
        &["-u", "-w", "1", "127.0.0.1", &port],
        Some(b"hello\n".to_vec()),
    );
    let (nc_out, _) = nc.finish(10);
    assert_eq!(nc_out, "reply\n");
    let (status, stdout) = server.wait(20);
    assert!(status.success());
    assert_eq!(stdout, b"hello\n");
}

#[test]
fn udp_without_a_sender_says_stdin_was_not_sent() {
    let out = sockcat(
        &["-u", "-l", "-w", "0.5", "-s", "127.0.0.1", "0"],
        b"nobody hears this\n".to_vec(),
        20,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("stdin not sent: no --to, and no datagram arrived"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn udp_to_an_ipv6_address_binds_ipv6_by_itself() {
    let _w = watchdog("sockcat udp --to [::1]", 60);
    let peer = Peer::python(
        r#"
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(('::1', 0)); s.settimeout(20)
print(s.getsockname()[1], flush=True)
print(s.recvfrom(100)[0].decode(), flush=True)
"#,
        &[],
    );
    let to = format!("[::1]:{}", peer.port());
    let out = sockcat(&["udp", "--to", &to], b"over six\n".to_vec(), 20);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(peer.line(20), "over six");
}

#[test]
fn dash_k_keeps_listening_for_two_clients_in_turn() {
    if !have("nc") {
        return;
    }
    let _w = watchdog("sockcat -l -k", 60);
    let server = Running::start(&["-l", "-k", "-s", "127.0.0.1", "0"], vec![]);
    let port = server.port("sockcat: listening on 127.0.0.1:").to_string();
    for client in ["first client\n", "second client\n"] {
        let nc = Tool::start(
            "nc",
            &["-N", "127.0.0.1", &port],
            Some(client.as_bytes().to_vec()),
        );
        nc.finish(10);
    }
    // Still listening after both: give it a moment to print, stop it, read its output.
    thread::sleep(Duration::from_millis(500));
    let stdout = server.kill_and_output();
    assert_eq!(
        String::from_utf8_lossy(&stdout),
        "first client\nsecond client\n"
    );
}

#[test]
fn dash_w_closes_an_idle_connection() {
    let _w = watchdog("sockcat -w", 60);
    // A server that accepts and then says nothing, and never closes.
    let peer = accepting("import time; time.sleep(20)");
    let port = peer.port().to_string();
    let started = Instant::now();
    let out = sockcat(&["-v", "-w", "1", "127.0.0.1", &port], vec![], 20);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("idle for 1 s: closing"),
        "{}",
        stderr(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[test]
fn dash_s_and_dash_p_choose_the_source_address_and_port() {
    let _w = watchdog("sockcat -s -p", 60);
    let peer = accepting("print(a[0], a[1], flush=True)");
    let port = peer.port().to_string();
    let source_port = free_port().to_string();
    let out = sockcat(
        &["-s", "127.0.0.2", "-p", &source_port, "127.0.0.1", &port],
        vec![],
        20,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(peer.line(20), format!("127.0.0.2 {source_port}"));
}

#[test]
fn crlf_sends_line_ends_as_cr_lf() {
    let _w = watchdog("sockcat --crlf", 60);
    let peer = accepting(
        r#"
c.settimeout(20)
got = b''
while True:
    d = c.recv(100)
    if not d:
        break
    got += d
print(repr(got), flush=True)
"#,
    );
    let port = peer.port().to_string();
    let out = sockcat(
        &["--crlf", "127.0.0.1", &port],
        b"EHLO a\nQUIT\n".to_vec(),
        20,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(peer.line(20), r"b'EHLO a\r\nQUIT\r\n'");
}

#[test]
fn dash_6_and_dash_4_choose_the_family() {
    let _w = watchdog("sockcat -4 -6", 60);
    let peer = Peer::python(ECHO_SERVER, &["::1"]);
    let port = peer.port().to_string();
    let out = sockcat(&["-6", "::1", &port], b"six\n".to_vec(), 20);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"six\n");
    let out = sockcat(&["-4", "::1", &port], vec![], 20);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).trim(), "sockcat: ::1: no IPv4 address");
    // -6 -l listens on [::].
    let server = Running::start(&["-6", "-l", "0"], vec![]);
    server.port("sockcat: listening on [::]:");
}

#[test]
fn ca_system_honours_ssl_cert_file_and_shows_the_handshake_with_a_client_certificate_and_alpn() {
    if !have("openssl") {
        return;
    }
    let _w = watchdog("sockcat --ca system with openssl s_server", 60);
    let pki = Pki::new("sockcat-s-server", &["localhost"]);
    let port = free_port().to_string();
    let (cert, key, ca) = (
        pki.path("cert.pem"),
        pki.path("key.pem"),
        pki.path("ca.pem"),
    );
    let server = Tool::start(
        "openssl",
        &[
            "s_server",
            "-accept",
            &port,
            "-naccept",
            "1",
            "-cert",
            &cert,
            "-key",
            &key,
            "-CAfile",
            &ca,
            "-Verify",
            "1",
            "-alpn",
            "proto",
            "-verify_return_error",
        ],
        None,
    );
    let (client, client_key) = (pki.path("client.pem"), pki.path("client-key.pem"));
    let args = [
        "-v",
        "connect",
        "localhost",
        &port,
        "--tls",
        "--ca",
        "system",
        "--cert",
        &client,
        "--key",
        &client_key,
        "--alpn",
        "other,proto",
    ];
    let out = sockcat_env_once_listening(&args, &[("SSL_CERT_FILE", &ca)], b"over tls\n", 20);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    for shown in [
        "TLS version TLSv1_3",
        "cipher TLS13_",
        "group X25519",
        "ALPN proto",
        "certificate 0: subject CN=",
        "issuer CN=sockstate test CA",
        "valid from ",
    ] {
        assert!(err.contains(shown), "{shown:?} missing from:\n{err}");
    }
    let (server_out, server_err) = server.finish(5);
    let all = format!("{server_out}{server_err}");
    assert!(all.contains("over tls"), "{all}");
    assert!(
        all.contains("sockcat test client"),
        "the client certificate: {all}"
    );
}

#[test]
fn ca_system_without_the_test_ca_refuses_the_server() {
    if !have("openssl") {
        return;
    }
    let _w = watchdog("sockcat --ca system untrusted", 60);
    let pki = Pki::new("sockcat-s-server-untrusted", &["localhost"]);
    let port = free_port().to_string();
    let _server = Tool::start(
        "openssl",
        &[
            "s_server",
            "-accept",
            &port,
            "-naccept",
            "1",
            "-cert",
            &pki.path("cert.pem"),
            "-key",
            &pki.path("key.pem"),
        ],
        None,
    );
    let out = sockcat_once_listening(
        &["connect", "localhost", &port, "--tls", "--ca", "system"],
        b"",
        20,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).to_lowercase().contains("certificate"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn listen_tls_serves_openssl_s_client() {
    if !have("openssl") {
        return;
    }
    let _w = watchdog("sockcat listen --tls with openssl s_client", 60);
    let pki = Pki::new("sockcat-s-client", &["localhost"]);
    let server = Running::start(
        &[
            "listen",
            "0",
            "--bind",
            "127.0.0.1",
            "--echo",
            "--tls",
            "--cert",
            &pki.path("cert.pem"),
            "--key",
            &pki.path("key.pem"),
        ],
        vec![],
    );
    let port = server.port("sockcat: listening on 127.0.0.1:");
    let mut client = Tool::start(
        "openssl",
        &[
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
            "-CAfile",
            &pki.path("ca.pem"),
            "-verify_return_error",
        ],
        None,
    );
    let mut stdin = client.stdin.take().unwrap();
    stdin.write_all(b"ping over tls\n").unwrap();
    let (out, err) = client.finish(3);
    drop(stdin);
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}{err}");
    assert!(out.contains("ping over tls"), "{out}{err}");
}
