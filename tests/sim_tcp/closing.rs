//! Ending a connection: close with queued data, halfclose, the peer's FIN with allowHalfOpen, the
//! close and linger timeouts.

use super::*;

#[test]
fn close_with_queued_data_sends_all_then_drain_then_close() {
    const TOTAL: usize = 300 << 10;
    for seed in seeds() {
        let link = jittery()
            .send_buffer((64 << 10) / 2)
            .recv_buffer((64 << 10) / 2);
        let (mut sim, client, _) = net(seed, link);
        sim.listen(addr("127.0.0.2:9"), Peer::sink()).unwrap();
        let id = open(&mut sim, client, SERVER, 9, TcpOptions::default());
        let data = pattern(seed, TOTAL);
        let mut events = Vec::new();
        while let Some((_, event)) = sim.next_event() {
            if let Event::Open { .. } = event {
                assert!(!send(&mut sim, client, id, data.clone()));
                sim.call(client, Call::TcpClose { id }).unwrap();
                let s = sim.core(client).unwrap().tcp(id).unwrap();
                ensure(
                    &sim,
                    seed,
                    s.ready_state() == ReadyState::Closing,
                    "closing",
                );
                ensure(&sim, seed, s.buffered_amount() > 0, "still buffered");
                let refused = sim.call(
                    client,
                    Call::TcpSend {
                        id,
                        data: "x".into(),
                    },
                );
                let refused = refused.unwrap_err().exception();
                ensure(
                    &sim,
                    seed,
                    refused == DomException::InvalidStateError,
                    "send refused",
                );
            }
            events.push(event);
        }
        clean(&sim, seed);
        ensure(
            &sim,
            seed,
            kinds(&events) == ["open", "drain", "close"],
            "events",
        );
        let conn = sim.conns().last().unwrap();
        ensure(
            &sim,
            seed,
            sim.peer_received(conn) == Some(&data[..]),
            "all data",
        );
    }
}

#[test]
fn halfclose_flushes_then_fin_and_data_keeps_arriving_until_the_peers_fin() {
    for seed in seeds() {
        let (mut sim, client, _) = net(seed, jittery());
        sim.listen(addr("127.0.0.2:7"), Peer::echo()).unwrap();
        let id = open(&mut sim, client, SERVER, 7, TcpOptions::default());
        let mut events = Vec::new();
        while let Some((_, event)) = sim.next_event() {
            if let Event::Open { .. } = event {
                send(&mut sim, client, id, "ping ".repeat(1000));
                sim.call(client, Call::TcpHalfclose { id }).unwrap();
                ensure(
                    &sim,
                    seed,
                    state(&sim, client, id) == Some(ReadyState::HalfClosed),
                    "halfclosed",
                );
                let refused = sim.call(
                    client,
                    Call::TcpSend {
                        id,
                        data: "x".into(),
                    },
                );
                ensure(&sim, seed, refused.is_err(), "send refused when halfclosed");
            }
            events.push(event);
        }
        clean(&sim, seed);
        ensure(
            &sim,
            seed,
            kinds(&events) == ["open", "data", "close"],
            "events",
        );
        ensure(
            &sim,
            seed,
            bytes_of(&events) == "ping ".repeat(1000).as_bytes(),
            "echo",
        );
    }
}

#[test]
fn peer_fin_with_allow_half_open_keeps_the_socket_writable() {
    for seed in seeds() {
        let (mut sim, client, _) = net(seed, jittery());
        let peer = Peer {
            after_greeting: AfterGreeting::Close,
            ..Peer::send("hello")
        };
        sim.listen(addr("127.0.0.2:25"), peer).unwrap();
        let options = TcpOptions::default().allow_half_open(true);
        let id = open(&mut sim, client, SERVER, 25, options);
        let mut events = Vec::new();
        while let Some((_, event)) = sim.next_event() {
            if let Event::HalfClose { .. } = event {
                ensure(
                    &sim,
                    seed,
                    state(&sim, client, id) == Some(ReadyState::Open),
                    "open",
                );
                send(&mut sim, client, id, "bye");
                sim.call(client, Call::TcpClose { id }).unwrap();
            }
            events.push(event);
        }
        clean(&sim, seed);
        let k = kinds(&events);
        ensure(
            &sim,
            seed,
            k == ["open", "data", "halfclose", "close"],
            "events",
        );
        ensure(&sim, seed, bytes_of(&events) == b"hello", "data");
        let conn = sim.conns().last().unwrap();
        ensure(
            &sim,
            seed,
            sim.peer_received(conn) == Some(&b"bye"[..]),
            "bye",
        );
    }
}

#[test]
fn a_peer_that_goes_silent_during_close_hits_the_close_timeout() {
    for seed in seeds() {
        let core = Config::default().close_timeout(Duration::from_secs(3));
        let (mut sim, client, _) = net_with(seed, jittery(), core);
        sim.listen(addr("127.0.0.2:9"), Peer::sink()).unwrap();
        let id = open(&mut sim, client, SERVER, 9, TcpOptions::default());
        let (mut closed_at, mut close_event_at) = (Duration::ZERO, Duration::ZERO);
        let mut events = Vec::new();
        while let Some((_, event)) = sim.next_event() {
            match event {
                Event::Open { .. } => {
                    let conn = sim.conn_of(client, id).unwrap();
                    sim.silence(conn).unwrap();
                    send(&mut sim, client, id, pattern(seed, 1 << 20));
                    sim.call(client, Call::TcpClose { id }).unwrap();
                    closed_at = sim.now();
                }
                Event::Close { .. } => close_event_at = sim.now(),
                _ => {}
            }
            events.push(event);
        }
        clean(&sim, seed);
        ensure(
            &sim,
            seed,
            kinds(&events) == ["open", "error", "close"],
            "events",
        );
        ensure(
            &sim,
            seed,
            error_code(&events) == Some(ErrorCode::NetworkTimeout),
            "code",
        );
        let on_time = close_event_at == closed_at + Duration::from_secs(3);
        ensure(&sim, seed, on_time, "at the close timeout");
    }
}

#[test]
fn a_peer_that_never_sends_fin_is_released_after_the_linger_timeout_once_all_is_acknowledged() {
    for seed in seeds() {
        let (mut sim, client, _) = net(seed, jittery());
        let peer = Peer {
            close_on_eof: false,
            ..Peer::sink()
        };
        sim.listen(addr("127.0.0.2:9"), peer).unwrap();
        let id = open(&mut sim, client, SERVER, 9, TcpOptions::default());
        let (mut closed_at, mut close_event_at) = (Duration::ZERO, Duration::ZERO);
        let mut events = Vec::new();
        while let Some((_, event)) = sim.next_event() {
            match event {
                Event::Open { .. } => {
                    send(&mut sim, client, id, "last words");
                    sim.call(client, Call::TcpClose { id }).unwrap();
                    closed_at = sim.now();
                }
                Event::Close { .. } => close_event_at = sim.now(),
                _ => {}
            }
            events.push(event);
        }
        clean(&sim, seed);
        ensure(&sim, seed, kinds(&events) == ["open", "close"], "events");
        // The FIN goes out once the write is taken (at once here); the linger runs once the
        // peer's TCP has acknowledged the data and the FIN, a few link delays later (the
        // queries back off from 1 ms).
        let linger = Config::default().linger_timeout;
        let waited = close_event_at - closed_at;
        let on_time = waited > linger && waited < linger + Duration::from_millis(60);
        ensure(
            &sim,
            seed,
            on_time,
            "at the linger timeout after the acknowledgement",
        );
        let conn = sim.conns().last().unwrap();
        ensure(
            &sim,
            seed,
            sim.peer_received(conn) == Some(&b"last words"[..]),
            "data",
        );
    }
}
