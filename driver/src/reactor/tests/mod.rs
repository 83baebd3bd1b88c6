use std::io;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use bytes::Bytes;
use socket2::{Domain, Protocol, SockAddr, Type};
use sockstate::{Core, TcpId, TcpOptions};

use super::os::{bound_address, new_socket};
use super::sources::Interest;
use super::stream::{recv_chunk, want_inq, SMALL_READ};
use super::*;

/// Runs `test` once per registration mode, each with a new poller and reactor (closed
/// afterwards).
fn in_each_mode(limits: Limits, test: impl Fn(Mode, &Poller, &mut Reactor)) {
    for mode in MODES {
        let poller = Poller::new().unwrap();
        let mut reactor = Reactor::new(&poller, mode, limits);
        test(mode, &poller, &mut reactor);
        reactor.close_all(&poller);
    }
}

fn limits() -> Limits {
    Limits {
        read_chunk: 4096,
        reads_per_turn: 1,
        accepts_per_turn: 1,
        datagrams_per_turn: 1,
        sources_per_turn: 64,
        spin_polls: 0,
        multicast_interface_v4: None,
        multicast_interface_v6: 0,
    }
}

/// A connect attempt of a new TCP id to a new listener on 127.0.0.1.
fn connecting(
    poller: &Poller,
    reactor: &mut Reactor,
    reports: &mut Vec<Report>,
) -> (TcpId, std::net::TcpListener) {
    connecting_in(
        &mut Core::new(sockstate::Config::default()),
        poller,
        reactor,
        reports,
    )
}

/// [`connecting`] with an id of `core` (ids of one core are distinct).
fn connecting_in(
    core: &mut Core,
    poller: &Poller,
    reactor: &mut Reactor,
    reports: &mut Vec<Report>,
) -> (TcpId, std::net::TcpListener) {
    let id = core
        .tcp_open(Instant::now(), "127.0.0.1", 9, TcpOptions::default())
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let to = listener.local_addr().unwrap();
    reactor.connect(
        poller,
        id,
        0,
        to,
        None,
        true,
        None,
        Default::default(),
        reports,
    );
    (id, listener)
}

/// A listener that never accepts, its queue full: a connect to it neither succeeds nor
/// fails (the kernel drops the SYNs). Keep the returned sockets alive.
fn black_hole() -> (SocketAddr, Vec<Socket>) {
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    listener
        .bind(&SockAddr::from(SocketAddr::from(([127, 0, 0, 1], 0))))
        .unwrap();
    listener.listen(0).unwrap();
    let addr = bound_address(&listener).unwrap();
    let mut keep = vec![listener];
    for _ in 0..4 {
        let filler = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        filler.set_nonblocking(true).unwrap();
        let _ = filler.connect(&SockAddr::from(addr));
        keep.push(filler);
    }
    std::thread::sleep(Duration::from_millis(50));
    (addr, keep)
}

/// Both registration modes: edge-triggered is what runs here, one-shot what runs where
/// the poller has no edge mode.
const MODES: [Mode; 2] = [Mode::Edge, Mode::Oneshot];

/// Waits (each wait at most `each`) until `done` says so or five seconds passed.
fn wait_until(
    poller: &Poller,
    reactor: &mut Reactor,
    reports: &mut Vec<Report>,
    each: Duration,
    mut done: impl FnMut(&[Report]) -> bool,
) {
    let end = Instant::now() + Duration::from_secs(5);
    while !done(reports) && Instant::now() < end {
        reactor.wait(poller, Some(each), reports).unwrap();
    }
}

/// A connected stream (reading as `reading` says) and its accepted peer.
fn connected(
    poller: &Poller,
    reactor: &mut Reactor,
    reading: bool,
) -> (TcpId, std::net::TcpStream) {
    let core = &mut Core::new(sockstate::Config::default());
    connected_in(core, poller, reactor, reading)
}

/// [`connected`] with an id of `core`.
fn connected_in(
    core: &mut Core,
    poller: &Poller,
    reactor: &mut Reactor,
    reading: bool,
) -> (TcpId, std::net::TcpStream) {
    let mut reports = Vec::new();
    let (id, listener) = connecting_in(core, poller, reactor, &mut reports);
    let peer = listener.accept().unwrap().0;
    let each = Duration::from_millis(100);
    wait_until(poller, reactor, &mut reports, each, |r| !r.is_empty());
    assert!(
        matches!(&reports[..], [Report::Input(Input::Connected { .. })]),
        "connected: {reports:?}"
    );
    reports.clear();
    reactor.set_reading(poller, id.into(), reading, &mut reports);
    assert!(reports.is_empty());
    (id, peer)
}

/// Writes 256 KiB at a time until the OS takes nothing more and a write is held; returns
/// the bytes it took.
fn write_until_held(poller: &Poller, reactor: &mut Reactor, id: TcpId) -> usize {
    let chunk = Bytes::from(vec![9u8; 256 << 10]);
    let key = reactor.main(id.into()).unwrap();
    let mut reports = Vec::new();
    let mut written = 0;
    for _ in 0..1000 {
        reactor.write(poller, id.into(), chunk.clone(), &mut reports);
        for r in reports.drain(..) {
            match r {
                Report::Input(Input::Written { len, .. }) => written += len,
                _ => panic!("only writes"),
            }
        }
        if reactor.sources.get(key).unwrap().pending.is_some() {
            return written;
        }
    }
    panic!("the OS took 250 MiB without blocking")
}

/// The bytes received in `reports`, taken out.
fn received(reports: &mut Vec<Report>) -> Vec<u8> {
    let mut got = Vec::new();
    for report in reports.drain(..) {
        match report {
            Report::Input(Input::Received { data, .. }) => got.extend_from_slice(&data),
            Report::Input(input) => panic!("unexpected {input:?}"),
            Report::Accepted { .. } => panic!("nothing listens here"),
        }
    }
    got
}

/// A server of a new core listening on 127.0.0.1, accepting; its id and address.
fn listening(poller: &Poller, reactor: &mut Reactor) -> (ServerId, SocketAddr) {
    let mut core = Core::new(sockstate::Config::default());
    let id = core
        .server_listen(Instant::now(), sockstate::ServerOptions::default())
        .unwrap();
    let mut reports = Vec::new();
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    reactor.listen(
        poller,
        id,
        local,
        16,
        true,
        Default::default(),
        &mut reports,
    );
    let Some(Report::Input(Input::Listening { local, .. })) = reports.pop() else {
        panic!("not listening");
    };
    reactor.set_reading(poller, id.into(), true, &mut reports);
    (id, local)
}

mod connections;
mod reads;
mod settings;
mod turns;
mod writes;
