//! Batched datagram I/O on loopback: the sends of a turn, GSO and its fallback, GRO reads.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sockstate::{Core, UdpId, UdpOptions};

use super::sources::Io;
use super::*;

fn limits() -> Limits {
    Limits {
        read_chunk: 4096,
        reads_per_turn: 1,
        accepts_per_turn: 1,
        datagrams_per_turn: 10_000,
        sources_per_turn: 64,
        spin_polls: 0,
        multicast_interface_v4: None,
        multicast_interface_v6: 0,
    }
}

/// A UDP socket of the reactor on 127.0.0.1, with its key and address.
fn bound(core: &mut Core, poller: &Poller, reactor: &mut Reactor) -> (UdpId, usize, SocketAddr) {
    let id = core
        .udp_open(Instant::now(), UdpOptions::default())
        .unwrap();
    let mut reports = Vec::new();
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    reactor.bind(
        poller,
        id,
        local,
        false,
        false,
        Default::default(),
        &mut reports,
    );
    let Some(Report::Input(Input::Bound { local, .. })) = reports.pop() else {
        panic!("not bound");
    };
    let key = reactor.main(id.into()).unwrap();
    (id, key, local)
}

fn udp(reactor: &mut Reactor, key: usize) -> &mut super::batch::Udp {
    match &mut reactor.sources.get_mut(key).unwrap().io {
        Io::Udp(udp) => udp,
        Io::Socket(_) => panic!("not a UDP socket"),
    }
}

/// Sends every queued datagram, checking that each was reported sent; returns the number
/// of `Sent` reports (one per syscall).
fn flush_all(poller: &Poller, reactor: &mut Reactor, id: UdpId, n: usize) -> usize {
    let mut reports = Vec::new();
    reactor.flush_sends(poller, &mut reports);
    let counts: Vec<usize> = (reports.iter())
        .filter_map(|r| match r {
            Report::Input(Input::Sent { id: s, count }) if *s == id => Some(*count),
            _ => None,
        })
        .collect();
    assert_eq!(counts.len(), reports.len(), "{reports:?}");
    assert!(counts.iter().all(|&c| c > 0), "{counts:?}");
    assert_eq!(counts.iter().sum::<usize>(), n, "{counts:?}");
    counts.len()
}

/// Reads `n` datagrams from the reactor's socket `key` (bounded in time), cutting each
/// `Datagrams` report as the core does; also returns the most datagrams one report held.
fn read_n(reactor: &mut Reactor, key: usize, n: usize) -> (Vec<(Bytes, SocketAddr)>, usize) {
    let (mut got, mut most) = (Vec::new(), 0);
    let until = Instant::now() + Duration::from_secs(5);
    while got.len() < n && Instant::now() < until {
        let mut reports = Vec::new();
        reactor.sources.get_mut(key).unwrap().reading = true;
        reactor.read_datagrams(key, &mut reports);
        for r in reports {
            match r {
                Report::Input(Input::Datagram { data, remote, .. }) => {
                    got.push((data, remote));
                    most = most.max(1);
                }
                Report::Input(Input::Datagrams {
                    mut data,
                    segment_size,
                    remote,
                    ..
                }) => {
                    assert!(segment_size > 0 && data.len() > segment_size);
                    most = most.max(data.len().div_ceil(segment_size));
                    while !data.is_empty() {
                        let take = segment_size.min(data.len());
                        got.push((data.split_to(take), remote));
                    }
                }
                _ => {}
            }
        }
    }
    (got, most)
}

#[test]
#[cfg(target_os = "linux")]
fn a_turn_of_mixed_sizes_and_destinations_goes_out_whole_in_order_and_gro_splits_it() {
    let poller = Poller::new().unwrap();
    let mut reactor = Reactor::new(&poller, Mode::of(&poller), limits());
    let mut core = Core::new(sockstate::Config::default());
    let (rx, rx_key, rx_addr) = bound(&mut core, &poller, &mut reactor);
    let (tx, tx_key, tx_addr) = bound(&mut core, &poller, &mut reactor);
    let _ = rx;
    let other = UdpSocket::bind("127.0.0.1:0").unwrap();
    other
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert!(udp(&mut reactor, tx_key).gso && udp(&mut reactor, rx_key).gro);
    // One run of 1 200-byte datagrams with a short last one, datagrams to another socket in
    // the middle, an empty one, a run of 64-byte ones, and 70 of one size (two runs: at most
    // 64 segments per GSO send).
    let mut to_rx: Vec<Vec<u8>> = Vec::new();
    let mut plan: Vec<(Vec<u8>, SocketAddr)> = Vec::new();
    let mut add = |data: Vec<u8>, to: SocketAddr, plan: &mut Vec<_>| {
        if to == rx_addr {
            to_rx.push(data.clone());
        }
        plan.push((data, to));
    };
    for i in 0..10u8 {
        add(vec![i; 1200], rx_addr, &mut plan);
    }
    add(vec![10; 500], rx_addr, &mut plan);
    let other_addr = other.local_addr().unwrap();
    for (i, len) in [7usize, 1200, 3].into_iter().enumerate() {
        add(vec![20 + i as u8; len], other_addr, &mut plan);
    }
    add(Vec::new(), rx_addr, &mut plan);
    for i in 0..5u8 {
        add(vec![30 + i; 64], rx_addr, &mut plan);
    }
    for i in 0..70u8 {
        add(vec![i; 100], rx_addr, &mut plan);
    }
    // Two actions in one turn: they go out together.
    let mut actions: Vec<Vec<(Bytes, SocketAddr)>> = (plan.chunks(40))
        .map(|c| {
            (c.iter())
                .map(|(d, to)| (Bytes::from(d.clone()), *to))
                .collect()
        })
        .collect();
    for datagrams in actions.drain(..) {
        reactor.send_datagrams(tx, datagrams.into());
    }
    let syscalls = flush_all(&poller, &mut reactor, tx, plan.len());
    assert!(syscalls < plan.len() / 4, "batched: {syscalls} syscalls");

    let (got, most) = read_n(&mut reactor, rx_key, to_rx.len());
    let sizes = |v: &[Vec<u8>]| v.iter().map(Vec::len).collect::<Vec<_>>();
    let got_data: Vec<Vec<u8>> = got.iter().map(|(d, _)| d.to_vec()).collect();
    assert_eq!(
        sizes(&got_data),
        sizes(&to_rx),
        "one datagram each, sizes exact"
    );
    assert_eq!(got_data, to_rx, "in order, whole");
    assert!(
        got.iter().all(|(_, from)| *from == tx_addr),
        "the sender of each"
    );
    // GRO handed over runs as one buffer each, with their segment size.
    assert!(most >= 10, "runs are one report ({most})");
    let mut buf = [0u8; 2048];
    for len in [7, 1200, 3] {
        let (n, from) = other.recv_from(&mut buf).unwrap();
        assert_eq!((n, from), (len, tx_addr));
    }
    reactor.close_all(&poller);
}

/// `SO_NO_CHECK` (Linux): the socket sends without UDP checksums, which GSO needs: the kernel
/// refuses every GSO send of it with `EINVAL`, as a device that cannot checksum refuses it
/// with `EIO`.
#[cfg(target_os = "linux")]
fn refuse_gso(reactor: &mut Reactor, key: usize) {
    use std::os::fd::AsRawFd;
    const SO_NO_CHECK: libc::c_int = 11;
    let fd = udp(reactor, key).socket.as_raw_fd();
    let on: libc::c_int = 1;
    // SAFETY: a valid descriptor, and an option value of the size given that outlives the
    // call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_NO_CHECK,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
}

#[test]
#[cfg(target_os = "linux")]
fn a_gso_send_the_kernel_refuses_turns_gso_off_and_loses_nothing() {
    let poller = Poller::new().unwrap();
    let mut reactor = Reactor::new(&poller, Mode::of(&poller), limits());
    let mut core = Core::new(sockstate::Config::default());
    let (tx, tx_key, tx_addr) = bound(&mut core, &poller, &mut reactor);
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let to = rx.local_addr().unwrap();
    refuse_gso(&mut reactor, tx_key);
    assert!(udp(&mut reactor, tx_key).gso, "probed on");
    let sent: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; 300]).collect();
    let datagrams = (sent.iter())
        .map(|d| (Bytes::from(d.clone()), to))
        .collect();
    reactor.send_datagrams(tx, datagrams);
    flush_all(&poller, &mut reactor, tx, sent.len());
    assert!(!udp(&mut reactor, tx_key).gso, "turned off by the refusal");
    let mut buf = [0u8; 2048];
    for d in &sent {
        let (n, from) = rx.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&d[..], tx_addr), "none lost, in order");
    }
    reactor.close_all(&poller);
}

// ---- socket settings (issue 17 §4), read back with getsockopt -----------------------------

#[test]
fn bind_sets_broadcast_ttl_interface_and_buffer_sizes() {
    use sockstate::{MulticastInterface, SocketSettings};
    let poller = Poller::new().unwrap();
    let mut reactor = Reactor::new(&poller, Mode::of(&poller), limits());
    let mut core = Core::new(sockstate::Config::default());
    let settings = SocketSettings {
        send_buffer: Some(40 * 1024),
        receive_buffer: Some(20 * 1024),
        broadcast: true,
        multicast_ttl: Some(7),
        multicast_interface: Some(MulticastInterface::V4(std::net::Ipv4Addr::LOCALHOST)),
        ..SocketSettings::default()
    };
    let id = core
        .udp_open(Instant::now(), UdpOptions::default())
        .unwrap();
    let mut reports = Vec::new();
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    reactor.bind(&poller, id, local, false, false, settings, &mut reports);
    assert!(matches!(reports[..], [Report::Input(Input::Bound { .. })]));
    let key = reactor.main(id.into()).unwrap();
    let sock = reactor.sources.get(key).unwrap().io.sock();
    assert!(sock.broadcast().unwrap(), "SO_BROADCAST");
    assert_eq!(sock.multicast_ttl_v4().unwrap(), 7);
    assert_eq!(
        sock.multicast_if_v4().unwrap(),
        std::net::Ipv4Addr::LOCALHOST
    );
    let double = if cfg!(target_os = "linux") { 2 } else { 1 };
    assert_eq!(sock.send_buffer_size().unwrap(), double * 40 * 1024);
    assert_eq!(sock.recv_buffer_size().unwrap(), double * 20 * 1024);
    // The defaults: no broadcast, the OS's TTL (1).
    let (_, key, _) = bound(&mut core, &poller, &mut reactor);
    let sock = reactor.sources.get(key).unwrap().io.sock();
    assert!(!sock.broadcast().unwrap());
    assert_eq!(sock.multicast_ttl_v4().unwrap(), 1);
    reactor.close_all(&poller);
}

#[test]
#[cfg(target_os = "linux")]
fn bind_sets_ipv6_only_hops_and_the_interface_index_on_ipv6() {
    use sockstate::{MulticastInterface, SocketSettings};
    let poller = Poller::new().unwrap();
    let mut reactor = Reactor::new(&poller, Mode::of(&poller), limits());
    let mut core = Core::new(sockstate::Config::default());
    // SAFETY: a NUL-terminated name.
    let lo = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
    // Only `true`: Linux makes a socket bound to ::1 IPv6-only whatever was set (`false` is
    // checked on an unbound socket in `tests`).
    {
        let only = true;
        let settings = SocketSettings {
            ipv6_only: only,
            multicast_ttl: Some(0),
            multicast_interface: Some(MulticastInterface::V6(lo)),
            ..SocketSettings::default()
        };
        let id = core
            .udp_open(Instant::now(), UdpOptions::default())
            .unwrap();
        let mut reports = Vec::new();
        let local = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0));
        reactor.bind(&poller, id, local, false, false, settings, &mut reports);
        if !matches!(reports[..], [Report::Input(Input::Bound { .. })]) {
            return; // no IPv6 loopback here
        }
        let key = reactor.main(id.into()).unwrap();
        let sock = reactor.sources.get(key).unwrap().io.sock();
        assert_eq!(sock.only_v6().unwrap(), only, "IPV6_V6ONLY");
        assert_eq!(sock.multicast_hops_v6().unwrap(), 0);
        assert_eq!(sock.multicast_if_v6().unwrap(), lo);
    }
    reactor.close_all(&poller);
}
