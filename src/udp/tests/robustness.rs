//! Every call in every state, inputs that make no sense, and the memory budget ([BEHAVIOUR §0](crate::behaviour#0-everywhere), [§4](crate::behaviour#4-errors)).

use super::*;

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

#[test]
fn idle_sockets_fit_the_memory_budget() {
    // As for TCP: at most 256 bytes of core state per idle socket, the group list and held
    // datagrams allocated only when used (the table adds its serial number, 8 bytes).
    let udp = std::mem::size_of::<UdpSocket>();
    let server = std::mem::size_of::<ServerSocket>();
    assert!(udp + 8 <= 256, "UdpSocket: {udp} bytes");
    assert!(server + 8 <= 256, "ServerSocket: {server} bytes");
}
