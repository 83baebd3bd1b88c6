//! The batch calls of issue 19 on loopback: `send_all` (several datagrams in one call) and
//! `next_events` taking a GRO run's messages at once, with `bufferedAmount`, `Drain` and
//! errors exactly as per-datagram calls give them ([BEHAVIOUR §3](sockstate::behaviour#3-udpsocket)).

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use sockstate_driver::sockstate::DomException;
use sockstate_driver::{Config, Driver, Event, UdpId, UdpOptions};

fn bound(driver: &mut Driver) -> (UdpId, SocketAddr) {
    let options = UdpOptions::default().local_address(Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let id = driver.udp_open(options).unwrap();
    run(driver, 10, |_, event| !matches!(event, Event::Open { .. }));
    (id, driver.udp(id).unwrap().local_address().unwrap())
}

#[test]
fn send_all_and_next_events_move_a_burst_whole_and_stop_at_the_first_refusal() {
    let _w = watchdog("udp batch calls", 30);
    let core = sockstate_driver::sockstate::Config::default().high_water_mark(1000);
    let mut driver = Driver::new(Config::default().core(core).datagrams_per_turn(1000)).unwrap();
    let (rx, rx_addr) = bound(&mut driver);
    let (tx, tx_addr) = bound(&mut driver);
    // 60 of 100 bytes (a GRO run), then one too large for a datagram: refused, the rest not
    // queued.
    let mut burst: Vec<Vec<u8>> = (0..60u8).map(|i| vec![i; 100]).collect();
    burst.push(vec![0; 70_000]);
    burst.push(vec![99; 10]);
    let err = driver.send_all(tx, burst, Some(rx_addr)).unwrap_err();
    assert_eq!(err.queued, 60);
    assert_eq!(err.error.exception(), DomException::InvalidAccessError);
    assert_eq!(driver.udp(tx).unwrap().buffered_amount(), 6000, "exact");
    // The 60 went as one turn; `Drain` fires once, the messages come whole, in order.
    let mut got = Vec::new();
    let (mut drains, mut calls) = (0, 0);
    let until = Instant::now() + Duration::from_secs(10);
    let mut events = Vec::new();
    while (got.len() < 60 || drains == 0) && Instant::now() < until {
        events.clear();
        calls += 1;
        driver.next_events(Some(Duration::from_millis(100)), &mut events);
        for event in events.drain(..) {
            match event {
                Event::Message { id, data, remote } if id == rx => {
                    assert_eq!(remote, tx_addr);
                    got.push(data.to_vec());
                }
                Event::Drain { id } if id == tx.into() => {
                    assert_eq!(driver.udp(tx).unwrap().buffered_amount(), 0);
                    drains += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(got, (0..60u8).map(|i| vec![i; 100]).collect::<Vec<_>>());
    assert_eq!(drains, 1);
    assert!(calls < 60, "runs taken together ({calls} calls)");
    // A send_all on a closed socket queues nothing.
    driver.close(tx).unwrap();
    let err = driver
        .send_all(tx, [vec![1u8; 5]], Some(rx_addr))
        .unwrap_err();
    assert_eq!(
        (err.queued, err.error.exception()),
        (0, DomException::InvalidStateError)
    );
    closes_alone(&mut driver, tx);
    driver.close(rx).unwrap();
    closes_alone(&mut driver, rx);
    assert_healthy(&driver);
}
