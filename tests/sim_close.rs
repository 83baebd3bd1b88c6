//! A graceful close over the simulated network (issue 14): a clean `Close` only once the
//! peer's TCP has every byte, under many seeds with the invariant checker of every host.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{clean, ensure, seeds};
use sockstate::sim::{Call, HostId, Link, Peer, Returned, Sim, SimConfig};
use sockstate::{Event, TcpId, TcpOptions};

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| (i.wrapping_mul(31).wrapping_add(seed) % 251) as u8)
        .collect()
}

/// A client host and a server host whose `peer` listens on port 9, and a socket of the
/// client connecting to it.
fn client_and_peer(seed: u64, link: Link, peer: Peer) -> (Sim, HostId, TcpId) {
    let cfg = SimConfig::default().link(link);
    let mut sim = Sim::with_config(seed, cfg);
    let client = sim
        .add_host("client", &["127.0.0.1".parse().unwrap()])
        .unwrap();
    sim.add_host("server", &["127.0.0.2".parse().unwrap()])
        .unwrap();
    let at: SocketAddr = "127.0.0.2:9".parse().unwrap();
    sim.listen(at, peer).unwrap();
    let open = Call::TcpOpen {
        host: "127.0.0.2".into(),
        port: 9,
        options: TcpOptions::default(),
    };
    let Ok(Returned::Opened(id)) = sim.call(client, open) else {
        panic!("open")
    };
    (sim, client, id)
}

/// A peer that keeps writing while we close, through small buffers, and reads only now and
/// then: every byte we sent reaches it and the close is clean (no reset of its unread bytes).
#[test]
fn a_slow_reader_that_writes_during_our_close_gets_every_byte_and_the_close_is_clean() {
    for seed in seeds() {
        let link = Link::default()
            .latency(Duration::from_millis(2))
            .jitter(Duration::from_millis(2))
            .send_buffer(2048)
            .recv_buffer(2048);
        let (mut sim, client, id) = client_and_peer(seed, link, Peer::sink());
        let mut events: Vec<Event> = Vec::new();
        while !events.iter().any(|e| matches!(e, Event::Open { .. })) {
            events.push(sim.next_event().expect("opens").1);
        }
        let data = pattern(seed, 64 << 10);
        let send = Call::TcpSend {
            id,
            data: data.clone().into(),
        };
        sim.call(client, send).unwrap();
        sim.call(client, Call::TcpClose { id }).unwrap();
        let conn = sim.conn_of(client, id).unwrap();
        while sim.core(client).is_some_and(|c| c.tcp(id).is_some()) {
            // Read for a moment, then stop; write a little every time.
            let _ = sim.peer_send(conn, pattern(seed + 1, 500));
            sim.peer_pause(conn, false).unwrap();
            events.extend(
                sim.run_for(Duration::from_millis(1))
                    .into_iter()
                    .map(|e| e.1),
            );
            sim.peer_pause(conn, true).unwrap();
            events.extend(
                sim.run_for(Duration::from_millis(20))
                    .into_iter()
                    .map(|e| e.1),
            );
            ensure(&sim, seed, sim.now() < Duration::from_secs(20), "ends");
        }
        sim.peer_pause(conn, false).unwrap();
        events.extend(sim.run().into_iter().map(|e| e.1));
        clean(&sim, seed);
        let ok = matches!(&events[..], [Event::Open { .. }, Event::Close { .. }]);
        ensure(&sim, seed, ok, &format!("events {events:?}"));
        ensure(
            &sim,
            seed,
            sim.peer_received(conn) == Some(&data[..]),
            "every byte arrived",
        );
    }
}

/// Closing a socket with unread input resets the connection, and the reset discards what our
/// kernel had not put on the wire yet (as Linux does): on a slow link the peer gets only the
/// bytes transmitted before the close, then the reset. Before, a write was on the wire whole
/// the moment the OS took it, and the peer got every byte ahead of the reset.
#[test]
fn a_reset_on_close_discards_what_the_kernel_had_not_sent_yet() {
    for seed in seeds() {
        let link = Link::default()
            .latency(Duration::from_millis(1))
            .bandwidth(Some(10_000))
            .partial_writes(false);
        let (mut sim, client, id) = client_and_peer(seed, link, Peer::send("left unread"));
        sim.call(client, Call::TcpSuspend { id }).unwrap();
        while !matches!(sim.next_event(), Some((_, Event::Open { .. })) | None) {}
        let data = pattern(seed, 20_000);
        let send = Call::TcpSend {
            id,
            data: data.clone().into(),
        };
        sim.call(client, send).unwrap();
        let _ = sim.run_for(Duration::from_millis(100));
        sim.call(client, Call::TcpCloseImmediately { id }).unwrap();
        let _ = sim.run();
        clean(&sim, seed);
        let conn = sim.conn_of(client, id).or(sim.conns().last()).unwrap();
        let got = sim.peer_received(conn).unwrap().len();
        // 100 ms at 10 kB/s: about 1 000 bytes left before the close.
        ensure(
            &sim,
            seed,
            (900..=1_100).contains(&got),
            &format!("the peer got {got} bytes"),
        );
        ensure(
            &sim,
            seed,
            sim.peer_received(conn) == Some(&data[..got]),
            "a prefix",
        );
    }
}

/// A peer that never reads, with data small enough for our kernel to take (every byte leaves
/// `bufferedAmount`) but more than the peer's receive window: the rest stays in our kernel's
/// send buffer, unacknowledged, so the close ends at the close timeout with an error, never
/// clean (issue 14). Before the send buffer and the receive window were apart, bytes our OS
/// took always reached the peer's kernel and this close was clean.
#[test]
fn a_peer_that_never_reads_more_than_its_window_ends_our_close_with_a_timeout() {
    for seed in seeds() {
        let (mut sim, client, id) = client_and_peer(seed, Link::default(), Peer::stall());
        while !matches!(sim.next_event(), Some((_, Event::Open { .. })) | None) {}
        let data = pattern(seed, 200 << 10);
        let send = Call::TcpSend {
            id,
            data: data.into(),
        };
        sim.call(client, send).unwrap();
        let _ = sim.run_for(Duration::from_millis(100));
        let buffered = sim.core(client).unwrap().tcp(id).unwrap().buffered_amount();
        ensure(&sim, seed, buffered == 0, "our kernel took every byte");
        let closed_at = sim.now();
        sim.call(client, Call::TcpClose { id }).unwrap();
        let events: Vec<Event> = sim.run().into_iter().map(|e| e.1).collect();
        clean(&sim, seed);
        let timeout = sim.core(client).unwrap().config().close_timeout;
        let ok = matches!(&events[..], [Event::Error { error, .. }, Event::Close { .. }]
            if error.code == sockstate::ErrorCode::NetworkTimeout);
        ensure(&sim, seed, ok, &format!("events {events:?}"));
        let took = sim.now() - closed_at;
        ensure(
            &sim,
            seed,
            took >= timeout && took < timeout + Duration::from_secs(1),
            &format!("closed after {took:?}"),
        );
    }
}
