//! UDPSocket through the driver, with Python's `socket` as the peer on loopback, and
//! multicast pinned to 127.0.0.1 ([BEHAVIOUR §3](sockstate::behaviour#3-udpsocket)).

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use common::*;
use sockstate_driver::sockstate::{
    DnsQueryType, MulticastInterface, MAX_DATAGRAM_V4, MAX_DATAGRAM_V6,
};
use sockstate_driver::{Bytes, Config, Driver, Event, UdpId, UdpOptions};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Opens a UDP socket and waits for `Open`; returns its id and bound address.
fn bound(driver: &mut Driver, options: UdpOptions) -> (UdpId, SocketAddr) {
    let id = driver.udp_open(options).unwrap();
    let mut log = Vec::new();
    run(driver, 10, |_, event| {
        log.push(event.clone());
        !matches!(event, Event::Open { .. } | Event::Close { .. })
    });
    assert_eq!(log, [Event::Open { id: id.into() }]);
    (id, driver.udp(id).unwrap().local_address().unwrap())
}

/// Closes each socket, checks that each ends with its `Close` alone, then that the driver is
/// healthy.
fn close_all(driver: &mut Driver, ids: &[UdpId]) {
    for &id in ids {
        driver.close(id).unwrap();
        closes_alone(driver, id);
    }
    assert_healthy(driver);
}

/// The next `n` messages, within `secs` seconds (other events fail the test).
fn messages(driver: &mut Driver, n: usize, secs: u64) -> Vec<(Bytes, SocketAddr)> {
    let mut got = Vec::new();
    if n == 0 {
        return got;
    }
    run(driver, secs, |_, event| match event {
        Event::Message { data, remote, .. } => {
            got.push((data, remote));
            got.len() < n
        }
        other => panic!("unexpected {other:?}"),
    });
    got
}

/// A unique administratively scoped group per test process, so parallel runs do not mix.
fn group(n: u8) -> IpAddr {
    let pid = std::process::id();
    IpAddr::V4(Ipv4Addr::new(239, 255, (pid % 251) as u8, n))
}

/// Echoes each datagram back to its sender until it receives `bye`, then prints how many it
/// echoed and their sizes.
const PY_UDP_ECHO: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('127.0.0.1', 0)); s.settimeout(20)
print(s.getsockname()[1], flush=True)
sizes = []
while True:
    d, addr = s.recvfrom(65536)
    if d == b'bye':
        break
    sizes.append(len(d))
    s.sendto(d, addr)
print(' '.join(map(str, sizes)), flush=True)
"#;

#[test]
fn datagrams_go_to_python_and_come_back_whole() {
    let _w = watchdog("udp echo", 30);
    let peer = Peer::python(PY_UDP_ECHO, &[]);
    let to = SocketAddr::new(LOOPBACK, peer.port());
    let mut driver = driver(Config::default());
    let options = UdpOptions::default()
        .local_address(Some(LOOPBACK))
        .remote_address(Some(LOOPBACK))
        .remote_port(Some(to.port()));
    let (id, local) = bound(&mut driver, options);
    assert_ne!(local.port(), 0);
    let big = Stream::new(17).take(60_000);
    // One at a time, so that loss (which UDP allows) cannot reorder what we assert.
    for payload in [b"hello".to_vec(), Vec::new(), big.clone()] {
        assert!(driver.send_to(id, payload.clone(), None).unwrap());
        let got = messages(&mut driver, 1, 10);
        assert_eq!(got.len(), 1);
        assert!(got[0].0[..] == payload[..], "a datagram came back changed");
        assert_eq!(got[0].1, to, "remoteAddress and remotePort of the message");
    }
    driver.send_to(id, "bye", Some(to)).unwrap();
    // The send happens in the loop, like all I/O.
    assert_eq!(driver.next_event(Some(Duration::from_millis(100))), None);
    assert_eq!(peer.line(10), "5 0 60000");
    driver.close(id).unwrap();
    closes_alone(&mut driver, id);
    assert_healthy(&driver);
}

#[test]
fn datagrams_from_python_arrive_as_messages_with_their_source() {
    let _w = watchdog("udp from python", 30);
    let mut driver = driver(Config::default());
    let options = UdpOptions::default().local_address(Some(LOOPBACK));
    let (id, local) = bound(&mut driver, options);
    assert_eq!(local.ip(), LOOPBACK);
    let peer = Peer::python(
        r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('127.0.0.1', 0))
print(s.getsockname()[1], flush=True)
for i in range(5):
    s.sendto(b'm%d' % i * (i + 1), ('127.0.0.1', int(sys.argv[1])))
"#,
        &[&local.port().to_string()],
    );
    let from = SocketAddr::new(LOOPBACK, peer.port());
    let mut got = messages(&mut driver, 5, 10);
    got.sort();
    let expected: Vec<(Bytes, SocketAddr)> = (0..5)
        .map(|i| (Bytes::from(format!("m{i}").repeat(i + 1)), from))
        .collect();
    assert_eq!(got, expected);
    driver.close(id).unwrap();
    closes_alone(&mut driver, id);
    assert_healthy(&driver);
}

#[test]
fn a_suspended_udp_socket_reads_nothing_until_resumed() {
    let _w = watchdog("udp suspend", 30);
    let mut driver = driver(Config::default());
    let options = UdpOptions::default().local_address(Some(LOOPBACK));
    let (id, local) = bound(&mut driver, options);
    driver.suspend(id).unwrap();
    let peer = Peer::python(
        r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(3):
    s.sendto(b'held %d' % i, ('127.0.0.1', int(sys.argv[1])))
print('sent', flush=True)
"#,
        &[&local.port().to_string()],
    );
    assert_eq!(peer.line(10), "sent");
    assert_eq!(driver.next_event(Some(Duration::from_millis(300))), None);
    driver.resume(id).unwrap();
    let got = messages(&mut driver, 3, 10);
    assert_eq!(got.len(), 3, "the kernel kept them while we did not read");
    assert_healthy(&driver);
}

/// Datagrams queued in the kernel all at once (they arrive while the socket is suspended) are
/// read several per call: each arrives whole, in order, with its own source, the empty ones
/// and the largest there is included, whatever the number read per turn, on IPv4 and IPv6.
#[test]
fn a_burst_queued_in_the_kernel_arrives_whole_in_order_with_each_source() {
    let _w = watchdog("udp burst", 30);
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    for (ip, per_turn) in [(LOOPBACK, 32), (LOOPBACK, 3), (v6, 5)] {
        let mut driver = driver(Config::default().datagrams_per_turn(per_turn));
        let options = UdpOptions::default().local_address(Some(ip));
        let (id, local) = bound(&mut driver, options);
        driver.suspend(id).unwrap();
        let senders = [0, 1].map(|_| std::net::UdpSocket::bind((ip, 0)).unwrap());
        let largest = if ip.is_ipv4() {
            MAX_DATAGRAM_V4
        } else {
            MAX_DATAGRAM_V6
        };
        let sizes = [0, 1, 1200, largest, 7, 0, 3000].into_iter();
        let sizes: Vec<usize> = sizes.chain((0..13).map(|i| 50 + i * 111)).collect();
        let mut expected = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            let payload = Bytes::from(Stream::new(i as u64).take(size));
            let from = &senders[i % 2];
            from.send_to(&payload, local).unwrap();
            expected.push((payload, from.local_addr().unwrap()));
        }
        driver.resume(id).unwrap();
        let got = messages(&mut driver, expected.len(), 10);
        let lengths =
            |v: &[(Bytes, SocketAddr)]| v.iter().map(|(d, _)| d.len()).collect::<Vec<_>>();
        assert_eq!(lengths(&got), sizes, "{ip}, {per_turn} per turn");
        assert!(got == expected, "{ip}: a datagram or its source changed");
        driver.close(id).unwrap();
        closes_alone(&mut driver, id);
        assert_healthy(&driver);
    }
}

#[test]
fn multicast_on_127_0_0_1_reaches_our_member_and_a_python_member() {
    let _w = watchdog("multicast", 30);
    let config = Config::default().multicast_interface_v4(Some(Ipv4Addr::LOCALHOST));
    let mut driver = driver(config);
    let group = group(1);
    // Both members bind the wildcard address (a socket bound to 127.0.0.1 receives no
    // multicast) and join on 127.0.0.1. They share one port, so it is an explicit one on our
    // side: `addressReuse` applies to explicit ports only (BEHAVIOUR §3).
    let peer = Peer::python(
        r#"
import socket, sys
g = sys.argv[1]
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
r.bind(('0.0.0.0', 0))
port = r.getsockname()[1]
r.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             socket.inet_aton(g) + socket.inet_aton('127.0.0.1'))
r.settimeout(10)
print(port, flush=True)
d, addr = r.recvfrom(65536)
print(d.decode(), flush=True)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton('127.0.0.1'))
s.sendto(b'from python', (g, port))
"#,
        &[&group.to_string()],
    );
    let member_options = UdpOptions::default().local_port(Some(peer.port()));
    let (member, member_addr) = bound(&mut driver, member_options);
    driver.join_multicast_group(member, group).unwrap();
    let sender_options = UdpOptions::default().loopback(true);
    let (sender, _) = bound(&mut driver, sender_options);
    let to = SocketAddr::new(group, member_addr.port());
    driver.send_to(sender, "to the group", Some(to)).unwrap();
    let got = messages(&mut driver, 1, 10);
    assert_eq!(&got[0].0[..], b"to the group");
    assert_eq!(
        peer.line(10),
        "to the group",
        "the Python member got it too"
    );
    let got = messages(&mut driver, 1, 10);
    assert_eq!(&got[0].0[..], b"from python");
    driver.leave_multicast_group(member, group).unwrap();
    close_all(&mut driver, &[member, sender]);
}

#[test]
fn close_sends_the_queued_datagrams_first() {
    let _w = watchdog("udp close", 30);
    let peer = Peer::python(PY_UDP_ECHO, &[]);
    let to = SocketAddr::new(LOOPBACK, peer.port());
    let mut driver = driver(Config::default());
    let options = UdpOptions::default().local_address(Some(LOOPBACK));
    let (id, _) = bound(&mut driver, options);
    for size in [1usize, 2, 3] {
        driver.send_to(id, vec![b'q'; size], Some(to)).unwrap();
    }
    driver.send_to(id, "bye", Some(to)).unwrap();
    driver.close(id).unwrap();
    closes_alone(&mut driver, id);
    assert_eq!(
        peer.line(10),
        "1 2 3",
        "no message after close, but every datagram sent"
    );
    assert_healthy(&driver);
}

#[test]
fn a_port_in_use_without_address_reuse_is_an_error_then_close() {
    let _w = watchdog("udp in use", 30);
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut driver = driver(Config::default());
    let options = UdpOptions::default()
        .local_address(Some(LOOPBACK))
        .local_port(Some(taken.local_addr().unwrap().port()))
        .address_reuse(false);
    let id = driver.udp_open(options).unwrap();
    let log = until_close(&mut driver, id, 10);
    assert!(
        matches!(&log[..], [Event::Error { error, .. }, Event::Close { .. }] if error.name() == "NetworkError"),
        "{log:?}"
    );
    assert_healthy(&driver);
}

/// A burst sent in one turn goes out in batches (UDP GSO for runs of one size, `sendmmsg`
/// otherwise), and the driver reads it back through GRO: one `Message` per datagram, sizes
/// exact (the short last one of a run too), in order, with its sender; `bufferedAmount`
/// stays exact, `Drain` fires once when it reaches 0, and `close()` with datagrams still
/// queued sends them all first.
#[test]
fn a_batched_burst_arrives_whole_and_buffered_amount_and_drain_stay_exact() {
    let _w = watchdog("udp batches", 30);
    let core = sockstate_driver::sockstate::Config::default().high_water_mark(10_000);
    let mut driver = driver(Config::default().core(core).datagrams_per_turn(1000));
    let on_loopback = UdpOptions::default().local_address(Some(LOOPBACK));
    let (rx, rx_addr) = bound(&mut driver, on_loopback.clone());
    let (tx, tx_addr) = bound(&mut driver, on_loopback);
    let mut sizes: Vec<usize> = vec![1200; 20];
    sizes.push(700); // the short last of a run
    sizes.extend([0, 64, 64, 64, 5, 1200, 1200, 9000, 64]);
    sizes.extend(std::iter::repeat_n(64, 130)); // more than one GSO send holds
    let mut expected = Vec::new();
    let mut buffered = 0;
    let mut below = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let payload = Bytes::from(Stream::new(i as u64).take(size));
        below.push(driver.send_to(tx, payload.clone(), Some(rx_addr)).unwrap());
        buffered += size;
        assert_eq!(driver.udp(tx).unwrap().buffered_amount(), buffered);
        expected.push((payload, tx_addr));
    }
    assert!(below.contains(&false), "the high-water mark was crossed");
    let mut got = Vec::new();
    let mut drains = 0;
    run(&mut driver, 10, |driver, event| {
        match event {
            Event::Message { id, data, remote } if id == rx => got.push((data, remote)),
            Event::Drain { id } if id == tx.into() => {
                assert_eq!(driver.udp(tx).unwrap().buffered_amount(), 0);
                drains += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
        got.len() < expected.len() || drains == 0
    });
    assert_eq!(drains, 1);
    let lengths = |v: &[(Bytes, SocketAddr)]| v.iter().map(|(d, _)| d.len()).collect::<Vec<_>>();
    assert_eq!(lengths(&got), sizes);
    assert!(got == expected, "a datagram or its sender changed");
    // close() with a burst queued: every datagram still goes, then Close.
    for i in 0..100u8 {
        driver.send_to(tx, vec![i; 100], Some(rx_addr)).unwrap();
    }
    driver.close(tx).unwrap();
    let mut closed = false;
    let mut after = Vec::new();
    run(&mut driver, 10, |_, event| {
        match event {
            Event::Message { data, .. } => after.push(data[0]),
            Event::Close { id } if id == tx.into() => closed = true,
            other => panic!("unexpected {other:?}"),
        }
        !closed || after.len() < 100
    });
    assert_eq!(after, (0..100).collect::<Vec<u8>>(), "all sent, in order");
    driver.close(rx).unwrap();
    closes_alone(&mut driver, rx);
    assert_healthy(&driver);
}

/// Datagrams to a multicast group sent in one turn go out batched (never as one GSO send)
/// and reach a member on 127.0.0.1 whole and in order.
#[test]
fn a_batched_burst_to_a_multicast_group_reaches_the_member() {
    let _w = watchdog("multicast batches", 30);
    let mut driver = driver(
        Config::default()
            .multicast_interface_v4(Some(Ipv4Addr::LOCALHOST))
            .datagrams_per_turn(1000),
    );
    let group = group(2);
    let (member, member_addr) = bound(&mut driver, UdpOptions::default());
    driver.join_multicast_group(member, group).unwrap();
    let sender_options = UdpOptions::default().loopback(true);
    let (sender, _) = bound(&mut driver, sender_options);
    let to = SocketAddr::new(group, member_addr.port());
    let sent: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 200]).collect();
    for d in &sent {
        driver.send_to(sender, d.clone(), Some(to)).unwrap();
    }
    let got = messages(&mut driver, sent.len(), 10);
    let got: Vec<Vec<u8>> = got.into_iter().map(|(d, _)| d.to_vec()).collect();
    assert_eq!(got, sent);
    close_all(&mut driver, &[member, sender]);
}

#[test]
fn a_per_socket_multicast_interface_carries_sends_and_joins_without_driver_config() {
    let _w = watchdog("multicast per socket", 30);
    let mut driver = driver(Config::default());
    let group = group(2);
    let lo = Some(MulticastInterface::V4(Ipv4Addr::LOCALHOST));
    let on_lo = || UdpOptions::default().multicast_interface(lo);
    let (member, member_addr) = bound(&mut driver, on_lo());
    driver.join_multicast_group(member, group).unwrap();
    let sender_options = on_lo().loopback(true);
    let (sender, _) = bound(&mut driver, sender_options);
    let to = SocketAddr::new(group, member_addr.port());
    driver.send_to(sender, "via lo", Some(to)).unwrap();
    let got = messages(&mut driver, 1, 10);
    assert_eq!(&got[0].0[..], b"via lo");
    driver.leave_multicast_group(member, group).unwrap();
    close_all(&mut driver, &[member, sender]);
}

#[test]
fn a_source_specific_membership_on_127_0_0_1_takes_that_source_only() {
    let _w = watchdog("source-specific multicast", 30);
    let mut driver = driver(Config::default());
    // An SSM group (232/8), unique per test process as `group` makes them.
    let pid = std::process::id();
    let group = IpAddr::V4(Ipv4Addr::new(232, 255, (pid % 251) as u8, 1));
    let on_lo = |local: Ipv4Addr| {
        UdpOptions::default()
            .local_address(Some(IpAddr::V4(local)))
            .loopback(true)
            .multicast_interface(Some(MulticastInterface::V4(Ipv4Addr::LOCALHOST)))
    };
    let (member, member_addr) = bound(&mut driver, on_lo(Ipv4Addr::UNSPECIFIED));
    let (wanted, wanted_addr) = bound(&mut driver, on_lo(Ipv4Addr::LOCALHOST));
    let (other, _) = bound(&mut driver, on_lo(Ipv4Addr::new(127, 0, 0, 2)));
    driver
        .add_source_specific_membership(member, LOOPBACK, group)
        .unwrap();
    let to = SocketAddr::new(group, member_addr.port());
    // Sent first, in the same turn: without the source filter it would arrive first.
    driver.send_to(other, "from 127.0.0.2", Some(to)).unwrap();
    driver.send_to(wanted, "from 127.0.0.1", Some(to)).unwrap();
    let got = messages(&mut driver, 1, 10);
    assert_eq!(&got[0].0[..], b"from 127.0.0.1");
    assert_eq!(got[0].1, wanted_addr);
    driver
        .drop_source_specific_membership(member, LOOPBACK, group)
        .unwrap();
    close_all(&mut driver, &[member, wanted, other]);
}

#[test]
fn a_host_name_as_the_default_destination_is_resolved_before_the_bind() {
    let _w = watchdog("udp remote host", 30);
    let echo = std::net::UdpSocket::bind((LOOPBACK, 0)).unwrap();
    echo.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let to = echo.local_addr().unwrap();
    let echoing = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let (n, from) = echo.recv_from(&mut buf).unwrap();
        echo.send_to(&buf[..n], from).unwrap();
        from
    });
    let mut driver = driver(Config::default());
    let options = UdpOptions::default()
        .remote_host(Some("localhost".into()))
        .remote_port(Some(to.port()))
        .dns_query_type(Some(DnsQueryType::Ipv4));
    let (id, local) = bound(&mut driver, options);
    assert!(local.is_ipv4(), "the family of the answer: {local}");
    assert_eq!(driver.udp(id).unwrap().remote_address(), Some(to));
    assert!(driver.send_to(id, "ping", None).unwrap());
    let got = messages(&mut driver, 1, 10);
    assert_eq!(got, [(Bytes::from_static(b"ping"), to)]);
    assert_eq!(echoing.join().unwrap().port(), local.port());
    close_all(&mut driver, &[id]);
}
