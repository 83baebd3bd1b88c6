//! A one-thread profile of the batched datagram path, for `valgrind --tool=callgrind` (which
//! counts instructions repeatably on a noisy machine): a sending driver and a receiving driver
//! on loopback, in one thread, taking turns burst by burst. Each burst is one `send_all` of
//! [`BURST`] datagrams (or, with `calls`, a `send_to` each) and one turn of the sender's loop
//! (GSO or `sendmmsg`), then the receiver's `next_events` until it has every message
//! (`UDP_GRO` + `recvmmsg`). Every datagram is checked.
//!
//! ```sh
//! cargo build -p sockstate-driver --profile bench --example udp_burst_profile
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \
//!     $CARGO_TARGET_DIR/release/examples/udp_burst_profile 64 2000
//! callgrind_annotate --inclusive=yes /tmp/cg.out | head -60
//! ```
//!
//! Arguments: the datagram size (default 64), the number of bursts (default 2 000), and
//! `calls`, or `pingpong` (each "burst" is then one round trip: a datagram there, taken with
//! `next_event`, and one back). It prints the datagrams moved; two runs of different lengths
//! give the count per datagram (or round trip) without the start-up.

use std::time::Duration;

use sockstate_driver::{Bytes, Config, Driver, Event, UdpOptions};

/// Datagrams per burst (one GSO send of 64 segments).
const BURST: usize = 64;

fn open(driver: &mut Driver) -> sockstate_driver::UdpId {
    let options = UdpOptions::default().local_address(Some([127, 0, 0, 1].into()));
    let id = driver.udp_open(options).expect("udp_open");
    loop {
        match driver.next_event(Some(Duration::from_secs(5))) {
            Some(Event::Open { .. }) => return id,
            Some(Event::Error { error, .. }) => panic!("udp_open: {error}"),
            Some(_) => {}
            None => panic!("no Open"),
        }
    }
}

/// One way of a round trip: `sender` sends `data` to `to` (its turn writes it), and
/// `receiver` takes it with `next_event`.
fn ping(
    (sender, id): (&mut Driver, sockstate_driver::UdpId),
    receiver: &mut Driver,
    data: &Bytes,
    to: std::net::SocketAddr,
) {
    sender.send_to(id, data.clone(), Some(to)).expect("send_to");
    if let Some(event) = sender.next_event(Some(Duration::ZERO)) {
        panic!("sender: {event:?}");
    }
    match receiver.next_event(Some(Duration::from_secs(5))) {
        Some(Event::Message { data: got, .. }) => assert_eq!(&got, data),
        other => panic!("receiver: {other:?}"),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let size: usize = args.next().map_or(64, |a| a.parse().expect("a size"));
    let bursts: usize = args.next().map_or(2_000, |a| a.parse().expect("a count"));
    // `calls`: a `send_to` per datagram rather than one `send_all` per burst.
    let mode = args.next();
    let calls = mode.as_deref() == Some("calls");
    let pingpong = mode.as_deref() == Some("pingpong");
    assert!((8..=1_472).contains(&size), "a size from 8 to 1 472");
    let pool: Vec<Bytes> = (0..BURST as u32)
        .map(|i| {
            let mut d = vec![i as u8; size];
            d[..4].copy_from_slice(&i.to_le_bytes());
            Bytes::from(d)
        })
        .collect();
    let mut tx = Driver::new(Config::default()).expect("driver");
    let mut rx = Driver::new(Config::default()).expect("driver");
    let (from, to) = (open(&mut tx), open(&mut rx));
    let to_addr = rx.udp(to).and_then(|s| s.local_address()).expect("bound");
    if pingpong {
        let from_addr = tx.udp(from).and_then(|s| s.local_address()).expect("bound");
        for _ in 0..bursts {
            ping((&mut tx, from), &mut rx, &pool[0], to_addr);
            ping((&mut rx, to), &mut tx, &pool[1], from_addr);
        }
        println!("{bursts} round trips of {size} B");
        return;
    }
    let mut events = Vec::new();
    let mut moved = 0;
    for _ in 0..bursts {
        if calls {
            for data in &pool {
                tx.send_to(from, data.clone(), Some(to_addr))
                    .expect("send_to");
            }
        } else {
            (tx.send_all(from, pool.iter().cloned(), Some(to_addr))).expect("send_all");
        }
        // One turn: the burst goes out, the `Sent`s come back.
        while let Some(event) = tx.next_event(Some(Duration::ZERO)) {
            assert!(matches!(event, Event::Drain { .. }), "sender: {event:?}");
        }
        let mut next = 0u32;
        while next < BURST as u32 {
            events.clear();
            rx.next_events(Some(Duration::from_secs(5)), &mut events);
            assert!(!events.is_empty(), "receiver: nothing within 5 s");
            for event in events.drain(..) {
                let Event::Message { data, .. } = event else {
                    panic!("receiver: {event:?}");
                };
                assert_eq!(data.len(), size);
                assert_eq!(u32::from_le_bytes(data[..4].try_into().unwrap()), next);
                next += 1;
            }
        }
        moved += BURST;
    }
    println!("{moved} datagrams of {size} B");
}
