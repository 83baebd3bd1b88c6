//! How a turn of the loop serves sockets: the per-turn read limit, rounds among ready sockets,
//! reading resumed over data already reported, sources that want nothing.

use super::*;

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
