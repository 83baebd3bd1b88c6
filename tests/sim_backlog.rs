//! A core's `TCPServerSocket` while it does not accept (suspended), against Linux: the kernel
//! completes the handshake and queues the connection in the accept queue, up to the
//! `listen(2)` backlog (Linux takes `backlog + 1`); a client connects and sends (up to the
//! receive window) before the server accepts. Beyond the backlog the SYN is dropped and the
//! client's TCP sends it again on its schedule (1 s, 3 s, 7 s, ...). A crashed host loses its
//! queue; a closed server resets what it had queued.

mod common;

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::{clean, ensure, seeds};
use sockstate::sim::{
    Call, ConnId, Happening, HostId, Link, Peer, PeerState, Returned, Sim, SimConfig,
};
use sockstate::{
    BinaryType, ErrorCode, Event, ServerId, ServerOptions, SocketId, TcpId, TcpOptions,
};

const MS: Duration = Duration::from_millis(1);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A client host 127.0.0.1 and a server host 127.0.0.2 whose core listens on port 7 with
/// `backlog` and is suspended at once; links of exactly 1 ms.
fn setup(seed: u64, backlog: u32) -> (Sim, HostId, HostId, ServerId) {
    let link = Link::default().jitter(Duration::ZERO).latency(MS);
    let mut sim = Sim::with_config(seed, SimConfig::default().link(link));
    let client = sim.add_host("client", &[ip("127.0.0.1")]).unwrap();
    let server = sim.add_host("server", &[ip("127.0.0.2")]).unwrap();
    let options = ServerOptions::default()
        .local_port(Some(7))
        .backlog(backlog)
        .binary_type(BinaryType::ArrayBuffer);
    let Ok(Returned::Listening(id)) = sim.call(server, Call::ServerListen { options }) else {
        panic!("listen")
    };
    sim.run();
    sim.call(server, Call::ServerSuspend { id }).unwrap();
    (sim, client, server, id)
}

fn connect(sim: &mut Sim, client: HostId) -> TcpId {
    let options = TcpOptions::default().binary_type(BinaryType::ArrayBuffer);
    let call = Call::TcpOpen {
        host: "127.0.0.2".into(),
        port: 7,
        options,
    };
    let Ok(Returned::Opened(id)) = sim.call(client, call) else {
        panic!("open")
    };
    id
}

fn scripted(sim: &mut Sim, n: u8, script: Peer) -> ConnId {
    let from = addr(&format!("192.0.2.{n}:0"));
    sim.peer_connect(from, addr("127.0.0.2:7"), script).unwrap()
}

/// The server app: every accepted socket reads; what they received, in order of accept.
fn serve(sim: &mut Sim, server: HostId, span: Duration) -> Vec<(TcpId, Vec<u8>)> {
    let mut got: Vec<(TcpId, Vec<u8>)> = Vec::new();
    for (host, event) in sim.run_for(span) {
        if host != server {
            continue;
        }
        match event {
            Event::Connect { socket, .. } => got.push((socket, Vec::new())),
            Event::Data { id, data } => {
                if let Some((_, bytes)) = got.iter_mut().find(|(s, _)| *s == id) {
                    bytes.extend_from_slice(data.as_bytes());
                }
            }
            _ => {}
        }
    }
    got
}

#[test]
fn a_client_connects_to_a_suspended_server_and_sends_before_the_accept() {
    for seed in seeds() {
        let (mut sim, client, server, id) = setup(seed, 128);
        let start = sim.now();
        let socket = connect(&mut sim, client);
        let events = sim.run_for(2 * MS);
        let opened = events.contains(&(client, Event::Open { id: socket.into() }));
        ensure(&sim, seed, opened, "Open one round trip after the connect");
        ensure(&sim, seed, sim.now() == start + 2 * MS, "at 2 ms");
        let data = b"before the accept".to_vec().into();
        sim.call(client, Call::TcpSend { id: socket, data })
            .unwrap();
        let during = serve(&mut sim, server, Duration::from_secs(1));
        ensure(
            &sim,
            seed,
            during.is_empty(),
            "nothing accepted while suspended",
        );
        sim.call(server, Call::ServerResume { id }).unwrap();
        let after = serve(&mut sim, server, Duration::from_secs(1));
        ensure(
            &sim,
            seed,
            after.len() == 1 && after[0].1 == b"before the accept",
            &format!("accepted on resume with the data: {after:?}"),
        );
        clean(&sim, seed);
    }
}

#[test]
fn a_queued_connection_takes_a_window_of_data_and_the_rest_waits() {
    let (mut sim, _, server, id) = setup(1, 128);
    let big = vec![7u8; 1 << 20];
    let conn = scripted(&mut sim, 1, Peer::send(big.clone()));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.peer_state(conn), Some(PeerState::Open));
    // Its receive window (128 KiB) and its own send buffer (128 KiB) are full.
    assert_eq!(sim.peer_sent(conn).map(<[u8]>::len), Some(256 << 10));
    sim.call(server, Call::ServerResume { id }).unwrap();
    let got = serve(&mut sim, server, Duration::from_secs(10));
    assert_eq!(got.len(), 1);
    assert!(got[0].1 == big, "all of it after the accept");
    clean(&sim, 1);
}

#[test]
fn beyond_the_backlog_syns_are_dropped_and_sent_again_on_linux_s_schedule() {
    for seed in seeds().take(4) {
        // backlog 1: Linux queues 2 (`sk_acceptq_is_full` is `>`).
        let (mut sim, _, server, id) = setup(seed, 1);
        let start = sim.now();
        let first = scripted(&mut sim, 1, Peer::send("1"));
        let second = scripted(&mut sim, 2, Peer::send("2"));
        sim.run_for(10 * MS);
        let third = scripted(&mut sim, 3, Peer::send("3"));
        let t3 = sim.now();
        sim.run_for(Duration::from_millis(1500));
        for (conn, want) in [(first, PeerState::Open), (second, PeerState::Open)] {
            ensure(&sim, seed, sim.peer_state(conn) == Some(want), "queued");
        }
        let state = sim.peer_state(third);
        ensure(&sim, seed, state == Some(PeerState::Connecting), "dropped");
        // Resumed before its second retry (3 s): the queue empties, and that retry connects.
        sim.call(server, Call::ServerResume { id }).unwrap();
        let got = serve(&mut sim, server, Duration::from_secs(5));
        let opened: Vec<&[u8]> = got.iter().map(|(_, d)| &d[..]).collect();
        ensure(
            &sim,
            seed,
            opened == [b"1", b"2", b"3"],
            &format!("{got:?}"),
        );
        let again: Vec<Duration> = sim
            .transcript()
            .iter()
            .filter(|r| matches!(&r.what, Happening::Net(w) if w.contains("SYN sent again")))
            .map(|r| r.at)
            .collect();
        let want = [t3 + Duration::from_secs(1), t3 + Duration::from_secs(3)];
        ensure(&sim, seed, again == want, &format!("retries at {again:?}"));
        let dropped = sim
            .transcript()
            .iter()
            .filter(|r| matches!(&r.what, Happening::Net(w) if w.contains("accept queue")))
            .count();
        ensure(
            &sim,
            seed,
            dropped == 2,
            "the first SYN and the 1 s retry dropped",
        );
        ensure(&sim, seed, start < t3, "");
        clean(&sim, seed);
    }
}

#[test]
fn a_crashed_server_loses_its_accept_queue_and_the_restarted_host_resets() {
    let (mut sim, client, server, _) = setup(2, 128);
    let socket = connect(&mut sim, client);
    sim.run_for(2 * MS);
    sim.crash(server).unwrap();
    sim.run_for(Duration::from_secs(1));
    let data = b"anyone?".to_vec().into();
    sim.call(client, Call::TcpSend { id: socket, data })
        .unwrap();
    sim.run_for(Duration::from_secs(1));
    sim.restart(server).unwrap();
    let events = sim.run_for(Duration::from_secs(1));
    let reset = events.iter().any(|(h, e)| {
        *h == client
            && matches!(e, Event::Error { id, error }
                if *id == SocketId::from(socket) && error.code == ErrorCode::NetworkInterrupt)
    });
    assert!(reset, "{events:?}");
    clean(&sim, 2);
}

#[test]
fn closing_a_suspended_server_resets_what_it_had_queued() {
    let (mut sim, client, server, id) = setup(3, 128);
    let socket = connect(&mut sim, client);
    let conn = scripted(&mut sim, 1, Peer::sink());
    sim.run_for(10 * MS);
    assert_eq!(sim.peer_state(conn), Some(PeerState::Open));
    sim.call(server, Call::ServerClose { id }).unwrap();
    let events = sim.run_for(Duration::from_secs(1));
    let reset = events.iter().any(|(h, e)| {
        *h == client
            && matches!(e, Event::Error { id, error }
                if *id == SocketId::from(socket) && error.code == ErrorCode::NetworkInterrupt)
    });
    assert!(reset, "{events:?}");
    assert_eq!(
        sim.peer_state(conn),
        Some(PeerState::Failed(ErrorKind::ConnectionReset))
    );
    clean(&sim, 3);
}
