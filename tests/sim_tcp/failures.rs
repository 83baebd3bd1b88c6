//! Failures: resets, refused and black-holed connects, OS timeouts, DNS failures, the second
//! address winning, data a black hole held.

use super::*;

#[test]
fn peer_reset_mid_stream_is_a_network_interrupt_after_the_data_read_so_far() {
    for seed in seeds() {
        let (mut sim, client, _) = net(seed, jittery());
        let greeting = pattern(seed, 100_000);
        let peer = Peer {
            after_greeting: AfterGreeting::Reset,
            ..Peer::send(greeting.clone())
        };
        sim.listen(addr("127.0.0.2:80"), peer).unwrap();
        let options = TcpOptions::default().binary_type(BinaryType::ArrayBuffer);
        open(&mut sim, client, SERVER, 80, options);
        let events: Vec<Event> = sim.run().into_iter().map(|(_, e)| e).collect();
        clean(&sim, seed);
        let k = kinds(&events);
        ensure(
            &sim,
            seed,
            k == ["open", "data", "error", "close"] || k == ["open", "error", "close"],
            &format!("events {k:?}"),
        );
        ensure(
            &sim,
            seed,
            error_code(&events) == Some(ErrorCode::NetworkInterrupt),
            "code",
        );
        ensure(
            &sim,
            seed,
            greeting.starts_with(&bytes_of(&events)),
            "a prefix arrived",
        );
    }
}

#[test]
fn reset_in_the_network_during_an_upload_ends_both_sides() {
    for seed in seeds() {
        let (mut sim, client, _) = net(seed, jittery());
        sim.listen(addr("127.0.0.2:9"), Peer::sink()).unwrap();
        let id = open(&mut sim, client, SERVER, 9, TcpOptions::default());
        let data = pattern(seed, 200_000);
        let mut events = Vec::new();
        while let Some((_, event)) = sim.next_event() {
            if let Event::Open { .. } = event {
                send(&mut sim, client, id, data.clone());
                let _ = sim.run_for(Duration::from_millis(3));
                let conn = sim.conn_of(client, id).unwrap();
                sim.reset(conn).unwrap();
            }
            events.push(event);
        }
        clean(&sim, seed);
        ensure(
            &sim,
            seed,
            kinds(&events) == ["open", "error", "close"],
            "events",
        );
        ensure(
            &sim,
            seed,
            error_code(&events) == Some(ErrorCode::NetworkInterrupt),
            "code",
        );
        let conn = sim.conns().last().unwrap();
        let received = sim.peer_received(conn).unwrap();
        ensure(&sim, seed, data.starts_with(received), "a prefix arrived");
    }
}

#[test]
fn refused_connects_report_connection_refused_after_a_round_trip() {
    for seed in seeds() {
        let (mut sim, client, _) = net(seed, jittery());
        sim.listen(addr("127.0.0.2:81"), Peer::echo()).unwrap();
        sim.refuse(addr("127.0.0.2:81"));
        let a = open(&mut sim, client, SERVER, 80, TcpOptions::default());
        let b = open(&mut sim, client, SERVER, 81, TcpOptions::default());
        let events = sim.run();
        clean(&sim, seed);
        for id in [a, b] {
            let mine: Vec<Event> = events
                .iter()
                .filter(|(_, e)| socket_of(e) == Some(id.into()))
                .map(|(_, e)| e.clone())
                .collect();
            ensure(&sim, seed, kinds(&mine) == ["error", "close"], "events");
            ensure(
                &sim,
                seed,
                error_code(&mine) == Some(ErrorCode::ConnectionRefused),
                "code",
            );
        }
        ensure(
            &sim,
            seed,
            sim.now() <= Duration::from_millis(10),
            "one round trip",
        );
    }
}

fn socket_of(e: &Event) -> Option<SocketId> {
    match e {
        Event::Open { id }
        | Event::Drain { id }
        | Event::Error { id, .. }
        | Event::Close { id } => Some(*id),
        Event::Data { id, .. } | Event::HalfClose { id } => Some((*id).into()),
        _ => None,
    }
}

#[test]
fn a_black_holed_connect_times_out_at_the_connect_timeout() {
    for seed in seeds() {
        let core = Config::default().connect_timeout(Duration::from_secs(5));
        let (mut sim, client, _) = net_with(seed, jittery(), core);
        sim.listen(addr("127.0.0.2:7"), Peer::echo()).unwrap();
        sim.black_hole(SERVER.parse().unwrap());
        open(&mut sim, client, SERVER, 7, TcpOptions::default());
        let events: Vec<Event> = sim.run().into_iter().map(|(_, e)| e).collect();
        clean(&sim, seed);
        ensure(&sim, seed, kinds(&events) == ["error", "close"], "events");
        ensure(
            &sim,
            seed,
            error_code(&events) == Some(ErrorCode::NetworkTimeout),
            "code",
        );
        ensure(
            &sim,
            seed,
            sim.now() == Duration::from_secs(5),
            "at the timeout",
        );
    }
}

#[test]
fn an_os_timeout_on_an_open_connection_is_a_network_timeout() {
    for seed in seeds() {
        let (mut sim, client, _) = net(seed, jittery());
        sim.listen(addr("127.0.0.2:7"), Peer::echo()).unwrap();
        let id = open(&mut sim, client, SERVER, 7, TcpOptions::default());
        let mut events = Vec::new();
        while let Some((_, event)) = sim.next_event() {
            if let Event::Open { .. } = event {
                let conn = sim.conn_of(client, id).unwrap();
                sim.fail(conn, ErrorKind::TimedOut).unwrap();
            }
            events.push(event);
        }
        clean(&sim, seed);
        ensure(
            &sim,
            seed,
            kinds(&events) == ["open", "error", "close"],
            "events",
        );
        ensure(
            &sim,
            seed,
            error_code(&events) == Some(ErrorCode::NetworkTimeout),
            "code",
        );
    }
}

#[test]
fn dns_failures_are_domain_not_found() {
    for seed in seeds() {
        let (mut sim, client, _) = net(seed, jittery());
        sim.dns_fail("flaky.test", ResolveError::Temporary).unwrap();
        sim.dns("empty.test", &[]).unwrap();
        for name in ["flaky.test", "empty.test", "nowhere.test"] {
            open(&mut sim, client, name, 80, TcpOptions::default());
        }
        let events: Vec<Event> = sim.run().into_iter().map(|(_, e)| e).collect();
        clean(&sim, seed);
        let codes: Vec<ErrorCode> = events
            .iter()
            .filter_map(|e| match e {
                Event::Error { error, .. } => Some(error.code),
                _ => None,
            })
            .collect();
        ensure(&sim, seed, codes == [ErrorCode::DomainNotFound; 3], "codes");
        ensure(&sim, seed, kinds(&events).len() == 6, "error + close each");
    }
}

#[test]
fn the_second_address_wins_when_the_first_is_black_holed() {
    for seed in seeds() {
        let (mut sim, client, _) = net(seed, jittery());
        sim.listen(addr("127.0.0.2:7"), Peer::echo()).unwrap();
        sim.black_hole("::2".parse().unwrap());
        sim.dns(
            "dual.test",
            &["::2".parse().unwrap(), SERVER.parse().unwrap()],
        )
        .unwrap();
        let id = open(&mut sim, client, "dual.test", 7, TcpOptions::default());
        let (_, first) = sim.next_event().unwrap();
        clean(&sim, seed);
        ensure(&sim, seed, first == Event::Open { id: id.into() }, "open");
        let remote = sim.core(client).unwrap().tcp(id).unwrap().remote_address();
        ensure(&sim, seed, remote == Some(addr("127.0.0.2:7")), "via IPv4");
        let delay = Config::default().connection_attempt_delay;
        ensure(&sim, seed, sim.now() > delay, "after the attempt delay");
        ensure(
            &sim,
            seed,
            sim.now() < delay + Duration::from_millis(20),
            "not much later",
        );
    }
}

/// Issue 14: a segment a black hole held is sent again on heal, and what was sent after it
/// (our FIN) must not overtake it: TCP's receiver takes segments in sequence only. Before, a
/// FIN sent just before the heal could arrive first, the echo peer closed, and the byte it
/// never got was answered with a reset.
#[test]
fn what_a_black_hole_held_arrives_before_the_fin_sent_after_it() {
    for seed in seeds() {
        let (mut sim, client, _) = net(seed, jittery());
        sim.listen(addr("127.0.0.2:7"), Peer::echo()).unwrap();
        let id = open(&mut sim, client, SERVER, 7, TcpOptions::default());
        let mut events = Vec::new();
        while let Some((_, event)) = sim.next_event() {
            if let Event::Open { .. } = event {
                sim.black_hole(SERVER.parse().unwrap());
                send(&mut sim, client, id, "held");
                let _ = sim.run_for(Duration::from_millis(10));
                sim.call(client, Call::TcpClose { id }).unwrap();
                sim.heal(SERVER.parse().unwrap());
            }
            events.push(event);
        }
        clean(&sim, seed);
        ensure(&sim, seed, kinds(&events) == ["open", "close"], "events");
        let conn = sim.conns().last().unwrap();
        ensure(
            &sim,
            seed,
            sim.peer_received(conn) == Some(&b"held"[..]),
            "the held bytes arrived",
        );
    }
}
