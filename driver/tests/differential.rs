//! Differential tests (DESIGN test layer 5, issue 15 §1): one app script runs on the simulated
//! network and on the driver over loopback against the same peer behaviour, and both give the
//! same event transcript: data compared as one byte stream (not chunk by chunk), errors by
//! name. A sim kinder than Linux would let broken code pass; these keep it honest. The second
//! half turns it round: a scripted client (`Sim::peer_connect`, a real `TcpStream` on the
//! driver's side) against the app's `TCPServerSocket`, comparing the accepted socket's
//! transcript and what the client received, also with the server suspended until the client
//! has connected and sent (the kernel's accept queue).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use sockstate::sim::{Peer as SimPeer, PeerState, Sim, SimConfig};
use sockstate_driver::{
    BinaryType, Config, Driver, Event, ServerOptions, SocketId, Sockets, TcpId, TcpOptions,
};

/// What the peer does, on both sides.
#[derive(Clone, Copy, Debug)]
enum PeerKind {
    /// Sends back what it reads; FIN after ours.
    Echo,
    /// Accepts and never reads, writes or closes.
    NeverReads,
    /// Writes this many bytes at once while reading everything; FIN after ours.
    WritesWhileReading(usize),
    /// Reads this many bytes, then resets (linger 0).
    ResetsAfter(usize),
    /// Nobody listens.
    Refused,
    /// Sends this many bytes, then FIN, and reads until our FIN.
    SendsThenFin(usize),
}

/// What the app does; both runs make exactly these calls, through [`Sockets`] (one app, every
/// world).
///
/// A send: the generic sends are reached through the `&mut S` impl from `&mut dyn Sockets`.
fn send(net: &mut dyn Sockets, id: TcpId, data: Vec<u8>) {
    let _ = Sockets::tcp_send(&mut &mut *net, id, data);
}

/// An app script: called on each event of its socket and on each tick (`None`), with the time
/// since the open.
type Script = fn(&mut dyn Sockets, TcpId, Option<&Event>, Duration, &mut u64);

fn config() -> sockstate::Config {
    sockstate::Config::default()
        .close_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(5))
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// The transcript, normalized: consecutive data joined into one entry, errors by name.
#[derive(Debug, PartialEq)]
enum Entry {
    Open,
    Connect,
    Data(usize, u64),
    Drain,
    HalfClose,
    Error(String),
    Close,
}

fn normalize(events: &[Event]) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut data: Vec<u8> = Vec::new();
    let flush = |out: &mut Vec<Entry>, data: &mut Vec<u8>| {
        if !data.is_empty() {
            let sum = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
            });
            out.push(Entry::Data(data.len(), sum));
            data.clear();
        }
    };
    for e in events {
        if let Event::Data { data: d, .. } = e {
            data.extend_from_slice(d.as_bytes());
            continue;
        }
        flush(&mut out, &mut data);
        out.push(match e {
            Event::Open { .. } => Entry::Open,
            Event::Connect { .. } => Entry::Connect,
            Event::Drain { .. } => Entry::Drain,
            Event::HalfClose { .. } => Entry::HalfClose,
            Event::Error { error, .. } => Entry::Error(error.code.name().to_owned()),
            Event::Close { .. } => Entry::Close,
            other => Entry::Error(format!("unexpected {other:?}")),
        });
    }
    flush(&mut out, &mut data);
    out
}

// ---- the sim side ---------------------------------------------------------------------------

fn on_sim(
    seed: u64,
    kind: PeerKind,
    options: &TcpOptions,
    suspend: bool,
    script: Script,
) -> Vec<Event> {
    let cfg = SimConfig::default().core(config());
    let mut sim = Sim::with_config(seed, cfg);
    let client = sim
        .add_host("client", &["127.0.0.1".parse().unwrap()])
        .unwrap();
    sim.add_host("server", &["127.0.0.2".parse().unwrap()])
        .unwrap();
    let at: SocketAddr = "127.0.0.2:9".parse().unwrap();
    let peer = match kind {
        PeerKind::Echo => Some(SimPeer::echo()),
        PeerKind::NeverReads => Some(SimPeer::stall()),
        PeerKind::WritesWhileReading(n) => Some(SimPeer::send(pattern(n))),
        PeerKind::ResetsAfter(_) => Some(SimPeer::sink()),
        PeerKind::Refused => None,
        PeerKind::SendsThenFin(n) => Some(SimPeer {
            after_greeting: sockstate::sim::AfterGreeting::Close,
            ..SimPeer::send(pattern(n))
        }),
    };
    if let Some(peer) = peer {
        sim.listen(at, peer).unwrap();
    }
    let mut net = sim.host(client).unwrap();
    let id = net.tcp_open("127.0.0.2", 9, options.clone()).unwrap();
    if suspend {
        net.tcp_suspend(id).unwrap();
    }
    let (start, mut state, mut log, mut reset) = (sim.now(), 0, Vec::new(), false);
    while !log.iter().any(|e| matches!(e, Event::Close { .. })) {
        assert!(
            sim.now() - start < Duration::from_secs(60),
            "sim: no end: {log:?} reset {reset}"
        );
        // One event at a time, answered before the next, as on the driver.
        if let Some((_, e)) = sim.next_event_within(Duration::from_millis(1)) {
            let at = sim.now() - start;
            script(&mut sim.host(client).unwrap(), id, Some(&e), at, &mut state);
            log.push(e);
        }
        let at = sim.now() - start;
        script(&mut sim.host(client).unwrap(), id, None, at, &mut state);
        if let (PeerKind::ResetsAfter(n), Some(conn)) = (kind, sim.conn_of(client, id)) {
            let got = sim.peer_received(conn).map_or(0, <[u8]>::len);
            if got >= n && !reset {
                reset = true;
                sim.peer_reset(conn).unwrap();
            }
        }
    }
    let _ = sim.run();
    assert_eq!(sim.violations(), [], "sim violations");
    log
}

// ---- the driver side ------------------------------------------------------------------------

/// A real peer on 127.0.0.1 in a thread; returns its port and a sender that lets it go.
fn real_peer(kind: PeerKind) -> (u16, mpsc::Sender<()>) {
    let (tx, rx) = mpsc::channel::<()>();
    if matches!(kind, PeerKind::Refused) {
        // Bound and never listening, held until the test lets it go: refused, and no other
        // test can take the port meanwhile.
        let holder = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("a socket");
        holder
            .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("a port");
        let port = holder.local_addr().unwrap().as_socket().unwrap().port();
        thread::spawn(move || {
            let _ = rx.recv_timeout(Duration::from_secs(30));
            drop(holder);
        });
        return (port, tx);
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
        let _ = s.set_write_timeout(Some(Duration::from_secs(30)));
        let read_all = |s: &mut TcpStream| {
            let mut buf = vec![0; 65536];
            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        };
        match kind {
            PeerKind::Echo => {
                let mut buf = vec![0; 65536];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
            PeerKind::NeverReads => {
                let _ = rx.recv_timeout(Duration::from_secs(30));
            }
            PeerKind::WritesWhileReading(n) => {
                let mut w = s.try_clone().unwrap();
                let writer = thread::spawn(move || {
                    let _ = w.write_all(&pattern(n));
                });
                read_all(&mut s);
                let _ = writer.join();
            }
            PeerKind::ResetsAfter(n) => {
                let (mut got, mut buf) = (0, vec![0; 65536]);
                while got < n {
                    match s.read(&mut buf) {
                        Ok(k) if k > 0 => got += k,
                        _ => break,
                    }
                }
                let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            }
            PeerKind::SendsThenFin(n) => {
                let _ = s.write_all(&pattern(n));
                let _ = s.shutdown(Shutdown::Write);
                read_all(&mut s);
            }
            PeerKind::Refused => {}
        }
    });
    (port, tx)
}

fn on_driver(kind: PeerKind, options: &TcpOptions, suspend: bool, script: Script) -> Vec<Event> {
    let (port, done) = real_peer(kind);
    let mut driver = Driver::new(Config::default().core(config())).unwrap();
    let id = driver.tcp_open("127.0.0.1", port, options.clone()).unwrap();
    if suspend {
        driver.suspend(id).unwrap();
    }
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let (mut state, mut log) = (0, Vec::new());
    while !log.iter().any(|e| matches!(e, Event::Close { .. })) {
        assert!(start.elapsed() < Duration::from_secs(60), "driver: no end");
        if let Some(e) = driver.next_event(Some(Duration::from_millis(1))) {
            script(&mut driver, id, Some(&e), start.elapsed(), &mut state);
            log.push(e);
        }
        script(&mut driver, id, None, start.elapsed(), &mut state);
    }
    let _ = done.send(());
    log
}

/// Runs the script both ways (the sim under a few seeds) and compares.
#[track_caller]
fn same(kind: PeerKind, options: TcpOptions, suspend: bool, script: Script, expect: &[&str]) {
    let real = normalize(&on_driver(kind, &options, suspend, script));
    let names: Vec<String> = real.iter().map(|e| format!("{e:?}")).collect();
    assert!(
        names.iter().zip(expect).all(|(n, x)| n.starts_with(x)) && names.len() == expect.len(),
        "{kind:?}: the driver gave {names:?}, expected {expect:?}"
    );
    for seed in 0..4 {
        let sim = normalize(&on_sim(seed, kind, &options, suspend, script));
        assert_eq!(sim, real, "{kind:?}, seed {seed}: sim against driver");
    }
}

fn binary() -> TcpOptions {
    TcpOptions::default().binary_type(BinaryType::ArrayBuffer)
}

#[test]
fn echo() {
    fn script(api: &mut dyn Sockets, id: TcpId, e: Option<&Event>, _: Duration, got: &mut u64) {
        match e {
            Some(Event::Open { .. }) => send(api, id, pattern(100_000)),
            Some(Event::Data { data, .. }) => {
                *got += data.as_bytes().len() as u64;
                if *got == 100_000 {
                    let _ = api.tcp_close(id);
                }
            }
            _ => {}
        }
    }
    same(
        PeerKind::Echo,
        binary(),
        false,
        script,
        &["Open", "Drain", "Data(100000", "Close"],
    );
}

#[test]
fn peer_never_reads() {
    fn script(api: &mut dyn Sockets, id: TcpId, e: Option<&Event>, _: Duration, _: &mut u64) {
        if let Some(Event::Open { .. }) = e {
            send(api, id, pattern(8 << 20));
            let _ = api.tcp_close(id);
        }
    }
    let expect = ["Open", "Error(\"NetworkTimeoutError\")", "Close"];
    same(PeerKind::NeverReads, binary(), false, script, &expect);
}

#[test]
fn close_while_the_peer_writes() {
    fn script(api: &mut dyn Sockets, id: TcpId, e: Option<&Event>, _: Duration, _: &mut u64) {
        if let Some(Event::Open { .. }) = e {
            send(api, id, pattern(100_000));
            let _ = api.tcp_close(id);
        }
    }
    let kind = PeerKind::WritesWhileReading(1 << 20);
    same(kind, binary(), false, script, &["Open", "Drain", "Close"]);
}

#[test]
fn reset_mid_transfer() {
    fn script(api: &mut dyn Sockets, id: TcpId, e: Option<&Event>, _: Duration, _: &mut u64) {
        // Far more than the kernels' buffers take before the reset (loopback's autotuning once
        // took all of 4 MiB, and the kernel run rightly had a Drain first), below the core's
        // 16 MiB limit.
        if let Some(Event::Open { .. }) = e {
            send(api, id, pattern(15 << 20));
        }
    }
    let expect = ["Open", "Error(\"NetworkInterruptError\")", "Close"];
    same(
        PeerKind::ResetsAfter(64 << 10),
        binary(),
        false,
        script,
        &expect,
    );
}

#[test]
fn refused() {
    fn script(_: &mut dyn Sockets, _: TcpId, _: Option<&Event>, _: Duration, _: &mut u64) {}
    let expect = ["Error(\"ConnectionRefusedError\")", "Close"];
    same(PeerKind::Refused, binary(), false, script, &expect);
}

#[test]
fn our_halfclose() {
    fn script(api: &mut dyn Sockets, id: TcpId, e: Option<&Event>, _: Duration, _: &mut u64) {
        if let Some(Event::Open { .. }) = e {
            send(api, id, b"half and half".to_vec());
            let _ = api.tcp_halfclose(id);
        }
    }
    same(
        PeerKind::Echo,
        binary(),
        false,
        script,
        &["Open", "Data(13", "Close"],
    );
}

#[test]
fn their_halfclose() {
    fn script(api: &mut dyn Sockets, id: TcpId, e: Option<&Event>, _: Duration, _: &mut u64) {
        if let Some(Event::HalfClose { .. }) = e {
            send(api, id, b"bye".to_vec());
            let _ = api.tcp_close(id);
        }
    }
    let options = binary().allow_half_open(true);
    let expect = ["Open", "Data(1000", "HalfClose", "Close"];
    same(
        PeerKind::SendsThenFin(1000),
        options,
        false,
        script,
        &expect,
    );
}

#[test]
fn suspend_with_a_flooding_peer() {
    fn script(
        api: &mut dyn Sockets,
        id: TcpId,
        e: Option<&Event>,
        at: Duration,
        resumed: &mut u64,
    ) {
        if e.is_none() && at > Duration::from_millis(300) && *resumed == 0 {
            *resumed = 1;
            let _ = api.tcp_resume(id);
        }
    }
    let kind = PeerKind::SendsThenFin(2 << 20);
    same(
        kind,
        binary(),
        true,
        script,
        &["Open", "Data(2097152", "Close"],
    );
}

// ---- a scripted client against the app's server -----------------------------------------------

/// What the app's server sends each connection first.
const GREETING: &[u8] = b"220 ready\r\n";

/// What the client does, on both sides (`Sim::peer_connect` and a real `TcpStream`).
#[derive(Clone, Copy, Debug)]
enum ClientKind {
    /// Sends this many bytes and half-closes at once, reading to the end meanwhile.
    SendsThenHalfCloses(usize),
    /// Reads to the end, then closes (the server closes after its greeting).
    ReadsToEnd,
    /// Reads the greeting, then resets (linger 0).
    ResetsAfterGreeting,
}

/// The app's server, the same on both sides: greets each connection, echoes what it
/// receives, and closes at once after the greeting for `ReadsToEnd`. The client's FIN closes
/// the socket (`allowHalfOpen` false).
fn serve(api: &mut dyn Sockets, kind: ClientKind, event: &Event) {
    match event {
        Event::Connect { socket, .. } => {
            send(api, *socket, GREETING.to_vec());
            if let ClientKind::ReadsToEnd = kind {
                let _ = api.tcp_close(*socket);
            }
        }
        Event::Data { id, data } => send(api, *id, data.as_bytes().to_vec()),
        _ => {}
    }
}

/// The accepted socket's events, and what the client received.
type ServerRun = (Vec<Event>, Vec<u8>);

fn accepted_socket_event(e: &Event) -> bool {
    matches!(
        e,
        Event::Connect { .. }
            | Event::Data { .. }
            | Event::Drain {
                id: SocketId::TcpId(_)
            }
            | Event::HalfClose { .. }
            | Event::Error {
                id: SocketId::TcpId(_),
                ..
            }
            | Event::Close {
                id: SocketId::TcpId(_)
            }
    )
}

fn server_options() -> ServerOptions {
    ServerOptions::default().binary_type(BinaryType::ArrayBuffer)
}

/// `suspend`: the server is suspended from the start and resumed only once the client has
/// connected and sent everything (the kernel completes the handshake and queues the
/// connection, as Linux's accept queue).
fn server_on_sim(seed: u64, kind: ClientKind, suspend: bool) -> ServerRun {
    let mut sim = Sim::with_config(seed, SimConfig::default().core(config()));
    let server = sim
        .add_host("server", &["127.0.0.2".parse().unwrap()])
        .unwrap();
    let options = server_options().local_port(Some(9));
    let id = sim.host(server).unwrap().server_listen(options).unwrap();
    let _ = sim.run();
    if suspend {
        sim.host(server).unwrap().server_suspend(id).unwrap();
    }
    let script = match kind {
        ClientKind::SendsThenHalfCloses(n) => SimPeer {
            after_greeting: sockstate::sim::AfterGreeting::Close,
            ..SimPeer::send(pattern(n))
        },
        ClientKind::ReadsToEnd | ClientKind::ResetsAfterGreeting => SimPeer::sink(),
    };
    let from = "192.0.2.1:0".parse().unwrap();
    let conn = sim
        .peer_connect(from, "127.0.0.2:9".parse().unwrap(), script)
        .unwrap();
    let (start, mut log, mut reset) = (sim.now(), Vec::new(), false);
    let mut suspended = suspend;
    while !log.iter().any(|e| matches!(e, Event::Close { .. })) {
        assert!(
            sim.now() - start < Duration::from_secs(60),
            "sim: no end: {log:?} reset {reset}"
        );
        let sent = sim.peer_sent(conn).map_or(0, <[u8]>::len);
        if suspended && sim.peer_state(conn) == Some(PeerState::Open) && sent == sent_by(kind) {
            assert!(log.is_empty(), "sim: accepted while suspended");
            suspended = false;
            sim.host(server).unwrap().server_resume(id).unwrap();
        }
        if let Some((_, e)) = sim.next_event_within(Duration::from_millis(1)) {
            serve(&mut sim.host(server).unwrap(), kind, &e);
            if accepted_socket_event(&e) {
                log.push(e);
            }
        }
        let got = sim.peer_received(conn).map_or(0, <[u8]>::len);
        if matches!(kind, ClientKind::ResetsAfterGreeting) && got >= GREETING.len() && !reset {
            reset = true;
            sim.peer_reset(conn).unwrap();
        }
    }
    let _ = sim.run();
    assert_eq!(sim.violations(), [], "sim violations");
    assert!(
        matches!(sim.peer_state(conn), Some(PeerState::Closed)),
        "the scripted client ended: {:?}",
        sim.peer_state(conn)
    );
    (log, sim.peer_received(conn).unwrap_or_default().to_vec())
}

/// What the client sends.
fn sent_by(kind: ClientKind) -> usize {
    match kind {
        ClientKind::SendsThenHalfCloses(n) => n,
        ClientKind::ReadsToEnd | ClientKind::ResetsAfterGreeting => 0,
    }
}

/// The real client on loopback, in a thread: what it received. `sent` hears when it has
/// connected and sent everything.
fn real_client(port: u16, kind: ClientKind, sent: mpsc::Sender<()>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let read_all = |s: &mut TcpStream| {
            let (mut got, mut buf) = (Vec::new(), vec![0; 65536]);
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            got
        };
        match kind {
            ClientKind::SendsThenHalfCloses(n) => {
                let mut w = s.try_clone().unwrap();
                let writer = thread::spawn(move || {
                    let _ = w.write_all(&pattern(n));
                    let _ = w.shutdown(Shutdown::Write);
                    let _ = sent.send(());
                });
                let got = read_all(&mut s);
                let _ = writer.join();
                got
            }
            ClientKind::ReadsToEnd => {
                let _ = sent.send(());
                read_all(&mut s)
            }
            ClientKind::ResetsAfterGreeting => {
                let _ = sent.send(());
                let mut got = vec![0; GREETING.len()];
                s.read_exact(&mut got).unwrap();
                socket2::SockRef::from(&s)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
                got
            }
        }
    })
}

fn server_on_driver(kind: ClientKind, suspend: bool) -> ServerRun {
    let mut driver = Driver::new(Config::default().core(config())).unwrap();
    let options = server_options().local_address(Some("127.0.0.1".parse().unwrap()));
    let server = driver.listen(options).unwrap();
    if suspend {
        driver.server_suspend(server).unwrap();
    }
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    while driver
        .server(server)
        .and_then(|s| s.local_address())
        .is_none_or(|a| a.port() == 0)
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "driver: not listening"
        );
        let _ = driver.next_event(Some(Duration::from_millis(1)));
    }
    let port = driver
        .server(server)
        .unwrap()
        .local_address()
        .unwrap()
        .port();
    let (sent_tx, sent) = mpsc::channel();
    let client = real_client(port, kind, sent_tx);
    let mut log = Vec::new();
    let mut suspended = suspend;
    while !log.iter().any(|e| matches!(e, Event::Close { .. })) {
        assert!(start.elapsed() < Duration::from_secs(60), "driver: no end");
        if suspended && sent.try_recv().is_ok() {
            assert!(log.is_empty(), "driver: accepted while suspended");
            suspended = false;
            driver.server_resume(server).unwrap();
        }
        if let Some(e) = driver.next_event(Some(Duration::from_millis(1))) {
            serve(&mut driver, kind, &e);
            if accepted_socket_event(&e) {
                log.push(e);
            }
        }
    }
    (log, client.join().unwrap())
}

/// Runs the client both ways (the sim under a few seeds) and compares the accepted socket's
/// transcript and what the client received.
#[track_caller]
fn same_server(kind: ClientKind, suspend: bool, expect: &[&str], received: &[u8]) {
    let (events, got) = server_on_driver(kind, suspend);
    let real = normalize(&events);
    let names: Vec<String> = real.iter().map(|e| format!("{e:?}")).collect();
    assert!(
        names.iter().zip(expect).all(|(n, x)| n.starts_with(x)) && names.len() == expect.len(),
        "{kind:?}: the driver gave {names:?}, expected {expect:?}"
    );
    assert_eq!(got, received, "{kind:?}: the real client received");
    for seed in 0..4 {
        let (events, got) = server_on_sim(seed, kind, suspend);
        assert_eq!(
            normalize(&events),
            real,
            "{kind:?}, seed {seed}: sim against driver"
        );
        assert_eq!(
            got, received,
            "{kind:?}, seed {seed}: the scripted client received"
        );
    }
}

#[test]
fn a_client_sends_and_half_closes_to_an_echo_server() {
    let n = 30_000; // under the high-water mark: no Drain on either side
    let mut received = GREETING.to_vec();
    received.extend_from_slice(&pattern(n));
    let kind = ClientKind::SendsThenHalfCloses(n);
    same_server(kind, false, &["Connect", "Data(30000", "Close"], &received);
}

#[test]
fn a_client_connects_and_sends_to_a_suspended_server_before_it_accepts() {
    let n = 30_000; // within the queued connection's receive window
    let mut received = GREETING.to_vec();
    received.extend_from_slice(&pattern(n));
    let kind = ClientKind::SendsThenHalfCloses(n);
    same_server(kind, true, &["Connect", "Data(30000", "Close"], &received);
}

#[test]
fn a_server_greets_and_closes_a_client_that_reads_to_the_end() {
    same_server(
        ClientKind::ReadsToEnd,
        false,
        &["Connect", "Close"],
        GREETING,
    );
}

#[test]
fn a_client_resets_after_the_greeting() {
    let expect = ["Connect", "Error(\"NetworkInterruptError\")", "Close"];
    same_server(ClientKind::ResetsAfterGreeting, false, &expect, GREETING);
}

// ---- the accept queue beyond its backlog -------------------------------------------------------

/// Which of three clients (started 50 ms apart) are connected while the app's server, with
/// backlog 1, is suspended, and how many the server accepts once resumed at 500 ms. As Linux,
/// two wait in the accept queue (`backlog + 1`), the third's SYN is dropped and its 1 s retry
/// connects it after the resume.
type QueueRun = (Vec<bool>, Vec<bool>, usize);

fn queue_options() -> ServerOptions {
    server_options().backlog(1)
}

fn queue_on_sim(seed: u64) -> QueueRun {
    let mut sim = Sim::with_config(seed, SimConfig::default().core(config()));
    let server = sim
        .add_host("server", &["127.0.0.2".parse().unwrap()])
        .unwrap();
    let options = queue_options().local_port(Some(9));
    let id = sim.host(server).unwrap().server_listen(options).unwrap();
    let _ = sim.run();
    sim.host(server).unwrap().server_suspend(id).unwrap();
    let mut conns = Vec::new();
    for i in 0..3 {
        let from = format!("192.0.2.{}:0", i + 1).parse().unwrap();
        let to = "127.0.0.2:9".parse().unwrap();
        conns.push(sim.peer_connect(from, to, SimPeer::sink()).unwrap());
        let _ = sim.run_for(Duration::from_millis(50));
    }
    let open = |sim: &Sim| -> Vec<bool> {
        let open = |c| sim.peer_state(c) == Some(PeerState::Open);
        conns.iter().map(|c| open(*c)).collect()
    };
    let _ = sim.run_for(Duration::from_millis(350)); // 500 ms
    let before = open(&sim);
    sim.host(server).unwrap().server_resume(id).unwrap();
    let events = sim.run_for(Duration::from_millis(1500));
    let accepted = events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Connect { .. }))
        .count();
    assert_eq!(sim.violations(), [], "sim violations");
    (before, open(&sim), accepted)
}

fn queue_on_driver() -> QueueRun {
    let mut driver = Driver::new(Config::default().core(config())).unwrap();
    let options = queue_options().local_address(Some("127.0.0.1".parse().unwrap()));
    let server = driver.listen(options).unwrap();
    driver.server_suspend(server).unwrap();
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let port = loop {
        let port = driver.server(server).and_then(|s| s.local_address());
        if let Some(port) = port.map(|a| a.port()).filter(|p| *p != 0) {
            break port;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "not listening");
        let _ = driver.next_event(Some(Duration::from_millis(1)));
    };
    // Each client connects in a thread and says when (connect returns once the kernel
    // completed the handshake, accepted or not).
    let (tx, rx) = mpsc::channel();
    let mut clients = Vec::new();
    #[allow(clippy::disallowed_methods)]
    let t0 = Instant::now();
    for i in 0..3 {
        let tx = tx.clone();
        clients.push(thread::spawn(move || {
            let to = SocketAddr::from(([127, 0, 0, 1], port));
            let s = TcpStream::connect_timeout(&to, Duration::from_secs(10));
            let _ = tx.send((i, t0.elapsed()));
            s.ok()
        }));
        thread::sleep(Duration::from_millis(50));
    }
    let mut connected = [None; 3];
    let mut accepted = 0;
    let mut resumed = false;
    while t0.elapsed() < Duration::from_millis(2000) {
        let _ = driver.next_event(Some(Duration::from_millis(1))).map(|e| {
            accepted += usize::from(matches!(e, Event::Connect { .. }));
        });
        while let Ok((i, at)) = rx.try_recv() {
            connected[i] = Some(at);
        }
        if !resumed && t0.elapsed() >= Duration::from_millis(500) {
            resumed = true;
            assert_eq!(accepted, 0, "driver: accepted while suspended");
            driver.server_resume(server).unwrap();
        }
    }
    let before = connected.map(|c| c.is_some_and(|at| at < Duration::from_millis(500)));
    let after = connected.map(|c| c.is_some());
    let _streams: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    (before.to_vec(), after.to_vec(), accepted)
}

#[test]
fn a_suspended_server_queues_its_backlog_plus_one_and_the_next_client_retries_its_syn() {
    let real = queue_on_driver();
    assert_eq!(
        real,
        (vec![true, true, false], vec![true, true, true], 3),
        "the kernel (backlog 1 holds 2)"
    );
    for seed in 0..4 {
        assert_eq!(queue_on_sim(seed), real, "seed {seed}: sim against driver");
    }
}
