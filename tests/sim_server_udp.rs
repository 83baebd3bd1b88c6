//! Two cores over the simulated network: a `TCPServerSocket` on one accepting `TCPSocket`s of
//! the other, and `UDPSocket`s exchanging datagrams (unicast under loss, duplication and
//! reordering; multicast), each under many seeds and the invariant checker of every host.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::{clean, ensure, seeds};
use sockstate::sim::{Call, HostId, Link, Returned, Sim, SimConfig};
use sockstate::{
    BinaryType, Bytes, Data, ErrorCode, Event, ServerId, ServerOptions, SocketId, TcpId,
    TcpOptions, UdpId, UdpOptions,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn two_hosts(seed: u64, link: Link) -> (Sim, HostId, HostId) {
    let cfg = SimConfig::default().link(link);
    let mut sim = Sim::with_config(seed, cfg);
    let a = sim.add_host("a.test", &[ip("127.0.0.1")]).unwrap();
    let b = sim.add_host("b.test", &[ip("127.0.0.2")]).unwrap();
    (sim, a, b)
}

fn listen(sim: &mut Sim, host: HostId, options: ServerOptions) -> ServerId {
    match sim.call(host, Call::ServerListen { options }) {
        Ok(Returned::Listening(id)) => id,
        other => panic!("listen failed: {other:?}"),
    }
}

fn connect(sim: &mut Sim, host: HostId, to: &str, port: u16) -> TcpId {
    let call = Call::TcpOpen {
        host: to.into(),
        port,
        options: TcpOptions::default().binary_type(BinaryType::ArrayBuffer),
    };
    match sim.call(host, call) {
        Ok(Returned::Opened(id)) => id,
        other => panic!("open failed: {other:?}"),
    }
}

/// A server on b echoes what each accepted socket receives and closes when its client does;
/// clients on a send seeded bytes, half-close, and check the echo.
#[test]
fn clients_of_one_core_get_their_bytes_echoed_by_a_server_on_another() {
    for seed in seeds() {
        let link = Link::default()
            .max_read(700)
            .jitter(Duration::from_millis(2));
        let (mut sim, a, b) = two_hosts(seed, link);
        let options = ServerOptions::default()
            .local_port(Some(7000))
            .binary_type(BinaryType::ArrayBuffer);
        let server = listen(&mut sim, b, options);
        let clients: Vec<TcpId> = (0..5)
            .map(|_| connect(&mut sim, a, "b.test", 7000))
            .collect();
        let message =
            |i: usize| -> Vec<u8> { (0..3000 + i * 100).map(|n| (n * (i + 3)) as u8).collect() };
        let mut echoed = vec![Vec::new(); clients.len()];
        let mut accepted = Vec::new();
        let mut closes = 0;
        while let Some((host, event)) = sim.next_event() {
            match (host == b, event) {
                (
                    false,
                    Event::Open {
                        id: SocketId::TcpId(id),
                    },
                ) => {
                    let i = clients.iter().position(|c| *c == id).unwrap();
                    let data = Bytes::from(message(i));
                    sim.call(a, Call::TcpSend { id, data }).unwrap();
                    sim.call(a, Call::TcpHalfclose { id }).unwrap();
                }
                (true, Event::Connect { server: s, socket }) => {
                    assert_eq!(s, server);
                    accepted.push(socket);
                }
                (true, Event::Data { id, data }) => {
                    let data = Bytes::copy_from_slice(data.as_bytes());
                    sim.call(b, Call::TcpSend { id, data }).unwrap();
                }
                (
                    false,
                    Event::Data {
                        id,
                        data: Data::Bytes(bytes),
                    },
                ) => {
                    let i = clients.iter().position(|c| *c == id).unwrap();
                    echoed[i].extend_from_slice(&bytes);
                }
                (false, Event::Close { .. }) => closes += 1,
                _ => {}
            }
            if closes == clients.len() && sim.core(b).unwrap().server(server).is_some() {
                sim.call(b, Call::ServerClose { id: server }).unwrap();
            }
        }
        clean(&sim, seed);
        ensure(
            &sim,
            seed,
            accepted.len() == clients.len(),
            "every client accepted",
        );
        for (i, e) in echoed.iter().enumerate() {
            ensure(&sim, seed, *e == message(i), "the echo is the message");
        }
        ensure(
            &sim,
            seed,
            sim.core(b).unwrap().tcp_ids().next().is_none(),
            "server side closed",
        );
    }
}

#[test]
fn a_server_at_max_connections_refuses_with_an_error_and_keeps_listening() {
    for seed in seeds() {
        let (mut sim, a, b) = two_hosts(seed, Link::default());
        let options = ServerOptions::default()
            .local_port(Some(80))
            .max_connections(Some(1));
        let server = listen(&mut sim, b, options);
        let first = connect(&mut sim, a, "127.0.0.2", 80);
        let _ = sim.run_for(Duration::from_millis(50));
        let second = connect(&mut sim, a, "127.0.0.2", 80);
        let events = sim.run_for(Duration::from_millis(50));
        clean(&sim, seed);
        let server_error = events.iter().any(|(h, e)| {
            *h == b && matches!(e, Event::Error { id, .. } if *id == SocketId::from(server))
        });
        ensure(&sim, seed, server_error, "the server reports the refusal");
        let second_reset = events.iter().any(|(h, e)| {
            *h == a
                && matches!(e, Event::Error { id, error } if *id == SocketId::from(second)
                    && error.code == ErrorCode::NetworkInterrupt)
        });
        ensure(&sim, seed, second_reset, "the second client is reset");
        let s = sim.core(b).unwrap().server(server).unwrap();
        ensure(&sim, seed, s.connection_count() == 1, "one connection");
        ensure(
            &sim,
            seed,
            sim.core(a).unwrap().tcp(first).is_some(),
            "the first lives",
        );
    }
}

#[test]
fn a_suspended_server_accepts_its_backlog_on_resume() {
    for seed in seeds() {
        let (mut sim, a, b) = two_hosts(seed, Link::default());
        let options = ServerOptions::default().local_port(Some(81));
        let server = listen(&mut sim, b, options);
        let _ = sim.run_for(Duration::from_millis(5));
        sim.call(b, Call::ServerSuspend { id: server }).unwrap();
        let client = connect(&mut sim, a, "127.0.0.2", 81);
        // As Linux: the kernel completes the handshake (the accept queue), the server's app
        // hears of it only on resume.
        let during = sim.run_for(Duration::from_secs(1));
        ensure(
            &sim,
            seed,
            during == [(a, Event::Open { id: client.into() })],
            "connected, nothing accepted while suspended",
        );
        sim.call(b, Call::ServerResume { id: server }).unwrap();
        let after = sim.run_for(Duration::from_secs(1));
        clean(&sim, seed);
        let connected = after
            .iter()
            .any(|(h, e)| *h == b && matches!(e, Event::Connect { .. }));
        ensure(&sim, seed, connected, "accepted on resume");
    }
}

fn udp(sim: &mut Sim, host: HostId, options: UdpOptions) -> UdpId {
    match sim.call(host, Call::UdpOpen { options }) {
        Ok(Returned::Bound(id)) => id,
        other => panic!("udp open failed: {other:?}"),
    }
}

#[test]
fn datagrams_arrive_whole_and_at_most_lossy_duplicated_and_reordered() {
    for seed in seeds() {
        let link = Link::default()
            .udp_loss(0.2)
            .udp_duplicate(0.2)
            .udp_reorder(Duration::from_millis(5));
        let (mut sim, a, b) = two_hosts(seed, link);
        let rx = udp(&mut sim, b, UdpOptions::default().local_port(Some(5000)));
        let tx = udp(
            &mut sim,
            a,
            UdpOptions::default()
                .remote_address(Some(ip("127.0.0.2")))
                .remote_port(Some(5000)),
        );
        let _ = sim.run_for(Duration::from_millis(5));
        let sent: Vec<Vec<u8>> = (0..200u32)
            .map(|i| i.to_be_bytes().repeat(1 + (i % 7) as usize))
            .collect();
        for d in &sent {
            sim.call(
                a,
                Call::UdpSend {
                    id: tx,
                    data: d.clone().into(),
                    to: None,
                },
            )
            .unwrap();
        }
        let mut got = Vec::new();
        for (host, event) in sim.run_for(Duration::from_secs(1)) {
            if let (true, Event::Message { id, data, remote }) = (host == b, event) {
                assert_eq!(id, rx);
                ensure(&sim, seed, remote.ip() == ip("127.0.0.1"), "from a");
                got.push(data.to_vec());
            }
        }
        clean(&sim, seed);
        ensure(
            &sim,
            seed,
            got.iter().all(|d| sent.contains(d)),
            "whole datagrams only",
        );
        ensure(
            &sim,
            seed,
            got.len() > 100 && got.len() < 300,
            "some lost, some twice",
        );
        let in_order = got.windows(2).all(|w| w[0] <= w[1]);
        ensure(&sim, seed, !in_order, "reordered");
        let pending = sim.core(a).unwrap().udp(tx).unwrap().buffered_amount();
        ensure(&sim, seed, pending == 0, "everything sent");
    }
}

#[test]
fn multicast_reaches_every_member_and_not_the_sender_without_loopback() {
    for seed in seeds() {
        let (mut sim, a, b) = two_hosts(seed, Link::default());
        let c = sim.add_host("c.test", &[ip("127.0.0.3")]).unwrap();
        let group = ip("239.1.2.3");
        let member = |sim: &mut Sim, host: HostId| {
            let id = udp(sim, host, UdpOptions::default().local_port(Some(6000)));
            sim.call(host, Call::UdpJoin { id, group }).unwrap();
            id
        };
        let on_a = member(&mut sim, a);
        let on_b = member(&mut sim, b);
        let on_c = member(&mut sim, c);
        sim.call(c, Call::UdpLeave { id: on_c, group }).unwrap();
        let _ = sim.run_for(Duration::from_millis(5));
        let to = Some(SocketAddr::new(group, 6000));
        sim.call(
            a,
            Call::UdpSend {
                id: on_a,
                data: "to all".into(),
                to,
            },
        )
        .unwrap();
        let events = sim.run_for(Duration::from_millis(50));
        clean(&sim, seed);
        let got: Vec<(HostId, UdpId)> = events
            .iter()
            .filter_map(|(h, e)| match e {
                Event::Message { id, .. } => Some((*h, *id)),
                _ => None,
            })
            .collect();
        ensure(
            &sim,
            seed,
            got == [(b, on_b)],
            &format!("only b's member: {got:?}"),
        );
    }
}

#[test]
fn udp_close_sends_what_is_queued_then_closes_and_delivers_nothing_more() {
    for seed in seeds() {
        let (mut sim, a, b) = two_hosts(seed, Link::default());
        let rx = udp(&mut sim, b, UdpOptions::default().local_port(Some(5001)));
        let tx = udp(&mut sim, a, UdpOptions::default());
        let _ = sim.run_for(Duration::from_millis(5));
        let to = Some("127.0.0.2:5001".parse().unwrap());
        for i in 0..10u8 {
            sim.call(
                a,
                Call::UdpSend {
                    id: tx,
                    data: vec![i; 100].into(),
                    to,
                },
            )
            .unwrap();
        }
        sim.call(a, Call::UdpClose { id: tx }).unwrap();
        sim.call(b, Call::UdpClose { id: rx }).unwrap();
        let events = sim.run();
        clean(&sim, seed);
        let closes = events
            .iter()
            .filter(|(_, e)| matches!(e, Event::Close { .. }))
            .count();
        let messages = events
            .iter()
            .filter(|(_, e)| matches!(e, Event::Message { .. }))
            .count();
        ensure(
            &sim,
            seed,
            closes == 2 && messages == 0,
            "two closes, no message after close",
        );
    }
}

/// The events of a burst of datagrams under loss, duplication and reordering, with a `Drain`
/// and a `close()` with datagrams queued, on a core with `max_datagrams_in_flight` at `limit`.
fn burst_with_in_flight(seed: u64, limit: usize) -> Vec<(HostId, Event)> {
    let cfg = SimConfig::default()
        .link(
            Link::default()
                .udp_loss(0.1)
                .udp_duplicate(0.1)
                .udp_reorder(Duration::from_millis(2)),
        )
        .core(
            sockstate::Config::default()
                .max_datagrams_in_flight(limit)
                .high_water_mark(1000),
        );
    let mut sim = Sim::with_config(seed, cfg);
    let a = sim.add_host("a.test", &[ip("127.0.0.1")]).unwrap();
    let b = sim.add_host("b.test", &[ip("127.0.0.2")]).unwrap();
    let local = |port| UdpOptions::default().local_port(Some(port));
    let rx = udp(&mut sim, b, local(5002));
    let tx = udp(&mut sim, a, local(5003));
    let mut events = sim.run_for(Duration::from_millis(5));
    for round in 0..3u8 {
        for i in 0..40u8 {
            let to = Some("127.0.0.2:5002".parse().unwrap());
            let data = vec![i; 1 + (i as usize * 37 + round as usize) % 100].into();
            sim.call(a, Call::UdpSend { id: tx, data, to }).unwrap();
        }
        let back = Some("127.0.0.1:5003".parse().unwrap());
        sim.call(
            b,
            Call::UdpSend {
                id: rx,
                data: vec![round; 3].into(),
                to: back,
            },
        )
        .unwrap();
        events.extend(sim.run_for(Duration::from_millis(20)));
    }
    sim.call(
        a,
        Call::UdpSend {
            id: tx,
            data: "last".into(),
            to: Some("127.0.0.2:5002".parse().unwrap()),
        },
    )
    .unwrap();
    sim.call(a, Call::UdpClose { id: tx }).unwrap();
    events.extend(sim.run());
    clean(&sim, seed);
    events
}

#[test]
fn datagrams_in_flight_together_change_nothing_the_app_sees() {
    for seed in seeds() {
        let one = burst_with_in_flight(seed, 1);
        let many = burst_with_in_flight(seed, 64);
        assert!(
            one.iter().any(|(_, e)| matches!(e, Event::Drain { .. })),
            "seed {seed}"
        );
        assert_eq!(one, many, "seed {seed}: one in flight against 64");
    }
}

#[test]
fn a_udp_default_destination_by_name_is_resolved_by_the_sims_table() {
    for seed in seeds() {
        let (mut sim, a, b) = two_hosts(seed, Link::default());
        let rx = udp(&mut sim, b, UdpOptions::default().local_port(Some(5004)));
        let named = |host: &str| {
            UdpOptions::default()
                .remote_host(Some(host.into()))
                .remote_port(Some(5004))
                .dns_query_type(Some(sockstate::DnsQueryType::Ipv4))
        };
        let tx = udp(&mut sim, a, named("b.test"));
        let lost = udp(&mut sim, a, named("nowhere.test"));
        let events = sim.run_for(Duration::from_millis(50));
        let core = sim.core(a).unwrap();
        let tx_state = core.udp(tx).map(|s| (s.ready_state(), s.remote_address()));
        ensure(
            &sim,
            seed,
            tx_state
                == Some((
                    sockstate::ReadyState::Open,
                    Some("127.0.0.2:5004".parse().unwrap()),
                )),
            "open, with the resolved destination",
        );
        let not_found = events.iter().any(|(h, e)| {
            *h == a
                && matches!(e, Event::Error { id, error }
                    if *id == SocketId::from(lost) && error.code == ErrorCode::DomainNotFound)
        });
        ensure(
            &sim,
            seed,
            not_found,
            "an unknown name is DomainNotFoundError",
        );
        sim.call(
            a,
            Call::UdpSend {
                id: tx,
                data: "hi".into(),
                to: None,
            },
        )
        .unwrap();
        let events = sim.run_for(Duration::from_millis(50));
        let got = events.iter().any(|(h, e)| {
            *h == b
                && matches!(e, Event::Message { id, data, .. } if *id == rx && &data[..] == b"hi")
        });
        ensure(&sim, seed, got, "the datagram reached b.test");
        sim.call(a, Call::UdpClose { id: tx }).unwrap();
        sim.call(b, Call::UdpClose { id: rx }).unwrap();
        let _ = sim.run();
        clean(&sim, seed);
    }
}

/// `SimConfig::udp_batches`: the simulated OS takes a step's datagrams together (one `Sent`
/// of their count) and hands a run of equal-size ones as one `Datagrams`, as GSO and GRO do;
/// the app sees the same messages, one per datagram, in order.
#[test]
fn batched_datagrams_arrive_as_runs_and_are_answered_by_count() {
    use sockstate::sim::Happening;
    use sockstate::Input;
    for seed in seeds() {
        let cfg = SimConfig::default().udp_batches(true);
        let mut sim = Sim::with_config(seed, cfg);
        let a = sim.add_host("a.test", &[ip("127.0.0.1")]).unwrap();
        let b = sim.add_host("b.test", &[ip("127.0.0.2")]).unwrap();
        let rx = udp(&mut sim, b, UdpOptions::default().local_port(Some(5004)));
        let tx = udp(&mut sim, a, UdpOptions::default());
        let _ = sim.run_for(Duration::from_millis(5));
        let to = Some("127.0.0.2:5004".parse().unwrap());
        // Ten of 100 bytes and a short one: one run; then one of another size.
        let mut sent: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 100]).collect();
        sent.push(vec![10; 30]);
        sent.push(vec![11; 200]);
        for d in &sent {
            let data = d.clone().into();
            sim.call(a, Call::UdpSend { id: tx, data, to }).unwrap();
        }
        let events = sim.run_for(Duration::from_millis(50));
        clean(&sim, seed);
        let got: Vec<Vec<u8>> = (events.iter())
            .filter_map(|(h, e)| match e {
                Event::Message { id, data, .. } if *h == b && *id == rx => Some(data.to_vec()),
                _ => None,
            })
            .collect();
        ensure(&sim, seed, got == sent, "every datagram whole, in order");
        let inputs: Vec<&Input> = (sim.transcript().iter())
            .filter_map(|r| match &r.what {
                Happening::Input { input, result } if result.is_ok() => Some(input),
                _ => None,
            })
            .collect();
        let sent_counts: usize = (inputs.iter())
            .filter_map(|i| match i {
                Input::Sent { id, count } if *id == tx => Some(*count),
                _ => None,
            })
            .sum();
        ensure(&sim, seed, sent_counts == sent.len(), "each answered once");
        let runs = (inputs.iter())
            .filter(|i| matches!(i, Input::Datagrams { segment_size: 100, data, .. } if data.len() == 1030))
            .count();
        ensure(&sim, seed, runs == 1, "the equal-size ones as one run");
        let pending = sim.core(a).unwrap().udp(tx).unwrap().buffered_amount();
        ensure(&sim, seed, pending == 0, "everything sent");
    }
}
