//! The output queue's own rules ([BEHAVIOUR §0](crate::behaviour#0-everywhere)): what a socket ended by the delivery of its
//! peer's FIN had queued behind that FIN is never emitted, in every order, and nothing else is
//! lost or reordered. The harness's I/O layer cannot tell what the peer acknowledged, so a
//! FIN's delivery ends a socket whose own FIN goes out with it ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket) close).

use bytes::Bytes;

use crate::testkit::*;
use crate::*;

const LOCAL: &str = "127.0.0.1:40000";

/// An `open` socket, its opening outputs drained.
fn open_socket(h: &mut Harness) -> TcpId {
    let id = h
        .core
        .tcp_open(h.now, "127.0.0.1", 80, TcpOptions::default())
        .unwrap();
    assert!(matches!(
        h.drain()[..],
        [Output::Action(Action::Connect { .. })]
    ));
    let local = addr(LOCAL);
    let out = h.input(Input::Connected {
        id,
        attempt: 0,
        local,
    });
    assert_eq!(out, [open(id), reading(id, true)]);
    id
}

/// A core whose every send of two bytes or more returns `false` (so a `Drain` is armed), and
/// whose I/O layer has said once that it cannot tell what the peer acknowledged.
fn harness() -> Harness {
    let mut h = Harness::with_config(Config {
        high_water_mark: 1,
        ..Config::default()
    });
    let id = open_socket(&mut h);
    h.core.tcp_close(h.now, id).unwrap();
    assert_eq!(h.drain(), [shutdown(id), query(id)]);
    let unknowable = Input::Unacked { id, bytes: None };
    assert_eq!(h.input(unknowable), []);
    assert_eq!(h.input(Input::Eof { id }), [release(id), close(id)]);
    h
}

/// Sends two bytes on each socket (arming `Drain`) and polls their writes.
fn writing(h: &mut Harness, ids: &[TcpId]) {
    for &id in ids {
        assert_eq!(h.core.tcp_send(id, "xy"), Ok(false));
    }
    let writes: Vec<Output> = ids.iter().map(|&id| write(id, b"xy")).collect();
    assert_eq!(h.drain(), writes);
}

/// Without polling, on a socket whose write of two bytes is in flight: the peer's FIN is read,
/// then the OS takes the write, so that a `Drain` sits behind the FIN, whose delivery ends the
/// socket.
fn fin_then_stale_entries(h: &mut Harness, id: TcpId) {
    h.core.handle_input(h.now, Input::Eof { id }).unwrap();
    let written = Input::Written { id, len: 2 };
    h.core.handle_input(h.now, written).unwrap();
}

/// The last outputs of a socket ended by the delivery of its peer's FIN.
fn ended(id: TcpId) -> [Output; 3] {
    [shutdown(id), release(id), close(id)]
}

#[test]
fn entries_queued_behind_the_fins_of_sockets_ending_together_are_never_emitted() {
    let mut h = harness();
    let (a, b, other) = (
        open_socket(&mut h),
        open_socket(&mut h),
        open_socket(&mut h),
    );
    writing(&mut h, &[a, b]);
    // FINs first, then everything the two sockets and another one queue behind them.
    for id in [a, b] {
        h.core.handle_input(h.now, Input::Eof { id }).unwrap();
    }
    assert_eq!(h.core.tcp_send(other, "1"), Ok(true));
    for id in [a, b] {
        h.core
            .handle_input(h.now, Input::Written { id, len: 2 })
            .unwrap();
    }
    let mut expected = Vec::new();
    expected.extend(ended(a));
    expected.extend(ended(b));
    expected.push(write(other, b"1"));
    assert_eq!(h.drain(), expected);
    assert_eq!(h.core.voided().0, 0, "forgotten once the queue is empty");
    // The other socket lives on, and nothing of the dead ones answers.
    assert_eq!(h.input(Input::Written { id: other, len: 1 }), []);
    assert_eq!(h.core.tcp_send(other, "2"), Ok(true));
    assert_eq!(h.drain(), [write(other, b"2")]);
    for id in [a, b] {
        assert!(h.core.tcp(id).is_none());
        assert_eq!(
            h.core.tcp_send(id, "z").unwrap_err().exception(),
            DomException::InvalidStateError
        );
    }
}

#[test]
fn a_socket_reusing_the_slot_of_a_voided_one_keeps_all_its_outputs() {
    let mut h = harness();
    let old = open_socket(&mut h);
    writing(&mut h, &[old]);
    fin_then_stale_entries(&mut h, old);
    // Poll up to the old socket's Close: its slot is free, its void entries still queued.
    for expected in ended(old) {
        assert_eq!(h.core.poll_output(), expected);
    }
    assert_eq!(h.core.voided(), (1, 1), "the drain waits at the front");
    let new = h
        .core
        .tcp_open(h.now, "127.0.0.1", 80, TcpOptions::default())
        .unwrap();
    assert_eq!(new.index, old.index, "the slot is reused");
    assert_ne!(new, old);
    // Behind the void entries: the new socket's connect, then its whole life, emitted while the
    // old serial is still remembered.
    let Output::Action(Action::Connect { id, attempt: 0, .. }) = h.core.poll_output() else {
        panic!("the new socket's Connect is emitted");
    };
    assert_eq!(id, new);
    let local = addr(LOCAL);
    let connected = Input::Connected {
        id: new,
        attempt: 0,
        local,
    };
    h.core.handle_input(h.now, connected).unwrap();
    assert_eq!(h.core.tcp_send(new, "ab"), Ok(false));
    let data = Bytes::from_static(b"hi");
    let received = Input::Received { id: new, data };
    h.core.handle_input(h.now, received).unwrap();
    h.core.handle_input(h.now, Input::Eof { id: new }).unwrap();
    for expected in [open(new), reading(new, false), write(new, b"ab")] {
        assert_eq!(h.core.poll_output(), expected);
    }
    // Written while the delivery of "hi" and of the FIN wait: its Drain is queued behind them.
    h.core
        .handle_input(h.now, Input::Written { id: new, len: 2 })
        .unwrap();
    assert_eq!(
        h.drain(),
        [
            text(new, "hi"),
            // Its own Drain sat behind its FIN: void too.
            shutdown(new),
            release(new),
            close(new),
        ]
    );
}

/// Sockets ending one after another, each with void entries behind its FIN and another
/// socket's write behind those: the transcript is exact, and the remembered serials never
/// outnumber the entries queued when one was added, nor outlive the queue's emptying.
#[test]
fn remembered_serials_stay_bounded_by_the_queue_and_the_transcript_is_exact() {
    let mut h = harness();
    const N: usize = 40;
    let ending: Vec<TcpId> = (0..N).map(|_| open_socket(&mut h)).collect();
    let others: Vec<TcpId> = (0..N).map(|_| open_socket(&mut h)).collect();
    writing(&mut h, &ending);
    let mut expected = Vec::new();
    for (&id, &other) in ending.iter().zip(&others) {
        fin_then_stale_entries(&mut h, id);
        assert_eq!(h.core.tcp_send(other, "k"), Ok(true));
        expected.extend(ended(id));
        expected.push(write(other, b"k"));
    }
    let mut out = Vec::new();
    let (mut most_remembered, mut compacted) = (0, false);
    loop {
        let (before, _) = h.core.voided();
        let output = h.core.poll_output();
        let (remembered, queued) = h.core.voided();
        if remembered > before {
            // The call also took the first output of the delivery that added the serial.
            assert!(
                remembered <= queued + 1,
                "{remembered} serials for {queued} entries"
            );
        }
        compacted |= remembered < before;
        most_remembered = most_remembered.max(remembered);
        if let Output::Timeout(_) = output {
            break;
        }
        out.push(output);
    }
    assert_eq!(out, expected);
    assert!(
        compacted,
        "the serials were forgotten in one pass before the queue emptied"
    );
    assert!(most_remembered < N);
    assert_eq!(h.core.voided(), (0, 0));
}

/// A socket ended by its FIN with nothing queued behind it leaves nothing to remember.
#[test]
fn a_fin_with_nothing_behind_it_remembers_nothing() {
    let mut h = harness();
    let id = open_socket(&mut h);
    h.core.handle_input(h.now, Input::Eof { id }).unwrap();
    assert_eq!(h.core.poll_output(), shutdown(id));
    assert_eq!(h.core.voided(), (0, 2));
    assert_eq!(h.drain(), [release(id), close(id)]);
}

/// What the I/O layer reports of a socket before it polled that socket's `Release` (the rest
/// of one turn's reads after the first failed the socket) is a race, not a driver bug: it is
/// ignored. Once the `Release` was polled, it is an unknown id.
#[test]
fn reports_before_the_release_is_polled_are_ignored_and_after_it_refused() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    let reset = std::io::ErrorKind::ConnectionReset;
    let failed = Input::Failed { id, error: reset };
    h.core.handle_input(h.now, failed).unwrap();
    let late = || Input::Received {
        id,
        data: Bytes::from_static(b"late"),
    };
    assert_eq!(h.core.handle_input(h.now, late()), Ok(()));
    assert_eq!(h.core.handle_input(h.now, Input::Eof { id }), Ok(()));
    assert_eq!(h.core.poll_output(), release(id));
    assert_eq!(
        h.core.handle_input(h.now, late()),
        Err(InputError::UnknownId)
    );
    assert_eq!(h.drain(), [io_error(id, reset), close(id)]);
    assert_eq!(
        h.core.handle_input(h.now, late()),
        Err(InputError::UnknownId)
    );
}

#[test]
fn what_crosses_the_boundary_moves_in_few_bytes() {
    // Every event and action is moved several times between the core and the app (issue 19):
    // the rare large ones (`Connect`, the settings of `Listen` and `Bind`) are boxed, so that
    // an output costs no more than a `Message` (its id, payload and source) and a tag, and an
    // input no more than a GRO read (`Datagrams`).
    use std::mem::size_of;
    let (output, event, action, input) = (
        size_of::<Output>(),
        size_of::<Event>(),
        size_of::<Action>(),
        size_of::<Input>(),
    );
    assert!(event <= 80, "Event: {event} bytes");
    assert!(action <= 88, "Action: {action} bytes");
    assert!(output <= 88, "Output: {output} bytes");
    assert!(input <= 88, "Input: {input} bytes");
}
