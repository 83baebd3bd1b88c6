//! The OS side: the map from ids to OS sockets, their interest in the poller, the one write in
//! flight per socket, and the syscalls that carry out the core's actions. Everything that
//! happens is reported as an [`Input`]; no protocol state lives here.
//!
//! Rules kept throughout:
//! - every source is registered one-shot (polling 3's default): after each event it is
//!   disarmed, and [`Reactor::sync`] re-arms it with `modify` for what is still wanted;
//! - nothing is armed that is not wanted, so an idle loop sleeps (a socket with nothing
//!   wanted stays disarmed even if the OS keeps reporting hang-up or error on it);
//! - reading follows the core's `SetReading` exactly and stops for good at the end of stream;
//!   writing is independent of reading (a blocked write never stops reads);
//! - `EINTR` is retried, `WouldBlock` means "wait for readiness" and is never reported;
//! - a source is deleted from the poller before its socket is closed.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use polling::{Event as Readiness, Events, Poller};
use socket2::{Domain, Protocol, SockAddr, Socket, TcpKeepalive, Type};
use sockstate::{Input, SocketId, TcpId};

/// Limits of one turn of the loop (see [`Config`](crate::Config)).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) read_chunk: usize,
    pub(crate) reads_per_turn: usize,
}

/// Which readiness a source waits for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Interest {
    read: bool,
    write: bool,
}

impl Interest {
    const NONE: Interest = Interest {
        read: false,
        write: false,
    };
}

/// Who an OS socket belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    /// A TCP connect attempt still in progress.
    Attempt { id: TcpId, attempt: u8 },
    /// The connected socket of a TCP id.
    Stream(TcpId),
}

impl Owner {
    fn id(self) -> SocketId {
        match self {
            Owner::Attempt { id, .. } | Owner::Stream(id) => id.into(),
        }
    }
}

/// One OS socket registered in the poller.
struct Source {
    socket: Socket,
    owner: Owner,
    /// What is registered in the kernel right now (`NONE` after an event fired: one-shot).
    armed: Interest,
    /// The one write in flight, waiting for writability.
    pending: Option<Bytes>,
    /// A read returned 0: never read again.
    eof: bool,
    /// A failure was reported: no more I/O, waiting for `Release`.
    dead: bool,
}

/// Per id: its OS sockets and what the core asked for.
#[derive(Default)]
struct Entry {
    /// Every OS socket of the id (connect attempts and the connected one).
    keys: Vec<usize>,
    /// The connected socket, once an attempt won.
    main: Option<usize>,
    /// The core's last `SetReading`.
    reading: bool,
    /// A resolution is in flight.
    resolving: bool,
}

pub(crate) struct Reactor {
    sources: HashMap<usize, Source>,
    ids: HashMap<SocketId, Entry>,
    /// Keys are never reused, so an event can never be taken for another socket's.
    next_key: usize,
    buf: BytesMut,
    events: Events,
    /// This turn's events, copied out of `events` so that handling them may touch `self`.
    ready: Vec<Readiness>,
    limits: Limits,
}

impl Reactor {
    pub(crate) fn new(limits: Limits) -> Reactor {
        Reactor {
            sources: HashMap::new(),
            ids: HashMap::new(),
            next_key: 0,
            buf: BytesMut::new(),
            events: Events::new(),
            ready: Vec::new(),
            limits,
        }
    }

    /// Whether any OS socket or resolution is live.
    pub(crate) fn is_idle(&self) -> bool {
        self.ids.is_empty()
    }

    // ---- actions --------------------------------------------------------------------------

    /// `Action::Resolve` was handed to the resolver: its answer is awaited.
    pub(crate) fn resolving(&mut self, id: TcpId) {
        self.ids.entry(id.into()).or_default().resolving = true;
    }

    /// Whether an answer for `id` is still awaited (taking it if so).
    pub(crate) fn take_resolving(&mut self, id: TcpId) -> bool {
        match self.ids.get_mut(&id.into()) {
            Some(entry) if entry.resolving => {
                entry.resolving = false;
                true
            }
            _ => false,
        }
    }

    /// `Action::Connect`: a new OS socket, bound if asked, non-blocking connect started.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn connect(
        &mut self,
        poller: &Poller,
        id: TcpId,
        attempt: u8,
        remote: SocketAddr,
        local: Option<SocketAddr>,
        no_delay: bool,
        keep_alive: Option<Duration>,
        inputs: &mut Vec<Input>,
    ) {
        let started = start_connect(remote, local, no_delay, keep_alive).and_then(|socket| {
            let want = Interest {
                read: false,
                write: true,
            };
            self.register(poller, socket, Owner::Attempt { id, attempt }, want)
        });
        if let Err(e) = started {
            inputs.push(Input::ConnectFailed {
                id,
                attempt,
                error: e.kind(),
            });
        }
    }

    /// `Action::AbortConnect`: close that attempt's socket.
    pub(crate) fn abort_connect(&mut self, poller: &Poller, id: TcpId, attempt: u8) {
        if let Some(key) = self.find(id.into(), |o| o == Owner::Attempt { id, attempt }) {
            self.close_source(poller, key);
        }
    }

    /// `Action::SetReading`.
    pub(crate) fn set_reading(
        &mut self,
        poller: &Poller,
        id: SocketId,
        enabled: bool,
        inputs: &mut Vec<Input>,
    ) {
        let Some(entry) = self.ids.get_mut(&id) else {
            return;
        };
        entry.reading = enabled;
        if let Some(key) = entry.main {
            self.sync(poller, key, inputs);
        }
    }

    /// `Action::Write`: try at once; on `WouldBlock` hold it and wait for writability.
    pub(crate) fn write(
        &mut self,
        poller: &Poller,
        id: TcpId,
        data: Bytes,
        inputs: &mut Vec<Input>,
    ) {
        let Some(key) = self.main(id.into()) else {
            return;
        };
        let Some(source) = self.sources.get_mut(&key) else {
            return;
        };
        if source.dead {
            return; // a failure is already reported; the core will release the socket
        }
        source.pending = Some(data);
        self.flush(key, inputs);
        self.sync(poller, key, inputs);
    }

    /// `Action::Shutdown`: FIN (`shutdown(SHUT_WR)`); reading goes on as the core says.
    pub(crate) fn shutdown(&mut self, id: TcpId, inputs: &mut Vec<Input>) {
        let Some(key) = self.main(id.into()) else {
            return;
        };
        let Some(source) = self.sources.get_mut(&key) else {
            return;
        };
        if source.dead {
            return;
        }
        if let Err(e) = retry(|| source.socket.shutdown(Shutdown::Write)) {
            source.dead = true;
            inputs.push(Input::Failed {
                id,
                error: e.kind(),
            });
        }
    }

    /// `Action::Release`: delete and close every OS socket of the id and forget it.
    pub(crate) fn release(&mut self, poller: &Poller, id: SocketId) {
        if let Some(entry) = self.ids.remove(&id) {
            for key in entry.keys {
                self.close_source(poller, key);
            }
        }
    }

    // ---- readiness ------------------------------------------------------------------------

    /// Waits for readiness (at most `timeout`) and reports what the OS did as inputs.
    pub(crate) fn wait(
        &mut self,
        poller: &Poller,
        timeout: Option<Duration>,
        inputs: &mut Vec<Input>,
    ) -> io::Result<()> {
        self.events.clear(); // `wait` appends
        poller.wait(&mut self.events, timeout)?;
        let mut ready = std::mem::take(&mut self.ready);
        ready.extend(self.events.iter());
        for event in ready.drain(..) {
            self.ready(poller, event, inputs);
        }
        self.ready = ready; // keep the allocation
        Ok(())
    }

    fn ready(&mut self, poller: &Poller, event: Readiness, inputs: &mut Vec<Input>) {
        let key = event.key;
        let Some(source) = self.sources.get_mut(&key) else {
            return; // closed since it was reported
        };
        source.armed = Interest::NONE; // one-shot: the registration fired and is disarmed
        match source.owner {
            Owner::Attempt { id, attempt } => {
                if self.main(id.into()).is_some() {
                    return; // another attempt already won; the core aborts this one
                }
                self.connect_ready(poller, key, id, attempt, inputs);
            }
            Owner::Stream(_) => {
                if event.readable {
                    self.read(key, inputs);
                }
                if event.writable {
                    self.flush(key, inputs);
                }
            }
        }
        self.sync(poller, key, inputs);
    }

    /// A connect attempt became writable (or failed).
    fn connect_ready(
        &mut self,
        poller: &Poller,
        key: usize,
        id: TcpId,
        attempt: u8,
        inputs: &mut Vec<Input>,
    ) {
        let Some(source) = self.sources.get(&key) else {
            return;
        };
        let outcome = match source.socket.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => match source.socket.peer_addr() {
                Ok(_) => source.socket.local_addr().and_then(|a| {
                    a.as_socket()
                        .ok_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable))
                }),
                // Not connected yet: a spurious wake-up; keep waiting.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => Err(e),
            },
        };
        match outcome {
            Ok(local) => {
                if let Some(source) = self.sources.get_mut(&key) {
                    source.owner = Owner::Stream(id);
                }
                self.ids.entry(id.into()).or_default().main = Some(key);
                inputs.push(Input::Connected { id, attempt, local });
            }
            Err(e) => {
                self.close_source(poller, key);
                inputs.push(Input::ConnectFailed {
                    id,
                    attempt,
                    error: e.kind(),
                });
            }
        }
    }

    /// Reads what is there, at most `reads_per_turn` chunks (fairness between sockets).
    fn read(&mut self, key: usize, inputs: &mut Vec<Input>) {
        let Some(source) = self.sources.get_mut(&key) else {
            return;
        };
        let Owner::Stream(id) = source.owner else {
            return;
        };
        let reading = self.ids.get(&id.into()).is_some_and(|e| e.reading);
        if !reading || source.eof || source.dead {
            return;
        }
        let chunk = self.limits.read_chunk.max(1);
        for _ in 0..self.limits.reads_per_turn.max(1) {
            if self.buf.len() < chunk {
                self.buf.resize(chunk, 0);
            }
            match retry(|| (&source.socket).read(&mut self.buf[..chunk])) {
                Ok(0) => {
                    source.eof = true;
                    inputs.push(Input::Eof { id });
                    return;
                }
                Ok(n) => {
                    let data = self.buf.split_to(n).freeze();
                    inputs.push(Input::Received { id, data });
                    if n < chunk {
                        return; // most likely drained; the re-armed interest says if not
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    source.dead = true;
                    inputs.push(Input::Failed {
                        id,
                        error: e.kind(),
                    });
                    return;
                }
            }
        }
    }

    /// Writes the write in flight, if any; reports what the OS took.
    fn flush(&mut self, key: usize, inputs: &mut Vec<Input>) {
        let Some(source) = self.sources.get_mut(&key) else {
            return;
        };
        let Owner::Stream(id) = source.owner else {
            return;
        };
        let Some(data) = &source.pending else {
            return;
        };
        if source.dead {
            return;
        }
        match retry(|| send(&source.socket, data)) {
            Ok(0) => {} // nothing taken: wait for writability
            Ok(len) => {
                source.pending = None;
                inputs.push(Input::Written { id, len });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                source.pending = None;
                source.dead = true;
                inputs.push(Input::Failed {
                    id,
                    error: e.kind(),
                });
            }
        }
    }

    // ---- bookkeeping ----------------------------------------------------------------------

    fn main(&self, id: SocketId) -> Option<usize> {
        self.ids.get(&id).and_then(|e| e.main)
    }

    fn find(&self, id: SocketId, pred: impl Fn(Owner) -> bool) -> Option<usize> {
        let entry = self.ids.get(&id)?;
        entry
            .keys
            .iter()
            .copied()
            .find(|key| self.sources.get(key).is_some_and(|s| pred(s.owner)))
    }

    /// What a source should be armed for now.
    fn wanted(&self, source: &Source) -> Interest {
        if source.dead {
            return Interest::NONE;
        }
        match source.owner {
            Owner::Attempt { .. } => Interest {
                read: false,
                write: true,
            },
            Owner::Stream(id) => Interest {
                read: !source.eof && self.ids.get(&id.into()).is_some_and(|e| e.reading),
                write: source.pending.is_some(),
            },
        }
    }

    /// Re-arms a source for what is wanted (one-shot: after every event, and whenever the
    /// wish changes). A source that wants nothing stays disarmed.
    fn sync(&mut self, poller: &Poller, key: usize, inputs: &mut Vec<Input>) {
        let Some(source) = self.sources.get(&key) else {
            return;
        };
        let want = self.wanted(source);
        if want == source.armed {
            return;
        }
        let event = match (want.read, want.write) {
            (true, true) => Readiness::all(key),
            (true, false) => Readiness::readable(key),
            (false, true) => Readiness::writable(key),
            (false, false) => Readiness::none(key),
        };
        let result = poller.modify(&source.socket, event);
        let Some(source) = self.sources.get_mut(&key) else {
            return;
        };
        match result {
            Ok(()) => source.armed = want,
            Err(e) => {
                // The poller refused: the socket could never make progress again.
                let owner = source.owner;
                source.dead = true;
                match owner {
                    Owner::Attempt { id, attempt } => {
                        self.close_source(poller, key);
                        inputs.push(Input::ConnectFailed {
                            id,
                            attempt,
                            error: e.kind(),
                        });
                    }
                    Owner::Stream(id) => inputs.push(Input::Failed {
                        id,
                        error: e.kind(),
                    }),
                }
            }
        }
    }

    fn register(
        &mut self,
        poller: &Poller,
        socket: Socket,
        owner: Owner,
        want: Interest,
    ) -> io::Result<()> {
        let key = self.next_key;
        let event = match (want.read, want.write) {
            (true, true) => Readiness::all(key),
            (true, false) => Readiness::readable(key),
            (false, true) => Readiness::writable(key),
            (false, false) => Readiness::none(key),
        };
        // SAFETY: polling requires the source to be deleted before it is closed. Every socket
        // registered here lives in `self.sources` until `close_source` deletes it and only
        // then drops it; `Reactor::close_all` does the same for all of them when the driver is
        // dropped.
        unsafe { poller.add(&socket, event)? };
        self.next_key += 1;
        self.sources.insert(
            key,
            Source {
                socket,
                owner,
                armed: want,
                pending: None,
                eof: false,
                dead: false,
            },
        );
        self.ids.entry(owner.id()).or_default().keys.push(key);
        Ok(())
    }

    /// Deletes a source from the poller, then closes its socket.
    fn close_source(&mut self, poller: &Poller, key: usize) {
        if let Some(source) = self.sources.remove(&key) {
            let _ = poller.delete(&source.socket);
            if let Some(entry) = self.ids.get_mut(&source.owner.id()) {
                entry.keys.retain(|&k| k != key);
                if entry.main == Some(key) {
                    entry.main = None;
                }
            }
            drop(source.socket);
        }
    }

    /// Deletes and closes every socket (the driver is going away).
    pub(crate) fn close_all(&mut self, poller: &Poller) {
        let keys: Vec<usize> = self.sources.keys().copied().collect();
        for key in keys {
            self.close_source(poller, key);
        }
        self.ids.clear();
    }
}

/// Retries a syscall interrupted by a signal (`EINTR`).
fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// `send` without `SIGPIPE`: a peer that went away is an error, not a signal.
fn send(socket: &Socket, data: &[u8]) -> io::Result<usize> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let flags = libc::MSG_NOSIGNAL;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let flags = 0;
    socket.send_with_flags(data, flags)
}

/// A non-blocking TCP socket with its options, bound if asked, its connect started.
fn start_connect(
    remote: SocketAddr,
    local: Option<SocketAddr>,
    no_delay: bool,
    keep_alive: Option<Duration>,
) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(remote),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    socket.set_nosigpipe(true)?;
    socket.set_tcp_nodelay(no_delay)?;
    if let Some(idle) = keep_alive {
        socket.set_keepalive(true)?;
        socket.set_tcp_keepalive(&TcpKeepalive::new().with_time(idle))?;
    }
    if let Some(local) = local {
        socket.bind(&SockAddr::from(local))?;
    }
    // Not retried on EINTR: an interrupted connect goes on in the background, like one in
    // progress, and its outcome is read on writability.
    match socket.connect(&SockAddr::from(remote)) {
        Ok(()) => Ok(socket),
        Err(e) if in_progress(&e) => Ok(socket),
        Err(e) => Err(e),
    }
}

/// `EINPROGRESS` (Unix) or `WSAEWOULDBLOCK` (Windows) from a non-blocking connect, or `EINTR`.
fn in_progress(e: &io::Error) -> bool {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::EINPROGRESS) {
        return true;
    }
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}
