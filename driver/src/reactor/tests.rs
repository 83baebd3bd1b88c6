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

#[test]
fn a_read_stopped_by_the_per_turn_limit_goes_on_at_the_next_turn_without_a_new_event() {
    use std::io::Write;
    in_each_mode(limits(), |mode, poller, reactor| {
        // One 4 KiB read per turn.
        let (_id, mut peer) = connected(poller, reactor, true);
        let sent: Vec<u8> = (0..64 << 10).map(|i| (i % 251) as u8).collect();
        peer.write_all(&sent).unwrap();
        // The peer sends nothing more, so no further event can come: each turn after the
        // first must take the next chunk at once, never waiting out the long timeout.
        let started = Instant::now();
        let mut got = Vec::new();
        let mut reports = Vec::new();
        while got.len() < sent.len() && started.elapsed() < Duration::from_secs(4) {
            reactor
                .wait(poller, Some(Duration::from_secs(5)), &mut reports)
                .unwrap();
            let turn = received(&mut reports);
            assert!(turn.len() <= 4096, "{mode:?}: one read per turn");
            got.extend(turn);
        }
        assert_eq!(
            got, sent,
            "{mode:?}: everything, in order, without stalling"
        );
    })
}

#[test]
fn ready_sockets_are_served_a_few_per_turn_in_rounds_and_new_readiness_waits_for_the_next() {
    use std::io::Write;
    for mode in MODES {
        let poller = Poller::new().unwrap();
        let one = Limits {
            sources_per_turn: 1,
            ..limits()
        };
        let mut reactor = Reactor::new(&poller, mode, one);
        let core = &mut Core::new(sockstate::Config::default());
        let mut sockets: Vec<_> = (0..3)
            .map(|_| connected_in(core, &poller, &mut reactor, true))
            .collect();
        let id_of = |reports: &[Report]| match reports {
            [Report::Input(Input::Received { id, .. })] => *id,
            other => panic!("{mode:?}: one read expected, got {other:?}"),
        };
        for (_, peer) in &mut sockets {
            peer.write_all(b"a").unwrap();
        }
        let mut reports = Vec::new();
        // The first turn takes the three events (waiting for them if need be) and serves
        // one socket; each later turn serves the next without waiting.
        let each = Duration::from_millis(100);
        wait_until(&poller, &mut reactor, &mut reports, each, |r| !r.is_empty());
        let first = id_of(&reports);
        reports.clear();
        // Meanwhile the first socket gets more: it waits for the next round.
        let at = sockets.iter().position(|(id, _)| *id == first).unwrap();
        sockets[at].1.write_all(b"b").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let mut served = vec![first];
        for _ in 0..2 {
            let started = Instant::now();
            reactor
                .wait(&poller, Some(Duration::from_secs(5)), &mut reports)
                .unwrap();
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{mode:?}: no wait"
            );
            served.push(id_of(&reports));
            reports.clear();
        }
        let mut all: Vec<TcpId> = sockets.iter().map(|(id, _)| *id).collect();
        all.sort_by_key(|id| id.serial());
        served.sort_by_key(|id| id.serial());
        assert_eq!(served, all, "{mode:?}: each socket once in the round");
        // The next round: the first socket's new byte.
        wait_until(&poller, &mut reactor, &mut reports, each, |r| !r.is_empty());
        assert_eq!(id_of(&reports), first, "{mode:?}");
        reactor.close_all(&poller);
    }
}

#[test]
fn an_end_of_stream_that_came_with_the_last_bytes_is_reported() {
    use std::io::Write;
    in_each_mode(
        Limits {
            reads_per_turn: 4,
            ..limits()
        },
        |mode, poller, reactor| {
            let (_id, mut peer) = connected(poller, reactor, true);
            // Bytes and FIN queued before the reactor looks: one event for both, and a read
            // takes the bytes only; nothing more will arrive to raise another event.
            peer.write_all(b"last words").unwrap();
            peer.shutdown(Shutdown::Write).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            let mut reports = Vec::new();
            let each = Duration::from_secs(1);
            wait_until(poller, reactor, &mut reports, each, |r| {
                r.iter()
                    .any(|r| matches!(r, Report::Input(Input::Eof { .. })))
            });
            let eof = reports.pop();
            assert!(
                matches!(eof, Some(Report::Input(Input::Eof { .. }))),
                "{mode:?}"
            );
            assert_eq!(received(&mut reports), b"last words", "{mode:?}");
        },
    )
}

#[test]
fn reading_resumed_over_data_already_reported_reads_it_without_new_data() {
    use std::io::Write;
    in_each_mode(limits(), |mode, poller, reactor| {
        let (id, mut peer) = connected(poller, reactor, false);
        peer.write_all(b"hello").unwrap();
        // Not reading: the arrival may wake the loop (edge-triggered) but reads nothing.
        let mut reports = Vec::new();
        for _ in 0..3 {
            reactor
                .wait(poller, Some(Duration::from_millis(50)), &mut reports)
                .unwrap();
        }
        assert!(reports.is_empty(), "{mode:?}: read while not reading");
        reactor.set_reading(poller, id.into(), true, &mut reports);
        let started = Instant::now();
        reactor
            .wait(poller, Some(Duration::from_secs(5)), &mut reports)
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{mode:?}: waited"
        );
        assert_eq!(received(&mut reports), b"hello", "{mode:?}");
    })
}

#[test]
fn a_blocked_write_goes_on_when_the_peer_reads() {
    use std::io::Read;
    in_each_mode(limits(), |mode, poller, reactor| {
        let (id, mut peer) = connected(poller, reactor, false);
        let mut reports = Vec::new();
        let key = reactor.main(id.into()).unwrap();
        let mut written = write_until_held(poller, reactor, id);
        let source = reactor.sources.get(key).unwrap();
        assert!(
            source.pending.is_some() && !source.ready.write,
            "{mode:?}: held"
        );
        assert!(source.armed.write, "{mode:?}: waiting for writability");
        // The peer drains what was written; the held write then goes out by itself.
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0; 1 << 20];
            let mut total = 0;
            while let Ok(n) = peer.read(&mut buf) {
                if n == 0 {
                    break;
                }
                total += n;
            }
            total
        });
        let each = Duration::from_millis(100);
        wait_until(poller, reactor, &mut reports, each, |r| !r.is_empty());
        assert!(
            matches!(&reports[..], [Report::Input(Input::Written { .. })]),
            "{mode:?}: {} reports",
            reports.len()
        );
        for r in reports.drain(..) {
            if let Report::Input(Input::Written { len, .. }) = r {
                written += len;
            }
        }
        reactor.close_all(poller);
        assert_eq!(reader.join().unwrap(), written, "{mode:?}");
    })
}

#[test]
fn an_accepted_socket_asks_for_writability_only_once_a_write_would_block() {
    let poller = Poller::new().unwrap();
    let mut reactor = Reactor::new(&poller, Mode::Edge, limits());
    let mut core = Core::new(sockstate::Config::default());
    let id = core
        .tcp_open(Instant::now(), "127.0.0.1", 9, TcpOptions::default())
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let _peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let accepted = Socket::from(listener.accept().unwrap().0);
    accepted.set_nonblocking(true).unwrap();
    reactor.adopt(&poller, id, accepted).unwrap();
    let key = reactor.main(id.into()).unwrap();
    // Writable from the start, which would otherwise be an event for nothing.
    let want_read = Interest {
        read: true,
        write: false,
    };
    assert_eq!(reactor.sources.get(key).unwrap().armed, want_read);
    let mut reports = Vec::new();
    let started = Instant::now();
    reactor
        .wait(&poller, Some(Duration::from_millis(100)), &mut reports)
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(90), "woken");
    write_until_held(&poller, &mut reactor, id);
    assert_eq!(reactor.sources.get(key).unwrap().armed, Interest::BOTH);
    reactor.close_all(&poller);
}

/// What `QueryUnacked` answers after our FIN, for one connection.
fn query(reactor: &mut Reactor, id: TcpId) -> Vec<Report> {
    let mut reports = Vec::new();
    reactor.query_unacked(id, &mut reports);
    reports
}

#[test]
fn the_unacked_query_counts_what_the_peer_has_not_taken_and_reports_a_reset() {
    use std::io::Read;
    let poller = Poller::new().unwrap();
    let mut reactor = Reactor::new(&poller, Mode::Edge, limits());
    let core = &mut Core::new(sockstate::Config::default());
    let mut reports = Vec::new();
    let unacked = |r: &[Report]| match r {
        [Report::Input(Input::Unacked { bytes, .. })] => *bytes,
        other => panic!("{other:?}"),
    };
    // A peer that reads nothing: what its buffers cannot take stays ours, FIN included.
    let (id, mut peer) = connected_in(core, &poller, &mut reactor, true);
    peer.set_nonblocking(true).unwrap();
    let taken = write_until_held(&poller, &mut reactor, id);
    let key = reactor.main(id.into()).unwrap();
    reactor.sources.get_mut(key).unwrap().pending = None; // the core would hold it
    reactor.shutdown(id, &mut reports);
    assert!(reports.is_empty(), "{reports:?}");
    let held = unacked(&query(&mut reactor, id)).unwrap();
    assert!(held > 0 && held <= taken + 1, "{held} of {taken}");
    // As the peer reads, its kernel takes (and acknowledges) the rest and the FIN, until
    // nothing is left (bounded wait).
    let mut got = 0;
    let mut buf = vec![0; 1 << 16];
    let start = Instant::now();
    let mut left = Some(held);
    while left != Some(0) && start.elapsed() < Duration::from_secs(5) {
        match peer.read(&mut buf) {
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => panic!("{e}"),
        }
        left = unacked(&query(&mut reactor, id));
    }
    assert_eq!(left, Some(0));
    // 0 means the peer's kernel has it all, read or not: the rest and the FIN are there.
    peer.set_nonblocking(false).unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    loop {
        match peer.read(&mut buf).unwrap() {
            0 => break,
            n => got += n,
        }
    }
    assert_eq!(got, taken);
    reactor.release(&poller, id.into());
    // A peer that resets while our bytes are unacknowledged: the query reports the failure.
    let (id, peer) = connected_in(core, &poller, &mut reactor, false);
    write_until_held(&poller, &mut reactor, id);
    let key = reactor.main(id.into()).unwrap();
    reactor.sources.get_mut(key).unwrap().pending = None;
    socket2::SockRef::from(&peer)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(peer); // unread data and linger 0: RST
    let start = Instant::now();
    let mut out = query(&mut reactor, id);
    while !matches!(out[..], [Report::Input(Input::Failed { .. })])
        && start.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(1));
        out = query(&mut reactor, id);
    }
    assert!(
        matches!(
            out[..],
            [Report::Input(Input::Failed {
                error: io::ErrorKind::ConnectionReset,
                ..
            })]
        ),
        "{out:?}"
    );
    assert!(
        query(&mut reactor, id).is_empty(),
        "a dead source answers no more"
    );
    reactor.release(&poller, id.into());
    reactor.close_all(&poller);
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

#[test]
fn accepted_connections_have_no_delay_and_the_read_hint() {
    let poller = Poller::new().unwrap();
    let mut reactor = Reactor::new(&poller, Mode::Edge, limits());
    let (_, local) = listening(&poller, &mut reactor);
    let mut reports = Vec::new();
    let _client = std::net::TcpStream::connect(local).unwrap();
    let each = Duration::from_millis(100);
    wait_until(&poller, &mut reactor, &mut reports, each, |r| !r.is_empty());
    let [Report::Accepted { socket, .. }] = &reports[..] else {
        panic!("one connection accepted: {reports:?}");
    };
    assert!(socket.tcp_nodelay().unwrap(), "TCP_NODELAY");
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::fd::AsRawFd;
        let (mut on, mut len): (libc::c_int, libc::socklen_t) = (0, 4);
        // SAFETY: a valid descriptor and an option buffer of the size given.
        let r = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::SOL_TCP,
                libc::TCP_INQ,
                (&mut on as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!((r, on), (0, 1), "TCP_INQ");
    }
    reactor.close_all(&poller);
}

#[test]
#[cfg(unix)]
fn new_sockets_are_non_blocking() {
    for (ty, protocol) in [(Type::STREAM, Protocol::TCP), (Type::DGRAM, Protocol::UDP)] {
        let socket = new_socket(Domain::IPV4, ty, protocol).unwrap();
        assert!(socket.nonblocking().unwrap(), "{ty:?}");
    }
}

#[test]
fn racing_attempts_report_the_winner_only_and_the_loser_is_closed_on_abort() {
    in_each_mode(limits(), |_, poller, reactor| {
        let mut core = Core::new(sockstate::Config::default());
        let id = core
            .tcp_open(Instant::now(), "127.0.0.1", 9, TcpOptions::default())
            .unwrap();
        let (hole, _keep) = black_hole();
        let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut reports = Vec::new();
        let connect = |reactor: &mut Reactor, attempt, to, reports: &mut Vec<Report>| {
            reactor.connect(
                poller,
                id,
                attempt,
                to,
                None,
                true,
                None,
                Default::default(),
                reports,
            );
        };
        connect(reactor, 0, hole, &mut reports);
        connect(reactor, 1, open.local_addr().unwrap(), &mut reports);
        assert!(reports.is_empty(), "both are in progress");
        assert_eq!(reactor.sources.len(), 2, "one OS socket per attempt");
        let end = Instant::now() + Duration::from_secs(5);
        while reports.is_empty() && Instant::now() < end {
            reactor
                .wait(poller, Some(Duration::from_millis(100)), &mut reports)
                .unwrap();
        }
        let inputs: Vec<Input> = reports
            .drain(..)
            .map(|r| match r {
                Report::Input(input) => input,
                Report::Accepted { .. } => panic!("nothing listens here"),
            })
            .collect();
        assert!(
            matches!(&inputs[..], [Input::Connected { attempt: 1, .. }]),
            "{inputs:?}"
        );
        // Nothing more of the loser, however long it is left alone.
        reactor
            .wait(poller, Some(Duration::from_millis(100)), &mut reports)
            .unwrap();
        assert!(reports.is_empty());
        reactor.abort_connect(poller, id, 0);
        assert_eq!(reactor.sources.len(), 1, "the loser's socket is closed");
        reactor.release(poller, id.into());
        assert!(reactor.sources.len() == 0 && reactor.is_idle());
    })
}

#[test]
fn a_resting_server_accepts_nothing_until_its_rest_is_over() {
    in_each_mode(limits(), |mode, poller, reactor| {
        let (id, local) = listening(poller, reactor);
        let mut reports = Vec::new();
        let key = reactor.main(id.into()).unwrap();
        // As after `accept` ran out of descriptors, with a connection waiting.
        let rest = Duration::from_millis(200);
        let started = Instant::now();
        reactor.rest(key, started + rest);
        reactor.sync(poller, key, &mut reports);
        if mode == Mode::Oneshot {
            assert_eq!(reactor.sources.get(key).unwrap().armed, Interest::NONE);
        }
        let _client = std::net::TcpStream::connect(local).unwrap();
        // Nothing is accepted meanwhile, and the wait ends with the rest, not the timeout.
        while started.elapsed() < rest {
            reactor
                .wait(poller, Some(Duration::from_secs(5)), &mut reports)
                .unwrap();
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "the rest never ended"
            );
            if started.elapsed() < rest {
                assert!(reports.is_empty(), "accepted while resting");
            }
        }
        assert!(reactor.resting.is_empty() && !reactor.sources.get(key).unwrap().resting);
        let end = Instant::now() + Duration::from_secs(5);
        while reports.is_empty() && Instant::now() < end {
            reactor
                .wait(poller, Some(Duration::from_millis(100)), &mut reports)
                .unwrap();
        }
        assert!(
            matches!(&reports[..], [Report::Accepted { server, .. }] if *server == id),
            "accepting again after the rest"
        );
        reports.clear();
    })
}

#[test]
fn small_reads_are_copied_out_of_the_buffer_and_large_ones_split_off_it() {
    use std::io::Write;
    let poller = Poller::new().unwrap();
    let mut reactor = Reactor::new(
        &poller,
        Mode::Edge,
        Limits {
            read_chunk: 64 << 10,
            ..limits()
        },
    );
    let mut reports = Vec::new();
    let (id, listener) = connecting(&poller, &mut reactor, &mut reports);
    let mut peer = listener.accept().unwrap().0;
    reactor.set_reading(&poller, id.into(), true, &mut reports);
    let mut read = |reactor: &mut Reactor, want: usize| {
        let mut got = Vec::new();
        let end = Instant::now() + Duration::from_secs(5);
        while got.iter().map(Bytes::len).sum::<usize>() < want && Instant::now() < end {
            reactor
                .wait(&poller, Some(Duration::from_millis(100)), &mut reports)
                .unwrap();
            got.extend(reports.drain(..).filter_map(|r| match r {
                Report::Input(Input::Received { data, .. }) => Some(data),
                _ => None,
            }));
        }
        got
    };
    peer.write_all(b"small").unwrap();
    let small = read(&mut reactor, 5);
    assert_eq!(small, [Bytes::from_static(b"small")]);
    let buffer = reactor.buf.as_ptr();
    assert!(!std::ptr::eq(small[0].as_ptr(), buffer), "copied out");
    peer.write_all(&[7; 8 << 10]).unwrap();
    let large = read(&mut reactor, 8 << 10);
    assert_eq!(large.concat(), [7; 8 << 10]);
    assert!(
        std::ptr::eq(large[0].as_ptr(), buffer),
        "split off the same buffer"
    );
    reactor.close_all(&poller);
}

#[test]
fn a_large_read_keeps_its_bytes_and_its_buffer_is_reused_only_once_dropped() {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let socket = Socket::from(listener.accept().unwrap().0);
    let mut buf = BytesMut::new();
    let mut read = |peer: &mut std::net::TcpStream, tag: u8| {
        let sent = [tag; SMALL_READ + 1];
        peer.write_all(&sent).unwrap();
        let (data, _) = recv_chunk(&socket, &mut buf, 4 * SMALL_READ).unwrap();
        assert_eq!(&data[..], sent);
        data
    };
    let first = read(&mut peer, 1);
    let held = first.as_ptr();
    drop(first);
    let second = read(&mut peer, 2);
    assert_eq!(
        second.as_ptr(),
        held,
        "nothing held it: the allocation is reused"
    );
    let third = read(&mut peer, 3);
    assert_ne!(
        third.as_ptr(),
        second.as_ptr(),
        "held reads are never written over"
    );
    assert!(second.iter().all(|&b| b == 2) && third.iter().all(|&b| b == 3));
    peer.shutdown(Shutdown::Write).unwrap();
    let (end, _) = recv_chunk(&socket, &mut buf, 4 * SMALL_READ).unwrap();
    assert!(end.is_empty(), "the end of the stream");
}

#[test]
#[cfg(any(target_os = "linux", target_os = "android"))]
fn a_read_says_whether_bytes_or_a_fin_are_left() {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let socket = Socket::from(listener.accept().unwrap().0);
    let mut buf = BytesMut::new();
    // Without `TCP_INQ` the kernel says nothing.
    peer.write_all(b"ab").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        recv_chunk(&socket, &mut buf, 1).unwrap(),
        (Bytes::from_static(b"a"), None)
    );
    want_inq(&socket);
    assert_eq!(
        recv_chunk(&socket, &mut buf, 1).unwrap(),
        (Bytes::from_static(b"b"), Some(false)),
        "nothing left"
    );
    peer.write_all(b"cde").unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        recv_chunk(&socket, &mut buf, 2).unwrap(),
        (Bytes::from_static(b"cd"), Some(true)),
        "a byte left"
    );
    assert_eq!(
        recv_chunk(&socket, &mut buf, 2).unwrap(),
        (Bytes::from_static(b"e"), Some(true)),
        "only the FIN left: read on"
    );
    let (end, _) = recv_chunk(&socket, &mut buf, 2).unwrap();
    assert!(end.is_empty(), "the end of the stream");
}

#[test]
fn a_source_that_wants_nothing_does_not_keep_waking_the_loop() {
    in_each_mode(limits(), |mode, poller, reactor| {
        let mut reports = Vec::new();
        let (id, listener) = connecting(poller, reactor, &mut reports);
        let each = Duration::from_millis(100);
        wait_until(poller, reactor, &mut reports, each, |r| !r.is_empty());
        reports.clear();
        // The peer closes at once: the socket is readable (EOF) and hung up, but the core
        // has not asked to read. One-shot: nothing is armed, so nothing wakes the loop.
        // Edge-triggered: the change wakes it once, the state that stays never again.
        drop(listener.accept().unwrap());
        drop(listener);
        let key = reactor.main(id.into()).unwrap();
        if mode == Mode::Oneshot {
            assert_eq!(reactor.sources.get(key).unwrap().armed, Interest::NONE);
        }
        let started = Instant::now();
        let mut early = 0;
        while started.elapsed() < Duration::from_millis(500) {
            let wait = Instant::now();
            reactor
                .wait(poller, Some(Duration::from_millis(100)), &mut reports)
                .unwrap();
            if wait.elapsed() < Duration::from_millis(90) {
                early += 1;
            }
        }
        assert!(reports.is_empty(), "{mode:?}");
        let most = if mode == Mode::Oneshot { 0 } else { 2 };
        assert!(early <= most, "{mode:?}: woken {early} times");
        // Asked to read, it sees the end of the stream.
        reactor.set_reading(poller, id.into(), true, &mut reports);
        reactor
            .wait(poller, Some(Duration::from_secs(2)), &mut reports)
            .unwrap();
        assert!(
            matches!(&reports[..], [Report::Input(Input::Eof { .. })]),
            "{mode:?}"
        );
    })
}

// ---- socket settings (issue 17 §4), read back with getsockopt -----------------------------

/// Linux doubles `SO_SNDBUF`/`SO_RCVBUF` for its bookkeeping and reads back the double;
/// elsewhere the value set (or more, rounded).
fn assert_buffer(read: usize, asked: u32, what: &str) {
    let asked = asked as usize;
    if cfg!(any(target_os = "linux", target_os = "android")) {
        assert_eq!(read, 2 * asked, "{what}");
    } else {
        assert!(read >= asked, "{what}: {read} < {asked}");
    }
}

const SETTINGS: sockstate::SocketSettings = sockstate::SocketSettings {
    send_buffer: Some(48 * 1024),
    receive_buffer: Some(24 * 1024),
    ipv6_only: false,
    broadcast: false,
    multicast_ttl: None,
    multicast_interface: None,
};

#[test]
fn connect_sets_buffer_sizes_and_the_keep_alive_delay() {
    let poller = Poller::new().unwrap();
    let mut reactor = Reactor::new(&poller, Mode::Edge, limits());
    let id = Core::new(sockstate::Config::default())
        .tcp_open(Instant::now(), "127.0.0.1", 9, TcpOptions::default())
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let to = listener.local_addr().unwrap();
    let mut reports = Vec::new();
    let delay = Some(Duration::from_secs(7));
    reactor.connect(
        &poller,
        id,
        0,
        to,
        None,
        true,
        delay,
        SETTINGS,
        &mut reports,
    );
    assert!(reports.is_empty(), "{reports:?}");
    let key = reactor.attempts[&id.serial()][0];
    let sock = reactor.sources.get(key).unwrap().io.sock();
    assert_buffer(sock.send_buffer_size().unwrap(), 48 * 1024, "SO_SNDBUF");
    assert_buffer(sock.recv_buffer_size().unwrap(), 24 * 1024, "SO_RCVBUF");
    assert!(sock.keepalive().unwrap(), "SO_KEEPALIVE");
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "macos"))]
    assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(7));
    reactor.close_all(&poller);
}

#[test]
fn listen_sets_ipv6_only_and_buffer_sizes_which_accepted_sockets_inherit() {
    let poller = Poller::new().unwrap();
    let mut reactor = Reactor::new(&poller, Mode::Edge, limits());
    let mut core = Core::new(sockstate::Config::default());
    // Linux makes a socket bound to a specific IPv6 address (::1) IPv6-only whatever was
    // set; `false` is read back on an unbound socket below (tests bind loopback only).
    for (local, only) in [("[::1]:0", true), ("127.0.0.1:0", false)] {
        let local: SocketAddr = local.parse().unwrap();
        let id = core
            .server_listen(Instant::now(), sockstate::ServerOptions::default())
            .unwrap();
        let mut reports = Vec::new();
        let settings = sockstate::SocketSettings {
            ipv6_only: only,
            ..SETTINGS
        };
        reactor.listen(&poller, id, local, 4, true, settings, &mut reports);
        let Some(Report::Input(Input::Listening { local, .. })) = reports.pop() else {
            if local.is_ipv6() {
                continue; // no IPv6 loopback here
            }
            panic!("not listening: {reports:?}");
        };
        let key = reactor.main(id.into()).unwrap();
        let sock = reactor.sources.get(key).unwrap().io.sock();
        if local.is_ipv6() {
            assert_eq!(sock.only_v6().unwrap(), only, "IPV6_V6ONLY");
        }
        assert_buffer(sock.send_buffer_size().unwrap(), 48 * 1024, "SO_SNDBUF");
        assert_buffer(sock.recv_buffer_size().unwrap(), 24 * 1024, "SO_RCVBUF");
        reactor.set_reading(&poller, id.into(), true, &mut reports);
        let _client = std::net::TcpStream::connect(local).unwrap();
        let each = Duration::from_millis(100);
        wait_until(&poller, &mut reactor, &mut reports, each, |r| {
            r.iter().any(|r| matches!(r, Report::Accepted { .. }))
        });
        let Some(Report::Accepted { socket, .. }) = reports.pop() else {
            panic!("accepted: {reports:?}");
        };
        assert_buffer(socket.recv_buffer_size().unwrap(), 24 * 1024, "inherited");
    }
    reactor.close_all(&poller);
}

#[test]
fn ipv6_only_is_set_either_way_on_an_ipv6_socket_and_never_on_an_ipv4_one() {
    use super::os::apply_settings;
    let v6: SocketAddr = "[::]:0".parse().unwrap();
    let Ok(socket) = new_socket(Domain::IPV6, Type::STREAM, Protocol::TCP) else {
        return; // no IPv6 here
    };
    for ipv6_only in [true, false, true] {
        let settings = sockstate::SocketSettings {
            ipv6_only,
            ..Default::default()
        };
        apply_settings(&socket, v6, &settings).unwrap();
        assert_eq!(socket.only_v6().unwrap(), ipv6_only);
    }
    let v4 = new_socket(Domain::IPV4, Type::DGRAM, Protocol::UDP).unwrap();
    apply_settings(&v4, "127.0.0.1:0".parse().unwrap(), &Default::default()).unwrap();
}
