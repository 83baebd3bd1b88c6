//! TCPSocket through the driver against real peers on loopback ([BEHAVIOUR §1](sockstate::behaviour#1-tcpsocket)).

mod common;

use std::time::{Duration, Instant};

use common::*;
use sockstate_driver::{
    BinaryType, Config, Data, DomException, ErrorCode, Event, ReadyState, TcpOptions,
};

fn binary() -> TcpOptions {
    TcpOptions::default().binary_type(BinaryType::ArrayBuffer)
}

/// The error codes and closes of a transcript, in order (messages come from the OS).
fn ends(log: &[Event]) -> Vec<String> {
    log.iter()
        .filter_map(|e| match e {
            Event::Error { error, .. } => Some(error.name().to_string()),
            Event::Close { .. } => Some("Close".to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn bulk_64_mib_through_a_python_echo_server_arrives_intact_both_ways() {
    let _w = watchdog("bulk", 120);
    const TOTAL: usize = 64 << 20;
    const CHUNK: usize = 256 << 10;
    let peer = Peer::python(ECHO_SERVER, &["127.0.0.1"]);
    let mut driver = driver(Config::default());
    let id = driver.tcp_open("127.0.0.1", peer.port(), binary()).unwrap();
    let mut out = Stream::new(7);
    let mut expect = Stream::new(7);
    let (mut sent, mut received, mut sent_crc) = (0usize, 0usize, 0u32);
    let mut drains = 0;
    let started = Instant::now();
    // Sends until `send` says false; the caller waits for `Drain` before sending more.
    let mut pump = |driver: &mut sockstate_driver::Driver| {
        while sent < TOTAL {
            let data = out.take(CHUNK.min(TOTAL - sent));
            sent += data.len();
            sent_crc = crc32(sent_crc, &data);
            if !driver.send(id, data).unwrap() {
                return;
            }
        }
        driver.halfclose(id).unwrap();
    };
    let log = {
        let mut log = Vec::new();
        run(&mut driver, 100, |driver, event| {
            match &event {
                Event::Open { .. } => pump(driver),
                Event::Drain { .. } => {
                    drains += 1;
                    assert_eq!(driver.tcp(id).unwrap().buffered_amount(), 0);
                    if driver.tcp(id).unwrap().ready_state() == ReadyState::Open {
                        pump(driver);
                    }
                }
                Event::Data { data, .. } => {
                    let bytes = data.as_bytes();
                    assert!(
                        bytes == &expect.take(bytes.len())[..],
                        "echoed bytes differ at offset {received}"
                    );
                    received += bytes.len();
                }
                _ => log.push(event.clone()),
            }
            !matches!(event, Event::Close { .. })
        });
        log
    };
    assert_eq!(ends(&log), ["Close"], "{log:?}");
    assert_eq!(received, TOTAL);
    assert!(drains > 0, "a 64 MiB transfer must hit the high-water mark");
    let report = peer.line(10);
    assert_eq!(
        report,
        format!("{TOTAL} {sent_crc}"),
        "what the peer received"
    );
    eprintln!(
        "bulk: {} MiB each way in {:.2?}",
        TOTAL >> 20,
        started.elapsed()
    );
    assert_healthy(&driver);
}

#[test]
fn a_send_of_65_539_bytes_returns_false_then_drains_to_zero() {
    let _w = watchdog("drain", 30);
    let peer = Peer::python(ECHO_SERVER, &["127.0.0.1"]);
    let mut driver = driver(Config::default());
    let id = driver.tcp_open("127.0.0.1", peer.port(), binary()).unwrap();
    let data = Stream::new(3).take(65_539);
    let mut echoed = Vec::new();
    let mut log = Vec::new();
    run(&mut driver, 20, |driver, event| {
        match &event {
            Event::Open { .. } => {
                assert!(
                    driver.send(id, vec![0u8; 0]).unwrap(),
                    "an empty send is below"
                );
                assert!(!driver.send(id, data.clone()).unwrap());
                assert_eq!(driver.tcp(id).unwrap().buffered_amount(), 65_539);
                log.push(event.clone());
            }
            Event::Drain { .. } => {
                assert_eq!(driver.tcp(id).unwrap().buffered_amount(), 0);
                log.push(event.clone());
            }
            Event::Data { data, .. } => {
                echoed.extend_from_slice(data.as_bytes());
                if echoed.len() == 65_539 {
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
    assert_eq!(peer.line(10), format!("65539 {}", crc32(0, &data)));
    assert_healthy(&driver);
}

#[test]
fn a_refused_port_gives_connection_refused_then_close() {
    let _w = watchdog("refused", 30);
    let (_holder, port) = refusing_port();
    let mut driver = driver(Config::default());
    let id = driver
        .tcp_open("127.0.0.1", port, TcpOptions::default())
        .unwrap();
    let log = until_close(&mut driver, id, 10);
    assert_eq!(ends(&log), ["ConnectionRefusedError", "Close"], "{log:?}");
    assert!(
        matches!(&log[0], Event::Error { error, .. } if error.code == ErrorCode::ConnectionRefused)
    );
    assert!(driver.tcp(id).is_none());
    assert_healthy(&driver);
}

#[test]
fn an_unresolvable_name_gives_domain_not_found_then_close() {
    let _w = watchdog("dns", 40);
    let mut driver = driver(Config::default());
    let id = driver
        .tcp_open("nonexistent.invalid", 80, TcpOptions::default())
        .unwrap();
    assert_eq!(
        driver.tcp(id).unwrap().ready_state(),
        ReadyState::Connecting
    );
    let log = until_close(&mut driver, id, 30);
    assert_eq!(ends(&log), ["DomainNotFoundError", "Close"], "{log:?}");
    assert_healthy(&driver);
}

#[test]
fn localhost_resolves_off_the_loop_and_connects() {
    let _w = watchdog("localhost", 30);
    let peer = Peer::python(ECHO_SERVER, &["127.0.0.1"]);
    let mut driver = driver(Config::default());
    let id = driver
        .tcp_open("localhost", peer.port(), TcpOptions::default())
        .unwrap();
    let mut text = String::new();
    run(&mut driver, 20, |driver, event| {
        match event {
            Event::Open { .. } => {
                driver.send(id, "héllo").unwrap();
            }
            Event::Data {
                data: Data::Text(t),
                ..
            } => {
                text.push_str(&t);
                if text == "héllo" {
                    driver.close(id).unwrap();
                }
            }
            Event::Error { error, .. } => panic!("{error}"),
            _ => {}
        }
        driver.tcp(id).is_some()
    });
    assert_eq!(text, "héllo");
    assert_healthy(&driver);
}

#[test]
fn ipv6_loopback_echo() {
    let _w = watchdog("ipv6", 30);
    let peer = Peer::python(ECHO_SERVER, &["::1"]);
    let mut driver = driver(Config::default());
    let id = driver.tcp_open("::1", peer.port(), binary()).unwrap();
    let mut got = Vec::new();
    let log = {
        let mut log = Vec::new();
        run(&mut driver, 20, |driver, event| {
            match &event {
                Event::Open { .. } => {
                    let s = driver.tcp(id).unwrap();
                    assert_eq!(
                        s.remote_address().unwrap().ip(),
                        "::1".parse::<std::net::IpAddr>().unwrap()
                    );
                    assert_eq!(
                        s.local_address().unwrap().ip(),
                        "::1".parse::<std::net::IpAddr>().unwrap()
                    );
                    driver.send(id, "over six").unwrap();
                    driver.halfclose(id).unwrap();
                    assert_eq!(
                        driver.tcp(id).unwrap().ready_state(),
                        ReadyState::HalfClosed
                    );
                }
                Event::Data { data, .. } => got.extend_from_slice(data.as_bytes()),
                _ => {}
            }
            log.push(event.clone());
            !matches!(event, Event::Close { .. })
        });
        log
    };
    assert_eq!(got, b"over six");
    assert_eq!(ends(&log), ["Close"]);
    assert_healthy(&driver);
}

#[test]
fn a_peer_reset_mid_stream_is_a_network_interrupt_after_the_data() {
    let _w = watchdog("reset", 30);
    let peer = Peer::python(
        r#"
import socket, struct
srv = socket.socket()
srv.bind(('127.0.0.1', 0)); srv.listen(1); srv.settimeout(20)
print(srv.getsockname()[1], flush=True)
c, _ = srv.accept(); c.settimeout(20)
c.sendall(b'x' * 1000)
got = b''
while len(got) < 2:
    got += c.recv(2)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
c.close()
print('reset', flush=True)
"#,
        &[],
    );
    let mut driver = driver(Config::default());
    let id = driver.tcp_open("127.0.0.1", peer.port(), binary()).unwrap();
    let mut received = 0;
    let mut log = Vec::new();
    run(&mut driver, 20, |driver, event| {
        match &event {
            Event::Data { data, .. } => {
                received += data.len();
                if received == 1000 {
                    driver.send(id, "ok").unwrap();
                }
            }
            Event::Error { .. } => {
                assert_eq!(driver.tcp(id).unwrap().ready_state(), ReadyState::Closed);
                log.push(event.clone());
            }
            _ => log.push(event.clone()),
        }
        !matches!(event, Event::Close { .. })
    });
    assert_eq!(received, 1000);
    assert_eq!(peer.line(10), "reset");
    assert_eq!(ends(&log), ["NetworkInterruptError", "Close"], "{log:?}");
    assert_healthy(&driver);
}

#[test]
fn closing_while_the_peer_keeps_sending_loses_nothing_we_sent() {
    let _w = watchdog("keeps sending", 40);
    let peer = Peer::python(
        r#"
import socket, threading, zlib
srv = socket.socket()
srv.bind(('127.0.0.1', 0)); srv.listen(1); srv.settimeout(20)
print(srv.getsockname()[1], flush=True)
c, _ = srv.accept(); c.settimeout(20)
stop = threading.Event()
def spam():
    try:
        while not stop.is_set():
            c.send(b'y' * 65536)
    except OSError:
        pass
t = threading.Thread(target=spam); t.start()
n, crc = 0, 0
while True:
    d = c.recv(65536)
    if not d:
        break
    n += len(d); crc = zlib.crc32(d, crc)
stop.set(); t.join()
c.shutdown(socket.SHUT_WR)
print(n, crc, flush=True)
c.close()
"#,
        &[],
    );
    let mut driver = driver(Config::default());
    let id = driver.tcp_open("127.0.0.1", peer.port(), binary()).unwrap();
    let data = Stream::new(11).take(4 << 20);
    let mut log = Vec::new();
    let mut received = 0usize;
    run(&mut driver, 30, |driver, event| {
        match &event {
            Event::Data { data: d, .. } => {
                // The peer sends all along; take some of it, then send ours and close at once.
                received += d.len();
                if received >= 1 << 20 && driver.tcp(id).unwrap().ready_state() == ReadyState::Open
                {
                    assert!(!driver.send(id, data.clone()).unwrap());
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
        ],
        "no error: the close completed"
    );
    assert_eq!(peer.line(20), format!("{} {}", data.len(), crc32(0, &data)));
    assert_healthy(&driver);
}

#[test]
fn our_halfclose_keeps_receiving_until_the_peer_closes() {
    let _w = watchdog("halfclose ours", 30);
    let peer = Peer::python(ECHO_SERVER, &["127.0.0.1"]);
    let mut driver = driver(Config::default());
    let id = driver
        .tcp_open("127.0.0.1", peer.port(), TcpOptions::default())
        .unwrap();
    let mut text = String::new();
    let mut log = Vec::new();
    run(&mut driver, 20, |driver, event| {
        match &event {
            Event::Open { .. } => {
                driver.send(id, "abc").unwrap();
                driver.halfclose(id).unwrap();
                let e = driver.send(id, "more").unwrap_err();
                assert_eq!(e.exception(), DomException::InvalidStateError);
            }
            Event::Data { data, .. } => {
                assert_eq!(
                    driver.tcp(id).unwrap().ready_state(),
                    ReadyState::HalfClosed
                );
                text.push_str(std::str::from_utf8(data.as_bytes()).unwrap());
            }
            _ => {}
        }
        log.push(event.clone());
        !matches!(event, Event::Close { .. })
    });
    assert_eq!(text, "abc", "data still arrives after our FIN");
    assert_eq!(ends(&log), ["Close"], "{log:?}");
    assert_eq!(peer.line(10), format!("3 {}", crc32(0, b"abc")));
    assert_healthy(&driver);
}

#[test]
fn the_peers_halfclose_with_allow_half_open_keeps_us_writable() {
    let _w = watchdog("halfclose theirs", 30);
    let peer = Peer::python(
        r#"
import socket
srv = socket.socket()
srv.bind(('127.0.0.1', 0)); srv.listen(1); srv.settimeout(20)
print(srv.getsockname()[1], flush=True)
c, _ = srv.accept(); c.settimeout(20)
c.sendall(b'hi')
c.shutdown(socket.SHUT_WR)
got = b''
while True:
    d = c.recv(65536)
    if not d:
        break
    got += d
print(got.decode(), flush=True)
c.close()
"#,
        &[],
    );
    let mut driver = driver(Config::default());
    let options = TcpOptions::default().allow_half_open(true);
    let id = driver.tcp_open("127.0.0.1", peer.port(), options).unwrap();
    let mut log = Vec::new();
    run(&mut driver, 20, |driver, event| {
        if let Event::HalfClose { .. } = event {
            assert_eq!(driver.tcp(id).unwrap().ready_state(), ReadyState::Open);
            assert!(driver.send(id, "reply after your FIN").unwrap());
            driver.close(id).unwrap();
        }
        log.push(event.clone());
        !matches!(event, Event::Close { .. })
    });
    assert_eq!(
        log,
        [
            Event::Open { id: id.into() },
            Event::Data {
                id,
                data: Data::Text("hi".into())
            },
            Event::HalfClose { id },
            Event::Close { id: id.into() }
        ]
    );
    assert_eq!(peer.line(10), "reply after your FIN");
    assert_healthy(&driver);
}

#[test]
fn a_suspended_socket_is_not_read_so_the_peer_feels_back_pressure() {
    let _w = watchdog("suspend", 60);
    const TOTAL: usize = 32 << 20;
    let peer = Peer::python(
        r#"
import socket, sys
srv = socket.socket()
srv.bind(('127.0.0.1', 0)); srv.listen(1); srv.settimeout(20)
print(srv.getsockname()[1], flush=True)
c, _ = srv.accept(); c.settimeout(30)
c.sendall(b'q' * int(sys.argv[1]))
print('sent', flush=True)
c.close()
"#,
        &[&TOTAL.to_string()],
    );
    let mut driver = driver(Config::default());
    let id = driver.tcp_open("127.0.0.1", peer.port(), binary()).unwrap();
    driver.suspend(id).unwrap(); // before open: applies from the start
    let log = {
        let mut log = Vec::new();
        let end = Instant::now() + Duration::from_millis(700);
        while let Some(event) =
            driver.next_event(Some(end.saturating_duration_since(Instant::now())))
        {
            log.push(event);
        }
        log
    };
    assert_eq!(
        log,
        [Event::Open { id: id.into() }],
        "nothing read while suspended"
    );
    assert_eq!(peer.try_line(), None, "the peer is blocked: we do not read");
    driver.resume(id).unwrap();
    let e = driver.resume(id).unwrap_err();
    assert_eq!(e.exception(), DomException::InvalidStateError);
    let mut received = 0;
    let log = {
        let mut log = Vec::new();
        run(&mut driver, 40, |_, event| {
            match &event {
                Event::Data { data, .. } => received += data.len(),
                _ => log.push(event.clone()),
            }
            !matches!(event, Event::Close { .. })
        });
        log
    };
    assert_eq!(received, TOTAL);
    assert_eq!(log, [Event::Close { id: id.into() }]);
    assert_eq!(peer.line(10), "sent");
    assert_healthy(&driver);
}
