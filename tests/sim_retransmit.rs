//! TCP's retransmission timers in the simulated network, against Linux's: data or a FIN that
//! a vanished peer never acknowledges fails the connection with `ETIMEDOUT`
//! (`NetworkTimeoutError`) after `tcp_retries2` (15) retransmissions, and a connect nobody
//! answers fails after `tcp_syn_retries` (6), at 127 s, for cores and scripted clients alike.
//!
//! On links of exactly 1 ms the RTO is 2 ms + max(4 ms, 200 ms) = 202 ms, so the
//! retransmissions go at 0.202 s × (2^k − 1) up to the 10th (206.646 s), then every 120 s, and
//! the 16th firing (926.646 s after the send) is the first whose distance from the first
//! retransmission (0.202 s) reaches Linux's 924.6 s: it gives up.

mod common;

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::{clean, ensure, seeds};
use sockstate::sim::{
    Call, ConnId, Happening, HostId, Link, Peer, PeerState, Returned, Sim, SimConfig,
};
use sockstate::{BinaryType, Config, ErrorCode, Event, ServerOptions, SocketId, TcpId, TcpOptions};

const MS: Duration = Duration::from_millis(1);
/// From the send of the first unacknowledged byte to the give-up, on 1 ms links.
const GIVE_UP: Duration = Duration::from_millis(926_646);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A client host 127.0.0.1 and a server host 127.0.0.2 (a scripted `peer` on port 7, or a
/// core server there), links of exactly 1 ms, a clock that may run 10 h.
fn setup(seed: u64, core: Config, peer: Option<Peer>) -> (Sim, HostId, HostId) {
    let link = Link::default().jitter(Duration::ZERO).latency(MS);
    let cfg = SimConfig::default()
        .link(link)
        .core(core)
        .time_limit(Duration::from_secs(10 * 3600));
    let mut sim = Sim::with_config(seed, cfg);
    let client = sim.add_host("client", &[ip("127.0.0.1")]).unwrap();
    let server = sim.add_host("server", &[ip("127.0.0.2")]).unwrap();
    match peer {
        Some(peer) => sim.listen(addr("127.0.0.2:7"), peer).unwrap(),
        None => {
            let options = ServerOptions::default().local_port(Some(7));
            let Ok(Returned::Listening(_)) = sim.call(server, Call::ServerListen { options })
            else {
                panic!("listen")
            };
            sim.run();
        }
    }
    (sim, client, server)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Opens a connection from the client to port 7 of `host`: open at 2 ms on a live server.
fn open(sim: &mut Sim, client: HostId, host: &str) -> TcpId {
    let options = TcpOptions::default().binary_type(BinaryType::ArrayBuffer);
    let call = Call::TcpOpen {
        host: host.into(),
        port: 7,
        options,
    };
    let Ok(Returned::Opened(id)) = sim.call(client, call) else {
        panic!("open")
    };
    id
}

fn open_now(sim: &mut Sim, client: HostId) -> (TcpId, ConnId) {
    let id = open(sim, client, "127.0.0.2");
    let events = sim.run_for(Duration::from_millis(2));
    let opened = events
        .iter()
        .any(|(h, e)| *h == client && *e == Event::Open { id: id.into() });
    assert!(opened, "not open at 2 ms: {events:?}");
    (id, sim.conn_of(client, id).unwrap())
}

fn send(sim: &mut Sim, host: HostId, id: TcpId, data: &[u8]) {
    let data = data.to_vec().into();
    sim.call(host, Call::TcpSend { id, data }).unwrap();
}

/// Runs until socket `id` of `host` gets an error: its code and the virtual time.
fn error_of(sim: &mut Sim, host: HostId, id: TcpId) -> Option<(ErrorCode, Duration)> {
    while let Some((h, event)) = sim.next_event_within(Duration::from_secs(3 * 3600)) {
        if let (true, Event::Error { id: e, error }) = (h == host, &event) {
            if *e == SocketId::from(id) {
                return Some((error.code, sim.now()));
            }
        }
    }
    None
}

fn notes(sim: &Sim, what: &str) -> Vec<Duration> {
    sim.transcript()
        .iter()
        .filter(|r| matches!(&r.what, Happening::Net(w) if w.contains(what)))
        .map(|r| r.at)
        .collect()
}

#[test]
fn unacknowledged_data_to_a_silenced_peer_times_out_after_15_retransmissions() {
    for seed in seeds().take(4) {
        let (mut sim, client, _) = setup(seed, Config::default(), Some(Peer::sink()));
        let (id, conn) = open_now(&mut sim, client);
        sim.silence(conn).unwrap();
        send(&mut sim, client, id, b"lost for good");
        let got = error_of(&mut sim, client, id);
        ensure(
            &sim,
            seed,
            got == Some((ErrorCode::NetworkTimeout, 2 * MS + GIVE_UP)),
            &format!("got {got:?}"),
        );
        let said = notes(&sim, "retransmissions unanswered");
        ensure(&sim, seed, said == [2 * MS + GIVE_UP], "noted once");
        clean(&sim, seed);
    }
}

#[test]
fn a_crashed_server_host_times_out_the_client_that_sends() {
    let (mut sim, client, server) = setup(3, Config::default(), None);
    let (id, _) = open_now(&mut sim, client);
    sim.run_for(Duration::from_millis(8)); // the server accepted: at 10 ms now
    sim.crash(server).unwrap();
    send(&mut sim, client, id, b"to nobody");
    let got = error_of(&mut sim, client, id);
    assert_eq!(got, Some((ErrorCode::NetworkTimeout, 10 * MS + GIVE_UP)));
    clean(&sim, 3);
}

#[test]
fn a_partition_repaired_before_the_give_up_lets_the_data_through() {
    for seed in seeds().take(4) {
        let (mut sim, client, server) = setup(seed, Config::default(), Some(Peer::sink()));
        let (id, conn) = open_now(&mut sim, client);
        sim.partition(client, server);
        send(&mut sim, client, id, b"late but whole");
        // Repaired 5 ms before the give-up: the data goes again and is acknowledged in time.
        let events = sim.run_for(GIVE_UP - 5 * MS);
        ensure(&sim, seed, events.is_empty(), &format!("{events:?}"));
        sim.repair(client, server);
        let events = sim.run_for(Duration::from_secs(2000));
        let errors = events
            .iter()
            .filter(|(_, e)| matches!(e, Event::Error { .. }))
            .count();
        ensure(&sim, seed, errors == 0, &format!("{events:?}"));
        let got = sim.peer_received(conn).unwrap_or_default();
        ensure(
            &sim,
            seed,
            got == b"late but whole",
            "delivered after the repair",
        );
        clean(&sim, seed);
    }
}

#[test]
fn a_hold_past_the_give_up_times_out_and_the_release_finds_a_closed_end() {
    let (mut sim, client, server) = setup(5, Config::default(), Some(Peer::sink()));
    let (id, conn) = open_now(&mut sim, client);
    sim.hold_oneway(client, server);
    send(&mut sim, client, id, b"held");
    let got = error_of(&mut sim, client, id);
    assert_eq!(got, Some((ErrorCode::NetworkTimeout, 2 * MS + GIVE_UP)));
    // The timed-out end sends nothing more: the release lets nothing through.
    sim.release_oneway(client, server);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.peer_received(conn), Some(&b""[..]));
    clean(&sim, 5);
}

#[test]
fn close_to_a_vanished_peer_the_close_timeout_fires_first_by_default() {
    let (mut sim, client, _) = setup(1, Config::default(), Some(Peer::sink()));
    let (id, conn) = open_now(&mut sim, client);
    sim.silence(conn).unwrap();
    send(&mut sim, client, id, b"bye");
    sim.call(client, Call::TcpClose { id }).unwrap();
    let got = error_of(&mut sim, client, id);
    // Config::close_timeout (30 s) from the close, long before TCP's 926.6 s.
    assert_eq!(
        got,
        Some((ErrorCode::NetworkTimeout, 2 * MS + Duration::from_secs(30)))
    );
    assert_eq!(notes(&sim, "retransmissions unanswered"), []);
    let _ = sim.run();
    assert!(sim.now() < Duration::from_secs(31), "no timer left behind");
    clean(&sim, 1);
}

#[test]
fn close_to_a_vanished_peer_tcp_gives_up_first_with_a_long_close_timeout() {
    let core = Config::default().close_timeout(Duration::from_secs(2000));
    let (mut sim, client, _) = setup(1, core, Some(Peer::sink()));
    let (id, conn) = open_now(&mut sim, client);
    sim.silence(conn).unwrap();
    send(&mut sim, client, id, b"bye");
    sim.call(client, Call::TcpClose { id }).unwrap();
    let got = error_of(&mut sim, client, id);
    assert_eq!(got, Some((ErrorCode::NetworkTimeout, 2 * MS + GIVE_UP)));
    let events = sim.run();
    assert!(
        events
            .iter()
            .any(|(_, e)| *e == Event::Close { id: id.into() }),
        "{events:?}"
    );
    clean(&sim, 1);
}

#[test]
fn an_unacknowledged_fin_alone_times_out_too() {
    let core = Config::default().close_timeout(Duration::from_secs(2000));
    let (mut sim, client, _) = setup(2, core, Some(Peer::sink()));
    let (id, conn) = open_now(&mut sim, client);
    sim.run_for(Duration::from_millis(98)); // at 100 ms
    sim.silence(conn).unwrap();
    sim.call(client, Call::TcpClose { id }).unwrap();
    let got = error_of(&mut sim, client, id);
    assert_eq!(got, Some((ErrorCode::NetworkTimeout, 100 * MS + GIVE_UP)));
    clean(&sim, 2);
}

#[test]
fn a_scripted_client_sending_to_a_crashed_server_times_out() {
    let (mut sim, _, server) = setup(4, Config::default(), None);
    let at = sim.now();
    let conn = sim
        .peer_connect(addr("192.0.2.1:0"), addr("127.0.0.2:7"), Peer::sink())
        .unwrap();
    sim.run_for(Duration::from_millis(10));
    assert_eq!(sim.peer_state(conn), Some(PeerState::Open));
    sim.crash(server).unwrap();
    sim.peer_send(conn, "anyone?").unwrap();
    let sent = sim.now();
    sim.run_for(GIVE_UP - MS);
    assert_eq!(sim.peer_state(conn), Some(PeerState::Open));
    sim.run_for(MS);
    assert_eq!(
        sim.peer_state(conn),
        Some(PeerState::Failed(ErrorKind::TimedOut))
    );
    assert_eq!(notes(&sim, "retransmissions unanswered"), [sent + GIVE_UP]);
    let _ = at;
}

#[test]
fn a_connect_nobody_answers_fails_at_127_s_when_the_core_waits_longer() {
    let core = Config::default().connect_timeout(Duration::from_secs(300));
    let (mut sim, client, _) = setup(1, core, Some(Peer::sink()));
    sim.black_hole(ip("127.0.0.2"));
    let id = open(&mut sim, client, "127.0.0.2");
    let got = error_of(&mut sim, client, id);
    assert_eq!(
        got,
        Some((ErrorCode::NetworkTimeout, Duration::from_secs(127)))
    );
    let inputs: Vec<_> = sim
        .transcript()
        .iter()
        .filter_map(|r| match &r.what {
            Happening::Input {
                input: sockstate::Input::ConnectFailed { error, .. },
                ..
            } => Some((r.at, *error)),
            _ => None,
        })
        .collect();
    assert_eq!(inputs, [(Duration::from_secs(127), ErrorKind::TimedOut)]);
    clean(&sim, 1);
}

#[test]
fn the_core_connect_timeout_fires_first_by_default_and_leaves_no_timer() {
    let (mut sim, client, _) = setup(1, Config::default(), None);
    let id = open(&mut sim, client, "127.0.0.9"); // no host has it
    let got = error_of(&mut sim, client, id);
    assert_eq!(
        got,
        Some((ErrorCode::NetworkTimeout, Duration::from_secs(20)))
    );
    let _ = sim.run();
    assert_eq!(sim.now(), Duration::from_secs(20), "the SYN timer went");
    clean(&sim, 1);
}

#[test]
fn a_scripted_client_s_connect_into_a_black_hole_fails_at_127_s() {
    let (mut sim, _, _) = setup(1, Config::default(), None);
    sim.black_hole(ip("127.0.0.2"));
    let conn = sim
        .peer_connect(addr("192.0.2.1:0"), addr("127.0.0.2:7"), Peer::sink())
        .unwrap();
    let start = sim.now();
    sim.run_for(Duration::from_secs(127) - MS);
    assert_eq!(sim.peer_state(conn), Some(PeerState::Connecting));
    sim.run_for(MS);
    assert_eq!(
        sim.peer_state(conn),
        Some(PeerState::Failed(ErrorKind::TimedOut))
    );
    let _ = sim.run();
    assert_eq!(sim.now(), start + Duration::from_secs(127));
}

/// A FIN reaching an end whose socket is closed is acknowledged by its kernel (Linux's
/// FIN_WAIT2 / TIME_WAIT), so it is no retransmission to time out, nor a close that waits.
#[test]
fn a_fin_to_an_end_already_closed_is_acknowledged() {
    let (mut sim, a, b) = setup(6, Config::default(), None);
    let options = TcpOptions::default()
        .binary_type(BinaryType::ArrayBuffer)
        .allow_half_open(true);
    let call = Call::TcpOpen {
        host: "127.0.0.2".into(),
        port: 7,
        options,
    };
    let Ok(Returned::Opened(id)) = sim.call(a, call) else {
        panic!("open")
    };
    // b's app closes what it accepts at once; its core releases the socket after its
    // linger (2 s) without a's FIN, which a's app sends only 10 s later.
    let mut half_closed = false;
    while let Some((host, event)) = sim.next_event_within(Duration::from_secs(10)) {
        match event {
            Event::Connect { socket, .. } if host == b => {
                sim.call(b, Call::TcpClose { id: socket }).unwrap();
            }
            Event::HalfClose { .. } if host == a => half_closed = true,
            _ => {}
        }
    }
    assert!(half_closed);
    let closing = sim.now();
    sim.call(a, Call::TcpClose { id }).unwrap();
    let events = sim.run();
    let ours: Vec<&Event> = events
        .iter()
        .filter(|(h, _)| *h == a)
        .map(|(_, e)| e)
        .collect();
    assert_eq!(ours, [&Event::Close { id: id.into() }], "a clean close");
    assert!(sim.now() <= closing + 10 * MS, "{:?}", sim.now());
    clean(&sim, 6);
}
