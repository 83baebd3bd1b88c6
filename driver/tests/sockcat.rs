//! The `sockcat` binary against real peers on loopback.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// Runs sockcat with `stdin` as its input; kills it if it runs longer than `secs` seconds.
fn sockcat(args: &[&str], stdin: Vec<u8>, secs: u64) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sockcat"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let writer = thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let end = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sockcat {args:?} still running after {secs} s");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

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
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
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
        r#"
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(1); srv.settimeout(20)
print(srv.getsockname()[1], flush=True)
raw, _ = srv.accept(); raw.settimeout(20)
def line(s):
    out = b''
    while not out.endswith(b'\n'):
        b = s.recv(1)
        if not b:
            raise SystemExit('eof in plaintext')
        out += b
    return out
raw.sendall(b'220-sockstate\r\n220 ESMTP\r\n')
assert line(raw) == b'EHLO sockcat\r\n'
raw.sendall(b'250-hello\r\n250 STARTTLS\r\n')
assert line(raw) == b'STARTTLS\r\n'
raw.sendall(b'220 go ahead\r\n')
c = ctx.wrap_socket(raw, server_side=True)
got = b''
while True:
    d = c.recv(65536)
    if not d:
        break
    got += d
c.sendall(b'250 got ' + got)
print('ok', got.decode().strip(), flush=True)
c.unwrap()
"#,
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
    assert_eq!(peer.line(10), "ok EHLO again");
    assert_eq!(
        out.stdout, b"250 got EHLO again\r\n",
        "only what came after the upgrade"
    );
}
