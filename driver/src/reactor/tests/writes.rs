//! Writes: a blocked write going on when the peer reads, writability asked only when a write
//! would block, the unacked query.

use super::*;

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
