//! One fixture per state, one test per state × stimulus, each asserting the whole transcript
//! ([BEHAVIOUR §0](crate::behaviour#0-everywhere), [§2](crate::behaviour#2-tcpserversocket), [§5](crate::behaviour#5-trust)).

use std::io::ErrorKind::{AddrInUse, ConnectionReset, PermissionDenied};
use std::time::Duration;

use bytes::Bytes;

use crate::testkit::*;
use crate::*;

const LISTEN: &str = "127.0.0.1:41000";
const PEER: &str = "127.0.0.1:52000";

fn state(h: &Harness, id: ServerId) -> ReadyState {
    h.core.server(id).expect("live server").ready_state()
}

fn count(h: &Harness, id: ServerId) -> u32 {
    h.core.server(id).expect("live server").connection_count()
}

fn accept(h: &mut Harness, server: ServerId, remote: &str) -> Result<Accepted, InputError> {
    h.core
        .handle_accepted(h.now, server, addr(LISTEN), addr(remote))
}

/// Accepts a connection that must become a socket; returns it.
#[track_caller]
fn accepted(h: &mut Harness, server: ServerId, remote: &str) -> TcpId {
    let Ok(Accepted::Socket(socket)) = accept(h, server, remote) else {
        panic!("the connection from {remote} was not accepted")
    };
    assert_eq!(
        h.drain(),
        [connect_event(server, socket), reading(socket, true)]
    );
    socket
}

// ---- fixtures: one per readyState ---------------------------------------------------------

/// `opening`: `Listen` asked, no answer yet.
fn opening(h: &mut Harness, options: ServerOptions) -> ServerId {
    let id = h.core.server_listen(h.now, options).unwrap();
    let out = h.drain();
    assert!(
        matches!(out[..], [Output::Action(Action::Listen { id: l, .. })] if l == id),
        "{out:?}"
    );
    assert_eq!(state(h, id), ReadyState::Opening);
    id
}

fn listening_with(h: &mut Harness, options: ServerOptions) -> ServerId {
    let id = opening(h, options);
    let out = h.input(Input::Listening {
        id,
        local: addr(LISTEN),
    });
    assert_eq!(out, [open(id), reading(id, true)]);
    id
}

/// `open`: listening on 127.0.0.1:41000, accepting.
fn listening(h: &mut Harness) -> ServerId {
    listening_with(h, ServerOptions::default())
}

/// `open` with `max_connections`.
fn limited(h: &mut Harness, max_connections: u32) -> ServerId {
    let options = ServerOptions {
        max_connections: Some(max_connections),
        ..ServerOptions::default()
    };
    listening_with(h, options)
}

/// `closed` by `close()`, `Release` and `Close` not yet delivered.
fn closed(h: &mut Harness) -> ServerId {
    let id = listening(h);
    h.core.server_close(h.now, id).unwrap();
    assert_eq!(state(h, id), ReadyState::Closed);
    id
}

/// `closed`, `Close` delivered: the id is dead.
fn dead(h: &mut Harness) -> ServerId {
    let id = closed(h);
    assert_eq!(h.drain(), [release(id), close(id)]);
    assert!(h.core.server(id).is_none());
    id
}

// ---- listen -------------------------------------------------------------------------------

#[test]
fn listen_asks_the_io_layer_with_the_options() {
    let mut h = Harness::new();
    let options = ServerOptions {
        local_address: Some(ip("::1")),
        local_port: Some(8080),
        binary_type: BinaryType::ArrayBuffer,
        backlog: 16,
        address_reuse: false,
        max_connections: Some(3),
        ..ServerOptions::default()
    };
    let id = h.core.server_listen(h.now, options).unwrap();
    assert_eq!(h.drain(), [listen(id, "[::1]:8080", 16, false)]);
    let s = h.core.server(id).unwrap();
    assert_eq!(s.ready_state(), ReadyState::Opening);
    assert_eq!(s.ready_state().as_str(), "opening");
    assert_eq!(s.local_address(), None, "known only from Open");
    assert_eq!(
        (s.binary_type(), s.backlog(), s.address_reuse()),
        (BinaryType::ArrayBuffer, 16, false)
    );
    assert_eq!((s.max_connections(), s.connection_count()), (Some(3), 0));
    assert_eq!(h.deadline(), None, "a server has no timer");
}

#[test]
fn the_defaults_listen_on_every_ipv4_interface_at_an_ephemeral_port() {
    let mut h = Harness::new();
    let id = h
        .core
        .server_listen(h.now, ServerOptions::default())
        .unwrap();
    assert_eq!(h.drain(), [listen(id, "0.0.0.0:0", DEFAULT_BACKLOG, true)]);
    let s = h.core.server(id).unwrap();
    assert_eq!(
        (s.binary_type(), s.max_connections()),
        (BinaryType::String, None)
    );
    // `localPort: Some(0)` is the same ephemeral port.
    let zero = ServerOptions {
        local_port: Some(0),
        ..ServerOptions::default()
    };
    let id = h.core.server_listen(h.now, zero).unwrap();
    assert_eq!(h.drain(), [listen(id, "0.0.0.0:0", DEFAULT_BACKLOG, true)]);
}

#[test]
fn invalid_options_are_invalid_access_and_create_nothing() {
    let mut h = Harness::new();
    let o = ServerOptions::default;
    for options in [
        ServerOptions {
            local_address: Some(ip("239.1.2.3")),
            ..o()
        },
        ServerOptions {
            local_address: Some(ip("ff02::1")),
            ..o()
        },
        ServerOptions { backlog: 0, ..o() },
        ServerOptions {
            backlog: i32::MAX as u32 + 1,
            ..o()
        },
        ServerOptions {
            max_connections: Some(0),
            ..o()
        },
        ServerOptions {
            ipv6_only: true,
            ..o()
        },
        ServerOptions {
            local_address: Some(ip("::ffff:127.0.0.1")),
            ipv6_only: true,
            ..o()
        },
        ServerOptions {
            send_buffer_size: Some(0),
            ..o()
        },
        ServerOptions {
            receive_buffer_size: Some(MAX_BUFFER_SIZE + 1),
            ..o()
        },
    ] {
        refused(
            h.core.server_listen(h.now, options),
            DomException::InvalidAccessError,
        );
    }
    assert_eq!(h.drain(), []);
    assert_eq!(h.core.server_ids().count(), 0);
    let largest = ServerOptions {
        backlog: i32::MAX as u32,
        ..o()
    };
    assert!(h.core.server_listen(h.now, largest).is_ok());
}

#[test]
fn the_policy_is_asked_before_listening() {
    let mut h = Harness::new();
    h.core = Core::with_policy(Config::default(), NoPrivilegedPorts);
    let low = ServerOptions {
        local_port: Some(80),
        ..ServerOptions::default()
    };
    refused(
        h.core.server_listen(h.now, low),
        DomException::SecurityError,
    );
    assert_eq!(h.drain(), [], "a refusal creates nothing");
    assert_eq!(h.core.server_ids().count(), 0);
    assert!(h
        .core
        .server_listen(h.now, ServerOptions::default())
        .is_ok());
    h.core = Core::with_policy(Config::default(), AllowList::new().local_port(8080));
    refused(
        h.core.server_listen(h.now, ServerOptions::default()),
        DomException::SecurityError,
    );
    let listed = ServerOptions {
        local_port: Some(8080),
        ..ServerOptions::default()
    };
    assert!(h.core.server_listen(h.now, listed).is_ok());
}

#[test]
fn listening_reports_the_real_port_and_opens() {
    let mut h = Harness::new();
    let id = opening(&mut h, ServerOptions::default());
    let out = h.input(Input::Listening {
        id,
        local: addr("0.0.0.0:43210"),
    });
    assert_eq!(out, [open(id), reading(id, true)]);
    let s = h.core.server(id).unwrap();
    assert_eq!(s.ready_state(), ReadyState::Open);
    assert_eq!(s.ready_state().as_str(), "open");
    assert_eq!(s.local_address(), Some(addr("0.0.0.0:43210")));
}

#[test]
fn a_listen_failure_is_an_error_then_close() {
    let mut h = Harness::new();
    let id = opening(&mut h, ServerOptions::default());
    let failed = Input::ListenFailed {
        id,
        error: AddrInUse,
    };
    h.fails_before_open(id, failed, AddrInUse, |core| {
        core.server(id).map(ServerSocket::ready_state)
    });
}

// ---- accepting ----------------------------------------------------------------------------

#[test]
fn an_accepted_socket_is_open_with_its_four_addresses_and_the_servers_binary_type() {
    let mut h = Harness::new();
    let server = listening_with(
        &mut h,
        ServerOptions {
            binary_type: BinaryType::ArrayBuffer,
            ..ServerOptions::default()
        },
    );
    let socket = accepted(&mut h, server, PEER);
    let s = h.core.tcp(socket).unwrap();
    assert_eq!(s.ready_state(), ReadyState::Open);
    assert_eq!(s.remote_address(), Some(addr(PEER)));
    assert_eq!(s.local_address(), Some(addr(LISTEN)));
    assert_eq!(
        (s.host().to_string(), s.port()),
        ("127.0.0.1".into(), 52000)
    );
    assert_eq!((s.buffered_amount(), s.ssl()), (0, false));
    assert_eq!(s.binary_type(), BinaryType::ArrayBuffer);
    assert_eq!(count(&h, server), 1);
    // It is an ordinary socket from here on.
    assert_eq!(
        h.input(Input::Received {
            id: socket,
            data: Bytes::from_static(b"\xe2\x82")
        }),
        [bytes(socket, b"\xe2\x82")]
    );
    assert_eq!(h.core.tcp_send(socket, "hi"), Ok(true));
    assert_eq!(h.drain(), [write(socket, b"hi")]);
    assert_eq!(h.deadline(), None);
}

#[test]
fn the_default_binary_type_of_accepted_sockets_is_string() {
    let mut h = Harness::new();
    let server = listening(&mut h);
    let socket = accepted(&mut h, server, PEER);
    assert_eq!(
        h.input(Input::Received {
            id: socket,
            data: Bytes::from_static(b"hello")
        }),
        [text(socket, "hello")]
    );
}

#[test]
fn over_max_connections_the_connection_is_refused_and_the_server_keeps_listening() {
    let mut h = Harness::new();
    let server = limited(&mut h, 2);
    let a = accepted(&mut h, server, "127.0.0.1:52001");
    accepted(&mut h, server, "127.0.0.1:52002");
    assert_eq!(
        accept(&mut h, server, "127.0.0.1:52003"),
        Ok(Accepted::Refused)
    );
    assert_eq!(
        h.drain(),
        [error(
            server,
            ErrorCode::Network,
            "refused the connection from 127.0.0.1:52003: max_connections (2) reached"
        )]
    );
    assert_eq!(state(&h, server), ReadyState::Open);
    assert_eq!(count(&h, server), 2);
    assert_eq!(h.core.tcp_ids().count(), 2, "no socket for the refused one");
    // A socket counts until its Close is delivered, not when it is released.
    h.core.tcp_close_immediately(a).unwrap();
    assert_eq!(
        accept(&mut h, server, "127.0.0.1:52004"),
        Ok(Accepted::Refused)
    );
    assert_eq!(
        h.drain(),
        [
            release(a),
            close(a),
            error(
                server,
                ErrorCode::Network,
                "refused the connection from 127.0.0.1:52004: max_connections (2) reached"
            )
        ]
    );
    assert_eq!(count(&h, server), 1);
    accepted(&mut h, server, "127.0.0.1:52005");
    assert_eq!(count(&h, server), 2);
}

#[test]
fn without_max_connections_there_is_no_limit() {
    let mut h = Harness::new();
    let server = listening(&mut h);
    for port in 0..100 {
        accepted(&mut h, server, &format!("127.0.0.1:{}", 50000 + port));
    }
    assert_eq!(count(&h, server), 100);
}

#[test]
fn a_connection_is_an_input_error_unless_the_server_accepts() {
    let mut h = Harness::new();
    let o = opening(&mut h, ServerOptions::default());
    assert!(matches!(
        accept(&mut h, o, PEER),
        Err(InputError::Unexpected(_))
    ));
    let s = listening(&mut h);
    h.core.server_suspend(s).unwrap();
    assert_eq!(h.drain(), [reading(s, false)]);
    assert!(matches!(
        accept(&mut h, s, PEER),
        Err(InputError::Unexpected(_))
    ));
    let c = closed(&mut h);
    assert_eq!(accept(&mut h, c, PEER), Err(InputError::UnknownId));
    h.drain();
    let d = dead(&mut h);
    assert_eq!(accept(&mut h, d, PEER), Err(InputError::UnknownId));
    assert_eq!(h.drain(), [], "a refused input produces nothing");
    assert_eq!(h.core.tcp_ids().count(), 0);
    assert_eq!(count(&h, s), 0);
}

// ---- suspend / resume ---------------------------------------------------------------------

#[test]
fn suspend_is_counted_and_stops_accepting() {
    let mut h = Harness::new();
    let id = listening(&mut h);
    h.core.server_suspend(id).unwrap();
    h.core.server_suspend(id).unwrap();
    assert_eq!(h.drain(), [reading(id, false)]);
    assert_eq!(h.core.server(id).unwrap().suspend_count(), 2);
    h.core.server_resume(id).unwrap();
    assert_eq!(h.drain(), []);
    h.core.server_resume(id).unwrap();
    assert_eq!(h.drain(), [reading(id, true)]);
    refused(h.core.server_resume(id), DomException::InvalidStateError);
    assert_eq!(h.drain(), []);
    accepted(&mut h, id, PEER);
}

#[test]
fn a_suspend_before_open_applies_from_the_start() {
    let mut h = Harness::new();
    let id = opening(&mut h, ServerOptions::default());
    h.core.server_suspend(id).unwrap();
    assert_eq!(h.drain(), []);
    assert_eq!(
        h.input(Input::Listening {
            id,
            local: addr(LISTEN)
        }),
        [open(id)]
    );
    h.core.server_resume(id).unwrap();
    assert_eq!(h.drain(), [reading(id, true)]);
}

// ---- close --------------------------------------------------------------------------------

#[test]
fn close_stops_listening_and_accepted_sockets_live_on() {
    let mut h = Harness::new();
    let server = limited(&mut h, 1);
    let socket = accepted(&mut h, server, PEER);
    h.core.server_close(h.now, server).unwrap();
    assert_eq!(state(&h, server), ReadyState::Closed);
    assert_eq!(h.drain(), [release(server), close(server)]);
    assert!(h.core.server(server).is_none());
    // The accepted socket is untouched and works; its end no longer concerns the server.
    assert_eq!(h.core.tcp(socket).unwrap().ready_state(), ReadyState::Open);
    assert_eq!(h.core.tcp_send(socket, "still here"), Ok(true));
    assert_eq!(h.drain(), [write(socket, b"still here")]);
    assert_eq!(
        h.input(Input::Failed {
            id: socket,
            error: ConnectionReset
        }),
        [
            release(socket),
            io_error(socket, ConnectionReset),
            close(socket)
        ]
    );
    assert!(h.core.tcp(socket).is_none());
}

#[test]
fn close_while_opening_abandons_the_listen_without_error() {
    let mut h = Harness::new();
    let id = opening(&mut h, ServerOptions::default());
    h.core.server_close(h.now, id).unwrap();
    assert_eq!(state(&h, id), ReadyState::Closed);
    assert_eq!(h.drain(), [release(id), close(id)]);
    assert_eq!(
        h.bad_input(Input::Listening {
            id,
            local: addr(LISTEN)
        }),
        InputError::UnknownId
    );
}

#[test]
fn close_of_a_suspended_server_needs_no_read_interest_change() {
    let mut h = Harness::new();
    let id = listening(&mut h);
    h.core.server_suspend(id).unwrap();
    h.drain();
    h.core.server_close(h.now, id).unwrap();
    assert_eq!(h.drain(), [release(id), close(id)]);
}

// ---- every ApiError in every state --------------------------------------------------------

#[test]
fn every_call_in_every_state() {
    use DomException::InvalidStateError as State;
    type Fixture = fn(&mut Harness) -> ServerId;
    let fixtures: [(&str, Fixture); 4] = [
        ("opening", |h| opening(h, ServerOptions::default())),
        ("open", listening),
        ("closed", closed),
        ("dead", dead),
    ];
    for (name, fixture) in fixtures {
        let mut h = Harness::new();
        let id = fixture(&mut h);
        let live = name != "dead";
        // An unmatched resume is InvalidStateError in every state.
        refused(h.core.server_resume(id), State);
        if live {
            assert_eq!(h.core.server_suspend(id), Ok(()), "{name}");
            assert_eq!(h.core.server_resume(id), Ok(()), "{name}");
            assert_eq!(h.core.server(id).unwrap().suspend_count(), 0);
            assert_eq!(h.core.server_close(h.now, id), Ok(()), "{name}");
            assert_eq!(state(&h, id), ReadyState::Closed);
        } else {
            refused(h.core.server_suspend(id), State);
            refused(h.core.server_close(h.now, id), State);
        }
        let expected = match name {
            // Suspending an open server stops accepting, resuming starts again.
            "open" => vec![
                reading(id, false),
                reading(id, true),
                release(id),
                close(id),
            ],
            // A second close does nothing: one Release, one Close.
            "opening" | "closed" => vec![release(id), close(id)],
            _ => vec![],
        };
        assert_eq!(h.drain(), expected, "{name}");
    }
}

// ---- inputs that make no sense ------------------------------------------------------------

#[test]
fn nonsense_inputs_are_refused_and_change_nothing() {
    let mut h = Harness::new();
    let o = listening(&mut h);
    let again = Input::Listening {
        id: o,
        local: addr(LISTEN),
    };
    assert!(matches!(h.bad_input(again), InputError::Unexpected(_)));
    let failed = Input::ListenFailed {
        id: o,
        error: PermissionDenied,
    };
    assert!(matches!(h.bad_input(failed), InputError::Unexpected(_)));
    assert_eq!(state(&h, o), ReadyState::Open);
    // Released, its Release not yet polled: a race, ignored; once polled, unknown.
    let c = closed(&mut h);
    let failed = || Input::ListenFailed {
        id: c,
        error: PermissionDenied,
    };
    assert_eq!(h.core.handle_input(h.now, failed()), Ok(()));
    assert_eq!(h.drain(), [release(c), close(c)]);
    assert_eq!(
        h.core.handle_input(h.now, failed()),
        Err(InputError::UnknownId)
    );
    let d = dead(&mut h);
    let late = Input::Listening {
        id: d,
        local: addr(LISTEN),
    };
    assert_eq!(h.bad_input(late), InputError::UnknownId);
}

// ---- ids and a whole session --------------------------------------------------------------

#[test]
fn ids_are_never_reused_across_kinds_or_after_close() {
    let mut h = Harness::new();
    let d = dead(&mut h);
    let fresh = listening(&mut h);
    assert_ne!(d, fresh);
    assert!(h.core.server(d).is_none());
    let socket = accepted(&mut h, fresh, PEER);
    let serials = [d.serial(), fresh.serial(), socket.serial()];
    assert!(serials[0] < serials[1] && serials[1] < serials[2]);
}

#[test]
fn an_echo_server_session() {
    let mut h = Harness::new();
    let server = limited(&mut h, 1);
    let socket = accepted(&mut h, server, PEER);
    assert_eq!(
        accept(&mut h, server, "127.0.0.1:52999"),
        Ok(Accepted::Refused)
    );
    let out = h.input(Input::Received {
        id: socket,
        data: Bytes::from_static(b"ping"),
    });
    assert_eq!(
        out,
        [
            error(
                server,
                ErrorCode::Network,
                "refused the connection from 127.0.0.1:52999: max_connections (1) reached"
            ),
            text(socket, "ping")
        ]
    );
    h.core.tcp_send(socket, "ping").unwrap();
    h.core.tcp_close(h.now, socket).unwrap();
    h.core.server_close(h.now, server).unwrap();
    assert_eq!(
        h.drain(),
        [write(socket, b"ping"), release(server), close(server)]
    );
    assert_eq!(
        h.input(Input::Written { id: socket, len: 4 }),
        [shutdown(socket), query(socket)]
    );
    assert_eq!(h.input(unacked(socket, 0)), []);
    assert_eq!(
        h.input(Input::Eof { id: socket }),
        [release(socket), close(socket)]
    );
    assert_eq!(h.deadline(), None);
    assert_eq!(h.advance(Duration::from_secs(60)), []);
    assert_eq!(h.core.tcp_ids().count() + h.core.server_ids().count(), 0);
}

// ---- secure server ------------------------------------------------------------------------

mod secure {
    use super::*;
    use crate::testkit::tls::{server_config, Ca, Peer};

    /// A secure server for "localhost", open, and a client config that trusts it.
    fn secure_server(h: &mut Harness, max_connections: Option<u32>) -> (ServerId, Ca) {
        let ca = Ca::new("test CA");
        let options = ServerOptions {
            use_secure_transport: true,
            tls_config: Some(server_config(ca.leaf(&["localhost"], 2035))),
            max_connections,
            ..ServerOptions::default()
        };
        let id = listening_with(h, options);
        assert!(h.core.server(id).unwrap().secure());
        (id, ca)
    }

    /// A connection accepted by a secure server: reading, not yet announced.
    #[track_caller]
    fn handshaking(h: &mut Harness, server: ServerId, remote: &str) -> TcpId {
        let Ok(Accepted::Socket(socket)) = accept(h, server, remote) else {
            panic!("the connection from {remote} was not accepted")
        };
        assert_eq!(h.drain(), [reading(socket, true)], "no Connect yet");
        let s = h.core.tcp(socket).unwrap();
        assert_eq!((s.ready_state(), s.ssl()), (ReadyState::Connecting, true));
        socket
    }

    /// Plays the wire between `socket` and the client `peer` until neither has more to say;
    /// returns the events.
    fn pump(h: &mut Harness, socket: TcpId, peer: &mut Peer, mut out: Vec<Output>) -> Vec<Event> {
        let mut events = Vec::new();
        for _ in 0..1000 {
            for o in std::mem::take(&mut out) {
                match o {
                    Output::Action(Action::Write { id, data }) if id == socket => {
                        let _ = peer.feed(&data);
                        out.extend(h.input(Input::Written {
                            id,
                            len: data.len(),
                        }));
                    }
                    Output::Event(e) => events.push(e),
                    Output::Action(_) | Output::Timeout(_) => {}
                }
            }
            let to_socket = peer.take();
            if to_socket.is_empty() && out.is_empty() {
                return events;
            }
            if !to_socket.is_empty() {
                out.extend(h.input(Input::Received {
                    id: socket,
                    data: to_socket.into(),
                }));
            }
        }
        panic!("the wire did not settle");
    }

    #[test]
    fn use_secure_transport_without_a_certificate_is_invalid_access() {
        let mut h = Harness::new();
        let options = ServerOptions {
            use_secure_transport: true,
            ..ServerOptions::default()
        };
        refused(
            h.core.server_listen(h.now, options),
            DomException::InvalidAccessError,
        );
        assert_eq!(h.drain(), []);
    }

    #[test]
    fn a_socket_is_announced_open_after_its_handshake() {
        let mut h = Harness::new();
        let (server, ca) = secure_server(&mut h, None);
        let socket = handshaking(&mut h, server, PEER);
        assert_eq!(count(&h, server), 1);
        let mut client = Peer::client(ca.client_config(), "localhost");
        let events = pump(&mut h, socket, &mut client, vec![]);
        assert_eq!(events, [Event::Connect { server, socket }]);
        assert_eq!(h.core.tcp(socket).unwrap().ready_state(), ReadyState::Open);
        assert_eq!(h.deadline(), None, "the handshake timer is gone");
        client.send(b"hello");
        let events = pump(&mut h, socket, &mut client, vec![]);
        assert_eq!(
            events,
            [Event::Data {
                id: socket,
                data: Data::Text("hello".into())
            }]
        );
        h.core.tcp_send(socket, "world").unwrap();
        let out = h.drain();
        pump(&mut h, socket, &mut client, out);
        assert_eq!(client.plain, b"world");
    }

    #[test]
    fn a_failed_handshake_is_the_servers_error_and_the_socket_is_never_announced() {
        let mut h = Harness::new();
        let (server, _) = secure_server(&mut h, Some(1));
        let socket = handshaking(&mut h, server, PEER);
        let out = h.input(Input::Received {
            id: socket,
            data: Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n"),
        });
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0], release(socket));
        assert!(
            matches!(&out[1], Output::Event(Event::Error { id, error })
                if *id == SocketId::from(server) && error.kind() == SocketErrorKind::SecurityProtocol),
            "{out:?}"
        );
        assert!(h.core.tcp(socket).is_none(), "forgotten without a Close");
        assert_eq!(count(&h, server), 0, "it no longer counts");
        assert_eq!(state(&h, server), ReadyState::Open);
        handshaking(&mut h, server, "127.0.0.1:52001");
    }

    #[test]
    fn the_handshake_is_bounded_by_the_connect_timeout() {
        let mut h = Harness::new();
        let (server, _) = secure_server(&mut h, None);
        let socket = handshaking(&mut h, server, PEER);
        let timeout = Config::default().connect_timeout;
        assert_eq!(h.deadline(), Some(h.now + timeout));
        assert_eq!(
            h.advance(timeout),
            [
                release(socket),
                error(
                    server,
                    ErrorCode::NetworkTimeout,
                    "the TLS handshake did not complete within the connect timeout"
                )
            ]
        );
        assert_eq!(count(&h, server), 0);
        assert!(h.core.tcp(socket).is_none());
    }

    #[test]
    fn max_connections_counts_sockets_in_their_handshake() {
        let mut h = Harness::new();
        let (server, _) = secure_server(&mut h, Some(1));
        handshaking(&mut h, server, PEER);
        assert_eq!(
            accept(&mut h, server, "127.0.0.1:52001"),
            Ok(Accepted::Refused)
        );
        assert_eq!(h.drain().len(), 1, "the server's Error");
    }

    #[test]
    fn close_releases_sockets_still_in_their_handshake_without_events() {
        let mut h = Harness::new();
        let (server, ca) = secure_server(&mut h, None);
        let announced = handshaking(&mut h, server, PEER);
        let mut client = Peer::client(ca.client_config(), "localhost");
        pump(&mut h, announced, &mut client, vec![]);
        let first = handshaking(&mut h, server, "127.0.0.1:52001");
        let second = handshaking(&mut h, server, "127.0.0.1:52002");
        h.core.server_close(h.now, server).unwrap();
        assert_eq!(
            h.drain(),
            [
                release(server),
                close(server),
                release(first),
                release(second)
            ]
        );
        assert!(h.core.tcp(first).is_none() && h.core.tcp(second).is_none());
        assert_eq!(
            h.core.tcp(announced).unwrap().ready_state(),
            ReadyState::Open
        );
        assert_eq!(h.advance(Config::default().connect_timeout), []);
        assert_eq!(h.deadline(), None);
    }
}

#[test]
fn ipv6_only_and_buffer_sizes_go_to_listen() {
    let mut h = Harness::new();
    let options = ServerOptions {
        local_address: Some(ip("::")),
        ipv6_only: true,
        send_buffer_size: Some(8192),
        receive_buffer_size: Some(MAX_BUFFER_SIZE),
        ..ServerOptions::default()
    };
    let id = h.core.server_listen(h.now, options).unwrap();
    assert_eq!(
        h.drain(),
        [Output::Action(Action::Listen {
            id,
            local: addr("[::]:0"),
            backlog: DEFAULT_BACKLOG,
            reuse_address: true,
            settings: Box::new(SocketSettings {
                send_buffer: Some(8192),
                receive_buffer: Some(MAX_BUFFER_SIZE),
                ipv6_only: true,
                ..SocketSettings::default()
            }),
        })]
    );
}
