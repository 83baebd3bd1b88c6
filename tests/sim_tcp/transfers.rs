//! Data end to end: text split anywhere, bulk uploads and downloads under back-pressure and
//! suspend, many concurrent clients, and a seed that reproduces its run.

use super::*;

#[test]
fn echo_of_text_split_anywhere_decodes_whole() {
    let text = "héllo wörld, ünïcode across reads: 😀€ — and NUL \0 too";
    for seed in seeds() {
        let link = jittery().max_read(3);
        let (mut sim, client, _) = net(seed, link);
        sim.listen(addr("127.0.0.2:7"), Peer::echo()).unwrap();
        let id = open(&mut sim, client, "server.test", 7, TcpOptions::default());
        let mut events = Vec::new();
        let mut echoed = String::new();
        while let Some((_, event)) = sim.next_event() {
            match &event {
                Event::Open { .. } => assert!(send(&mut sim, client, id, text)),
                Event::Data {
                    data: Data::Text(t),
                    ..
                } => {
                    echoed.push_str(t);
                    if echoed.len() == text.len() {
                        sim.call(client, Call::TcpClose { id }).unwrap();
                        ensure(
                            &sim,
                            seed,
                            state(&sim, client, id) == Some(ReadyState::Closing),
                            "closing at once",
                        );
                    }
                }
                _ => {}
            }
            events.push(event);
        }
        clean(&sim, seed);
        ensure(&sim, seed, echoed == text, &format!("echoed {echoed:?}"));
        ensure(
            &sim,
            seed,
            kinds(&events) == ["open", "data", "close"],
            "events",
        );
        let conn = sim.conn_of(client, id);
        let _ = conn; // the socket is released: its connection is no longer listed for it
        assert!(
            sim.core(client).unwrap().tcp(id).is_none(),
            "the id is dead"
        );
        let received = sim.peer_received(sim.conns().last().unwrap()).unwrap();
        ensure(
            &sim,
            seed,
            received == text.as_bytes(),
            "the peer got the text",
        );
    }
}

/// Sends `total` bytes with back-pressure: send until `false`, then wait for `Drain`.
#[test]
fn bulk_upload_with_back_pressure_arrives_checksummed() {
    const TOTAL: usize = 384 << 10;
    for seed in seeds() {
        let link = jittery()
            .bandwidth(Some(20 << 20))
            .send_buffer((48 << 10) / 2)
            .recv_buffer((48 << 10) / 2);
        let (mut sim, client, _) = net(seed, link);
        sim.listen(addr("127.0.0.2:9"), Peer::sink()).unwrap();
        let options = TcpOptions::default().binary_type(BinaryType::ArrayBuffer);
        let id = open(&mut sim, client, SERVER, 9, options);
        let data = pattern(seed, TOTAL);
        let mut offset = 0;
        let mut falses = 0;
        let mut drains = 0;
        let mut pump = |sim: &mut Sim| {
            while offset < TOTAL {
                let end = (offset + 10_000).min(TOTAL);
                let below = send(sim, client, id, data[offset..end].to_vec());
                offset = end;
                if !below {
                    falses += 1;
                    return;
                }
            }
            sim.call(client, Call::TcpClose { id }).unwrap();
        };
        let mut events = Vec::new();
        while let Some((_, event)) = sim.next_event() {
            match event {
                Event::Open { .. } => pump(&mut sim),
                Event::Drain { .. } => {
                    drains += 1;
                    let buffered = sim.core(client).unwrap().tcp(id).unwrap().buffered_amount();
                    ensure(&sim, seed, buffered == 0, "bufferedAmount is 0 at Drain");
                    pump(&mut sim);
                }
                _ => {}
            }
            events.push(event);
        }
        clean(&sim, seed);
        let conn = sim.conns().last().unwrap();
        ensure(
            &sim,
            seed,
            sim.peer_received(conn) == Some(&data[..]),
            "checksum",
        );
        ensure(
            &sim,
            seed,
            falses > 0 && drains == falses,
            "one Drain per false",
        );
        ensure(&sim, seed, error_code(&events).is_none(), "no error");
        ensure(
            &sim,
            seed,
            sim.now() >= Duration::from_millis((TOTAL as u64 * 1000) / (20 << 20)),
            "the bandwidth limit holds",
        );
    }
}

#[test]
fn bulk_download_with_suspend_stalls_the_sender_and_arrives_checksummed() {
    const TOTAL: usize = 384 << 10;
    for seed in seeds() {
        let link = jittery()
            .send_buffer((32 << 10) / 2)
            .recv_buffer((32 << 10) / 2)
            .max_read(4096);
        let (mut sim, client, _) = net(seed, link);
        let data = pattern(seed + 1000, TOTAL);
        let peer = Peer {
            after_greeting: AfterGreeting::Close,
            ..Peer::send(data.clone())
        };
        sim.listen(addr("127.0.0.2:19"), peer).unwrap();
        let options = TcpOptions::default().binary_type(BinaryType::ArrayBuffer);
        let id = open(&mut sim, client, SERVER, 19, options);
        let mut got = Vec::new();
        let mut suspended_once = false;
        let mut events = Vec::new();
        while let Some((_, event)) = sim.next_event() {
            if let Event::Data { data, .. } = &event {
                got.extend_from_slice(data.as_bytes());
                if got.len() > TOTAL / 3 && !suspended_once {
                    suspended_once = true;
                    sim.call(client, Call::TcpSuspend { id }).unwrap();
                    let during = sim.run_for(Duration::from_millis(500));
                    ensure(&sim, seed, during.is_empty(), "no event while suspended");
                    let conn = sim.conn_of(client, id).unwrap();
                    let sent = sim.peer_sent(conn).unwrap().len();
                    ensure(
                        &sim,
                        seed,
                        sent <= got.len() + (32 << 10) + 4096,
                        &format!("the sender stalls: sent {sent}, read {}", got.len()),
                    );
                    sim.call(client, Call::TcpResume { id }).unwrap();
                }
            }
            events.push(event);
        }
        clean(&sim, seed);
        ensure(&sim, seed, got == data, "checksum");
        ensure(
            &sim,
            seed,
            kinds(&events) == ["open", "data", "close"],
            "events",
        );
    }
}

#[test]
fn many_concurrent_echo_clients_each_get_their_own_bytes() {
    for seed in seeds().take(8) {
        let (mut sim, client, _) = net(seed, jittery());
        sim.listen(addr("127.0.0.2:7"), Peer::echo()).unwrap();
        let ids: Vec<TcpId> = (0..20)
            .map(|_| open(&mut sim, client, SERVER, 7, TcpOptions::default()))
            .collect();
        let mut got = vec![String::new(); ids.len()];
        let mut closes = 0;
        while let Some((_, event)) = sim.next_event() {
            match event {
                Event::Open {
                    id: SocketId::TcpId(id),
                } => {
                    send(&mut sim, client, id, format!("message from {id}"));
                }
                Event::Data {
                    id,
                    data: Data::Text(t),
                } => {
                    let i = ids.iter().position(|x| *x == id).unwrap();
                    got[i].push_str(&t);
                    if got[i] == format!("message from {id}") {
                        sim.call(client, Call::TcpClose { id }).unwrap();
                    }
                }
                Event::Close { .. } => closes += 1,
                _ => {}
            }
        }
        clean(&sim, seed);
        ensure(&sim, seed, closes == ids.len(), "every socket closed");
        for (i, id) in ids.iter().enumerate() {
            ensure(
                &sim,
                seed,
                got[i] == format!("message from {id}"),
                "own bytes",
            );
        }
    }
}

#[test]
fn a_seed_reproduces_the_run_exactly_and_another_seed_differs() {
    let run = |seed: u64| {
        let link = jittery().max_read(50);
        let (mut sim, client, _) = net(seed, link);
        sim.listen(addr("127.0.0.2:7"), Peer::echo()).unwrap();
        let id = open(&mut sim, client, "server.test", 7, TcpOptions::default());
        while let Some((_, event)) = sim.next_event() {
            match event {
                Event::Open { .. } => {
                    send(&mut sim, client, id, pattern(seed, 5000));
                    sim.call(client, Call::TcpHalfclose { id }).unwrap();
                }
                Event::Close { .. } => break,
                _ => {}
            }
        }
        clean(&sim, seed);
        (sim.transcript().to_vec(), sim.now())
    };
    for seed in seeds() {
        let (a, at_a) = run(seed);
        let (b, at_b) = run(seed);
        assert_eq!(a, b, "seed {seed}: same transcript");
        assert_eq!(at_a, at_b);
        let (c, _) = run(seed + 1_000_000);
        assert_ne!(a, c, "seed {seed}: another seed, other chunking and timing");
    }
}
