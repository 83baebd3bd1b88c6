//! Scripted clients (`Sim::peer_connect`) against a user's line server on a core: greetings,
//! echo, half-close, resets, a suspended server's backlog, `maxConnections`, refusals, black
//! holes, partitions and crashes, each under the invariant checker of every host.

mod common;

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::{clean, ensure, seeds};
use sockstate::sim::{
    AfterGreeting, Call, ConnId, HostId, Link, Peer, PeerState, Returned, Sim, SimConfig, SimError,
    PEER_CONNECT_TIMEOUT,
};
use sockstate::{BinaryType, Bytes, ErrorCode, Event, ServerId, ServerOptions, SocketId, TcpId};

const GREETING: &[u8] = b"hello\n";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The user's app: a line server. It greets every connection, answers each complete line
/// with `> line\n`, and closes when the client half-closes (its FIN ends the socket).
#[derive(Default)]
struct LineServer {
    partial: BTreeMap<TcpId, Vec<u8>>,
    accepted: Vec<TcpId>,
    errors: Vec<(TcpId, ErrorCode)>,
    closed: Vec<TcpId>,
    refusals: usize,
}

impl LineServer {
    fn on(&mut self, sim: &mut Sim, host: HostId, event: Event) {
        match event {
            Event::Connect { socket, .. } => {
                self.accepted.push(socket);
                let data = Bytes::from_static(GREETING);
                sim.call(host, Call::TcpSend { id: socket, data }).unwrap();
            }
            Event::Data { id, data } => {
                let buf = self.partial.entry(id).or_default();
                buf.extend_from_slice(data.as_bytes());
                let mut out = Vec::new();
                while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=end).collect();
                    out.extend_from_slice(b"> ");
                    out.extend_from_slice(&line);
                }
                if !out.is_empty() {
                    let data = out.into();
                    sim.call(host, Call::TcpSend { id, data }).unwrap();
                }
            }
            Event::Error {
                id: SocketId::TcpId(id),
                error,
            } => self.errors.push((id, error.code)),
            Event::Error {
                id: SocketId::ServerId(_),
                ..
            } => self.refusals += 1,
            Event::Close {
                id: SocketId::TcpId(id),
            } => self.closed.push(id),
            _ => {}
        }
    }

    /// Runs the sim, answering the server host's events, for `span` (or to the end).
    fn run(&mut self, sim: &mut Sim, server: HostId, span: Option<Duration>) {
        let until = span.map(|s| sim.now() + s);
        loop {
            let left = until.map(|u| u.saturating_sub(sim.now()));
            let next = match left {
                Some(left) if left.is_zero() => None,
                Some(left) => sim.next_event_within(left),
                None => sim.next_event(),
            };
            let Some((host, event)) = next else { break };
            assert_eq!(host, server, "only the server host has a core app");
            self.on(sim, host, event);
        }
    }
}

fn expected_reply(lines: &[u8]) -> Vec<u8> {
    let mut out = GREETING.to_vec();
    for line in lines.split_inclusive(|b| *b == b'\n') {
        out.extend_from_slice(b"> ");
        out.extend_from_slice(line);
    }
    out
}

/// A server host on 127.0.0.2 listening on port 7 with `options`, and a host for clients on
/// 127.0.0.5 (no app of its own: scripted clients use its address).
fn setup(seed: u64, link: Link, options: ServerOptions) -> (Sim, HostId, HostId, ServerId) {
    let mut sim = Sim::with_config(seed, SimConfig::default().link(link));
    let server = sim.add_host("server", &[ip("127.0.0.2")]).unwrap();
    let clients = sim.add_host("clients", &[ip("127.0.0.5")]).unwrap();
    let options = options
        .local_port(Some(7))
        .binary_type(BinaryType::ArrayBuffer);
    let Ok(Returned::Listening(id)) = sim.call(server, Call::ServerListen { options }) else {
        panic!("listen")
    };
    let _ = sim.run();
    (sim, server, clients, id)
}

fn lines_of(i: usize) -> Vec<u8> {
    (0..=i)
        .map(|n| format!("line {n} of client {i}\n"))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn several_scripted_clients_get_the_greeting_and_their_lines_back_then_half_close() {
    for seed in seeds() {
        let link = Link::default().jitter(Duration::from_millis(3)).max_read(7);
        let (mut sim, server, _, _) = setup(seed, link, ServerOptions::default());
        // Remote clients from addresses no host has, one from the clients host's address;
        // each sends its lines and half-closes at once.
        let froms = [
            "192.0.2.1:0",
            "192.0.2.1:0",
            "198.51.100.7:4000",
            "127.0.0.5:0",
        ];
        let conns: Vec<ConnId> = froms
            .iter()
            .enumerate()
            .map(|(i, from)| {
                let script = Peer {
                    after_greeting: AfterGreeting::Close,
                    ..Peer::send(lines_of(i))
                };
                sim.peer_connect(addr(from), addr("127.0.0.2:7"), script)
                    .unwrap()
            })
            .collect();
        let mut app = LineServer::default();
        app.run(&mut sim, server, None);
        clean(&sim, seed);
        ensure(
            &sim,
            seed,
            app.accepted.len() == conns.len(),
            "all accepted",
        );
        ensure(&sim, seed, app.closed.len() == conns.len(), "all closed");
        ensure(&sim, seed, app.errors.is_empty(), "no error");
        for (i, conn) in conns.iter().enumerate() {
            let got = sim.peer_received(*conn).unwrap();
            ensure(
                &sim,
                seed,
                got == expected_reply(&lines_of(i)),
                &format!("client {i} got {:?}", String::from_utf8_lossy(got)),
            );
            ensure(
                &sim,
                seed,
                sim.peer_state(*conn) == Some(PeerState::Closed),
                "closed",
            );
        }
        // Ports: the two from 192.0.2.1 differ; the one with a port keeps it.
        let (a, b) = (sim.conn_addrs(conns[0]), sim.conn_addrs(conns[1]));
        ensure(&sim, seed, a.unwrap().0 != b.unwrap().0, "distinct ports");
        let fixed = sim.conn_addrs(conns[2]).unwrap().0;
        ensure(&sim, seed, fixed == addr("198.51.100.7:4000"), "own port");
    }
}

#[test]
fn a_client_driven_by_hand_waits_for_the_greeting_then_talks() {
    for seed in seeds() {
        let (mut sim, server, _, _) = setup(seed, Link::default(), ServerOptions::default());
        let conn = sim
            .peer_connect(addr("192.0.2.9:0"), addr("127.0.0.2:7"), Peer::sink())
            .unwrap();
        ensure(
            &sim,
            seed,
            sim.peer_state(conn) == Some(PeerState::Connecting),
            "connecting",
        );
        // Sent before it connects: waits, and goes first.
        sim.peer_send(conn, "early\n").unwrap();
        let mut app = LineServer::default();
        app.run(&mut sim, server, Some(Duration::from_millis(100)));
        ensure(
            &sim,
            seed,
            sim.peer_state(conn) == Some(PeerState::Open),
            "open",
        );
        let got = sim.peer_received(conn).unwrap().to_vec();
        ensure(
            &sim,
            seed,
            got == expected_reply(b"early\n"),
            "greeting, echo",
        );
        // It stops reading: the server's replies wait in its kernel.
        sim.peer_pause(conn, true).unwrap();
        sim.peer_send(conn, "one\ntwo\n").unwrap();
        app.run(&mut sim, server, Some(Duration::from_millis(100)));
        ensure(
            &sim,
            seed,
            sim.peer_unread(conn) == Some(12),
            "unread replies",
        );
        sim.peer_pause(conn, false).unwrap();
        sim.peer_close(conn).unwrap();
        app.run(&mut sim, server, None);
        clean(&sim, seed);
        let got = sim.peer_received(conn).unwrap();
        ensure(
            &sim,
            seed,
            got == expected_reply(b"early\none\ntwo\n"),
            "every reply",
        );
        ensure(
            &sim,
            seed,
            sim.peer_sent(conn) == Some(&b"early\none\ntwo\n"[..]),
            "sent",
        );
        ensure(
            &sim,
            seed,
            sim.peer_state(conn) == Some(PeerState::Closed),
            "closed",
        );
        let late = sim.peer_send(conn, "late");
        ensure(
            &sim,
            seed,
            late == Err(SimError::PeerDoneSending(conn)),
            "nothing after FIN",
        );
    }
}

#[test]
fn resets_from_the_client_the_network_and_the_server() {
    for seed in seeds() {
        let (mut sim, server, _, _) = setup(seed, Link::default(), ServerOptions::default());
        let to = addr("127.0.0.2:7");
        let by_peer = sim
            .peer_connect(addr("192.0.2.1:0"), to, Peer::sink())
            .unwrap();
        let by_net = sim
            .peer_connect(addr("192.0.2.2:0"), to, Peer::sink())
            .unwrap();
        let by_server = sim
            .peer_connect(addr("192.0.2.3:0"), to, Peer::sink())
            .unwrap();
        let mut app = LineServer::default();
        app.run(&mut sim, server, Some(Duration::from_millis(50)));
        ensure(&sim, seed, app.accepted.len() == 3, "accepted");
        sim.peer_reset(by_peer).unwrap();
        sim.reset(by_net).unwrap();
        // The server stops reading the third, which writes on: closing it at once with unread
        // input resets it (as Linux does).
        let third = app.accepted[2];
        sim.call(server, Call::TcpSuspend { id: third }).unwrap();
        sim.peer_send(
            by_server,
            "never read
",
        )
        .unwrap();
        app.run(&mut sim, server, Some(Duration::from_millis(50)));
        sim.call(server, Call::TcpCloseImmediately { id: third })
            .unwrap();
        app.run(&mut sim, server, None);
        clean(&sim, seed);
        let interrupted = app
            .errors
            .iter()
            .filter(|(_, code)| *code == ErrorCode::NetworkInterrupt)
            .count();
        ensure(&sim, seed, interrupted == 2, "two server sockets reset");
        ensure(&sim, seed, app.closed.len() == 3, "all closed");
        let reset = Some(PeerState::Failed(ErrorKind::ConnectionReset));
        ensure(
            &sim,
            seed,
            sim.peer_state(by_peer) == Some(PeerState::Closed),
            "it reset itself",
        );
        ensure(&sim, seed, sim.peer_state(by_net) == reset, "reset by net");
        ensure(
            &sim,
            seed,
            sim.peer_state(by_server) == reset,
            "reset by server",
        );
    }
}

#[test]
fn a_suspended_server_queues_scripted_clients_connected_until_it_resumes() {
    for seed in seeds() {
        let (mut sim, server, _, id) = setup(seed, Link::default(), ServerOptions::default());
        sim.call(server, Call::ServerSuspend { id }).unwrap();
        let conns: Vec<ConnId> = (0..3)
            .map(|i| {
                let from = addr(&format!("192.0.2.{}:0", i + 1));
                let script = Peer {
                    after_greeting: AfterGreeting::Close,
                    ..Peer::send("hi\n")
                };
                sim.peer_connect(from, addr("127.0.0.2:7"), script).unwrap()
            })
            .collect();
        let mut app = LineServer::default();
        app.run(&mut sim, server, Some(Duration::from_secs(5)));
        ensure(&sim, seed, app.accepted.is_empty(), "none accepted");
        // As Linux: the kernel completed their handshakes (the accept queue).
        for conn in &conns {
            let state = sim.peer_state(*conn);
            ensure(
                &sim,
                seed,
                state == Some(PeerState::Open),
                "connected, queued",
            );
        }
        sim.call(server, Call::ServerResume { id }).unwrap();
        app.run(&mut sim, server, None);
        clean(&sim, seed);
        ensure(
            &sim,
            seed,
            app.accepted.len() == 3,
            "all accepted on resume",
        );
        for conn in &conns {
            let got = sim.peer_received(*conn).unwrap();
            ensure(&sim, seed, got == expected_reply(b"hi\n"), "replies");
            let state = sim.peer_state(*conn);
            ensure(&sim, seed, state == Some(PeerState::Closed), "closed");
        }
    }
}

#[test]
fn a_server_at_max_connections_resets_the_client_beyond() {
    for seed in seeds() {
        let options = ServerOptions::default().max_connections(Some(2));
        let (mut sim, server, _, _) = setup(seed, Link::default(), options);
        let mut app = LineServer::default();
        let mut conns = Vec::new();
        for i in 0..3 {
            let from = addr(&format!("192.0.2.{}:0", i + 1));
            conns.push(
                sim.peer_connect(from, addr("127.0.0.2:7"), Peer::sink())
                    .unwrap(),
            );
            app.run(&mut sim, server, Some(Duration::from_millis(20)));
        }
        clean(&sim, seed);
        ensure(&sim, seed, app.accepted.len() == 2, "two accepted");
        ensure(&sim, seed, app.refusals == 1, "the server reports one");
        let states: Vec<_> = conns.iter().map(|c| sim.peer_state(*c)).collect();
        let open = Some(PeerState::Open);
        let reset = Some(PeerState::Failed(ErrorKind::ConnectionReset));
        ensure(&sim, seed, states == [open, open, reset], "third reset");
        for conn in &conns[..2] {
            let got = sim.peer_received(*conn).unwrap();
            ensure(&sim, seed, got == GREETING, "greeted");
        }
    }
}

#[test]
fn nobody_listening_refuses_and_a_black_hole_times_out() {
    let (mut sim, server, _, _) = setup(1, Link::default(), ServerOptions::default());
    let from = addr("192.0.2.1:0");
    let nobody = sim
        .peer_connect(from, addr("127.0.0.2:8"), Peer::sink())
        .unwrap();
    sim.refuse(addr("127.0.0.2:7"));
    let refused = sim
        .peer_connect(from, addr("127.0.0.2:7"), Peer::sink())
        .unwrap();
    // Scripted ends talk to cores only: a scripted listener refuses a scripted client.
    sim.listen(addr("127.0.0.2:9"), Peer::echo()).unwrap();
    let scripted = sim
        .peer_connect(from, addr("127.0.0.2:9"), Peer::sink())
        .unwrap();
    let _ = sim.run();
    let refused_state = Some(PeerState::Failed(ErrorKind::ConnectionRefused));
    assert_eq!(sim.peer_state(nobody), refused_state);
    assert_eq!(sim.peer_state(refused), refused_state);
    assert_eq!(sim.peer_state(scripted), refused_state);
    assert!(
        sim.now() < Duration::from_millis(10),
        "at once: {:?}",
        sim.now()
    );
    sim.heal(ip("127.0.0.2"));

    // An address no host has: no answer, Linux's 127 s (the run then ends at once).
    let start = sim.now();
    let lost = sim
        .peer_connect(from, addr("203.0.113.1:7"), Peer::sink())
        .unwrap();
    let _ = sim.run();
    assert_eq!(
        sim.peer_state(lost),
        Some(PeerState::Failed(ErrorKind::TimedOut))
    );
    assert_eq!(sim.now() - start, PEER_CONNECT_TIMEOUT);

    // A black-holed server, with a shorter timeout of the script's own.
    sim.black_hole(ip("127.0.0.2"));
    let start = sim.now();
    let script = Peer {
        connect_timeout: Duration::from_secs(3),
        ..Peer::sink()
    };
    let holed = sim.peer_connect(from, addr("127.0.0.2:7"), script).unwrap();
    let mut app = LineServer::default();
    app.run(&mut sim, server, None);
    assert_eq!(
        sim.peer_state(holed),
        Some(PeerState::Failed(ErrorKind::TimedOut))
    );
    assert_eq!(sim.now() - start, Duration::from_secs(3));
    // Healed: the SYN sent again finds a connect that gave up; nothing is accepted.
    sim.heal(ip("127.0.0.2"));
    app.run(&mut sim, server, None);
    assert!(app.accepted.is_empty());
    assert_eq!(sim.violations(), []);
}

#[test]
fn a_black_hole_partition_or_hold_undone_in_time_lets_the_connect_through() {
    for way in ["black hole", "partition", "hold"] {
        let (mut sim, server, clients, _) = setup(2, Link::default(), ServerOptions::default());
        match way {
            "black hole" => sim.black_hole(ip("127.0.0.2")),
            "partition" => sim.partition(clients, server),
            _ => sim.hold(clients, server),
        }
        let script = Peer::send("late\n");
        let conn = sim
            .peer_connect(addr("127.0.0.5:0"), addr("127.0.0.2:7"), script)
            .unwrap();
        let mut app = LineServer::default();
        app.run(&mut sim, server, Some(Duration::from_secs(60)));
        assert_eq!(sim.peer_state(conn), Some(PeerState::Connecting), "{way}");
        match way {
            "black hole" => sim.heal(ip("127.0.0.2")),
            "partition" => sim.repair(clients, server),
            _ => sim.release(clients, server),
        }
        app.run(&mut sim, server, Some(Duration::from_secs(1)));
        assert_eq!(sim.peer_state(conn), Some(PeerState::Open), "{way}");
        assert_eq!(
            sim.peer_received(conn),
            Some(&expected_reply(b"late\n")[..])
        );
        assert_eq!(sim.violations(), []);
    }
}

#[test]
fn a_reset_while_the_syn_is_in_flight_refuses_the_scripted_connect() {
    for seed in seeds() {
        let (mut sim, server, _, _) = setup(seed, Link::default(), ServerOptions::default());
        let conn = sim
            .peer_connect(addr("192.0.2.1:0"), addr("127.0.0.2:7"), Peer::sink())
            .unwrap();
        sim.reset(conn).unwrap();
        let mut app = LineServer::default();
        app.run(&mut sim, server, None);
        clean(&sim, seed);
        let state = sim.peer_state(conn);
        let refused = Some(PeerState::Failed(ErrorKind::ConnectionRefused));
        ensure(&sim, seed, state == refused, "refused");
        ensure(&sim, seed, app.accepted.is_empty(), "never accepted");
    }
}

#[test]
fn a_crashed_server_is_silence_then_resets_once_restarted() {
    let (mut sim, server, clients, _) = setup(3, Link::default(), ServerOptions::default());
    let remote = sim
        .peer_connect(addr("192.0.2.1:0"), addr("127.0.0.2:7"), Peer::sink())
        .unwrap();
    let local = sim
        .peer_connect(addr("127.0.0.5:0"), addr("127.0.0.2:7"), Peer::sink())
        .unwrap();
    let mut app = LineServer::default();
    app.run(&mut sim, server, Some(Duration::from_millis(50)));
    sim.crash(server).unwrap();
    for conn in [remote, local] {
        sim.peer_send(conn, "anyone?\n").unwrap();
    }
    let _ = sim.run_for(Duration::from_secs(30));
    for conn in [remote, local] {
        assert_eq!(sim.peer_state(conn), Some(PeerState::Open), "silence");
    }
    sim.restart(server).unwrap();
    let _ = sim.run_for(Duration::from_secs(1));
    for conn in [remote, local] {
        let state = sim.peer_state(conn);
        assert_eq!(state, Some(PeerState::Failed(ErrorKind::ConnectionReset)));
    }
    // A scripted client on a host crashes with it.
    let again = sim
        .peer_connect(addr("127.0.0.5:0"), addr("127.0.0.2:7"), Peer::sink())
        .unwrap();
    sim.crash(clients).unwrap();
    assert_eq!(sim.peer_state(again), Some(PeerState::Closed));
    assert_eq!(
        sim.peer_connect(addr("127.0.0.5:0"), addr("127.0.0.2:7"), Peer::sink()),
        Err(SimError::HostDown(clients))
    );
    assert_eq!(sim.violations(), []);
}

#[test]
fn bad_connects_are_errors() {
    let (mut sim, _, _, _) = setup(4, Link::default(), ServerOptions::default());
    let to = addr("127.0.0.2:7");
    let bad = |from: &str, to: &str| SimError::BadConnect {
        from: addr(from),
        to: addr(to),
    };
    assert_eq!(
        sim.peer_connect(addr("192.0.2.1:0"), addr("127.0.0.2:0"), Peer::sink()),
        Err(SimError::PortZero)
    );
    assert_eq!(
        sim.peer_connect(addr("0.0.0.0:0"), to, Peer::sink()),
        Err(bad("0.0.0.0:0", "127.0.0.2:7"))
    );
    assert_eq!(
        sim.peer_connect(addr("[::1]:0"), to, Peer::sink()),
        Err(bad("[::1]:0", "127.0.0.2:7"))
    );
    let first = sim.peer_connect(addr("192.0.2.1:5000"), to, Peer::sink());
    assert!(first.is_ok());
    assert_eq!(
        sim.peer_connect(addr("192.0.2.1:5000"), to, Peer::sink()),
        Err(SimError::AddressInUse(addr("192.0.2.1:5000")))
    );
}
