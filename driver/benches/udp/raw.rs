//! The raw implementation the driver is measured against: per-datagram `send`/`recv` calls and a
//! hand-written epoll loop, and draining a socket with them.

use super::*;

/// Sends `count` datagrams (or what `budget` allows) as fast as it may from a socket of its
/// own: blocking (raw), or with `epoll` non-blocking in an epoll set, a send that would block
/// waiting for writability (the epoll loop).
pub(super) fn send_raw(
    pool: &[Bytes],
    to: SocketAddr,
    count: u64,
    budget: Duration,
    epoll: bool,
    deadline: Deadline,
) -> Sent {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| fail(&e.to_string()));
    let mut epoll = epoll.then(|| Epoll::new(&socket));
    let (start, sched) = (Instant::now(), Sched::now());
    let mut sent = 0;
    while sent < count {
        if sent % 1024 == 0 && start.elapsed() > budget {
            break;
        }
        match (
            socket.send_to(&pool[sent as usize % POOL], to),
            epoll.as_mut(),
        ) {
            (Ok(_), _) => sent += 1,
            (Err(e), Some(epoll)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                epoll.want_write();
                epoll.wait(deadline.left());
                deadline.check();
            }
            (Err(e), _) => fail(&format!("send_to: {e}")),
        }
    }
    let elapsed = start.elapsed();
    Sent {
        count: sent,
        elapsed,
        busy: Sched::since(sched, elapsed),
    }
}

/// Receives until the sender is done and nothing arrived for [`IDLE`]: blocking `recv_from`s
/// (raw), or with `epoll` as an event loop does, reads until `WouldBlock`, then a wait.
pub(super) fn receive_raw(
    size: usize,
    addr: &mpsc::Sender<SocketAddr>,
    done: &AtomicBool,
    epoll: bool,
    deadline: Deadline,
) -> Received {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| fail(&e.to_string()));
    let epoll = epoll.then(|| Epoll::new(&socket));
    if epoll.is_none() {
        let _ = socket.set_read_timeout(Some(Duration::from_millis(20)));
    }
    let _ = addr.send(socket.local_addr().unwrap_or_else(|e| fail(&e.to_string())));
    let mut buf = vec![0; 65_536];
    let mut got = Received::default();
    let mut quiet_since = Instant::now();
    loop {
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => {
                got.take(&buf[..n], size);
                quiet_since = Instant::now();
                continue;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => fail(&format!("recv_from: {e}")),
        }
        // Nothing to read: the epoll loop waits now (raw's read waited itself, up to 20 ms).
        if epoll
            .as_ref()
            .is_some_and(|e| e.wait(Duration::from_millis(20)))
        {
            continue;
        }
        if !done.load(Ordering::Acquire) {
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= IDLE {
            return got.finish();
        }
        deadline.check();
    }
}

// ---- a hand-written epoll loop --------------------------------------------------------------

/// One socket in an epoll instance of its own, registered edge-triggered for reading (and for
/// writing from the first send that would block, as the driver does), the socket non-blocking.
struct Epoll {
    fd: OwnedFd,
    socket: RawFd,
    /// Writable interest was added.
    writing: bool,
}

impl Epoll {
    fn new(socket: &UdpSocket) -> Epoll {
        socket
            .set_nonblocking(true)
            .unwrap_or_else(|e| fail(&format!("set_nonblocking: {e}")));
        // SAFETY: a plain syscall; its result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            fail(&format!(
                "epoll_create1: {}",
                std::io::Error::last_os_error()
            ));
        }
        let epoll = Epoll {
            // SAFETY: `fd` was just created and is owned by nothing else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            socket: socket.as_raw_fd(),
            writing: false,
        };
        epoll.ctl(libc::EPOLL_CTL_ADD, libc::EPOLLIN | libc::EPOLLET);
        epoll
    }

    fn ctl(&self, op: libc::c_int, events: libc::c_int) {
        let mut event = libc::epoll_event {
            events: events as u32,
            u64: 0,
        };
        // SAFETY: both descriptors are open (the socket outlives `self` in every caller) and
        // `event` is a valid epoll_event.
        if unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, self.socket, &mut event) } < 0 {
            fail(&format!("epoll_ctl: {}", std::io::Error::last_os_error()));
        }
    }

    /// Adds writable interest, once.
    fn want_write(&mut self) {
        if !self.writing {
            self.writing = true;
            self.ctl(
                libc::EPOLL_CTL_MOD,
                libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLET,
            );
        }
    }

    /// One `epoll_wait` of at most `timeout` (rounded up to a millisecond); true when the
    /// socket became ready.
    fn wait(&self, timeout: Duration) -> bool {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }];
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
        // SAFETY: `events` has room for the one event asked for.
        let n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), 1, ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                fail(&format!("epoll_wait: {e}"));
            }
        }
        n > 0
    }
}

/// `bursts` times, `BURST` datagrams are queued, then read: by blocking `recv_from`s (raw), or
/// with `epoll` as an event loop does, by a wait and reads until `WouldBlock`; returns the CPU
/// time of the reads (and waits) alone.
pub(super) fn drain_raw(
    pool: &[Bytes],
    bursts: usize,
    epoll: bool,
    deadline: Deadline,
) -> (Duration, Received) {
    let size = pool[0].len();
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| fail(&e.to_string()));
    let epoll = epoll.then(|| Epoll::new(&rx));
    if epoll.is_none() {
        let _ = rx.set_read_timeout(Some(Duration::from_secs(2)));
    }
    let to = rx.local_addr().unwrap_or_else(|e| fail(&e.to_string()));
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| fail(&e.to_string()));
    let mut buf = vec![0; 65_536];
    let (mut cpu, mut got) = (Duration::ZERO, Received::default());
    for b in 0..bursts {
        burst(&tx, pool, b * BURST, to);
        let start = thread_cpu();
        let mut left = BURST;
        while left > 0 {
            if epoll.as_ref().is_some_and(|e| !e.wait(deadline.left())) {
                deadline.check();
                continue;
            }
            // Raw: one blocking read; the epoll loop: until `WouldBlock`.
            loop {
                match rx.recv_from(&mut buf) {
                    Ok((n, _)) => {
                        got.take(&buf[..n], size);
                        left = left.saturating_sub(1);
                        if epoll.is_none() {
                            break;
                        }
                    }
                    Err(e) if epoll.is_some() && e.kind() == std::io::ErrorKind::WouldBlock => {
                        break
                    }
                    Err(e) => fail(&format!("drain: {e}")),
                }
            }
        }
        cpu += thread_cpu() - start;
        deadline.check();
    }
    (cpu, got)
}
