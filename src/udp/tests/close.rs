//! `close`: queued datagrams still sent, held ones dropped, the close timeout ([BEHAVIOUR §3](crate::behaviour#3-udpsocket)).

use super::*;

#[test]
fn close_still_sends_the_queued_datagrams_then_drain_then_close() {
    let mut h = Harness::with_config(config(4));
    let id = open_socket(&mut h);
    h.core.udp_send(id, "abc", None).unwrap();
    assert_eq!(h.core.udp_send(id, "def", Some(addr(OTHER))), Ok(false));
    assert_eq!(h.drain().len(), 1);
    h.core.udp_close(h.now, id).unwrap();
    assert_eq!(state(&h, id), ReadyState::Closing);
    assert_eq!(h.drain(), [reading(id, false)]);
    assert_eq!(h.deadline(), Some(h.now + Config::default().close_timeout));
    // A datagram read before the I/O layer stopped: no Message after close().
    let late = datagram(id, b"late", PEER);
    assert_eq!(h.input(late), []);
    assert_eq!(h.input(Input::Sent { id, count: 1 }), []);
    assert_eq!((state(&h, id), buffered(&h, id)), (ReadyState::Closing, 3));
    assert_eq!(
        h.input(Input::Sent { id, count: 1 }),
        [drain(id), release(id), close(id)]
    );
    assert!(h.core.udp(id).is_none());
    assert_eq!(h.deadline(), None);
}

#[test]
fn close_with_nothing_queued_closes_at_once() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core.udp_close(h.now, id).unwrap();
    assert_eq!(state(&h, id), ReadyState::Closed);
    assert_eq!(h.drain(), [release(id), close(id)]);
    assert_eq!(h.deadline(), None);
}

#[test]
fn close_while_opening_abandons_the_bind_without_error() {
    let mut h = Harness::new();
    let id = opening(&mut h, UdpOptions::default());
    h.core.udp_join_multicast_group(id, ip(GROUP)).unwrap();
    h.core.udp_close(h.now, id).unwrap();
    assert_eq!(state(&h, id), ReadyState::Closed);
    assert_eq!(h.drain(), [release(id), close(id)], "no join, no error");
    assert_eq!(
        h.bad_input(Input::Bound {
            id,
            local: addr(LOCAL)
        }),
        InputError::UnknownId
    );
}

#[test]
fn held_datagrams_are_dropped_by_close() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core.udp_suspend(id).unwrap();
    h.core.udp_send(id, "out", None).unwrap();
    assert_eq!(h.drain(), [reading(id, false), send_to(id, b"out", PEER)]);
    h.input(datagram(id, b"held", PEER));
    h.core.udp_close(h.now, id).unwrap();
    h.core.udp_resume(id).unwrap();
    assert_eq!(state(&h, id), ReadyState::Closing);
    assert_eq!(h.drain(), [], "no Message after close()");
    assert_eq!(
        h.input(Input::Sent { id, count: 1 }),
        [release(id), close(id)]
    );
}

#[test]
fn close_still_sends_a_queued_empty_datagram() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core.udp_send(id, "a", None).unwrap();
    h.core.udp_send(id, b"", None).unwrap();
    h.core.udp_close(h.now, id).unwrap();
    assert_eq!(
        h.drain(),
        [
            send_all(id, &[(b"a", PEER), (b"", PEER)]),
            reading(id, false)
        ]
    );
    assert_eq!(h.input(Input::Sent { id, count: 1 }), []);
    assert_eq!(state(&h, id), ReadyState::Closing);
    assert_eq!(
        h.input(Input::Sent { id, count: 1 }),
        [release(id), close(id)]
    );
}

#[test]
fn datagrams_the_os_does_not_take_in_time_end_in_a_timeout() {
    let mut h = Harness::new();
    let id = closing(&mut h);
    let timeout = Config::default().close_timeout;
    assert_eq!(h.advance(timeout - Duration::from_millis(1)), []);
    assert_eq!(
        h.advance(Duration::from_millis(1)),
        [
            release(id),
            error(
                id,
                ErrorCode::NetworkTimeout,
                "the queued datagrams were not sent within the close timeout"
            ),
            close(id)
        ]
    );
    assert_eq!(h.deadline(), None);
}

#[test]
fn a_closing_socket_that_finishes_leaves_no_live_timer() {
    let mut h = Harness::new();
    for _ in 0..50 {
        let id = closing(&mut h);
        assert_eq!(
            h.input(Input::Sent { id, count: 1 }),
            [release(id), close(id)]
        );
    }
    assert_eq!(h.deadline(), None);
    assert_eq!(h.core.timer_entries(), 0, "stale entries were dropped");
    assert_eq!(h.advance(Duration::from_secs(3600)), []);
}
