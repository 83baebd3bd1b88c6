//! An I/O layer on tokio: one task owns the core and every socket. It drains the core, then
//! waits in one `poll_fn` for everything at once (each socket's readiness, the DNS answers,
//! the core's deadline as a `sleep_until`), does the I/O that readiness allows, and feeds
//! what happened back to the core.
//!
//! tokio's sockets remember the readiness the reactor reported until an operation returns
//! `WouldBlock`; every I/O here goes through their `try_*` methods, which clear it. So a
//! socket whose reading was off while its bytes came is seen ready as soon as reading is on
//! again: the edge-trigger trap of the chapter ("`SetReading` is a level") cannot hang a
//! socket here. The one rule that keeps a wake-up from being lost: after an operation
//! returned `WouldBlock`, poll the readiness again (which registers the task's waker) before
//! returning `Pending`.

use std::collections::{HashMap, VecDeque};
use std::future::{poll_fn, Future};
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::ops::ControlFlow;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use socket2::SockRef;
use sockstate::{Action, Event, Input, SocketId, TcpId};
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{AbortHandle, JoinSet};

use crate::{os, Answer, Engine, Loop, Report, CHUNK, PER_TURN};

/// The loop: a core and the OS sockets of its ids. Runs inside a tokio runtime (a
/// current-thread one is enough: everything but `getaddrinfo` happens on the one task).
pub type TokioLoop = Loop<TokioOs>;

impl TokioLoop {
    /// A loop around `engine`.
    pub fn new(engine: Engine) -> TokioLoop {
        let os = TokioOs {
            socks: HashMap::new(),
            attempts: HashMap::new(),
            lookups: JoinSet::new(),
            resolving: HashMap::new(),
            reports: Vec::new(),
            buf: BytesMut::new(),
        };
        Loop::with(engine, os)
    }

    /// Runs until `app` returns `true` for an event (then `true`) or `timeout` passes (`false`).
    /// `app` gets the engine for its calls.
    pub async fn run(
        &mut self,
        timeout: Duration,
        mut app: impl FnMut(&mut Engine, Event) -> bool,
    ) -> bool {
        let end = Instant::now() + timeout;
        loop {
            let wake = match self.turn(end, &mut app) {
                ControlFlow::Break(done) => return done,
                ControlFlow::Continue(wake) => wake,
            };
            self.os.wait(wake).await;
            self.woke();
        }
    }
}

enum Io {
    Stream(TcpStream),
    Listener(TcpListener),
    Udp(UdpSocket),
}

struct Sock {
    io: Io,
    /// The core's `SetReading`: a level, the latest one holds.
    reading: bool,
    /// Writes taken and not yet done, in order: a stream's one write in flight, or a UDP
    /// socket's datagrams (up to `Config::max_datagrams_in_flight`, each with its
    /// destination), answered in the order they came.
    pending: VecDeque<(Bytes, Option<SocketAddr>)>,
    /// Failed or at its end of stream: no more reads.
    done_reading: bool,
}

/// The OS side: the sockets of the core's ids and the DNS lookups under way.
pub struct TokioOs {
    socks: HashMap<SocketId, Sock>,
    /// Connect attempts still racing (RFC 8305); the winner becomes the id's socket.
    attempts: HashMap<(TcpId, u8), TcpStream>,
    /// DNS lookups (`lookup_host` runs `getaddrinfo` on tokio's blocking pool), and the ids
    /// that still want their answer.
    lookups: JoinSet<Answer>,
    resolving: HashMap<SocketId, AbortHandle>,
    reports: Vec<Report<TcpStream>>,
    buf: BytesMut,
}

impl crate::Os for TokioOs {
    type Stream = TcpStream;

    fn execute(&mut self, action: Action) {
        TokioOs::execute(self, action);
    }

    fn take_reports(&mut self) -> Vec<Report<TcpStream>> {
        std::mem::take(&mut self.reports)
    }

    fn adopt(&mut self, id: TcpId, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        self.add(id.into(), Io::Stream(stream));
    }
}

impl TokioOs {
    /// Waits until the OS did something for the core (a socket's I/O, a DNS answer) or `wake`
    /// passes, doing the I/O that readiness allows.
    async fn wait(&mut self, wake: Instant) {
        let mut sleep = pin!(tokio::time::sleep_until(wake.into()));
        poll_fn(|cx| {
            self.poll_connects(cx);
            for (id, sock) in &mut self.socks {
                poll_write(*id, sock, cx, &mut self.reports);
                poll_read(*id, sock, cx, &mut self.buf, &mut self.reports);
            }
            while let Poll::Ready(Some(joined)) = self.lookups.poll_join_next(cx) {
                // An aborted lookup ends in a `JoinError`; drop the answer of an id released
                // meanwhile.
                if let Ok((id, result)) = joined {
                    if self.resolving.remove(&id).is_some() {
                        let input = Input::Resolved { id, result };
                        self.reports.push(Report::Input(input));
                    }
                }
            }
            match self.reports.is_empty() {
                true => sleep.as_mut().poll(cx),
                false => Poll::Ready(()),
            }
        })
        .await
    }

    /// Connect attempts: writable means the connect is over (or a spurious wake-up).
    fn poll_connects(&mut self, cx: &mut Context<'_>) {
        let mut over = Vec::new();
        for (&key, stream) in &self.attempts {
            while stream.poll_write_ready(cx).is_ready() {
                match os::connect_result(SockRef::from(stream)) {
                    Some(result) => {
                        over.push((key, result));
                        break;
                    }
                    // Still going: clear the readiness, then poll again to be woken.
                    None => {
                        let nothing = || Err::<(), _>(io::ErrorKind::WouldBlock.into());
                        let _ = stream.try_io(Interest::WRITABLE, nothing);
                    }
                }
            }
        }
        for ((id, attempt), result) in over {
            let Some(stream) = self.attempts.remove(&(id, attempt)) else {
                continue;
            };
            let input = match result {
                // The winner becomes the id's socket; the core aborts the others.
                Ok(local) => {
                    self.add(id.into(), Io::Stream(stream));
                    Input::Connected { id, attempt, local }
                }
                // Closed (dropped) before it is reported.
                Err(e) => Input::ConnectFailed {
                    id,
                    attempt,
                    error: e.kind(),
                },
            };
            self.reports.push(Report::Input(input));
        }
    }

    fn add(&mut self, id: SocketId, io: Io) {
        let sock = Sock {
            io,
            reading: false,
            pending: VecDeque::new(),
            done_reading: false,
        };
        self.socks.insert(id, sock);
    }

    fn execute(&mut self, action: Action) {
        let input = match action {
            Action::Resolve { id, name } => {
                // `getaddrinfo` blocks: off the loop; the answer wakes the task.
                let name = name.as_str().to_owned();
                let lookup = self.lookups.spawn(async move {
                    (id, os::addresses(tokio::net::lookup_host((name, 0)).await))
                });
                self.resolving.insert(id, lookup);
                return;
            }
            Action::Connect {
                id,
                attempt,
                remote,
                options,
            } => {
                let connecting = os::connect(remote, &options);
                match connecting.and_then(TcpStream::from_std) {
                    Ok(stream) => {
                        self.attempts.insert((id, attempt), stream);
                        return;
                    }
                    Err(e) => Input::ConnectFailed {
                        id,
                        attempt,
                        error: e.kind(),
                    },
                }
            }
            Action::AbortConnect { id, attempt } => {
                self.attempts.remove(&(id, attempt)); // dropped: deregistered, then closed
                return;
            }
            Action::SetReading { id, enabled } => {
                // tokio remembers readiness: the next wait reads what came meanwhile.
                if let Some(sock) = self.socks.get_mut(&id) {
                    sock.reading = enabled;
                }
                return;
            }
            Action::Write { id, data } => return self.write(id.into(), data, None),
            // One `send_to` per datagram, in order, each answered `Sent { count: 1 }`.
            Action::SendDatagrams { id, datagrams } => {
                for (data, remote) in datagrams {
                    self.write(id.into(), data, Some(remote));
                }
                return;
            }
            Action::Shutdown { id } => match self.socks.get(&id.into()) {
                Some(Sock {
                    io: Io::Stream(s), ..
                }) => match SockRef::from(s).shutdown(Shutdown::Write) {
                    Ok(()) => return,
                    Err(e) => Input::Failed {
                        id,
                        error: e.kind(),
                    },
                },
                _ => return,
            },
            Action::QueryUnacked { id } => match self.socks.get(&id.into()) {
                // Answered at once; the core asks again on its own timer.
                Some(Sock {
                    io: Io::Stream(s), ..
                }) => match os::unacked(SockRef::from(s)) {
                    Ok(bytes) => Input::Unacked { id, bytes },
                    Err(e) => Input::Failed {
                        id,
                        error: e.kind(),
                    },
                },
                _ => return,
            },
            Action::Release { id } => {
                // Every OS socket of the id is dropped (deregistered, then closed), and an
                // answer still on its way is dropped too.
                if let Some(lookup) = self.resolving.remove(&id) {
                    lookup.abort();
                }
                if let SocketId::TcpId(tcp) = id {
                    self.attempts.retain(|(t, _), _| *t != tcp);
                }
                self.socks.remove(&id);
                return;
            }
            Action::Listen {
                id,
                local,
                backlog,
                reuse_address,
                settings,
            } => match os::listen(local, backlog, reuse_address, &settings)
                .and_then(TcpListener::from_std)
            {
                Ok(listener) => {
                    let local = listener.local_addr().unwrap_or(local);
                    self.add(id.into(), Io::Listener(listener));
                    Input::Listening { id, local }
                }
                Err(e) => Input::ListenFailed {
                    id,
                    error: e.kind(),
                },
            },
            Action::Bind {
                id,
                local,
                reuse_address,
                loopback,
                settings,
            } => match os::bind_udp(local, reuse_address, loopback, &settings)
                .and_then(UdpSocket::from_std)
            {
                Ok(socket) => {
                    let local = socket.local_addr().unwrap_or(local);
                    self.add(id.into(), Io::Udp(socket));
                    Input::Bound { id, local }
                }
                Err(e) => Input::BindFailed {
                    id,
                    error: e.kind(),
                },
            },
            Action::JoinMulticast { id, group, source } => match self.socks.get(&id.into()) {
                Some(Sock { io: Io::Udp(u), .. }) => {
                    match os::membership(SockRef::from(u), group, source, true) {
                        Ok(()) => return,
                        Err(e) => Input::JoinFailed {
                            id,
                            group,
                            source,
                            error: e.kind(),
                        },
                    }
                }
                _ => return,
            },
            Action::LeaveMulticast { id, group, source } => {
                if let Some(Sock { io: Io::Udp(u), .. }) = self.socks.get(&id.into()) {
                    let _ = os::membership(SockRef::from(u), group, source, false);
                }
                return;
            }
        };
        self.reports.push(Report::Input(input));
    }

    /// `Write` / a datagram of `SendDatagrams`: tried at once (the OS usually takes it), else held for writability.
    fn write(&mut self, id: SocketId, data: Bytes, to: Option<SocketAddr>) {
        if let Some(sock) = self.socks.get_mut(&id) {
            sock.pending.push_back((data, to));
            if let Ok(input) = try_write(id, sock) {
                self.reports.push(Report::Input(input));
            }
        }
    }
}

/// The oldest write taken, once: `Err` when the OS took nothing (the write is kept).
fn try_write(id: SocketId, sock: &mut Sock) -> io::Result<Input> {
    let Some((data, to)) = sock.pending.front() else {
        return Err(io::ErrorKind::WouldBlock.into());
    };
    let result = match (&sock.io, to) {
        (Io::Stream(s), _) => s.try_write(data),
        (Io::Udp(u), Some(to)) => u.try_send_to(data, *to),
        _ => return Err(io::ErrorKind::Unsupported.into()),
    };
    let input = crate::write_input(id, result)?;
    sock.pending.pop_front();
    if matches!(input, Input::Failed { .. }) {
        sock.done_reading = true;
    }
    Ok(input)
}

/// Writes what was taken, in order, while the socket is writable.
fn poll_write(
    id: SocketId,
    sock: &mut Sock,
    cx: &mut Context<'_>,
    reports: &mut Vec<Report<TcpStream>>,
) {
    while !sock.pending.is_empty() {
        let ready = match &sock.io {
            Io::Stream(s) => s.poll_write_ready(cx),
            Io::Udp(u) => u.poll_send_ready(cx),
            Io::Listener(_) => return,
        };
        if ready.is_pending() {
            return;
        }
        // `WouldBlock` (readiness cleared) or `EINTR`: poll again.
        if let Ok(input) = try_write(id, sock) {
            reports.push(Report::Input(input));
        }
    }
}

/// Reads (accepts, receives) while the core wants it and the socket is readable, up to the
/// per-turn bound; stopped by the bound, it asks to be polled again at once.
fn poll_read(
    id: SocketId,
    sock: &mut Sock,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
    reports: &mut Vec<Report<TcpStream>>,
) {
    if !sock.reading || sock.done_reading {
        return;
    }
    for _ in 0..PER_TURN {
        let report = match (&sock.io, id) {
            (Io::Stream(s), SocketId::TcpId(id)) => {
                if s.poll_read_ready(cx).is_pending() {
                    return;
                }
                buf.resize(CHUNK, 0);
                let read = crate::read_input(id, s.try_read(buf), buf);
                let Ok(input) = read else { continue }; // `WouldBlock`: poll again
                                                        // Never read again after the FIN or a failure.
                sock.done_reading = !matches!(input, Input::Received { .. });
                Report::Input(input)
            }
            (Io::Listener(l), SocketId::ServerId(server)) => match l.poll_accept(cx) {
                Poll::Pending => return,
                Poll::Ready(Ok((stream, remote))) => match stream.local_addr() {
                    Ok(local) => Report::Accepted(server, stream, local, remote),
                    Err(_) => continue, // gone already
                },
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                // Out of descriptors: the connection stays pending; try at the next wake-up.
                Poll::Ready(Err(_)) => return,
            },
            (Io::Udp(u), SocketId::UdpId(id)) => {
                if u.poll_recv_ready(cx).is_pending() {
                    return;
                }
                let mut datagram = [0; CHUNK]; // no datagram is larger
                match u.try_recv_from(&mut datagram) {
                    Ok((n, remote)) => {
                        let data = Bytes::copy_from_slice(&datagram[..n]);
                        Report::Input(Input::Datagram { id, data, remote })
                    }
                    // `WouldBlock`: poll again. Else an ICMP report of an earlier send:
                    // consumed, concerns no datagram.
                    Err(_) => continue,
                }
            }
            _ => return,
        };
        reports.push(report);
        if sock.done_reading {
            return;
        }
    }
    cx.waker().wake_by_ref(); // stopped by the bound: come back without waiting
}
