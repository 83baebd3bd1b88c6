//! Multicast groups (join, leave, bounds, the policy, OS refusals), source-specific memberships,
//! and a whole SSDP session ([BEHAVIOUR §3](crate::behaviour#3-udpsocket), [§5](crate::behaviour#5-trust)).

use super::*;

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
