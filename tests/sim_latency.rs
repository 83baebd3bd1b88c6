//! Per-link latency distributions (issue 15 §2): datagrams take the delays the link's
//! [`Delay`] draws, and TCP keeps its order whatever is drawn, long tails included.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use sockstate::sim::{Call, Delay, HostId, Link, Peer, Returned, Sim, SimConfig};
use sockstate::{BinaryType, Event, TcpOptions, UdpOptions};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn two_hosts(seed: u64, delay: Delay) -> (Sim, HostId, HostId) {
    let link = Link::default().delay(delay);
    let mut sim = Sim::with_config(seed, SimConfig::default().link(link));
    let a = sim.add_host("a", &[ip("127.0.0.1")]).unwrap();
    let b = sim.add_host("b", &[ip("127.0.0.2")]).unwrap();
    (sim, a, b)
}

/// The one-way delay of each of `n` datagrams sent at one instant from a to b, in ms.
fn datagram_delays(seed: u64, delay: Delay, n: usize) -> Vec<f64> {
    let (mut sim, a, b) = two_hosts(seed, delay);
    let options = UdpOptions::default().local_port(Some(9));
    let Ok(Returned::Bound(rx)) = sim.call(b, Call::UdpOpen { options }) else {
        panic!()
    };
    let options = UdpOptions::default();
    let Ok(Returned::Bound(tx)) = sim.call(a, Call::UdpOpen { options }) else {
        panic!()
    };
    sim.run_for(ms(10));
    let to: SocketAddr = "127.0.0.2:9".parse().unwrap();
    let sent = sim.now();
    for i in 0..n {
        let data = Bytes::from((i as u32).to_be_bytes().to_vec());
        let call = Call::UdpSend {
            id: tx,
            data,
            to: Some(to),
        };
        sim.call(a, call).unwrap();
    }
    let mut delays = Vec::new();
    while let Some((host, e)) = sim.next_event() {
        if let (true, Event::Message { id, .. }) = (host == b, e) {
            assert_eq!(id, rx);
            delays.push((sim.now() - sent).as_secs_f64() * 1000.0);
        }
    }
    assert_eq!(delays.len(), n, "none lost");
    assert_eq!(sim.violations(), []);
    delays
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn datagrams_take_the_delays_the_links_distribution_draws() {
    let v = datagram_delays(1, Delay::fixed(ms(4)), 200);
    assert!(v.iter().all(|&d| d == 4.0), "{v:?}");
    let v = datagram_delays(2, Delay::uniform(ms(5), ms(15)).unwrap(), 4000);
    assert!(v.iter().all(|&d| (5.0..=15.0).contains(&d)));
    assert!((mean(&v) - 10.0).abs() < 0.25, "{}", mean(&v));
    let exp = Delay::exponential(ms(2), ms(8), ms(500)).unwrap();
    let v = datagram_delays(3, exp, 4000);
    assert!(v.iter().all(|&d| (2.0..=500.0).contains(&d)));
    assert!((mean(&v) - 10.0).abs() < 0.5, "{}", mean(&v));
    let tail = Delay::pareto(ms(1), 1.2, ms(2000)).unwrap();
    let v = datagram_delays(4, tail, 4000);
    assert!(v.iter().all(|&d| (1.0..=2000.0).contains(&d)));
    // A fraction 10^-1.2 = 6.3% take more than 10 ms.
    let late = v.iter().filter(|&&d| d > 10.0).count() as f64 / v.len() as f64;
    assert!((late - 0.063).abs() < 0.012, "{late}");
}

#[test]
fn tcp_keeps_its_order_under_every_distribution() {
    let delays = [
        Delay::uniform(ms(1), ms(30)).unwrap(),
        Delay::exponential(ms(1), ms(10), ms(300)).unwrap(),
        Delay::pareto(Duration::from_micros(500), 1.1, ms(400)).unwrap(),
    ];
    let data: Vec<u8> = (0..400_000u32).map(|i| (i * 7 % 251) as u8).collect();
    for seed in common::seeds().take(8) {
        for delay in &delays {
            let (mut sim, a, _) = two_hosts(seed, delay.clone());
            sim.listen("127.0.0.2:7".parse().unwrap(), Peer::echo())
                .unwrap();
            let open = Call::TcpOpen {
                host: "127.0.0.2".into(),
                port: 7,
                options: TcpOptions::default().binary_type(BinaryType::ArrayBuffer),
            };
            let Ok(Returned::Opened(id)) = sim.call(a, open) else {
                panic!()
            };
            let mut echoed = Vec::new();
            while let Some((_, e)) = sim.next_event() {
                match e {
                    Event::Open { .. } => {
                        let send = Call::TcpSend {
                            id,
                            data: data.clone().into(),
                        };
                        sim.call(a, send).unwrap();
                    }
                    Event::Data { data: d, .. } => {
                        echoed.extend_from_slice(d.as_bytes());
                        if echoed.len() == data.len() {
                            sim.call(a, Call::TcpClose { id }).unwrap();
                        }
                    }
                    _ => {}
                }
            }
            let what = format!("{delay:?}: the echo, whole and in order");
            common::ensure(&sim, seed, echoed == data, &what);
            common::clean(&sim, seed);
        }
    }
}

#[test]
fn a_seed_draws_the_same_delays_every_time() {
    let tail = || Delay::pareto(ms(1), 1.5, ms(1000)).unwrap();
    assert_eq!(
        datagram_delays(9, tail(), 300),
        datagram_delays(9, tail(), 300)
    );
    assert_ne!(
        datagram_delays(9, tail(), 300),
        datagram_delays(10, tail(), 300)
    );
}
