//! Properties of the loop itself: no busy loop while idle, fairness between sockets, reads
//! independent of blocked writes, the waker, timeouts and OS error mapping.

mod common;

use std::time::{Duration, Instant};

use common::*;
use sockstate_driver::{
    BinaryType, Config, Driver, Event, ReadyState, SocketId, TcpId, TcpOptions,
};

fn binary() -> TcpOptions {
    TcpOptions::default().binary_type(BinaryType::ArrayBuffer)
}

/// A peer that accepts one connection and then waits for a line on stdin (never reading
/// the socket), sending `argv[1]` bytes first if given.
const SILENT_PEER: &str = r#"
import socket, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
srv.bind(('127.0.0.1', 0)); srv.listen(1); srv.settimeout(20)
print(srv.getsockname()[1], flush=True)
c, _ = srv.accept(); c.settimeout(20)
while True:
    line = sys.stdin.readline()
    if not line.strip():
        break
    c.sendall(b'p' * int(line))
    print('sent', flush=True)
"#;

fn open_and_wait(driver: &mut Driver, port: u16) -> TcpId {
    let id = driver.tcp_open("127.0.0.1", port, binary()).unwrap();
    run(driver, 10, |_, event| match event {
        Event::Open { .. } => false,
        other => panic!("expected Open, got {other:?}"),
    });
    id
}

/// CPU time (user + system) this thread has used, from /proc.
#[cfg(target_os = "linux")]
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // Fields 14 and 15 of stat(5) (utime, stime), counted from the state field (3).
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

#[cfg(target_os = "linux")]
#[test]
fn an_idle_loop_sleeps_instead_of_spinning() {
    let _w = watchdog("idle", 30);
    let mut peer = Peer::python(SILENT_PEER, &[]);
    let mut driver = driver(Config::default());
    let id = open_and_wait(&mut driver, peer.port());
    // An open connection on which nothing happens for a second.
    let before = thread_cpu();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(1) {
        assert_eq!(driver.next_event(Some(Duration::from_millis(300))), None);
    }
    let used = thread_cpu() - before;
    assert!(
        used <= Duration::from_millis(50),
        "an idle second used {used:?} of CPU"
    );
    peer.tell("");
    driver.close_immediately(id).unwrap();
    closes_alone(&mut driver, id);
    assert_healthy(&driver);
}

#[test]
fn a_blocked_write_does_not_stop_reading() {
    let _w = watchdog("blocked write", 30);
    let mut peer = Peer::python(SILENT_PEER, &[]);
    let mut driver = driver(Config::default());
    let id = open_and_wait(&mut driver, peer.port());
    for _ in 0..12 {
        driver.send(id, vec![b'w'; 1 << 20]).unwrap();
    }
    // Let the writes fill every buffer on the way.
    assert_eq!(driver.next_event(Some(Duration::from_millis(300))), None);
    let stuck = driver.tcp(id).unwrap().buffered_amount();
    assert!(
        stuck > 0,
        "the peer reads nothing, so our writes must block"
    );
    peer.tell("5000");
    assert_eq!(peer.line(10), "sent");
    let mut received = 0;
    run(&mut driver, 10, |_, event| {
        match event {
            Event::Data { data, .. } => received += data.len(),
            other => panic!("unexpected {other:?}"),
        }
        received < 5000
    });
    assert_eq!(received, 5000);
    assert_eq!(
        driver.tcp(id).unwrap().buffered_amount(),
        stuck,
        "still blocked"
    );
    peer.tell("");
    driver.close_immediately(id).unwrap();
    closes_alone(&mut driver, id);
    assert_healthy(&driver);
}

#[test]
fn reads_are_shared_fairly_between_busy_sockets() {
    let _w = watchdog("fairness", 30);
    // The peer fills both connections until its sends would block, says how much went in,
    // then waits: both of our sockets have far more than one turn's worth to read.
    let filler = r#"
import socket, sys
srv = socket.socket()
srv.bind(('127.0.0.1', 0)); srv.listen(2); srv.settimeout(20)
print(srv.getsockname()[1], flush=True)
conns = [srv.accept()[0], srv.accept()[0]]
sys.stdin.readline()
sent = []
for c in conns:
    c.setblocking(False)
    n = 0
    while True:
        try:
            n += c.send(b'f' * 65536)
        except BlockingIOError:
            break
    sent.append(n)
print(sent[0], sent[1], flush=True)
sys.stdin.readline()
"#;
    let mut peer = Peer::python(filler, &[]);
    let port = peer.port();
    // One turn reads at most 2 × 4 KiB of a socket.
    let config = Config::default().read_chunk(4096).reads_per_turn(2);
    let mut driver = driver(config);
    let a = open_and_wait(&mut driver, port);
    let b = open_and_wait(&mut driver, port);
    driver.suspend(a).unwrap();
    driver.suspend(b).unwrap();
    assert_eq!(driver.next_event(Some(Duration::from_millis(50))), None);
    peer.tell("fill");
    let line = peer.line(10);
    let sent: Vec<usize> = line.split(' ').map(|n| n.parse().unwrap()).collect();
    assert!(
        sent.iter().all(|&n| n > 64 << 10),
        "each holds many turns' worth: {sent:?}"
    );
    driver.resume(a).unwrap();
    driver.resume(b).unwrap();
    let (mut got_a, mut got_b) = (0usize, 0usize);
    // What one socket had delivered when the other delivered its first bytes.
    let mut lead = None;
    run(&mut driver, 20, |_, event| {
        let (mine, other) = match &event {
            Event::Data { id, .. } if *id == a => (&mut got_a, got_b),
            Event::Data { id, .. } if *id == b => (&mut got_b, got_a),
            other => panic!("unexpected {other:?}"),
        };
        if *mine == 0 && lead.is_none() && other > 0 {
            lead = Some(other);
        }
        if let Event::Data { data, .. } = &event {
            *mine += data.len();
        }
        (got_a, got_b) != (sent[0], sent[1])
    });
    let lead = lead.unwrap();
    assert!(
        lead <= 8192,
        "one socket delivered {lead} bytes before the other delivered any"
    );
    peer.tell("");
    driver.close_immediately(a).unwrap();
    driver.close_immediately(b).unwrap();
    let mut closes = 0;
    run(&mut driver, 5, |_, event| {
        assert!(matches!(event, Event::Close { .. }), "{event:?}");
        closes += 1;
        closes < 2
    });
    assert_healthy(&driver);
}

#[test]
fn a_handle_hands_work_to_a_waiting_loop() {
    let _w = watchdog("handle", 30);
    let peer = Peer::python(ECHO_SERVER, &["127.0.0.1"]);
    let port = peer.port();
    let mut driver = driver(Config::default());
    let handle = driver.handle();
    let worker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        handle
            .run(move |driver| {
                let id = driver.tcp_open("127.0.0.1", port, binary()).unwrap();
                driver.halfclose(id).unwrap();
            })
            .unwrap();
    });
    // No socket yet, but a handle exists: the loop waits for it without a timeout (the
    // watchdog bounds the test).
    let started = Instant::now();
    let first = driver.next_event(None);
    assert!(matches!(first, Some(Event::Open { .. })), "{first:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    worker.join().unwrap();
    let Some(Event::Open {
        id: SocketId::TcpId(id),
    }) = first
    else {
        unreachable!()
    };
    assert_eq!(
        until_close(&mut driver, id, 10),
        [Event::Close { id: id.into() }]
    );
    drop(driver);
}

#[test]
fn with_nothing_alive_next_event_without_timeout_returns_at_once() {
    let mut driver = driver(Config::default());
    let started = Instant::now();
    assert_eq!(driver.next_event(None), None);
    assert!(started.elapsed() < Duration::from_secs(1));
    let mut events = Vec::new();
    assert_eq!(driver.next_events(Some(Duration::ZERO), &mut events), 0);
    let handle = driver.handle();
    drop(driver);
    assert!(handle.run(|_| {}).is_err(), "the driver is gone");
}

#[test]
fn a_full_accept_queue_makes_the_connect_time_out() {
    let _w = watchdog("connect timeout", 30);
    // A listener that never accepts, its queue filled by the peer's own connections: the
    // kernel drops further SYNs, so a connect neither succeeds nor fails.
    let peer = Peer::python(
        r#"
import socket, sys
srv = socket.socket()
srv.bind(('127.0.0.1', 0)); srv.listen(0)
fill = []
for _ in range(4):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(srv.getsockname())
    except BlockingIOError: pass
    fill.append(c)
print(srv.getsockname()[1], flush=True)
sys.stdin.readline()
"#,
        &[],
    );
    let config = Config::default()
        .core(sockstate::Config::default().connect_timeout(Duration::from_millis(700)));
    let mut driver = driver(config);
    let started = Instant::now();
    let id = driver.tcp_open("127.0.0.1", peer.port(), binary()).unwrap();
    let log = until_close(&mut driver, id, 10);
    let took = started.elapsed();
    assert!(
        matches!(&log[..], [Event::Error { error, .. }, Event::Close { .. }] if error.name() == "NetworkTimeoutError"),
        "{log:?}"
    );
    assert!(
        took >= Duration::from_millis(650) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_healthy(&driver);
}

#[test]
fn a_local_port_in_use_is_a_network_error_before_open() {
    let _w = watchdog("addr in use", 30);
    let peer = Peer::python(ECHO_SERVER, &["127.0.0.1"]);
    let port = peer.port();
    let mut driver = driver(Config::default());
    let options = binary().local_address(Some("127.0.0.1".parse().unwrap())).local_port(Some(port))
// the peer listens there
;
    let id = driver.tcp_open("127.0.0.1", port, options).unwrap();
    let log = until_close(&mut driver, id, 10);
    assert!(
        matches!(&log[..], [Event::Error { error, .. }, Event::Close { .. }] if error.name() == "NetworkError"),
        "{log:?}"
    );
    assert_healthy(&driver);
}

#[test]
fn close_while_connecting_abandons_the_attempt() {
    let _w = watchdog("close connecting", 30);
    let peer = Peer::python(ECHO_SERVER, &["127.0.0.1"]);
    let mut driver = driver(Config::default());
    let id = driver.tcp_open("127.0.0.1", peer.port(), binary()).unwrap();
    driver.close(id).unwrap();
    assert_eq!(driver.tcp(id).unwrap().ready_state(), ReadyState::Closing);
    closes_alone(&mut driver, id);
    assert_healthy(&driver);
}
