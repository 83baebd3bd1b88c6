//! # sockstate-driver
//!
//! The reference I/O layer for [`sockstate`]: a single-threaded event loop on [`polling`] 3 and
//! [`socket2`] that carries out the core's actions on real sockets and feeds back what the OS
//! did. It holds no protocol state of its own (only which OS sockets belong to which id, what
//! they wait for, and the one write in flight); every rule of the behaviour contract lives in
//! the [`Core`], which [`Driver::core`] exposes for the spec's attributes.
//!
//! ## A TCP echo client
//!
//! ```
//! use std::time::Duration;
//! use sockstate_driver::{Config, Driver, Event, TcpOptions};
//! # let peer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
//! # let port = peer.local_addr().unwrap().port();
//! # std::thread::spawn(move || {
//! #     use std::io::{Read, Write};
//! #     let (mut s, _) = peer.accept().unwrap();
//! #     let mut buf = [0; 64];
//! #     while let Ok(n @ 1..) = s.read(&mut buf) { s.write_all(&buf[..n]).unwrap(); }
//! # });
//!
//! let mut driver = Driver::new(Config::default())?;
//! let id = driver.tcp_open("127.0.0.1", port, TcpOptions::default())?;
//! while let Some(event) = driver.next_event(Some(Duration::from_secs(5))) {
//!     match event {
//!         Event::Open { .. } => _ = driver.send(id, "hello")?,
//!         Event::Data { data, .. } => {
//!             assert_eq!(data.as_bytes(), b"hello");
//!             driver.close(id)?;
//!         }
//!         Event::Close { .. } => break,
//!         _ => {}
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## A TCP echo server
//!
//! ```
//! use std::time::Duration;
//! use sockstate_driver::{Config, Driver, Event, ServerOptions, SocketId};
//!
//! let mut driver = Driver::new(Config::default())?;
//! let options = ServerOptions::default().local_address(Some("127.0.0.1".parse()?));
//! let server = driver.listen(options)?;
//! while let Some(event) = driver.next_event(Some(Duration::from_secs(5))) {
//!     match event {
//!         Event::Open { .. } => {
//!             let port = driver.server(server).unwrap().local_address().unwrap().port();
//! #           std::thread::spawn(move || {
//! #               use std::io::{Read, Write};
//! #               let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
//! #               c.write_all(b"echo me").unwrap();
//! #               let mut buf = [0; 7];
//! #               c.read_exact(&mut buf).unwrap();
//! #           });
//!         }
//!         Event::Data { id, data } => _ = driver.send(id, data.as_bytes().to_vec())?,
//!         Event::Close { id: SocketId::TcpId(_) } => break, // the client went away
//!         _ => {}
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## The loop
//!
//! [`Driver::next_event`] is the whole loop: it carries out the core's actions, returns the next
//! spec event as soon as there is one, and otherwise waits (one `poll` call) for I/O, a
//! resolver answer, a [`Handle`] task or the core's next deadline, whichever comes first, but
//! no longer than the caller's timeout. The app's calls ([`Driver::tcp_open`],
//! [`Driver::send`], ...) read the clock and go straight to the core; the I/O they cause is
//! done by the next `next_event` (so a program that sends and then blocks elsewhere must
//! call `next_event` to get its bytes out).
//!
//! - One thread. Every OS socket is registered edge-triggered (epoll, kqueue; no `epoll_ctl`
//!   per event, at most one `modify` per socket), and the loop tracks what the OS said is ready
//!   until a `WouldBlock` takes it back; where the poller has no edge mode, sockets are
//!   registered one-shot and re-armed for what is still wanted. An idle loop sleeps in the
//!   kernel until the next deadline: a socket that wants nothing wakes it at most once per
//!   change of its state.
//! - On Linux a wait is one `epoll_wait` on the poller's own descriptor, where `polling` 3's
//!   `Poller::wait` makes five syscalls; registrations stay `polling`'s. The one undocumented
//!   fact this relies on (how `polling` encodes a key in an `epoll_event`) is checked when the
//!   driver starts, and `Poller::wait` is used if the check fails (the `wait` module's docs).
//! - Ready sockets are served a few at a time ([`Config::sources_per_turn`]): the app gets
//!   their events, and the writes it asks for go out, before the next ones are read. One wait
//!   for readiness starts a round holding everything ready; the round is served over as many
//!   turns as it takes, without waiting again, and what becomes ready meanwhile waits for the
//!   next round (every ready socket is served once per round). With 10 000 connections an
//!   echo leaves right after its read instead of after every other socket's read, which
//!   took the benchmark's second phase from 1.16 to a median of 1.03 × tokio's time.
//! - The loop sleeps whenever nothing is ready, unless [`Config::spin_polls`] asks it to poll a
//!   few times first while traffic is dense (off by default).
//! - Connects are non-blocking, one OS socket per attempt (the core races attempts, RFC 8305).
//! - Servers accept until `WouldBlock`, at most [`Config::accepts_per_turn`] per turn, and
//!   hand each connection to the core, which makes it a socket or refuses it
//!   (`max_connections`: the OS socket is closed at once).
//! - UDP datagrams are read whole, each into a 64 KiB buffer (no UDP payload is larger),
//!   several per `recvmmsg` call on Linux, at most [`Config::datagrams_per_turn`] per socket
//!   per turn.
//! - Reads are bounded per socket per turn ([`Config::reads_per_turn`] ×
//!   [`Config::read_chunk`]) so that one busy socket cannot starve the others. Reading
//!   follows the core exactly: a suspended socket is not read at all and the peer feels
//!   back-pressure.
//! - Writes go out at once when the OS takes them; a partial write is reported as such and
//!   the rest waits for writability, independently of reading.
//! - DNS names are resolved on worker threads ([`Config::resolver_threads`]); the loop thread
//!   never blocks in `getaddrinfo`.
//!
//! ## Features
//!
//! `aws-lc-rs` (default) or `ring`: the core's TLS crypto provider, forwarded to `sockstate`
//! (whose docs give the reasons and the costs): aws-lc-rs offers the post-quantum key exchange
//! `X25519MLKEM768` first, *ring* has none and builds faster. With both, aws-lc-rs is used.
//!
//! ## `sockcat`
//!
//! The package `sockcat` (`cargo run -p sockcat -- demo` in the repository, `cargo install
//! sockcat`) is a netcat for this API on this driver; a user of this library builds none of it.
//! `sockcat demo` shows every kind of socket at work on loopback; `sockcat connect HOST PORT`
//! (`--tls`, `--ca FILE`, `--starttls smtp|imap|pop3`), `sockcat listen PORT` (`--echo`,
//! `--tls` with `--cert`/`--key` or `--self-signed`) and `sockcat udp` (`--to`, `--join`,
//! `--interface`, `--loopback`) join sockets to stdin and stdout; `-v` prints every event and
//! a transfer summary on stderr. `--record FILE` (every subcommand) records the session
//! ([`record`]); `sockcat replay FILE` replays it offline and prints the lines `-v` printed,
//! then a summary (sessions with TLS replay up to their first handshake: sockcat does not
//! rebuild their configs).
//!
//! ## Decisions
//!
//! - OS errors reach the core as [`std::io::ErrorKind`]s, which it names ([BEHAVIOUR §4](sockstate::behaviour#4-errors)):
//!   refused → `ConnectionRefusedError`, reset or broken pipe → `NetworkInterruptError`, timed
//!   out → `NetworkTimeoutError`, anything else (address in use, host unreachable, ...) →
//!   `NetworkError`. `EINTR` is retried and `WouldBlock` only means "wait".
//! - A resolver failure is reported as `ResolveError::Temporary` when `getaddrinfo` said
//!   "try again", `NotFound` otherwise (the core names both `DomainNotFoundError`).
//! - A socket that is suspended and has no write pending is not watched at all: a reset that
//!   arrives meanwhile is seen when reading resumes (it cannot be told apart from data
//!   without reading).
//! - Writes use `MSG_NOSIGNAL`: a peer that went away is an error event, never `SIGPIPE`.
//! - `next_event(None)` returns `None` at once when nothing could ever produce an event: no
//!   live socket, no task queued and no [`Handle`] in existence.
//! - Multicast: groups are joined, and multicast datagrams sent, on
//!   [`Config::multicast_interface_v4`] when it is set, else on the socket's local address
//!   if it is specific, else where the OS chooses. A socket bound to `127.0.0.1` receives no
//!   multicast on Linux: members bind the wildcard address and pin the interface instead.
//!   On the loopback interface the kernel delivers a host's own multicast whatever
//!   `loopback` (`IP_MULTICAST_LOOP`) says.
//! - A server whose `accept` fails for want of resources (`EMFILE`, `ENOMEM`, ...) rests for
//!   100 ms instead of being woken again at once by the connection still pending;
//!   `ECONNABORTED` (the peer gave up) is skipped. Accepted sockets get `TCP_NODELAY` (on
//!   Linux from their listener, which has it, as `TCP_INQ`, from the start: no syscall per
//!   accepted connection).
//! - A UDP read error (an ICMP report about an earlier datagram) is consumed and not
//!   reported: it concerns no datagram being read; send errors are `Input::SendFailed`.
//! - IPv6 servers and UDP sockets keep the OS's dual-stack default (`IPV6_V6ONLY` is not
//!   set), so IPv4-mapped destinations work on an IPv6 UDP socket.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod dns;
mod mailbox;
mod reactor;
pub mod record;
pub mod roots;
mod sockets;
mod udp;
mod wait;

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use polling::Poller;

pub use mailbox::{DriverGone, Handle};
pub use record::{Recording, RecordingStats};
pub use sockstate::replay::PayloadLimit;
pub use sockstate::{
    self, ApiError, BinaryType, Bytes, Core, Data, DomException, ErrorCode, Event, InputError,
    Payload, Policy, ReadyState, SendAllError, ServerId, ServerOptions, ServerSocket, SocketError,
    SocketErrorKind, SocketId, Sockets, TcpId, TcpOptions, TcpSocket, UdpId, UdpOptions, UdpSocket,
};

use std::net::{Ipv4Addr, SocketAddr};

use dns::{Answer, Resolver};
use mailbox::Mailbox;
use reactor::{Limits, Mode, Reactor, Report};
use record::Recorder;
use sockstate::{Accepted, Action, Call, ConnectOptions, Input, Output, Returned};

sockstate::options_struct! {
    /// The driver's configuration: the core's limits and timeouts, plus the loop's own.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = sockstate_driver::Config::default()
    ///     .core(sockstate::Config::default().close_timeout(Duration::from_secs(5)));
    /// # let _ = sockstate_driver::Driver::new(config);
    /// ```
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Config {
        /// The core's configuration (high-water mark, send cap, timeouts).
        pub core: sockstate::Config,
        /// Bytes asked of the OS per read (default 64 KiB).
        pub read_chunk: usize,
        /// Reads of one socket per turn of the loop before the others get theirs (default 4).
        pub reads_per_turn: usize,
        /// Connections one server accepts per turn before the others get theirs (default 16).
        pub accepts_per_turn: usize,
        /// Datagrams read from one UDP socket per turn (default 32).
        pub datagrams_per_turn: usize,
        /// Sockets the OS reported ready that one turn of the loop serves before the app gets
        /// their events (default 8; at least 1): the app answers a few sockets at a time, not all
        /// of a large batch at once, and the others are served at the next turns without a new
        /// wait.
        pub sources_per_turn: usize,
        /// Polls without blocking, at most this many, before the loop blocks again after a
        /// blocking wait that ended within 20 µs (dense traffic), where waits go straight to
        /// `epoll_wait` (Linux); default 0: never; at most 1000, and never past the wait's
        /// timeout. Each one is a syscall (a fraction of a µs) that
        /// spares whoever wakes the loop a wake-up: with 8, a UDP sender on loopback sent more
        /// datagrams per second to a driver receiver in 9 of 10 paired runs (median +10%), and the
        /// receiver used 25-40% more CPU per datagram (`BENCHMARKS.md`, workload 4). An idle loop
        /// never spins.
        pub spin_polls: u32,
        /// The interface (by its address) on which IPv4 multicast groups are joined and sent to;
        /// `None`: the socket's local address if it is specific, else the OS's choice. Tests pin
        /// it to `127.0.0.1` so that no datagram leaves the machine.
        pub multicast_interface_v4: Option<Ipv4Addr>,
        /// The interface index for IPv6 multicast (0: the OS's choice).
        pub multicast_interface_v6: u32,
        /// Most resolver threads running at once (default 4; at least 1).
        pub resolver_threads: usize,
        /// Record the session for offline replay (module [`record`]); default `None`. Large
        /// payloads are recorded without a copy; a writer that falls more than
        /// [`Recording::buffer`] (32 MiB) behind stops the recording, counted in
        /// [`Diagnostics::recording_overflows`]. For TLS sessions that replay whole, build
        /// their configs with `sockstate::tls::ClientOptions::draws` / `ServerOptions::draws`
        /// set to the recording's [`Recording::tls_draws`].
        pub record: Option<Recording>,
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            core: sockstate::Config::default(),
            read_chunk: 64 << 10,
            reads_per_turn: 4,
            accepts_per_turn: 16,
            datagrams_per_turn: 32,
            sources_per_turn: 8,
            spin_polls: 0,
            multicast_interface_v4: None,
            multicast_interface_v6: 0,
            resolver_threads: 4,
            record: None,
        }
    }
}

/// What went wrong inside the loop without being any socket's fault. All zero in a healthy
/// run; the tests assert it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Diagnostics {
    /// Inputs the core refused (a driver bug, or a race the driver failed to rule out).
    pub input_errors: u64,
    /// The last refused input's reason.
    pub last_input_error: Option<InputError>,
    /// `poll` calls that failed (other than `EINTR`).
    pub poll_errors: u64,
    /// Times the recording's writer fell behind by more than its buffer, which stopped the
    /// recording ([`record`]'s overflow policy): 0 or 1.
    pub recording_overflows: u64,
    /// Times the recording's writer failed, which stopped the recording: 0 or 1.
    pub recording_errors: u64,
}

/// Socket ids whose spec methods are the same for every kind (`close`, `suspend`, `resume`):
/// [`TcpId`], [`ServerId`] and [`UdpId`].
pub trait SocketHandle: sealed::Ops + Copy + Into<SocketId> {}

mod sealed {
    use std::time::Instant;

    use sockstate::{ApiError, Call, Core, ServerId, TcpId, UdpId};

    /// The core calls behind [`SocketHandle`](super::SocketHandle), per kind.
    pub trait Ops {
        fn close(self, core: &mut Core, now: Instant) -> Result<(), ApiError>;
        fn suspend(self, core: &mut Core) -> Result<(), ApiError>;
        fn resume(self, core: &mut Core) -> Result<(), ApiError>;
        /// The calls as values, for the recorder.
        fn calls(self) -> [Call; 3];
    }

    impl Ops for TcpId {
        fn close(self, core: &mut Core, now: Instant) -> Result<(), ApiError> {
            core.tcp_close(now, self)
        }
        fn suspend(self, core: &mut Core) -> Result<(), ApiError> {
            core.tcp_suspend(self)
        }
        fn resume(self, core: &mut Core) -> Result<(), ApiError> {
            core.tcp_resume(self)
        }
        fn calls(self) -> [Call; 3] {
            let id = self;
            [
                Call::TcpClose { id },
                Call::TcpSuspend { id },
                Call::TcpResume { id },
            ]
        }
    }

    impl Ops for ServerId {
        fn close(self, core: &mut Core, now: Instant) -> Result<(), ApiError> {
            core.server_close(now, self)
        }
        fn suspend(self, core: &mut Core) -> Result<(), ApiError> {
            core.server_suspend(self)
        }
        fn resume(self, core: &mut Core) -> Result<(), ApiError> {
            core.server_resume(self)
        }
        fn calls(self) -> [Call; 3] {
            let id = self;
            [
                Call::ServerClose { id },
                Call::ServerSuspend { id },
                Call::ServerResume { id },
            ]
        }
    }

    impl Ops for UdpId {
        fn close(self, core: &mut Core, now: Instant) -> Result<(), ApiError> {
            core.udp_close(now, self)
        }
        fn suspend(self, core: &mut Core) -> Result<(), ApiError> {
            core.udp_suspend(self)
        }
        fn resume(self, core: &mut Core) -> Result<(), ApiError> {
            core.udp_resume(self)
        }
        fn calls(self) -> [Call; 3] {
            let id = self;
            [
                Call::UdpClose { id },
                Call::UdpSuspend { id },
                Call::UdpResume { id },
            ]
        }
    }
}

impl SocketHandle for TcpId {}
impl SocketHandle for ServerId {}
impl SocketHandle for UdpId {}

/// The event loop: a [`Core`], the poller and the OS sockets, on one thread.
///
/// Call the spec methods on it, and pull events with [`next_event`](Driver::next_event) (or
/// [`next_events`](Driver::next_events)); nothing happens on the network between those calls
/// except what the OS does by itself.
pub struct Driver {
    core: Core,
    reactor: Reactor,
    mailbox: Arc<Mailbox>,
    resolver: Resolver,
    /// Held by every [`Handle`]: more than one reference means a handle exists.
    handles: Arc<()>,
    reports: Vec<Report>,
    answers: Vec<Answer>,
    diagnostics: Diagnostics,
    /// The session's recorder, when [`Config::record`] asks for one.
    recorder: Option<Recorder>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("core", &self.core)
            .field("diagnostics", &self.diagnostics)
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// A driver whose core allows every request (a Rust program is trusted content).
    ///
    /// Fails only if the OS refuses a poller (out of file descriptors).
    pub fn new(config: Config) -> io::Result<Driver> {
        Driver::with_core(Core::new(config.core.clone()), &config)
    }

    /// A driver whose core asks `policy` before every connect, listen, bind and multicast join
    /// ([BEHAVIOUR §5](sockstate::behaviour#5-trust)).
    pub fn with_policy(config: Config, policy: impl Policy + 'static) -> io::Result<Driver> {
        Driver::with_core(Core::with_policy(config.core.clone(), policy), &config)
    }

    fn with_core(core: Core, config: &Config) -> io::Result<Driver> {
        let recorder = match &config.record {
            Some(recording) => Some(Recorder::start(recording, core.config(), Instant::now())?),
            None => None,
        };
        let mailbox = Arc::new(Mailbox::new(Poller::new()?));
        Ok(Driver {
            core,
            reactor: Reactor::new(
                &mailbox.poller,
                Mode::of(&mailbox.poller),
                Limits {
                    read_chunk: config.read_chunk,
                    reads_per_turn: config.reads_per_turn,
                    accepts_per_turn: config.accepts_per_turn,
                    datagrams_per_turn: config.datagrams_per_turn,
                    sources_per_turn: config.sources_per_turn,
                    spin_polls: config.spin_polls,
                    multicast_interface_v4: config.multicast_interface_v4,
                    multicast_interface_v6: config.multicast_interface_v6,
                },
            ),
            resolver: Resolver::new(Arc::clone(&mailbox), config.resolver_threads),
            mailbox,
            handles: Arc::new(()),
            reports: Vec::new(),
            answers: Vec::new(),
            diagnostics: Diagnostics::default(),
            recorder,
        })
    }

    /// The core: every socket's attributes (`driver.core().tcp(id)`).
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// The core, for calls this driver does not wrap. Pass `Instant::now()` where it asks for
    /// the time; the next `next_event` carries out whatever the call asked for. Calls made
    /// here are not recorded ([`Config::record`]): a replay diverges at them.
    pub fn core_mut(&mut self) -> &mut Core {
        &mut self.core
    }

    /// A TCP socket's attributes; `None` once its `Close` was delivered.
    pub fn tcp(&self, id: TcpId) -> Option<&TcpSocket> {
        self.core.tcp(id)
    }

    /// A server's attributes; `None` once its `Close` was delivered.
    pub fn server(&self, id: ServerId) -> Option<&ServerSocket> {
        self.core.server(id)
    }

    /// A UDP socket's attributes; `None` once its `Close` was delivered.
    pub fn udp(&self, id: UdpId) -> Option<&UdpSocket> {
        self.core.udp(id)
    }

    /// A handle other threads can use to wake this loop or run work on it.
    pub fn handle(&self) -> Handle {
        Handle {
            mailbox: Arc::clone(&self.mailbox),
            _alive: Arc::clone(&self.handles),
        }
    }

    /// What went wrong inside the loop (all zero when healthy).
    pub fn diagnostics(&self) -> &Diagnostics {
        &self.diagnostics
    }

    /// How the recording goes, when [`Config::record`] asked for one.
    pub fn recording_stats(&self) -> Option<RecordingStats> {
        self.recorder.as_ref().map(Recorder::stats)
    }

    /// Ends the recording now: writes its end record and waits until the writer has written
    /// everything (dropping the driver does the same). Nothing more is recorded afterwards.
    pub fn finish_recording(&mut self) -> io::Result<()> {
        match self.recorder.take() {
            Some(mut recorder) => recorder.finish(&mut self.diagnostics),
            None => Ok(()),
        }
    }

    // ---- recording ------------------------------------------------------------------------

    /// Runs an app call through the recorder when recording: the call (with its `now`), then
    /// what it returned.
    fn recorded<T>(
        &mut self,
        now: Instant,
        call: impl FnOnce() -> Call,
        run: impl FnOnce(&mut Core) -> Result<T, ApiError>,
        returned: impl FnOnce(&T) -> Returned,
    ) -> Result<T, ApiError> {
        let Some(encoder) = self.recorder.as_mut().and_then(Recorder::encoder) else {
            return run(&mut self.core);
        };
        encoder.call(now, &call());
        let result = run(&mut self.core);
        encoder.call_result(&result.as_ref().map(returned).map_err(Clone::clone));
        self.after_record();
        result
    }

    #[inline]
    fn after_record(&mut self) {
        if let Some(recorder) = &mut self.recorder {
            recorder.recorded(&mut self.diagnostics);
        }
    }

    /// `poll_output`, recorded.
    #[inline]
    fn poll(&mut self) -> Output {
        let out = self.core.poll_output();
        if let Some(encoder) = self.recorder.as_mut().and_then(Recorder::encoder) {
            encoder.polled(&out);
            self.after_record();
        }
        out
    }

    /// `handle_timeout`, recorded.
    fn timeout(&mut self, now: Instant) {
        if let Some(encoder) = self.recorder.as_mut().and_then(Recorder::encoder) {
            encoder.timeout(now);
            self.after_record();
        }
        self.core.handle_timeout(now);
    }

    // ---- the spec's methods ---------------------------------------------------------------

    /// `TCPSocket.open(host, port, options)` ([BEHAVIOUR §1](sockstate::behaviour#1-tcpsocket)): `host` is an IP literal or a DNS
    /// name (resolved off the loop thread). Ends with `Open`, or `Error` + `Close`.
    pub fn tcp_open(
        &mut self,
        host: &str,
        port: u16,
        options: TcpOptions,
    ) -> Result<TcpId, ApiError> {
        let now = Instant::now();
        if self.recorder.is_none() {
            return self.core.tcp_open(now, host, port, options);
        }
        let call = || Call::TcpOpen {
            host: host.into(),
            port,
            options: options.clone(),
        };
        let run = |core: &mut Core| core.tcp_open(now, host, port, options.clone());
        self.recorded(now, call, run, |&id| Returned::Opened(id))
    }

    /// `TCPServerSocket` ([BEHAVIOUR §2](sockstate::behaviour#2-tcpserversocket)): listen as `options` say. Ends with `Open` (the real
    /// `localPort` is then in `driver.server(id)`), or `Error` + `Close`; each accepted
    /// connection is a `Connect { server, socket }` event.
    pub fn listen(&mut self, options: ServerOptions) -> Result<ServerId, ApiError> {
        let now = Instant::now();
        if self.recorder.is_none() {
            return self.core.server_listen(now, options);
        }
        let call = || Call::ServerListen {
            options: options.clone(),
        };
        let run = |core: &mut Core| core.server_listen(now, options.clone());
        self.recorded(now, call, run, |&id| Returned::Listening(id))
    }

    /// `send(data)` on a TCP socket: `Ok(true)` while `bufferedAmount` is at most the
    /// high-water mark; `false` arms `Drain` ([BEHAVIOUR §1](sockstate::behaviour#1-tcpsocket)).
    pub fn send(&mut self, id: TcpId, data: impl Into<Payload>) -> Result<bool, ApiError> {
        if self.recorder.is_none() {
            return self.core.tcp_send(id, data);
        }
        let data = data.into().into_bytes();
        let call = || Call::TcpSend {
            id,
            data: data.clone(),
        };
        let run = |core: &mut Core| core.tcp_send(id, data.clone());
        self.recorded(Instant::now(), call, run, |&sent| Returned::Sent(sent))
    }

    /// `close()`: graceful for a TCP socket (flush, `Drain`, FIN, `Close`; [BEHAVIOUR §1](sockstate::behaviour#1-tcpsocket)); a
    /// server stops listening (its accepted sockets live on); a UDP socket sends what is
    /// queued, then closes.
    pub fn close(&mut self, id: impl SocketHandle) -> Result<(), ApiError> {
        let now = Instant::now();
        let [call, _, _] = id.calls();
        self.recorded(
            now,
            || call,
            |core| id.close(core, now),
            |()| Returned::Done,
        )
    }

    /// `closeImmediately()` (Mozilla): discard the queue, release the socket, `Close`.
    pub fn close_immediately(&mut self, id: TcpId) -> Result<(), ApiError> {
        let call = || Call::TcpCloseImmediately { id };
        self.unit_call(call, |core| core.tcp_close_immediately(id))
    }

    /// `halfclose()` (W3C): FIN once the queue is flushed; data keeps arriving.
    pub fn halfclose(&mut self, id: TcpId) -> Result<(), ApiError> {
        let now = Instant::now();
        let call = || Call::TcpHalfclose { id };
        self.recorded(
            now,
            call,
            |core| core.tcp_halfclose(now, id),
            |()| Returned::Done,
        )
    }

    /// `upgradeToSecure()` (Mozilla's STARTTLS): TLS from here on, verified for the socket's
    /// `host` (see the core's "Secure transport" rules).
    pub fn upgrade_to_secure(&mut self, id: TcpId) -> Result<(), ApiError> {
        let call = || Call::TcpUpgradeToSecure { id };
        self.unit_call(call, |core| core.tcp_upgrade_to_secure(id))
    }

    /// `suspend()`: counted; the socket is not read (a server does not accept) while suspended.
    pub fn suspend(&mut self, id: impl SocketHandle) -> Result<(), ApiError> {
        let [_, call, _] = id.calls();
        self.unit_call(|| call, |core| id.suspend(core))
    }

    /// `resume()`: `InvalidStateError` when not suspended.
    pub fn resume(&mut self, id: impl SocketHandle) -> Result<(), ApiError> {
        let [_, _, call] = id.calls();
        self.unit_call(|| call, |core| id.resume(core))
    }

    /// A call that returns nothing and takes no `now` (the recorder reads the clock only
    /// when recording).
    fn unit_call(
        &mut self,
        call: impl FnOnce() -> Call,
        run: impl FnOnce(&mut Core) -> Result<(), ApiError>,
    ) -> Result<(), ApiError> {
        if self.recorder.is_none() {
            return run(&mut self.core);
        }
        self.recorded(Instant::now(), call, run, |()| Returned::Done)
    }

    // ---- the loop -------------------------------------------------------------------------

    /// The next spec event, waiting at most `timeout` for one (`None`: as long as it takes).
    ///
    /// Returns `None` when the timeout passed first, when nothing could ever produce an event
    /// (no live socket, no [`Handle`]), or when the poller failed (see
    /// [`diagnostics`](Driver::diagnostics)). With a zero timeout it still does one round of
    /// non-blocking I/O.
    pub fn next_event(&mut self, timeout: Option<Duration>) -> Option<Event> {
        // Counted from the first time the loop would wait (the clock is read there anyway).
        let mut deadline = None;
        let mut waited = false;
        loop {
            match self.poll() {
                Output::Action(action) => self.execute(action),
                Output::Event(event) => {
                    self.end_of_actions();
                    return Some(event);
                }
                Output::Timeout(at) => {
                    self.end_of_actions();
                    if !self.reports.is_empty() {
                        // What the batch sends reported may make more work: never wait on it.
                        self.feed();
                        continue;
                    }
                    let now = Instant::now();
                    if at.is_some_and(|at| at <= now) {
                        self.timeout(now);
                        continue;
                    }
                    let fresh = deadline.is_none();
                    let deadline =
                        *deadline.get_or_insert_with(|| timeout.and_then(|t| now.checked_add(t)));
                    if waited && deadline.is_some_and(|d| d <= now) {
                        return None;
                    }
                    if timeout.is_none() && self.nothing_can_happen() {
                        return None;
                    }
                    let wake = match (at, deadline) {
                        (Some(a), Some(d)) => Some(a.min(d)),
                        (a, d) => a.or(d),
                    };
                    let wait = match wake {
                        // A deadline set from this very reading is `now + timeout`: the wait
                        // is the timeout itself (no arithmetic on the clock).
                        Some(wake) if fresh && Some(wake) == deadline => timeout,
                        wake => wake.map(|w| w.saturating_duration_since(now)),
                    };
                    if !self.turn(wait) {
                        return None;
                    }
                    waited = true;
                }
            }
        }
    }

    /// Waits like [`next_event`](Driver::next_event) for the first event, then appends it and
    /// every other event available without waiting to `events`. Returns how many were added.
    /// The messages of one UDP GRO read are taken together ([`Core::poll_messages`]): the
    /// cheapest way to receive bursts of datagrams.
    ///
    /// Attributes of a socket whose `Close` is in the batch are gone already when the batch is
    /// returned; use `next_event` to read them at each event.
    pub fn next_events(&mut self, timeout: Option<Duration>, events: &mut Vec<Event>) -> usize {
        let Some(first) = self.next_event(timeout) else {
            return 0;
        };
        let before = events.len();
        let message = matches!(first, Event::Message { .. });
        events.push(first);
        if message && self.recorder.is_none() {
            // The rest of a GRO run at once (a recording keeps each poll).
            self.core.poll_messages(events);
        }
        loop {
            match self.poll() {
                Output::Action(action) => self.execute(action),
                Output::Event(event) => {
                    let message = matches!(event, Event::Message { .. });
                    events.push(event);
                    if message && self.recorder.is_none() {
                        self.core.poll_messages(events);
                    }
                }
                Output::Timeout(_) => {
                    // Their reports are fed by the next call, before it waits.
                    self.end_of_actions();
                    return events.len() - before;
                }
            }
        }
    }

    /// Every action the core had is taken: the datagrams of this turn's `SendDatagrams` go out
    /// together. Inlined, as there is mostly nothing to do.
    #[inline]
    fn end_of_actions(&mut self) {
        let poller = &self.mailbox.poller;
        self.reactor.flush_sends(poller, &mut self.reports);
    }

    /// No live socket, nothing queued, nobody who could hand over work.
    fn nothing_can_happen(&self) -> bool {
        self.core.tcp_ids().next().is_none()
            && self.core.server_ids().next().is_none()
            && self.core.udp_ids().next().is_none()
            && self.reactor.is_idle()
            && Arc::strong_count(&self.handles) == 1
            && !self.mailbox.has_work()
    }

    /// One wait for readiness, then everything it brought: I/O, resolver answers, tasks and
    /// due timers. `false` if the poller failed.
    fn turn(&mut self, timeout: Option<Duration>) -> bool {
        let timeout = if self.mailbox.has_work() {
            Some(Duration::ZERO)
        } else {
            timeout
        };
        if timeout != Some(Duration::ZERO) {
            if let Some(recorder) = &mut self.recorder {
                recorder.idle(&mut self.diagnostics);
            }
        }
        let waited = self
            .reactor
            .wait(&self.mailbox.poller, timeout, &mut self.reports);
        // One reading of the clock for what the wait brought and the timers due with it.
        let mut now = Instant::now();
        self.feed_at(now);
        let tasks = self.mailbox.take(&mut self.answers);
        for (id, result) in std::mem::take(&mut self.answers) {
            self.resolver.answered();
            if self.reactor.take_resolving(id) {
                self.input(now, Input::Resolved { id, result });
            }
        }
        if !tasks.is_empty() {
            for task in tasks {
                task(self);
            }
            now = Instant::now();
        }
        self.timeout(now);
        match waited {
            Ok(()) => true,
            Err(_) => {
                self.diagnostics.poll_errors += 1;
                false
            }
        }
    }

    /// Carries out one action and feeds back what it caused at once.
    fn execute(&mut self, action: Action) {
        let poller = &self.mailbox.poller;
        let reports = &mut self.reports;
        match action {
            Action::Resolve { id, name } => {
                self.reactor.resolving(id);
                self.resolver.submit(id, name.as_str());
            }
            Action::Connect {
                id,
                attempt,
                remote,
                options,
            } => {
                let ConnectOptions {
                    local,
                    no_delay,
                    keep_alive,
                    settings,
                } = *options;
                self.reactor.connect(
                    poller, id, attempt, remote, local, no_delay, keep_alive, settings, reports,
                )
            }
            Action::AbortConnect { id, attempt } => self.reactor.abort_connect(poller, id, attempt),
            Action::SetReading { id, enabled } => {
                self.reactor.set_reading(poller, id, enabled, reports)
            }
            Action::Write { id, data } => self.reactor.write(poller, id.into(), data, reports),
            Action::Shutdown { id } => self.reactor.shutdown(id, reports),
            Action::QueryUnacked { id } => self.reactor.query_unacked(id, reports),
            Action::Release { id } => self.reactor.release(poller, id),
            Action::Listen {
                id,
                local,
                backlog,
                reuse_address,
                settings,
            } => self.reactor.listen(
                poller,
                id,
                local,
                backlog,
                reuse_address,
                *settings,
                reports,
            ),
            Action::Bind {
                id,
                local,
                reuse_address,
                loopback,
                settings,
            } => self.reactor.bind(
                poller,
                id,
                local,
                reuse_address,
                loopback,
                *settings,
                reports,
            ),
            Action::SendDatagrams { id, datagrams } => self.reactor.send_datagrams(id, datagrams),
            Action::JoinMulticast { id, group, source } => {
                self.reactor.join(id, group, source, reports)
            }
            Action::LeaveMulticast { id, group, source } => self.reactor.leave(id, group, source),
        }
        self.feed();
    }

    /// Hands what the OS did to the core, in order.
    fn feed(&mut self) {
        if !self.reports.is_empty() {
            self.feed_at(Instant::now());
        }
    }

    /// [`feed`](Driver::feed) at a time already read.
    fn feed_at(&mut self, now: Instant) {
        let mut reports = std::mem::take(&mut self.reports);
        // Taken from the end, in order (cheaper than a `drain` for the one report most
        // actions cause).
        reports.reverse();
        while let Some(report) = reports.pop() {
            match report {
                Report::Input(input) => self.input(now, input),
                Report::Accepted {
                    server,
                    socket,
                    local,
                    remote,
                } => self.accepted(now, server, socket, local, remote),
            }
        }
        self.reports = reports; // keep the allocation
    }

    /// A connection a server accepted: the core makes it a socket (adopted by the reactor
    /// before any of its actions run) or refuses it (the OS socket is closed at once).
    fn accepted(
        &mut self,
        now: Instant,
        server: ServerId,
        socket: socket2::Socket,
        local: SocketAddr,
        remote: SocketAddr,
    ) {
        let result = self.core.handle_accepted(now, server, local, remote);
        if let Some(encoder) = self.recorder.as_mut().and_then(Recorder::encoder) {
            encoder.accepted(now, server, local, remote, &result);
            self.after_record();
        }
        match result {
            Ok(Accepted::Socket(id)) => {
                if let Err(e) = self.reactor.adopt(&self.mailbox.poller, id, socket) {
                    self.input(
                        now,
                        Input::Failed {
                            id,
                            error: e.kind(),
                        },
                    );
                }
            }
            Ok(_) => drop(socket), // refused (max_connections): closed at once
            Err(e) => {
                drop(socket);
                self.diagnostics.input_errors += 1;
                self.diagnostics.last_input_error = Some(e);
            }
        }
    }

    fn input(&mut self, now: Instant, input: Input) {
        let result = match self.recorder.as_mut().and_then(Recorder::encoder) {
            None => self.core.handle_input(now, input),
            Some(encoder) => {
                encoder.input(now, &input);
                let result = self.core.handle_input(now, input);
                encoder.input_result(&result);
                self.after_record();
                result
            }
        };
        if let Err(e) = result {
            self.diagnostics.input_errors += 1;
            self.diagnostics.last_input_error = Some(e);
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.mailbox.close();
        self.reactor.close_all(&self.mailbox.poller);
    }
}
