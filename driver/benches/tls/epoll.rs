//! Handshakes over a hand-written, edge-triggered epoll loop on each end: what any
//! readiness-based event loop pays here.

use super::handshakes::{timed_client, Handshakes};
use super::*;

/// The epoll loop's token for its listening socket (connections are numbered from 0).
const LISTENER: u64 = u64::MAX;

/// Events one epoll wait takes at most.
const EPOLL_BATCH: usize = 64;

/// A hand-written epoll set: every socket registered once, edge-triggered, for reading,
/// writing and the peer's hang-up, never modified; closing a socket takes it out.
struct Epoll(OwnedFd);

impl Epoll {
    fn new() -> Epoll {
        // SAFETY: no pointers; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(fd >= 0, "epoll_create1: {}", io::Error::last_os_error());
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        Epoll(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn add(&self, socket: &impl AsRawFd, token: u64) {
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: token,
        };
        // SAFETY: `event` is a valid epoll_event for the call to read.
        let rc = unsafe {
            libc::epoll_ctl(
                self.0.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                socket.as_raw_fd(),
                &mut event,
            )
        };
        assert_eq!(rc, 0, "epoll_ctl: {}", io::Error::last_os_error());
    }

    /// Waits for events into `events` and returns the tokens of those that came; nothing for
    /// [`STALL`] is a failure, never a hang.
    fn wait<'a>(&self, events: &'a mut [libc::epoll_event]) -> impl Iterator<Item = u64> + 'a {
        let timeout = STALL.as_millis() as i32;
        let n = loop {
            // SAFETY: `events` is writable for `events.len()` entries.
            let n = unsafe {
                libc::epoll_wait(
                    self.0.as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as i32,
                    timeout,
                )
            };
            match n {
                0 => panic!("no epoll event for {STALL:?}"),
                n if n > 0 => break n as usize,
                _ => {
                    let e = io::Error::last_os_error();
                    assert_eq!(e.kind(), io::ErrorKind::Interrupted, "epoll_wait: {e}");
                }
            }
        };
        events[..n].iter().map(|e| e.u64)
    }
}

fn epoll_events() -> Vec<libc::epoll_event> {
    vec![libc::epoll_event { events: 0, u64: 0 }; EPOLL_BATCH]
}

/// Reads what the socket has, until `WouldBlock`, processing each read; true once the peer is
/// done (its close_notify, or the end of the stream).
fn read_tls_all<C, D>(conn: &mut C, sock: &mut TcpStream) -> bool
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<D>>,
    D: rustls::SideData,
{
    loop {
        match conn.read_tls(sock) {
            Ok(0) => return true,
            Ok(_) => {
                if conn.process_new_packets().unwrap().peer_has_closed() {
                    return true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Writes what rustls has queued, until done or the socket is full (the next `EPOLLOUT` edge
/// resumes it).
fn write_tls_all<C, D>(conn: &mut C, sock: &mut TcpStream)
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<D>>,
    D: rustls::SideData,
{
    while conn.wants_write() {
        match conn.write_tls(sock) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("write: {e}"),
        }
    }
}

/// One connection of the epoll loop's server.
struct Served {
    sock: TcpStream,
    conn: ServerConnection,
    /// "x" and close_notify are queued.
    answered: bool,
}

impl Served {
    /// Does what the socket allows; true once the connection is done (answered, flushed, and
    /// the client's close_notify or end of stream read).
    fn serve(&mut self) -> bool {
        let peer_done = read_tls_all(&mut self.conn, &mut self.sock);
        if !self.answered && !self.conn.is_handshaking() {
            self.conn.writer().write_all(b"x").unwrap();
            self.conn.send_close_notify();
            self.answered = true;
        }
        write_tls_all(&mut self.conn, &mut self.sock);
        assert!(self.answered || !peer_done, "the client left mid-handshake");
        peer_done && self.answered && !self.conn.wants_write()
    }
}

/// The same flow as [`blocking_handshakes`], each end a non-blocking event loop of its own.
pub(super) fn epoll_handshakes(tls: &Tls, count: usize) -> Handshakes {
    let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let config = tls.server.clone();
    let server = thread::spawn(move || {
        let cpu = thread_cpu();
        let epoll = Epoll::new();
        let mut events = epoll_events();
        epoll.add(&listener, LISTENER);
        // Connections by token; a slot is taken again once free.
        let mut served: Vec<Option<Served>> = Vec::new();
        let mut closed = 0;
        while closed < count {
            for token in epoll.wait(&mut events) {
                if token != LISTENER {
                    let slot = &mut served[token as usize];
                    if slot.as_mut().is_some_and(Served::serve) {
                        *slot = None; // closes the socket, which leaves the epoll set
                        closed += 1;
                    }
                    continue;
                }
                loop {
                    let socket = match SockRef::from(&listener)
                        .accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
                    {
                        Ok((socket, _)) => socket,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                        Err(e) => panic!("accept: {e}"),
                    };
                    socket.set_tcp_nodelay(true).unwrap();
                    let sock = TcpStream::from(socket);
                    let token = match served.iter().position(Option::is_none) {
                        Some(free) => free,
                        None => {
                            served.push(None);
                            served.len() - 1
                        }
                    };
                    // What already arrived (the ClientHello) raises the first event.
                    epoll.add(&sock, token as u64);
                    served[token] = Some(Served {
                        sock,
                        conn: ServerConnection::new(config.clone()).unwrap(),
                        answered: false,
                    });
                }
            }
        }
        thread_cpu() - cpu
    });
    timed_client(server, || {
        let epoll = Epoll::new();
        let mut events = epoll_events();
        for i in 0..count {
            let socket = Socket::new(Domain::IPV4, Type::STREAM.nonblocking(), None).unwrap();
            socket.set_tcp_nodelay(true).unwrap();
            match socket.connect(&addr.into()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(e) => panic!("connect: {e}"),
            }
            let mut sock = TcpStream::from(socket);
            // Connections are one after another, and a closed socket leaves the set: every
            // event is this one's.
            epoll.add(&sock, i as u64);
            let name = ServerName::IpAddress(LOCALHOST.into());
            let mut conn = ClientConnection::new(tls.client.clone(), name).unwrap();
            // Writable first: connected (or failed, which `SO_ERROR` says).
            let _ = epoll.wait(&mut events).count();
            if let Some(e) = sock.take_error().unwrap() {
                panic!("connect: {e}");
            }
            let mut closing = false;
            loop {
                let peer_done = read_tls_all(&mut conn, &mut sock);
                if !closing && !conn.is_handshaking() {
                    let mut byte = [0; 1];
                    match conn.reader().read(&mut byte) {
                        Ok(1) => {
                            assert_eq!(&byte, b"x");
                            conn.send_close_notify();
                            closing = true;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        other => panic!("the server's byte: {other:?}"),
                    }
                }
                write_tls_all(&mut conn, &mut sock);
                if closing && !conn.wants_write() {
                    break; // dropping the socket closes it
                }
                assert!(!peer_done, "the server left before its byte");
                let _ = epoll.wait(&mut events).count();
            }
        }
    })
}
