//! Registration and readiness: the OS sockets in the poller, what each wants and is known
//! ready for, and the rounds of the loop that service them (see the module docs of
//! [`reactor`](super)).

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use polling::{Event as Readiness, PollMode, Poller};
use slab::Slab;
use socket2::{SockRef, Socket};
use sockstate::{Input, ServerId, SocketId, TcpId, UdpId};

use super::batch::Udp;
use super::os::bound_address;
use super::{Reactor, Report};

/// Which readiness a source waits for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Interest {
    pub(super) read: bool,
    pub(super) write: bool,
}

impl Interest {
    pub(super) const NONE: Interest = Interest {
        read: false,
        write: false,
    };
    pub(super) const BOTH: Interest = Interest {
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
pub(super) enum Owner {
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

/// The OS socket: socket2's for TCP, std's for UDP, with what a UDP socket has to send.
pub(super) enum Io {
    Socket(Socket),
    /// Boxed: it holds its queue of datagrams to send, which a TCP socket has no use for.
    Udp(Box<Udp>),
}

impl Io {
    /// socket2's view of either kind, for options and for the poller.
    pub(super) fn sock(&self) -> SockRef<'_> {
        match self {
            Io::Socket(s) => SockRef::from(s),
            Io::Udp(u) => SockRef::from(&u.socket),
        }
    }
}

/// One OS socket registered in the poller.
pub(super) struct Source {
    pub(super) io: Io,
    pub(super) owner: Owner,
    /// What is registered in the kernel right now. [`Mode::Edge`]: reading, and writing too
    /// from the first write that would block; [`Mode::Oneshot`]: `NONE` after an event fired.
    pub(super) armed: Interest,
    /// What the poller reported ready and the OS has not taken back since (by `WouldBlock` or a
    /// read that drained the queue): what may be tried without waiting for an event.
    pub(super) ready: Interest,
    /// In [`Reactor::due`].
    queued: bool,
    /// The poller reported an error or a hang-up: a read's `TCP_INQ` hint that nothing is
    /// left is not trusted (a reset that came before the event left no later event).
    pub(super) hangup: bool,
    /// The core's last `SetReading` for the id, as in its [`Entry`] (kept here too so that
    /// an event needs no lookup by id; an attempt's copy is taken when it wins).
    pub(super) reading: bool,
    /// The one write in flight of a stream, waiting for writability (a UDP socket's
    /// datagrams wait in its [`Udp::out`]).
    pub(super) pending: Option<Bytes>,
    /// A read returned 0: never read again.
    pub(super) eof: bool,
    /// A failure was reported: no more I/O, waiting for `Release`.
    pub(super) dead: bool,
    /// A listening socket resting after `accept` ran out of resources (until its entry in
    /// [`Reactor::resting`] is due).
    pub(super) resting: bool,
}

/// The OS sockets by key, in a [`Slab`], so that a socket costs its [`Source`] and nothing
/// more.
///
/// A key freed is taken again only after the next `wait` has begun: every event of a batch
/// was reported for the socket that held its key when the batch was taken (a socket leaves the
/// poller before it is closed), so none can reach a later socket with the same key. Until
/// then its slot stays occupied by `None`, which no lookup answers; [`recycle`](Self::recycle)
/// gives those slots back to the slab.
#[derive(Default)]
pub(super) struct Sources {
    slab: Slab<Option<Source>>,
    /// Keys freed since the last `wait` began (their slots hold `None`).
    freed: Vec<usize>,
}

impl Sources {
    pub(super) fn get(&self, key: usize) -> Option<&Source> {
        self.slab.get(key)?.as_ref()
    }

    pub(super) fn get_mut(&mut self, key: usize) -> Option<&mut Source> {
        self.slab.get_mut(key)?.as_mut()
    }

    /// The key the next [`insert`](Self::insert) takes.
    fn vacant_key(&self) -> usize {
        self.slab.vacant_key()
    }

    fn insert(&mut self, source: Source) -> usize {
        self.slab.insert(Some(source))
    }

    fn remove(&mut self, key: usize) -> Option<Source> {
        let source = self.slab.get_mut(key)?.take()?;
        self.freed.push(key);
        Some(source)
    }

    /// A `wait` begins: the keys freed before it may be taken again (the last freed first).
    fn recycle(&mut self) {
        for key in self.freed.drain(..) {
            self.slab.try_remove(key);
        }
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = usize> + '_ {
        (self.slab.iter()).filter_map(|(key, s)| s.as_ref().map(|_| key))
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
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
                write: self.pending.is_some()
                    || matches!(&self.io, Io::Udp(u) if !u.out.is_empty()),
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
pub(super) struct Entry {
    /// The key of the connected socket ([`NO_KEY`] until an attempt won; a server's or UDP
    /// socket's from the start).
    pub(super) main: u32,
    /// The core's last `SetReading`.
    pub(super) reading: bool,
    /// A resolution is in flight.
    pub(super) resolving: bool,
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
    pub(super) fn main(self) -> Option<usize> {
        (self.main != NO_KEY).then_some(self.main as usize)
    }
}

impl Reactor {
    // ---- readiness ------------------------------------------------------------------------

    /// One turn: services the next [`Limits::sources_per_turn`] sources of the round, and
    /// reports what the OS did. A round begins with a wait for readiness (at most `timeout`,
    /// not at all while a source is due) and holds what was due and what the wait brought:
    /// sources are serviced a few per turn, so that the app answers each one's events before
    /// the next ones are read (an echo goes out right after its read, not after a thousand
    /// other reads), and new readiness is asked for once per round, not once per turn.
    ///
    /// [`Limits::sources_per_turn`]: super::Limits::sources_per_turn
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

    /// A listening socket stops accepting until `until` (it wants nothing meanwhile; what
    /// arrives is accepted once [`wake_resting`](Self::wake_resting) ends the rest).
    pub(super) fn rest(&mut self, key: usize, until: Instant) {
        if let Some(source) = self.sources.get_mut(key) {
            source.resting = true;
            self.resting.push((key, until));
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

    pub(super) fn main(&self, id: SocketId) -> Option<usize> {
        self.ids.get(&id.serial()).and_then(|e| e.main())
    }

    /// After anything that may change what a source wants or knows: queues it in
    /// [`due`](Reactor::due) if it can act without waiting, and (one-shot) re-arms it for what
    /// it wants and is not known ready. A source that wants nothing stays disarmed.
    pub(super) fn sync(&mut self, poller: &Poller, key: usize, reports: &mut Vec<Report>) {
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

    /// Registers a socket just bound (a server's or a UDP socket's) and returns where the OS
    /// bound it; any failure on the way closes it.
    pub(super) fn open(
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

    /// Adds a socket to the poller, armed for what it wants from the start.
    pub(super) fn register(&mut self, poller: &Poller, io: Io, owner: Owner) -> io::Result<usize> {
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
    pub(super) fn close_source(&mut self, poller: &Poller, key: usize) {
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
}

fn readiness(key: usize, want: Interest) -> Readiness {
    match (want.read, want.write) {
        (true, true) => Readiness::all(key),
        (true, false) => Readiness::readable(key),
        (false, true) => Readiness::writable(key),
        (false, false) => Readiness::none(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockstate::{Config, Core, TcpOptions};

    /// A source of a new TCP id of `core`, on a socket never connected nor registered.
    fn source(core: &mut Core) -> Source {
        let id = core
            .tcp_open(Instant::now(), "127.0.0.1", 9, TcpOptions::default())
            .unwrap();
        let socket = Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        Source {
            io: Io::Socket(socket),
            owner: Owner::Stream(id),
            armed: Interest::NONE,
            ready: Interest::NONE,
            queued: false,
            hangup: false,
            reading: false,
            pending: None,
            eof: false,
            dead: false,
            resting: false,
        }
    }

    /// A key freed answers no lookup and is not taken again until the next wait begins (so
    /// that a late event for it cannot reach a new socket); then the last freed is taken first.
    #[test]
    fn a_freed_key_is_taken_again_only_after_the_next_wait_begins() {
        let mut core = Core::new(Config::default());
        let mut sources = Sources::default();
        let mut insert = |sources: &mut Sources| {
            let key = sources.vacant_key();
            assert_eq!(sources.insert(source(&mut core)), key, "vacant_key told it");
            key
        };
        let keys: Vec<usize> = (0..3).map(|_| insert(&mut sources)).collect();
        assert_eq!(keys, [0, 1, 2]);
        assert!(sources.remove(0).is_some() && sources.remove(2).is_some());
        assert!(sources.remove(2).is_none(), "removed twice");
        assert!(sources.get(0).is_none() && sources.get_mut(2).is_none());
        assert_eq!(
            insert(&mut sources),
            3,
            "no key freed before the wait is taken"
        );
        assert_eq!(sources.keys().collect::<Vec<_>>(), [1, 3]);
        sources.recycle();
        assert_eq!(insert(&mut sources), 2, "the last freed first");
        assert_eq!(insert(&mut sources), 0);
        assert_eq!(insert(&mut sources), 4);
        assert_eq!(sources.len(), 5);
        assert!(sources.get(2).is_some_and(|s| !s.dead));
    }
}
