//! Ephemeral ports in the simulated network (issue 15 §1): a host never hands out a port one
//! of its live sockets holds (same protocol, overlapping address), also after the range wraps
//! around, and a range used up is a clear error (as Linux: `EADDRNOTAVAIL` for a connect,
//! `EADDRINUSE` for a bind or listen), never a hang or a panic.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use sockstate::sim::{Call, HostId, Peer, Returned, Sim, SimConfig};
use sockstate::{ErrorCode, Event, ServerId, ServerOptions, SocketId, TcpId, UdpId, UdpOptions};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn sim_with(ports: RangeInclusive<u16>) -> (Sim, HostId) {
    let mut sim = Sim::with_config(3, SimConfig::default().ephemeral_ports(ports));
    let a = sim.add_host("a", &[ip("127.0.0.1")]).unwrap();
    (sim, a)
}

/// Opens a UDP socket on an ephemeral port: its port once open, or the error it ended with.
fn udp(sim: &mut Sim, host: HostId) -> Result<(UdpId, u16), (ErrorCode, String)> {
    let options = UdpOptions::default().local_address(Some(ip("127.0.0.1")));
    let Ok(Returned::Bound(id)) = sim.call(host, Call::UdpOpen { options }) else {
        panic!("udp open")
    };
    opened(sim, id.into())?;
    let local = sim.core(host).unwrap().udp(id).unwrap().local_address();
    Ok((id, local.unwrap().port()))
}

/// Runs until the socket is open (`Ok`) or ended with an error.
fn opened(sim: &mut Sim, id: SocketId) -> Result<(), (ErrorCode, String)> {
    let mut error = None;
    for _ in 0..100 {
        let Some((_, e)) = sim.next_event_within(Duration::from_secs(1)) else {
            break;
        };
        match e {
            Event::Open { id: o } if o == id => return Ok(()),
            Event::Error { id: o, error: e } if o == id => error = Some(e),
            Event::Close { id: o } if o == id => {
                let e = error.expect("an error before the close");
                return Err((e.code, e.message.to_string()));
            }
            _ => {}
        }
    }
    panic!("socket {id:?} neither opened nor failed")
}

fn close_udp(sim: &mut Sim, host: HostId, id: UdpId) {
    sim.call(host, Call::UdpClose { id }).unwrap();
    sim.run_for(Duration::from_millis(10));
}

#[test]
fn udp_ephemeral_ports_wrap_around_the_live_ones_and_run_out_with_an_error() {
    let range = 40_000..=40_009;
    let (mut sim, a) = sim_with(range.clone());
    // A socket bound explicitly inside the range: never handed out while it lives.
    let explicit = UdpOptions::default()
        .local_address(Some(ip("0.0.0.0")))
        .local_port(Some(40_003));
    let Ok(Returned::Bound(fixed)) = sim.call(a, Call::UdpOpen { options: explicit }) else {
        panic!()
    };
    opened(&mut sim, fixed.into()).unwrap();
    let mut live: Vec<(UdpId, u16)> = (0..9).map(|_| udp(&mut sim, a).unwrap()).collect();
    let ports: BTreeSet<u16> = live.iter().map(|(_, p)| *p).collect();
    assert_eq!(ports.len(), 9, "distinct: {live:?}");
    assert!(ports.iter().all(|p| range.contains(p) && *p != 40_003));
    // Used up: a clear error and a close, at once.
    let (code, message) = udp(&mut sim, a).unwrap_err();
    assert_eq!(code, ErrorCode::Network);
    assert!(message.contains("address in use"), "{message}");
    // Free three; the next three wrap around to exactly those.
    let freed: BTreeSet<u16> = [1, 4, 7].iter().map(|&i| live[i].1).collect();
    for i in [7, 4, 1] {
        let (id, _) = live.remove(i);
        close_udp(&mut sim, a, id);
    }
    let again: BTreeSet<u16> = (0..3).map(|_| udp(&mut sim, a).unwrap().1).collect();
    assert_eq!(again, freed);
    assert!(udp(&mut sim, a).is_err());
    // Once the explicit socket goes, its port is handed out too.
    close_udp(&mut sim, a, fixed);
    assert_eq!(udp(&mut sim, a).unwrap().1, 40_003);
    assert_eq!(sim.violations(), []);
}

#[test]
fn the_default_range_is_linuxs_and_many_sockets_get_distinct_ports() {
    let mut sim = Sim::new(1);
    let a = sim.add_host("a", &[ip("127.0.0.1")]).unwrap();
    let mut ports = BTreeSet::new();
    let mut live = Vec::new();
    for i in 0..300 {
        let (id, port) = udp(&mut sim, a).unwrap();
        assert!((32_768..=60_999).contains(&port), "{port}");
        assert!(ports.insert(port), "port {port} handed out twice");
        live.push(id);
        if i % 3 == 0 {
            let id = live.remove(0);
            close_udp(&mut sim, a, id);
        }
    }
    assert_eq!(sim.violations(), []);
}

fn listen(sim: &mut Sim, host: HostId, addr: &str, port: u16) -> Result<u16, ErrorCode> {
    let options = ServerOptions::default()
        .local_address(Some(ip(addr)))
        .local_port(Some(port));
    let Ok(Returned::Listening(id)) = sim.call(host, Call::ServerListen { options }) else {
        panic!("listen")
    };
    let id: ServerId = id;
    opened(sim, id.into()).map_err(|(code, _)| code)?;
    let local = sim.core(host).unwrap().server(id).unwrap().local_address();
    Ok(local.unwrap().port())
}

#[test]
fn tcp_listens_and_connects_on_port_0_skip_ports_a_live_server_holds() {
    let (mut sim, a) = sim_with(40_000..=40_003);
    // Servers hold 40000 on every address and 40001 on 127.0.0.1.
    assert_eq!(listen(&mut sim, a, "0.0.0.0", 40_000), Ok(40_000));
    assert_eq!(listen(&mut sim, a, "127.0.0.1", 40_001), Ok(40_001));
    // Neither port again, on an overlapping address.
    assert!(listen(&mut sim, a, "127.0.0.1", 40_000).is_err());
    assert!(listen(&mut sim, a, "0.0.0.0", 40_001).is_err());
    // Port 0 gets what is left, then nothing.
    assert_eq!(listen(&mut sim, a, "127.0.0.1", 0), Ok(40_002));
    // A connect from this host takes the last free port.
    sim.add_host("b", &[ip("127.0.0.2")]).unwrap();
    sim.listen("127.0.0.2:7".parse().unwrap(), Peer::stall())
        .unwrap();
    let (_, port) = connect(&mut sim, a).unwrap();
    assert_eq!(port, 40_003);
    assert_eq!(listen(&mut sim, a, "127.0.0.1", 0), Err(ErrorCode::Network));
    assert_eq!(sim.violations(), []);
}

/// Connects from `host` to 127.0.0.2:7: the socket and its local port, or the error.
fn connect(sim: &mut Sim, host: HostId) -> Result<(TcpId, u16), (ErrorCode, String)> {
    let open = Call::TcpOpen {
        host: "127.0.0.2".into(),
        port: 7,
        options: Default::default(),
    };
    let Ok(Returned::Opened(id)) = sim.call(host, open) else {
        panic!("open")
    };
    opened(sim, id.into())?;
    let local = sim.core(host).unwrap().tcp(id).unwrap().local_address();
    Ok((id, local.unwrap().port()))
}

#[test]
fn tcp_connects_wrap_around_live_connections_and_run_out_with_address_not_available() {
    let (mut sim, a) = sim_with(50_000..=50_007);
    sim.add_host("b", &[ip("127.0.0.2")]).unwrap();
    sim.listen("127.0.0.2:7".parse().unwrap(), Peer::stall())
        .unwrap();
    let mut live: Vec<(TcpId, u16)> = (0..8).map(|_| connect(&mut sim, a).unwrap()).collect();
    let ports: BTreeSet<u16> = live.iter().map(|(_, p)| *p).collect();
    assert_eq!(ports, (50_000..=50_007).collect());
    let (code, message) = connect(&mut sim, a).unwrap_err();
    assert_eq!(code, ErrorCode::Network);
    assert!(message.contains("address not available"), "{message}");
    // Close two: the next connects get exactly those, never a live one.
    let freed: BTreeSet<u16> = [2, 5].iter().map(|&i| live[i].1).collect();
    for i in [5, 2] {
        let (id, _) = live.remove(i);
        sim.call(a, Call::TcpClose { id }).unwrap();
    }
    // The closes complete (the ports are free once the sockets are released).
    sim.run_for(Duration::from_secs(120));
    let again: BTreeSet<u16> = (0..2).map(|_| connect(&mut sim, a).unwrap().1).collect();
    assert_eq!(again, freed);
    assert!(connect(&mut sim, a).is_err());
    assert_eq!(sim.violations(), []);
}
