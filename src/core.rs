//! [`Core`]: the table of sockets, the output queue and the timers, and the one drain rule.
//! The `UDPSocket` calls are in `core/udp.rs`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::error::{ApiError, DomException, InputError, SocketError};
use crate::host::Host;
use crate::id::{IdHash, RawId, Serials, ServerId, SocketId, Table, TcpId, UdpId};
use crate::io::{Accepted, Action, Event, Input, Output};
use crate::payload::Payload;
use crate::policy::{AllowAll, Policy, Request};
use crate::queue::SendBuffer;
use crate::server::{ServerOptions, ServerSocket};
use crate::tcp::{TcpOptions, TcpSocket};
use crate::timer::Timers;
use crate::tls;
use crate::udp::UdpSocket;

/// An entry of the output queue.
#[derive(Debug)]
enum Queued {
    Out(Output),
    /// The socket's next item read becomes its event when this is polled (see `tcp.rs`).
    Deliver(SocketId),
    /// The TCP socket hands out its next write when this is polled, so that what the app or
    /// the OS did meanwhile (more sends, `close()`'s TLS close_notify) leaves in that write.
    Write(TcpId),
    /// The UDP socket hands out the datagrams sent since its last hand-out as one
    /// [`Action::SendDatagrams`] when this is polled (see `udp.rs`).
    Send(UdpId),
}

impl Queued {
    /// The TCP socket this is about, if any.
    fn tcp(&self) -> Option<TcpId> {
        match self {
            Queued::Deliver(SocketId::TcpId(id)) | Queued::Write(id) => Some(*id),
            Queued::Deliver(_) | Queued::Send(_) => None,
            Queued::Out(Output::Action(action)) => match action {
                Action::Connect { id, .. }
                | Action::AbortConnect { id, .. }
                | Action::Write { id, .. }
                | Action::Shutdown { id } => Some(*id),
                Action::Resolve {
                    id: SocketId::TcpId(id),
                    ..
                }
                | Action::SetReading {
                    id: SocketId::TcpId(id),
                    ..
                }
                | Action::Release {
                    id: SocketId::TcpId(id),
                } => Some(*id),
                _ => None,
            },
            Queued::Out(Output::Event(event)) => match event {
                Event::Connect { socket, .. } => Some(*socket),
                event => event.tcp(),
            },
            Queued::Out(Output::Timeout(_)) => None,
        }
    }
}

/// The TCP sockets whose queued entries are void (see [`Core::poll_output`]), by serial.
#[derive(Debug, Default)]
struct Voided {
    serials: HashSet<u64, IdHash>,
    /// Entries at the front of the queue that a delivery has just produced: they are the
    /// ended socket's last outputs (its `Release` and `Close` among them), so they are
    /// emitted as they are, never checked.
    fresh: usize,
}

impl Voided {
    /// Whether any entry may be void or fresh (else [`drops`](Self::drops) is `false`).
    fn active(&self) -> bool {
        self.fresh > 0 || !self.serials.is_empty()
    }

    /// Whether `queued`, just taken from the front of the queue, is void. O(1).
    fn drops(&mut self, queued: &Queued) -> bool {
        if self.fresh > 0 {
            self.fresh -= 1;
            return false;
        }
        !self.serials.is_empty()
            && queued
                .tcp()
                .is_some_and(|id| self.serials.contains(&id.serial))
    }

    /// The queue is empty: nothing is void any more.
    fn forget(&mut self) {
        if !self.serials.is_empty() {
            self.serials.clear();
        }
        self.fresh = 0;
    }
}

/// What every socket may touch: the output queue and the configuration.
#[derive(Debug)]
pub(crate) struct Ctx {
    out: VecDeque<Queued>,
    pub(crate) config: Config,
    /// Built on first use: Mozilla's roots on the ring provider.
    default_client: Option<Arc<tls::ClientConfig>>,
    /// Sockets released before the app learned their ids (a secure server's failed
    /// handshakes): freed at once, since no `Close` will be delivered for them.
    unannounced: Vec<TcpId>,
    /// Buffers that sockets gave back on going idle, for the next socket that needs one: an
    /// idle socket holds none, and a busy loop does not allocate per message. At most
    /// [`SPARES`] of each kind.
    #[allow(clippy::vec_box)] // the very boxes sockets hold: reusing them is the point
    spare_inboxes: Vec<Box<crate::tcp::Inbox>>,
    spare_queues: Vec<SendBuffer>,
    /// The TLS sockets' plaintext blocks (see [`tls::Blocks`]).
    pub(crate) blocks: tls::Blocks,
    /// The I/O layer answered an [`Action::QueryUnacked`] with `None`: it cannot tell, so it
    /// is not asked again, and closing sockets wait for the peer's FIN instead.
    pub(crate) unacked_unknowable: bool,
    /// Sockets whose `Release` is queued and not yet polled (see [`Ctx::release`]).
    unpolled_releases: Vec<SocketId>,
    /// A UDP socket whose `Deliver` marker was polled and whose read holds more datagrams:
    /// the marker is still at the front of the queue, in effect, and the next poll delivers
    /// from it first (one field rather than a marker taken and put back per datagram).
    pub(crate) delivering: Option<UdpId>,
}

/// Most spare buffers of each kind a core keeps.
const SPARES: usize = 32;
/// Most entries a kept buffer may have room for: one that grew past this (a burst held while
/// suspended, a long send queue) is freed rather than kept, so the pool stays small.
const SPARE_ROOM: usize = 64;

impl Ctx {
    /// A spare inbox, or a new one.
    pub(crate) fn inbox(&mut self) -> Box<crate::tcp::Inbox> {
        self.spare_inboxes.pop().unwrap_or_default()
    }
    /// Keeps an emptied inbox for reuse (dropped beyond the bound).
    pub(crate) fn keep_inbox(&mut self, inbox: Box<crate::tcp::Inbox>) {
        if self.spare_inboxes.len() < SPARES && inbox.room() <= SPARE_ROOM {
            self.spare_inboxes.push(inbox);
        }
    }
    /// A spare send-queue buffer, if any.
    #[inline]
    pub(crate) fn send_buffer(&mut self) -> Option<SendBuffer> {
        self.spare_queues.pop()
    }
    /// Keeps an emptied send-queue buffer for reuse (dropped beyond the bound).
    #[inline]
    pub(crate) fn keep_send_buffer(&mut self, buffer: SendBuffer) {
        if self.spare_queues.len() < SPARES && buffer.capacity() <= SPARE_ROOM {
            self.spare_queues.push(buffer);
        }
    }
    pub(crate) fn default_client_config(&mut self) -> Result<Arc<tls::ClientConfig>, SocketError> {
        if let Some(config) = &self.default_client {
            return Ok(config.clone());
        }
        let config =
            tls::client_config(tls::ClientOptions::default()).map_err(|e| tls::map_error(&e))?;
        self.default_client = Some(config.clone());
        Ok(config)
    }
    pub(crate) fn forget_unannounced(&mut self, id: TcpId) {
        self.unannounced.push(id);
    }
    /// Queues `Release`; until the I/O layer polls it, what it reports of `id` is ignored
    /// (see [`Core::handle_input`]).
    pub(crate) fn release(&mut self, id: SocketId) {
        self.unpolled_releases.push(id);
        self.action(Action::Release { id });
    }
    #[inline]
    pub(crate) fn action(&mut self, action: Action) {
        self.out.push_back(Queued::Out(Output::Action(action)));
    }
    /// Marks the place of an item read, to be delivered when the app polls this far.
    #[inline]
    pub(crate) fn deliver(&mut self, id: SocketId) {
        self.out.push_back(Queued::Deliver(id));
    }
    /// Marks the place of a UDP socket's next datagrams, handed out when the app polls this
    /// far.
    #[inline]
    pub(crate) fn send_due(&mut self, id: UdpId) {
        self.out.push_back(Queued::Send(id));
    }
    /// Marks the place of a TCP socket's next write, handed out when the app polls this far.
    #[inline]
    pub(crate) fn write_due(&mut self, id: TcpId) {
        self.out.push_back(Queued::Write(id));
    }
    #[inline]
    pub(crate) fn event(&mut self, event: Event) {
        self.out.push_back(Queued::Out(Output::Event(event)));
    }
    /// The end of a server or UDP socket: `Release`, then `Error` (if any), then `Close`
    /// ([BEHAVIOUR §0](crate::behaviour#0-everywhere): `readyState` is already `closed` when `Error` is delivered).
    pub(crate) fn end(&mut self, id: SocketId, error: Option<SocketError>) {
        self.release(id);
        if let Some(error) = error {
            self.event(Event::Error { id, error });
        }
        self.event(Event::Close { id });
    }
}

/// A socket with timers: its next deadline is derived from its state, and `timeout` runs
/// what is due.
pub(crate) trait Timed {
    fn next_deadline(&self) -> Option<Instant>;
    fn timeout(&mut self, now: Instant, ctx: &mut Ctx);
}

impl Timed for TcpSocket {
    fn next_deadline(&self) -> Option<Instant> {
        TcpSocket::next_deadline(self)
    }
    fn timeout(&mut self, now: Instant, ctx: &mut Ctx) {
        TcpSocket::timeout(self, now, ctx);
    }
}

impl Timed for ServerSocket {
    fn next_deadline(&self) -> Option<Instant> {
        None // a server has no timer
    }
    fn timeout(&mut self, _: Instant, _: &mut Ctx) {}
}

impl Timed for UdpSocket {
    fn next_deadline(&self) -> Option<Instant> {
        UdpSocket::next_deadline(self)
    }
    fn timeout(&mut self, now: Instant, ctx: &mut Ctx) {
        UdpSocket::timeout(self, now, ctx);
    }
}

/// The three tables of sockets.
#[derive(Debug, Default)]
pub(crate) struct Sockets {
    tcp: Table<TcpId, TcpSocket>,
    servers: Table<ServerId, ServerSocket>,
    udp: Table<UdpId, UdpSocket>,
}

/// A typed id and the table it indexes, so that one generic helper serves all three.
pub(crate) trait Kind: RawId + Into<SocketId> {
    type Socket: Timed;
    fn table(sockets: &Sockets) -> &Table<Self, Self::Socket>;
    fn table_mut(sockets: &mut Sockets) -> &mut Table<Self, Self::Socket>;
}

macro_rules! kind {
    ($id:ty, $socket:ty, $field:ident) => {
        impl Kind for $id {
            type Socket = $socket;
            fn table(sockets: &Sockets) -> &Table<Self, $socket> {
                &sockets.$field
            }
            fn table_mut(sockets: &mut Sockets) -> &mut Table<Self, $socket> {
                &mut sockets.$field
            }
        }
    };
}
kind!(TcpId, TcpSocket, tcp);
kind!(ServerId, ServerSocket, servers);
kind!(UdpId, UdpSocket, udp);

/// The sans-IO core: every socket's state, driven by app calls, [`Input`]s and time.
///
/// After any call that changes it, drain [`poll_output`](Core::poll_output) until it returns
/// [`Output::Timeout`]. The core never touches a socket, a clock or a thread.
///
/// ```
/// use std::time::Instant;
/// use sockstate::{Action, Core, Config, Event, Input, Output, TcpOptions};
///
/// let mut core = Core::new(Config::default());
/// let now = Instant::now();
/// let id = core.tcp_open(now, "127.0.0.1", 7, TcpOptions::default()).unwrap();
/// // The I/O layer is asked to connect...
/// let Output::Action(Action::Connect { attempt, .. }) = core.poll_output() else { panic!() };
/// // ...and reports success.
/// core.handle_input(now, Input::Connected { id, attempt, local: "127.0.0.1:5000".parse().unwrap() })
///     .unwrap();
/// assert_eq!(core.poll_output(), Output::Event(Event::Open { id: id.into() }));
/// ```
pub struct Core {
    ctx: Ctx,
    policy: Box<dyn Policy>,
    serials: Serials,
    timers: Timers,
    sockets: Sockets,
    /// The server of each accepted socket, until the socket's `Close` is delivered.
    accepted_by: HashMap<TcpId, ServerId, IdHash>,
    /// Sockets ended by a delivery while entries for them were still queued behind it.
    voided: Voided,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("config", &self.ctx.config)
            .field("tcp_sockets", &self.sockets.tcp.len())
            .field("servers", &self.sockets.servers.len())
            .field("udp_sockets", &self.sockets.udp.len())
            .field("queued_outputs", &self.ctx.out.len())
            .finish_non_exhaustive()
    }
}

impl Core {
    /// A core that allows every request ([`AllowAll`]).
    pub fn new(config: Config) -> Core {
        Core::with_policy(config, AllowAll)
    }

    /// A core that asks `policy` before every connect, listen, bind and multicast join
    /// ([BEHAVIOUR §5](crate::behaviour#5-trust)).
    pub fn with_policy(config: Config, policy: impl Policy + 'static) -> Core {
        Core {
            ctx: Ctx {
                out: VecDeque::new(),
                config,
                default_client: None,
                unannounced: Vec::new(),
                spare_inboxes: Vec::new(),
                spare_queues: Vec::new(),
                blocks: tls::Blocks::default(),
                unacked_unknowable: false,
                unpolled_releases: Vec::new(),
                delivering: None,
            },
            policy: Box::new(policy),
            serials: Serials::default(),
            timers: Timers::default(),
            sockets: Sockets::default(),
            accepted_by: HashMap::default(),
            voided: Voided::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.ctx.config
    }

    /// The next action, event or, when there is nothing else, the next deadline.
    ///
    /// A TCP socket that the delivery of its peer's FIN ends has its last outputs (`Release`,
    /// `Close`) placed before everything queued after that FIN; what was queued for it there
    /// (a write already completed, a `Drain`) is void. Voiding is lazy, so that sockets ending
    /// together cost O(1) each rather than a pass over the queue: the socket's serial is
    /// remembered and its entries are dropped as they reach the front. Serials never repeat,
    /// so a socket reusing the slot is never mistaken for it. The serials are forgotten when
    /// the queue empties, or, if it never does, by one pass over the queue whenever there are
    /// more of them than queued entries (so they stay bounded by the queue, at O(1) amortized).
    #[allow(clippy::should_implement_trait)]
    pub fn poll_output(&mut self) -> Output {
        if let Some(id) = self.ctx.delivering.take() {
            if let Some(out) = self.deliver(Queued::Deliver(id.into())) {
                return out;
            }
        }
        while let Some(queued) = self.ctx.out.pop_front() {
            if self.voided.active() && self.voided.drops(&queued) {
                continue;
            }
            let out = match queued {
                Queued::Out(out) => out,
                marker => match self.deliver(marker) {
                    Some(out) => out,
                    None => continue,
                },
            };
            return self.emit(out);
        }
        self.voided.forget();
        Output::Timeout(self.next_deadline())
    }

    /// Appends to `events` the [`Event::Message`]s that are the next outputs, if the last one
    /// polled was a `Message` of a read that holds more datagrams (a UDP GRO run, reported as
    /// [`Input::Datagrams`]): the rest of that run, at once. Returns how many; 0 when the next
    /// output is anything else (then poll as usual). The same outputs, in the same order, as
    /// that many [`poll_output`](Core::poll_output)s, for less work per message.
    ///
    /// ```
    /// use sockstate::{Config, Core, Event, Input, Output, UdpOptions};
    ///
    /// let mut core = Core::new(Config::default());
    /// let now = std::time::Instant::now();
    /// let id = core.udp_open(now, UdpOptions::default()).unwrap();
    /// # core.poll_output();
    /// core.handle_input(now, Input::Bound { id, local: "0.0.0.0:40000".parse().unwrap() })
    ///     .unwrap();
    /// # core.poll_output(); core.poll_output();
    /// let peer = "127.0.0.1:7".parse().unwrap();
    /// // Three datagrams of 2 bytes that UDP GRO handed over in one buffer.
    /// let data = "aabbcc".into();
    /// core.handle_input(now, Input::Datagrams { id, data, segment_size: 2, remote: peer })
    ///     .unwrap();
    /// let first = core.poll_output();
    /// assert_eq!(first, Output::Event(Event::Message { id, data: "aa".into(), remote: peer }));
    /// let mut events = Vec::new();
    /// assert_eq!(core.poll_messages(&mut events), 2);
    /// assert_eq!(events[1], Event::Message { id, data: "cc".into(), remote: peer });
    /// assert_eq!(core.poll_messages(&mut events), 0);
    /// ```
    pub fn poll_messages(&mut self, events: &mut Vec<Event>) -> usize {
        let Some(id) = self.ctx.delivering else {
            return 0;
        };
        match self.sockets.udp.get_mut(id) {
            Some(socket) => socket.deliver_run(events, &mut self.ctx),
            None => 0,
        }
    }

    /// An output as it leaves the queue: a `Close` frees its socket's slot, a `SetReading`
    /// says the interest that holds now.
    fn emit(&mut self, mut out: Output) -> Output {
        match &mut out {
            Output::Event(Event::Close { id }) => self.forget(*id),
            Output::Action(Action::Release { id }) => {
                let released = &mut self.ctx.unpolled_releases;
                if let Some(at) = released.iter().position(|r| r == id) {
                    released.swap_remove(at);
                }
            }
            // Read interest is a level: a delivery may have changed it after this was queued,
            // so it says what holds now.
            Output::Action(Action::SetReading {
                id: SocketId::TcpId(id),
                enabled,
            }) => {
                if let Some(socket) = self.sockets.tcp.get(*id) {
                    *enabled = socket.reading();
                }
            }
            _ => {}
        }
        out
    }

    /// A marker reached the front: a `Deliver`'s socket makes its next item its event, a
    /// `Write`'s its next write. What that produces belongs here, before everything queued
    /// after the marker; a single output (the usual `Data` or `Write`) is returned at once
    /// rather than queued.
    fn deliver(&mut self, marker: Queued) -> Option<Output> {
        // A UDP socket's markers produce one output each, at once, and change no timer.
        match marker {
            Queued::Deliver(SocketId::UdpId(id)) => {
                return self.sockets.udp.get_mut(id)?.deliver_next(&mut self.ctx);
            }
            Queued::Send(id) => return self.sockets.udp.get_mut(id)?.send_next(&self.ctx),
            _ => {}
        }
        let before = self.ctx.out.len();
        let ends = |s: &mut TcpSocket, c: &mut Ctx, write: bool| {
            let before = s.is_released();
            match write {
                true => s.write_next(c),
                false => s.deliver_next(c),
            }
            !before && s.is_released()
        };
        let (tcp, released) = match marker {
            Queued::Write(id) => (Some(id), self.on(id, |s, c| ends(s, c, true))),
            Queued::Deliver(SocketId::TcpId(id)) => {
                (Some(id), self.on(id, |s, c| ends(s, c, false)))
            }
            Queued::Deliver(SocketId::ServerId(_) | SocketId::UdpId(_))
            | Queued::Send(_)
            | Queued::Out(_) => (None, None),
        };
        let produced = self.ctx.out.len() - before;
        // Delivering the end of the stream (or a write's TLS failure) ended the socket: what
        // was queued for it later (a write, a drain) is void, and its own last outputs go
        // first.
        let ended = match (tcp, released) {
            (Some(id), Some(true)) if before > 0 => Some(id),
            _ => None,
        };
        if produced == 1 && ended.is_none() && self.voided.fresh == 0 {
            match self.ctx.out.pop_back() {
                Some(Queued::Out(out)) => return Some(out),
                Some(other) => self.ctx.out.push_front(other),
                None => {}
            }
        } else if produced > 0 {
            self.ctx.out.rotate_right(produced);
        }
        if ended.is_some() || self.voided.fresh > 0 {
            self.voided.fresh += produced;
        }
        if let Some(id) = ended {
            self.void(id);
        }
        None
    }

    /// Voids what is queued for `id` behind the outputs its delivery just produced (see
    /// [`poll_output`](Core::poll_output)).
    fn void(&mut self, id: TcpId) {
        let voided = &mut self.voided;
        voided.serials.insert(id.serial);
        let queue = &mut self.ctx.out;
        if voided.serials.len() > queue.len() {
            // More serials than entries: drop every void entry at once and forget them all.
            let mut at = 0;
            queue.retain(|q| {
                at += 1;
                at <= voided.fresh || !q.tcp().is_some_and(|i| voided.serials.contains(&i.serial))
            });
            voided.serials.clear();
        }
    }

    /// Feeds what the OS reported. An input that makes no sense changes nothing and returns
    /// an [`InputError`]. Accepted connections go to [`handle_accepted`](Core::handle_accepted).
    ///
    /// What the I/O layer reports of a socket the core has released, before it polled that
    /// socket's [`Action::Release`] (the rest of one turn's reads, say, after the first one
    /// failed the TLS session), is a race rather than a bug: it is ignored and `Ok`. After
    /// the `Release` was polled it is [`InputError::UnknownId`].
    pub fn handle_input(&mut self, now: Instant, input: Input) -> Result<(), InputError> {
        let id = input.id();
        match self.dispatch(now, input) {
            Err(InputError::UnknownId) if self.ctx.unpolled_releases.contains(&id) => Ok(()),
            result => result,
        }
    }

    #[inline]
    fn dispatch(&mut self, now: Instant, input: Input) -> Result<(), InputError> {
        match input {
            Input::Resolved { id, result } => match id {
                SocketId::TcpId(id) => self.on(id, |s, c| s.resolved(now, result, c)),
                SocketId::UdpId(id) => self.on(id, |s, c| s.resolved(result, c)),
                SocketId::ServerId(_) => Some(Err(InputError::Unexpected(
                    "a resolution for a server, which never asks for one",
                ))),
            },
            Input::Connected { id, attempt, local } => {
                self.on(id, |s, c| s.connected(attempt, local, c))
            }
            Input::ConnectFailed { id, attempt, error } => {
                self.on(id, |s, c| s.connect_failed(now, attempt, error, c))
            }
            Input::Received { id, data } => self.on(id, |s, c| s.received(now, data, c)),
            Input::Eof { id } => self.on(id, |s, c| s.eof_input(now, c)),
            Input::Written { id, len } => self.on(id, |s, c| s.written(len, c)),
            Input::Unacked { id, bytes } => self.on(id, |s, c| s.unacked(now, bytes, c)),
            Input::Failed { id, error } => self.on(id, |s, c| s.failed(error, c)),
            Input::Listening { id, local } => self.on(id, |s, c| s.listening(local, c)),
            Input::ListenFailed { id, error } => self.on(id, |s, c| s.listen_failed(error, c)),
            Input::Bound { id, local } => self.on(id, |s, c| s.bound(local, c)),
            Input::BindFailed { id, error } => self.on(id, |s, c| s.bind_failed(error, c)),
            Input::Sent { id, count } => self.on(id, |s, c| s.sent(count, c)),
            Input::SendFailed { id, error } => self.on(id, |s, c| s.send_failed(error, c)),
            Input::Datagram { id, data, remote } => self.on(id, |s, c| s.datagram(data, remote, c)),
            Input::Datagrams {
                id,
                data,
                segment_size,
                remote,
            } => self.on(id, |s, c| s.datagrams(data, segment_size, remote, c)),
            Input::JoinFailed {
                id,
                group,
                source,
                error,
            } => self.on(id, |s, c| s.join_failed(group, source, error, c)),
        }
        .ok_or(InputError::UnknownId)?
    }

    /// The OS accepted a connection on `server`'s listening socket (`local` is our end,
    /// `remote` the peer's). [`Accepted::Socket`]: it is now that `TCPSocket`, already `open`
    /// with the server's `binaryType`, and [`Event::Connect`] is queued. [`Accepted::Refused`]:
    /// the server is at `max_connections`; close the OS socket at once (the server fired
    /// `Error` and keeps listening, [BEHAVIOUR §2](crate::behaviour#2-tcpserversocket)).
    ///
    /// An unknown or closed server, one not yet listening, or a suspended one (the I/O layer
    /// was told to stop accepting) is an [`InputError`]: close the OS socket; nothing changed.
    ///
    /// On a secure server the socket first runs its TLS handshake (bounded by
    /// [`Config::connect_timeout`]); `Connect` fires when it completes, and a failure is the
    /// server's `Error` (the socket is released and never announced).
    pub fn handle_accepted(
        &mut self,
        now: Instant,
        server: ServerId,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<Accepted, InputError> {
        let admitted = self
            .on(server, |s, c| s.admit(local, remote, c))
            .ok_or(InputError::UnknownId)??;
        let Some(from) = admitted else {
            return Ok(Accepted::Refused);
        };
        let secure = from.secure;
        let socket = self.insert(|id, ctx| {
            if !secure {
                ctx.event(Event::Connect { server, socket: id });
            }
            TcpSocket::accepted(id, from, now, ctx)
        });
        self.accepted_by.insert(socket, server);
        self.collect_unannounced();
        Ok(Accepted::Socket(socket))
    }

    /// Runs every timer due at `now`. Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((_, socket)) = self.timers.pop_due(now) {
            match socket {
                SocketId::TcpId(id) => self.fire(id, now),
                SocketId::ServerId(id) => self.fire(id, now),
                SocketId::UdpId(id) => self.fire(id, now),
            }
        }
    }

    /// The earliest deadline of a live socket, dropping stale timer entries on the way.
    fn next_deadline(&mut self) -> Option<Instant> {
        while let Some((at, socket)) = self.timers.peek() {
            let current = match socket {
                SocketId::TcpId(id) => self.deadline_of(id),
                SocketId::ServerId(id) => self.deadline_of(id),
                SocketId::UdpId(id) => self.deadline_of(id),
            };
            if current == Some(at) {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }

    /// Frees a socket's slot once its `Close` is delivered ([BEHAVIOUR §0](crate::behaviour#0-everywhere): the id is dead), or
    /// at once for an unannounced one. An accepted socket leaves its server's count.
    fn forget(&mut self, id: SocketId) {
        match id {
            SocketId::TcpId(id) => {
                self.sockets.tcp.remove(id);
                if let Some(server) = self.accepted_by.remove(&id) {
                    if let Some(server) = self.sockets.servers.get_mut(server) {
                        server.connection_closed();
                    }
                }
            }
            SocketId::ServerId(id) => {
                self.sockets.servers.remove(id);
            }
            SocketId::UdpId(id) => {
                self.sockets.udp.remove(id);
            }
        }
    }

    /// Runs `f` on a live socket of any kind and re-arms its timer if its deadline moved.
    fn on<I: Kind, R>(
        &mut self,
        id: I,
        f: impl FnOnce(&mut I::Socket, &mut Ctx) -> R,
    ) -> Option<R> {
        let socket = I::table_mut(&mut self.sockets).get_mut(id)?;
        let before = socket.next_deadline();
        let result = f(socket, &mut self.ctx);
        let after = socket.next_deadline();
        if after != before {
            if let Some(at) = after {
                self.timers.arm(at, id.into());
            }
        }
        self.collect_unannounced();
        Some(result)
    }

    /// Forgets the sockets a secure server released before announcing them: no `Close` will
    /// be delivered for them.
    fn collect_unannounced(&mut self) {
        while let Some(gone) = self.ctx.unannounced.pop() {
            self.forget(gone.into());
        }
    }

    /// Stores a new socket made by `make` and arms its timer, if it has one.
    fn insert<I: Kind>(&mut self, make: impl FnOnce(I, &mut Ctx) -> I::Socket) -> I {
        let ctx = &mut self.ctx;
        let id = I::table_mut(&mut self.sockets).insert_with(&mut self.serials, |id| make(id, ctx));
        if let Some(at) = self.deadline_of(id) {
            self.timers.arm(at, id.into());
        }
        id
    }

    /// Runs a socket's timer if it is due.
    fn fire<I: Kind>(&mut self, id: I, now: Instant) {
        self.on(id, |s, c| {
            if s.next_deadline().is_some_and(|at| at <= now) {
                s.timeout(now, c);
            }
        });
    }

    fn deadline_of<I: Kind>(&self, id: I) -> Option<Instant> {
        I::table(&self.sockets)
            .get(id)
            .and_then(Timed::next_deadline)
    }

    fn check_policy(&self, request: Request<'_>) -> Result<(), ApiError> {
        self.policy
            .check(&request)
            .map_err(|why| ApiError::new(DomException::SecurityError, why))
    }

    // ---- TCPSocket ------------------------------------------------------------------------

    /// `TCPSocket.open(host, port, options)` ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket)). `host` is an IP literal or a DNS
    /// name; the socket starts `connecting` and ends with `Open` or `Error` + `Close`.
    ///
    /// Errors: a bad host, port 0, a `localAddress` of another family than an IP `host`, an
    /// option out of its range, or a `dnsQueryType` that the IP `host` or `localAddress`
    /// contradicts: `InvalidAccessError` (nothing is created); the policy refuses:
    /// `SecurityError`.
    pub fn tcp_open(
        &mut self,
        now: Instant,
        host: &str,
        port: u16,
        options: TcpOptions,
    ) -> Result<TcpId, ApiError> {
        let host = Host::parse(host)?;
        if port == 0 {
            return Err(ApiError::access("the remote port must not be 0"));
        }
        if let (Host::Ip(ip), Some(local)) = (&host, options.local_address) {
            if ip.is_ipv4() != local.is_ipv4() {
                return Err(ApiError::access(format!(
                    "localAddress {local} cannot reach {ip}: the families differ"
                )));
            }
        }
        let settings = options.check(&host)?;
        self.check_policy(Request::Connect {
            host: &host,
            port,
            local_port: options.local_port,
        })?;
        Ok(self
            .insert(|id, ctx| TcpSocket::connecting(id, now, host, port, &options, settings, ctx)))
    }

    /// The socket's attributes; `None` once its `Close` was delivered.
    pub fn tcp(&self, id: TcpId) -> Option<&TcpSocket> {
        self.sockets.tcp.get(id)
    }

    /// `send(data)`: queues `data`; `Ok(true)` while `bufferedAmount` is at most the high-water
    /// mark. `InvalidStateError` unless `open`; `QuotaExceededError` above the hard cap.
    pub fn tcp_send(&mut self, id: TcpId, data: impl Into<Payload>) -> Result<bool, ApiError> {
        let data = data.into().0;
        self.on(id, |s, c| s.send(data, c))
            .unwrap_or_else(|| Err(ApiError::dead()))
    }

    /// `close()`: graceful (flush, `Drain`, FIN, linger, `Close`); abandons a connect.
    pub fn tcp_close(&mut self, now: Instant, id: TcpId) -> Result<(), ApiError> {
        self.on(id, |s, c| s.close(now, c))
            .ok_or_else(ApiError::dead)
    }

    /// `closeImmediately()` (Mozilla): discards the queue, releases the socket, `Close`.
    pub fn tcp_close_immediately(&mut self, id: TcpId) -> Result<(), ApiError> {
        self.on(id, |s, c| s.close_immediately(c))
            .ok_or_else(ApiError::dead)
    }

    /// `halfclose()` (W3C): FIN once the queue is flushed; data keeps arriving.
    pub fn tcp_halfclose(&mut self, now: Instant, id: TcpId) -> Result<(), ApiError> {
        self.on(id, |s, c| s.halfclose(now, c))
            .ok_or_else(ApiError::dead)
    }

    /// `suspend()`: counted; no reading from the OS while suspended.
    pub fn tcp_suspend(&mut self, id: TcpId) -> Result<(), ApiError> {
        self.on(id, |s, c| s.suspend(c)).ok_or_else(ApiError::dead)
    }

    /// `resume()`: `InvalidStateError` when not suspended.
    pub fn tcp_resume(&mut self, id: TcpId) -> Result<(), ApiError> {
        self.on(id, |s, c| s.resume(c))
            .unwrap_or_else(|| Err(ApiError::dead()))
    }

    /// `upgradeToSecure()` (Mozilla's STARTTLS): TLS from here on. `InvalidStateError` unless
    /// `open` and not half-closed; already secure: nothing. See the crate docs for the order
    /// in which queued and received bytes are treated.
    pub fn tcp_upgrade_to_secure(&mut self, id: TcpId) -> Result<(), ApiError> {
        self.on(id, |s, c| s.upgrade_to_secure(c))
            .unwrap_or_else(|| Err(ApiError::dead()))
    }

    /// Ids of all live TCP sockets.
    pub fn tcp_ids(&self) -> impl Iterator<Item = TcpId> + '_ {
        self.sockets.tcp.ids()
    }

    // ---- TCPServerSocket ------------------------------------------------------------------

    /// `new TCPServerSocket(options)` ([BEHAVIOUR §2](crate::behaviour#2-tcpserversocket)): asks the I/O layer to listen; the
    /// server starts `opening` and ends `Open` (then [`Event::Connect`] per connection) or
    /// `Error` + `Close`. No timer starts: `now` is there so that every constructor has the
    /// same shape.
    ///
    /// Errors: a multicast `localAddress`, a backlog of 0 or above `i32::MAX`,
    /// `max_connections` 0, `use_secure_transport` without `tls_config`, `ipv6_only` with an
    /// IPv4 address, or a buffer size out of range: `InvalidAccessError` (nothing is
    /// created); the policy refuses ([`Request::Listen`]): `SecurityError`.
    ///
    /// ```
    /// use sockstate::{Accepted, Action, Config, Core, Event, Input, Output, ServerOptions};
    ///
    /// let mut core = Core::new(Config::default());
    /// let now = std::time::Instant::now();
    /// let server = core.server_listen(now, ServerOptions::default()).unwrap();
    /// let Output::Action(Action::Listen { local, .. }) = core.poll_output() else { panic!() };
    /// assert_eq!(local, "0.0.0.0:0".parse().unwrap());
    /// // The OS chose port 8080; the server opens and is told to accept.
    /// let local = "0.0.0.0:8080".parse().unwrap();
    /// core.handle_input(now, Input::Listening { id: server, local }).unwrap();
    /// assert_eq!(core.poll_output(), Output::Event(Event::Open { id: server.into() }));
    /// assert!(matches!(core.poll_output(), Output::Action(Action::SetReading { enabled: true, .. })));
    /// assert_eq!(core.server(server).unwrap().local_address(), Some(local));
    /// // A connection comes in.
    /// let (ours, peer) = ("127.0.0.1:8080".parse().unwrap(), "127.0.0.1:50000".parse().unwrap());
    /// let Ok(Accepted::Socket(socket)) = core.handle_accepted(now, server, ours, peer) else {
    ///     panic!()
    /// };
    /// assert_eq!(core.poll_output(), Output::Event(Event::Connect { server, socket }));
    /// assert_eq!(core.tcp(socket).unwrap().remote_address(), Some(peer));
    /// ```
    pub fn server_listen(
        &mut self,
        now: Instant,
        options: ServerOptions,
    ) -> Result<ServerId, ApiError> {
        let _ = now;
        let local = options.local()?;
        self.check_policy(Request::Listen { local })?;
        Ok(self.insert(|id, ctx| ServerSocket::listen(id, local, &options, ctx)))
    }

    /// The server's attributes; `None` once its `Close` was delivered.
    pub fn server(&self, id: ServerId) -> Option<&ServerSocket> {
        self.sockets.servers.get(id)
    }

    /// `close()`: stop listening, `Close`; accepted sockets live on (on a secure server, those
    /// still in their handshake are released without events). Nothing when already closed.
    pub fn server_close(&mut self, _now: Instant, id: ServerId) -> Result<(), ApiError> {
        self.on(id, |s, c| s.close(c)).ok_or_else(ApiError::dead)?;
        // Sockets still in the handshake of a secure server were never announced: they go
        // with it, silently (a later Connect or Error would follow the server's Close).
        let tcp = &self.sockets.tcp;
        let mut unannounced: Vec<TcpId> = (self.accepted_by.iter())
            .filter(|&(&socket, &server)| {
                server == id && tcp.get(socket).and_then(TcpSocket::unannounced) == Some(id)
            })
            .map(|(&socket, _)| socket)
            .collect();
        unannounced.sort_by_key(|socket| socket.serial());
        for socket in unannounced {
            self.on(socket, |s, c| s.close_immediately(c));
        }
        Ok(())
    }

    /// `suspend()`: counted; no connection is accepted while suspended (they wait in the
    /// backlog).
    pub fn server_suspend(&mut self, id: ServerId) -> Result<(), ApiError> {
        self.on(id, |s, c| s.suspend(c)).ok_or_else(ApiError::dead)
    }

    /// `resume()`: `InvalidStateError` when not suspended.
    pub fn server_resume(&mut self, id: ServerId) -> Result<(), ApiError> {
        self.on(id, |s, c| s.resume(c))
            .unwrap_or_else(|| Err(ApiError::dead()))
    }

    /// Ids of all live servers.
    pub fn server_ids(&self) -> impl Iterator<Item = ServerId> + '_ {
        self.sockets.servers.ids()
    }
}

#[cfg(test)]
impl Core {
    pub(crate) fn timer_entries(&self) -> usize {
        self.timers.len()
    }
    /// Serials of sockets whose queued entries are void, and the entries queued.
    pub(crate) fn voided(&self) -> (usize, usize) {
        (self.voided.serials.len(), self.ctx.out.len())
    }
    /// Spare inboxes and send-queue buffers the core keeps.
    pub(crate) fn spares(&self) -> (usize, usize) {
        (self.ctx.spare_inboxes.len(), self.ctx.spare_queues.len())
    }
}

mod udp;

#[cfg(test)]
mod tests;
