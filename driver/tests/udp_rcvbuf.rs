//! The simulated network's UDP receive buffer against the kernel's (issue 15 §1): a flood at a
//! suspended socket on loopback, and how many datagrams the socket gets on resume, on the
//! driver and on the sim (configured with this machine's `rmem_default` and `rmem_max`).
//!
//! The counts can only be compared approximately: the kernel charges each datagram its skb's
//! `truesize`, which depends on the kernel version (the small-head cache came with 6.3), the
//! architecture (the sizes of `sk_buff` and `skb_shared_info`), the page size and the kernel's
//! configuration. The sim charges Linux 6.3+'s x86-64 figure, measured: on such a kernel the
//! counts are equal (they were on Linux 6.18, where this was written); elsewhere they must be
//! within a fifth of each other, which still tells a byte budget from a count of datagrams.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::*;
use sockstate::sim::{Call, Returned, Sim, SimConfig};
use sockstate_driver::{Bytes, Config, Event, UdpOptions};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn numbered(i: u16, size: usize) -> Bytes {
    let mut data = vec![0x5a; size.max(2)];
    data[..2].copy_from_slice(&i.to_be_bytes());
    Bytes::from(data)
}

/// Which datagrams of a flood a socket got, checked to be the first ones, in order.
#[track_caller]
fn first_ones(got: &[Bytes], what: &str) -> usize {
    let numbers: Vec<u16> = got
        .iter()
        .map(|d| u16::from_be_bytes([d[0], d[1]]))
        .collect();
    let first: Vec<u16> = (0..got.len() as u16).collect();
    assert_eq!(numbers, first, "{what}: the first datagrams, in order");
    got.len()
}

fn options(receive_buffer_size: Option<u32>) -> UdpOptions {
    UdpOptions::default()
        .local_address(Some(LOOPBACK))
        .receive_buffer_size(receive_buffer_size)
}

fn on_kernel(size: usize, n: u16, receive_buffer_size: Option<u32>) -> usize {
    let mut driver = driver(Config::default());
    let id = driver.udp_open(options(receive_buffer_size)).unwrap();
    run(&mut driver, 10, |_, e| !matches!(e, Event::Open { .. }));
    let local = driver.udp(id).unwrap().local_address().unwrap();
    driver.suspend(id).unwrap();
    let sender = std::net::UdpSocket::bind((LOOPBACK, 0)).unwrap();
    for i in 0..n {
        // Over loopback the datagram is in the receiver's queue (or dropped) when this returns.
        sender.send_to(&numbered(i, size), local).unwrap();
    }
    driver.resume(id).unwrap();
    let mut got = Vec::new();
    while let Some(event) = driver.next_event(Some(Duration::from_millis(500))) {
        match event {
            Event::Message { data, .. } => got.push(data),
            other => panic!("unexpected {other:?}"),
        }
    }
    driver.close(id).unwrap();
    closes_alone(&mut driver, id);
    first_ones(&got, "kernel")
}

/// This machine's `net.core` setting, if it can be read.
fn sysctl(name: &str) -> Option<usize> {
    let text = std::fs::read_to_string(format!("/proc/sys/net/core/{name}")).ok()?;
    text.trim().parse().ok()
}

fn on_sim(size: usize, n: u16, receive_buffer_size: Option<u32>) -> usize {
    let mut cfg = SimConfig::default();
    cfg.rmem_default = sysctl("rmem_default").unwrap_or(cfg.rmem_default);
    cfg.rmem_max = sysctl("rmem_max").unwrap_or(cfg.rmem_max);
    let mut sim = Sim::with_config(1, cfg);
    let rx = sim.add_host("rx", &[LOOPBACK]).unwrap();
    let tx = sim.add_host("tx", &["127.0.0.2".parse().unwrap()]).unwrap();
    let open = |options| Call::UdpOpen { options };
    let Ok(Returned::Bound(id)) = sim.call(rx, open(options(receive_buffer_size))) else {
        panic!()
    };
    let Ok(Returned::Bound(from)) = sim.call(tx, open(UdpOptions::default())) else {
        panic!()
    };
    sim.run_for(Duration::from_millis(10));
    sim.call(rx, Call::UdpSuspend { id }).unwrap();
    let to = sim.core(rx).unwrap().udp(id).unwrap().local_address();
    for i in 0..n {
        let data = numbered(i, size);
        let send = Call::UdpSend { id: from, data, to };
        sim.call(tx, send).unwrap();
    }
    sim.run_for(Duration::from_secs(1));
    sim.call(rx, Call::UdpResume { id }).unwrap();
    let got: Vec<Bytes> = (sim.run_for(Duration::from_secs(1)).into_iter())
        .filter_map(|(host, e)| match e {
            Event::Message { data, .. } if host == rx => Some(data),
            _ => None,
        })
        .collect();
    assert_eq!(sim.violations(), []);
    let dropped = sim.udp_rcvbuf_errors(rx).unwrap();
    assert_eq!(dropped, u64::from(n) - got.len() as u64);
    first_ones(&got, "sim")
}

#[test]
fn a_flood_at_a_suspended_socket_keeps_about_as_many_datagrams_as_the_kernel() {
    let _w = watchdog("udp rcvbuf", 120);
    let cases: [(usize, u16, Option<u32>); 6] = [
        (100, 400, None),
        (1000, 200, None),
        (20_000, 30, None),
        (100, 100, Some(16_384)),
        (1400, 100, Some(50_000)),
        (10, 10, Some(1)),
    ];
    for (size, n, rcvbuf) in cases {
        let kernel = on_kernel(size, n, rcvbuf);
        let sim = on_sim(size, n, rcvbuf);
        let what = format!("{n} datagrams of {size} bytes, receive_buffer_size {rcvbuf:?}");
        eprintln!("{what}: kernel kept {kernel}, sim {sim}");
        assert!(kernel < n as usize, "{what}: the kernel dropped none");
        let (lo, hi) = (kernel * 4 / 5, kernel * 6 / 5 + 1);
        assert!(
            (lo..=hi).contains(&sim),
            "{what}: the kernel kept {kernel}, the sim {sim}"
        );
    }
}
