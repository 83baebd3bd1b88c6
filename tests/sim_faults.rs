//! Faults injected into the simulated network (issue 15): a reset ends a connection on both
//! sides in any state, the SYN in flight included, and the network's controls between hosts.
//! Each scenario runs under many seeds with the invariant checker of every host.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::{clean, ensure, seeds};
use sockstate::sim::{Call, HostId, Link, Peer, Returned, Sim, SimConfig};
use sockstate::{
    Bytes, ErrorCode, Event, ServerId, ServerOptions, SocketId, TcpId, TcpOptions, UdpId,
    UdpOptions,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn two_hosts(seed: u64) -> (Sim, HostId, HostId) {
    let link = Link::default()
        .latency(Duration::from_millis(2))
        .jitter(Duration::from_millis(3));
    let cfg = SimConfig::default().link(link);
    let mut sim = Sim::with_config(seed, cfg);
    let a = sim.add_host("a.test", &[ip("127.0.0.1")]).unwrap();
    let b = sim.add_host("b.test", &[ip("127.0.0.2")]).unwrap();
    (sim, a, b)
}

fn connect(sim: &mut Sim, host: HostId, to: &str, port: u16) -> TcpId {
    let call = Call::TcpOpen {
        host: to.into(),
        port,
        options: TcpOptions::default(),
    };
    match sim.call(host, call) {
        Ok(Returned::Opened(id)) => id,
        other => panic!("open failed: {other:?}"),
    }
}

fn listen(sim: &mut Sim, host: HostId, port: u16) -> ServerId {
    let options = ServerOptions::default().local_port(Some(port));
    match sim.call(host, Call::ServerListen { options }) {
        Ok(Returned::Listening(id)) => id,
        other => panic!("listen failed: {other:?}"),
    }
}

/// The events of one socket, as names (data chunks merged).
fn kinds_of(events: &[(HostId, Event)], host: HostId, id: SocketId) -> Vec<&'static str> {
    let mut out = Vec::new();
    for (h, e) in events {
        let (k, of) = match e {
            Event::Open { id } => ("open", *id),
            Event::Data { id, .. } => ("data", (*id).into()),
            Event::Drain { id } => ("drain", *id),
            Event::Error { id, .. } => ("error", *id),
            Event::Close { id } => ("close", *id),
            Event::HalfClose { id } => ("halfclose", (*id).into()),
            _ => continue,
        };
        if *h == host && of == id && !(k == "data" && out.last() == Some(&"data")) {
            out.push(k);
        }
    }
    out
}

/// The socket's events were exactly `Error(code)` then `Close`.
#[track_caller]
fn ended_with(
    sim: &Sim,
    seed: u64,
    events: &[(HostId, Event)],
    (host, id): (HostId, SocketId),
    code: ErrorCode,
) {
    let k = kinds_of(events, host, id);
    ensure(
        sim,
        seed,
        k == ["error", "close"],
        &format!("{id:?}: {k:?}"),
    );
    let got = events.iter().find_map(|(h, e)| match e {
        Event::Error { id: of, error } if *h == host && *of == id => Some(error.code),
        _ => None,
    });
    ensure(
        sim,
        seed,
        got == Some(code),
        &format!("{id:?}: code {got:?}"),
    );
}

/// Issue 15: a reset while the SYN is on its way loses the SYN and refuses the attempt, as
/// Linux reports a reset in SYN_SENT; before, the SYN was delivered anyway, the peer accepted
/// a connection that never ended, and the client waited for its 20 s connect timeout.
#[test]
fn a_reset_while_the_syn_is_in_flight_refuses_the_connect() {
    for seed in seeds() {
        let (mut sim, a, _) = two_hosts(seed);
        sim.listen(addr("127.0.0.2:7"), Peer::echo()).unwrap();
        let id = connect(&mut sim, a, "127.0.0.2", 7);
        let conn = sim.conn_of(a, id).unwrap();
        sim.reset(conn).unwrap();
        let events = sim.run();
        clean(&sim, seed);
        ended_with(
            &sim,
            seed,
            &events,
            (a, id.into()),
            ErrorCode::ConnectionRefused,
        );
        ensure(&sim, seed, sim.now() < Duration::from_millis(20), "at once");
        ensure(
            &sim,
            seed,
            sim.peer_received(conn).is_none(),
            "never accepted",
        );
    }
}

/// Issue 15: a reset while the server's SYN-ACK is on its way: the client's attempt is
/// refused and the socket the server accepted gets the reset (`Error` + `Close`).
#[test]
fn a_reset_while_the_syn_ack_is_in_flight_ends_both_sides() {
    for seed in seeds() {
        let (mut sim, a, b) = two_hosts(seed);
        let server = listen(&mut sim, b, 7000);
        let id = connect(&mut sim, a, "b.test", 7000);
        let mut events = Vec::new();
        let mut accepted = None;
        while let Some((host, event)) = sim.next_event() {
            if let Event::Connect { socket, .. } = &event {
                accepted = Some(*socket);
                let conn = sim.conn_of(a, id).unwrap();
                sim.reset(conn).unwrap();
                sim.call(b, Call::ServerClose { id: server }).unwrap();
            }
            events.push((host, event));
        }
        clean(&sim, seed);
        ended_with(
            &sim,
            seed,
            &events,
            (a, id.into()),
            ErrorCode::ConnectionRefused,
        );
        let socket: SocketId = accepted.expect("the server accepted").into();
        ended_with(
            &sim,
            seed,
            &events,
            (b, socket),
            ErrorCode::NetworkInterrupt,
        );
        ensure(&sim, seed, sim.now() < Duration::from_millis(40), "at once");
    }
}

fn send(sim: &mut Sim, host: HostId, id: TcpId, data: &'static [u8]) {
    let call = Call::TcpSend {
        id,
        data: Bytes::from_static(data),
    };
    sim.call(host, call).unwrap();
}

fn data_of(events: &[(HostId, Event)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (_, e) in events {
        if let Event::Data { data, .. } = e {
            out.extend_from_slice(data.as_bytes());
        }
    }
    out
}

/// An echo peer on b and a client on a, open; returns the client's socket and connection.
fn echo_pair(sim: &mut Sim, a: HostId) -> (TcpId, sockstate::sim::ConnId) {
    sim.listen(addr("127.0.0.2:7"), Peer::echo()).unwrap();
    let id = connect(sim, a, "127.0.0.2", 7);
    while !matches!(sim.next_event(), Some((_, Event::Open { .. })) | None) {}
    (id, sim.conn_of(a, id).unwrap())
}

/// `partition(a, b)` and `hold(a, b)` on TCP: nothing gets through either way and the
/// connection stays up; the segments are sent again, in order, on `repair(a, b)` or
/// `release(a, b)`, and the close is clean.
#[test]
fn tcp_across_a_partition_or_a_hold_waits_and_goes_on_once_repaired_or_released() {
    type Control = fn(&mut Sim, HostId, HostId);
    let controls: [(Control, Control); 2] =
        [(Sim::partition, Sim::repair), (Sim::hold, Sim::release)];
    for (cut, mend) in controls {
        for seed in seeds() {
            let (mut sim, a, b) = two_hosts(seed);
            let (id, conn) = echo_pair(&mut sim, a);
            cut(&mut sim, a, b);
            send(&mut sim, a, id, b"across");
            let events = sim.run_for(Duration::from_secs(2));
            ensure(&sim, seed, events.is_empty(), &format!("{events:?}"));
            let held = sim.peer_received(conn) == Some(&b""[..]);
            ensure(&sim, seed, held, "held");
            mend(&mut sim, a, b);
            let events = sim.run_for(Duration::from_millis(100));
            ensure(&sim, seed, data_of(&events) == b"across", "echoed after");
            sim.call(a, Call::TcpClose { id }).unwrap();
            let events = sim.run();
            clean(&sim, seed);
            let k = kinds_of(&events, a, id.into());
            ensure(&sim, seed, k == ["close"], "clean close");
        }
    }
}

/// `partition_oneway(a, b)`: a's segments are held, b's still arrive.
#[test]
fn a_one_way_partition_holds_one_direction_only() {
    for seed in seeds() {
        let (mut sim, a, b) = two_hosts(seed);
        let (id, conn) = echo_pair(&mut sim, a);
        sim.partition_oneway(a, b);
        send(&mut sim, a, id, b"held");
        sim.peer_send(conn, "through").unwrap();
        let events = sim.run_for(Duration::from_millis(500));
        ensure(&sim, seed, data_of(&events) == b"through", "b to a flows");
        ensure(
            &sim,
            seed,
            sim.peer_received(conn) == Some(&b""[..]),
            "a to b held",
        );
        sim.repair_oneway(a, b);
        let events = sim.run_for(Duration::from_millis(100));
        ensure(&sim, seed, data_of(&events) == b"held", "held, then echoed");
        sim.call(a, Call::TcpClose { id }).unwrap();
        sim.run();
        clean(&sim, seed);
    }
}

fn udp(sim: &mut Sim, host: HostId, options: UdpOptions) -> UdpId {
    match sim.call(host, Call::UdpOpen { options }) {
        Ok(Returned::Bound(id)) => id,
        other => panic!("udp open failed: {other:?}"),
    }
}

fn udp_send(sim: &mut Sim, host: HostId, id: UdpId, data: &'static [u8], to: &str) {
    let call = Call::UdpSend {
        id,
        data: Bytes::from_static(data),
        to: Some(addr(to)),
    };
    sim.call(host, call).unwrap();
}

fn messages(events: &[(HostId, Event)], host: HostId) -> Vec<Vec<u8>> {
    events
        .iter()
        .filter_map(|(h, e)| match e {
            Event::Message { data, .. } if *h == host => Some(data.to_vec()),
            _ => None,
        })
        .collect()
}

/// A partition loses datagrams (UDP does not send again); `hold` keeps them, and `release`
/// delivers them.
#[test]
fn datagrams_are_lost_across_a_partition_and_held_until_released_by_hold() {
    for seed in seeds() {
        let (mut sim, a, b) = two_hosts(seed);
        let options = |port| UdpOptions::default().local_port(Some(port));
        let ua = udp(&mut sim, a, options(5000));
        let ub = udp(&mut sim, b, options(5000));
        let _ = sim.run_for(Duration::from_millis(5));
        sim.partition_oneway(a, b);
        udp_send(&mut sim, a, ua, b"lost", "127.0.0.2:5000");
        udp_send(&mut sim, b, ub, b"back", "127.0.0.1:5000");
        let events = sim.run_for(Duration::from_millis(100));
        ensure(&sim, seed, messages(&events, b).is_empty(), "lost");
        ensure(
            &sim,
            seed,
            messages(&events, a) == [b"back"],
            "b to a flows",
        );
        sim.repair_oneway(a, b);
        sim.hold(a, b);
        udp_send(&mut sim, a, ua, b"kept", "127.0.0.2:5000");
        let events = sim.run_for(Duration::from_millis(100));
        ensure(&sim, seed, messages(&events, b).is_empty(), "held");
        sim.release(a, b);
        let events = sim.run_for(Duration::from_millis(100));
        ensure(&sim, seed, messages(&events, b) == [b"kept"], "released");
        clean(&sim, seed);
    }
}

/// `crash(b)`: every socket of b vanishes without a segment, so its peers hear nothing: an
/// idle connection stays open, a connect to b gets no answer and times out, and a close waits
/// for an acknowledgement that never comes and ends at the close timeout. A call on b fails
/// until it restarts.
#[test]
fn a_crashed_host_is_silence_until_the_peers_own_timers_end_it() {
    for seed in seeds() {
        let (mut sim, a, b) = two_hosts(seed);
        listen(&mut sim, b, 80);
        let id = connect(&mut sim, a, "127.0.0.2", 80);
        let events = sim.run_for(Duration::from_millis(100));
        ensure(
            &sim,
            seed,
            kinds_of(&events, a, id.into()) == ["open"],
            "open",
        );
        sim.crash(b).unwrap();
        let open = Call::TcpOpen {
            host: "127.0.0.1".into(),
            port: 1,
            options: TcpOptions::default(),
        };
        let refused = sim.call(b, open).is_err();
        ensure(&sim, seed, refused, "calls fail while down");
        let events = sim.run_for(Duration::from_secs(60));
        ensure(
            &sim,
            seed,
            events.is_empty(),
            &format!("silence: {events:?}"),
        );
        let late = connect(&mut sim, a, "127.0.0.2", 80);
        send(&mut sim, a, id, b"anyone?");
        sim.call(a, Call::TcpClose { id }).unwrap();
        let start = sim.now();
        let events = sim.run();
        clean(&sim, seed);
        let cfg = sim.core(a).unwrap().config().clone();
        ended_with(
            &sim,
            seed,
            &events,
            (a, late.into()),
            ErrorCode::NetworkTimeout,
        );
        ended_with(
            &sim,
            seed,
            &events,
            (a, id.into()),
            ErrorCode::NetworkTimeout,
        );
        let took = sim.now() - start;
        let last = cfg.close_timeout.max(cfg.connect_timeout);
        ensure(
            &sim,
            seed,
            took >= last && took < last + Duration::from_secs(1),
            &format!("{took:?}"),
        );
    }
}

/// `restart(b)` after `crash(b)`: b is back with a fresh core and the same addresses. What a
/// peer sent meanwhile, or sends now, on a connection of before the crash, is answered with a
/// reset; a new connection to a scripted listener on b is accepted, one to a port its old core
/// listened on is refused.
#[test]
fn a_restarted_host_resets_the_connections_of_before_its_crash() {
    for seed in seeds() {
        let (mut sim, a, b) = two_hosts(seed);
        let (echoed, _) = echo_pair(&mut sim, a);
        listen(&mut sim, b, 80);
        let served = connect(&mut sim, a, "127.0.0.2", 80);
        let idle = connect(&mut sim, a, "127.0.0.2", 80);
        let _ = sim.run_for(Duration::from_millis(100));
        sim.crash(b).unwrap();
        send(&mut sim, a, echoed, b"while down");
        let _ = sim.run_for(Duration::from_secs(1));
        sim.restart(b).unwrap();
        let events = sim.run_for(Duration::from_secs(1));
        ended_with(
            &sim,
            seed,
            &events,
            (a, echoed.into()),
            ErrorCode::NetworkInterrupt,
        );
        ensure(
            &sim,
            seed,
            kinds_of(&events, a, idle.into()).is_empty(),
            "idle: no word yet",
        );
        send(&mut sim, a, served, b"after");
        let events = sim.run_for(Duration::from_secs(1));
        ended_with(
            &sim,
            seed,
            &events,
            (a, served.into()),
            ErrorCode::NetworkInterrupt,
        );
        let fresh = connect(&mut sim, a, "127.0.0.2", 7);
        let refused = connect(&mut sim, a, "127.0.0.2", 80);
        let mut events = sim.run_for(Duration::from_millis(100));
        send(&mut sim, a, fresh, b"hello again");
        events.extend(sim.run_for(Duration::from_secs(1)));
        ensure(
            &sim,
            seed,
            data_of(&events) == b"hello again",
            "echoed by the new peer",
        );
        ended_with(
            &sim,
            seed,
            &events,
            (a, refused.into()),
            ErrorCode::ConnectionRefused,
        );
        sim.call(a, Call::TcpClose { id: fresh }).unwrap();
        sim.call(a, Call::TcpClose { id: idle }).unwrap();
        let events = sim.run();
        clean(&sim, seed);
        ensure(
            &sim,
            seed,
            kinds_of(&events, a, fresh.into()) == ["close"],
            "clean close",
        );
        // The idle one's FIN reaches the restarted host: a reset, so not a clean close.
        ended_with(
            &sim,
            seed,
            &events,
            (a, idle.into()),
            ErrorCode::NetworkInterrupt,
        );
    }
}
