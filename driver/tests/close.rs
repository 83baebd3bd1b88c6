//! A graceful close against real peers ([BEHAVIOUR §1](sockstate::behaviour#1-tcpsocket) close): nothing we sent is lost when the
//! peer keeps writing, and a clean `Close` means the peer's TCP has every byte.

mod common;

use std::time::{Duration, Instant};

use common::*;
use sha2::{Digest, Sha256};
use sockstate_driver::{BinaryType, Config, ErrorCode, Event, ReadyState, SocketError, TcpOptions};

fn binary() -> TcpOptions {
    TcpOptions::default().binary_type(BinaryType::ArrayBuffer)
}

/// The issue's reproduction: a peer with a 128 KiB receive buffer that reads 64 KiB every
/// 50 ms and writes 16 KiB every 10 ms until it sees the end of our stream. Before the fix the
/// linger ran out while the kernel still held our bytes, and close(2) with the peer's unread
/// bytes made Linux send a reset that destroyed them: the peer got ~15.6 of 16 MiB while the
/// app saw a clean `Close`.
#[test]
fn a_close_while_the_peer_writes_and_reads_slowly_delivers_all_16_mib() {
    let _w = watchdog("slow peer writes during close", 60);
    let peer = Peer::python(
        r#"
import hashlib, socket, threading, time
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 128 * 1024)
srv.bind(('127.0.0.1', 0)); srv.listen(1); srv.settimeout(20)
print(srv.getsockname()[1], flush=True)
c, _ = srv.accept(); c.settimeout(50)
done = threading.Event()
def write():
    try:
        while not done.is_set():
            c.sendall(b'w' * 16384); time.sleep(0.01)
    except OSError:
        pass
t = threading.Thread(target=write, daemon=True); t.start()
h, n, end = hashlib.sha256(), 0, 'eof'
try:
    while True:
        d = c.recv(65536)
        if not d:
            break
        n += len(d); h.update(d)
        time.sleep(0.05)
except OSError as e:
    end = type(e).__name__
done.set(); t.join(5)
print(n, h.hexdigest(), end, flush=True)
c.close()
"#,
        &[],
    );
    let mut driver = driver(Config::default());
    let id = driver.tcp_open("127.0.0.1", peer.port(), binary()).unwrap();
    let data = Stream::new(16).take(16 << 20);
    let mut log = Vec::new();
    run(&mut driver, 50, |driver, event| {
        match &event {
            Event::Open { .. } => {
                for part in data.chunks(1 << 20) {
                    driver.send(id, part.to_vec()).unwrap();
                }
                driver.close(id).unwrap();
                assert_eq!(driver.tcp(id).unwrap().ready_state(), ReadyState::Closing);
                log.push(event.clone());
            }
            Event::Data { .. } => {}
            _ => log.push(event.clone()),
        }
        !matches!(event, Event::Close { .. })
    });
    let expected = format!("{} {:x} eof", data.len(), Sha256::digest(&data));
    assert_eq!(peer.line(30), expected, "what the peer received");
    assert_eq!(
        log,
        [
            Event::Open { id: id.into() },
            Event::Drain { id: id.into() },
            Event::Close { id: id.into() }
        ],
        "a clean close"
    );
    assert_healthy(&driver);
}

/// Sends `bytes` to a peer that accepts and never reads (the smallest receive buffer), closes
/// at once, and returns the error the close ends with and how long it took (the close timeout
/// is 800 ms).
fn close_to_a_peer_that_never_reads(bytes: usize) -> (SocketError, Duration) {
    let _w = watchdog("never reads", 30);
    let peer = Peer::python(
        r#"
import socket, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
srv.bind(('127.0.0.1', 0)); srv.listen(1); srv.settimeout(20)
print(srv.getsockname()[1], flush=True)
c, _ = srv.accept()
sys.stdin.readline()  # never reads the socket; ends when the test is done
"#,
        &[],
    );
    let config = Config::default()
        .core(sockstate::Config::default().close_timeout(Duration::from_millis(800)));
    let mut driver = driver(config);
    let id = driver.tcp_open("127.0.0.1", peer.port(), binary()).unwrap();
    let mut closed_at = None;
    let mut log = Vec::new();
    run(&mut driver, 20, |driver, event| {
        if let Event::Open { .. } = event {
            for part in vec![b'z'; bytes].chunks(1 << 20) {
                driver.send(id, part.to_vec()).unwrap();
            }
            driver.close(id).unwrap();
            assert_eq!(driver.tcp(id).unwrap().ready_state(), ReadyState::Closing);
            closed_at = Some(Instant::now());
        }
        log.push(event.clone());
        !matches!(event, Event::Close { .. })
    });
    let waited = closed_at.unwrap().elapsed();
    let error = match &log[..] {
        [Event::Open { .. }, Event::Error { error, .. }, Event::Close { .. }] => error.clone(),
        other => panic!("not Open, Error, Close: {other:?}"),
    };
    assert_eq!(error.code, ErrorCode::NetworkTimeout, "{error:?}");
    assert!(
        waited >= Duration::from_millis(700) && waited < Duration::from_secs(5),
        "the close timeout is 800 ms; it took {waited:?}"
    );
    assert_healthy(&driver);
    (error, waited)
}

/// 12 MiB: more than both kernels' buffers hold (less than the 16 MiB cap), so our FIN never
/// goes out.
#[test]
fn a_peer_that_never_reads_what_our_kernel_cannot_take_gets_a_close_timeout() {
    let (error, _) = close_to_a_peer_that_never_reads(12 << 20);
    assert!(error.message.contains("take the queued data"), "{error:?}");
}

/// 6 KiB: our kernel takes it all and our FIN goes out, but the peer's TCP never acknowledges
/// everything. Before the fix the linger released the socket after 2 s with a clean `Close`.
#[test]
fn a_peer_that_never_reads_what_our_kernel_took_gets_no_clean_close() {
    let (error, _) = close_to_a_peer_that_never_reads(6 << 10);
    assert!(
        error.message.contains("acknowledge"),
        "our kernel took it all, the peer's did not: {error:?}"
    );
}
