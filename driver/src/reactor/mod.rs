//! The OS side: the map from ids to OS sockets, their interest in the poller, the one write in
//! flight per socket, and the syscalls that carry out the core's actions. Everything that
//! happens is reported as an [`Input`] (or an accepted connection, which the driver hands to
//! the core); no protocol state lives here.
//!
//! Rules kept throughout:
//! - readiness is tracked per source ([`Source::ready`]): an event from the poller sets it, and
//!   only the OS taking it back (`WouldBlock`, or a read that drained the queue) clears it. A
//!   source that can act on what it knows without asking the OS (it stopped at a per-turn limit,
//!   or reading was resumed over data already reported) waits in [`Reactor::due`] for the next
//!   round, whose wait then polls without blocking;
//! - a wait begins a round of the sources it found ready and those due, served
//!   [`Limits::sources_per_turn`] per turn without waiting again (see [`Reactor::wait`]);
//! - where the poller supports it (epoll, kqueue), every source is registered edge-triggered,
//!   for reading, and for writing too from its first write that would block (a connect
//!   attempt from the start): at most one `modify` in its life, none per event or per change
//!   of interest. A socket that wants nothing wakes the loop only when its state changes (new
//!   data, freed buffer space, a hang-up), never again for the same state, so an idle loop
//!   sleeps;
//! - elsewhere sources are registered one-shot: after each event a source is disarmed, and
//!   [`Reactor::sync`] re-arms it with `modify` for what is wanted and not known ready, and
//!   nothing is armed that is not wanted;
//! - reading follows the core's `SetReading` exactly and stops for good at the end of stream;
//!   writing is independent of reading (a blocked write never stops reads);
//! - `EINTR` is retried, `WouldBlock` means "wait for readiness" and is never reported;
//! - a source is deleted from the poller before its socket is closed.

use rustc_hash::FxBuildHasher;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use polling::{Event as Readiness, PollMode, Poller};
use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, TcpKeepalive, Type};
use sockstate::{Input, ServerId, SocketId, TcpId, UdpId};

use crate::wait::{Ready, Waiter};

/// Limits of one turn of the loop, and the multicast interfaces (see
/// [`Config`](crate::Config)).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) read_chunk: usize,
    pub(crate) reads_per_turn: usize,
    pub(crate) accepts_per_turn: usize,
    pub(crate) datagrams_per_turn: usize,
    pub(crate) sources_per_turn: usize,
    pub(crate) spin_polls: u32,
    pub(crate) multicast_interface_v4: Option<Ipv4Addr>,
    pub(crate) multicast_interface_v6: u32,
}

/// A whole UDP datagram always fits: the largest IPv4 payload is 65 507 bytes and the largest
/// IPv6 one (without jumbograms) 65 527, so nothing read is ever truncated.
const DATAGRAM_BUFFER: usize = 65_536;

/// A stream read of at most this many bytes is copied out of the read buffer rather than split
/// off it: it then holds its own bytes only, not the whole chunk (for as long as the app or a
/// send queue keeps it: an echo of a few bytes pinned 64 KiB until written), and the buffer
/// serves the next read as it is. Larger reads are handed over without a copy.
const SMALL_READ: usize = 4 << 10;

/// Datagrams one read call takes at most, each into its own [`DATAGRAM_BUFFER`]: with
/// `recvmmsg` (Linux), one syscall reads what is queued, up to this many, and a short count
/// says the queue is empty (no extra call to see `EAGAIN`). Elsewhere one `recv_from` each.
/// The buffer is allocated zeroed at the first read and only the pages datagrams land in
/// become resident.
#[cfg(any(target_os = "linux", target_os = "android"))]
const DATAGRAM_BATCH: usize = 8;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const DATAGRAM_BATCH: usize = 1;

/// How long a listening socket rests after `accept` failed for want of resources (file
/// descriptors, memory): its pending connection would otherwise wake the loop at once, again
/// and again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What the reactor reports to the driver: an input for the core, or a connection accepted
/// on a server (for [`Core::handle_accepted`](sockstate::Core::handle_accepted)).
#[derive(Debug)]
pub(crate) enum Report {
    Input(Input),
    Accepted {
        server: ServerId,
        socket: Socket,
        local: SocketAddr,
        remote: SocketAddr,
    },
}

impl From<Input> for Report {
    fn from(input: Input) -> Report {
        Report::Input(input)
    }
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
    const BOTH: Interest = Interest {
        read: true,
        write: true,
    };

    /// What is in `self` and not in `other`.
    fn minus(self, other: Interest) -> Interest {
        Interest {
            read: self.read && !other.read,
            write: self.write && !other.write,
        }
    }
}

/// How sources are registered in the poller (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Edge-triggered (epoll, kqueue): for reading from the start, for writing too from the
    /// first write that would block.
    Edge,
    /// Re-armed with `modify` after every event, for what is wanted.
    Oneshot,
}

impl Mode {
    /// Edge-triggered where the poller supports it.
    pub(crate) fn of(poller: &Poller) -> Mode {
        if poller.supports_edge() {
            Mode::Edge
        } else {
            Mode::Oneshot
        }
    }
}

/// Who an OS socket belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    /// A TCP connect attempt still in progress.
    Attempt { id: TcpId, attempt: u8 },
    /// The connected socket of a TCP id.
    Stream(TcpId),
    /// A listening socket.
    Server(ServerId),
    /// A bound UDP socket.
    Udp(UdpId),
}

impl Owner {
    fn id(self) -> SocketId {
        match self {
            Owner::Attempt { id, .. } | Owner::Stream(id) => id.into(),
            Owner::Server(id) => id.into(),
            Owner::Udp(id) => id.into(),
        }
    }
}

/// The OS socket: socket2's for TCP, std's for UDP (whose `recv_from` reads into an
/// initialised buffer, so that no `unsafe` is needed).
enum Io {
    Socket(Socket),
    Udp(UdpSocket),
}

impl Io {
    /// socket2's view of either kind, for options and for the poller.
    fn sock(&self) -> SockRef<'_> {
        match self {
            Io::Socket(s) => SockRef::from(s),
            Io::Udp(s) => SockRef::from(s),
        }
    }
}

/// One OS socket registered in the poller.
struct Source {
    io: Io,
    owner: Owner,
    /// What is registered in the kernel right now. [`Mode::Edge`]: reading, and writing too
    /// from the first write that would block; [`Mode::Oneshot`]: `NONE` after an event fired.
    armed: Interest,
    /// What the poller reported ready and the OS has not taken back since (by `WouldBlock` or a
    /// read that drained the queue): what may be tried without waiting for an event.
    ready: Interest,
    /// In [`Reactor::due`].
    queued: bool,
    /// The poller reported an error or a hang-up: a read's `TCP_INQ` hint that nothing is
    /// left is not trusted (a reset that came before the event left no later event).
    hangup: bool,
    /// The core's last `SetReading` for the id, as in its [`Entry`] (kept here too so that
    /// an event needs no lookup by id; an attempt's copy is taken when it wins).
    reading: bool,
    /// The one write in flight, waiting for writability (with its destination for UDP).
    pending: Option<(Bytes, Option<SocketAddr>)>,
    /// A read returned 0: never read again.
    eof: bool,
    /// A failure was reported: no more I/O, waiting for `Release`.
    dead: bool,
    /// A listening socket resting after `accept` ran out of resources (until its entry in
    /// [`Reactor::resting`] is due).
    resting: bool,
    /// The core's `Shutdown` waits in [`Reactor::fins`].
    fin_due: bool,
}

/// The OS sockets by key: a slab, so that a socket costs its [`Source`] and nothing more.
///
/// A key freed is taken again only after the next `wait` has begun: every event of a batch
/// was reported for the socket that held its key when the batch was taken (a socket leaves the
/// poller before it is closed), so none can reach a later socket with the same key.
#[derive(Default)]
struct Sources {
    slots: Vec<Option<Source>>,
    /// Keys free for the next registration.
    free: Vec<usize>,
    /// Keys freed since the last `wait` began.
    freed: Vec<usize>,
}

impl Sources {
    fn get(&self, key: usize) -> Option<&Source> {
        self.slots.get(key)?.as_ref()
    }

    fn get_mut(&mut self, key: usize) -> Option<&mut Source> {
        self.slots.get_mut(key)?.as_mut()
    }

    /// The key the next [`insert`](Self::insert) takes.
    fn vacant_key(&self) -> usize {
        self.free.last().copied().unwrap_or(self.slots.len())
    }

    fn insert(&mut self, source: Source) -> usize {
        match self.free.pop() {
            Some(key) => {
                self.slots[key] = Some(source);
                key
            }
            None => {
                self.slots.push(Some(source));
                self.slots.len() - 1
            }
        }
    }

    fn remove(&mut self, key: usize) -> Option<Source> {
        let source = self.slots.get_mut(key)?.take()?;
        self.freed.push(key);
        Some(source)
    }

    /// A `wait` begins: the keys freed before it may be taken again.
    fn recycle(&mut self) {
        self.free.append(&mut self.freed);
    }

    fn keys(&self) -> impl Iterator<Item = usize> + '_ {
        (self.slots.iter().enumerate()).filter_map(|(key, s)| s.as_ref().map(|_| key))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys().count()
    }
}

impl Source {
    /// What a source should be armed for now.
    fn wanted(&self) -> Interest {
        if self.dead {
            return Interest::NONE;
        }
        match self.owner {
            Owner::Attempt { .. } => Interest {
                read: false,
                write: true,
            },
            Owner::Stream(_) | Owner::Udp(_) => Interest {
                read: !self.eof && self.reading,
                write: self.pending.is_some(),
            },
            Owner::Server(_) => Interest {
                read: !self.resting && self.reading,
                write: false,
            },
        }
    }

    /// Whether there is work it can do on what is known, without waiting for the poller: a
    /// wanted direction that is ready. Every way of servicing it either makes progress or
    /// clears the readiness it acted on, so a source cannot stay due without progress.
    fn can_act(&self) -> bool {
        let due = self.wanted();
        (due.read && self.ready.read) || (due.write && self.ready.write)
    }
}

/// Per id: its main OS socket and what the core asked for, in 8 bytes, so that the map of
/// 10 000 of them (with its serial keys) stays in a CPU's cache: every action and every
/// connect outcome looks an id up. Connect attempts are kept apart ([`Reactor::attempts`]).
#[derive(Clone, Copy)]
struct Entry {
    /// The key of the connected socket ([`NO_KEY`] until an attempt won; a server's or UDP
    /// socket's from the start).
    main: u32,
    /// The core's last `SetReading`.
    reading: bool,
    /// A resolution is in flight.
    resolving: bool,
}

/// [`Entry::main`] when there is no main socket.
const NO_KEY: u32 = u32::MAX;

impl Default for Entry {
    fn default() -> Entry {
        Entry {
            main: NO_KEY,
            reading: false,
            resolving: false,
        }
    }
}

impl Entry {
    fn main(self) -> Option<usize> {
        (self.main != NO_KEY).then_some(self.main as usize)
    }
}

pub(crate) struct Reactor {
    sources: Sources,
    /// By [`SocketId::serial`].
    ids: HashMap<u64, Entry, FxBuildHasher>,
    /// The connect attempts in progress of a TCP id, by [`SocketId::serial`] (none for an accepted
    /// socket, and none once connected: nothing is allocated).
    attempts: HashMap<u64, Vec<usize>, FxBuildHasher>,
    /// Listening sockets bound to a specific address, and that address: every connection
    /// they accept has it as its local address (asked once, not once per accept).
    fixed_locals: Vec<(usize, SocketAddr)>,
    /// Listening sockets resting after `accept` ran out of resources, and until when: kept
    /// apart so that no turn of the loop has to look at every socket.
    resting: Vec<(usize, Instant)>,
    /// Where streams are read into (see [`recv_chunk`]); always empty between reads.
    buf: BytesMut,
    /// [`DATAGRAM_BATCH`] datagrams at a time.
    datagram: Vec<u8>,
    waiter: Waiter,
    /// What the last wait reported (kept for its allocation).
    ready: Vec<Ready>,
    /// Sources to service at the next turn (their [`Source::queued`] is set): they can act
    /// without waiting for the OS, so that turn polls without blocking.
    due: Vec<usize>,
    /// Sources whose FIN waits (see [`Reactor::shutdown`]).
    fins: Vec<usize>,
    /// The round being serviced, from [`next`](Reactor::next) on (see [`Reactor::wait`]).
    servicing: Vec<usize>,
    next: usize,
    mode: Mode,
    limits: Limits,
}

impl Reactor {
    pub(crate) fn new(poller: &Poller, mode: Mode, limits: Limits) -> Reactor {
        Reactor {
            sources: Sources::default(),
            ids: HashMap::default(),
            attempts: HashMap::default(),
            fixed_locals: Vec::new(),
            resting: Vec::new(),
            buf: BytesMut::new(),
            datagram: Vec::new(),
            waiter: Waiter::new(poller).spinning(limits.spin_polls),
            ready: Vec::new(),
            due: Vec::new(),
            servicing: Vec::new(),
            next: 0,
            fins: Vec::new(),
            mode,
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
        self.ids.entry(id.serial()).or_default().resolving = true;
    }

    /// Whether an answer for `id` is still awaited (taking it if so).
    pub(crate) fn take_resolving(&mut self, id: TcpId) -> bool {
        match self.ids.get_mut(&id.serial()) {
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
        reports: &mut Vec<Report>,
    ) {
        let started = start_connect(remote, local, no_delay, keep_alive).and_then(|socket| {
            let owner = Owner::Attempt { id, attempt };
            self.register(poller, Io::Socket(socket), owner).map(|_| ())
        });
        if let Err(e) = started {
            reports.push(
                Input::ConnectFailed {
                    id,
                    attempt,
                    error: e.kind(),
                }
                .into(),
            );
        }
    }

    /// `Action::AbortConnect`: close that attempt's socket.
    pub(crate) fn abort_connect(&mut self, poller: &Poller, id: TcpId, attempt: u8) {
        let owner = Owner::Attempt { id, attempt };
        let key = self.attempts.get(&id.serial()).and_then(|keys| {
            (keys.iter().copied())
                .find(|&key| self.sources.get(key).is_some_and(|s| s.owner == owner))
        });
        if let Some(key) = key {
            self.close_source(poller, key);
        }
    }

    /// `Action::Listen`: a listening socket, not accepting until `SetReading` says so.
    pub(crate) fn listen(
        &mut self,
        poller: &Poller,
        id: ServerId,
        local: SocketAddr,
        backlog: u32,
        reuse_address: bool,
        reports: &mut Vec<Report>,
    ) {
        let listening = self.open(poller, start_listen(local, backlog, reuse_address), |s| {
            (Io::Socket(s), Owner::Server(id))
        });
        reports.push(
            match listening {
                Ok(local) => Input::Listening { id, local },
                Err(e) => Input::ListenFailed {
                    id,
                    error: e.kind(),
                },
            }
            .into(),
        );
    }

    /// `Action::Bind`: a bound UDP socket with its options, not read until `SetReading`.
    pub(crate) fn bind(
        &mut self,
        poller: &Poller,
        id: UdpId,
        local: SocketAddr,
        reuse_address: bool,
        loopback: bool,
        reports: &mut Vec<Report>,
    ) {
        let socket = self.start_udp(local, reuse_address, loopback);
        let bound = self.open(poller, socket, |s| (Io::Udp(s.into()), Owner::Udp(id)));
        reports.push(
            match bound {
                Ok(local) => Input::Bound { id, local },
                Err(e) => Input::BindFailed {
                    id,
                    error: e.kind(),
                },
            }
            .into(),
        );
    }

    /// Registers a socket just bound (a server's or a UDP socket's) and returns where the OS
    /// bound it; any failure on the way closes it.
    fn open(
        &mut self,
        poller: &Poller,
        socket: io::Result<Socket>,
        wrap: impl FnOnce(Socket) -> (Io, Owner),
    ) -> io::Result<SocketAddr> {
        let socket = socket?;
        let local = bound_address(&socket)?;
        let (io, owner) = wrap(socket);
        let key = self.register(poller, io, owner)?;
        if matches!(owner, Owner::Server(_)) && !local.ip().is_unspecified() {
            self.fixed_locals.push((key, local));
        }
        Ok(local)
    }

    /// A connection the core accepted as `id`: from now on it is that socket's stream.
    pub(crate) fn adopt(&mut self, poller: &Poller, id: TcpId, socket: Socket) -> io::Result<()> {
        self.register(poller, Io::Socket(socket), Owner::Stream(id))
            .map(|_| ())
    }

    /// `Action::SetReading`.
    pub(crate) fn set_reading(
        &mut self,
        poller: &Poller,
        id: SocketId,
        enabled: bool,
        reports: &mut Vec<Report>,
    ) {
        let Some(entry) = self.ids.get_mut(&id.serial()) else {
            return;
        };
        entry.reading = enabled;
        if let Some(key) = entry.main() {
            if let Some(source) = self.sources.get_mut(key) {
                source.reading = enabled;
            }
            self.sync(poller, key, reports);
        }
    }

    /// `Action::Write` and `Action::SendTo`: try at once; on `WouldBlock` hold it and wait
    /// for writability.
    pub(crate) fn write(
        &mut self,
        poller: &Poller,
        id: SocketId,
        data: Bytes,
        to: Option<SocketAddr>,
        reports: &mut Vec<Report>,
    ) {
        let Some(key) = self.main(id) else {
            return;
        };
        let Some(source) = self.sources.get_mut(key) else {
            return;
        };
        if source.dead {
            return; // a failure is already reported; the core will release the socket
        }
        // Tried at once unless the OS said it would block and has not said otherwise since.
        if source.ready.write {
            match attempt(&source.io, source.owner, &data, to, reports) {
                // Nothing the source wants or knows changed: the core hands over a write only
                // once the last one was reported, so none was in flight before this one either,
                // and readiness stands. Its registration and its place in `due` are as `sync`
                // left them after the last change: no `sync` is needed (the common case).
                Attempt::Done => return,
                Attempt::Blocked => {
                    source.ready.write = false;
                    source.pending = Some((data, to));
                }
                Attempt::Failed(id, e) => fail(source, id, &e, reports),
            }
        } else {
            source.pending = Some((data, to));
        }
        self.sync(poller, key, reports);
    }

    /// `Action::Shutdown`: FIN (`shutdown(SHUT_WR)`); reading goes on as the core says.
    ///
    /// Once the peer's FIN was read, nothing unread can be left, and the core's `Release`
    /// mostly follows at once: then the FIN waits until the driver has taken the rest of the
    /// core's actions ([`flush_fins`](Self::flush_fins)), and a `Release` meanwhile closes the
    /// socket, which sends the FIN itself (one syscall fewer per connection for a server whose
    /// clients close first).
    pub(crate) fn shutdown(&mut self, id: TcpId, reports: &mut Vec<Report>) {
        let Some(key) = self.main(id.into()) else {
            return;
        };
        let Some(source) = self.sources.get_mut(key) else {
            return;
        };
        if source.dead || source.fin_due {
            return;
        }
        if source.eof {
            source.fin_due = true;
            self.fins.push(key);
        } else if let Err(e) = retry(|| source.io.sock().shutdown(Shutdown::Write)) {
            fail(source, id, &e, reports);
        }
    }

    /// Sends the FINs that [`shutdown`](Self::shutdown) held back and no `Release` made
    /// unnecessary. The driver calls this whenever it has taken every action the core had, and
    /// before it hands the app an event: inlined there, as there is mostly none.
    #[inline]
    pub(crate) fn flush_fins(&mut self, reports: &mut Vec<Report>) {
        if !self.fins.is_empty() {
            self.send_fins(reports);
        }
    }

    fn send_fins(&mut self, reports: &mut Vec<Report>) {
        for key in self.fins.drain(..) {
            let Some(source) = self.sources.get_mut(key) else {
                continue; // released: closing it sent the FIN
            };
            let Owner::Stream(id) = source.owner else {
                continue;
            };
            if !std::mem::take(&mut source.fin_due) || source.dead {
                continue;
            }
            if let Err(e) = retry(|| source.io.sock().shutdown(Shutdown::Write)) {
                fail(source, id, &e, reports);
            }
        }
    }

    /// `Action::JoinMulticast` on the configured interface, else the socket's local address's
    /// (any interface if that is unspecified).
    pub(crate) fn join(&mut self, id: UdpId, group: IpAddr, reports: &mut Vec<Report>) {
        if let Err(e) = self.membership(id, group, true) {
            reports.push(
                Input::JoinFailed {
                    id,
                    group,
                    error: e.kind(),
                }
                .into(),
            );
        }
    }

    /// `Action::LeaveMulticast` (a failure is not reported).
    pub(crate) fn leave(&mut self, id: UdpId, group: IpAddr) {
        let _ = self.membership(id, group, false);
    }

    fn membership(&self, id: UdpId, group: IpAddr, join: bool) -> io::Result<()> {
        let source = self
            .main(id.into())
            .and_then(|key| self.sources.get(key))
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
        let sock = source.io.sock();
        match group {
            IpAddr::V4(group) => {
                let local = sock.local_addr()?.as_socket();
                let iface = self.interface_v4(local).unwrap_or(Ipv4Addr::UNSPECIFIED);
                if join {
                    sock.join_multicast_v4(&group, &iface)
                } else {
                    sock.leave_multicast_v4(&group, &iface)
                }
            }
            IpAddr::V6(group) => {
                let index = self.limits.multicast_interface_v6;
                if join {
                    sock.join_multicast_v6(&group, index)
                } else {
                    sock.leave_multicast_v6(&group, index)
                }
            }
        }
    }

    /// The IPv4 multicast interface: the configured one, else a specific local address.
    fn interface_v4(&self, local: Option<SocketAddr>) -> Option<Ipv4Addr> {
        self.limits.multicast_interface_v4.or(match local {
            Some(SocketAddr::V4(a)) if !a.ip().is_unspecified() => Some(*a.ip()),
            _ => None,
        })
    }

    /// `Action::Release`: delete and close every OS socket of the id and forget it.
    pub(crate) fn release(&mut self, poller: &Poller, id: SocketId) {
        let serial = id.serial();
        if let Some(entry) = self.ids.remove(&serial) {
            let attempts = self.attempts.remove(&serial).unwrap_or_default();
            for key in entry.main().into_iter().chain(attempts) {
                self.close_source(poller, key);
            }
        }
    }

    // ---- readiness ------------------------------------------------------------------------

    /// One turn: services the next [`Limits::sources_per_turn`] sources of the round, and
    /// reports what the OS did. A round begins with a wait for readiness (at most `timeout`,
    /// not at all while a source is due) and holds what was due and what the wait brought:
    /// sources are serviced a few per turn, so that the app answers each one's events before
    /// the next ones are read (an echo goes out right after its read, not after a thousand
    /// other reads), and new readiness is asked for once per round, not once per turn.
    pub(crate) fn wait(
        &mut self,
        poller: &Poller,
        timeout: Option<Duration>,
        reports: &mut Vec<Report>,
    ) -> io::Result<()> {
        let mut waited = Ok(());
        if self.next >= self.servicing.len() {
            waited = self.begin_round(poller, timeout);
        }
        let end = (self.servicing.len()).min(self.next + self.limits.sources_per_turn.max(1));
        while self.next < end {
            let key = self.servicing[self.next];
            self.next += 1;
            self.service(poller, key, reports);
        }
        self.wake_resting(poller, reports);
        waited
    }

    /// Waits for readiness and makes what was due and what the wait brought the new round.
    /// What is still due after being serviced (it stopped at a per-turn limit, or became able
    /// to act meanwhile) waits for the next round.
    fn begin_round(&mut self, poller: &Poller, timeout: Option<Duration>) -> io::Result<()> {
        let timeout = match (timeout, self.resting_until()) {
            _ if !self.due.is_empty() => Some(Duration::ZERO),
            (t, None) => t,
            (None, Some(at)) => Some(at.saturating_duration_since(Instant::now())),
            (Some(t), Some(at)) => Some(t.min(at.saturating_duration_since(Instant::now()))),
        };
        // Keys freed in the last round are taken again from now on: no key in the new round
        // can name a socket registered after its event was taken.
        self.sources.recycle();
        self.ready.clear();
        let waited = self.waiter.wait(poller, timeout, &mut self.ready);
        for event in &self.ready {
            let Some(source) = self.sources.get_mut(event.key) else {
                continue; // closed since it was reported
            };
            if self.mode == Mode::Oneshot {
                source.armed = Interest::NONE; // the registration fired and is disarmed
            }
            source.ready.read |= event.readable;
            source.ready.write |= event.writable;
            source.hangup |= event.hangup;
            if !source.queued && source.can_act() {
                source.queued = true;
                self.due.push(event.key);
            }
        }
        self.servicing.clear(); // keep the allocation
        std::mem::swap(&mut self.servicing, &mut self.due);
        self.next = 0;
        waited
    }

    /// Does what a source can do on what is known of it, then re-syncs it.
    fn service(&mut self, poller: &Poller, key: usize, reports: &mut Vec<Report>) {
        let Some(source) = self.sources.get_mut(key) else {
            return; // closed since it was queued (its key is not reused before the next wait)
        };
        source.queued = false;
        let (want, ready) = (source.wanted(), source.ready);
        match source.owner {
            Owner::Attempt { id, attempt } => {
                if (self.ids.get(&id.serial())).is_some_and(|e| e.main().is_some()) {
                    // Another attempt already won; the core aborts this one.
                    source.dead = true;
                } else if ready.write {
                    self.connect_ready(poller, key, id, attempt, reports);
                }
            }
            Owner::Stream(_) | Owner::Udp(_) => {
                if want.read && ready.read {
                    self.read(key, reports);
                }
                if want.write && ready.write {
                    self.flush(key, reports);
                }
            }
            Owner::Server(server) => {
                if want.read && ready.read {
                    self.accept(key, server, reports);
                }
            }
        }
        self.sync(poller, key, reports);
    }

    /// A connect attempt became writable (or failed).
    fn connect_ready(
        &mut self,
        poller: &Poller,
        key: usize,
        id: TcpId,
        attempt: u8,
        reports: &mut Vec<Report>,
    ) {
        let Some(source) = self.sources.get(key) else {
            return;
        };
        let sock = source.io.sock();
        // Connected, or else failed (`SO_ERROR` says why) or not done yet (a spurious
        // wake-up: keep waiting). Asking for the peer first takes one syscall fewer when the
        // connect succeeded, which is what it mostly does.
        let outcome = match sock.peer_addr() {
            Ok(_) => bound_address(&sock),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => match sock.take_error() {
                Ok(Some(e)) | Err(e) => Err(e),
                Ok(None) => {
                    if let Some(source) = self.sources.get_mut(key) {
                        source.ready.write = false;
                    }
                    return;
                }
            },
            Err(e) => Err(e),
        };
        match outcome {
            Ok(local) => {
                let serial = id.serial();
                if let Some(keys) = self.attempts.get_mut(&serial) {
                    keys.retain(|&k| k != key);
                }
                let entry = self.ids.entry(serial).or_default();
                // A key came from `register`, which refuses any that does not fit.
                entry.main = key as u32;
                if let Some(source) = self.sources.get_mut(key) {
                    source.owner = Owner::Stream(id);
                    source.reading = entry.reading;
                }
                reports.push(Input::Connected { id, attempt, local }.into());
            }
            Err(e) => {
                self.close_source(poller, key);
                reports.push(
                    Input::ConnectFailed {
                        id,
                        attempt,
                        error: e.kind(),
                    }
                    .into(),
                );
            }
        }
    }

    /// Reads what is there: at most `reads_per_turn` chunks of a stream or
    /// `datagrams_per_turn` datagrams (fairness between sockets). Readiness is cleared when
    /// the queue was found empty; a source stopped by the limit stays ready (and due).
    fn read(&mut self, key: usize, reports: &mut Vec<Report>) {
        let Some(source) = self.sources.get_mut(key) else {
            return;
        };
        if !source.reading || source.eof || source.dead {
            return;
        }
        match (&source.io, source.owner) {
            (Io::Socket(socket), Owner::Stream(id)) => {
                let chunk = self.limits.read_chunk.max(1);
                for _ in 0..self.limits.reads_per_turn.max(1) {
                    match recv_chunk(socket, &mut self.buf, chunk) {
                        Ok((data, _)) if data.is_empty() => {
                            source.eof = true;
                            reports.push(Input::Eof { id }.into());
                            return;
                        }
                        Ok((data, more)) => {
                            reports.push(Input::Received { id, data }.into());
                            // A short read took all the bytes queued, but a FIN or a reset
                            // that came with them shows only in the next read, and raises no
                            // new event (polling registers no `EPOLLRDHUP`): so read on until
                            // `WouldBlock`, unless the kernel said nothing at all is left.
                            if more == Some(false) && !source.hangup {
                                source.ready.read = false;
                                return;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            source.ready.read = false;
                            return;
                        }
                        Err(e) => {
                            fail(source, id, &e, reports);
                            return;
                        }
                    }
                }
            }
            (Io::Udp(socket), Owner::Udp(id)) => {
                let mut left = self.limits.datagrams_per_turn.max(1);
                while left > 0 {
                    let asked = left.min(DATAGRAM_BATCH);
                    let read = recv_datagrams(socket, &mut self.datagram, asked, |data, remote| {
                        let data = Bytes::copy_from_slice(data);
                        reports.push(Input::Datagram { id, data, remote }.into());
                    });
                    match read {
                        Ok(n) if n == asked => left -= n,
                        // Fewer than asked: the queue is empty for now; a datagram arriving
                        // since raises a new event. (A pending error could also cut a batch
                        // short, but an unconnected UDP socket, as ours are, is never given
                        // one: Linux reports ICMP errors only to connected sockets or with
                        // `IP_RECVERR`.)
                        Ok(_) => {
                            source.ready.read = false;
                            return;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            source.ready.read = false;
                            return;
                        }
                        // A UDP read error (an ICMP report of an earlier send) is consumed by
                        // the failing call and concerns no datagram: there is nothing to
                        // report, and the next read goes on (counted against the limit, so
                        // that no error can keep the loop here).
                        Err(_) => left -= 1,
                    }
                }
            }
            _ => {}
        }
    }

    /// Accepts what is waiting, at most `accepts_per_turn` connections.
    fn accept(&mut self, key: usize, server: ServerId, reports: &mut Vec<Report>) {
        let Some(source) = self.sources.get_mut(key) else {
            return;
        };
        if !source.reading || source.dead || source.resting {
            return;
        }
        let Io::Socket(listener) = &source.io else {
            return;
        };
        // A listener bound to a specific address accepts on that address.
        let fixed_local =
            (self.fixed_locals.iter()).find_map(|&(k, local)| (k == key).then_some(local));
        for _ in 0..self.limits.accepts_per_turn.max(1) {
            match retry(|| accept_nonblocking(listener)) {
                Ok((socket, remote)) => {
                    let ready = accepted_options(&socket)
                        .and_then(|()| set_nosigpipe(&socket))
                        .and_then(|()| {
                            let local = match fixed_local {
                                Some(local) => local,
                                None => bound_address(&socket)?,
                            };
                            let remote = remote
                                .as_socket()
                                .ok_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable))?;
                            Ok((local, remote))
                        });
                    // A connection that cannot be set up is closed (the peer sees a reset),
                    // as if it had never arrived.
                    if let Ok((local, remote)) = ready {
                        reports.push(Report::Accepted {
                            server,
                            socket,
                            local,
                            remote,
                        });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Some(source) = self.sources.get_mut(key) {
                        source.ready.read = false;
                    }
                    return;
                }
                // The peer gave up before we accepted (ECONNABORTED): take the next one.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(_) => {
                    // Out of descriptors or memory (or anything else): rest a while rather
                    // than be woken at once by the same pending connection.
                    self.rest(key, Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }

    /// A listening socket stops accepting until `until` (it wants nothing meanwhile; what
    /// arrives is accepted once [`wake_resting`](Self::wake_resting) ends the rest).
    fn rest(&mut self, key: usize, until: Instant) {
        if let Some(source) = self.sources.get_mut(key) {
            source.resting = true;
            self.resting.push((key, until));
        }
    }

    /// Writes the write in flight, if any; reports what the OS took.
    fn flush(&mut self, key: usize, reports: &mut Vec<Report>) {
        let Some(source) = self.sources.get_mut(key) else {
            return;
        };
        let Some((data, to)) = &source.pending else {
            return;
        };
        if source.dead {
            return;
        }
        match attempt(&source.io, source.owner, data, *to, reports) {
            Attempt::Done => source.pending = None,
            Attempt::Blocked => source.ready.write = false,
            Attempt::Failed(id, e) => fail(source, id, &e, reports),
        }
    }

    /// The earliest end of a listening socket's rest.
    fn resting_until(&self) -> Option<Instant> {
        self.resting.iter().map(|&(_, until)| until).min()
    }

    /// Ends the rests that are over: those sockets want to accept again (see `sync`).
    fn wake_resting(&mut self, poller: &Poller, reports: &mut Vec<Report>) {
        if self.resting.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut i = 0;
        while let Some(&(key, until)) = self.resting.get(i) {
            if until > now {
                i += 1;
                continue;
            }
            self.resting.swap_remove(i);
            if let Some(source) = self.sources.get_mut(key) {
                source.resting = false;
            }
            self.sync(poller, key, reports);
        }
    }

    // ---- bookkeeping ----------------------------------------------------------------------

    fn main(&self, id: SocketId) -> Option<usize> {
        self.ids.get(&id.serial()).and_then(|e| e.main())
    }

    /// After anything that may change what a source wants or knows: queues it in
    /// [`due`](Reactor::due) if it can act without waiting, and (one-shot) re-arms it for what
    /// it wants and is not known ready. A source that wants nothing stays disarmed.
    fn sync(&mut self, poller: &Poller, key: usize, reports: &mut Vec<Report>) {
        let Some(source) = self.sources.get_mut(key) else {
            return;
        };
        if !source.queued && source.can_act() {
            source.queued = true;
            self.due.push(key);
        }
        let (want, mode) = match self.mode {
            // Registered for reading for good; for writing too from the first write that
            // would block (a socket that is writable reports it at every event, so asking
            // before then would only wake the loop for nothing: each new connection would).
            Mode::Edge if source.wanted().write && !source.armed.write => {
                (Interest::BOTH, PollMode::Edge)
            }
            Mode::Edge => return,
            Mode::Oneshot => (source.wanted().minus(source.ready), PollMode::Oneshot),
        };
        if want == source.armed {
            return;
        }
        let result = poller.modify_with_mode(&*source.io.sock(), readiness(key, want), mode);
        let error = match result {
            Ok(()) => {
                source.armed = want;
                return;
            }
            Err(e) => e.kind(),
        };
        // The poller refused: the socket could never make progress again.
        source.dead = true;
        match source.owner {
            Owner::Attempt { id, attempt } => {
                self.close_source(poller, key);
                reports.push(Input::ConnectFailed { id, attempt, error }.into());
            }
            Owner::Stream(id) => reports.push(Input::Failed { id, error }.into()),
            // A server or UDP socket has no input for a late failure; it stays open, idle.
            Owner::Server(_) | Owner::Udp(_) => {}
        }
    }

    /// Adds a socket to the poller, armed for what it wants from the start.
    fn register(&mut self, poller: &Poller, io: Io, owner: Owner) -> io::Result<usize> {
        let key = self.sources.vacant_key();
        // Keys are counted in OS sockets open at once, far below this.
        let main = u32::try_from(key)
            .ok()
            .filter(|&k| k != NO_KEY)
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let mut source = Source {
            io,
            owner,
            armed: Interest::NONE,
            // Reading waits for the poller's word; a write is tried at once, except a connect
            // attempt's: its writability is the connection's outcome.
            ready: Interest {
                read: false,
                write: !matches!(owner, Owner::Attempt { .. }),
            },
            queued: false,
            hangup: false,
            reading: self
                .ids
                .get(&owner.id().serial())
                .is_some_and(|e| e.reading),
            pending: None,
            eof: false,
            dead: false,
            resting: false,
            fin_due: false,
        };
        let mode = match self.mode {
            Mode::Edge => {
                // Reading for good; writing only where writability is news: a connect
                // attempt's outcome (see `sync` for the others).
                source.armed = Interest {
                    read: true,
                    write: !source.ready.write,
                };
                PollMode::Edge
            }
            Mode::Oneshot => {
                source.armed = source.wanted().minus(source.ready);
                PollMode::Oneshot
            }
        };
        // SAFETY: polling requires the source to be deleted before it is closed. Every socket
        // registered here lives in `self.sources` until `close_source` deletes it and only
        // then drops it; `close_all` does the same for all of them when the driver is dropped.
        unsafe { poller.add_with_mode(&*source.io.sock(), readiness(key, source.armed), mode)? };
        self.sources.insert(source);
        let serial = owner.id().serial();
        let entry = self.ids.entry(serial).or_default();
        match owner {
            Owner::Attempt { .. } => self.attempts.entry(serial).or_default().push(key),
            Owner::Stream(_) | Owner::Server(_) | Owner::Udp(_) => entry.main = main,
        }
        Ok(key)
    }

    /// Deletes a source from the poller, then closes its socket.
    fn close_source(&mut self, poller: &Poller, key: usize) {
        if let Some(source) = self.sources.remove(key) {
            let _ = poller.delete(&*source.io.sock());
            if source.resting {
                self.resting.retain(|&(k, _)| k != key);
            }
            if source.queued {
                self.due.retain(|&k| k != key);
            }
            if matches!(source.owner, Owner::Server(_)) {
                self.fixed_locals.retain(|&(k, _)| k != key);
            }
            let serial = source.owner.id().serial();
            if let Some(keys) = self.attempts.get_mut(&serial) {
                keys.retain(|&k| k != key);
                if keys.is_empty() {
                    self.attempts.remove(&serial);
                }
            }
            if let Some(entry) = self.ids.get_mut(&serial) {
                if entry.main() == Some(key) {
                    entry.main = NO_KEY;
                }
            }
            drop(source);
        }
    }

    /// Deletes and closes every socket (the driver is going away).
    pub(crate) fn close_all(&mut self, poller: &Poller) {
        let keys: Vec<usize> = self.sources.keys().collect();
        for key in keys {
            self.close_source(poller, key);
        }
        self.ids.clear();
        self.attempts.clear();
    }

    /// A UDP socket with its options, bound.
    fn start_udp(&self, local: SocketAddr, reuse: bool, loopback: bool) -> io::Result<Socket> {
        let socket = new_socket(Domain::for_address(local), Type::DGRAM, Protocol::UDP)?;
        socket.set_reuse_address(reuse)?;
        match local {
            SocketAddr::V4(_) => {
                socket.set_multicast_loop_v4(loopback)?;
                if let Some(iface) = self.interface_v4(Some(local)) {
                    socket.set_multicast_if_v4(&iface)?;
                }
            }
            SocketAddr::V6(_) => {
                socket.set_multicast_loop_v6(loopback)?;
                if self.limits.multicast_interface_v6 != 0 {
                    socket.set_multicast_if_v6(self.limits.multicast_interface_v6)?;
                }
            }
        }
        socket.bind(&SockAddr::from(local))?;
        Ok(socket)
    }
}

fn readiness(key: usize, want: Interest) -> Readiness {
    match (want.read, want.write) {
        (true, true) => Readiness::all(key),
        (true, false) => Readiness::readable(key),
        (false, true) => Readiness::writable(key),
        (false, false) => Readiness::none(key),
    }
}

/// What became of one write tried on a socket.
enum Attempt {
    /// It is over: what the OS took is reported (a UDP send error too, as `SendFailed`).
    Done,
    /// The OS would block (or took nothing): hold it and wait for writability.
    Blocked,
    /// The stream failed (see [`fail`]).
    Failed(TcpId, io::Error),
}

/// Tries a write (`to`: a UDP datagram's destination) once, reporting what the OS took.
fn attempt(
    io: &Io,
    owner: Owner,
    data: &Bytes,
    to: Option<SocketAddr>,
    reports: &mut Vec<Report>,
) -> Attempt {
    match (io, owner) {
        (Io::Socket(socket), Owner::Stream(id)) => match retry(|| send(socket, data)) {
            Ok(0) => Attempt::Blocked, // nothing taken: wait for writability
            Ok(len) => {
                reports.push(Input::Written { id, len }.into());
                Attempt::Done
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Attempt::Blocked,
            Err(e) => Attempt::Failed(id, e),
        },
        (Io::Udp(socket), Owner::Udp(id)) => {
            let Some(to) = to else {
                return Attempt::Done;
            };
            match retry(|| socket.send_to(data, to)) {
                Ok(_) => reports.push(Input::Sent { id }.into()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Attempt::Blocked,
                Err(e) => reports.push(
                    Input::SendFailed {
                        id,
                        error: e.kind(),
                    }
                    .into(),
                ),
            }
            Attempt::Done
        }
        _ => Attempt::Done,
    }
}

/// A stream that failed: no more I/O on it; the core is told once and will release it.
fn fail(source: &mut Source, id: TcpId, e: &io::Error, reports: &mut Vec<Report>) {
    source.dead = true;
    source.pending = None;
    reports.push(
        Input::Failed {
            id,
            error: e.kind(),
        }
        .into(),
    );
}

/// Reads up to `max` (at most [`DATAGRAM_BATCH`]) queued datagrams with one `recvmmsg`, each
/// whole into its own [`DATAGRAM_BUFFER`] slot of `buf`, and hands each to `each` in order.
/// Returns how many were read; `WouldBlock` when none was queued.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn recv_datagrams(
    socket: &UdpSocket,
    buf: &mut Vec<u8>,
    max: usize,
    mut each: impl FnMut(&[u8], SocketAddr),
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;

    use socket2::SockAddrStorage;

    let n = max.clamp(1, DATAGRAM_BATCH);
    if buf.len() < DATAGRAM_BATCH * DATAGRAM_BUFFER {
        // Zeroed by the allocator (fresh pages), not written: only used pages become resident.
        *buf = vec![0; DATAGRAM_BATCH * DATAGRAM_BUFFER];
    }
    let mut names: [SockAddrStorage; DATAGRAM_BATCH] =
        std::array::from_fn(|_| SockAddrStorage::zeroed());
    let mut iovecs: [libc::iovec; DATAGRAM_BATCH] = std::array::from_fn(|_| libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    });
    // SAFETY: all-zero is a valid `mmsghdr` (null pointers, zero lengths).
    let mut msgs: [libc::mmsghdr; DATAGRAM_BATCH] = unsafe { std::mem::zeroed() };
    let slots = buf.chunks_exact_mut(DATAGRAM_BUFFER);
    for (((slot, iov), msg), name) in slots.zip(&mut iovecs).zip(&mut msgs).zip(&mut names) {
        iov.iov_base = slot.as_mut_ptr().cast();
        iov.iov_len = slot.len();
        msg.msg_hdr.msg_iov = iov;
        msg.msg_hdr.msg_iovlen = 1;
        msg.msg_hdr.msg_namelen = name.size_of();
        msg.msg_hdr.msg_name = (name as *mut SockAddrStorage).cast();
    }
    let read = retry(|| {
        // SAFETY: the first `n` headers point at live iovecs, each covering one slot of `buf`,
        // and at live address storages of the length given; the kernel writes only within
        // them, and all of them outlive the call.
        let r = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as _,
                libc::MSG_DONTWAIT as _,
                std::ptr::null_mut(),
            )
        };
        usize::try_from(r).map_err(|_| io::Error::last_os_error())
    })?;
    for (i, (msg, name)) in msgs.iter().zip(&mut names).take(read).enumerate() {
        let len = (msg.msg_len as usize).min(DATAGRAM_BUFFER);
        let namelen = msg.msg_hdr.msg_namelen;
        let storage = std::mem::replace(name, SockAddrStorage::zeroed());
        // SAFETY: the kernel wrote a socket address of `namelen` bytes (at most the storage's
        // size) into this storage.
        let remote = unsafe { SockAddr::new(storage, namelen) }.as_socket();
        if let Some(remote) = remote {
            each(&buf[i * DATAGRAM_BUFFER..][..len], remote);
        }
    }
    Ok(read)
}

/// One `recv_from` (platforms without `recvmmsg`): see the Linux version.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn recv_datagrams(
    socket: &UdpSocket,
    buf: &mut Vec<u8>,
    _max: usize,
    mut each: impl FnMut(&[u8], SocketAddr),
) -> io::Result<usize> {
    if buf.len() < DATAGRAM_BUFFER {
        *buf = vec![0; DATAGRAM_BUFFER];
    }
    let (n, remote) = retry(|| socket.recv_from(&mut buf[..DATAGRAM_BUFFER]))?;
    each(&buf[..n], remote);
    Ok(1)
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

/// One read of at most `chunk` bytes of a stream, straight into `buf`'s spare capacity
/// (nothing is zero-filled first); empty at the end of the stream. A read of at most
/// [`SMALL_READ`] bytes is copied out and `buf` keeps its space for the next read; a larger
/// one is split off without a copy, and `buf` then reuses its allocation once every read split
/// from it has been dropped, else starts a new one (growing one shared with data handed out
/// would copy what is left of it). With the bytes comes whether more is queued, where the
/// kernel says (see [`recv_inq`]).
fn recv_chunk(
    socket: &Socket,
    buf: &mut BytesMut,
    chunk: usize,
) -> io::Result<(Bytes, Option<bool>)> {
    debug_assert!(buf.is_empty(), "every read is taken out of the buffer");
    buf.clear();
    buf.reserve(chunk);
    let spare = &mut buf.spare_capacity_mut()[..chunk];
    let (n, more) = retry(|| recv_inq(socket, &mut spare[..]))?;
    // SAFETY: `recv_inq` hands `spare` straight to the kernel and never writes uninitialised
    // bytes into it, so its first `n` bytes are initialised by the kernel; `n <= chunk`, which
    // is within the capacity `reserve` made. The safe ways cost a pass over every byte
    // received: zero-filling each chunk before the read overwrites it (which was 90% of the
    // driver's user-space instructions in a bulk transfer), or reading into a scratch buffer
    // and copying.
    unsafe { buf.set_len(n.min(chunk)) };
    let data = if buf.len() <= SMALL_READ {
        let data = Bytes::copy_from_slice(buf);
        buf.clear();
        data
    } else {
        buf.split().freeze()
    };
    Ok((data, more))
}

/// Asks the kernel to say, with every read of a stream, how much is left to read
/// (`TCP_INQ`, Linux 4.18+): a read that leaves nothing then needs no second read to see
/// `WouldBlock`. Where it is refused, reads go on until `WouldBlock`.
fn want_inq(socket: &Socket) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: a valid descriptor, and an option value of the size given that outlives
        // the call.
        let _ = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_TCP,
                libc::TCP_INQ,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = socket;
}

/// `recv` into `buf`, and whether more is queued: with `TCP_INQ` on (see [`want_inq`]), the
/// kernel appends the bytes left in the receive queue to the read, and 1 when only a FIN is
/// left, so that `Some(false)` means the next read would block until new bytes arrive, which
/// raise a new event. `None` when the kernel did not say.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn recv_inq(
    socket: &Socket,
    buf: &mut [std::mem::MaybeUninit<u8>],
) -> io::Result<(usize, Option<bool>)> {
    use std::os::fd::AsRawFd;

    // Room for one control message of one `int`, aligned for `cmsghdr`.
    let mut control = [0u64; 4];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: all-zero is a valid `msghdr` (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at one live iovec covering `buf` and at `control` with its size;
    // the kernel writes only within them, and both outlive the call.
    let r = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, 0) };
    let n = usize::try_from(r).map_err(|_| io::Error::last_os_error())?;
    let mut more = None;
    // SAFETY: the kernel set `msg_controllen` to the control messages it wrote into
    // `control`; the CMSG macros walk only within that, and a message's data is read
    // unaligned, as its length says it holds an `int`.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let header = &*cmsg;
            if header.cmsg_level == libc::SOL_TCP
                && header.cmsg_type == libc::TCP_CM_INQ
                && header.cmsg_len as usize
                    >= libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as usize
            {
                let inq = libc::CMSG_DATA(cmsg).cast::<libc::c_int>().read_unaligned();
                more = Some(inq > 0);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n, more))
}

/// One `recv` (platforms without `TCP_INQ`): the kernel does not say what is left.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn recv_inq(
    socket: &Socket,
    buf: &mut [std::mem::MaybeUninit<u8>],
) -> io::Result<(usize, Option<bool>)> {
    Ok((socket.recv(buf)?, None))
}

/// `send` without `SIGPIPE`: a peer that went away is an error, not a signal.
fn send(socket: &Socket, data: &[u8]) -> io::Result<usize> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let flags = libc::MSG_NOSIGNAL;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let flags = 0;
    socket.send_with_flags(data, flags)
}

/// Where the OS actually bound a socket (the real port when 0 was asked for).
fn bound_address(socket: &Socket) -> io::Result<SocketAddr> {
    socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable))
}

/// The next connection, non-blocking from the start where `accept4` says so (close-on-exec
/// too, as socket2's `accept`); elsewhere made non-blocking after `accept`, and one that
/// cannot be is closed and skipped like a connection the peer aborted.
fn accept_nonblocking(listener: &Socket) -> io::Result<(Socket, SockAddr)> {
    #[cfg(any(
        target_os = "android",
        target_os = "dragonfly",
        target_os = "freebsd",
        target_os = "fuchsia",
        target_os = "illumos",
        target_os = "linux",
        target_os = "netbsd",
        target_os = "openbsd",
    ))]
    return listener.accept4(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK);
    #[allow(unreachable_code)]
    {
        let (socket, remote) = listener.accept()?;
        match socket.set_nonblocking(true) {
            Ok(()) => Ok((socket, remote)),
            Err(_) => Err(io::ErrorKind::ConnectionAborted.into()),
        }
    }
}

/// A new non-blocking socket (close-on-exec, as socket2 makes every socket): non-blocking from
/// `socket(2)` itself where the OS takes the flag there (two `fcntl` calls fewer per socket),
/// else made so at once.
fn new_socket(domain: Domain, ty: Type, protocol: Protocol) -> io::Result<Socket> {
    #[cfg(any(
        target_os = "android",
        target_os = "dragonfly",
        target_os = "freebsd",
        target_os = "fuchsia",
        target_os = "illumos",
        target_os = "linux",
        target_os = "netbsd",
        target_os = "openbsd",
    ))]
    return Socket::new(domain, ty.nonblocking(), Some(protocol));
    #[allow(unreachable_code)]
    {
        let socket = Socket::new(domain, ty, Some(protocol))?;
        socket.set_nonblocking(true)?;
        Ok(socket)
    }
}

/// Where `send` cannot raise `SIGPIPE` by a flag, the socket says so itself.
fn set_nosigpipe(socket: &Socket) -> io::Result<()> {
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    socket.set_nosigpipe(true)?;
    let _ = socket;
    Ok(())
}

/// A non-blocking TCP socket with its options, bound if asked, its connect started.
fn start_connect(
    remote: SocketAddr,
    local: Option<SocketAddr>,
    no_delay: bool,
    keep_alive: Option<Duration>,
) -> io::Result<Socket> {
    let socket = new_socket(Domain::for_address(remote), Type::STREAM, Protocol::TCP)?;
    set_nosigpipe(&socket)?;
    socket.set_tcp_nodelay(no_delay)?;
    want_inq(&socket);
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

/// A non-blocking listening socket.
/// Linux copies `TCP_NODELAY` and `TCP_INQ` from a listening socket into every connection it
/// accepts (the child socket is a clone of the listener), so there they are set once on the
/// listener ([`start_listen`]) rather than with two syscalls per accepted connection.
const LISTENER_OPTIONS_INHERITED: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// `TCP_NODELAY` and `TCP_INQ` on a connection just accepted, where it does not have them from
/// its listener ([`LISTENER_OPTIONS_INHERITED`]).
fn accepted_options(socket: &Socket) -> io::Result<()> {
    if LISTENER_OPTIONS_INHERITED {
        return Ok(());
    }
    want_inq(socket);
    socket.set_tcp_nodelay(true)
}

fn start_listen(local: SocketAddr, backlog: u32, reuse: bool) -> io::Result<Socket> {
    let socket = new_socket(Domain::for_address(local), Type::STREAM, Protocol::TCP)?;
    if LISTENER_OPTIONS_INHERITED {
        socket.set_tcp_nodelay(true)?;
        want_inq(&socket);
    }
    socket.set_reuse_address(reuse)?;
    socket.bind(&SockAddr::from(local))?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX).max(1))?;
    Ok(socket)
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use sockstate::{Core, TcpOptions};

    use super::*;

    /// Runs `test` once per registration mode, each with a new poller and reactor (closed
    /// afterwards).
    fn in_each_mode(limits: Limits, test: impl Fn(Mode, &Poller, &mut Reactor)) {
        for mode in MODES {
            let poller = Poller::new().unwrap();
            let mut reactor = Reactor::new(&poller, mode, limits);
            test(mode, &poller, &mut reactor);
            reactor.close_all(&poller);
        }
    }

    fn limits() -> Limits {
        Limits {
            read_chunk: 4096,
            reads_per_turn: 1,
            accepts_per_turn: 1,
            datagrams_per_turn: 1,
            sources_per_turn: 64,
            spin_polls: 0,
            multicast_interface_v4: None,
            multicast_interface_v6: 0,
        }
    }

    /// A connect attempt of a new TCP id to a new listener on 127.0.0.1.
    fn connecting(
        poller: &Poller,
        reactor: &mut Reactor,
        reports: &mut Vec<Report>,
    ) -> (TcpId, std::net::TcpListener) {
        connecting_in(
            &mut Core::new(sockstate::Config::default()),
            poller,
            reactor,
            reports,
        )
    }

    /// [`connecting`] with an id of `core` (ids of one core are distinct).
    fn connecting_in(
        core: &mut Core,
        poller: &Poller,
        reactor: &mut Reactor,
        reports: &mut Vec<Report>,
    ) -> (TcpId, std::net::TcpListener) {
        let id = core
            .tcp_open(Instant::now(), "127.0.0.1", 9, TcpOptions::default())
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let to = listener.local_addr().unwrap();
        reactor.connect(poller, id, 0, to, None, true, None, reports);
        (id, listener)
    }

    /// A listener that never accepts, its queue full: a connect to it neither succeeds nor
    /// fails (the kernel drops the SYNs). Keep the returned sockets alive.
    fn black_hole() -> (SocketAddr, Vec<Socket>) {
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        listener
            .bind(&SockAddr::from(SocketAddr::from(([127, 0, 0, 1], 0))))
            .unwrap();
        listener.listen(0).unwrap();
        let addr = bound_address(&listener).unwrap();
        let mut keep = vec![listener];
        for _ in 0..4 {
            let filler = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            filler.set_nonblocking(true).unwrap();
            let _ = filler.connect(&SockAddr::from(addr));
            keep.push(filler);
        }
        std::thread::sleep(Duration::from_millis(50));
        (addr, keep)
    }

    /// Both registration modes: edge-triggered is what runs here, one-shot what runs where
    /// the poller has no edge mode.
    const MODES: [Mode; 2] = [Mode::Edge, Mode::Oneshot];

    /// Waits (each wait at most `each`) until `done` says so or five seconds passed.
    fn wait_until(
        poller: &Poller,
        reactor: &mut Reactor,
        reports: &mut Vec<Report>,
        each: Duration,
        mut done: impl FnMut(&[Report]) -> bool,
    ) {
        let end = Instant::now() + Duration::from_secs(5);
        while !done(reports) && Instant::now() < end {
            reactor.wait(poller, Some(each), reports).unwrap();
        }
    }

    /// A connected stream (reading as `reading` says) and its accepted peer.
    fn connected(
        poller: &Poller,
        reactor: &mut Reactor,
        reading: bool,
    ) -> (TcpId, std::net::TcpStream) {
        let core = &mut Core::new(sockstate::Config::default());
        connected_in(core, poller, reactor, reading)
    }

    /// [`connected`] with an id of `core`.
    fn connected_in(
        core: &mut Core,
        poller: &Poller,
        reactor: &mut Reactor,
        reading: bool,
    ) -> (TcpId, std::net::TcpStream) {
        let mut reports = Vec::new();
        let (id, listener) = connecting_in(core, poller, reactor, &mut reports);
        let peer = listener.accept().unwrap().0;
        let each = Duration::from_millis(100);
        wait_until(poller, reactor, &mut reports, each, |r| !r.is_empty());
        assert!(
            matches!(&reports[..], [Report::Input(Input::Connected { .. })]),
            "connected: {reports:?}"
        );
        reports.clear();
        reactor.set_reading(poller, id.into(), reading, &mut reports);
        assert!(reports.is_empty());
        (id, peer)
    }

    /// Writes 256 KiB at a time until the OS takes nothing more and a write is held; returns
    /// the bytes it took.
    fn write_until_held(poller: &Poller, reactor: &mut Reactor, id: TcpId) -> usize {
        let chunk = Bytes::from(vec![9u8; 256 << 10]);
        let key = reactor.main(id.into()).unwrap();
        let mut reports = Vec::new();
        let mut written = 0;
        for _ in 0..1000 {
            reactor.write(poller, id.into(), chunk.clone(), None, &mut reports);
            for r in reports.drain(..) {
                match r {
                    Report::Input(Input::Written { len, .. }) => written += len,
                    _ => panic!("only writes"),
                }
            }
            if reactor.sources.get(key).unwrap().pending.is_some() {
                return written;
            }
        }
        panic!("the OS took 250 MiB without blocking")
    }

    /// The bytes received in `reports`, taken out.
    fn received(reports: &mut Vec<Report>) -> Vec<u8> {
        let mut got = Vec::new();
        for report in reports.drain(..) {
            match report {
                Report::Input(Input::Received { data, .. }) => got.extend_from_slice(&data),
                Report::Input(input) => panic!("unexpected {input:?}"),
                Report::Accepted { .. } => panic!("nothing listens here"),
            }
        }
        got
    }

    #[test]
    fn a_read_stopped_by_the_per_turn_limit_goes_on_at_the_next_turn_without_a_new_event() {
        use std::io::Write;
        in_each_mode(limits(), |mode, poller, reactor| {
            // One 4 KiB read per turn.
            let (_id, mut peer) = connected(poller, reactor, true);
            let sent: Vec<u8> = (0..64 << 10).map(|i| (i % 251) as u8).collect();
            peer.write_all(&sent).unwrap();
            // The peer sends nothing more, so no further event can come: each turn after the
            // first must take the next chunk at once, never waiting out the long timeout.
            let started = Instant::now();
            let mut got = Vec::new();
            let mut reports = Vec::new();
            while got.len() < sent.len() && started.elapsed() < Duration::from_secs(4) {
                reactor
                    .wait(poller, Some(Duration::from_secs(5)), &mut reports)
                    .unwrap();
                let turn = received(&mut reports);
                assert!(turn.len() <= 4096, "{mode:?}: one read per turn");
                got.extend(turn);
            }
            assert_eq!(
                got, sent,
                "{mode:?}: everything, in order, without stalling"
            );
        })
    }

    #[test]
    fn ready_sockets_are_served_a_few_per_turn_in_rounds_and_new_readiness_waits_for_the_next() {
        use std::io::Write;
        for mode in MODES {
            let poller = Poller::new().unwrap();
            let one = Limits {
                sources_per_turn: 1,
                ..limits()
            };
            let mut reactor = Reactor::new(&poller, mode, one);
            let core = &mut Core::new(sockstate::Config::default());
            let mut sockets: Vec<_> = (0..3)
                .map(|_| connected_in(core, &poller, &mut reactor, true))
                .collect();
            let id_of = |reports: &[Report]| match reports {
                [Report::Input(Input::Received { id, .. })] => *id,
                other => panic!("{mode:?}: one read expected, got {other:?}"),
            };
            for (_, peer) in &mut sockets {
                peer.write_all(b"a").unwrap();
            }
            let mut reports = Vec::new();
            // The first turn takes the three events (waiting for them if need be) and serves
            // one socket; each later turn serves the next without waiting.
            let each = Duration::from_millis(100);
            wait_until(&poller, &mut reactor, &mut reports, each, |r| !r.is_empty());
            let first = id_of(&reports);
            reports.clear();
            // Meanwhile the first socket gets more: it waits for the next round.
            let at = sockets.iter().position(|(id, _)| *id == first).unwrap();
            sockets[at].1.write_all(b"b").unwrap();
            std::thread::sleep(Duration::from_millis(20));
            let mut served = vec![first];
            for _ in 0..2 {
                let started = Instant::now();
                reactor
                    .wait(&poller, Some(Duration::from_secs(5)), &mut reports)
                    .unwrap();
                assert!(
                    started.elapsed() < Duration::from_secs(2),
                    "{mode:?}: no wait"
                );
                served.push(id_of(&reports));
                reports.clear();
            }
            let mut all: Vec<TcpId> = sockets.iter().map(|(id, _)| *id).collect();
            all.sort_by_key(|id| id.serial());
            served.sort_by_key(|id| id.serial());
            assert_eq!(served, all, "{mode:?}: each socket once in the round");
            // The next round: the first socket's new byte.
            wait_until(&poller, &mut reactor, &mut reports, each, |r| !r.is_empty());
            assert_eq!(id_of(&reports), first, "{mode:?}");
            reactor.close_all(&poller);
        }
    }

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
    fn reading_resumed_over_data_already_reported_reads_it_without_new_data() {
        use std::io::Write;
        in_each_mode(limits(), |mode, poller, reactor| {
            let (id, mut peer) = connected(poller, reactor, false);
            peer.write_all(b"hello").unwrap();
            // Not reading: the arrival may wake the loop (edge-triggered) but reads nothing.
            let mut reports = Vec::new();
            for _ in 0..3 {
                reactor
                    .wait(poller, Some(Duration::from_millis(50)), &mut reports)
                    .unwrap();
            }
            assert!(reports.is_empty(), "{mode:?}: read while not reading");
            reactor.set_reading(poller, id.into(), true, &mut reports);
            let started = Instant::now();
            reactor
                .wait(poller, Some(Duration::from_secs(5)), &mut reports)
                .unwrap();
            assert!(
                started.elapsed() < Duration::from_secs(4),
                "{mode:?}: waited"
            );
            assert_eq!(received(&mut reports), b"hello", "{mode:?}");
        })
    }

    #[test]
    fn a_blocked_write_goes_on_when_the_peer_reads() {
        use std::io::Read;
        in_each_mode(limits(), |mode, poller, reactor| {
            let (id, mut peer) = connected(poller, reactor, false);
            let mut reports = Vec::new();
            let key = reactor.main(id.into()).unwrap();
            let mut written = write_until_held(poller, reactor, id);
            let source = reactor.sources.get(key).unwrap();
            assert!(
                source.pending.is_some() && !source.ready.write,
                "{mode:?}: held"
            );
            assert!(source.armed.write, "{mode:?}: waiting for writability");
            // The peer drains what was written; the held write then goes out by itself.
            let reader = std::thread::spawn(move || {
                let mut buf = vec![0; 1 << 20];
                let mut total = 0;
                while let Ok(n) = peer.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    total += n;
                }
                total
            });
            let each = Duration::from_millis(100);
            wait_until(poller, reactor, &mut reports, each, |r| !r.is_empty());
            assert!(
                matches!(&reports[..], [Report::Input(Input::Written { .. })]),
                "{mode:?}: {} reports",
                reports.len()
            );
            for r in reports.drain(..) {
                if let Report::Input(Input::Written { len, .. }) = r {
                    written += len;
                }
            }
            reactor.close_all(poller);
            assert_eq!(reader.join().unwrap(), written, "{mode:?}");
        })
    }

    #[test]
    fn an_accepted_socket_asks_for_writability_only_once_a_write_would_block() {
        let poller = Poller::new().unwrap();
        let mut reactor = Reactor::new(&poller, Mode::Edge, limits());
        let mut core = Core::new(sockstate::Config::default());
        let id = core
            .tcp_open(Instant::now(), "127.0.0.1", 9, TcpOptions::default())
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let accepted = Socket::from(listener.accept().unwrap().0);
        accepted.set_nonblocking(true).unwrap();
        reactor.adopt(&poller, id, accepted).unwrap();
        let key = reactor.main(id.into()).unwrap();
        // Writable from the start, which would otherwise be an event for nothing.
        let want_read = Interest {
            read: true,
            write: false,
        };
        assert_eq!(reactor.sources.get(key).unwrap().armed, want_read);
        let mut reports = Vec::new();
        let started = Instant::now();
        reactor
            .wait(&poller, Some(Duration::from_millis(100)), &mut reports)
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(90), "woken");
        write_until_held(&poller, &mut reactor, id);
        assert_eq!(reactor.sources.get(key).unwrap().armed, Interest::BOTH);
        reactor.close_all(&poller);
    }

    #[test]
    fn a_fin_after_the_peers_waits_for_the_end_of_the_actions_or_goes_with_the_release() {
        use std::io::Read;
        use std::net::Shutdown as Peer;
        let poller = Poller::new().unwrap();
        let mut reactor = Reactor::new(&poller, Mode::Edge, limits());
        let core = &mut Core::new(sockstate::Config::default());
        let mut reports = Vec::new();
        let each = Duration::from_millis(100);
        // The peer sees the end of the stream (0) or, within 50 ms, nothing.
        let peer_sees_fin = |peer: &mut std::net::TcpStream| {
            peer.set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            match peer.read(&mut [0; 8]) {
                Ok(0) => true,
                Ok(n) => panic!("{n} bytes"),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => false,
                Err(e) => panic!("{e}"),
            }
        };
        // Before the peer's FIN: at once.
        let (id, mut peer) = connected_in(core, &poller, &mut reactor, true);
        reactor.shutdown(id, &mut reports);
        assert!(peer_sees_fin(&mut peer), "sent at once");
        reactor.release(&poller, id.into());
        for release in [false, true] {
            let (id, mut peer) = connected_in(core, &poller, &mut reactor, true);
            peer.shutdown(Peer::Write).unwrap();
            wait_until(&poller, &mut reactor, &mut reports, each, |r| {
                r.iter()
                    .any(|r| matches!(r, Report::Input(Input::Eof { .. })))
            });
            reports.clear();
            reactor.shutdown(id, &mut reports);
            assert!(!peer_sees_fin(&mut peer), "held until the actions are done");
            match release {
                // Closing sends it.
                true => reactor.release(&poller, id.into()),
                false => reactor.flush_fins(&mut reports),
            }
            assert!(peer_sees_fin(&mut peer), "release {release}");
            assert!(reports.is_empty(), "{reports:?}");
            reactor.release(&poller, id.into());
            reactor.flush_fins(&mut reports);
        }
        assert!(reactor.fins.is_empty());
        reactor.close_all(&poller);
    }

    /// A server of a new core listening on 127.0.0.1, accepting; its id and address.
    fn listening(poller: &Poller, reactor: &mut Reactor) -> (ServerId, SocketAddr) {
        let mut core = Core::new(sockstate::Config::default());
        let id = core
            .server_listen(Instant::now(), sockstate::ServerOptions::default())
            .unwrap();
        let mut reports = Vec::new();
        let local = SocketAddr::from(([127, 0, 0, 1], 0));
        reactor.listen(poller, id, local, 16, true, &mut reports);
        let Some(Report::Input(Input::Listening { local, .. })) = reports.pop() else {
            panic!("not listening");
        };
        reactor.set_reading(poller, id.into(), true, &mut reports);
        (id, local)
    }

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
                reactor.connect(poller, id, attempt, to, None, true, None, reports);
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

    #[test]
    fn a_source_that_wants_nothing_does_not_keep_waking_the_loop() {
        in_each_mode(limits(), |mode, poller, reactor| {
            let mut reports = Vec::new();
            let (id, listener) = connecting(poller, reactor, &mut reports);
            let each = Duration::from_millis(100);
            wait_until(poller, reactor, &mut reports, each, |r| !r.is_empty());
            reports.clear();
            // The peer closes at once: the socket is readable (EOF) and hung up, but the core
            // has not asked to read. One-shot: nothing is armed, so nothing wakes the loop.
            // Edge-triggered: the change wakes it once, the state that stays never again.
            drop(listener.accept().unwrap());
            drop(listener);
            let key = reactor.main(id.into()).unwrap();
            if mode == Mode::Oneshot {
                assert_eq!(reactor.sources.get(key).unwrap().armed, Interest::NONE);
            }
            let started = Instant::now();
            let mut early = 0;
            while started.elapsed() < Duration::from_millis(500) {
                let wait = Instant::now();
                reactor
                    .wait(poller, Some(Duration::from_millis(100)), &mut reports)
                    .unwrap();
                if wait.elapsed() < Duration::from_millis(90) {
                    early += 1;
                }
            }
            assert!(reports.is_empty(), "{mode:?}");
            let most = if mode == Mode::Oneshot { 0 } else { 2 };
            assert!(early <= most, "{mode:?}: woken {early} times");
            // Asked to read, it sees the end of the stream.
            reactor.set_reading(poller, id.into(), true, &mut reports);
            reactor
                .wait(poller, Some(Duration::from_secs(2)), &mut reports)
                .unwrap();
            assert!(
                matches!(&reports[..], [Report::Input(Input::Eof { .. })]),
                "{mode:?}"
            );
        })
    }
}
