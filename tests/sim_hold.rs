//! One-way holds (issue 15 §2, beyond turmoil's both-ways `hold`): what one host sends to
//! another waits, TCP segments and datagrams alike, while the other way flows; on release
//! everything goes on in order and nothing is lost.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use sockstate::sim::{Call, ConnId, Held, HostId, Link, Peer, Returned, Sim, SimConfig};
use sockstate::{BinaryType, Event, TcpOptions, UdpId, UdpOptions};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Two hosts; `jitter` on the link (which also reorders datagrams).
fn two_hosts(seed: u64, jitter: Duration) -> (Sim, HostId, HostId) {
    let link = Link::default().jitter(jitter);
    let mut sim = Sim::with_config(seed, SimConfig::default().link(link));
    let a = sim.add_host("a", &[ip("127.0.0.1")]).unwrap();
    let b = sim.add_host("b", &[ip("127.0.0.2")]).unwrap();
    (sim, a, b)
}

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8 ^ salt).collect()
}

#[test]
fn a_one_way_hold_keeps_tcp_segments_from_a_to_b_and_lets_b_to_a_through() {
    for seed in common::seeds() {
        let (mut sim, a, b) = two_hosts(seed, Duration::from_millis(3));
        let (id, conn) = open_to_sink(&mut sim, a);
        sim.hold_oneway(a, b);
        let (ours, theirs) = (pattern(200_000, 0), pattern(50_000, 0x5a));
        sim.call(
            a,
            Call::TcpSend {
                id,
                data: ours.clone().into(),
            },
        )
        .unwrap();
        sim.peer_send(conn, theirs.clone()).unwrap();
        let mut got = Vec::new();
        for (_, e) in sim.run_for(Duration::from_secs(2)) {
            if let Event::Data { data, .. } = e {
                got.extend_from_slice(data.as_bytes());
            }
        }
        // b to a flows; a to b waits, nothing of it lost or acknowledged meanwhile.
        common::ensure(&sim, seed, got == theirs, "b's bytes reach a while held");
        let received = sim.peer_received(conn).unwrap().len();
        common::ensure(&sim, seed, received == 0, "nothing of a's reaches b");
        sim.release_oneway(a, b);
        sim.run_for(Duration::from_secs(2));
        let received = sim.peer_received(conn).unwrap();
        common::ensure(
            &sim,
            seed,
            received == ours,
            "a's bytes, whole and in order",
        );
        sim.call(a, Call::TcpClose { id }).unwrap();
        sim.run();
        common::clean(&sim, seed);
    }
}

fn udp(sim: &mut Sim, host: HostId, port: u16) -> UdpId {
    let options = UdpOptions::default().local_port(Some(port));
    let Ok(Returned::Bound(id)) = sim.call(host, Call::UdpOpen { options }) else {
        panic!()
    };
    id
}

#[test]
fn a_one_way_hold_keeps_datagrams_from_a_to_b_in_order_and_releases_them_all() {
    for seed in common::seeds() {
        let (mut sim, a, b) = two_hosts(seed, Duration::ZERO);
        let (on_a, on_b) = (udp(&mut sim, a, 5000), udp(&mut sim, b, 5000));
        sim.run_for(Duration::from_millis(10));
        sim.hold_oneway(a, b);
        let send = |sim: &mut Sim, host, id, to: &str, n: u8| {
            let to: SocketAddr = to.parse().unwrap();
            let data = Bytes::from(vec![n; 10]);
            let call = Call::UdpSend {
                id,
                data,
                to: Some(to),
            };
            sim.call(host, call).unwrap();
        };
        for n in 0..20 {
            send(&mut sim, a, on_a, "127.0.0.2:5000", n);
            send(&mut sim, b, on_b, "127.0.0.1:5000", 100 + n);
        }
        let messages = |events: Vec<(HostId, Event)>, at: HostId| -> Vec<u8> {
            (events.into_iter())
                .filter_map(|(h, e)| match e {
                    Event::Message { data, .. } if h == at => Some(data[0]),
                    _ => None,
                })
                .collect()
        };
        let events = sim.run_for(Duration::from_secs(5));
        let (at_a, at_b) = (messages(events.clone(), a), messages(events, b));
        common::ensure(&sim, seed, at_a.len() == 20, "b's datagrams reach a");
        common::ensure(&sim, seed, at_b.is_empty(), "a's datagrams wait");
        sim.release_oneway(a, b);
        let at_b = messages(sim.run_for(Duration::from_secs(1)), b);
        let want: Vec<u8> = (0..20).collect();
        common::ensure(
            &sim,
            seed,
            at_b == want,
            &format!("all, in order: {at_b:?}"),
        );
        sim.call(a, Call::UdpClose { id: on_a }).unwrap();
        sim.call(b, Call::UdpClose { id: on_b }).unwrap();
        sim.run();
        common::clean(&sim, seed);
    }
}

#[test]
fn releasing_one_way_leaves_the_other_way_of_a_hold_held() {
    let (mut sim, a, b) = two_hosts(1, Duration::ZERO);
    let (on_a, on_b) = (udp(&mut sim, a, 5000), udp(&mut sim, b, 5000));
    sim.run_for(Duration::from_millis(10));
    sim.hold(a, b);
    for (host, id, to) in [(a, on_a, "127.0.0.2:5000"), (b, on_b, "127.0.0.1:5000")] {
        let call = Call::UdpSend {
            id,
            data: Bytes::from_static(b"x"),
            to: Some(to.parse().unwrap()),
        };
        sim.call(host, call).unwrap();
    }
    assert!(!(sim.run_for(Duration::from_secs(1)).iter())
        .any(|(_, e)| matches!(e, Event::Message { .. })));
    sim.release_oneway(b, a);
    let got: Vec<HostId> = (sim.run_for(Duration::from_secs(1)).into_iter())
        .filter(|(_, e)| matches!(e, Event::Message { .. }))
        .map(|(h, _)| h)
        .collect();
    assert_eq!(got, [a], "only b's datagram to a goes on");
    sim.release(a, b);
    let got: Vec<HostId> = (sim.run_for(Duration::from_secs(1)).into_iter())
        .filter(|(_, e)| matches!(e, Event::Message { .. }))
        .map(|(h, _)| h)
        .collect();
    assert_eq!(got, [b]);
    assert_eq!(sim.violations(), []);
}

/// Opens a connection from `a` to a scripted sink on `b` port 7: its socket and connection.
fn open_to_sink(sim: &mut Sim, a: HostId) -> (sockstate::TcpId, sockstate::sim::ConnId) {
    sim.listen("127.0.0.2:7".parse().unwrap(), Peer::sink())
        .unwrap();
    let open = Call::TcpOpen {
        host: "127.0.0.2".into(),
        port: 7,
        options: TcpOptions::default().binary_type(BinaryType::ArrayBuffer),
    };
    let Ok(Returned::Opened(id)) = sim.call(a, open) else {
        panic!()
    };
    while !matches!(sim.next_event(), Some((_, Event::Open { .. }))) {}
    (id, sim.conn_of(a, id).unwrap())
}

#[test]
fn held_lists_the_segments_and_datagrams_a_hold_keeps_one_way_at_a_time() {
    let (mut sim, a, b) = two_hosts(1, Duration::ZERO);
    let (id, conn) = open_to_sink(&mut sim, a);
    let (on_a, _) = (udp(&mut sim, a, 5000), udp(&mut sim, b, 5000));
    sim.run_for(Duration::from_millis(10));
    assert_eq!(sim.held(a, b).count(), 0);
    sim.hold(a, b);
    let data = Bytes::from_static(b"twelve bytes");
    sim.call(a, Call::TcpSend { id, data }).unwrap();
    sim.call(a, Call::TcpClose { id }).unwrap();
    let to: SocketAddr = "127.0.0.2:5000".parse().unwrap();
    let payload = Bytes::from_static(b"dgram");
    let call = Call::UdpSend {
        id: on_a,
        data: payload.clone(),
        to: Some(to),
    };
    sim.call(a, call).unwrap();
    sim.run_for(Duration::from_secs(1));
    let (ours, theirs) = (
        "127.0.0.1:32768".parse::<SocketAddr>().unwrap(),
        "127.0.0.2:7".parse::<SocketAddr>().unwrap(),
    );
    let held: Vec<Held> = sim.held(a, b).collect();
    let segments: Vec<(ConnId, SocketAddr, SocketAddr, usize, bool, bool)> = held
        .iter()
        .filter_map(|h| match h {
            Held::Segment {
                conn,
                from,
                to,
                bytes,
                fin,
                rst,
                ..
            } => Some((*conn, *from, *to, *bytes, *fin, *rst)),
            _ => None,
        })
        .collect();
    // The write went out in seeded pieces, then the FIN behind them.
    let sum: usize = segments.iter().map(|s| s.3).sum();
    assert_eq!(sum, 12, "{segments:?}");
    assert!(segments
        .iter()
        .all(|s| (s.0, s.1, s.2, s.5) == (conn, ours, theirs, false)));
    let fins: Vec<bool> = segments.iter().map(|s| s.4).collect();
    assert_eq!(fins.iter().filter(|f| **f).count(), 1);
    assert_eq!(fins.last(), Some(&true), "the FIN last");
    let datagrams: Vec<(SocketAddr, SocketAddr, usize, Bytes)> = held
        .into_iter()
        .filter_map(|h| match h {
            Held::Datagram {
                from,
                to,
                size,
                payload,
                ..
            } => Some((from, to, size, payload)),
            _ => None,
        })
        .collect();
    assert_eq!(
        datagrams,
        [("127.0.0.1:5000".parse().unwrap(), to, 5, payload)]
    );
    // Nothing went the other way to be held; reading changed nothing.
    assert_eq!(sim.held(b, a).count(), 0);
    assert_eq!(sim.held(a, b).count(), segments.len() + 1);
    sim.release(a, b);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.held(a, b).count(), 0);
    assert_eq!(sim.peer_received(conn), Some(&b"twelve bytes"[..]));
}

#[test]
fn the_transcript_names_what_holds_a_segment() {
    type Fault = fn(&mut Sim, HostId, HostId);
    let cases: [(&str, Fault); 4] = [
        ("the hold h0 -> h1", |sim, a, b| sim.hold_oneway(a, b)),
        ("the partition h0 -> h1", |sim, a, b| sim.partition(a, b)),
        ("a black hole (127.0.0.2)", |sim, _, _| {
            sim.black_hole("127.0.0.2".parse().unwrap())
        }),
        ("h1 being down", |sim, _, b| sim.crash(b).unwrap()),
    ];
    for (why, fault) in cases {
        let (mut sim, a, b) = two_hosts(1, Duration::ZERO);
        let (id, _) = open_to_sink(&mut sim, a);
        fault(&mut sim, a, b);
        let data = Bytes::from_static(b"x");
        sim.call(a, Call::TcpSend { id, data }).unwrap();
        sim.run_for(Duration::from_secs(1));
        let text = sim.transcript_text();
        let want = format!("held by {why}: 1 bytes");
        assert!(text.contains(&want), "{why}: {text}");
        assert!(
            !text.contains("held by a black hole") || why.contains("black"),
            "{text}"
        );
        assert_eq!(sim.held(a, b).count(), 1, "{why}");
    }
}
