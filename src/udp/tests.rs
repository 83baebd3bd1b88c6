//! One fixture per state, one test per state × stimulus, each asserting the whole transcript
//! ([BEHAVIOUR §0](crate::behaviour#0-everywhere), [§3](crate::behaviour#3-udpsocket), [§5](crate::behaviour#5-trust)).

use std::io::ErrorKind::{AddrInUse, AddrNotAvailable, ConnectionRefused, HostUnreachable};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bytes::Bytes;

use crate::testkit::*;
use crate::*;

const LOCAL: &str = "0.0.0.0:40000";
const PEER: &str = "127.0.0.1:7000";
const OTHER: &str = "127.0.0.2:7001";
const GROUP: &str = "239.255.255.250";

fn state(h: &Harness, id: UdpId) -> ReadyState {
    h.core.udp(id).expect("live socket").ready_state()
}

fn buffered(h: &Harness, id: UdpId) -> usize {
    h.core.udp(id).expect("live socket").buffered_amount()
}

fn groups(h: &Harness, id: UdpId) -> Vec<IpAddr> {
    h.core
        .udp(id)
        .expect("live socket")
        .multicast_groups()
        .to_vec()
}

fn with_default_destination() -> UdpOptions {
    UdpOptions {
        remote_address: Some(ip("127.0.0.1")),
        remote_port: Some(7000),
        ..UdpOptions::default()
    }
}

fn datagram(id: UdpId, data: &[u8], from: &str) -> Input {
    Input::Datagram {
        id,
        data: Bytes::copy_from_slice(data),
        remote: addr(from),
    }
}

fn config(high_water_mark: usize) -> Config {
    Config {
        high_water_mark,
        ..Config::default()
    }
}

// ---- fixtures: one per readyState ---------------------------------------------------------

/// `opening`: `Bind` asked, no answer yet.
fn opening(h: &mut Harness, options: UdpOptions) -> UdpId {
    let id = h.core.udp_open(h.now, options).unwrap();
    let out = h.drain();
    assert!(
        matches!(out[..], [Output::Action(Action::Bind { id: b, .. })] if b == id),
        "{out:?}"
    );
    assert_eq!(state(h, id), ReadyState::Opening);
    id
}

fn bound(h: &mut Harness, options: UdpOptions) -> UdpId {
    let id = opening(h, options);
    let out = h.input(Input::Bound {
        id,
        local: addr(LOCAL),
    });
    assert_eq!(out, [open(id), reading(id, true)]);
    id
}

/// `open`, bound to 0.0.0.0:40000, default destination 127.0.0.1:7000.
fn open_socket(h: &mut Harness) -> UdpId {
    bound(h, with_default_destination())
}

/// `closing`: "abc" to the default destination in flight when `close()` was called.
fn closing(h: &mut Harness) -> UdpId {
    let id = open_socket(h);
    h.core.udp_send(id, "abc", None).unwrap();
    assert_eq!(h.drain(), [send_to(id, b"abc", PEER)]);
    h.core.udp_close(h.now, id).unwrap();
    assert_eq!(h.drain(), [reading(id, false)]);
    assert_eq!(state(h, id), ReadyState::Closing);
    id
}

/// `closed` by `close()` with nothing queued, `Release` and `Close` not yet delivered.
fn closed(h: &mut Harness) -> UdpId {
    let id = open_socket(h);
    h.core.udp_close(h.now, id).unwrap();
    assert_eq!(state(h, id), ReadyState::Closed);
    id
}

/// `closed`, `Close` delivered: the id is dead.
fn dead(h: &mut Harness) -> UdpId {
    let id = closed(h);
    assert_eq!(h.drain(), [release(id), close(id)]);
    assert!(h.core.udp(id).is_none());
    id
}

// ---- open ---------------------------------------------------------------------------------

#[test]
fn open_binds_with_the_options() {
    let mut h = Harness::new();
    let options = UdpOptions {
        local_address: Some(ip("127.0.0.1")),
        local_port: Some(5353),
        remote_address: Some(ip("127.0.0.2")),
        remote_port: Some(5354),
        address_reuse: false,
        loopback: true,
        ..UdpOptions::default()
    };
    let id = h.core.udp_open(h.now, options).unwrap();
    assert_eq!(h.drain(), [bind(id, "127.0.0.1:5353", false, true)]);
    let s = h.core.udp(id).unwrap();
    assert_eq!(s.ready_state(), ReadyState::Opening);
    assert_eq!(s.ready_state().as_str(), "opening");
    assert_eq!(s.local_address(), None, "known only from Open");
    assert_eq!(s.remote_address(), Some(addr("127.0.0.2:5354")));
    assert_eq!((s.address_reuse(), s.loopback()), (false, true));
    assert_eq!((s.buffered_amount(), s.suspend_count()), (0, 0));
    assert!(s.multicast_groups().is_empty());
    assert_eq!(h.deadline(), None, "no timer while opening");
}

#[test]
fn the_defaults_bind_an_ephemeral_port_of_the_destinations_family() {
    let mut h = Harness::new();
    let id = h.core.udp_open(h.now, UdpOptions::default()).unwrap();
    // BEHAVIOUR §3: addressReuse (true by default) is for an explicit port only.
    assert_eq!(h.drain(), [bind(id, "0.0.0.0:0", false, false)]);
    assert!(
        h.core.udp(id).unwrap().address_reuse(),
        "the option as given"
    );
    assert_eq!(h.core.udp(id).unwrap().remote_address(), None);
    let v6 = UdpOptions {
        remote_address: Some(ip("::1")),
        remote_port: Some(9),
        local_port: Some(0),
        ..UdpOptions::default()
    };
    let id = h.core.udp_open(h.now, v6).unwrap();
    assert_eq!(h.drain(), [bind(id, "[::]:0", false, false)]);
    let explicit = UdpOptions {
        local_port: Some(5353),
        ..UdpOptions::default()
    };
    let id = h.core.udp_open(h.now, explicit).unwrap();
    assert_eq!(h.drain(), [bind(id, "0.0.0.0:5353", true, false)]);
}

#[test]
fn invalid_options_are_invalid_access_and_create_nothing() {
    let mut h = Harness::new();
    let o = UdpOptions::default;
    for options in [
        UdpOptions {
            remote_address: Some(ip("127.0.0.1")),
            ..o()
        },
        UdpOptions {
            remote_port: Some(7),
            ..o()
        },
        UdpOptions {
            remote_port: Some(0),
            ..with_default_destination()
        },
        UdpOptions {
            remote_address: Some(ip("0.0.0.0")),
            ..with_default_destination()
        },
        UdpOptions {
            local_address: Some(ip("::1")),
            ..with_default_destination()
        },
        UdpOptions {
            ipv6_only: true,
            ..o()
        },
        UdpOptions {
            local_address: Some(ip("::")),
            broadcast: true,
            ..o()
        },
        UdpOptions {
            multicast_interface: Some(MulticastInterface::V6(1)),
            ..o()
        },
        UdpOptions {
            multicast_interface: Some(MulticastInterface::V4(Ipv4Addr::UNSPECIFIED)),
            ..o()
        },
        UdpOptions {
            multicast_interface: Some(MulticastInterface::V4("224.0.0.1".parse().unwrap())),
            ..o()
        },
        UdpOptions {
            local_address: Some(ip("::")),
            multicast_interface: Some(MulticastInterface::V6(0)),
            ..o()
        },
        UdpOptions {
            local_address: Some(ip("::")),
            multicast_interface: Some(MulticastInterface::V4(Ipv4Addr::LOCALHOST)),
            ..o()
        },
        UdpOptions {
            send_buffer_size: Some(0),
            ..o()
        },
        UdpOptions {
            receive_buffer_size: Some(MAX_BUFFER_SIZE + 1),
            ..o()
        },
    ] {
        refused(
            h.core.udp_open(h.now, options),
            DomException::InvalidAccessError,
        );
    }
    assert_eq!(h.drain(), []);
    assert_eq!(h.core.udp_ids().count(), 0);
}

#[test]
fn the_policy_is_asked_before_binding() {
    let mut h = Harness::new();
    h.core = Core::with_policy(Config::default(), NoPrivilegedPorts);
    let low = UdpOptions {
        local_port: Some(53),
        ..UdpOptions::default()
    };
    refused(h.core.udp_open(h.now, low), DomException::SecurityError);
    assert_eq!(h.drain(), [], "a refusal creates nothing");
    assert_eq!(h.core.udp_ids().count(), 0);
    assert!(h.core.udp_open(h.now, UdpOptions::default()).is_ok());
}

#[test]
fn bound_reports_the_local_address_and_opens() {
    let mut h = Harness::new();
    let id = opening(&mut h, UdpOptions::default());
    assert_eq!(
        h.input(Input::Bound {
            id,
            local: addr("0.0.0.0:45678")
        }),
        [open(id), reading(id, true)]
    );
    let s = h.core.udp(id).unwrap();
    assert_eq!(s.ready_state(), ReadyState::Open);
    assert_eq!(s.local_address(), Some(addr("0.0.0.0:45678")));
}

#[test]
fn a_bind_failure_is_an_error_then_close() {
    let mut h = Harness::new();
    let id = opening(&mut h, UdpOptions::default());
    let failed = Input::BindFailed {
        id,
        error: AddrInUse,
    };
    h.fails_before_open(id, failed, AddrInUse, |core| {
        core.udp(id).map(UdpSocket::ready_state)
    });
}

// ---- send ---------------------------------------------------------------------------------

#[test]
fn send_is_invalid_state_unless_open() {
    let mut h = Harness::new();
    let o = opening(&mut h, with_default_destination());
    refused(
        h.core.udp_send(o, "x", None),
        DomException::InvalidStateError,
    );
    let c = closing(&mut h);
    refused(
        h.core.udp_send(c, "x", None),
        DomException::InvalidStateError,
    );
    let d = dead(&mut h);
    refused(
        h.core.udp_send(d, "x", None),
        DomException::InvalidStateError,
    );
    assert_eq!(h.drain(), []);
    assert_eq!((buffered(&h, o), buffered(&h, c)), (0, 3));
}

#[test]
fn datagrams_go_to_the_given_or_the_default_destination_together() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    assert_eq!(h.core.udp_send(id, "one", None), Ok(true));
    assert_eq!(h.core.udp_send(id, "two", Some(addr(OTHER))), Ok(true));
    assert_eq!(h.core.udp_send(id, b"", None), Ok(true));
    assert_eq!(
        h.drain(),
        [send_all(
            id,
            &[(b"one", PEER), (b"two", OTHER), (b"", PEER)]
        )],
        "all in flight at once, in order, in one action"
    );
    assert_eq!(buffered(&h, id), 6, "until each is answered");
    assert_eq!(h.input(Input::Sent { id, count: 1 }), []);
    assert_eq!(buffered(&h, id), 3, "the oldest answered");
    assert_eq!(h.input(Input::Sent { id, count: 2 }), []);
    assert_eq!(buffered(&h, id), 0);
    assert_eq!(
        h.bad_input(Input::Sent { id, count: 1 }),
        InputError::Unexpected("a send completed but none was in flight")
    );
}

#[test]
fn datagrams_in_flight_are_bounded_by_the_config_and_follow_as_answered() {
    let mut h = Harness::with_config(Config {
        max_datagrams_in_flight: 2,
        ..Config::default()
    });
    let id = open_socket(&mut h);
    for d in ["a", "b", "c", "d"] {
        h.core.udp_send(id, d, None).unwrap();
    }
    assert_eq!(h.drain(), [send_all(id, &[(b"a", PEER), (b"b", PEER)])]);
    assert_eq!(
        h.input(Input::Sent { id, count: 1 }),
        [send_to(id, b"c", PEER)]
    );
    h.core.udp_send(id, "e", None).unwrap();
    assert_eq!(h.drain(), [], "two in flight: b and c");
    assert_eq!(
        h.input(Input::Sent { id, count: 2 }),
        [send_all(id, &[(b"d", PEER), (b"e", PEER)])]
    );
}

#[test]
fn datagrams_go_one_at_a_time_with_one_in_flight() {
    let mut h = Harness::with_config(Config {
        max_datagrams_in_flight: 1,
        ..Config::default()
    });
    let id = open_socket(&mut h);
    assert_eq!(h.core.udp_send(id, "one", None), Ok(true));
    assert_eq!(h.core.udp_send(id, "two", Some(addr(OTHER))), Ok(true));
    assert_eq!(h.core.udp_send(id, b"", None), Ok(true));
    assert_eq!(buffered(&h, id), 6);
    assert_eq!(h.drain(), [send_to(id, b"one", PEER)], "one in flight");
    assert_eq!(
        h.input(Input::Sent { id, count: 1 }),
        [send_to(id, b"two", OTHER)]
    );
    assert_eq!(buffered(&h, id), 3);
    assert_eq!(
        h.input(Input::Sent { id, count: 1 }),
        [send_to(id, b"", PEER)]
    );
    assert_eq!(h.input(Input::Sent { id, count: 1 }), []);
    assert_eq!(buffered(&h, id), 0);
}

#[test]
fn a_send_without_a_valid_destination_is_invalid_access() {
    let mut h = Harness::new();
    let id = bound(&mut h, UdpOptions::default());
    refused(
        h.core.udp_send(id, "x", None),
        DomException::InvalidAccessError,
    );
    for to in ["127.0.0.1:0", "0.0.0.0:7", "[::1]:7"] {
        refused(
            h.core.udp_send(id, "x", Some(addr(to))),
            DomException::InvalidAccessError,
        );
    }
    assert_eq!(h.drain(), []);
    assert_eq!(buffered(&h, id), 0);
    assert_eq!(h.core.udp_send(id, "x", Some(addr(PEER))), Ok(true));
}

#[test]
fn a_payload_larger_than_a_datagram_is_invalid_access() {
    let mut h = Harness::new();
    let v4 = open_socket(&mut h);
    let err = h
        .core
        .udp_send(v4, vec![0u8; MAX_DATAGRAM_V4 + 1], None)
        .unwrap_err();
    assert_eq!(err.exception(), DomException::InvalidAccessError);
    assert_eq!(
        err.message(),
        "a datagram to 127.0.0.1:7000 carries at most 65507 bytes; this one has 65508"
    );
    assert_eq!(h.drain(), []);
    assert_eq!(
        h.core.udp_send(v4, vec![0u8; MAX_DATAGRAM_V4], None),
        Ok(true)
    );
    assert_eq!(h.drain().len(), 1, "the largest datagram goes out");

    let v6 = bound(
        &mut h,
        UdpOptions {
            local_address: Some(ip("::")),
            ..UdpOptions::default()
        },
    );
    let to = Some(addr("[::1]:7"));
    refused(
        h.core.udp_send(v6, vec![0u8; MAX_DATAGRAM_V6 + 1], to),
        DomException::InvalidAccessError,
    );
    assert_eq!(
        h.core.udp_send(v6, vec![0u8; MAX_DATAGRAM_V6], to),
        Ok(true)
    );
    // An IPv4-mapped destination goes out as IPv4.
    let mapped = Some(addr("[::ffff:127.0.0.1]:7"));
    refused(
        h.core.udp_send(v6, vec![0u8; MAX_DATAGRAM_V4 + 1], mapped),
        DomException::InvalidAccessError,
    );
    assert_eq!(buffered(&h, v6), MAX_DATAGRAM_V6);
}

#[test]
fn send_returns_true_up_to_exactly_the_high_water_mark_and_drain_fires_once_empty() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    assert_eq!(h.core.udp_send(id, vec![1u8; 65_507], None), Ok(true));
    assert_eq!(h.core.udp_send(id, vec![2u8; 29], None), Ok(true));
    assert_eq!(buffered(&h, id), 65_536);
    assert_eq!(h.core.udp_send(id, vec![3u8; 1], None), Ok(false));
    assert_eq!(h.core.udp_send(id, vec![4u8; 1], None), Ok(false));
    assert_eq!(h.drain().len(), 1, "all four in flight, in one action");
    // bufferedAmount is exact per datagram answered, and Drain waits for the last.
    for left in [29 + 1 + 1, 1 + 1, 1] {
        assert_eq!(h.input(Input::Sent { id, count: 1 }), []);
        assert_eq!(buffered(&h, id), left);
    }
    assert_eq!(h.input(Input::Sent { id, count: 1 }), [drain(id)], "once");
    assert_eq!(buffered(&h, id), 0);
    // Below the mark: no drain.
    h.core.udp_send(id, "x", None).unwrap();
    h.drain();
    assert_eq!(h.input(Input::Sent { id, count: 1 }), []);
}

#[test]
fn the_hard_caps_are_quota_exceeded_and_queue_nothing() {
    let mut h = Harness::with_config(Config {
        send_buffer_limit: 10,
        max_queued_datagrams: 3,
        ..config(4)
    });
    let id = open_socket(&mut h);
    h.core.udp_send(id, vec![0u8; 8], None).unwrap();
    refused(
        h.core.udp_send(id, vec![0u8; 3], None),
        DomException::QuotaExceededError,
    );
    assert_eq!(buffered(&h, id), 8);
    h.core.udp_send(id, b"", None).unwrap();
    h.core.udp_send(id, b"", None).unwrap();
    refused(
        h.core.udp_send(id, b"", None),
        DomException::QuotaExceededError,
    );
    assert_eq!(state(&h, id), ReadyState::Open);
    assert_eq!(h.drain().len(), 1);
    h.input(Input::Sent { id, count: 1 });
    assert_eq!(h.core.udp_send(id, vec![0u8; 2], None), Ok(true));
}

#[test]
fn a_datagram_the_os_refuses_is_an_error_and_the_socket_stays_open() {
    let mut h = Harness::with_config(config(1));
    let id = open_socket(&mut h);
    assert_eq!(h.core.udp_send(id, "ab", None), Ok(false));
    h.core.udp_send(id, "cd", Some(addr(OTHER))).unwrap();
    assert_eq!(h.drain(), [send_all(id, &[(b"ab", PEER), (b"cd", OTHER)])]);
    let out = h.input(Input::SendFailed {
        id,
        error: ConnectionRefused,
    });
    let refused_error = Output::Event(Event::Error {
        id: id.into(),
        error: SocketError {
            code: ErrorCode::ConnectionRefused,
            message: format!(
                "the datagram to {PEER} was dropped: {}",
                std::io::Error::from(ConnectionRefused)
            )
            .into(),
        },
    });
    assert_eq!(out, [refused_error], "the oldest one failed");
    assert_eq!((state(&h, id), buffered(&h, id)), (ReadyState::Open, 2));
    // The last one failing still empties the queue: Drain after the Error.
    let out = h.input(Input::SendFailed {
        id,
        error: HostUnreachable,
    });
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(matches!(&out[0], Output::Event(Event::Error { error, .. })
        if error.name() == "NetworkError" && error.message.contains(OTHER)));
    assert_eq!(out[1], drain(id));
    assert_eq!(h.core.udp_send(id, "ef", None), Ok(false));
    assert_eq!(h.drain(), [send_to(id, b"ef", PEER)]);
}

// ---- messages -----------------------------------------------------------------------------

#[test]
fn every_datagram_is_one_message_with_its_source() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    let out = h.input(datagram(id, b"\xffhello\0", OTHER));
    assert_eq!(out, [message(id, b"\xffhello\0", OTHER)]);
    let out = h.input(datagram(id, b"", "[::ffff:1.2.3.4]:9"));
    assert_eq!(out, [message(id, b"", "[::ffff:1.2.3.4]:9")]);
}

// ---- suspend / resume ---------------------------------------------------------------------

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

// ---- multicast ----------------------------------------------------------------------------

#[test]
fn join_and_leave_while_open_are_actions() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core.udp_join_multicast_group(id, ip(GROUP)).unwrap();
    h.core
        .udp_join_multicast_group(id, ip("224.0.0.251"))
        .unwrap();
    assert_eq!(h.drain(), [join(id, GROUP), join(id, "224.0.0.251")]);
    assert_eq!(groups(&h, id), [ip(GROUP), ip("224.0.0.251")]);
    h.core.udp_leave_multicast_group(id, ip(GROUP)).unwrap();
    assert_eq!(h.drain(), [leave(id, GROUP)]);
    assert_eq!(groups(&h, id), [ip("224.0.0.251")]);
}

#[test]
fn group_calls_while_opening_are_applied_at_open() {
    let mut h = Harness::new();
    let id = opening(&mut h, UdpOptions::default());
    h.core.udp_join_multicast_group(id, ip(GROUP)).unwrap();
    h.core
        .udp_join_multicast_group(id, ip("224.0.0.251"))
        .unwrap();
    h.core
        .udp_join_multicast_group(id, ip("224.0.0.252"))
        .unwrap();
    h.core
        .udp_leave_multicast_group(id, ip("224.0.0.251"))
        .unwrap();
    assert_eq!(h.drain(), [], "nothing before the socket exists");
    // The rules hold while opening too.
    refused(
        h.core.udp_join_multicast_group(id, ip(GROUP)),
        DomException::InvalidAccessError,
    );
    refused(
        h.core.udp_leave_multicast_group(id, ip("224.0.0.251")),
        DomException::InvalidAccessError,
    );
    assert_eq!(
        h.input(Input::Bound {
            id,
            local: addr(LOCAL)
        }),
        [
            open(id),
            join(id, GROUP),
            join(id, "224.0.0.252"),
            reading(id, true)
        ]
    );
}

#[test]
fn bad_groups_duplicates_and_unknown_groups_are_invalid_access() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    for group in ["127.0.0.1", "10.0.0.1", "255.255.255.255", "ff02::fb"] {
        refused(
            h.core.udp_join_multicast_group(id, ip(group)),
            DomException::InvalidAccessError,
        );
        refused(
            h.core.udp_leave_multicast_group(id, ip(group)),
            DomException::InvalidAccessError,
        );
    }
    refused(
        h.core.udp_leave_multicast_group(id, ip(GROUP)),
        DomException::InvalidAccessError,
    );
    h.core.udp_join_multicast_group(id, ip(GROUP)).unwrap();
    refused(
        h.core.udp_join_multicast_group(id, ip(GROUP)),
        DomException::InvalidAccessError,
    );
    assert_eq!(h.drain(), [join(id, GROUP)]);
    assert_eq!(groups(&h, id), [ip(GROUP)]);

    let v6 = bound(
        &mut h,
        UdpOptions {
            local_address: Some(ip("::")),
            ..UdpOptions::default()
        },
    );
    refused(
        h.core.udp_join_multicast_group(v6, ip(GROUP)),
        DomException::InvalidAccessError,
    );
    h.core.udp_join_multicast_group(v6, ip("ff02::fb")).unwrap();
    assert_eq!(h.drain(), [join(v6, "ff02::fb")]);
}

#[test]
fn at_most_twenty_groups() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    let group = |i: usize| ip(&format!("239.0.0.{i}"));
    for i in 0..MAX_MULTICAST_GROUPS {
        h.core.udp_join_multicast_group(id, group(i)).unwrap();
    }
    assert_eq!(h.drain().len(), 20);
    refused(
        h.core.udp_join_multicast_group(id, group(20)),
        DomException::QuotaExceededError,
    );
    assert_eq!(h.drain(), []);
    h.core.udp_leave_multicast_group(id, group(3)).unwrap();
    h.core.udp_join_multicast_group(id, group(20)).unwrap();
    assert_eq!(h.drain(), [leave(id, "239.0.0.3"), join(id, "239.0.0.20")]);
    assert_eq!(groups(&h, id).len(), 20);
}

#[test]
fn the_policy_is_asked_before_joining() {
    let mut h = Harness::new();
    let policy = AllowList::new()
        .local_port(5353)
        .multicast_group(ip("224.0.0.251"));
    h.core = Core::with_policy(Config::default(), policy);
    let options = UdpOptions {
        local_port: Some(5353),
        ..UdpOptions::default()
    };
    let id = bound(&mut h, options);
    refused(
        h.core.udp_join_multicast_group(id, ip(GROUP)),
        DomException::SecurityError,
    );
    assert_eq!(h.drain(), []);
    assert!(groups(&h, id).is_empty(), "a refusal records nothing");
    h.core
        .udp_join_multicast_group(id, ip("224.0.0.251"))
        .unwrap();
    assert_eq!(h.drain(), [join(id, "224.0.0.251")]);
}

#[test]
fn a_join_the_os_refuses_is_an_error_and_the_socket_stays_open() {
    let mut h = Harness::new();
    let id = open_socket(&mut h);
    h.core.udp_join_multicast_group(id, ip(GROUP)).unwrap();
    h.drain();
    let out = h.input(Input::JoinFailed {
        id,
        group: ip(GROUP),
        source: None,
        error: AddrNotAvailable,
    });
    let message = format!(
        "could not join multicast group {GROUP}: {}",
        std::io::Error::from(AddrNotAvailable)
    );
    assert_eq!(out, [error(id, ErrorCode::Network, &message)]);
    assert_eq!(state(&h, id), ReadyState::Open);
    assert!(groups(&h, id).is_empty(), "the group is not joined");
    h.core.udp_join_multicast_group(id, ip(GROUP)).unwrap();
    assert_eq!(h.drain(), [join(id, GROUP)]);
    // A failure for a join the app has since undone is still reported.
    h.core.udp_leave_multicast_group(id, ip(GROUP)).unwrap();
    h.drain();
    let out = h.input(Input::JoinFailed {
        id,
        group: ip(GROUP),
        source: None,
        error: AddrNotAvailable,
    });
    assert_eq!(out, [error(id, ErrorCode::Network, &message)]);
}

#[test]
fn group_calls_are_invalid_state_once_closing() {
    let mut h = Harness::new();
    let c = closing(&mut h);
    refused(
        h.core.udp_join_multicast_group(c, ip(GROUP)),
        DomException::InvalidStateError,
    );
    refused(
        h.core.udp_leave_multicast_group(c, ip(GROUP)),
        DomException::InvalidStateError,
    );
    let d = closed(&mut h);
    refused(
        h.core.udp_join_multicast_group(d, ip(GROUP)),
        DomException::InvalidStateError,
    );
    assert_eq!(h.drain(), [release(d), close(d)]);
    refused(
        h.core.udp_join_multicast_group(d, ip(GROUP)),
        DomException::InvalidStateError,
    );
    refused(
        h.core.udp_leave_multicast_group(d, ip(GROUP)),
        DomException::InvalidStateError,
    );
}

// ---- close --------------------------------------------------------------------------------

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

// ---- every ApiError in every state --------------------------------------------------------

#[test]
fn every_call_in_every_state() {
    use DomException::{InvalidAccessError as Access, InvalidStateError as State};
    type Fixture = fn(&mut Harness) -> UdpId;
    let fixtures: [(&str, Fixture); 5] = [
        ("opening", |h| opening(h, with_default_destination())),
        ("open", open_socket),
        ("closing", closing),
        ("closed", closed),
        ("dead", dead),
    ];
    let g = ip(GROUP);
    for (name, fixture) in fixtures {
        let mut h = Harness::new();
        let id = fixture(&mut h);
        let before = h
            .core
            .udp(id)
            .map(|s| (s.ready_state(), s.buffered_amount()));
        let is = |names: &[&str]| names.contains(&name);
        // send: only open; a bad argument is still InvalidStateError elsewhere.
        if is(&["open"]) {
            refused(h.core.udp_send(id, "x", Some(addr("127.0.0.1:0"))), Access);
        } else {
            refused(h.core.udp_send(id, "x", None), State);
            refused(h.core.udp_send(id, "x", Some(addr("127.0.0.1:0"))), State);
        }
        // join/leave: opening and open; a bad group is InvalidAccessError there.
        if is(&["opening", "open"]) {
            refused(h.core.udp_join_multicast_group(id, ip("10.0.0.1")), Access);
            refused(h.core.udp_leave_multicast_group(id, g), Access);
        } else {
            refused(h.core.udp_join_multicast_group(id, g), State);
            refused(h.core.udp_leave_multicast_group(id, g), State);
        }
        // resume without suspend: InvalidStateError everywhere; suspend only when dead.
        refused(h.core.udp_resume(id), State);
        if is(&["dead"]) {
            refused(h.core.udp_suspend(id), State);
            refused(h.core.udp_close(h.now, id), State);
        } else {
            assert_eq!(h.core.udp_suspend(id), Ok(()), "{name}");
            assert_eq!(h.core.udp_resume(id), Ok(()), "{name}");
        }
        let after = h
            .core
            .udp(id)
            .map(|s| (s.ready_state(), s.buffered_amount()));
        assert_eq!(before, after, "{name}: refused calls change nothing");
        let expected = match name {
            "open" => vec![reading(id, false), reading(id, true)],
            "closed" => vec![release(id), close(id)],
            _ => vec![],
        };
        assert_eq!(h.drain(), expected, "{name}");
    }
}

// ---- inputs that make no sense ------------------------------------------------------------

#[test]
fn nonsense_inputs_are_refused_and_change_nothing() {
    let mut h = Harness::new();
    let o = opening(&mut h, with_default_destination());
    for input in [
        Input::Sent { id: o, count: 1 },
        Input::SendFailed {
            id: o,
            error: HostUnreachable,
        },
        datagram(o, b"x", PEER),
        Input::JoinFailed {
            id: o,
            group: ip(GROUP),
            source: None,
            error: AddrNotAvailable,
        },
    ] {
        assert!(matches!(h.bad_input(input), InputError::Unexpected(_)));
    }
    assert_eq!(state(&h, o), ReadyState::Opening);

    let b = open_socket(&mut h);
    assert!(matches!(
        h.bad_input(Input::Sent { id: b, count: 1 }),
        InputError::Unexpected(_)
    ));
    assert!(matches!(
        h.bad_input(Input::Bound {
            id: b,
            local: addr(LOCAL)
        }),
        InputError::Unexpected(_)
    ));
    assert!(matches!(
        h.bad_input(Input::BindFailed {
            id: b,
            error: AddrInUse
        }),
        InputError::Unexpected(_)
    ));
    assert_eq!(state(&h, b), ReadyState::Open);

    // Released, its Release not yet polled: a race, ignored; once polled, unknown.
    let c = closed(&mut h);
    assert_eq!(h.core.handle_input(h.now, datagram(c, b"x", PEER)), Ok(()));
    assert_eq!(h.drain(), [release(c), close(c)]);
    assert_eq!(
        h.core.handle_input(h.now, datagram(c, b"x", PEER)),
        Err(InputError::UnknownId)
    );
    assert_eq!(
        h.bad_input(Input::Sent { id: c, count: 1 }),
        InputError::UnknownId
    );
    assert_eq!(h.bad_input(datagram(c, b"x", PEER)), InputError::UnknownId);
}

// ---- a whole session ----------------------------------------------------------------------

/// The W3C draft's SSDP M-SEARCH example: join, send to the group, take the answers, close.
#[test]
fn an_ssdp_search_session() {
    let mut h = Harness::new();
    let ssdp = "239.255.255.250:1900";
    let id = h
        .core
        .udp_open(
            h.now,
            UdpOptions {
                local_address: Some(ip("127.0.0.1")),
                loopback: true,
                ..UdpOptions::default()
            },
        )
        .unwrap();
    h.core.udp_join_multicast_group(id, ip(GROUP)).unwrap();
    refused(
        h.core.udp_send(id, "M-SEARCH", Some(addr(ssdp))),
        DomException::InvalidStateError,
    );
    assert_eq!(h.drain(), [bind(id, "127.0.0.1:0", false, true)]);
    let out = h.input(Input::Bound {
        id,
        local: addr("127.0.0.1:50123"),
    });
    assert_eq!(out, [open(id), join(id, GROUP), reading(id, true)]);
    assert_eq!(h.core.udp_send(id, "M-SEARCH", Some(addr(ssdp))), Ok(true));
    assert_eq!(h.drain(), [send_to(id, b"M-SEARCH", ssdp)]);
    assert_eq!(h.input(Input::Sent { id, count: 1 }), []);
    let answer = datagram(id, b"HTTP/1.1 200 OK", "127.0.0.1:1900");
    assert_eq!(
        h.input(answer),
        [message(id, b"HTTP/1.1 200 OK", "127.0.0.1:1900")]
    );
    h.core.udp_close(h.now, id).unwrap();
    assert_eq!(h.drain(), [release(id), close(id)]);
    assert_eq!(h.deadline(), None);
}

#[test]
fn idle_sockets_fit_the_memory_budget() {
    // As for TCP: at most 256 bytes of core state per idle socket, the group list and held
    // datagrams allocated only when used (the table adds its serial number, 8 bytes).
    let udp = std::mem::size_of::<UdpSocket>();
    let server = std::mem::size_of::<ServerSocket>();
    assert!(udp + 8 <= 256, "UdpSocket: {udp} bytes");
    assert!(server + 8 <= 256, "ServerSocket: {server} bytes");
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

#[test]
fn socket_options_go_to_bind() {
    let mut h = Harness::new();
    let options = UdpOptions {
        local_address: Some(ip("127.0.0.1")),
        broadcast: true,
        multicast_time_to_live: Some(0),
        multicast_interface: Some(MulticastInterface::V4(Ipv4Addr::LOCALHOST)),
        send_buffer_size: Some(1),
        receive_buffer_size: Some(1 << 20),
        ..UdpOptions::default()
    };
    let id = h.core.udp_open(h.now, options).unwrap();
    assert_eq!(
        h.drain(),
        [Output::Action(Action::Bind {
            id,
            local: addr("127.0.0.1:0"),
            reuse_address: false,
            loopback: false,
            settings: SocketSettings {
                send_buffer: Some(1),
                receive_buffer: Some(1 << 20),
                ipv6_only: false,
                broadcast: true,
                multicast_ttl: Some(0),
                multicast_interface: Some(MulticastInterface::V4(Ipv4Addr::LOCALHOST)),
            },
        })]
    );
    let v6 = UdpOptions {
        local_address: Some(ip("::")),
        ipv6_only: true,
        multicast_time_to_live: Some(255),
        multicast_interface: Some(MulticastInterface::V6(1)),
        ..UdpOptions::default()
    };
    let id = h.core.udp_open(h.now, v6).unwrap();
    let out = h.drain();
    let [Output::Action(Action::Bind {
        id: bound,
        settings,
        ..
    })] = &out[..]
    else {
        panic!("{out:?}")
    };
    assert_eq!(*bound, id);
    let expected = SocketSettings {
        ipv6_only: true,
        multicast_ttl: Some(255),
        multicast_interface: Some(MulticastInterface::V6(1)),
        ..SocketSettings::default()
    };
    assert_eq!(*settings, expected);
}

// ---- source-specific multicast (Node's addSourceSpecificMembership) ----------------------

#[test]
fn source_specific_memberships_are_joined_at_open_and_left() {
    let mut h = Harness::new();
    let id = h.core.udp_open(h.now, UdpOptions::default()).unwrap();
    h.drain();
    let (src, group) = (ip("192.0.2.7"), ip("232.1.2.3"));
    h.core
        .udp_add_source_specific_membership(id, src, group)
        .unwrap();
    assert_eq!(h.drain(), [], "recorded while opening");
    let out = h.input(Input::Bound {
        id,
        local: addr("0.0.0.0:4000"),
    });
    assert_eq!(
        out[..2],
        [open(id), join_from(id, "232.1.2.3", "192.0.2.7")]
    );
    let s = h.core.udp(id).unwrap();
    assert_eq!(s.source_memberships(), [(group, src)]);
    assert!(s.multicast_groups().is_empty());
    // A second source of the same group is its own membership.
    let other = ip("192.0.2.8");
    h.core
        .udp_add_source_specific_membership(id, other, group)
        .unwrap();
    assert_eq!(h.drain(), [join_from(id, "232.1.2.3", "192.0.2.8")]);
    h.core
        .udp_drop_source_specific_membership(id, src, group)
        .unwrap();
    assert_eq!(h.drain(), [leave_from(id, "232.1.2.3", "192.0.2.7")]);
    assert_eq!(
        h.core.udp(id).unwrap().source_memberships(),
        [(group, other)]
    );
    // The OS refusing one: Error, that membership forgotten, the socket open.
    let out = h.input(Input::JoinFailed {
        id,
        group,
        source: Some(other),
        error: std::io::ErrorKind::Unsupported,
    });
    assert!(
        matches!(out[..], [Output::Event(Event::Error { .. })]),
        "{out:?}"
    );
    let s = h.core.udp(id).unwrap();
    assert!(s.source_memberships().is_empty());
    assert_eq!(s.ready_state(), ReadyState::Open);
}

#[test]
fn bad_source_specific_memberships_are_refused_and_change_nothing() {
    let mut h = Harness::new();
    let id = h.core.udp_open(h.now, UdpOptions::default()).unwrap();
    h.input(Input::Bound {
        id,
        local: addr("0.0.0.0:4000"),
    });
    h.drain();
    let (src, group) = (ip("192.0.2.7"), ip("232.1.2.3"));
    h.core
        .udp_add_source_specific_membership(id, src, group)
        .unwrap();
    h.core
        .udp_join_multicast_group(id, ip("239.1.1.1"))
        .unwrap();
    h.drain();
    let access = DomException::InvalidAccessError;
    for (source, group) in [
        (src, ip("192.0.2.9")),     // not a multicast group
        (ip("239.9.9.9"), group),   // a multicast source
        (ip("0.0.0.0"), group),     // an unspecified source
        (ip("2001:db8::1"), group), // another family
        (src, ip("ff3e::1")),       // another family
        (src, group),               // already added
        (src, ip("239.1.1.1")),     // joined for every source
    ] {
        refused(
            h.core.udp_add_source_specific_membership(id, source, group),
            access,
        );
    }
    refused(h.core.udp_join_multicast_group(id, group), access);
    refused(
        h.core
            .udp_drop_source_specific_membership(id, ip("192.0.2.8"), group),
        access,
    );
    // Both kinds count against one limit.
    for n in 2..MAX_MULTICAST_GROUPS as u8 {
        let source = IpAddr::from([192, 0, 2, n + 10]);
        h.core
            .udp_add_source_specific_membership(id, source, group)
            .unwrap();
    }
    refused(
        h.core
            .udp_add_source_specific_membership(id, ip("192.0.2.200"), group),
        DomException::QuotaExceededError,
    );
    h.drain();
    h.core.udp_close(h.now, id).unwrap();
    refused(
        h.core
            .udp_add_source_specific_membership(id, src, ip("232.9.9.9")),
        DomException::InvalidStateError,
    );
    assert!(h
        .drain()
        .iter()
        .all(|o| !matches!(o, Output::Action(Action::JoinMulticast { .. }))));
}

// ---- a host name as the default destination (remote_host, dnsQueryType) ------------------

fn named(host: &str) -> UdpOptions {
    UdpOptions::default()
        .remote_host(Some(host.to_owned()))
        .remote_port(Some(7000))
}

/// `opening`, resolving: `Resolve` asked, no `Bind` yet.
fn resolving(h: &mut Harness, options: UdpOptions) -> UdpId {
    let id = h.core.udp_open(h.now, options).unwrap();
    let out = h.drain();
    assert!(
        matches!(&out[..], [Output::Action(Action::Resolve { id: r, name })]
            if *r == SocketId::from(id) && name.as_str() == "example.org"),
        "{out:?}"
    );
    assert_eq!(state(h, id), ReadyState::Opening);
    assert_eq!(h.core.udp(id).unwrap().remote_address(), None);
    id
}

fn answer(id: UdpId, ips: &[&str]) -> Input {
    Input::Resolved {
        id: id.into(),
        result: Ok(ips.iter().map(|s| ip(s)).collect()),
    }
}

#[test]
fn a_name_is_resolved_then_the_socket_binds_in_the_family_of_the_answer() {
    let mut h = Harness::new();
    let id = resolving(&mut h, named("example.org"));
    refused(
        h.core.udp_send(id, "x", None),
        DomException::InvalidStateError,
    );
    let out = h.input(answer(id, &["2001:db8::1", "192.0.2.1"]));
    assert_eq!(out, [bind(id, "[::]:0", false, false)]);
    assert_eq!(state(&h, id), ReadyState::Opening, "opening until bound");
    let s = h.core.udp(id).unwrap();
    assert_eq!(s.remote_address(), Some(addr("[2001:db8::1]:7000")));
    let out = h.input(Input::Bound {
        id,
        local: addr("[::]:40000"),
    });
    assert_eq!(out, [open(id), reading(id, true)]);
    assert_eq!(h.core.udp_send(id, "x", None), Ok(true));
    assert_eq!(h.drain(), [send_to(id, b"x", "[2001:db8::1]:7000")]);
}

#[test]
fn dns_query_type_and_a_fixed_local_address_filter_the_answer() {
    let mut h = Harness::new();
    let options = named("example.org").dns_query_type(Some(DnsQueryType::Ipv4));
    let id = resolving(&mut h, options);
    let out = h.input(answer(id, &["2001:db8::1", "192.0.2.1"]));
    assert_eq!(out, [bind(id, "0.0.0.0:0", false, false)]);
    assert_eq!(
        h.core.udp(id).unwrap().remote_address(),
        Some(addr("192.0.2.1:7000"))
    );

    let options = named("example.org").local_address(Some(ip("::1")));
    let id = resolving(&mut h, options);
    let out = h.input(answer(id, &["192.0.2.1", "2001:db8::1"]));
    assert_eq!(out, [bind(id, "[::1]:0", false, false)]);
    assert_eq!(
        h.core.udp(id).unwrap().remote_address(),
        Some(addr("[2001:db8::1]:7000"))
    );
}

#[test]
fn a_name_without_a_usable_address_is_domain_not_found() {
    let mut h = Harness::new();
    type Answer = Result<Vec<IpAddr>, ResolveError>;
    let cases: [(UdpOptions, Answer, &str); 4] = [
        (
            named("example.org"),
            Err(ResolveError::NotFound),
            "example.org has no address",
        ),
        (
            named("example.org").dns_query_type(Some(DnsQueryType::Ipv6)),
            Ok(vec![ip("192.0.2.1")]),
            "example.org has no ipv6 address",
        ),
        (
            named("example.org").local_address(Some(ip("127.0.0.1"))),
            Ok(vec![ip("2001:db8::1")]),
            "example.org has no IPv4 address, the socket's family",
        ),
        (
            named("example.org"),
            Ok(vec![]),
            "example.org has no address",
        ),
    ];
    for (options, result, message) in cases {
        let id = resolving(&mut h, options);
        let out = h.input(Input::Resolved {
            id: id.into(),
            result,
        });
        assert_eq!(
            out,
            [
                release(id),
                error(id, ErrorCode::DomainNotFound, message),
                close(id)
            ]
        );
    }
}

#[test]
fn close_while_resolving_releases_and_a_late_answer_is_for_a_dead_id() {
    let mut h = Harness::new();
    let id = resolving(&mut h, named("example.org"));
    h.core.udp_close(h.now, id).unwrap();
    assert_eq!(h.drain(), [release(id), close(id)]);
    assert_eq!(
        h.core.handle_input(h.now, answer(id, &["192.0.2.1"])),
        Err(InputError::UnknownId)
    );
}

#[test]
fn an_ip_literal_host_binds_at_once_and_bad_hosts_are_invalid_access() {
    let mut h = Harness::new();
    let id = opening(&mut h, named("127.0.0.2"));
    assert_eq!(
        h.core.udp(id).unwrap().remote_address(),
        Some(addr("127.0.0.2:7000"))
    );
    for options in [
        named(""),
        named(&"a".repeat(254)),
        named("bad..name"),
        named("-x.example"),
        named("example.org").remote_address(Some(ip("127.0.0.1"))),
        named("example.org").remote_port(None),
        named("example.org").remote_port(Some(0)),
        named("127.0.0.1").dns_query_type(Some(DnsQueryType::Ipv6)),
        named("example.org")
            .local_address(Some(ip("::")))
            .dns_query_type(Some(DnsQueryType::Ipv4)),
    ] {
        refused(
            h.core.udp_open(h.now, options),
            DomException::InvalidAccessError,
        );
    }
    assert_eq!(h.core.udp_ids().count(), 1);
}

mod batch;
