//! Opening a UDPSocket: binding with the options, the defaults, invalid options, the policy, bind
//! failures, socket options ([BEHAVIOUR §3](crate::behaviour#3-udpsocket), [§4](crate::behaviour#4-errors), [§5](crate::behaviour#5-trust)).

use super::*;

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
            settings: Box::new(SocketSettings {
                send_buffer: Some(1),
                receive_buffer: Some(1 << 20),
                ipv6_only: false,
                broadcast: true,
                multicast_ttl: Some(0),
                multicast_interface: Some(MulticastInterface::V4(Ipv4Addr::LOCALHOST)),
            }),
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
    assert_eq!(**settings, expected);
}
