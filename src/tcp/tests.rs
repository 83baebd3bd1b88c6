//! One fixture per state, one test per state × stimulus, each asserting the whole transcript
//! ([BEHAVIOUR §0](crate::behaviour#0-everywhere), [§1](crate::behaviour#1-tcpsocket), [§4](crate::behaviour#4-errors), [§5](crate::behaviour#5-trust)).

use std::io::ErrorKind::{ConnectionRefused, ConnectionReset, HostUnreachable, TimedOut};
use std::time::Duration;

use bytes::Bytes;

use crate::testkit::*;
use crate::*;

const LOCAL: &str = "127.0.0.1:40000";

fn connect(id: TcpId, attempt: u8, remote: &str) -> Output {
    Output::Action(Action::Connect {
        id,
        attempt,
        remote: addr(remote),
        local: None,
        no_delay: true,
        keep_alive: None,
        settings: SocketSettings::default(),
    })
}

fn abort(id: TcpId, attempt: u8) -> Output {
    Output::Action(Action::AbortConnect { id, attempt })
}

fn state(h: &Harness, id: TcpId) -> ReadyState {
    h.core.tcp(id).expect("live socket").ready_state()
}

fn buffered(h: &Harness, id: TcpId) -> usize {
    h.core.tcp(id).expect("live socket").buffered_amount()
}

// ---- fixtures: one per readyState ---------------------------------------------------------

/// `connecting` to 127.0.0.1:80, attempt 0 in flight.
fn connecting(h: &mut Harness, options: TcpOptions) -> TcpId {
    let id = h.core.tcp_open(h.now, "127.0.0.1", 80, options).unwrap();
    let out = h.drain();
    assert!(
        matches!(
            out[..],
            [Output::Action(Action::Connect { attempt: 0, .. })]
        ),
        "{out:?}"
    );
    assert_eq!(state(h, id), ReadyState::Connecting);
    id
}

fn established(h: &mut Harness, options: TcpOptions) -> TcpId {
    let id = connecting(h, options);
    let out = h.input(Input::Connected {
        id,
        attempt: 0,
        local: addr(LOCAL),
    });
    assert_eq!(out, [open(id), reading(id, true)]);
    id
}

/// `open`, binaryType string.
fn open_socket(h: &mut Harness) -> TcpId {
    established(h, TcpOptions::default())
}

/// `halfclosed`: FIN sent.
fn halfclosed(h: &mut Harness) -> TcpId {
    let id = open_socket(h);
    h.core.tcp_halfclose(h.now, id).unwrap();
    assert_eq!(h.drain(), [shutdown(id)]);
    assert_eq!(state(h, id), ReadyState::HalfClosed);
    id
}

/// `closing` with "abc" in flight (not yet written).
fn closing(h: &mut Harness) -> TcpId {
    let id = open_socket(h);
    h.core.tcp_send(id, "abc").unwrap();
    assert_eq!(h.drain(), [write(id, b"abc")]);
    h.core.tcp_close(h.now, id).unwrap();
    assert_eq!(h.drain(), []);
    assert_eq!(state(h, id), ReadyState::Closing);
    id
}

/// `closed` by a reset, `Close` delivered: the id is dead.
fn dead(h: &mut Harness) -> TcpId {
    let id = open_socket(h);
    let out = h.input(Input::Failed {
        id,
        error: ConnectionReset,
    });
    assert_eq!(out, [release(id), io_error(id, ConnectionReset), close(id)]);
    assert!(h.core.tcp(id).is_none());
    id
}

// ---- open ---------------------------------------------------------------------------------

#[test]
fn open_refuses_bad_hosts_and_port_zero_and_creates_nothing() {
    let mut h = Harness::new();
    let o = TcpOptions::default;
    for host in ["", "bad host", "a..b", &"a".repeat(254), "[::1"] {
        refused(
            h.core.tcp_open(h.now, host, 80, o()),
            DomException::InvalidAccessError,
        );
    }
    refused(
        h.core.tcp_open(h.now, "example.org", 0, o()),
        DomException::InvalidAccessError,
    );
    let v6_local = TcpOptions {
        local_address: Some("::1".parse().unwrap()),
        ..o()
    };
    refused(
        h.core.tcp_open(h.now, "127.0.0.1", 80, v6_local),
        DomException::InvalidAccessError,
    );
    assert_eq!(h.drain(), []);
    assert_eq!(h.core.tcp_ids().count(), 0);
    assert_eq!(h.deadline(), None);
}

#[test]
fn open_with_an_ip_connects_at_once_with_the_options() {
    let mut h = Harness::new();
    let options = TcpOptions {
        local_address: Some("127.0.0.2".parse().unwrap()),
        local_port: Some(5555),
        no_delay: false,
        keep_alive: Some(Duration::from_secs(60)),
        send_buffer_size: Some(1 << 20),
        receive_buffer_size: Some(4096),
        ..TcpOptions::default()
    };
    let id = h.core.tcp_open(h.now, "127.0.0.1", 80, options).unwrap();
    assert_eq!(
        h.drain(),
        [Output::Action(Action::Connect {
            id,
            attempt: 0,
            remote: addr("127.0.0.1:80"),
            local: Some(addr("127.0.0.2:5555")),
            no_delay: false,
            keep_alive: Some(Duration::from_secs(60)),
            settings: SocketSettings {
                send_buffer: Some(1 << 20),
                receive_buffer: Some(4096),
                ..SocketSettings::default()
            },
        })]
    );
    let s = h.core.tcp(id).unwrap();
    assert_eq!(
        (s.ready_state(), s.port(), s.buffered_amount()),
        (ReadyState::Connecting, 80, 0)
    );
    assert_eq!(s.host().to_string(), "127.0.0.1");
    assert_eq!(
        (s.remote_address(), s.local_address(), s.ssl()),
        (None, None, false)
    );
    assert_eq!(
        h.deadline(),
        Some(h.now + Config::default().connect_timeout)
    );
}

#[test]
fn connected_fills_the_addresses_and_opens() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    let s = h.core.tcp(id).unwrap();
    assert_eq!(s.ready_state(), ReadyState::Open);
    assert_eq!(s.remote_address(), Some(addr("127.0.0.1:80")));
    assert_eq!(s.local_address(), Some(addr(LOCAL)));
    assert_eq!(h.deadline(), None, "no timer runs on an open socket");
}

#[test]
fn a_name_is_resolved_by_the_io_layer() {
    let mut h = Harness::new();
    let id = h
        .core
        .tcp_open(h.now, "Example.ORG.", 443, TcpOptions::default())
        .unwrap();
    let out = h.drain();
    let [Output::Action(Action::Resolve { id: rid, name })] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!((*rid, name.as_str()), (id.into(), "Example.ORG"));
    let out = h.input(Input::Resolved {
        id: id.into(),
        result: Ok(vec!["192.0.2.1".parse().unwrap()]),
    });
    assert_eq!(out, [connect(id, 0, "192.0.2.1:443")]);
}

#[test]
fn a_name_that_does_not_resolve_is_domain_not_found_then_close() {
    for result in [
        Err(ResolveError::NotFound),
        Ok(vec![]),
        Err(ResolveError::Temporary),
    ] {
        let mut h = Harness::new();
        let id = h
            .core
            .tcp_open(h.now, "nowhere.invalid", 80, TcpOptions::default())
            .unwrap();
        h.drain();
        let out = h.input(Input::Resolved {
            id: id.into(),
            result: result.clone(),
        });
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(out[0], release(id));
        let Output::Event(Event::Error { error, .. }) = &out[1] else {
            panic!("{out:?}")
        };
        assert_eq!(error.name(), "DomainNotFoundError", "{result:?}");
        assert_eq!(out[2], close(id));
        assert!(h.core.tcp(id).is_none());
    }
}

#[test]
fn addresses_race_in_the_manner_of_rfc_8305() {
    let mut h = Harness::new();
    let id = h
        .core
        .tcp_open(h.now, "dual.example", 80, TcpOptions::default())
        .unwrap();
    h.drain();
    let addrs = ["2001:db8::1", "2001:db8::2", "192.0.2.1", "2001:db8::1"];
    let result = Ok(addrs.iter().map(|a| a.parse().unwrap()).collect());
    assert_eq!(
        h.input(Input::Resolved {
            id: id.into(),
            result,
        }),
        [connect(id, 0, "[2001:db8::1]:80")]
    );
    let delay = Config::default().connection_attempt_delay;
    assert_eq!(h.deadline(), Some(h.now + delay));
    assert_eq!(h.advance(delay - Duration::from_millis(1)), []);
    // The families alternate: the IPv4 address is second.
    assert_eq!(
        h.advance(Duration::from_millis(1)),
        [connect(id, 1, "192.0.2.1:80")]
    );
    // A failure starts the next candidate at once.
    let out = h.input(Input::ConnectFailed {
        id,
        attempt: 0,
        error: HostUnreachable,
    });
    assert_eq!(out, [connect(id, 2, "[2001:db8::2]:80")]);
    // The first to connect wins; the others are aborted.
    let out = h.input(Input::Connected {
        id,
        attempt: 2,
        local: addr("[2001:db8::9]:5000"),
    });
    assert_eq!(out, [abort(id, 1), open(id), reading(id, true)]);
    assert_eq!(
        h.core.tcp(id).unwrap().remote_address(),
        Some(addr("[2001:db8::2]:80"))
    );
    assert_eq!(h.deadline(), None);
    h.bad_input(Input::ConnectFailed {
        id,
        attempt: 1,
        error: ConnectionRefused,
    });
}

#[test]
fn when_every_attempt_fails_the_last_error_is_reported() {
    let mut h = Harness::new();
    let id = h
        .core
        .tcp_open(h.now, "two.example", 80, TcpOptions::default())
        .unwrap();
    h.drain();
    let result = Ok(vec![
        "192.0.2.1".parse().unwrap(),
        "192.0.2.2".parse().unwrap(),
    ]);
    h.input(Input::Resolved {
        id: id.into(),
        result,
    });
    assert_eq!(
        h.input(Input::ConnectFailed {
            id,
            attempt: 0,
            error: HostUnreachable
        }),
        [connect(id, 1, "192.0.2.2:80")]
    );
    let out = h.input(Input::ConnectFailed {
        id,
        attempt: 1,
        error: ConnectionRefused,
    });
    assert_eq!(
        out,
        [release(id), io_error(id, ConnectionRefused), close(id)]
    );
    let Output::Event(Event::Error { error, .. }) = &out[1] else {
        unreachable!()
    };
    assert_eq!(error.name(), "ConnectionRefusedError");
}

#[test]
fn a_fixed_local_port_makes_attempts_take_turns() {
    let mut h = Harness::new();
    let options = TcpOptions {
        local_port: Some(6000),
        ..TcpOptions::default()
    };
    let id = h.core.tcp_open(h.now, "two.example", 80, options).unwrap();
    h.drain();
    let result = Ok(vec![
        "192.0.2.1".parse().unwrap(),
        "192.0.2.2".parse().unwrap(),
    ]);
    let out = h.input(Input::Resolved {
        id: id.into(),
        result,
    });
    assert!(
        matches!(&out[..], [Output::Action(Action::Connect { local: Some(l), .. })]
        if *l == addr("0.0.0.0:6000")),
        "{out:?}"
    );
    assert_eq!(
        h.advance(Duration::from_secs(1)),
        [],
        "no race with a fixed port"
    );
}

#[test]
fn refused_is_connection_refused_error_then_close() {
    let mut h = Harness::new();
    let id = connecting(&mut h, TcpOptions::default());
    let out = h.input(Input::ConnectFailed {
        id,
        attempt: 0,
        error: ConnectionRefused,
    });
    assert_eq!(
        out,
        [release(id), io_error(id, ConnectionRefused), close(id)]
    );
}

#[test]
fn the_connect_timeout_is_network_timeout_error_then_close() {
    let mut h = Harness::new();
    let id = connecting(&mut h, TcpOptions::default());
    let timeout = Config::default().connect_timeout;
    assert_eq!(h.advance(timeout - Duration::from_millis(1)), []);
    let out = h.advance(Duration::from_millis(1));
    assert_eq!(
        out,
        [
            release(id),
            error(
                id,
                ErrorCode::NetworkTimeout,
                "no connection to 127.0.0.1 within the connect timeout"
            ),
            close(id)
        ]
    );
    assert_eq!(h.deadline(), None);
}

#[test]
fn the_ready_state_is_closed_when_the_error_is_delivered() {
    let mut h = Harness::new();
    let id = connecting(&mut h, TcpOptions::default());
    h.core
        .handle_input(
            h.now,
            Input::ConnectFailed {
                id,
                attempt: 0,
                error: TimedOut,
            },
        )
        .unwrap();
    assert_eq!(h.core.poll_output(), release(id));
    assert!(matches!(
        h.core.poll_output(),
        Output::Event(Event::Error { .. })
    ));
    assert_eq!(state(&h, id), ReadyState::Closed);
    assert_eq!(h.core.poll_output(), close(id));
    assert!(h.core.tcp(id).is_none());
}

#[test]
fn the_policy_is_asked_before_connecting() {
    let mut h = Harness::new();
    h.core = Core::with_policy(Config::default(), NoPrivilegedPorts);
    let low = TcpOptions {
        local_port: Some(80),
        ..TcpOptions::default()
    };
    refused(
        h.core.tcp_open(h.now, "127.0.0.1", 25, low),
        DomException::SecurityError,
    );
    assert!(h
        .core
        .tcp_open(h.now, "127.0.0.1", 25, TcpOptions::default())
        .is_ok());
    h.core = Core::with_policy(
        Config::default(),
        AllowList::new().connect("127.0.0.1", Some(7)),
    );
    refused(
        h.core
            .tcp_open(h.now, "127.0.0.1", 8, TcpOptions::default()),
        DomException::SecurityError,
    );
    assert_eq!(h.drain(), [], "a refusal creates nothing");
    assert!(h
        .core
        .tcp_open(h.now, "127.0.0.1", 7, TcpOptions::default())
        .is_ok());
}

// ---- send ---------------------------------------------------------------------------------

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

// ---- close --------------------------------------------------------------------------------

#[test]
fn close_while_connecting_abandons_without_error() {
    let mut h = Harness::new();
    let id = connecting(&mut h, TcpOptions::default());
    h.core.tcp_close(h.now, id).unwrap();
    assert_eq!(state(&h, id), ReadyState::Closing);
    assert_eq!(h.drain(), [release(id), close(id)]);
    assert!(h.core.tcp(id).is_none());
    assert_eq!(h.deadline(), None, "the connect timer is gone");
    assert_eq!(
        h.bad_input(Input::Connected {
            id,
            attempt: 0,
            local: addr(LOCAL)
        }),
        InputError::UnknownId
    );
}

#[test]
fn close_flushes_then_drain_then_fin_then_close_after_the_peer_fin() {
    let config = Config {
        high_water_mark: 2,
        ..Config::default()
    };
    let mut h = Harness::with_config(config);
    let id = open_socket(&mut h);
    assert_eq!(h.core.tcp_send(id, "abc"), Ok(false));
    h.drain();
    h.core.tcp_close(h.now, id).unwrap();
    assert_eq!(state(&h, id), ReadyState::Closing);
    assert_eq!(h.drain(), []);
    assert_eq!(h.deadline(), Some(h.now + Config::default().close_timeout));
    // Data still arriving is read and discarded: no Data after close().
    assert_eq!(
        h.input(Input::Received {
            id,
            data: Bytes::from_static(b"late")
        }),
        []
    );
    assert_eq!(
        h.input(Input::Written { id, len: 3 }),
        [drain(id), shutdown(id), query(id)]
    );
    // The peer's TCP has not acknowledged everything yet: ask again 1 ms later.
    assert_eq!(h.input(unacked(id, 4)), []);
    assert_eq!(h.deadline(), Some(h.now + Duration::from_millis(1)));
    assert_eq!(h.advance(Duration::from_millis(1)), [query(id)]);
    assert_eq!(h.input(unacked(id, 0)), []);
    assert_eq!(h.deadline(), Some(h.now + Config::default().linger_timeout));
    assert_eq!(h.input(Input::Eof { id }), [release(id), close(id)]);
    assert_eq!(h.deadline(), None);
}

#[test]
fn close_of_a_suspended_socket_reads_again_to_discard() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core.tcp_suspend(id).unwrap();
    assert_eq!(h.drain(), [reading(id, false)]);
    h.core.tcp_close(h.now, id).unwrap();
    assert_eq!(h.drain(), [shutdown(id), query(id), reading(id, true)]);
    assert_eq!(
        h.input(Input::Received {
            id,
            data: Bytes::from_static(b"x")
        }),
        []
    );
    assert_eq!(h.input(unacked(id, 0)), []);
    assert_eq!(h.input(Input::Eof { id }), [release(id), close(id)]);
}

#[test]
fn a_peer_that_does_not_take_the_data_gets_a_close_timeout() {
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
                "the peer did not take the queued data within the close timeout"
            ),
            close(id)
        ]
    );
}

#[test]
fn the_linger_timeout_releases_without_error() {
    let mut h = Harness::new();
    let id = closing(&mut h);
    assert_eq!(
        h.input(Input::Written { id, len: 3 }),
        [shutdown(id), query(id)]
    );
    assert_eq!(h.input(unacked(id, 0)), []);
    let linger = Config::default().linger_timeout;
    assert_eq!(h.advance(linger), [release(id), close(id)]);
}

#[test]
fn a_reset_while_closing_is_an_error() {
    let mut h = Harness::new();
    let id = closing(&mut h);
    let out = h.input(Input::Failed {
        id,
        error: ConnectionReset,
    });
    assert_eq!(out, [release(id), io_error(id, ConnectionReset), close(id)]);
}

#[test]
fn close_in_closing_or_closed_does_nothing_and_a_dead_id_is_an_error() {
    let mut h = Harness::new();
    let id = closing(&mut h);
    h.core.tcp_close(h.now, id).unwrap();
    h.core.tcp_halfclose(h.now, id).unwrap();
    assert_eq!(h.drain(), []);
    let d = dead(&mut h);
    refused(h.core.tcp_close(h.now, d), DomException::InvalidStateError);
    refused(
        h.core.tcp_close_immediately(d),
        DomException::InvalidStateError,
    );
    refused(
        h.core.tcp_halfclose(h.now, d),
        DomException::InvalidStateError,
    );
    refused(h.core.tcp_suspend(d), DomException::InvalidStateError);
    refused(h.core.tcp_resume(d), DomException::InvalidStateError);
    assert_eq!(h.drain(), []);
}

#[test]
fn close_immediately_discards_the_queue() {
    let config = Config {
        high_water_mark: 1,
        ..Config::default()
    };
    let mut h = Harness::with_config(config);
    let id = open_socket(&mut h);
    h.core.tcp_send(id, "abc").unwrap();
    h.drain();
    h.core.tcp_close_immediately(id).unwrap();
    assert_eq!(state(&h, id), ReadyState::Closing);
    assert_eq!(buffered(&h, id), 0);
    assert_eq!(h.drain(), [release(id), close(id)], "no drain, no FIN");
    // Also cuts a lingering close short.
    let id = closing(&mut h);
    h.core.tcp_close_immediately(id).unwrap();
    assert_eq!(h.drain(), [release(id), close(id)]);
}

// ---- halfclose and the peer's FIN ---------------------------------------------------------

#[test]
fn halfclose_flushes_then_fin_and_data_keeps_arriving() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core.tcp_send(id, "abc").unwrap();
    h.drain();
    h.core.tcp_halfclose(h.now, id).unwrap();
    assert_eq!(state(&h, id), ReadyState::HalfClosed);
    assert_eq!(h.drain(), []);
    refused(h.core.tcp_send(id, "x"), DomException::InvalidStateError);
    assert_eq!(h.input(Input::Written { id, len: 3 }), [shutdown(id)]);
    assert_eq!(
        h.input(Input::Received {
            id,
            data: Bytes::from_static(b"hi")
        }),
        [text(id, "hi")]
    );
    assert_eq!(
        h.deadline(),
        None,
        "a half-closed socket waits for its peer"
    );
    assert_eq!(h.input(Input::Eof { id }), [query(id)]);
    assert_eq!(h.input(unacked(id, 0)), [release(id), close(id)]);
}

#[test]
fn halfclose_while_connecting_sends_fin_once_open() {
    let mut h = Harness::new();
    let id = connecting(&mut h, TcpOptions::default());
    h.core.tcp_halfclose(h.now, id).unwrap();
    assert_eq!(state(&h, id), ReadyState::Connecting);
    let out = h.input(Input::Connected {
        id,
        attempt: 0,
        local: addr(LOCAL),
    });
    assert_eq!(out, [open(id), shutdown(id), reading(id, true)]);
    assert_eq!(state(&h, id), ReadyState::HalfClosed);
}

#[test]
fn a_peer_fin_flushes_our_data_then_closes() {
    let config = Config {
        high_water_mark: 1,
        ..Config::default()
    };
    let mut h = Harness::with_config(config);
    let id = open_socket(&mut h);
    h.core.tcp_send(id, "abc").unwrap();
    h.drain();
    assert_eq!(
        h.input(Input::Received {
            id,
            data: Bytes::from_static(b"bye")
        }),
        [text(id, "bye")]
    );
    assert_eq!(h.input(Input::Eof { id }), []);
    assert_eq!(state(&h, id), ReadyState::Closing);
    assert_eq!(
        h.input(Input::Written { id, len: 3 }),
        [drain(id), shutdown(id), query(id)]
    );
    assert_eq!(h.input(unacked(id, 0)), [release(id), close(id)]);
}

#[test]
fn a_peer_fin_with_nothing_queued_closes_at_once() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    assert_eq!(h.input(Input::Eof { id }), [shutdown(id), query(id)]);
    assert_eq!(h.input(unacked(id, 0)), [release(id), close(id)]);
}

#[test]
fn what_was_queued_behind_the_fin_that_ends_the_socket_is_void() {
    let mut h = Harness::new();
    // The I/O layer says once that it cannot tell what the peer acknowledged: from then on the
    // delivery of a peer's FIN ends a socket whose FIN goes out with it.
    let taught = open_socket(&mut h);
    assert_eq!(
        h.input(Input::Eof { id: taught }),
        [shutdown(taught), query(taught)]
    );
    let unknowable = Input::Unacked {
        id: taught,
        bytes: None,
    };
    assert_eq!(h.input(unknowable), [release(taught), close(taught)]);
    let other = open_socket(&mut h);
    let id = open_socket(&mut h);
    let big = Bytes::from(vec![b'x'; h.core.config().high_water_mark + 1]);
    assert_eq!(h.core.tcp_send(id, big.clone()), Ok(false));
    assert_eq!(
        h.drain(),
        [Output::Action(Action::Write {
            id,
            data: big.clone()
        })]
    );
    // The peer's FIN is read, then the write completes, before the app polls: the Drain that
    // completion arms sits behind the FIN, whose delivery ends the socket.
    h.core.handle_input(h.now, Input::Eof { id }).unwrap();
    let len = big.len();
    h.core
        .handle_input(h.now, Input::Written { id, len })
        .unwrap();
    // What other sockets queued meanwhile stays, in order.
    assert_eq!(h.core.tcp_send(other, "y"), Ok(true));
    assert_eq!(
        h.drain(),
        [shutdown(id), release(id), close(id), write(other, b"y")]
    );
}

#[test]
fn allow_half_open_fires_halfclose_and_stays_writable() {
    let mut h = Harness::new();
    let id = established(
        &mut h,
        TcpOptions {
            allow_half_open: true,
            ..TcpOptions::default()
        },
    );
    assert_eq!(h.input(Input::Eof { id }), [halfclose_event(id)]);
    assert_eq!(state(&h, id), ReadyState::Open);
    assert_eq!(h.core.tcp_send(id, "late"), Ok(true));
    assert_eq!(h.drain(), [write(id, b"late")]);
    h.core.tcp_close(h.now, id).unwrap();
    assert_eq!(
        h.input(Input::Written { id, len: 4 }),
        [shutdown(id), query(id)]
    );
    assert_eq!(h.input(unacked(id, 0)), [release(id), close(id)]);
}

#[test]
fn halfclose_after_the_peer_fin_ends_the_connection() {
    let mut h = Harness::new();
    let id = established(
        &mut h,
        TcpOptions {
            allow_half_open: true,
            ..TcpOptions::default()
        },
    );
    h.input(Input::Eof { id });
    h.core.tcp_halfclose(h.now, id).unwrap();
    assert_eq!(h.drain(), [shutdown(id), query(id)]);
    assert_eq!(h.input(unacked(id, 0)), [release(id), close(id)]);
}

#[test]
fn a_peer_fin_in_halfclosed_closes() {
    let mut h = Harness::new();
    let id = halfclosed(&mut h);
    assert_eq!(h.input(Input::Eof { id }), [query(id)]);
    assert_eq!(h.input(unacked(id, 0)), [release(id), close(id)]);
}

// ---- connection lost ----------------------------------------------------------------------

#[test]
fn a_lost_connection_is_an_error_then_close_and_discards_the_queue() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core.tcp_send(id, "abc").unwrap();
    h.drain();
    h.core
        .handle_input(
            h.now,
            Input::Failed {
                id,
                error: ConnectionReset,
            },
        )
        .unwrap();
    assert_eq!(state(&h, id), ReadyState::Closed);
    assert_eq!(buffered(&h, id), 0);
    assert_eq!(
        h.drain(),
        [release(id), io_error(id, ConnectionReset), close(id)]
    );
    let Some(Output::Event(Event::Error { error, .. })) =
        [io_error(id, ConnectionReset)].into_iter().next()
    else {
        unreachable!()
    };
    assert_eq!(
        (error.name(), error.kind()),
        ("NetworkInterruptError", SocketErrorKind::Network)
    );
}

// ---- suspend / resume ---------------------------------------------------------------------

#[test]
fn suspend_is_counted_and_stops_reading() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core.tcp_suspend(id).unwrap();
    h.core.tcp_suspend(id).unwrap();
    assert_eq!(h.drain(), [reading(id, false)]);
    h.core.tcp_resume(id).unwrap();
    assert_eq!(h.drain(), []);
    assert_eq!(h.core.tcp(id).unwrap().suspend_count(), 1);
    h.core.tcp_resume(id).unwrap();
    assert_eq!(h.drain(), [reading(id, true)]);
    refused(h.core.tcp_resume(id), DomException::InvalidStateError);
    assert_eq!(h.drain(), []);
}

#[test]
fn a_suspend_before_open_applies_from_the_start() {
    let mut h = Harness::new();
    let id = connecting(&mut h, TcpOptions::default());
    h.core.tcp_suspend(id).unwrap();
    assert_eq!(h.drain(), []);
    assert_eq!(
        h.input(Input::Connected {
            id,
            attempt: 0,
            local: addr(LOCAL)
        }),
        [open(id)]
    );
    h.core.tcp_resume(id).unwrap();
    assert_eq!(h.drain(), [reading(id, true)]);
}

#[test]
fn data_read_while_suspended_is_held_until_resume_and_the_fin_after_it() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core.tcp_suspend(id).unwrap();
    h.drain();
    // A read that was already in flight.
    assert_eq!(
        h.input(Input::Received {
            id,
            data: Bytes::from_static(b"held")
        }),
        []
    );
    assert_eq!(h.input(Input::Eof { id }), []);
    assert_eq!(state(&h, id), ReadyState::Open);
    h.core.tcp_resume(id).unwrap();
    assert_eq!(h.drain(), [text(id, "held"), shutdown(id), query(id)]);
    assert_eq!(h.input(unacked(id, 0)), [release(id), close(id)]);
}

#[test]
fn close_after_a_held_fin_keeps_the_fin_and_does_not_read_again() {
    // Found by the property tests: close() dropped the held FIN with the held data, then asked
    // to read again, accepted data after the FIN and waited a linger for a FIN already seen.
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core.tcp_suspend(id).unwrap();
    assert_eq!(h.drain(), [reading(id, false)]);
    assert_eq!(h.input(Input::Eof { id }), []);
    h.core.tcp_close(h.now, id).unwrap();
    assert_eq!(h.drain(), [shutdown(id), query(id)]);
    assert_eq!(h.input(unacked(id, 0)), [release(id), close(id)]);
    assert!(h.core.tcp(id).is_none());
}

#[test]
fn holding_is_bounded() {
    let config = Config {
        max_held_bytes: 4,
        ..Config::default()
    };
    let mut h = Harness::with_config(config);
    let id = open_socket(&mut h);
    h.core.tcp_suspend(id).unwrap();
    h.drain();
    h.input(Input::Received {
        id,
        data: Bytes::from_static(b"abcd"),
    });
    let err = h.bad_input(Input::Received {
        id,
        data: Bytes::from_static(b"e"),
    });
    assert!(matches!(err, InputError::Unexpected(_)));
    h.core.tcp_resume(id).unwrap();
    assert_eq!(h.drain(), [text(id, "abcd"), reading(id, true)]);
}

#[test]
fn sending_and_drain_continue_while_suspended() {
    let config = Config {
        high_water_mark: 1,
        ..Config::default()
    };
    let mut h = Harness::with_config(config);
    let id = open_socket(&mut h);
    h.core.tcp_suspend(id).unwrap();
    h.drain();
    assert_eq!(h.core.tcp_send(id, "ab"), Ok(false));
    assert_eq!(h.drain(), [write(id, b"ab")]);
    assert_eq!(h.input(Input::Written { id, len: 2 }), [drain(id)]);
}

#[test]
fn held_data_is_not_lost_when_the_connection_fails() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core.tcp_suspend(id).unwrap();
    h.drain();
    h.input(Input::Received {
        id,
        data: Bytes::from_static(b"last words"),
    });
    let out = h.input(Input::Failed {
        id,
        error: ConnectionReset,
    });
    assert_eq!(
        out,
        [
            text(id, "last words"),
            release(id),
            io_error(id, ConnectionReset),
            close(id)
        ]
    );
}

// ---- inputs that make no sense ------------------------------------------------------------

#[test]
fn nonsense_inputs_are_refused_and_change_nothing() {
    /// Each input must be refused as `Unexpected`, producing nothing.
    #[track_caller]
    fn unexpected(h: &mut Harness, inputs: Vec<Input>) {
        for input in inputs {
            let shown = format!("{input:?}");
            assert!(
                matches!(h.bad_input(input), InputError::Unexpected(_)),
                "{shown}"
            );
        }
    }
    let mut h = Harness::new();
    let data = || Bytes::from_static(b"x");
    let c = connecting(&mut h, TcpOptions::default());
    let local = addr(LOCAL);
    unexpected(
        &mut h,
        vec![
            Input::Received {
                id: c,
                data: data(),
            },
            Input::Written { id: c, len: 1 },
            Input::Eof { id: c },
            Input::Failed {
                id: c,
                error: ConnectionReset,
            },
            Input::Connected {
                id: c,
                attempt: 1,
                local,
            },
            Input::Connected {
                id: c,
                attempt: 200,
                local,
            },
            Input::Resolved {
                id: c.into(),
                result: Ok(vec![]),
            },
        ],
    );
    assert_eq!(state(&h, c), ReadyState::Connecting);

    let o = open_socket(&mut h);
    unexpected(
        &mut h,
        vec![
            Input::Written { id: o, len: 1 },
            Input::Received {
                id: o,
                data: Bytes::new(),
            },
        ],
    );
    h.core.tcp_send(o, "ab").unwrap();
    h.drain();
    unexpected(
        &mut h,
        vec![
            Input::Written { id: o, len: 3 },
            Input::Written { id: o, len: 0 },
        ],
    );
    assert_eq!(buffered(&h, o), 2);
    h.input(Input::Eof { id: o });
    unexpected(
        &mut h,
        vec![
            Input::Received {
                id: o,
                data: data(),
            },
            Input::Eof { id: o },
        ],
    );

    let d = dead(&mut h);
    for input in [
        Input::Received {
            id: d,
            data: data(),
        },
        Input::Written { id: d, len: 1 },
    ] {
        assert_eq!(h.bad_input(input), InputError::UnknownId);
    }
}

// ---- ids and timers -----------------------------------------------------------------------

#[test]
fn a_new_socket_never_gets_a_dead_id() {
    let mut h = Harness::new();
    let d = dead(&mut h);
    let fresh = open_socket(&mut h);
    assert_ne!(d, fresh);
    assert!(h.core.tcp(d).is_none());
    assert!(h.core.tcp(fresh).is_some());
}

#[test]
fn stale_timers_are_dropped_and_never_fire() {
    let mut h = Harness::new();
    for _ in 0..100 {
        let id = connecting(&mut h, TcpOptions::default());
        h.input(Input::Connected {
            id,
            attempt: 0,
            local: addr(LOCAL),
        });
        h.core.tcp_close_immediately(id).unwrap();
        h.drain();
    }
    assert_eq!(h.deadline(), None, "no live socket has a timer");
    assert_eq!(h.core.timer_entries(), 0, "stale entries were dropped");
    assert_eq!(h.advance(Duration::from_secs(3600)), []);
}

#[test]
fn an_idle_socket_fits_the_memory_budget() {
    // BENCHMARK target: at most 256 bytes of core state per idle plaintext TCP socket, with
    // buffers allocated only when used (the table adds its serial number, 8 bytes).
    assert!(
        std::mem::size_of::<TcpSocket>() + 8 <= 256,
        "{}",
        std::mem::size_of::<TcpSocket>()
    );
}

// ---- events already queued when the app calls (found by the driver) -----------------------

/// Two reads queued as events; the app takes the first, then calls `call`.
fn two_reads_then(call: impl FnOnce(&mut Harness, TcpId)) -> (Harness, TcpId, Vec<Output>) {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core
        .handle_input(
            h.now,
            Input::Received {
                id,
                data: Bytes::from_static(b"one"),
            },
        )
        .unwrap();
    h.core
        .handle_input(
            h.now,
            Input::Received {
                id,
                data: Bytes::from_static(b"two"),
            },
        )
        .unwrap();
    h.core.handle_input(h.now, Input::Eof { id }).unwrap();
    assert_eq!(h.core.poll_output(), text(id, "one"));
    call(&mut h, id);
    let rest = h.drain();
    (h, id, rest)
}

#[test]
fn no_data_is_delivered_after_suspend_even_if_it_was_already_read() {
    let (mut h, id, rest) = two_reads_then(|h, id| h.core.tcp_suspend(id).unwrap());
    assert_eq!(rest, [], "neither the data nor the FIN behind it");
    assert_eq!(state(&h, id), ReadyState::Open);
    h.core.tcp_resume(id).unwrap();
    assert_eq!(h.drain(), [text(id, "two"), shutdown(id), query(id)]);
    assert_eq!(h.input(unacked(id, 0)), [release(id), close(id)]);
}

#[test]
fn no_data_is_delivered_after_close_even_if_it_was_already_read() {
    let (mut h, id, rest) = two_reads_then(|h, id| h.core.tcp_close(h.now, id).unwrap());
    // The peer's FIN was read already: our FIN, then the release once the peer has it all.
    assert_eq!(rest, [shutdown(id), query(id)]);
    assert_eq!(h.input(unacked(id, 0)), [release(id), close(id)]);
}

// ---- Direct Sockets options (issue 17 §4) -------------------------------------------------

#[test]
fn out_of_range_options_are_invalid_access_and_create_nothing() {
    let mut h = Harness::new();
    let o = TcpOptions::default;
    let bad = [
        TcpOptions {
            keep_alive: Some(Duration::from_millis(999)),
            ..o()
        },
        TcpOptions {
            keep_alive: Some(MAX_KEEP_ALIVE_DELAY + Duration::from_secs(1)),
            ..o()
        },
        TcpOptions {
            send_buffer_size: Some(0),
            ..o()
        },
        TcpOptions {
            receive_buffer_size: Some(MAX_BUFFER_SIZE + 1),
            ..o()
        },
        TcpOptions {
            dns_query_type: Some(DnsQueryType::Ipv6),
            ..o()
        },
        TcpOptions {
            dns_query_type: Some(DnsQueryType::Ipv4),
            local_address: Some("::1".parse().unwrap()),
            ..o()
        },
    ];
    for options in bad {
        let host = if options.local_address.is_some() {
            "example.org"
        } else {
            "127.0.0.1"
        };
        refused(
            h.core.tcp_open(h.now, host, 80, options),
            DomException::InvalidAccessError,
        );
    }
    assert_eq!(h.drain(), []);
    assert_eq!(h.core.tcp_ids().count(), 0);
    let edges = TcpOptions {
        keep_alive: Some(MIN_KEEP_ALIVE_DELAY),
        send_buffer_size: Some(1),
        receive_buffer_size: Some(MAX_BUFFER_SIZE),
        dns_query_type: Some(DnsQueryType::Ipv4),
        ..o()
    };
    assert!(h.core.tcp_open(h.now, "127.0.0.1", 80, edges).is_ok());
}

#[test]
fn dns_query_type_keeps_the_addresses_of_its_family_only() {
    let mut h = Harness::new();
    let options = TcpOptions {
        dns_query_type: Some(DnsQueryType::Ipv4),
        ..TcpOptions::default()
    };
    let id = h.core.tcp_open(h.now, "dual.example", 80, options).unwrap();
    h.drain();
    let addrs = ["2001:db8::1", "192.0.2.1", "2001:db8::2", "192.0.2.2"];
    let result = Ok(addrs.iter().map(|a| a.parse().unwrap()).collect());
    assert_eq!(
        h.input(Input::Resolved {
            id: id.into(),
            result,
        }),
        [connect(id, 0, "192.0.2.1:80")]
    );
    let delay = Config::default().connection_attempt_delay;
    assert_eq!(h.advance(delay), [connect(id, 1, "192.0.2.2:80")]);
    assert_eq!(h.advance(delay), [], "no IPv6 attempt");
}

#[test]
fn dns_query_type_with_no_address_left_is_domain_not_found() {
    let mut h = Harness::new();
    let options = TcpOptions {
        dns_query_type: Some(DnsQueryType::Ipv6),
        ..TcpOptions::default()
    };
    let id = h.core.tcp_open(h.now, "v4.example", 80, options).unwrap();
    h.drain();
    let result = Ok(vec!["192.0.2.1".parse().unwrap()]);
    assert_eq!(
        h.input(Input::Resolved {
            id: id.into(),
            result,
        }),
        [
            release(id),
            error(
                id,
                ErrorCode::DomainNotFound,
                "v4.example has no ipv6 address"
            ),
            close(id)
        ]
    );
}
