//! Inputs that make no sense, ids and timers, the memory budget, and out-of-range options
//! ([BEHAVIOUR §0](crate::behaviour#0-everywhere), [§4](crate::behaviour#4-errors)).

use super::*;

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
