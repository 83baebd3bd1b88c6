//! Host names resolved by the I/O layer, and `dnsQueryType` ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket)).

use super::*;

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
