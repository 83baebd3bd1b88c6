//! Socket settings (issue 17 §4), read back with getsockopt.

use super::*;

/// Linux doubles `SO_SNDBUF`/`SO_RCVBUF` for its bookkeeping and reads back the double;
/// elsewhere the value set (or more, rounded).
fn assert_buffer(read: usize, asked: u32, what: &str) {
    let asked = asked as usize;
    if cfg!(any(target_os = "linux", target_os = "android")) {
        assert_eq!(read, 2 * asked, "{what}");
    } else {
        assert!(read >= asked, "{what}: {read} < {asked}");
    }
}

const SETTINGS: sockstate::SocketSettings = sockstate::SocketSettings {
    send_buffer: Some(48 * 1024),
    receive_buffer: Some(24 * 1024),
    ipv6_only: false,
    broadcast: false,
    multicast_ttl: None,
    multicast_interface: None,
};

#[test]
fn connect_sets_buffer_sizes_and_the_keep_alive_delay() {
    let poller = Poller::new().unwrap();
    let mut reactor = Reactor::new(&poller, Mode::Edge, limits());
    let id = Core::new(sockstate::Config::default())
        .tcp_open(Instant::now(), "127.0.0.1", 9, TcpOptions::default())
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let to = listener.local_addr().unwrap();
    let mut reports = Vec::new();
    let delay = Some(Duration::from_secs(7));
    reactor.connect(
        &poller,
        id,
        0,
        to,
        None,
        true,
        delay,
        SETTINGS,
        &mut reports,
    );
    assert!(reports.is_empty(), "{reports:?}");
    let key = reactor.attempts[&id.serial()][0];
    let sock = reactor.sources.get(key).unwrap().io.sock();
    assert_buffer(sock.send_buffer_size().unwrap(), 48 * 1024, "SO_SNDBUF");
    assert_buffer(sock.recv_buffer_size().unwrap(), 24 * 1024, "SO_RCVBUF");
    assert!(sock.keepalive().unwrap(), "SO_KEEPALIVE");
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "macos"))]
    assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(7));
    reactor.close_all(&poller);
}

#[test]
fn listen_sets_ipv6_only_and_buffer_sizes_which_accepted_sockets_inherit() {
    let poller = Poller::new().unwrap();
    let mut reactor = Reactor::new(&poller, Mode::Edge, limits());
    let mut core = Core::new(sockstate::Config::default());
    // Linux makes a socket bound to a specific IPv6 address (::1) IPv6-only whatever was
    // set; `false` is read back on an unbound socket below (tests bind loopback only).
    for (local, only) in [("[::1]:0", true), ("127.0.0.1:0", false)] {
        let local: SocketAddr = local.parse().unwrap();
        let id = core
            .server_listen(Instant::now(), sockstate::ServerOptions::default())
            .unwrap();
        let mut reports = Vec::new();
        let settings = sockstate::SocketSettings {
            ipv6_only: only,
            ..SETTINGS
        };
        reactor.listen(&poller, id, local, 4, true, settings, &mut reports);
        let Some(Report::Input(Input::Listening { local, .. })) = reports.pop() else {
            if local.is_ipv6() {
                continue; // no IPv6 loopback here
            }
            panic!("not listening: {reports:?}");
        };
        let key = reactor.main(id.into()).unwrap();
        let sock = reactor.sources.get(key).unwrap().io.sock();
        if local.is_ipv6() {
            assert_eq!(sock.only_v6().unwrap(), only, "IPV6_V6ONLY");
        }
        assert_buffer(sock.send_buffer_size().unwrap(), 48 * 1024, "SO_SNDBUF");
        assert_buffer(sock.recv_buffer_size().unwrap(), 24 * 1024, "SO_RCVBUF");
        reactor.set_reading(&poller, id.into(), true, &mut reports);
        let _client = std::net::TcpStream::connect(local).unwrap();
        let each = Duration::from_millis(100);
        wait_until(&poller, &mut reactor, &mut reports, each, |r| {
            r.iter().any(|r| matches!(r, Report::Accepted { .. }))
        });
        let Some(Report::Accepted { socket, .. }) = reports.pop() else {
            panic!("accepted: {reports:?}");
        };
        assert_buffer(socket.recv_buffer_size().unwrap(), 24 * 1024, "inherited");
    }
    reactor.close_all(&poller);
}

#[test]
fn ipv6_only_is_set_either_way_on_an_ipv6_socket_and_never_on_an_ipv4_one() {
    use super::os::apply_settings;
    let v6: SocketAddr = "[::]:0".parse().unwrap();
    let Ok(socket) = new_socket(Domain::IPV6, Type::STREAM, Protocol::TCP) else {
        return; // no IPv6 here
    };
    for ipv6_only in [true, false, true] {
        let settings = sockstate::SocketSettings {
            ipv6_only,
            ..Default::default()
        };
        apply_settings(&socket, v6, &settings).unwrap();
        assert_eq!(socket.only_v6().unwrap(), ipv6_only);
    }
    let v4 = new_socket(Domain::IPV4, Type::DGRAM, Protocol::UDP).unwrap();
    apply_settings(&v4, "127.0.0.1:0".parse().unwrap(), &Default::default()).unwrap();
}
