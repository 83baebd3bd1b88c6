//! TCP keep-alive in the simulated network, against Linux's `tcp_keepalive_timer` (the driver
//! sets only `TCP_KEEPIDLE`, so 75 s × 9 probes): a peer that answers keeps an idle connection
//! open for good, a silent one ends it with `NetworkTimeoutError` at exactly
//! `last heard + idle + 75 s × 9`, a restarted host resets it at the first probe that reaches
//! it, and without keep-alive nothing notices.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::{clean, ensure, seeds};
use sockstate::sim::{
    Call, Happening, HostId, Link, Peer, Returned, Sim, SimConfig, KEEP_ALIVE_INTERVAL,
    KEEP_ALIVE_PROBES,
};
use sockstate::{BinaryType, ErrorCode, Event, ServerOptions, SocketId, TcpId, TcpOptions};

const IDLE: Duration = Duration::from_secs(10);
const MS: Duration = Duration::from_millis(1);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A client core on 127.0.0.1, a server host on 127.0.0.2 with a scripted `peer` on port 7
/// (none: a core server there instead), links of exactly 1 ms, a clock that may run 10 h.
fn setup(seed: u64, peer: Option<Peer>) -> (Sim, HostId, HostId) {
    let link = Link::default().jitter(Duration::ZERO).latency(MS);
    let cfg = SimConfig::default()
        .link(link)
        .time_limit(Duration::from_secs(10 * 3600));
    let mut sim = Sim::with_config(seed, cfg);
    let client = sim.add_host("client", &[ip("127.0.0.1")]).unwrap();
    let server = sim.add_host("server", &[ip("127.0.0.2")]).unwrap();
    match peer {
        Some(peer) => sim
            .listen("127.0.0.2:7".parse::<SocketAddr>().unwrap(), peer)
            .unwrap(),
        None => {
            let options = ServerOptions::default().local_port(Some(7));
            let Ok(Returned::Listening(_)) = sim.call(server, Call::ServerListen { options })
            else {
                panic!("listen")
            };
        }
    }
    (sim, client, server)
}

/// Opens a connection from the client, keep-alive `idle` if set; it is open at 2 ms.
fn open(sim: &mut Sim, client: HostId, idle: Option<Duration>) -> TcpId {
    let options = TcpOptions::default()
        .binary_type(BinaryType::ArrayBuffer)
        .keep_alive(idle);
    let call = Call::TcpOpen {
        host: "127.0.0.2".into(),
        port: 7,
        options,
    };
    let Ok(Returned::Opened(id)) = sim.call(client, call) else {
        panic!("open")
    };
    let events = sim.run_for(Duration::from_millis(500));
    let opened = events
        .iter()
        .any(|(h, e)| *h == client && *e == Event::Open { id: id.into() });
    assert!(opened, "not open: {events:?}");
    id
}

/// Runs until the client's socket `id` gets an error: its code and the virtual time.
fn error_of(sim: &mut Sim, client: HostId, id: TcpId) -> Option<(ErrorCode, Duration)> {
    while let Some((host, event)) = sim.next_event_within(Duration::from_secs(3 * 3600)) {
        if let (true, Event::Error { id: e, error }) = (host == client, &event) {
            if *e == SocketId::from(id) {
                return Some((error.code, sim.now()));
            }
        }
    }
    None
}

/// The virtual times of the keep-alive probes sent so far.
fn probes(sim: &Sim) -> Vec<Duration> {
    sim.transcript()
        .iter()
        .filter(|r| {
            matches!(&r.what, Happening::Net(w) if w.split("keep-alive probe ").nth(1)
                .is_some_and(|n| n.starts_with(|c: char| c.is_ascii_digit())))
        })
        .map(|r| r.at)
        .collect()
}

/// When a connection opened at 2 ms, silent from before the first probe, times out.
fn silent_deadline() -> Duration {
    2 * MS + IDLE + KEEP_ALIVE_INTERVAL * KEEP_ALIVE_PROBES
}

#[test]
fn linux_defaults_are_75_s_and_9_probes() {
    assert_eq!(KEEP_ALIVE_INTERVAL, Duration::from_secs(75));
    assert_eq!(KEEP_ALIVE_PROBES, 9);
    assert_eq!(silent_deadline(), Duration::from_millis(685_002));
}

#[test]
fn a_peer_that_answers_keeps_an_idle_connection_open_for_good() {
    for seed in seeds().take(4) {
        // It never reads, writes or closes: its kernel answers the probes all the same.
        let (mut sim, client, _) = setup(seed, Some(Peer::stall()));
        let id = open(&mut sim, client, Some(IDLE));
        let events = sim.run_for(Duration::from_secs(3 * 3600));
        ensure(&sim, seed, events.is_empty(), "no event in 3 h");
        ensure(
            &sim,
            seed,
            sim.core(client).unwrap().tcp(id).is_some(),
            "still open",
        );
        let p = probes(&sim);
        // The first after the idle time, then one per interval (the answer restarts the idle
        // count, and the timer looks again an interval after each probe).
        ensure(&sim, seed, p[0] == 2 * MS + IDLE, "first probe at 10.002 s");
        ensure(
            &sim,
            seed,
            p.windows(2).all(|w| w[1] - w[0] == KEEP_ALIVE_INTERVAL),
            "then every 75 s",
        );
        ensure(&sim, seed, p.len() == 144, "144 probes in 3 h");
        clean(&sim, seed);
    }
}

#[test]
fn a_silenced_peer_times_out_after_idle_plus_interval_times_count() {
    for seed in seeds().take(4) {
        let (mut sim, client, _) = setup(seed, Some(Peer::sink()));
        let id = open(&mut sim, client, Some(IDLE));
        let conn = sim.conn_of(client, id).unwrap();
        sim.silence(conn).unwrap();
        let got = error_of(&mut sim, client, id);
        ensure(
            &sim,
            seed,
            got == Some((ErrorCode::NetworkTimeout, silent_deadline())),
            &format!("NetworkTimeoutError at 685.002 s, got {got:?}"),
        );
        let p = probes(&sim);
        ensure(
            &sim,
            seed,
            p.len() == KEEP_ALIVE_PROBES as usize,
            "nine probes",
        );
        let rest: Vec<_> = sim.run_for(Duration::from_secs(1)).into_iter().collect();
        ensure(
            &sim,
            seed,
            matches!(&rest[..], [(_, Event::Close { .. })]),
            "then Close",
        );
        clean(&sim, seed);
    }
}

/// Each way of going silent (from 1 s on) ends the connection at the same instant.
#[test]
fn a_crashed_partitioned_or_black_holed_peer_times_out_alike() {
    type Silence = fn(&mut Sim, HostId, HostId);
    let ways: [(&str, Silence); 4] = [
        ("crash", |sim, _, server| sim.crash(server).unwrap()),
        ("partition", |sim, client, server| {
            sim.partition(client, server)
        }),
        ("one-way partition of the answers", |sim, client, server| {
            sim.partition_oneway(server, client)
        }),
        ("black hole", |sim, _, _| sim.black_hole(ip("127.0.0.2"))),
    ];
    for (what, silence) in ways {
        for core_server in [false, true] {
            let peer = (!core_server).then(Peer::sink);
            let (mut sim, client, server) = setup(1, peer);
            let id = open(&mut sim, client, Some(IDLE));
            let _ = sim.run_for(Duration::from_millis(500));
            silence(&mut sim, client, server);
            let got = error_of(&mut sim, client, id);
            ensure(
                &sim,
                1,
                got == Some((ErrorCode::NetworkTimeout, silent_deadline())),
                &format!("{what} (core server: {core_server}): got {got:?}"),
            );
        }
    }
}

#[test]
fn answered_probes_start_the_count_over() {
    let (mut sim, client, server) = setup(3, Some(Peer::sink()));
    let id = open(&mut sim, client, Some(IDLE));
    // Probes at 10.002 s and 85.002 s are answered (the last at 85.004 s); then silence.
    let _ = sim.run_for(Duration::from_secs(100) - sim.now());
    sim.partition(client, server);
    let got = error_of(&mut sim, client, id);
    // Nine unanswered probes from 160.002 s on, 75 s apart; the timer gives up 75 s after
    // the last.
    let expect = Duration::from_millis(160_002) + KEEP_ALIVE_INTERVAL * KEEP_ALIVE_PROBES;
    assert_eq!(got, Some((ErrorCode::NetworkTimeout, expect)));
    assert_eq!(probes(&sim).len(), 2 + KEEP_ALIVE_PROBES as usize);
}

#[test]
fn a_restarted_host_answers_the_first_probe_that_reaches_it_with_a_reset() {
    for core_server in [false, true] {
        let peer = (!core_server).then(Peer::sink);
        let (mut sim, client, server) = setup(5, peer);
        let id = open(&mut sim, client, Some(IDLE));
        let _ = sim.run_for(Duration::from_secs(1) - sim.now());
        sim.crash(server).unwrap();
        let _ = sim.run_for(Duration::from_secs(20) - sim.now());
        sim.restart(server).unwrap();
        // The probe of 10.002 s was lost; the one of 85.002 s reaches the restarted host at
        // 85.003 s, whose reset is back at 85.004 s.
        let got = error_of(&mut sim, client, id);
        assert_eq!(
            got,
            Some((ErrorCode::NetworkInterrupt, Duration::from_millis(85_004))),
            "core server: {core_server}"
        );
        assert_eq!(sim.violations(), []);
    }
}

#[test]
fn without_keep_alive_a_silent_peer_goes_unnoticed_while_idle() {
    let (mut sim, client, server) = setup(2, Some(Peer::sink()));
    let id = open(&mut sim, client, None);
    sim.crash(server).unwrap();
    let events = sim.run_for(Duration::from_secs(5 * 3600));
    assert_eq!(events, []);
    assert!(sim.core(client).unwrap().tcp(id).is_some(), "still open");
    assert_eq!(probes(&sim), Vec::<Duration>::new());
}

#[test]
fn acknowledged_writes_count_as_hearing_from_the_peer() {
    // The peer reads and never writes; the app writes every 5 s, less than the idle time.
    let (mut sim, client, _) = setup(4, Some(Peer::sink()));
    let id = open(&mut sim, client, Some(IDLE));
    for _ in 0..60 {
        let data = vec![7u8; 10].into();
        sim.call(client, Call::TcpSend { id, data }).unwrap();
        let _ = sim.run_for(Duration::from_secs(5));
    }
    assert_eq!(probes(&sim), Vec::<Duration>::new(), "no probe while acked");
    let conn = sim.conn_of(client, id).unwrap();
    assert_eq!(sim.peer_received(conn).map(<[u8]>::len), Some(600));
}

#[test]
fn no_probe_while_data_is_unacknowledged() {
    // A peer that never reads: the window fills and the rest of the write stays
    // unacknowledged, so keep-alive stays quiet (TCP's zero-window probing is the watch).
    let (mut sim, client, _) = setup(6, Some(Peer::stall()));
    let id = open(&mut sim, client, Some(IDLE));
    let data = vec![1u8; 1 << 20].into();
    sim.call(client, Call::TcpSend { id, data }).unwrap();
    let events = sim.run_for(Duration::from_secs(3600));
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(probes(&sim), Vec::<Duration>::new());
}

#[test]
fn a_closed_connection_leaves_no_keep_alive_timer_behind() {
    // Idle longer than the run's time limit (1 h): a timer left behind would stop the run.
    let idle = Duration::from_secs(2 * 3600);
    for crash in [false, true] {
        let mut sim = Sim::new(7);
        let client = sim.add_host("client", &[ip("127.0.0.1")]).unwrap();
        sim.add_host("server", &[ip("127.0.0.2")]).unwrap();
        sim.listen(addr7(), Peer::echo()).unwrap();
        let id = open(&mut sim, client, Some(idle));
        if crash {
            sim.crash(client).unwrap();
        } else {
            sim.call(client, Call::TcpClose { id }).unwrap();
        }
        let _ = sim.run();
        clean(&sim, 7);
        assert!(
            sim.now() < Duration::from_secs(10),
            "ended at {:?}",
            sim.now()
        );
    }
}

fn addr7() -> SocketAddr {
    "127.0.0.2:7".parse().unwrap()
}

/// The timed-out end sends a reset, as Linux does: it reaches a server whose answers alone
/// were cut; across a partition it is lost, and the server's socket stays open (half-open)
/// until it sends, when the closed end resets it.
#[test]
fn the_reset_of_a_timed_out_end_goes_where_the_path_lets_it() {
    for both_ways in [false, true] {
        let (mut sim, client, server) = setup(8, None);
        let id = open(&mut sim, client, Some(IDLE));
        let accepted = sim.core(server).unwrap().tcp_ids().next().unwrap();
        let _ = sim.run_for(Duration::from_secs(1) - sim.now());
        if both_ways {
            sim.partition(client, server);
        } else {
            sim.partition_oneway(server, client);
        }
        let got = error_of(&mut sim, client, id);
        assert_eq!(got, Some((ErrorCode::NetworkTimeout, silent_deadline())));
        let mut events = sim.run_for(Duration::from_secs(10));
        if both_ways {
            assert_eq!(events, [(client, Event::Close { id: id.into() })]);
            sim.repair(client, server);
            assert_eq!(sim.run_for(Duration::from_secs(10)), []);
            let data = vec![1u8; 3].into();
            sim.call(server, Call::TcpSend { id: accepted, data })
                .unwrap();
            events = sim.run_for(Duration::from_secs(1));
        }
        let reset = events.iter().any(|(h, e)| {
            *h == server
                && matches!(e, Event::Error { id, error } if *id == SocketId::from(accepted)
                    && error.code == ErrorCode::NetworkInterrupt)
        });
        assert!(reset, "both ways: {both_ways}: {events:?}");
        assert_eq!(sim.violations(), []);
    }
}
