//! The batched shapes ([BEHAVIOUR §3](crate::behaviour#3-udpsocket)): one `SendDatagrams` per
//! turn, `Sent` with a count, and `Datagrams` (a GRO buffer) cut into one `Message` per
//! datagram, exact under suspension and `close()`; bad counts and segment sizes are input
//! errors that change nothing.

use super::*;

fn run(id: UdpId, data: &[u8], segment_size: usize, from: &str) -> Input {
    Input::Datagrams {
        id,
        data: Bytes::copy_from_slice(data),
        segment_size,
        remote: addr(from),
    }
}

#[test]
fn a_run_is_one_message_per_segment_with_the_short_last_one() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    let out = h.input(run(id, b"aaabbbcc", 3, PEER));
    assert_eq!(
        out,
        [
            message(id, b"aaa", PEER),
            message(id, b"bbb", PEER),
            message(id, b"cc", PEER)
        ]
    );
    // Exactly one segment, and a run whose segment is larger than the buffer: one message.
    assert_eq!(
        h.input(run(id, b"xyz", 3, OTHER)),
        [message(id, b"xyz", OTHER)]
    );
    assert_eq!(
        h.input(run(id, b"q", 1500, PEER)),
        [message(id, b"q", PEER)]
    );
}

#[test]
fn the_messages_of_a_run_are_slices_of_its_buffer() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    let data = Bytes::from(vec![7u8; 64 * 64]);
    let start = data.as_ptr() as usize;
    h.core
        .handle_input(
            h.now,
            Input::Datagrams {
                id,
                data,
                segment_size: 64,
                remote: addr(PEER),
            },
        )
        .unwrap();
    let out = h.drain();
    assert_eq!(out.len(), 64);
    for (k, o) in out.iter().enumerate() {
        let Output::Event(Event::Message { data, .. }) = o else {
            panic!("{o:?}");
        };
        assert_eq!((data.len(), data.as_ptr() as usize), (64, start + 64 * k));
    }
}

#[test]
fn runs_and_single_datagrams_keep_the_order_they_were_read_in() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core
        .handle_input(h.now, run(id, b"1122", 2, PEER))
        .unwrap();
    let one = Input::Datagram {
        id,
        data: Bytes::from_static(b"3"),
        remote: addr(OTHER),
    };
    h.core.handle_input(h.now, one).unwrap();
    h.core
        .handle_input(h.now, run(id, b"4455", 2, PEER))
        .unwrap();
    assert_eq!(
        h.drain(),
        [
            message(id, b"11", PEER),
            message(id, b"22", PEER),
            message(id, b"3", OTHER),
            message(id, b"44", PEER),
            message(id, b"55", PEER)
        ]
    );
}

#[test]
fn suspend_in_the_middle_of_a_run_holds_the_rest_until_resume() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core
        .handle_input(h.now, run(id, b"aabbcc", 2, PEER))
        .unwrap();
    assert_eq!(h.core.poll_output(), message(id, b"aa", PEER));
    h.core.udp_suspend(id).unwrap();
    assert_eq!(h.drain(), [reading(id, false)], "nothing while suspended");
    h.core.udp_resume(id).unwrap();
    assert_eq!(
        h.drain(),
        [
            message(id, b"bb", PEER),
            message(id, b"cc", PEER),
            reading(id, true)
        ]
    );
}

#[test]
fn close_in_the_middle_of_a_run_drops_the_rest() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core
        .handle_input(h.now, run(id, b"aabbcc", 2, PEER))
        .unwrap();
    assert_eq!(h.core.poll_output(), message(id, b"aa", PEER));
    h.core.udp_close(h.now, id).unwrap();
    assert_eq!(
        h.drain(),
        [release(id), close(id)],
        "no Message after close()"
    );
}

#[test]
fn a_run_read_while_suspended_counts_against_the_held_bounds() {
    let mut h = Harness::with_config(Config {
        max_queued_datagrams: 4,
        ..Config::default()
    });
    let id = open_socket(&mut h);
    h.core.udp_suspend(id).unwrap();
    h.drain();
    // Three datagrams fit; a run of two more would pass the bound of four.
    h.core
        .handle_input(h.now, run(id, b"aabbc", 2, PEER))
        .unwrap();
    assert_eq!(
        h.bad_input(run(id, b"ddee", 2, PEER)),
        InputError::Unexpected("the I/O layer kept reading a suspended socket")
    );
    h.core.handle_input(h.now, run(id, b"d", 2, PEER)).unwrap();
    h.core.udp_resume(id).unwrap();
    let messages = h
        .drain()
        .into_iter()
        .filter(|o| matches!(o, Output::Event(Event::Message { .. })))
        .count();
    assert_eq!(messages, 4);
}

#[test]
fn a_zero_segment_size_or_an_empty_run_changes_nothing() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    assert_eq!(
        h.bad_input(run(id, b"abc", 0, PEER)),
        InputError::Unexpected("coalesced datagrams of segment size 0")
    );
    assert_eq!(
        h.bad_input(run(id, b"", 3, PEER)),
        InputError::Unexpected("coalesced datagrams of no byte")
    );
    let o = opening(&mut h, UdpOptions::default());
    assert!(matches!(
        h.bad_input(run(o, b"abc", 1, PEER)),
        InputError::Unexpected(_)
    ));
    let d = dead(&mut h);
    assert_eq!(h.bad_input(run(d, b"abc", 1, PEER)), InputError::UnknownId);
}

#[test]
fn a_count_of_zero_or_above_what_is_in_flight_changes_nothing() {
    let mut h = Harness::with_config(config(4));
    let id = open_socket(&mut h);
    for d in ["ab", "cd", "ef"] {
        h.core.udp_send(id, d, None).unwrap();
    }
    assert_eq!(h.drain().len(), 1);
    assert_eq!(
        h.bad_input(Input::Sent { id, count: 0 }),
        InputError::Unexpected("a Sent of no datagram")
    );
    assert_eq!(
        h.bad_input(Input::Sent { id, count: 4 }),
        InputError::Unexpected("a Sent of more datagrams than are in flight")
    );
    assert_eq!(buffered(&h, id), 6, "unchanged");
    assert_eq!(h.input(Input::Sent { id, count: 3 }), [drain(id)]);
    assert_eq!(buffered(&h, id), 0);
}

#[test]
fn sends_of_one_turn_are_one_action_and_a_send_after_it_is_the_next() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core.udp_send(id, "a", None).unwrap();
    h.core.udp_send(id, "b", Some(addr(OTHER))).unwrap();
    assert_eq!(h.drain(), [send_all(id, &[(b"a", PEER), (b"b", OTHER)])]);
    h.core.udp_send(id, "c", None).unwrap();
    assert_eq!(
        h.drain(),
        [send_to(id, b"c", PEER)],
        "in flight or not, a new turn"
    );
    assert_eq!(buffered(&h, id), 3);
    assert_eq!(h.input(Input::Sent { id, count: 2 }), []);
    assert_eq!(buffered(&h, id), 1);
}

#[test]
fn bufferedamount_and_drain_are_exact_when_answers_mix_counts_and_failures() {
    let mut h = Harness::with_config(config(2));
    let id = open_socket(&mut h);
    for d in ["a", "bb", "ccc", "dddd"] {
        h.core.udp_send(id, d, None).unwrap();
    }
    assert_eq!(h.drain().len(), 1);
    assert_eq!(h.input(Input::Sent { id, count: 1 }), []);
    assert_eq!(buffered(&h, id), 9);
    let out = h.input(Input::SendFailed {
        id,
        error: std::io::ErrorKind::Other,
    });
    assert!(
        matches!(out[..], [Output::Event(Event::Error { .. })]),
        "{out:?}"
    );
    assert_eq!(
        buffered(&h, id),
        7,
        "the refused one of 2 bytes left the queue"
    );
    assert_eq!(h.input(Input::Sent { id, count: 1 }), []);
    assert_eq!(buffered(&h, id), 4);
    assert_eq!(h.input(Input::Sent { id, count: 1 }), [drain(id)]);
}

#[test]
fn the_limit_in_flight_cuts_a_turn_into_actions_as_answers_come() {
    let mut h = Harness::with_config(Config {
        max_datagrams_in_flight: 3,
        ..Config::default()
    });
    let id = open_socket(&mut h);
    for d in ["1", "2", "3", "4", "5"] {
        h.core.udp_send(id, d, None).unwrap();
    }
    h.core.udp_close(h.now, id).unwrap();
    assert_eq!(
        h.drain(),
        [
            send_all(id, &[(b"1", PEER), (b"2", PEER), (b"3", PEER)]),
            reading(id, false)
        ]
    );
    assert_eq!(
        h.input(Input::Sent { id, count: 2 }),
        [send_all(id, &[(b"4", PEER), (b"5", PEER)])],
        "close() still sends what is queued"
    );
    assert_eq!(
        h.input(Input::Sent { id, count: 3 }),
        [release(id), close(id)]
    );
}
