//! TCPServerSocket through the driver, with Python's `socket`/`ssl` and `openssl s_client` as
//! clients on loopback ([BEHAVIOUR §2](sockstate::behaviour#2-tcpserversocket)).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use sockstate::tls::pki_types::pem::PemObject;
use sockstate::tls::pki_types::{CertificateDer, PrivateKeyDer};
use sockstate::tls::{self, ServerConfig};
use sockstate_driver::{
    BinaryType, Config, Driver, Event, ServerId, ServerOptions, SocketId, TcpId,
};

fn loopback_server() -> ServerOptions {
    ServerOptions::default()
        .local_address(Some("127.0.0.1".parse().unwrap()))
        .binary_type(BinaryType::ArrayBuffer)
}

/// Listens and waits for `Open`; returns the id and the real port.
fn listening(driver: &mut Driver, options: ServerOptions) -> (ServerId, u16) {
    let id = driver.listen(options).unwrap();
    let log = {
        let mut log = Vec::new();
        run(driver, 10, |_, event| {
            log.push(event.clone());
            !matches!(event, Event::Open { .. } | Event::Close { .. })
        });
        log
    };
    assert_eq!(log, [Event::Open { id: id.into() }]);
    let port = driver.server(id).unwrap().local_address().unwrap().port();
    assert_ne!(port, 0, "localPort is the real one after Open");
    (id, port)
}

/// An echo server's loop: echoes every socket with back-pressure (suspend on `false`, resume
/// on `Drain`) until `done` says stop. Returns the events that are not data.
fn echo(driver: &mut Driver, secs: u64, mut done: impl FnMut(&Event) -> bool) -> Vec<Event> {
    let mut log = Vec::new();
    run(driver, secs, |driver, event| {
        if std::env::var_os("ECHO_DEBUG").is_some() {
            eprintln!("{event:?}");
        }
        match &event {
            Event::Data { id, data } => {
                let bytes = sockstate_driver::Bytes::copy_from_slice(data.as_bytes());
                // Data already queued when we suspended still arrives (see the report on
                // the core): suspend once, not once per event.
                let below = driver.send(*id, bytes).unwrap();
                if !below && driver.tcp(*id).unwrap().suspend_count() == 0 {
                    driver.suspend(*id).unwrap();
                }
            }
            Event::Drain {
                id: SocketId::TcpId(id),
            } => {
                if driver.tcp(*id).unwrap().suspend_count() > 0 {
                    driver.resume(*id).unwrap();
                }
            }
            _ => log.push(event.clone()),
        }
        !done(&event)
    });
    log
}

/// Echoes one connection from its `Connect` to its `Close`, with nothing else happening.
#[track_caller]
fn echoes_one_connection(driver: &mut Driver) {
    let log = echo(driver, 10, |event| matches!(event, Event::Close { .. }));
    assert!(
        matches!(&log[..], [Event::Connect { .. }, Event::Close { .. }]),
        "{log:?}"
    );
}

#[test]
fn our_echo_server_carries_64_mib_each_way_for_a_python_client() {
    let _w = watchdog("server bulk", 120);
    let mut driver = driver(Config::default());
    let (server, port) = listening(&mut driver, loopback_server());
    let peer = Peer::python(
        r#"
import os, socket, sys, threading, zlib
total = 64 << 20
c = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=60)
sent = [0]
def pour():
    crc, left = 0, total
    while left:
        block = os.urandom(min(left, 1 << 20))
        crc = zlib.crc32(block, crc)
        c.sendall(block)
        left -= len(block)
    c.shutdown(socket.SHUT_WR)
    sent[0] = crc
t = threading.Thread(target=pour); t.start()
n, crc = 0, 0
while True:
    d = c.recv(1 << 16)
    if not d:
        break
    n += len(d); crc = zlib.crc32(d, crc)
t.join()
print(n, crc == sent[0], flush=True)
"#,
        &[&port.to_string()],
    );
    let mut socket = None;
    let log = echo(&mut driver, 100, |event| {
        if let Event::Connect { socket: s, .. } = event {
            socket = Some(*s);
        }
        matches!(event, Event::Close { id } if Some(*id) == socket.map(SocketId::from))
    });
    let socket = socket.unwrap();
    assert_eq!(
        log,
        [
            Event::Connect { server, socket },
            Event::Close { id: socket.into() }
        ]
    );
    assert_eq!(peer.line(60), format!("{} True", 64 << 20));
    driver.close(server).unwrap();
    assert_eq!(
        until_close(&mut driver, server, 5),
        [Event::Close { id: server.into() }]
    );
    assert_healthy(&driver);
}

#[test]
fn a_server_side_close_with_data_queued_delivers_all_of_it() {
    let _w = watchdog("server close queued", 60);
    let mut driver = driver(Config::default());
    let (server, port) = listening(&mut driver, loopback_server());
    let peer = Peer::python(
        r#"
import socket, sys, zlib
c = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=30)
n, crc = 0, 0
while True:
    d = c.recv(1 << 16)
    if not d:
        break
    n += len(d); crc = zlib.crc32(d, crc)
print(n, crc, flush=True)
"#,
        &[&port.to_string()],
    );
    let data = Stream::new(99).take(8 << 20);
    let mut socket = None;
    let mut log = Vec::new();
    run(&mut driver, 30, |driver, event| {
        if let Event::Connect { socket: s, .. } = event {
            socket = Some(s);
            assert!(!driver.send(s, data.clone()).unwrap());
            driver.close(s).unwrap();
            // Closing the server too: accepted sockets live on.
            driver.close(server).unwrap();
        }
        log.push(event.clone());
        log.iter()
            .filter(|e| matches!(e, Event::Close { .. }))
            .count()
            < 2
    });
    let socket = socket.unwrap();
    assert_eq!(
        log,
        [
            Event::Connect { server, socket },
            Event::Close { id: server.into() },
            Event::Drain { id: socket.into() },
            Event::Close { id: socket.into() },
        ]
    );
    assert_eq!(peer.line(20), format!("{} {}", data.len(), crc32(0, &data)));
    assert_healthy(&driver);
}

#[test]
fn max_connections_refuses_the_next_one_and_keeps_listening() {
    let _w = watchdog("max connections", 60);
    let mut driver = driver(Config::default());
    let options = loopback_server().max_connections(Some(1));
    let (server, port) = listening(&mut driver, options);
    let mut peer = Peer::python(
        r#"
import socket, sys
port = int(sys.argv[1])
first = socket.create_connection(('127.0.0.1', port), timeout=10)
first.sendall(b'one')
print('first', first.recv(16).decode(), flush=True)
second = socket.create_connection(('127.0.0.1', port), timeout=10)
try:
    got = second.recv(16)
    print('second', 'closed' if got == b'' else got.decode(), flush=True)
except ConnectionResetError:
    print('second closed', flush=True)
sys.stdin.readline()
third = socket.create_connection(('127.0.0.1', port), timeout=10)
third.sendall(b'three')
print('third', third.recv(16).decode(), flush=True)
"#,
        &[&port.to_string()],
    );
    let mut first = None;
    let log = echo(&mut driver, 20, |event| {
        if let Event::Connect { socket, .. } = event {
            first = Some(*socket);
        }
        matches!(event, Event::Error { .. })
    });
    let first = first.unwrap();
    assert!(
        matches!(&log[..], [Event::Connect { .. }, Event::Error { id, error }]
        if *id == SocketId::from(server) && error.name() == "NetworkError"),
        "{log:?}"
    );
    assert_eq!(peer.line(10), "first one");
    assert_eq!(peer.line(10), "second closed");
    // Room again once the first socket's Close is delivered.
    driver.close(first).unwrap();
    let log = echo(&mut driver, 10, |event| {
        matches!(event, Event::Close { .. })
    });
    assert_eq!(log, [Event::Close { id: first.into() }]);
    peer.tell("go");
    echoes_one_connection(&mut driver);
    assert_eq!(peer.line(10), "third three");
    assert_healthy(&driver);
}

#[test]
fn a_suspended_server_accepts_nothing_until_resumed() {
    let _w = watchdog("server suspend", 60);
    let mut driver = driver(Config::default());
    let (server, port) = listening(&mut driver, loopback_server());
    driver.suspend(server).unwrap();
    let peer = Peer::python(
        r#"
import socket, sys
c = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=10)
print('connected', flush=True)  # the kernel completes it; the server has not accepted
c.sendall(b'early')
print(c.recv(16).decode(), flush=True)
"#,
        &[&port.to_string()],
    );
    assert_eq!(peer.line(10), "connected");
    assert_eq!(driver.next_event(Some(Duration::from_millis(300))), None);
    driver.resume(server).unwrap();
    echoes_one_connection(&mut driver);
    assert_eq!(peer.line(10), "early");
    assert_healthy(&driver);
}

#[test]
fn listening_on_a_port_in_use_is_an_error_then_close() {
    let _w = watchdog("listen in use", 30);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut driver = driver(Config::default());
    let options = loopback_server().local_port(Some(taken.local_addr().unwrap().port()));
    let id = driver.listen(options).unwrap();
    let log = until_close(&mut driver, id, 10);
    assert!(
        matches!(&log[..], [Event::Error { error, .. }, Event::Close { .. }] if error.name() == "NetworkError"),
        "{log:?}"
    );
    assert_healthy(&driver);
}

fn server_tls(pki: &Pki) -> Arc<ServerConfig> {
    let pem = std::fs::read(pki.path("cert.pem")).unwrap();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(pki.path("key.pem")).unwrap();
    tls::server_config(tls::ServerOptions::new(chain, key)).unwrap()
}

fn secure_server(pki: &Pki) -> ServerOptions {
    loopback_server()
        .use_secure_transport(true)
        .tls_config(Some(server_tls(pki)))
}

#[test]
fn our_secure_server_echoes_for_a_python_ssl_client() {
    let _w = watchdog("secure server python", 60);
    let pki = Pki::new("secure-server-py", &["localhost"]);
    let mut driver = driver(Config::default());
    let (_, port) = listening(&mut driver, secure_server(&pki));
    let peer = Peer::python(
        r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
raw = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=20)
c = ctx.wrap_socket(raw, server_hostname='localhost')
c.sendall(b'x' * 300000)
n = 0
while n < 300000:
    n += len(c.recv(65536))
print(n, c.version(), flush=True)
c.close()
"#,
        &[&port.to_string(), &pki.path("ca.pem")],
    );
    let mut sockets: HashMap<TcpId, bool> = HashMap::new();
    echo(&mut driver, 30, |event| {
        match event {
            Event::Connect { socket, .. } => _ = sockets.insert(*socket, true),
            Event::Close {
                id: SocketId::TcpId(id),
            } => _ = sockets.insert(*id, false),
            _ => {}
        }
        !sockets.is_empty() && sockets.values().all(|open| !open)
    });
    assert_eq!(peer.line(10), "300000 TLSv1.3");
    assert_healthy(&driver);
}

#[test]
fn our_secure_server_passes_openssl_s_client_verify_return_error() {
    let _w = watchdog("secure server s_client", 60);
    let pki = Pki::new("secure-server-openssl", &["localhost"]);
    let mut driver = driver(Config::default());
    let (_, port) = listening(&mut driver, secure_server(&pki));
    let connect = format!("127.0.0.1:{port}");
    let ca = pki.path("ca.pem");
    let client = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut child = std::process::Command::new("openssl")
            .args(["s_client", "-connect", &connect, "-servername", "localhost"])
            .args([
                "-CAfile",
                &ca,
                "-verify_return_error",
                "-quiet",
                "-no_ign_eof",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("openssl must be installed to run the TLS tests");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"through openssl\n").unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while !got.ends_with(b"through openssl\n") {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        drop(stdin);
        let status = child.wait().unwrap();
        (String::from_utf8_lossy(&got).into_owned(), status.success())
    });
    let mut connected = false;
    echo(&mut driver, 30, |event| {
        connected |= matches!(event, Event::Connect { .. });
        connected && matches!(event, Event::Close { .. })
    });
    let (echoed, ok) = client.join().unwrap();
    assert_eq!(echoed, "through openssl\n");
    assert!(ok, "s_client verified our certificate and exited cleanly");
    assert_healthy(&driver);
}
