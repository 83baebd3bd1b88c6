//! Reads: an end of stream with the last bytes, small reads copied and large ones split off the
//! buffer, buffer reuse, whether bytes or a FIN are left.

use super::*;

#[test]
fn an_end_of_stream_that_came_with_the_last_bytes_is_reported() {
    use std::io::Write;
    in_each_mode(
        Limits {
            reads_per_turn: 4,
            ..limits()
        },
        |mode, poller, reactor| {
            let (_id, mut peer) = connected(poller, reactor, true);
            // Bytes and FIN queued before the reactor looks: one event for both, and a read
            // takes the bytes only; nothing more will arrive to raise another event.
            peer.write_all(b"last words").unwrap();
            peer.shutdown(Shutdown::Write).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            let mut reports = Vec::new();
            let each = Duration::from_secs(1);
            wait_until(poller, reactor, &mut reports, each, |r| {
                r.iter()
                    .any(|r| matches!(r, Report::Input(Input::Eof { .. })))
            });
            let eof = reports.pop();
            assert!(
                matches!(eof, Some(Report::Input(Input::Eof { .. }))),
                "{mode:?}"
            );
            assert_eq!(received(&mut reports), b"last words", "{mode:?}");
        },
    )
}

#[test]
fn small_reads_are_copied_out_of_the_buffer_and_large_ones_split_off_it() {
    use std::io::Write;
    let poller = Poller::new().unwrap();
    let mut reactor = Reactor::new(
        &poller,
        Mode::Edge,
        Limits {
            read_chunk: 64 << 10,
            ..limits()
        },
    );
    let mut reports = Vec::new();
    let (id, listener) = connecting(&poller, &mut reactor, &mut reports);
    let mut peer = listener.accept().unwrap().0;
    reactor.set_reading(&poller, id.into(), true, &mut reports);
    let mut read = |reactor: &mut Reactor, want: usize| {
        let mut got = Vec::new();
        let end = Instant::now() + Duration::from_secs(5);
        while got.iter().map(Bytes::len).sum::<usize>() < want && Instant::now() < end {
            reactor
                .wait(&poller, Some(Duration::from_millis(100)), &mut reports)
                .unwrap();
            got.extend(reports.drain(..).filter_map(|r| match r {
                Report::Input(Input::Received { data, .. }) => Some(data),
                _ => None,
            }));
        }
        got
    };
    peer.write_all(b"small").unwrap();
    let small = read(&mut reactor, 5);
    assert_eq!(small, [Bytes::from_static(b"small")]);
    let buffer = reactor.buf.as_ptr();
    assert!(!std::ptr::eq(small[0].as_ptr(), buffer), "copied out");
    peer.write_all(&[7; 8 << 10]).unwrap();
    let large = read(&mut reactor, 8 << 10);
    assert_eq!(large.concat(), [7; 8 << 10]);
    assert!(
        std::ptr::eq(large[0].as_ptr(), buffer),
        "split off the same buffer"
    );
    reactor.close_all(&poller);
}

#[test]
fn a_large_read_keeps_its_bytes_and_its_buffer_is_reused_only_once_dropped() {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let socket = Socket::from(listener.accept().unwrap().0);
    let mut buf = BytesMut::new();
    let mut read = |peer: &mut std::net::TcpStream, tag: u8| {
        let sent = [tag; SMALL_READ + 1];
        peer.write_all(&sent).unwrap();
        let (data, _) = recv_chunk(&socket, &mut buf, 4 * SMALL_READ).unwrap();
        assert_eq!(&data[..], sent);
        data
    };
    let first = read(&mut peer, 1);
    let held = first.as_ptr();
    drop(first);
    let second = read(&mut peer, 2);
    assert_eq!(
        second.as_ptr(),
        held,
        "nothing held it: the allocation is reused"
    );
    let third = read(&mut peer, 3);
    assert_ne!(
        third.as_ptr(),
        second.as_ptr(),
        "held reads are never written over"
    );
    assert!(second.iter().all(|&b| b == 2) && third.iter().all(|&b| b == 3));
    peer.shutdown(Shutdown::Write).unwrap();
    let (end, _) = recv_chunk(&socket, &mut buf, 4 * SMALL_READ).unwrap();
    assert!(end.is_empty(), "the end of the stream");
}

#[test]
#[cfg(any(target_os = "linux", target_os = "android"))]
fn a_read_says_whether_bytes_or_a_fin_are_left() {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let socket = Socket::from(listener.accept().unwrap().0);
    let mut buf = BytesMut::new();
    // Without `TCP_INQ` the kernel says nothing.
    peer.write_all(b"ab").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        recv_chunk(&socket, &mut buf, 1).unwrap(),
        (Bytes::from_static(b"a"), None)
    );
    want_inq(&socket);
    assert_eq!(
        recv_chunk(&socket, &mut buf, 1).unwrap(),
        (Bytes::from_static(b"b"), Some(false)),
        "nothing left"
    );
    peer.write_all(b"cde").unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        recv_chunk(&socket, &mut buf, 2).unwrap(),
        (Bytes::from_static(b"cd"), Some(true)),
        "a byte left"
    );
    assert_eq!(
        recv_chunk(&socket, &mut buf, 2).unwrap(),
        (Bytes::from_static(b"e"), Some(true)),
        "only the FIN left: read on"
    );
    let (end, _) = recv_chunk(&socket, &mut buf, 2).unwrap();
    assert!(end.is_empty(), "the end of the stream");
}
