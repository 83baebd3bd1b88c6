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

/// A sockcat left running (a server): its stderr lines arrive on a channel; killed on drop.
struct Running {
    child: std::process::Child,
    stderr: std::sync::mpsc::Receiver<String>,
    stdout: Option<thread::JoinHandle<Vec<u8>>>,
}

impl Running {
    fn start(args: &[&str], stdin: Vec<u8>) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sockcat"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        thread::spawn(move || {
            let _ = input.write_all(&stdin);
        });
        let mut out = child.stdout.take().unwrap();
        let stdout = thread::spawn(move || {
            let mut v = Vec::new();
            let _ = out.read_to_end(&mut v);
            v
        });
        let err = child.stderr.take().unwrap();
        let (tx, stderr) = std::sync::mpsc::channel();
        thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(err).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Running {
            child,
            stderr,
            stdout: Some(stdout),
        }
    }

    /// Stderr lines up to and including the first that starts with `prefix`.
    #[track_caller]
    fn until(&self, prefix: &str, secs: u64) -> Vec<String> {
        let end = Instant::now() + Duration::from_secs(secs);
        let mut lines = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    let found = line.starts_with(prefix);
                    lines.push(line);
                    if found {
                        return lines;
                    }
                }
                Err(_) => panic!("no stderr line {prefix:?} within {secs} s: {lines:?}"),
            }
        }
    }

    /// The port of `sockcat: listening on ADDR:PORT` / `sockcat: bound to ADDR:PORT`.
    #[track_caller]
    fn port(&self, prefix: &str) -> u16 {
        let lines = self.until(prefix, 10);
        let line = lines.last().unwrap();
        line.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Waits for the exit; returns the status and stdout.
    #[track_caller]
    fn wait(mut self, secs: u64) -> (std::process::ExitStatus, Vec<u8>) {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let out = self.stdout.take().unwrap().join().unwrap();
                return (status, out);
            }
            assert!(Instant::now() < end, "sockcat still running after {secs} s");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
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
