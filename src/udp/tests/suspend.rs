//! `suspend`/`resume`: counted, held datagrams, bounds; and messages already read when the app
//! calls ([BEHAVIOUR §3](crate::behaviour#3-udpsocket)).

use super::*;

#[test]
fn suspend_is_counted_and_stops_reading() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core.udp_suspend(id).unwrap();
    h.core.udp_suspend(id).unwrap();
    assert_eq!(h.drain(), [reading(id, false)]);
    assert_eq!(h.core.udp(id).unwrap().suspend_count(), 2);
    h.core.udp_resume(id).unwrap();
    assert_eq!(h.drain(), []);
    h.core.udp_resume(id).unwrap();
    assert_eq!(h.drain(), [reading(id, true)]);
    refused(h.core.udp_resume(id), DomException::InvalidStateError);
    assert_eq!(h.drain(), []);
}

#[test]
fn a_suspend_before_open_applies_from_the_start() {
    let mut h = Harness::new();
    let id = opening(&mut h, UdpOptions::default());
    h.core.udp_suspend(id).unwrap();
    assert_eq!(h.drain(), []);
    assert_eq!(
        h.input(Input::Bound {
            id,
            local: addr(LOCAL)
        }),
        [open(id)]
    );
    h.core.udp_resume(id).unwrap();
    assert_eq!(h.drain(), [reading(id, true)]);
}

#[test]
fn datagrams_read_while_suspended_are_held_in_order_until_resume() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core.udp_suspend(id).unwrap();
    h.drain();
    for (data, from) in [(&b"first"[..], PEER), (b"second", OTHER)] {
        let held = datagram(id, data, from);
        assert_eq!(h.input(held), []);
    }
    h.core.udp_resume(id).unwrap();
    assert_eq!(
        h.drain(),
        [
            message(id, b"first", PEER),
            message(id, b"second", OTHER),
            reading(id, true)
        ]
    );
}

#[test]
fn holding_is_bounded_in_bytes_and_in_datagrams() {
    let mut h = Harness::with_config(Config {
        max_held_bytes: 4,
        max_queued_datagrams: 2,
        ..Config::default()
    });
    let id = open_socket(&mut h);
    h.core.udp_suspend(id).unwrap();
    h.drain();
    assert!(matches!(
        h.bad_input(datagram(id, b"abcde", PEER)),
        InputError::Unexpected(_)
    ));
    h.input(datagram(id, b"abc", PEER));
    assert!(matches!(
        h.bad_input(datagram(id, b"de", PEER)),
        InputError::Unexpected(_)
    ));
    h.input(datagram(id, b"", PEER));
    assert!(matches!(
        h.bad_input(datagram(id, b"", PEER)),
        InputError::Unexpected(_)
    ));
    h.core.udp_resume(id).unwrap();
    assert_eq!(
        h.drain(),
        [
            message(id, b"abc", PEER),
            message(id, b"", PEER),
            reading(id, true)
        ]
    );
}

#[test]
fn sending_and_drain_continue_while_suspended() {
    let mut h = Harness::with_config(config(1));
    let id = open_socket(&mut h);
    h.core.udp_suspend(id).unwrap();
    h.drain();
    assert_eq!(h.core.udp_send(id, "ab", None), Ok(false));
    assert_eq!(h.drain(), [send_to(id, b"ab", PEER)]);
    assert_eq!(h.input(Input::Sent { id, count: 1 }), [drain(id)]);
}

// ---- messages already read when the app calls ----------------------------------------------

/// Two datagrams read; the app takes the first Message, then calls `call`.
fn two_datagrams_then(call: impl FnOnce(&mut Harness, UdpId)) -> (Harness, UdpId, Vec<Output>) {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core
        .handle_input(h.now, datagram(id, b"one", "127.0.0.1:9"))
        .unwrap();
    h.core
        .handle_input(h.now, datagram(id, b"two", "127.0.0.1:9"))
        .unwrap();
    assert_eq!(h.core.poll_output(), message(id, b"one", "127.0.0.1:9"));
    call(&mut h, id);
    let rest = h.drain();
    (h, id, rest)
}

#[test]
fn no_message_after_suspend_even_if_it_was_already_read() {
    let (mut h, id, rest) = two_datagrams_then(|h, id| h.core.udp_suspend(id).unwrap());
    assert_eq!(rest, [reading(id, false)]);
    h.core.udp_resume(id).unwrap();
    assert_eq!(
        h.drain(),
        [message(id, b"two", "127.0.0.1:9"), reading(id, true)]
    );
}

#[test]
fn no_message_after_close_even_if_it_was_already_read() {
    let (_h, id, rest) = two_datagrams_then(|h, id| h.core.udp_close(h.now, id).unwrap());
    assert_eq!(rest, [release(id), close(id)]);
}
