//! The load client: one process, one thread, raw edge-triggered `epoll` (the cheapest loop
//! there is, so that the server is what gets measured). Every connection is bound to a fresh
//! source address, connects, and echoes `msgs` messages of `size` bytes one after the other,
//! checking every byte that comes back; then it half-closes and waits for the server's FIN.
//!
//! Phase 1 opens the connections with at most `window` of them between `connect` and their
//! first echo (so the server's accept queue never overflows) and prints `idle <ns>` once every
//! one has had its first echo. It then waits for `go` on stdin (the parent reads the server's
//! memory meanwhile), and phase 2 runs every connection's remaining messages at once and the
//! closes, and prints `done <phase 1 ns> <phase 2 ns> <user µs> <system µs>`.

use std::io::{self, BufRead};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::procs::{cpu_us, watchdog};

/// The shape of the load.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// Connections, all open at once at the end of phase 1.
    pub conns: usize,
    /// Messages each connection sends (and waits for the echo of) in turn.
    pub msgs: usize,
    /// Bytes per message.
    pub size: usize,
    /// Connections at most between `connect` and their first echo.
    pub window: usize,
    /// How long each process may take for its part of a run (then it fails).
    pub limit: Duration,
}

impl Load {
    pub fn to_args(self) -> Vec<String> {
        vec![
            format!("--conns={}", self.conns),
            format!("--msgs={}", self.msgs),
            format!("--size={}", self.size),
            format!("--window={}", self.window),
            format!("--limit-ms={}", self.limit.as_millis()),
        ]
    }

    pub fn from_args(rest: &[String]) -> Option<Load> {
        Some(Load {
            conns: crate::flag(rest, "--conns")?,
            msgs: crate::flag(rest, "--msgs")?,
            size: crate::flag(rest, "--size")?,
            window: crate::flag(rest, "--window")?,
            limit: Duration::from_millis(crate::flag(rest, "--limit-ms")?),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Connecting,
    /// Message `msg`: `sent` of its bytes written, `got` of its echo read.
    Echo {
        msg: usize,
        sent: usize,
        got: usize,
    },
    /// The first message echoed; waiting for phase 2.
    Idle,
    /// Every message echoed and our FIN sent: waiting for the server's.
    Closing,
}

struct Conn {
    socket: Socket,
    state: State,
}

/// The byte at `at` of message `msg` on connection `conn` (each message differs, so an echo
/// that lands on the wrong connection or repeats is caught).
fn byte(conn: usize, msg: usize, at: usize) -> u8 {
    ((conn.wrapping_mul(31) + msg * 7 + at) % 251) as u8
}

const EDGE: u32 = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;

struct Client {
    load: Load,
    epoll: i32,
    conns: Vec<Option<Conn>>,
    message: Vec<u8>,
    /// Connections whose first echo arrived.
    first: usize,
    /// Connections that saw the server's FIN.
    done: usize,
    /// Phase 2: go on past the first message.
    phase2: bool,
}

/// Runs the client; an error is a failed benchmark (exit non-zero).
pub fn run(load: Load, port: u16, source: Ipv4Addr) -> Result<(), String> {
    watchdog(load.limit + Duration::from_secs(2));
    let end = Instant::now() + load.limit;
    // SAFETY: plain syscall; the descriptor is closed when the process exits.
    let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epoll < 0 {
        return Err(format!("epoll_create1: {}", io::Error::last_os_error()));
    }
    let mut client = Client {
        load,
        epoll,
        conns: (0..load.conns).map(|_| None).collect(),
        message: vec![0; load.size],
        first: 0,
        done: 0,
        phase2: false,
    };
    let server = SockAddr::from(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
    let local = SockAddr::from(SocketAddr::from((source, 0)));
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];

    let start = Instant::now();
    let mut opened = 0;
    while client.first < load.conns {
        while opened < load.conns && opened - client.first < load.window {
            client.open(opened, &local, &server)?;
            opened += 1;
        }
        client.wait(&mut events, end)?;
    }
    let phase1 = start.elapsed();
    println!("idle {}", phase1.as_nanos());

    let mut line = String::new();
    io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading go: {e}"))?;
    if line.trim() != "go" {
        return Err(format!("expected go, got {line:?}"));
    }

    let start = Instant::now();
    client.phase2 = true;
    for key in 0..load.conns {
        client.next_message(key, 1)?;
    }
    while client.done < load.conns {
        client.wait(&mut events, end)?;
    }
    let phase2 = start.elapsed();
    let (user, system) = cpu_us();
    println!(
        "done {} {} {user} {system}",
        phase1.as_nanos(),
        phase2.as_nanos()
    );
    Ok(())
}

impl Client {
    /// A non-blocking connect from `local` (the port chosen at connect time, so 10 000
    /// connections share one source address), registered edge-triggered.
    fn open(&mut self, key: usize, local: &SockAddr, server: &SockAddr) -> Result<(), String> {
        let socket = Socket::new(
            Domain::IPV4,
            Type::STREAM.nonblocking(),
            Some(Protocol::TCP),
        )
        .map_err(|e| format!("socket: {e}"))?;
        socket
            .set_tcp_nodelay(true)
            .map_err(|e| format!("nodelay: {e}"))?;
        let one: libc::c_int = 1;
        // SAFETY: a valid descriptor and an int option of the right size.
        let set = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&raw const one).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if set != 0 {
            return Err(format!(
                "IP_BIND_ADDRESS_NO_PORT: {}",
                io::Error::last_os_error()
            ));
        }
        socket
            .bind(local)
            .map_err(|e| format!("bind {:?}: {e}", local.as_socket()))?;
        match socket.connect(server) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(format!("connect: {e}")),
        }
        let mut event = libc::epoll_event {
            events: EDGE,
            u64: key as u64,
        };
        // SAFETY: valid descriptors; the event is read during the call only.
        if unsafe {
            libc::epoll_ctl(
                self.epoll,
                libc::EPOLL_CTL_ADD,
                socket.as_raw_fd(),
                &mut event,
            )
        } != 0
        {
            return Err(format!("epoll_ctl: {}", io::Error::last_os_error()));
        }
        self.conns[key] = Some(Conn {
            socket,
            state: State::Connecting,
        });
        Ok(())
    }

    /// One `epoll_wait` and everything it reported.
    fn wait(&mut self, events: &mut [libc::epoll_event], end: Instant) -> Result<(), String> {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "client overran: {} of {} first echoes, {} closed",
                self.first, self.load.conns, self.done
            ));
        }
        let ms = left.as_millis().min(1000) as i32;
        // SAFETY: `events` is writable for its whole length.
        let n =
            unsafe { libc::epoll_wait(self.epoll, events.as_mut_ptr(), events.len() as i32, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(format!("epoll_wait: {e}"))
            };
        }
        for event in &events[..n as usize] {
            let (key, flags) = (event.u64 as usize, event.events);
            self.ready(key, flags)?;
        }
        Ok(())
    }

    fn ready(&mut self, key: usize, flags: u32) -> Result<(), String> {
        let Some(conn) = self.conns.get_mut(key).and_then(Option::as_mut) else {
            return Ok(()); // closed earlier in this batch
        };
        if conn.state == State::Connecting {
            match conn.socket.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => return Err(format!("connect {key}: {e}")),
            }
            if flags & libc::EPOLLOUT as u32 == 0 {
                return Ok(()); // not connected yet
            }
            return self.next_message(key, 0);
        }
        if let State::Echo { msg, sent, .. } = conn.state {
            if sent < self.load.size && flags & libc::EPOLLOUT as u32 != 0 {
                self.send(key, msg)?;
            }
        }
        self.receive(key)
    }

    /// Starts message `msg` on connection `key`; past the last one, half-closes.
    fn next_message(&mut self, key: usize, msg: usize) -> Result<(), String> {
        let conn = self.conns[key].as_mut().ok_or("no such connection")?;
        if msg == self.load.msgs {
            conn.socket
                .shutdown(Shutdown::Write)
                .map_err(|e| format!("shutdown {key}: {e}"))?;
            conn.state = State::Closing;
            return Ok(());
        }
        conn.state = State::Echo {
            msg,
            sent: 0,
            got: 0,
        };
        self.send(key, msg)
    }

    /// Writes what is left of the current message (the rest on writability).
    fn send(&mut self, key: usize, msg: usize) -> Result<(), String> {
        let conn = self.conns[key].as_mut().ok_or("no such connection")?;
        let State::Echo { sent, got, .. } = conn.state else {
            return Ok(());
        };
        for (at, b) in self.message.iter_mut().enumerate() {
            *b = byte(key, msg, at);
        }
        match conn.socket.send(&self.message[sent..]) {
            Ok(n) => {
                conn.state = State::Echo {
                    msg,
                    sent: sent + n,
                    got,
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(format!("send {key}: {e}")),
        }
        Ok(())
    }

    /// Reads what the server sent until the current message's echo is complete or nothing is
    /// left (edge-triggered: the next arrival is a new edge, so stopping at a complete echo
    /// loses nothing; anything extra is read, and refused, with the next message or the FIN).
    fn receive(&mut self, key: usize) -> Result<(), String> {
        let mut buf = [0u8; 256];
        loop {
            let conn = self.conns[key].as_mut().ok_or("no such connection")?;
            let want = match conn.state {
                State::Echo { got, .. } => self.load.size - got,
                _ => 1, // nothing is due: only the FIN (or a fault) can be read
            }
            .min(buf.len());
            let n = match (&conn.socket).read_into(&mut buf[..want]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("read {key}: {e}")),
            };
            match conn.state {
                State::Closing if n == 0 => {
                    // SAFETY: a valid descriptor, deleted before it is closed.
                    unsafe {
                        libc::epoll_ctl(
                            self.epoll,
                            libc::EPOLL_CTL_DEL,
                            conn.socket.as_raw_fd(),
                            std::ptr::null_mut(),
                        )
                    };
                    self.conns[key] = None;
                    self.done += 1;
                    return Ok(());
                }
                State::Echo { msg, sent, got } if n > 0 => {
                    for (at, &b) in buf[..n].iter().enumerate() {
                        if got + at >= sent || b != byte(key, msg, got + at) {
                            return Err(format!("connection {key}: wrong echo of message {msg}"));
                        }
                    }
                    let got = got + n;
                    conn.state = State::Echo { msg, sent, got };
                    if got == self.load.size {
                        if msg == 0 && !self.phase2 {
                            conn.state = State::Idle;
                            self.first += 1;
                            return Ok(());
                        }
                        return self.next_message(key, msg + 1);
                    }
                }
                state => {
                    return Err(format!(
                        "connection {key}: read {n} bytes in state {state:?}"
                    ))
                }
            }
        }
    }
}

/// `read` on a shared reference (socket2's `Read` is for `&Socket`).
trait ReadInto {
    fn read_into(self, buf: &mut [u8]) -> io::Result<usize>;
}

impl ReadInto for &Socket {
    fn read_into(self, buf: &mut [u8]) -> io::Result<usize> {
        use std::io::Read;
        let mut s = self;
        s.read(buf)
    }
}
