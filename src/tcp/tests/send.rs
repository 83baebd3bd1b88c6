//! `send`: the high-water mark, the hard cap, writes in flight, buffer pooling, `drain`; and how
//! received data is delivered ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket)).

use super::*;

#[test]
fn send_is_invalid_state_unless_open() {
    let mut h = Harness::new();
    let c = connecting(&mut h, TcpOptions::default());
    refused(h.core.tcp_send(c, "x"), DomException::InvalidStateError);
    let hc = halfclosed(&mut h);
    refused(h.core.tcp_send(hc, "x"), DomException::InvalidStateError);
    let cl = closing(&mut h);
    refused(h.core.tcp_send(cl, "x"), DomException::InvalidStateError);
    let d = dead(&mut h);
    refused(h.core.tcp_send(d, "x"), DomException::InvalidStateError);
    assert_eq!(h.drain(), []);
    assert_eq!(buffered(&h, c), 0);
    assert_eq!(buffered(&h, cl), 3);
}

#[test]
fn send_returns_true_up_to_exactly_the_high_water_mark() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    assert_eq!(h.core.tcp_send(id, vec![0u8; 65_536]), Ok(true));
    assert_eq!(buffered(&h, id), 65_536);
    assert_eq!(h.core.tcp_send(id, vec![0u8; 3]), Ok(false));
    assert_eq!(buffered(&h, id), 65_539);
    assert_eq!(h.drain().len(), 1, "one write in flight");
    // The 65 539-byte send of Mozilla's test returns false too.
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    assert_eq!(h.core.tcp_send(id, vec![0u8; 65_539]), Ok(false));
}

#[test]
fn text_counts_its_utf8_length() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core.tcp_send(id, "é€😀").unwrap();
    assert_eq!(buffered(&h, id), 2 + 3 + 4);
    assert_eq!(h.drain(), [write(id, "é€😀".as_bytes())]);
}

#[test]
fn the_hard_cap_is_quota_exceeded_and_queues_nothing() {
    let config = Config {
        send_buffer_limit: 100,
        high_water_mark: 10,
        ..Config::default()
    };
    let mut h = Harness::with_config(config);
    let id = open_socket(&mut h);
    h.core.tcp_send(id, vec![1u8; 60]).unwrap();
    h.drain();
    refused(
        h.core.tcp_send(id, vec![1u8; 41]),
        DomException::QuotaExceededError,
    );
    assert_eq!(buffered(&h, id), 60);
    assert_eq!(state(&h, id), ReadyState::Open);
    assert_eq!(h.drain(), []);
    assert_eq!(h.core.tcp_send(id, vec![1u8; 40]), Ok(false));
}

#[test]
fn one_write_in_flight_partial_writes_and_one_drain() {
    let config = Config {
        high_water_mark: 4,
        ..Config::default()
    };
    let mut h = Harness::with_config(config);
    let id = open_socket(&mut h);
    assert_eq!(h.core.tcp_send(id, "abc"), Ok(true));
    assert_eq!(h.drain(), [write(id, b"abc")]);
    // Sent while a write is in flight: it waits, and never joins the write handed out.
    assert_eq!(h.core.tcp_send(id, "def"), Ok(false));
    assert_eq!(h.drain(), []);
    assert_eq!(h.input(Input::Written { id, len: 2 }), [write(id, b"c")]);
    assert_eq!(buffered(&h, id), 4);
    assert_eq!(h.input(Input::Written { id, len: 1 }), [write(id, b"def")]);
    assert_eq!(h.input(Input::Written { id, len: 3 }), [drain(id)]);
    assert_eq!(buffered(&h, id), 0);
    // Below the mark: no drain.
    h.core.tcp_send(id, "xy").unwrap();
    assert_eq!(h.drain(), [write(id, b"xy")]);
    assert_eq!(h.input(Input::Written { id, len: 2 }), []);
}

#[test]
fn sends_of_one_turn_leave_in_one_write_handed_out_when_polled() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core.tcp_send(id, "GET / ").unwrap();
    h.core.tcp_send(id, "HTTP/1.1\r\n").unwrap();
    h.core.tcp_close(h.now, id).unwrap();
    // The write is handed out where the first send queued it, with both sends' bytes; FIN
    // waits for it.
    assert_eq!(h.drain(), [write(id, b"GET / HTTP/1.1\r\n")]);
    assert_eq!(
        h.input(Input::Written { id, len: 16 }),
        [shutdown(id), query(id)]
    );
}

#[test]
fn a_socket_that_went_idle_again_holds_no_buffer() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    let holds = |h: &Harness| {
        let s = h.core.tcp(id).unwrap();
        (s.inbox.is_some(), s.queue.bookkeeping_capacity())
    };
    assert_eq!(holds(&h), (false, 0));
    h.core.tcp_send(id, "ping").unwrap();
    assert_eq!(h.drain(), [write(id, b"ping")]);
    h.core.tcp_send(id, "more").unwrap();
    assert_eq!(h.drain(), []);
    assert!(holds(&h).1 > 0);
    assert_eq!(h.input(Input::Written { id, len: 4 }), [write(id, b"more")]);
    assert_eq!(h.input(Input::Written { id, len: 4 }), []);
    let data = Bytes::from_static(b"pong");
    assert_eq!(h.input(Input::Received { id, data }), [text(id, "pong")]);
    assert_eq!(holds(&h), (false, 0));
}

#[test]
fn emptied_buffers_are_pooled_unless_they_grew_large() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core.tcp_send(id, "ping").unwrap();
    assert_eq!(h.drain(), [write(id, b"ping")]);
    assert_eq!(h.input(Input::Written { id, len: 4 }), []);
    let data = Bytes::from_static(b"pong");
    assert_eq!(h.input(Input::Received { id, data }), [text(id, "pong")]);
    assert_eq!(h.core.spares(), (1, 1));
    // A burst held while suspended grows the inbox: once drained it is freed, not kept.
    h.core.tcp_suspend(id).unwrap();
    h.drain();
    for _ in 0..100 {
        let data = Bytes::from_static(b"x");
        assert_eq!(h.input(Input::Received { id, data }), []);
    }
    assert_eq!(h.core.spares(), (0, 1), "the pooled inbox was taken");
    h.core.tcp_resume(id).unwrap();
    let delivered = h.drain().iter().filter(|o| **o == text(id, "x")).count();
    assert_eq!(delivered, 100);
    assert_eq!(h.core.spares(), (0, 1));
    assert!(h.core.tcp(id).unwrap().inbox.is_none());
}

#[test]
fn drain_fires_once_per_arming_even_after_several_false_sends() {
    let config = Config {
        high_water_mark: 1,
        ..Config::default()
    };
    let mut h = Harness::with_config(config);
    let id = open_socket(&mut h);
    assert_eq!(h.core.tcp_send(id, "ab"), Ok(false));
    assert_eq!(h.core.tcp_send(id, "cd"), Ok(false));
    h.drain();
    assert_eq!(h.input(Input::Written { id, len: 2 }), [write(id, b"cd")]);
    assert_eq!(h.input(Input::Written { id, len: 2 }), [drain(id)]);
}

#[test]
fn sending_nothing_queues_nothing() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    assert_eq!(h.core.tcp_send(id, ""), Ok(true));
    assert_eq!(h.drain(), []);
}

// ---- received data ------------------------------------------------------------------------

#[test]
fn text_is_decoded_across_reads_and_arraybuffer_is_bytes() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    let euro = "€".as_bytes();
    assert_eq!(
        h.input(Input::Received {
            id,
            data: Bytes::copy_from_slice(&euro[..1])
        }),
        []
    );
    let mut rest = euro[1..].to_vec();
    rest.extend_from_slice(b"\xffa\0");
    assert_eq!(
        h.input(Input::Received {
            id,
            data: rest.into()
        }),
        [text(id, "€\u{fffd}a\0")]
    );
    // A character cut by the end of the stream is one U+FFFD before the close.
    h.input(Input::Received {
        id,
        data: Bytes::from_static(b"\xe2\x82"),
    });
    let out = h.input(Input::Eof { id });
    assert_eq!(out[0], text(id, "\u{fffd}"));

    let mut h = Harness::new();
    let id = established(
        &mut h,
        TcpOptions {
            binary_type: BinaryType::ArrayBuffer,
            ..TcpOptions::default()
        },
    );
    assert_eq!(
        h.core.tcp(id).unwrap().binary_type(),
        BinaryType::ArrayBuffer
    );
    let out = h.input(Input::Received {
        id,
        data: Bytes::from_static(b"\xe2\x82"),
    });
    assert_eq!(out, [bytes(id, b"\xe2\x82")]);
}
