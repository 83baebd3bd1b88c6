//! Scenarios (`sockstate::sim::Scenario`, issue 15 point 5): links set before the app starts,
//! faults applied at their virtual times and undone when the run heals, the app's wake-ups, and
//! generated scenarios staying within their caps. Plus what the first fuzz target over them
//! found in the simulator.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use common::{clean, ensure, seeds};
use sockstate::sim::{
    Call, Fault, HostId, Link, LinkRule, Peer, Scenario, Sim, SimConfig, Step, Stop, Timed,
};
use sockstate::{
    ErrorCode, Event, ResolveError, ServerOptions, SocketId, Sockets, TcpId, TcpOptions,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn two_hosts(seed: u64) -> (Sim, HostId, HostId) {
    let link = Link::default().jitter(Duration::ZERO);
    let mut sim = Sim::with_config(seed, SimConfig::default().link(link));
    let a = sim.add_host("a.test", &[ip("127.0.0.1")]).unwrap();
    let b = sim.add_host("b.test", &[ip("127.0.0.2")]).unwrap();
    (sim, a, b)
}

/// Opens a TCP socket on `host` (through `Sockets`, as app code does).
fn open(sim: &mut Sim, host: HostId, to: &str, port: u16) -> TcpId {
    let mut net = sim.host(host).unwrap();
    net.tcp_open(to, port, TcpOptions::default()).unwrap()
}

fn at(ms: u64, fault: Fault) -> Timed {
    Timed {
        at: Duration::from_millis(ms),
        fault,
    }
}

/// `Sim::fail` on a connection whose SYN-ACK reaches the connecting core at the same instant
/// (here: from the event loop, as the other connection opens) must still end it on both
/// sides. It did not: the connect completed first and the failed connect that followed was
/// dropped, so the client's socket lived on (the checker's fault-ends-both-sides invariant).
#[test]
fn an_os_failure_as_the_connect_completes_ends_the_connection() {
    for seed in seeds() {
        let (mut sim, a, b) = two_hosts(seed);
        sim.listen("127.0.0.2:7".parse().unwrap(), Peer::echo())
            .unwrap();
        let first = open(&mut sim, a, "127.0.0.2", 7);
        let second = open(&mut sim, a, "127.0.0.2", 7);
        let mut events = Vec::new();
        while let Some((host, event)) = sim.next_event() {
            if matches!(event, Event::Open { id } if id == SocketId::from(first)) {
                let conn = sim.conn_of(a, second).unwrap();
                sim.fail(conn, std::io::ErrorKind::ConnectionReset).unwrap();
                sim.call(a, Call::TcpClose { id: first }).unwrap();
            }
            events.push((host, event));
        }
        clean(&sim, seed);
        let second_ended = events
            .iter()
            .any(|(_, e)| matches!(e, Event::Close { id } if *id == SocketId::from(second)));
        ensure(&sim, seed, second_ended, "the failed socket never closed");
        let _ = b;
    }
}

/// Links are set when the run starts, by host index; later rules for the same pair win.
#[test]
fn links_apply_by_host_index_before_the_app_starts() {
    let (mut sim, a, b) = two_hosts(1);
    sim.listen("127.0.0.2:7".parse().unwrap(), Peer::echo())
        .unwrap();
    let slow = Link::default().latency(Duration::from_millis(40));
    let scenario = Scenario::default().links(vec![
        LinkRule {
            a: 0,
            b: 1,
            link: Link::default(),
        },
        LinkRule {
            a: 3, // modulo 2: b
            b: 2, // a
            link: slow,
        },
    ]);
    let mut run = scenario.start(&mut sim, &[a, b]);
    let id = open(&mut sim, a, "127.0.0.2", 7);
    let mut opened_at = None;
    while let Some(step) = run.next(&mut sim) {
        if let Step::Event {
            event: Event::Open { .. },
            ..
        } = step
        {
            opened_at = Some(sim.now());
            sim.call(a, Call::TcpClose { id }).unwrap();
        }
    }
    // DNS-free open: SYN and SYN-ACK, 40 ms each.
    assert_eq!(opened_at, Some(Duration::from_millis(80)));
    clean(&sim, 1);
}

/// A partition at its time holds the data; the healing after the last fault repairs it, and
/// the echo completes then, not before.
#[test]
fn faults_fall_due_at_their_times_and_heal_after_the_last() {
    for seed in seeds() {
        let (mut sim, a, b) = two_hosts(seed);
        sim.listen("127.0.0.2:7".parse().unwrap(), Peer::echo())
            .unwrap();
        let scenario = Scenario::default()
            .faults(vec![at(
                10,
                Fault::Partition {
                    a: 0,
                    b: 1,
                    oneway: false,
                },
            )])
            .heal_after(Duration::from_secs(3));
        assert_eq!(scenario.heal_at(), Some(Duration::from_millis(3010)));
        let mut run = scenario.start(&mut sim, &[a, b]);
        let id = open(&mut sim, a, "127.0.0.2", 7);
        let mut echoed_at = None;
        while let Some(step) = run.next(&mut sim) {
            match step {
                Step::Event {
                    event: Event::Open { .. },
                    ..
                } => run.wake_after(&sim, a, Duration::from_millis(20), 1),
                // 20 ms after the open, inside the partition, the app sends.
                Step::Wake { .. } => {
                    let data = "x".into();
                    sim.call(a, Call::TcpSend { id, data }).unwrap();
                }
                Step::Event {
                    event: Event::Data { .. },
                    ..
                } => {
                    echoed_at = Some(sim.now());
                    sim.call(a, Call::TcpClose { id }).unwrap();
                }
                _ => {}
            }
        }
        let echoed_at = echoed_at.expect("the echo came back after the healing");
        ensure(
            &sim,
            seed,
            echoed_at >= Duration::from_millis(3010),
            &format!("echoed at {echoed_at:?}, inside the partition"),
        );
        assert!(run.stopped().is_none());
        clean(&sim, seed);
    }
}

/// A crash drops the host's wake-ups and is reported; the healing restarts the host (and the
/// app listens again); a name failing resolves again after the healing.
#[test]
fn crash_restart_and_dns_failure_are_reported_and_undone() {
    let (mut sim, a, b) = two_hosts(3);
    let listen = |sim: &mut Sim| {
        let options = ServerOptions::default().local_port(Some(9));
        sim.call(b, Call::ServerListen { options }).unwrap();
    };
    listen(&mut sim);
    let scenario = Scenario::default()
        .faults(vec![
            at(5, Fault::Crash { host: 1 }),
            at(
                5,
                Fault::DnsFail {
                    host: 1,
                    why: ResolveError::Temporary,
                },
            ),
        ])
        .heal_after(Duration::from_millis(100));
    let mut run = scenario.start(&mut sim, &[a, b]);
    run.wake_at(b, Duration::from_millis(50), 7); // dropped by the crash
    run.wake_at(a, Duration::from_millis(50), 8);
    run.wake_at(a, Duration::from_millis(200), 9);
    let mut steps = Vec::new();
    let mut errors = Vec::new();
    while let Some(step) = run.next(&mut sim) {
        match &step {
            Step::Restarted { host } => {
                assert_eq!(*host, b);
                listen(&mut sim);
            }
            Step::Wake { token: 8, .. } => {
                // Resolving b.test fails while the name does.
                open(&mut sim, a, "b.test", 9);
            }
            Step::Wake { token: 9, .. } => {
                let id = open(&mut sim, a, "b.test", 9);
                let _ = sim.call(a, Call::TcpClose { id });
            }
            Step::Event {
                event: Event::Error { error, .. },
                ..
            } => errors.push(error.code),
            _ => {}
        }
        steps.push((sim.now(), format!("{step:?}")));
    }
    let names: Vec<&str> = steps
        .iter()
        .map(|(_, s)| s.split([' ', '{']).next().unwrap())
        .collect();
    let first = |name: &str| names.iter().position(|n| *n == name).unwrap();
    assert!(
        !steps.iter().any(|(_, s)| s.contains("token: 7")),
        "{steps:#?}"
    );
    assert!(first("Crashed") < first("Wake"), "{steps:#?}");
    assert!(first("Wake") < first("Restarted"), "{steps:#?}");
    assert_eq!(steps[first("Crashed")].0, Duration::from_millis(5));
    assert_eq!(steps[first("Restarted")].0, Duration::from_millis(105));
    // Only the open during the failure failed (to resolve); the later one connected.
    assert_eq!(errors, [ErrorCode::DomainNotFound], "{steps:#?}");
    assert!(steps.iter().any(|(_, s)| s.contains("Open")), "{steps:#?}");
    clean(&sim, 3);
}

/// Wake-ups past the sim's time limit end the run as the sim would, with the limit as cause.
#[test]
fn a_run_stops_at_the_sims_time_limit() {
    let cfg = SimConfig::default().time_limit(Duration::from_secs(10));
    let mut sim = Sim::with_config(0, cfg);
    let a = sim.add_host("a.test", &[ip("127.0.0.1")]).unwrap();
    let mut run = Scenario::default().start(&mut sim, &[a]);
    run.wake_at(a, Duration::from_secs(5), 1);
    run.wake_at(a, Duration::from_secs(11), 2);
    let mut tokens = Vec::new();
    while let Some(step) = run.next(&mut sim) {
        if let Step::Wake { token, .. } = step {
            tokens.push(token);
            // An app that keeps waking itself up.
            run.wake_after(&sim, a, Duration::from_secs(1), token + 10);
        }
    }
    assert_eq!(tokens, [1, 11, 21, 31, 41, 51]);
    assert_eq!(run.stopped(), Some(Stop::TimeLimit));
}

/// Any bytes make a scenario within the caps.
#[test]
fn generated_scenarios_stay_within_their_caps() {
    let mut bytes = vec![0u8; 4096];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..500 {
        for b in bytes.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let len = round * 8 % bytes.len();
        let Ok(s) = Scenario::arbitrary(&mut Unstructured::new(&bytes[..len])) else {
            continue;
        };
        assert!(s.links.len() <= Scenario::MAX_LINKS);
        assert!(s.faults.len() <= Scenario::MAX_FAULTS);
        assert!(s.timings.len() <= Scenario::MAX_TIMINGS);
        assert!(s.faults.iter().all(|t| t.at <= Scenario::MAX_FAULT_AT));
        assert!(s.timings.iter().all(|t| *t <= Scenario::MAX_TIMING));
        assert!(s.heal_after <= Scenario::MAX_HEAL_AFTER);
        for rule in &s.links {
            let l = &rule.link;
            assert!(l.latency <= Duration::from_millis(200), "{l:?}");
            assert!(l.send_buffer >= 256 && l.recv_buffer >= 256 && l.max_read >= 1);
            assert!(l.bandwidth.is_none_or(|b| b >= 1024));
            assert!(l.flip_rate <= 1.0 / 16.0 && l.udp_loss <= 0.5 && l.udp_duplicate <= 0.5);
        }
    }
}

/// Found by the `user_protocol` fuzz target: a host that crashes while a SYN to it is on the
/// way did not have that connection yet, so the SYN, sent again once the host is back, is
/// accepted by its new core; a second crash must then end that connection as any other. It
/// did not (its end was marked as crashed already): the end stayed live, so the host could
/// not listen on its port after the next restart (`AddrInUse`), and segments held for it
/// reached the fresh core as input for a socket it never had.
#[test]
fn a_connection_accepted_after_a_restart_ends_with_the_next_crash() {
    for seed in seeds() {
        let (mut sim, a, b) = two_hosts(seed);
        let listen = |sim: &mut Sim| {
            let options = ServerOptions::default().local_port(Some(9));
            sim.host(b).unwrap().server_listen(options)
        };
        listen(&mut sim).unwrap();
        let id = open(&mut sim, a, "127.0.0.2", 9);
        sim.crash(b).unwrap(); // the SYN is on its way
        sim.run_for(Duration::from_millis(50));
        sim.restart(b).unwrap();
        listen(&mut sim).unwrap();
        let mut accepted = false;
        while let Some((host, event)) = sim.next_event_within(Duration::from_millis(100)) {
            accepted |= host == b && matches!(event, Event::Connect { .. });
        }
        ensure(&sim, seed, accepted, "the SYN sent again was not accepted");
        sim.crash(b).unwrap();
        sim.host(a)
            .unwrap()
            .tcp_send(id, "after the crash")
            .unwrap();
        sim.run_for(Duration::from_millis(50));
        sim.restart(b).unwrap();
        let relisten = listen(&mut sim);
        ensure(
            &sim,
            seed,
            relisten.is_ok(),
            "no listen after the second restart",
        );
        let events = sim.run();
        let reset = events
            .iter()
            .any(|(h, e)| *h == a && matches!(e, Event::Error { .. }));
        ensure(
            &sim,
            seed,
            reset,
            "the client was not reset by the restarted host",
        );
        clean(&sim, seed);
    }
}
