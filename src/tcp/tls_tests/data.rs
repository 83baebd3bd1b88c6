//! Data over TLS: encrypted both ways, large transfers, plaintext buffers, records joined into
//! writes, `drain` before the close_notify ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket)).

use super::*;

#[test]
fn data_flows_encrypted_both_ways() {
    let mut h = Harness::new();
    let (id, mut peer, mut link) = secure_open(&mut h);
    let wire_before = link.wire.len();
    assert_eq!(h.core.tcp_send(id, "hello, peer"), Ok(true));
    let out = h.drain();
    link.run(&mut h, id, &mut peer, out);
    assert_eq!(peer.plain, b"hello, peer");
    let wire = &link.wire[wire_before..];
    assert!(
        !wire.windows(5).any(|w| w == b"hello"),
        "plaintext never on the wire"
    );
    peer.send("hello, socket".as_bytes());
    link.run(&mut h, id, &mut peer, vec![]);
    assert_eq!(
        link.take_events(),
        [Event::Data {
            id,
            data: Data::Text("hello, socket".into())
        }]
    );
}

#[test]
fn large_transfers_both_ways_arrive_whole_and_drain_at_zero() {
    let config = Config {
        send_buffer_limit: 64 << 20,
        ..Config::default()
    };
    let mut h = Harness::with_config(config);
    let (id, mut peer, mut link) = secure_open_as(&mut h, BinaryType::ArrayBuffer);
    link.chunk = 37_000; // reads that cut records anywhere
    let payload: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut falses = 0;
    for piece in payload.chunks(100_000) {
        if !h.core.tcp_send(id, piece).unwrap() {
            falses += 1;
        }
    }
    assert!(falses > 0);
    assert_eq!(buffered(&h, id), payload.len());
    let out = h.drain();
    link.run(&mut h, id, &mut peer, out);
    assert!(peer.plain == payload, "the peer got every byte, in order");
    assert_eq!(link.take_events(), [Event::Drain { id: id.into() }]);
    assert_eq!(link.buffered_at_drain, [0]);
    // And back, in arraybuffer-sized pieces the app reassembles.
    peer.send(&payload);
    link.run(&mut h, id, &mut peer, vec![]);
    let got = link.data();
    assert_eq!(got.len(), payload.len());
    assert!(got == payload, "we got every byte, in order");
}

#[test]
fn small_plaintext_has_a_buffer_of_its_own_and_large_plaintext_is_part_of_a_kept_block() {
    let mut h = Harness::new();
    let (id, mut peer, mut link) = secure_open_as(&mut h, BinaryType::ArrayBuffer);
    link.chunk = 64 << 10;
    let parts = |link: &mut Link| -> Vec<Bytes> {
        (link.take_events().into_iter())
            .map(|e| match e {
                Event::Data {
                    data: Data::Bytes(b),
                    ..
                } => b,
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    };
    peer.send(b"ping");
    link.run(&mut h, id, &mut peer, vec![]);
    let small = parts(&mut link);
    assert_eq!(small, [Bytes::from_static(b"ping")]);
    assert!(
        small[0].is_unique(),
        "its own allocation: keeping it keeps no block alive"
    );
    let large = vec![7u8; 100 << 10];
    peer.send(&large);
    link.run(&mut h, id, &mut peer, vec![]);
    let got = parts(&mut link);
    assert_eq!(got.concat(), large);
    assert!(
        got.iter().all(|b| b.len() <= 4 << 10 || !b.is_unique()),
        "large parts share the block the core keeps for the next receive"
    );
    assert!(got.iter().any(|b| b.len() > 4 << 10));
}

/// The lengths of the TLS records `data` is made of (whole records only).
fn records(data: &[u8]) -> Vec<usize> {
    let mut lens = Vec::new();
    let mut rest = data;
    while rest.len() >= 5 {
        let len = 5 + usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        assert!(len <= rest.len(), "whole records");
        lens.push(len);
        rest = &rest[len..];
    }
    assert!(rest.is_empty(), "whole records");
    lens
}

/// The only output of `out`: a write of ours.
fn only_write(id: TcpId, out: &[Output]) -> Bytes {
    match out {
        [Output::Action(Action::Write { id: w, data })] if *w == id => data.clone(),
        other => panic!("one write expected: {other:?}"),
    }
}

/// Where the next ciphertext to write starts, inside the socket.
fn wire_front(h: &Harness, id: TcpId) -> *const u8 {
    let tls = h.core.tcp(id).unwrap().tls.as_deref().unwrap();
    tls.wire.front().unwrap().0.as_ptr()
}

#[test]
fn send_then_close_in_one_turn_leave_in_one_write_with_the_close_notify() {
    let mut h = Harness::new();
    let (id, mut peer, _) = secure_open(&mut h);
    h.core.tcp_send(id, "x").unwrap();
    h.core.tcp_close(h.now, id).unwrap();
    let data = only_write(id, &h.drain());
    // The data record (1 byte, its type and a 16-byte tag) and the close_notify alert.
    assert_eq!(records(&data), [5 + 1 + 1 + 16, 5 + 2 + 1 + 16]);
    peer.feed(&data).unwrap();
    assert_eq!(peer.plain, b"x");
    assert!(peer.closed_notify, "close_notify is in the same write");
    assert_eq!(buffered(&h, id), 1, "until the OS took the record");
    let len = data.len();
    assert_eq!(
        h.input(Input::Written { id, len }),
        [shutdown(id), query(id)]
    );
    assert_eq!(buffered(&h, id), 0);
}

#[test]
fn a_joined_write_releases_each_records_plaintext_exactly_and_its_rest_is_not_copied_again() {
    let mut h = Harness::new();
    let (id, mut peer, _) = secure_open(&mut h);
    h.core.tcp_send(id, "abc").unwrap();
    h.core.tcp_close(h.now, id).unwrap();
    let data = only_write(id, &h.drain());
    let [first, notify] = records(&data)[..] else {
        panic!("two records");
    };
    // Part of the data record: its plaintext still counts, and the rest of the write goes out
    // entry by entry as the socket holds it (what the joined write copied is not copied again).
    let rest = only_write(id, &h.input(Input::Written { id, len: 5 }));
    assert_eq!(buffered(&h, id), 3);
    assert_eq!(rest.len(), first - 5, "the rest of the data record alone");
    assert_eq!(rest.as_ptr(), wire_front(&h, id), "not copied");
    let last = only_write(id, &h.input(Input::Written { id, len: first - 6 }));
    assert_eq!(
        buffered(&h, id),
        3,
        "one byte of its record is still unwritten"
    );
    assert_eq!(last.len(), 1);
    let alert = only_write(id, &h.input(Input::Written { id, len: 1 }));
    assert_eq!(
        buffered(&h, id),
        0,
        "its record is written, the alert is not"
    );
    assert_eq!(alert.len(), notify);
    assert_eq!(alert.as_ptr(), wire_front(&h, id), "not copied");
    assert_eq!(
        h.input(Input::Written { id, len: notify }),
        [shutdown(id), query(id)]
    );
    peer.feed(&data).unwrap();
    assert_eq!(peer.plain, b"abc");
    assert!(peer.closed_notify);
}

#[test]
fn large_records_go_out_as_encrypted_and_an_armed_drain_still_precedes_the_close_notify() {
    let mut h = Harness::new();
    let (id, mut peer, _) = secure_open(&mut h);
    let payload = Bytes::from(vec![7u8; 64 << 10]);
    assert_eq!(h.core.tcp_send(id, payload), Ok(true));
    assert_eq!(h.core.tcp_send(id, "!"), Ok(false));
    h.core.tcp_close(h.now, id).unwrap();
    let bulk = only_write(id, &h.drain());
    assert_eq!(records(&bulk), [5 + (16 << 10) + 17; 4]);
    assert_eq!(
        bulk.as_ptr(),
        wire_front(&h, id),
        "the records as encrypted: no copy"
    );
    let len = bulk.len();
    let last = only_write(id, &h.input(Input::Written { id, len }));
    assert_eq!(
        records(&last),
        [5 + 1 + 17],
        "the last record alone: Drain is armed"
    );
    let out = h.input(Input::Written {
        id,
        len: last.len(),
    });
    let [Output::Event(Event::Drain { .. }), notify] = &out[..] else {
        panic!("Drain, then the close_notify: {out:?}");
    };
    let notify = only_write(id, std::slice::from_ref(notify));
    let len = notify.len();
    assert_eq!(
        h.input(Input::Written { id, len }),
        [shutdown(id), query(id)]
    );
    for data in [&bulk, &last, &notify] {
        peer.feed(data).unwrap();
    }
    assert_eq!(peer.plain.len(), (64 << 10) + 1);
    assert!(peer.closed_notify);
}

#[test]
fn data_sent_on_open_leaves_with_the_clients_finished() {
    let mut h = Harness::new();
    let ca = Ca::new("test CA");
    let mut peer = Peer::server(server_config(ca.leaf(&["localhost"], 2035)));
    let (id, out) = connect(&mut h, "localhost", secure(ca.client_config()));
    let hello = only_write(id, &out[..1]);
    peer.feed(&hello).unwrap();
    assert_eq!(
        h.input(Input::Written {
            id,
            len: hello.len()
        }),
        []
    );
    let flight = Bytes::from(peer.take());
    h.core
        .handle_input(h.now, Input::Received { id, data: flight })
        .unwrap();
    assert_eq!(
        h.core.poll_output(),
        Output::Event(Event::Open { id: id.into() })
    );
    // The app answers Open at once: its record joins the Finished flight not yet handed out.
    h.core.tcp_send(id, "hello").unwrap();
    let data = only_write(id, &h.drain());
    peer.feed(&data).unwrap();
    assert!(!peer.conn.is_handshaking());
    assert_eq!(peer.plain, b"hello");
}
