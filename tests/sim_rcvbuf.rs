//! A UDP socket's receive buffer in the simulated network (issue 15 §1), as Linux's: a socket
//! that does not read holds datagrams up to its buffer in bytes (`rmem_default`, or the
//! `receive_buffer_size` asked, capped and doubled), each charged its skb's truesize; what
//! does not fit is dropped, counted and in the transcript; on resume the rest arrives whole
//! and in order. The counts are Linux's own over loopback (see `driver/tests/udp_rcvbuf.rs`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use sockstate::sim::{Call, HostId, Returned, Sim, SimConfig};
use sockstate::{Event, UdpId, UdpOptions};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

struct Flood {
    sim: Sim,
    rx_host: HostId,
    rx: UdpId,
    tx_host: HostId,
    tx: UdpId,
    sent: u16,
}

impl Flood {
    /// A receiver on 127.0.0.1:5000, suspended from the start, with `receive_buffer_size`.
    fn new(seed: u64, cfg: SimConfig, receive_buffer_size: Option<u32>) -> Flood {
        let mut sim = Sim::with_config(seed, cfg);
        let rx_host = sim.add_host("rx", &[ip("127.0.0.1")]).unwrap();
        let tx_host = sim.add_host("tx", &[ip("127.0.0.2")]).unwrap();
        let options = UdpOptions::default()
            .local_port(Some(5000))
            .receive_buffer_size(receive_buffer_size);
        let Ok(Returned::Bound(rx)) = sim.call(rx_host, Call::UdpOpen { options }) else {
            panic!()
        };
        sim.call(rx_host, Call::UdpSuspend { id: rx }).unwrap();
        let options = UdpOptions::default();
        let Ok(Returned::Bound(tx)) = sim.call(tx_host, Call::UdpOpen { options }) else {
            panic!()
        };
        sim.run_for(Duration::from_millis(10));
        Flood {
            sim,
            rx_host,
            rx,
            tx_host,
            tx,
            sent: 0,
        }
    }

    /// Sends one datagram per size, each numbered in its first two bytes.
    fn send(&mut self, sizes: &[usize]) {
        let to: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        for &size in sizes {
            let mut data = vec![0x55; size.max(2)];
            data[..2].copy_from_slice(&self.sent.to_be_bytes());
            data.truncate(size.max(2));
            self.sent += 1;
            let call = Call::UdpSend {
                id: self.tx,
                data: Bytes::from(data),
                to: Some(to),
            };
            self.sim.call(self.tx_host, call).unwrap();
        }
    }

    /// The numbers of the datagrams the receiver gets, in order.
    fn received(&mut self, events: Vec<(HostId, Event)>) -> Vec<u16> {
        (events.into_iter())
            .filter_map(|(h, e)| match e {
                Event::Message { id, data, .. } if h == self.rx_host && id == self.rx => {
                    Some(u16::from_be_bytes([data[0], data[1]]))
                }
                _ => None,
            })
            .collect()
    }

    /// Lets everything arrive, resumes the receiver: what it gets.
    fn resume(&mut self) -> Vec<u16> {
        let before = self.sim.run_for(Duration::from_secs(1));
        assert_eq!(self.received(before), [], "nothing read while suspended");
        self.sim
            .call(self.rx_host, Call::UdpResume { id: self.rx })
            .unwrap();
        let after = self.sim.run_for(Duration::from_secs(1));
        self.received(after)
    }

    fn dropped(&self) -> u64 {
        self.sim.udp_rcvbuf_errors(self.rx_host).unwrap()
    }
}

/// A flood of `n` datagrams of `size` bytes at a suspended socket: how many it gets on resume
/// (checked to be the first ones, in order, and the rest counted as dropped).
fn flood(receive_buffer_size: Option<u32>, size: usize, n: u16) -> usize {
    let mut f = Flood::new(1, SimConfig::default(), receive_buffer_size);
    f.send(&vec![size; n as usize]);
    let got = f.resume();
    let first: Vec<u16> = (0..got.len() as u16).collect();
    assert_eq!(got, first, "the first ones, in order");
    assert_eq!(f.dropped(), u64::from(n) - got.len() as u64);
    let notes = f
        .sim
        .transcript_text()
        .matches("receive buffer full")
        .count();
    assert_eq!(notes as u64, f.dropped(), "each drop is in the transcript");
    assert_eq!(f.sim.violations(), []);
    got.len()
}

#[test]
fn a_suspended_socket_holds_as_many_datagrams_as_linux_and_drops_the_rest() {
    // Linux 6.x over loopback, measured: 100-byte datagrams cost 832 bytes, so 256 fit the
    // default 212992; 1000-byte ones cost 2304 (92 fit); 60000-byte ones 60832 (3 fit).
    assert_eq!(flood(None, 100, 400), 256);
    assert_eq!(flood(None, 1000, 200), 92);
    assert_eq!(flood(None, 60_000, 10), 3);
}

#[test]
fn a_larger_receive_buffer_size_holds_more_doubled_and_capped_as_linux() {
    // SO_RCVBUF 100000 is 200000 in the kernel: 240 of 832 bytes.
    assert_eq!(flood(Some(100_000), 100, 400), 240);
    // Capped at rmem_max (212992) before doubling: 425984, 512.
    assert_eq!(flood(Some(1 << 20), 100, 700), 512);
    // At least 2304: two small datagrams.
    assert_eq!(flood(Some(1), 100, 10), 2);
    // A larger rmem_max lets a larger size through.
    let cfg = SimConfig::default().rmem_max(4 << 20);
    let mut f = Flood::new(1, cfg, Some(1 << 20));
    f.send(&[100; 3000]);
    assert_eq!(f.resume().len(), (2 << 20) / 832);
}

#[test]
fn an_empty_buffer_takes_one_datagram_whatever_its_size_and_then_only_what_fits() {
    // Linux, measured with SO_RCVBUF 1 (2304 bytes): [10, 2000, 10, 10, 10] leaves the first
    // and the third: 832 fits, then 832 + 4352 does not, 1664 does, 2496 does not.
    let mut f = Flood::new(1, SimConfig::default(), Some(1));
    f.send(&[10, 2000, 10, 10, 10]);
    assert_eq!(f.resume(), [0, 2]);
    assert_eq!(f.dropped(), 3);
    // A datagram larger than the whole buffer still fits an empty one.
    let mut f = Flood::new(1, SimConfig::default(), Some(1));
    f.send(&[30_000, 10]);
    assert_eq!(f.resume(), [0]);
}

#[test]
fn after_a_resume_later_datagrams_follow_the_held_ones_and_the_buffer_is_free_again() {
    for seed in 0..8 {
        let mut f = Flood::new(seed, SimConfig::default(), None);
        f.send(&[100; 300]);
        let before = f.sim.run_for(Duration::from_secs(1));
        assert_eq!(f.received(before), []);
        f.sim.call(f.rx_host, Call::UdpResume { id: f.rx }).unwrap();
        // More arrive while the held ones are being read.
        f.send(&[100; 20]);
        let events = f.sim.run_for(Duration::from_secs(1));
        let got = f.received(events);
        let want: Vec<u16> = (0..256).chain(300..320).collect();
        assert_eq!(got, want, "seed {seed}");
        // The buffer is empty again: the next suspension holds 256 more.
        f.sim
            .call(f.rx_host, Call::UdpSuspend { id: f.rx })
            .unwrap();
        f.send(&[100; 300]);
        assert_eq!(f.resume().len(), 256);
        assert_eq!(f.dropped(), 44 + 44);
        assert_eq!(f.sim.violations(), []);
    }
}

#[test]
fn a_socket_suspended_again_while_reading_its_buffer_keeps_the_rest_charged_in_order() {
    let mut f = Flood::new(3, SimConfig::default(), None);
    f.send(&[100; 300]);
    let before = f.sim.run_for(Duration::from_secs(1));
    assert_eq!(f.received(before), []);
    f.sim.call(f.rx_host, Call::UdpResume { id: f.rx }).unwrap();
    let mut got = Vec::new();
    while got.len() < 100 {
        let event = f.sim.next_event().expect("a message");
        got.extend(f.received(vec![event]));
    }
    f.sim
        .call(f.rx_host, Call::UdpSuspend { id: f.rx })
        .unwrap();
    // 156 still held: room for 100 more of the next 200.
    f.send(&[100; 200]);
    got.extend(f.resume());
    let want: Vec<u16> = (0..256).chain(300..400).collect();
    assert_eq!(got, want);
    assert_eq!(f.dropped(), 44 + 100);
    assert_eq!(f.sim.violations(), []);
}
