//! A host name as the default destination: resolved, filtered by `dnsQueryType` and the local
//! address, then bound ([BEHAVIOUR §3](crate::behaviour#3-udpsocket)).

use super::*;

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
