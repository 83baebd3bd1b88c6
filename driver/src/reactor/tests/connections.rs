//! Connections: accepted sockets' options, non-blocking sockets, racing connection attempts, a
//! resting server.

use super::*;

#[test]
fn accepted_connections_have_no_delay_and_the_read_hint() {
    let poller = Poller::new().unwrap();
    let mut reactor = Reactor::new(&poller, Mode::Edge, limits());
    let (_, local) = listening(&poller, &mut reactor);
    let mut reports = Vec::new();
    let _client = std::net::TcpStream::connect(local).unwrap();
    let each = Duration::from_millis(100);
    wait_until(&poller, &mut reactor, &mut reports, each, |r| !r.is_empty());
    let [Report::Accepted { socket, .. }] = &reports[..] else {
        panic!("one connection accepted: {reports:?}");
    };
    assert!(socket.tcp_nodelay().unwrap(), "TCP_NODELAY");
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::fd::AsRawFd;
        let (mut on, mut len): (libc::c_int, libc::socklen_t) = (0, 4);
        // SAFETY: a valid descriptor and an option buffer of the size given.
        let r = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::SOL_TCP,
                libc::TCP_INQ,
                (&mut on as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!((r, on), (0, 1), "TCP_INQ");
    }
    reactor.close_all(&poller);
}

#[test]
#[cfg(unix)]
fn new_sockets_are_non_blocking() {
    for (ty, protocol) in [(Type::STREAM, Protocol::TCP), (Type::DGRAM, Protocol::UDP)] {
        let socket = new_socket(Domain::IPV4, ty, protocol).unwrap();
        assert!(socket.nonblocking().unwrap(), "{ty:?}");
    }
}

#[test]
fn racing_attempts_report_the_winner_only_and_the_loser_is_closed_on_abort() {
    in_each_mode(limits(), |_, poller, reactor| {
        let mut core = Core::new(sockstate::Config::default());
        let id = core
            .tcp_open(Instant::now(), "127.0.0.1", 9, TcpOptions::default())
            .unwrap();
        let (hole, _keep) = black_hole();
        let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut reports = Vec::new();
        let connect = |reactor: &mut Reactor, attempt, to, reports: &mut Vec<Report>| {
            reactor.connect(
                poller,
                id,
                attempt,
                to,
                None,
                true,
                None,
                Default::default(),
                reports,
            );
        };
        connect(reactor, 0, hole, &mut reports);
        connect(reactor, 1, open.local_addr().unwrap(), &mut reports);
        assert!(reports.is_empty(), "both are in progress");
        assert_eq!(reactor.sources.len(), 2, "one OS socket per attempt");
        let end = Instant::now() + Duration::from_secs(5);
        while reports.is_empty() && Instant::now() < end {
            reactor
                .wait(poller, Some(Duration::from_millis(100)), &mut reports)
                .unwrap();
        }
        let inputs: Vec<Input> = reports
            .drain(..)
            .map(|r| match r {
                Report::Input(input) => input,
                Report::Accepted { .. } => panic!("nothing listens here"),
            })
            .collect();
        assert!(
            matches!(&inputs[..], [Input::Connected { attempt: 1, .. }]),
            "{inputs:?}"
        );
        // Nothing more of the loser, however long it is left alone.
        reactor
            .wait(poller, Some(Duration::from_millis(100)), &mut reports)
            .unwrap();
        assert!(reports.is_empty());
        reactor.abort_connect(poller, id, 0);
        assert_eq!(reactor.sources.len(), 1, "the loser's socket is closed");
        reactor.release(poller, id.into());
        assert!(reactor.sources.len() == 0 && reactor.is_idle());
    })
}

#[test]
fn a_resting_server_accepts_nothing_until_its_rest_is_over() {
    in_each_mode(limits(), |mode, poller, reactor| {
        let (id, local) = listening(poller, reactor);
        let mut reports = Vec::new();
        let key = reactor.main(id.into()).unwrap();
        // As after `accept` ran out of descriptors, with a connection waiting.
        let rest = Duration::from_millis(200);
        let started = Instant::now();
        reactor.rest(key, started + rest);
        reactor.sync(poller, key, &mut reports);
        if mode == Mode::Oneshot {
            assert_eq!(reactor.sources.get(key).unwrap().armed, Interest::NONE);
        }
        let _client = std::net::TcpStream::connect(local).unwrap();
        // Nothing is accepted meanwhile, and the wait ends with the rest, not the timeout.
        while started.elapsed() < rest {
            reactor
                .wait(poller, Some(Duration::from_secs(5)), &mut reports)
                .unwrap();
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "the rest never ended"
            );
            if started.elapsed() < rest {
                assert!(reports.is_empty(), "accepted while resting");
            }
        }
        assert!(reactor.resting.is_empty() && !reactor.sources.get(key).unwrap().resting);
        let end = Instant::now() + Duration::from_secs(5);
        while reports.is_empty() && Instant::now() < end {
            reactor
                .wait(poller, Some(Duration::from_millis(100)), &mut reports)
                .unwrap();
        }
        assert!(
            matches!(&reports[..], [Report::Accepted { server, .. }] if *server == id),
            "accepting again after the rest"
        );
        reports.clear();
    })
}
