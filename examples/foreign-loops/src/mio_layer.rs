//! An I/O layer on mio: one `Poll`, every socket registered edge-triggered for reading and
//! writing once, DNS on a thread per lookup that wakes the poll through a `Waker`, and the
//! core's deadline as the poll's timeout.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::ops::ControlFlow;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};
use socket2::SockRef;
use sockstate::{Action, Event, Input, SocketId, TcpId, UdpId};

use crate::{os, Answer, Engine, Loop, Report, CHUNK, PER_TURN};

const WAKER: Token = Token(usize::MAX);

enum Io {
    Connecting(TcpStream, u8),
    Stream(TcpStream),
    Listener(TcpListener),
    Udp(UdpSocket),
}

struct Sock {
    id: SocketId,
    io: Io,
    /// The core's `SetReading`: a level, the latest one holds.
    reading: bool,
    /// What the OS said is ready and no `WouldBlock` has taken back (mio is edge-triggered).
    readable: bool,
    writable: bool,
    /// Writes taken and not yet done, in order: a stream's one write in flight, or a UDP
    /// socket's datagrams (up to `Config::max_datagrams_in_flight`, each with its
    /// destination), answered in the order they came.
    pending: VecDeque<(Bytes, Option<SocketAddr>)>,
    /// Failed or at its end of stream: no more I/O.
    done_reading: bool,
}

/// The loop: a core and the OS sockets of its ids.
pub type MioLoop = Loop<MioOs>;

/// The OS side: the poll and the sockets of the core's ids.
pub struct MioOs {
    poll: Poll,
    waker: std::sync::Arc<Waker>,
    answers: (mpsc::Sender<Answer>, mpsc::Receiver<Answer>),
    socks: HashMap<Token, Sock>,
    /// Each id's socket (a TCP id's winning connect attempt), and the attempts still racing.
    main: HashMap<SocketId, Token>,
    attempts: HashMap<(TcpId, u8), Token>,
    resolving: std::collections::HashSet<SocketId>,
    next_token: usize,
    /// Sockets that can act without waiting for the OS: the next wait does not block.
    due: Vec<Token>,
    reports: Vec<Report<TcpStream>>,
    buf: BytesMut,
}

impl MioLoop {
    /// A loop around `engine`.
    pub fn new(engine: Engine) -> io::Result<MioLoop> {
        let poll = Poll::new()?;
        let waker = std::sync::Arc::new(Waker::new(poll.registry(), WAKER)?);
        let os = MioOs {
            poll,
            waker,
            answers: mpsc::channel(),
            socks: HashMap::new(),
            main: HashMap::new(),
            attempts: HashMap::new(),
            resolving: Default::default(),
            next_token: 0,
            due: Vec::new(),
            reports: Vec::new(),
            buf: BytesMut::new(),
        };
        Ok(Loop::with(engine, os))
    }

    /// Runs until `app` returns `true` for an event (then `true`) or `timeout` passes (`false`).
    /// `app` gets the engine for its calls.
    pub fn run(
        &mut self,
        timeout: Duration,
        mut app: impl FnMut(&mut Engine, Event) -> bool,
    ) -> bool {
        let end = Instant::now() + timeout;
        let mut events = Events::with_capacity(256);
        loop {
            let wake = match self.turn(end, &mut app) {
                ControlFlow::Break(done) => return done,
                ControlFlow::Continue(wake) => wake,
            };
            self.os.wait(wake, &mut events);
            self.woke();
        }
    }
}

impl crate::Os for MioOs {
    type Stream = TcpStream;

    fn execute(&mut self, action: Action) {
        MioOs::execute(self, action);
    }

    fn take_reports(&mut self) -> Vec<Report<TcpStream>> {
        std::mem::take(&mut self.reports)
    }

    fn adopt(&mut self, id: TcpId, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        self.add(id.into(), Io::Stream(stream), true);
    }
}

impl MioOs {
    /// Waits for the OS until `wake` (not at all if a socket can act without it) and does the
    /// I/O it allows.
    fn wait(&mut self, wake: Instant, events: &mut Events) {
        let wait = match self.due.is_empty() {
            true => wake.saturating_duration_since(Instant::now()),
            false => Duration::ZERO,
        };
        if let Err(e) = self.poll.poll(events, Some(wait)) {
            assert_eq!(e.kind(), io::ErrorKind::Interrupted, "poll failed: {e}");
        }
        let mut ready = std::mem::take(&mut self.due);
        for event in events.iter() {
            if let Some(sock) = self.socks.get_mut(&event.token()) {
                sock.readable |= event.is_readable() || event.is_read_closed() || event.is_error();
                sock.writable |= event.is_writable() || event.is_write_closed() || event.is_error();
                ready.push(event.token());
            }
        }
        ready.sort_unstable();
        ready.dedup();
        for token in ready {
            self.service(token);
        }
        while let Ok((id, result)) = self.answers.1.try_recv() {
            // Drop the answer of an id released meanwhile.
            if self.resolving.remove(&id) {
                self.reports
                    .push(Report::Input(Input::Resolved { id, result }));
            }
        }
    }

    fn add(&mut self, id: SocketId, mut io: Io, writable: bool) -> Token {
        let token = Token(self.next_token);
        self.next_token += 1;
        let interest = Interest::READABLE | Interest::WRITABLE;
        let registry = self.poll.registry();
        let registered = match &mut io {
            Io::Connecting(s, _) | Io::Stream(s) => registry.register(s, token, interest),
            Io::Listener(l) => registry.register(l, token, Interest::READABLE),
            Io::Udp(u) => registry.register(u, token, interest),
        };
        registered.expect("register a new socket");
        let sock = Sock {
            id,
            io,
            reading: false,
            readable: false,
            writable,
            pending: VecDeque::new(),
            done_reading: false,
        };
        self.socks.insert(token, sock);
        if !matches!(self.socks[&token].io, Io::Connecting(..)) {
            self.main.insert(id, token);
        }
        token
    }

    fn close(&mut self, token: Token) {
        if let Some(mut sock) = self.socks.remove(&token) {
            let registry = self.poll.registry();
            // Deregistered before it is closed (dropped).
            let _ = match &mut sock.io {
                Io::Connecting(s, _) | Io::Stream(s) => registry.deregister(s),
                Io::Listener(l) => registry.deregister(l),
                Io::Udp(u) => registry.deregister(u),
            };
        }
    }

    fn execute(&mut self, action: Action) {
        let input = match action {
            Action::Resolve { id, name } => {
                // `getaddrinfo` blocks: off the loop, which the waker wakes with the answer.
                self.resolving.insert(id);
                let (tx, waker) = (self.answers.0.clone(), self.waker.clone());
                let name = name.as_str().to_owned();
                std::thread::spawn(move || {
                    let result = os::addresses((name.as_str(), 0).to_socket_addrs());
                    let _ = tx.send((id, result));
                    let _ = waker.wake();
                });
                return;
            }
            Action::Connect {
                id,
                attempt,
                remote,
                options,
            } => match os::connect(remote, &options) {
                Ok(stream) => {
                    let io = Io::Connecting(TcpStream::from_std(stream), attempt);
                    let token = self.add(id.into(), io, false);
                    self.attempts.insert((id, attempt), token);
                    return;
                }
                Err(e) => Input::ConnectFailed {
                    id,
                    attempt,
                    error: e.kind(),
                },
            },
            Action::AbortConnect { id, attempt } => {
                if let Some(token) = self.attempts.remove(&(id, attempt)) {
                    self.close(token);
                }
                return;
            }
            Action::SetReading { id, enabled } => {
                if let Some(sock) = self.main.get(&id).and_then(|t| self.socks.get_mut(t)) {
                    sock.reading = enabled;
                    // Edge-triggered: bytes that came while reading was off raised their
                    // edge already. Read now, not at the next (maybe never) event.
                    if enabled {
                        self.due.push(self.main[&id]);
                    }
                }
                return;
            }
            Action::Write { id, data } => return self.write(id.into(), data, None),
            // One `send_to` per datagram, in order; a layer that batches would write them
            // with `sendmmsg` and answer `Sent { count }` per call.
            Action::SendDatagrams { id, datagrams } => {
                for (data, remote) in datagrams {
                    self.write(id.into(), data, Some(remote));
                }
                return;
            }
            Action::Shutdown { id } => match self.stream(id) {
                Some(s) => match s.shutdown(Shutdown::Write) {
                    Ok(()) => return,
                    Err(e) => Input::Failed {
                        id,
                        error: e.kind(),
                    },
                },
                None => return,
            },
            Action::QueryUnacked { id } => match self.stream(id) {
                // Answered at once; the core asks again on its own timer.
                Some(s) => match os::unacked(SockRef::from(s)) {
                    Ok(bytes) => Input::Unacked { id, bytes },
                    Err(e) => Input::Failed {
                        id,
                        error: e.kind(),
                    },
                },
                None => return,
            },
            Action::Release { id } => {
                self.resolving.remove(&id);
                let attempts: Vec<_> = self
                    .attempts
                    .keys()
                    .filter(|(t, _)| SocketId::from(*t) == id)
                    .copied()
                    .collect();
                for key in attempts {
                    let token = self.attempts.remove(&key).unwrap();
                    self.close(token);
                }
                if let Some(token) = self.main.remove(&id) {
                    self.close(token);
                }
                return;
            }
            Action::Listen {
                id,
                local,
                backlog,
                reuse_address,
                settings,
            } => match os::listen(local, backlog, reuse_address, &settings) {
                Ok(listener) => {
                    let listener = TcpListener::from_std(listener);
                    let local = listener.local_addr().unwrap_or(local);
                    self.add(id.into(), Io::Listener(listener), false);
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
            } => match os::bind_udp(local, reuse_address, loopback, &settings) {
                Ok(socket) => {
                    let socket = UdpSocket::from_std(socket);
                    let local = socket.local_addr().unwrap_or(local);
                    self.add(id.into(), Io::Udp(socket), true);
                    Input::Bound { id, local }
                }
                Err(e) => Input::BindFailed {
                    id,
                    error: e.kind(),
                },
            },
            Action::JoinMulticast { id, group, source } => match self.udp(id) {
                Some(u) => match os::membership(SockRef::from(u), group, source, true) {
                    Ok(()) => return,
                    Err(e) => Input::JoinFailed {
                        id,
                        group,
                        source,
                        error: e.kind(),
                    },
                },
                None => return,
            },
            Action::LeaveMulticast { id, group, source } => {
                if let Some(u) = self.udp(id) {
                    let _ = os::membership(SockRef::from(u), group, source, false);
                }
                return;
            }
        };
        self.reports.push(Report::Input(input));
    }

    fn stream(&self, id: TcpId) -> Option<&TcpStream> {
        match &self.socks.get(self.main.get(&id.into())?)?.io {
            Io::Stream(s) => Some(s),
            _ => None,
        }
    }

    fn udp(&self, id: UdpId) -> Option<&UdpSocket> {
        match &self.socks.get(self.main.get(&id.into())?)?.io {
            Io::Udp(u) => Some(u),
            _ => None,
        }
    }

    /// `Write` / a datagram of `SendDatagrams`: tried at once (the OS usually takes it), else held for writability.
    fn write(&mut self, id: SocketId, data: Bytes, to: Option<SocketAddr>) {
        if let Some(&token) = self.main.get(&id) {
            if let Some(sock) = self.socks.get_mut(&token) {
                sock.pending.push_back((data, to));
                if sock.writable {
                    self.flush(token);
                }
            }
        }
    }

    /// Serves a socket the OS reported (or that is due).
    fn service(&mut self, token: Token) {
        let Some(sock) = self.socks.get_mut(&token) else {
            return;
        };
        if let Io::Connecting(stream, attempt) = &sock.io {
            let SocketId::TcpId(id) = sock.id else { return };
            let attempt = *attempt;
            match os::connect_result(SockRef::from(stream)) {
                None => sock.writable = false,
                Some(Ok(local)) => {
                    // The winner becomes the id's socket; the core aborts the others.
                    let Some(Sock {
                        io: Io::Connecting(stream, _),
                        ..
                    }) = self.socks.remove(&token)
                    else {
                        unreachable!()
                    };
                    self.attempts.remove(&(id, attempt));
                    let sock = Sock {
                        id: id.into(),
                        io: Io::Stream(stream),
                        reading: false,
                        readable: false,
                        writable: true,
                        pending: VecDeque::new(),
                        done_reading: false,
                    };
                    self.socks.insert(token, sock);
                    self.main.insert(id.into(), token);
                    self.reports
                        .push(Report::Input(Input::Connected { id, attempt, local }));
                }
                Some(Err(e)) => {
                    self.attempts.remove(&(id, attempt));
                    self.close(token);
                    let error = e.kind();
                    self.reports
                        .push(Report::Input(Input::ConnectFailed { id, attempt, error }));
                }
            }
            return;
        }
        if sock.writable && !sock.pending.is_empty() {
            self.flush(token);
        }
        self.read(token);
    }

    fn flush(&mut self, token: Token) {
        let Some(sock) = self.socks.get_mut(&token) else {
            return;
        };
        let Some((data, to)) = sock.pending.pop_front() else {
            return;
        };
        let result = match (&mut sock.io, to) {
            (Io::Stream(s), _) => s.write(&data),
            (Io::Udp(u), Some(to)) => u.send_to(&data, to),
            _ => return,
        };
        let input = match crate::write_input(sock.id, result) {
            Ok(input) => input,
            // The OS took nothing: wait for writability (`EINTR`: again, without waiting).
            Err(e) => {
                sock.pending.push_front((data, to));
                return match e.kind() {
                    io::ErrorKind::Interrupted => self.due.push(token),
                    _ => sock.writable = false,
                };
            }
        };
        if matches!(input, Input::Failed { .. }) {
            sock.done_reading = true;
        }
        if !sock.pending.is_empty() {
            self.due.push(token); // the next datagram taken meanwhile
        }
        self.reports.push(Report::Input(input));
    }

    /// Reads (accepts, receives) while the core wants it, up to the per-turn bound.
    fn read(&mut self, token: Token) {
        let Some(sock) = self.socks.get_mut(&token) else {
            return;
        };
        if !sock.reading || !sock.readable || sock.done_reading {
            return;
        }
        for _ in 0..PER_TURN {
            let report = match (&mut sock.io, sock.id) {
                (Io::Stream(s), SocketId::TcpId(id)) => {
                    self.buf.resize(CHUNK, 0);
                    let read = crate::read_input(id, s.read(&mut self.buf), &mut self.buf);
                    read.map(|input| {
                        // Never read again after the FIN or a failure.
                        sock.done_reading = !matches!(input, Input::Received { .. });
                        Report::Input(input)
                    })
                }
                (Io::Listener(l), SocketId::ServerId(server)) => match l.accept() {
                    Ok((stream, remote)) => match stream.local_addr() {
                        Ok(local) => Ok(Report::Accepted(server, stream, local, remote)),
                        Err(_) => continue, // gone already
                    },
                    Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                    Err(e) => Err(e), // WouldBlock, or out of descriptors: wait for the next edge
                },
                (Io::Udp(u), SocketId::UdpId(id)) => {
                    self.buf.resize(CHUNK, 0); // 64 KiB: no datagram is larger
                    match u.recv_from(&mut self.buf) {
                        Ok((n, remote)) => {
                            let data = Bytes::copy_from_slice(&self.buf[..n]);
                            Ok(Report::Input(Input::Datagram { id, data, remote }))
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(e),
                        // An ICMP report of an earlier send: consumed, concerns no datagram.
                        Err(_) => continue,
                    }
                }
                _ => return,
            };
            match report {
                Ok(report) => self.reports.push(report),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    sock.readable = false;
                    self.buf.clear();
                    return;
                }
            }
            if sock.done_reading {
                self.buf.clear();
                return;
            }
        }
        self.buf.clear();
        self.due.push(token); // stopped by the bound: come back without waiting
    }
}
