//! Ephemeral UDP ports are never shared between live sockets ([BEHAVIOUR §3](sockstate::behaviour#3-udpsocket): `addressReuse`
//! applies to an explicit port only). With `SO_REUSEADDR` on every port-0 bind, Linux handed
//! out ports that other reuse-enabled sockets held: of 500 sockets, 3 to 6 ports were each
//! reported by two, and datagrams sent there reached only one of them.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket as StdUdp};
use std::time::{Duration, Instant};

use common::*;
use sockstate_driver::{Config, Event, UdpId, UdpOptions};

const SOCKETS: usize = 1000;

#[test]
fn a_thousand_default_udp_sockets_get_distinct_ports_and_each_receives_its_own() {
    let _w = watchdog("a thousand UDP ports", 60);
    let mut driver = driver(Config::default());
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let ids: Vec<UdpId> = (0..SOCKETS)
        .map(|_| {
            let options = UdpOptions::default().local_address(Some(local));
            assert!(options.address_reuse, "the default");
            driver.udp_open(options).unwrap()
        })
        .collect();
    let mut open = 0;
    run(&mut driver, 30, |_, event| {
        match event {
            Event::Open { .. } => open += 1,
            other => panic!("{other:?}"),
        }
        open < SOCKETS
    });
    let port_of: HashMap<UdpId, u16> = ids
        .iter()
        .map(|&id| (id, driver.udp(id).unwrap().local_address().unwrap().port()))
        .collect();
    let distinct: HashSet<u16> = port_of.values().copied().collect();
    assert_eq!(
        distinct.len(),
        SOCKETS,
        "{} ports shared between live sockets",
        SOCKETS - distinct.len()
    );
    // Each socket gets exactly the datagram sent to its port.
    let sender = StdUdp::bind((local, 0)).unwrap();
    for port in port_of.values() {
        sender
            .send_to(&port.to_be_bytes(), SocketAddr::new(local, *port))
            .unwrap();
    }
    let mut got: HashMap<UdpId, Vec<Vec<u8>>> = HashMap::new();
    let end = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    while n < SOCKETS && Instant::now() < end {
        match driver.next_event(Some(Duration::from_millis(200))) {
            Some(Event::Message { id, data, .. }) => {
                got.entry(id).or_default().push(data.to_vec());
                n += 1;
            }
            Some(other) => panic!("{other:?}"),
            None => {}
        }
    }
    for (id, port) in &port_of {
        assert_eq!(
            got.get(id).map(Vec::as_slice),
            Some(&[port.to_be_bytes().to_vec()][..]),
            "socket {id:?} on port {port}"
        );
    }
    assert_healthy(&driver);
}
