//! Opening a TCPSocket: addresses, the RFC 8305 race, connect errors and timeout, the policy
//! ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket), [§4](crate::behaviour#4-errors), [§5](crate::behaviour#5-trust)).

use super::*;

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
            options: Box::new(ConnectOptions {
                local: Some(addr("127.0.0.2:5555")),
                no_delay: false,
                keep_alive: Some(Duration::from_secs(60)),
                settings: SocketSettings {
                    send_buffer: Some(1 << 20),
                    receive_buffer: Some(4096),
                    ..SocketSettings::default()
                },
            }),
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
        matches!(&out[..], [Output::Action(Action::Connect { options, .. })]
        if options.local == Some(addr("0.0.0.0:6000"))),
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
