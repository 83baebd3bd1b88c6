//! The `TCPSocket` state machine ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket)), with its TLS (`useSecureTransport`,
//! `upgradeToSecure`).
//!
//! Internal phases and the `readyState` each reports:
//!
//! | phase          | readyState   | meaning                                                   |
//! |----------------|--------------|-----------------------------------------------------------|
//! | `Connecting`   | `connecting` | resolving, or connect attempts racing (RFC 8305)          |
//! | `Securing`     | `connecting` | connected; TLS handshake of `useSecureTransport` or of a secure server's socket |
//! | `Open`         | `open`       | established (the peer may have half-closed, `allowHalfOpen`) |
//! | `HalfClosed`   | `halfclosed` | `halfclose()` called: flush, then FIN; still receiving    |
//! | `Closing`      | `closing`    | `close()` or peer FIN: flush, `Drain`, close_notify, FIN, then wait until the peer's TCP acknowledged everything and the peer's FIN came ([`Closing`]) |
//! | `Closed`       | `closed` (`closing` when the app ended it) | `Release` and `Close` queued; the slot is freed when `Close` is delivered |
//!
//! Every transition, stimulus by stimulus (the methods below hold one `match` each):
//!
//! | stimulus            | Connecting | Securing | Open | HalfClosed | Closing | Closed |
//! |---------------------|------------|----------|------|------------|---------|--------|
//! | `send`              | `InvalidStateError` | `InvalidStateError` | queue, write | `InvalidStateError` | `InvalidStateError` | `InvalidStateError` |
//! | `close`             | `Release`, `Close` | `Release`, `Close` | → Closing | → Closing | nothing | nothing |
//! | `close_immediately` | `Release`, `Close` | same | discard, `Release`, `Close` | same | same | nothing |
//! | `halfclose`         | FIN after open | FIN after open | → HalfClosed | nothing | nothing | nothing |
//! | `upgrade_to_secure` | `InvalidStateError` | `InvalidStateError` | start TLS; plaintext undelivered → `Release`, `SecurityError`, `Close`; secure → nothing | `InvalidStateError` | `InvalidStateError` | `InvalidStateError` |
//! | `suspend`/`resume`  | counted | counted (the handshake still reads) | counted, read interest | same | counted (still discarding) | counted |
//! | `Resolved`          | start attempts / `DomainNotFoundError` | input error | … | … | … | unknown id |
//! | `Connected`         | → Open (`Open`) or → Securing; abort the others | input error | … | … | … | unknown id |
//! | `ConnectFailed`     | next attempt / error of the last | input error | … | … | … | unknown id |
//! | `Received`          | input error | to TLS; handshake done → Open | inbox → `Data` when polled, not while suspended (through TLS once upgraded) | same | to TLS or discarded | unknown id |
//! | `Eof`               | input error | `SecurityError` | inbox; once delivered: `HalfClose`, or → Closing (TLS: after close_notify, else truncation error) | same, → Closing | FIN seen | unknown id |
//! | `Written`           | input error | next record | next write, `Drain` | + FIN when empty | + FIN, `QueryUnacked` | unknown id |
//! | `Unacked`           | input error | input error | input error | input error | 0: linger; more: ask again later; `None`: wait for the peer's FIN | unknown id |
//! | `Failed`            | input error | `Error`, `Close` | same | same | same | unknown id |
//! | timer               | next attempt / `NetworkTimeoutError` | `NetworkTimeoutError` | – | – | close timeout → `NetworkTimeoutError`; linger → `Close`; `QueryUnacked` again | – |
//!
//! After each stimulus, [`TcpSocket::settle`] derives the follow-up work from the state: the next
//! write, `Drain`, close_notify and FIN once everything is written, the query of what the peer
//! has not acknowledged, the release once the peer has everything and its FIN came, and the
//! read interest.
//!
//! What is read goes into the socket's inbox (data, then the end of the stream), and the output
//! queue gets one `Deliver` marker per item: an item becomes its event only when the app polls
//! that far. So `suspend()` holds, and `close()` drops, data that was read but not yet
//! delivered, and a FIN behind such data waits for it ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket) suspend, close).
//!
//! ## TLS ordering ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket) `upgradeToSecure`)
//!
//! - Bytes queued before `upgrade_to_secure` are written as plaintext before the first TLS
//!   record (`plain_before` counts them down); bytes sent after it wait in the queue and are
//!   encrypted once the handshake is done.
//! - `bufferedAmount` counts plaintext until the OS has taken the ciphertext that carries it:
//!   each ciphertext chunk holds a credit of plaintext bytes released when it is fully written
//!   (also when a write joined it with others, see [`Tls::next_write`]). `Drain` waits for
//!   every TLS record; close_notify follows the last record (in its write, unless an armed
//!   `Drain` must fire first), then FIN.
//!
//! ## Writes
//!
//! A write is asked for with a marker in the output queue ([`TcpSocket::pump`]) and made when
//! the app polls that far ([`TcpSocket::write_next`]): plaintext sent meanwhile joins the queue's
//! front chunk, TLS encrypts it then, and close_notify due by then is in the same write.
//! - Received bytes are routed when they arrive: before the call they are plaintext, after it
//!   they go to TLS and never to the app as plaintext (the STARTTLS injection class,
//!   CVE-2011-0411). Plaintext already delivered when the app calls `upgrade_to_secure` stays
//!   delivered; plaintext read but not yet delivered then (still in the inbox, held while
//!   suspended, or the start of a character the UTF-8 decoder keeps) was sent past the
//!   STARTTLS point: it is dropped, never given to TLS, and the call returns `Ok` with the
//!   socket ended (`Release`, `Error(SecurityError)`, `Close`), so no `Data` follows the call.
//! - The state check comes first: `upgrade_to_secure` is `InvalidStateError` whenever
//!   `readyState` is not `open`, also in `Securing` (a `useSecureTransport` socket whose
//!   handshake runs reads `connecting`).

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrayvec::ArrayVec;
use bytes::{Buf, Bytes, BytesMut};

use crate::core::Ctx;
use crate::error::{ApiError, ErrorCode, InputError, SocketError};
use crate::host::Host;
use crate::id::{ServerId, TcpId};
use crate::io::{Action, Event, ResolveError, SocketSettings};
use crate::payload::{BinaryType, Data};
use crate::queue::{SendQueue, COALESCE};
use crate::text::Utf8Decoder;
use crate::tls::{self, ClientConfig, Engine, Role, ServerConfig};

/// Most addresses one `open` tries (RFC 8305 candidates), in the order they are tried.
pub const MAX_CANDIDATES: usize = 16;

/// Ciphertext the core prepares ahead of the OS: plaintext is encrypted in slices of at most
/// this, and only while less than this is waiting to be written, so TLS never doubles the
/// memory of a large queue.
const TLS_WIRE_TARGET: usize = 64 << 10;

crate::options_struct! {
    /// Options of `TCPSocket.open` (the W3C `TCPOptions` plus Mozilla's and Node's).
    ///
    /// ```
    /// use sockstate::{BinaryType, TcpOptions};
    /// let options = TcpOptions::default().binary_type(BinaryType::ArrayBuffer);
    /// assert!(options.no_delay);
    /// // The same, in one word:
    /// assert_eq!(TcpOptions::binary().binary_type, options.binary_type);
    /// ```
    #[derive(Clone, Debug)]
    pub struct TcpOptions {
        /// `localAddress`: bind to this address first (only addresses of its family are tried).
        pub local_address: Option<IpAddr>,
        /// `localPort`: bind to this port first (0 or `None`: ephemeral). With a fixed port,
        /// attempts run one at a time instead of racing.
        pub local_port: Option<u16>,
        /// `useSecureTransport`: TLS from the start; `Open` only after the handshake completed and
        /// the certificate was verified for `host` ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket), against Firefox) by the config's
        /// verifier (see `tls_config`).
        pub use_secure_transport: bool,
        /// The TLS client config for `useSecureTransport` and `upgradeToSecure` (trust roots,
        /// client certificate, ALPN); `None`: Mozilla's roots ([`tls::client_config`]).
        ///
        /// Honoured as given: sockstate has no switch that turns verification off, but a config
        /// built with rustls's own `dangerous()` API (a verifier that accepts any certificate) is
        /// used as it is, and such a socket then opens to an untrusted or self-signed server.
        pub tls_config: Option<Arc<ClientConfig>>,
        /// `binaryType` of received data.
        pub binary_type: BinaryType,
        /// `TCP_NODELAY` (default `true`, as the W3C draft).
        pub no_delay: bool,
        /// `keepAliveDelay` (Direct Sockets): TCP keep-alive with this idle time before the
        /// first probe (default `None`: off). From [`MIN_KEEP_ALIVE_DELAY`] (1 s, Direct
        /// Sockets' minimum) to [`MAX_KEEP_ALIVE_DELAY`] (32 767 s, Linux's `TCP_KEEPIDLE`
        /// maximum), else `InvalidAccessError`; the OS counts whole seconds, so a fraction is
        /// dropped.
        pub keep_alive: Option<Duration>,
        /// `sendBufferSize` (Direct Sockets): `SO_SNDBUF` in bytes, 1 to
        /// [`MAX_BUFFER_SIZE`](crate::MAX_BUFFER_SIZE), else `InvalidAccessError` (default
        /// `None`: the OS's).
        pub send_buffer_size: Option<u32>,
        /// `receiveBufferSize` (Direct Sockets): `SO_RCVBUF` in bytes, range as
        /// `send_buffer_size`.
        pub receive_buffer_size: Option<u32>,
        /// `dnsQueryType` (Direct Sockets): connect only to addresses of this family (default
        /// `None`: both). A name with no address of the family left after resolution ends in
        /// `Error(DomainNotFoundError)` + `Close`; an IP literal `host` or a `local_address`
        /// of the other family is `InvalidAccessError`.
        pub dns_query_type: Option<DnsQueryType>,
        /// Keep the socket writable after the peer's FIN and fire `HalfClose` (default `false`:
        /// the peer's FIN closes the socket once the queue is flushed).
        pub allow_half_open: bool,
    }
}

impl TcpOptions {
    /// The defaults, but received data as bytes (`binaryType` `"arraybuffer"`). The spec's
    /// default, `"string"`, decodes what arrives as UTF-8 and turns invalid bytes into U+FFFD:
    /// for anything that is not text, start from this.
    ///
    /// ```
    /// use sockstate::{BinaryType, TcpOptions};
    /// assert_eq!(TcpOptions::binary().binary_type, BinaryType::ArrayBuffer);
    /// assert_eq!(TcpOptions::default().binary_type, BinaryType::String);
    /// ```
    pub fn binary() -> Self {
        TcpOptions {
            binary_type: BinaryType::ArrayBuffer,
            ..TcpOptions::default()
        }
    }
}

impl Default for TcpOptions {
    fn default() -> Self {
        TcpOptions {
            local_address: None,
            local_port: None,
            use_secure_transport: false,
            tls_config: None,
            binary_type: BinaryType::String,
            no_delay: true,
            keep_alive: None,
            send_buffer_size: None,
            receive_buffer_size: None,
            dns_query_type: None,
            allow_half_open: false,
        }
    }
}

/// The shortest `keepAliveDelay` (Direct Sockets' minimum).
pub const MIN_KEEP_ALIVE_DELAY: Duration = Duration::from_secs(1);
/// The longest `keepAliveDelay` (Linux's `TCP_KEEPIDLE` maximum, 32 767 s).
pub const MAX_KEEP_ALIVE_DELAY: Duration = Duration::from_secs(32_767);

/// `dnsQueryType` (Direct Sockets): which address family a name is resolved to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DnsQueryType {
    /// `"ipv4"`: A records only.
    Ipv4,
    /// `"ipv6"`: AAAA records only.
    Ipv6,
}

impl DnsQueryType {
    /// The spec string: `"ipv4"` or `"ipv6"`.
    pub fn as_str(self) -> &'static str {
        match self {
            DnsQueryType::Ipv4 => "ipv4",
            DnsQueryType::Ipv6 => "ipv6",
        }
    }

    /// Whether `ip` is of this family.
    pub fn admits(self, ip: IpAddr) -> bool {
        ip.is_ipv4() == (self == DnsQueryType::Ipv4)
    }
}

impl TcpOptions {
    /// `InvalidAccessError` for out-of-range values (see each field), or a `dns_query_type`
    /// that contradicts `local_address` or an IP literal `host`.
    pub(crate) fn check(&self, host: &Host) -> Result<SocketSettings, ApiError> {
        if let Some(delay) = self.keep_alive {
            if !(MIN_KEEP_ALIVE_DELAY..=MAX_KEEP_ALIVE_DELAY).contains(&delay) {
                return Err(ApiError::access(format!(
                    "keepAliveDelay {delay:?} is not between {MIN_KEEP_ALIVE_DELAY:?} and \
                     {MAX_KEEP_ALIVE_DELAY:?}"
                )));
            }
        }
        let settings = SocketSettings {
            send_buffer: self.send_buffer_size,
            receive_buffer: self.receive_buffer_size,
            ..SocketSettings::default()
        };
        settings.check()?;
        if let Some(family) = self.dns_query_type {
            let literal = match host {
                Host::Ip(ip) => Some(("host", *ip)),
                Host::Name(_) => None,
            };
            let local = self.local_address.map(|ip| ("localAddress", ip));
            for (what, ip) in [literal, local].into_iter().flatten() {
                if !family.admits(ip) {
                    return Err(ApiError::access(format!(
                        "{what} {ip} is not of dnsQueryType \"{}\"",
                        family.as_str()
                    )));
                }
            }
        }
        Ok(settings)
    }
}

/// The spec's `readyState`, of every socket type: each type's `ready_state()` takes only the
/// states of its own spec, so [`as_str`](ReadyState::as_str) is its spec string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ReadyState {
    /// `"connecting"`: a `TCPSocket`'s first state.
    Connecting,
    /// `"opening"`: a `TCPServerSocket`'s or `UDPSocket`'s first state.
    Opening,
    /// `"open"`.
    Open,
    /// `"halfclosed"`: our FIN is sent or pending; data still arrives.
    HalfClosed,
    /// `"closing"`.
    Closing,
    /// `"closed"`.
    Closed,
}

impl ReadyState {
    /// The spec's string.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadyState::Connecting => "connecting",
            ReadyState::Opening => "opening",
            ReadyState::Open => "open",
            ReadyState::HalfClosed => "halfclosed",
            ReadyState::Closing => "closing",
            ReadyState::Closed => "closed",
        }
    }
}

impl std::fmt::Display for ReadyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug)]
enum Phase {
    Connecting(Box<Connecting>),
    Securing(Box<Securing>),
    Open,
    HalfClosed,
    Closing(Box<Closing>),
    /// `by_app`: ended by `close`/`close_immediately` (reads `closing` until `Close` is delivered).
    Closed {
        by_app: bool,
    },
}

/// The state that exists only until the connection is established.
#[derive(Debug)]
struct Connecting {
    resolving: bool,
    candidates: ArrayVec<SocketAddr, MAX_CANDIDATES>,
    /// `candidates[..started]` have been tried.
    started: u8,
    /// Bit `i`: attempt `i` is in flight.
    pending: u16,
    last_error: Option<io::ErrorKind>,
    next_attempt_at: Option<Instant>,
    timeout_at: Instant,
    local_ip: Option<IpAddr>,
    local_port: u16,
    no_delay: bool,
    keep_alive: Option<Duration>,
    settings: SocketSettings,
    dns_query_type: Option<DnsQueryType>,
    halfclose: bool,
}

/// A graceful close ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket) close): flush, `Drain`, close_notify, FIN, then wait until
/// the peer's TCP has acknowledged everything ([`Action::QueryUnacked`]) and the peer's FIN
/// came, reading and discarding meanwhile.
#[derive(Debug)]
struct Closing {
    /// Until everything is acknowledged: the close timeout (`NetworkTimeoutError`). After:
    /// the linger, waiting for the peer's FIN (release without error).
    deadline: Instant,
    delivery: Delivery,
    /// An [`Action::QueryUnacked`] is out and its answer not yet in.
    asking: bool,
    /// When to ask again (the answer was not 0).
    ask_at: Option<Instant>,
    /// The wait before the next query after this one; doubles up to
    /// [`Config::unacked_poll_interval`](crate::Config::unacked_poll_interval).
    backoff: Duration,
}

/// What the I/O layer has said of our bytes in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    /// Not known yet (our FIN is not out, or the last answer was not 0).
    Pending,
    /// The peer's TCP acknowledged every byte and our FIN.
    Acknowledged,
    /// The I/O layer cannot tell: only the peer's FIN may end the close without error.
    Unknowable,
}

/// The first wait between two queries of [`Closing`].
const FIRST_UNACKED_POLL: Duration = Duration::from_millis(1);

/// Whom to tell when the handshake of a secure socket completes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Announce {
    /// A client: `Open`.
    Open,
    /// A socket accepted by a secure server: `Connect { server, socket }`. Until then the app
    /// does not know the id, so a failed handshake is reported on the server instead.
    Connect(ServerId),
}

/// The TLS handshake of a socket that is not yet `open`.
#[derive(Debug)]
struct Securing {
    /// The connect timeout still runs: it bounds the handshake too.
    timeout_at: Option<Instant>,
    halfclose: bool,
    announce: Announce,
}

/// A TLS session and the ciphertext waiting for the OS.
#[derive(Debug)]
struct Tls {
    engine: Box<dyn Engine>,
    /// Bytes queued before `upgrade_to_secure` still to be written as plaintext.
    plain_before: usize,
    /// Ciphertext to write, as the engine produced it (handshake flights, records, alerts),
    /// each with the plaintext bytes it releases once fully written.
    wire: VecDeque<(Bytes, usize)>,
    wire_bytes: usize,
    /// Bytes at the front of `wire` that were handed out in a write (in flight, or its rest
    /// after a partial write): they are never copied again (see [`Tls::next_write`]).
    handed: usize,
    /// Length of the write in flight; 0: none.
    in_flight: usize,
    notify_sent: bool,
}

impl Tls {
    /// Moves the engine's pending ciphertext to the wire, crediting `credit` plaintext bytes.
    fn collect(&mut self, credit: usize) {
        match self.engine.take_outgoing() {
            Some(out) => {
                self.wire_bytes += out.len();
                self.wire.push_back((out, credit));
            }
            // Encrypting never yields nothing; if it did, the credit is released at once.
            None if credit > 0 => self.wire.push_back((Bytes::new(), credit)),
            None => {}
        }
    }

    /// Plaintext is still being written ahead of the first record (STARTTLS).
    fn sending_plain(&self) -> bool {
        self.plain_before > 0
    }

    /// The next write: the rest of the last one, or else the front of `wire` joined with
    /// the small entries behind it, as the send queue joins small sends (up to
    /// [`COALESCE`] bytes). So what the app did in one turn (a send, then `close()`'s
    /// close_notify) leaves in one write, as one TCP segment. Only small entries are copied,
    /// each at most once; one of more than [`COALESCE`] bytes goes out as it is.
    fn next_write(&mut self) -> Option<Bytes> {
        let (front, _) = self.wire.front().filter(|_| self.in_flight == 0)?;
        if self.handed > 0 {
            self.in_flight = front.len();
            return Some(front.clone());
        }
        let mut total = 0;
        let joined = (self.wire.iter())
            .take_while(|(b, _)| {
                total += b.len();
                total <= COALESCE
            })
            .count();
        let data = match joined {
            0 | 1 => front.clone(),
            n => {
                let size = self.wire.iter().take(n).map(|(b, _)| b.len()).sum();
                let mut out = BytesMut::with_capacity(size);
                for (b, _) in self.wire.iter().take(n) {
                    out.extend_from_slice(b);
                }
                out.freeze()
            }
        };
        self.handed = data.len();
        self.in_flight = data.len();
        Some(data)
    }

    /// The OS took `len` bytes of the write in flight: the entries they complete release
    /// their plaintext credit (exactly, however the write joined them), in order.
    fn written(&mut self, mut len: usize, queue: &mut SendQueue) -> Result<(), InputError> {
        if len == 0 || len > self.in_flight {
            return Err(match self.in_flight {
                0 => InputError::Unexpected("a write completed but none was in flight"),
                _ => InputError::Unexpected(
                    "a write completed with a length the write in flight cannot have",
                ),
            });
        }
        self.in_flight = 0;
        self.handed -= len;
        self.wire_bytes -= len;
        while let Some((front, credit)) = self.wire.front_mut() {
            let n = len.min(front.len());
            front.advance(n);
            len -= n;
            if !front.is_empty() {
                break;
            }
            queue.release(*credit);
            self.wire.pop_front();
        }
        Ok(())
    }
}

/// Where an accepted socket comes from (see [`TcpSocket::accepted`]).
#[derive(Debug)]
pub(crate) struct AcceptedFrom {
    pub server: ServerId,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub binary_type: BinaryType,
    /// The server's TLS config, for a secure server or a server-side `upgradeToSecure`.
    pub tls: Option<Arc<ServerConfig>>,
    /// The server is secure: handshake first, then `Connect`.
    pub secure: bool,
}

/// What was read and not yet delivered to the app, in order (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    items: VecDeque<Item>,
    /// Data bytes in `items`.
    bytes: usize,
    /// `Deliver` markers that came while the app had the socket suspended; queued again on
    /// `resume`.
    unscheduled: usize,
}

impl Inbox {
    /// Items it has room for without allocating.
    pub(crate) fn room(&self) -> usize {
        self.items.capacity()
    }
}

#[derive(Debug)]
enum Item {
    /// Plaintext for a `Data` event.
    Data(Bytes),
    /// The transport's FIN, read at this time.
    Eof(Instant),
    /// The peer's TLS close_notify, read at this time: its stream ends.
    NotifyEnd(Instant),
}

/// One `TCPSocket`: its attributes and state. Read it with [`Core::tcp`](crate::Core::tcp);
/// change it with the `Core::tcp_*` methods.
#[derive(Debug)]
pub struct TcpSocket {
    id: TcpId,
    phase: Phase,
    host: Host,
    port: u16,
    remote: Option<SocketAddr>,
    local: Option<SocketAddr>,
    queue: SendQueue,
    /// Allocated at the first read and kept: what was read and not yet delivered.
    inbox: Option<Box<Inbox>>,
    tls: Option<Box<Tls>>,
    /// The TLS side this socket would take: a client's own config (`None`: the default), or
    /// the config of the server that accepted it.
    tls_role: Option<Role>,
    suspended: u32,
    decoder: Utf8Decoder,
    binary_type: BinaryType,
    allow_half_open: bool,
    accepted: bool,
    /// `useSecureTransport` was asked for (so `ssl` is true before the session exists).
    secure: bool,
    /// What the I/O layer was last told by `SetReading`.
    reading: bool,
    /// The app's stream ended: TCP FIN, or close_notify under TLS.
    peer_fin: bool,
    /// The transport's FIN was read (it may wait in the inbox).
    eof_read: bool,
    /// The peer's close_notify was read (it may wait in the inbox).
    notify_read: bool,
    /// The transport's FIN was delivered: nothing more will come.
    eof_seen: bool,
    fin_sent: bool,
    /// A marker for the next write is in the output queue (see [`pump`](Self::pump)).
    write_queued: bool,
}

fn state_error(verb: &'static str, state: ReadyState) -> ApiError {
    ApiError::new(
        crate::DomException::InvalidStateError,
        format!(
            "{verb} needs readyState \"open\"; it is \"{}\"",
            state.as_str()
        ),
    )
}

impl TcpSocket {
    fn new(id: TcpId, phase: Phase, host: Host, port: u16, binary_type: BinaryType) -> Self {
        TcpSocket {
            id,
            phase,
            host,
            port,
            remote: None,
            local: None,
            queue: SendQueue::new(false),
            inbox: None,
            tls: None,
            tls_role: None,
            suspended: 0,
            decoder: Utf8Decoder::default(),
            binary_type,
            allow_half_open: false,
            accepted: false,
            secure: false,
            reading: false,
            peer_fin: false,
            eof_read: false,
            notify_read: false,
            eof_seen: false,
            fin_sent: false,
            write_queued: false,
        }
    }

    /// A client socket (`open`), connecting to `host:port`.
    pub(crate) fn connecting(
        id: TcpId,
        now: Instant,
        host: Host,
        port: u16,
        options: &TcpOptions,
        settings: SocketSettings,
        ctx: &mut Ctx,
    ) -> TcpSocket {
        let connecting = Connecting {
            resolving: false,
            candidates: ArrayVec::new(),
            started: 0,
            pending: 0,
            last_error: None,
            next_attempt_at: None,
            timeout_at: now + ctx.config.connect_timeout,
            local_ip: options.local_address,
            local_port: options.local_port.unwrap_or(0),
            no_delay: options.no_delay,
            keep_alive: options.keep_alive,
            settings,
            dns_query_type: options.dns_query_type,
            halfclose: false,
        };
        let phase = Phase::Connecting(Box::new(connecting));
        let mut socket = TcpSocket::new(id, phase, host, port, options.binary_type);
        socket.allow_half_open = options.allow_half_open;
        socket.secure = options.use_secure_transport;
        socket.tls_role = options.tls_config.clone().map(Role::Client);
        match &socket.host {
            Host::Ip(ip) => {
                // An IP literal needs no resolution: its one candidate starts at once.
                let ip = *ip;
                let _ = socket.resolved(now, Ok(vec![ip]), ctx);
            }
            Host::Name(name) => {
                let name = name.clone();
                if let Phase::Connecting(c) = &mut socket.phase {
                    c.resolving = true;
                }
                ctx.action(Action::Resolve {
                    id: id.into(),
                    name,
                });
            }
        }
        socket
    }

    /// A socket accepted by a server, with its addresses from the OS: `open` at once, or
    /// after the handshake when the server is secure (`secure` holds its config). `tls` is
    /// the server's config, also used by a server-side `upgrade_to_secure`.
    pub(crate) fn accepted(id: TcpId, from: AcceptedFrom, now: Instant, ctx: &mut Ctx) -> Self {
        let AcceptedFrom {
            server,
            local,
            remote,
            binary_type,
            tls,
            secure,
        } = from;
        let host = Host::Ip(remote.ip());
        let mut socket = TcpSocket::new(id, Phase::Open, host, remote.port(), binary_type);
        socket.remote = Some(remote);
        socket.local = Some(local);
        socket.accepted = true;
        socket.tls_role = tls.map(Role::Server);
        if secure {
            let securing = Securing {
                timeout_at: Some(now + ctx.config.connect_timeout),
                halfclose: false,
                announce: Announce::Connect(server),
            };
            socket.secure = true;
            socket.phase = Phase::Securing(Box::new(securing));
            socket.start_tls(0, ctx);
        }
        socket.settle(ctx);
        socket
    }

    // ---- attributes -------------------------------------------------------------------------

    /// `readyState`.
    pub fn ready_state(&self) -> ReadyState {
        match self.phase {
            Phase::Connecting(_) | Phase::Securing(_) => ReadyState::Connecting,
            Phase::Open => ReadyState::Open,
            Phase::HalfClosed => ReadyState::HalfClosed,
            Phase::Closing(_) | Phase::Closed { by_app: true } => ReadyState::Closing,
            Phase::Closed { by_app: false } => ReadyState::Closed,
        }
    }

    /// `host` as given to `open` (the peer's address for an accepted socket).
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// `port` / `remotePort`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `remoteAddress` with `remotePort`: the address actually connected (after `Open`).
    pub fn remote_address(&self) -> Option<SocketAddr> {
        self.remote
    }

    /// `localAddress` with `localPort` (after `Open`).
    pub fn local_address(&self) -> Option<SocketAddr> {
        self.local
    }

    /// `bufferedAmount`: bytes accepted by `send` whose bytes (under TLS: whose ciphertext)
    /// the OS has not yet taken.
    pub fn buffered_amount(&self) -> usize {
        self.queue.buffered()
    }

    /// `binaryType`.
    pub fn binary_type(&self) -> BinaryType {
        self.binary_type
    }

    /// `ssl`: TLS was asked for (`useSecureTransport`, a secure server, or `upgradeToSecure`,
    /// which sets it at once).
    pub fn ssl(&self) -> bool {
        self.secure
    }

    /// The application protocol agreed by ALPN (`TcpOptions::tls_config`'s `alpn`), once the
    /// handshake got that far.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.tls.as_ref().and_then(|t| t.engine.alpn_protocol())
    }

    /// The TLS version, cipher suite, key exchange group and the peer's certificates, once the
    /// handshake completed (`None` before, and on a socket without TLS).
    pub fn tls_info(&self) -> Option<crate::tls::TlsInfo> {
        self.tls.as_ref().and_then(|t| t.engine.info())
    }

    /// How many `suspend` calls are not yet matched by a `resume`.
    pub fn suspend_count(&self) -> u32 {
        self.suspended
    }

    /// The read interest the I/O layer was last told of.
    pub(crate) fn reading(&self) -> bool {
        self.reading
    }

    /// The socket's next timer.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Connecting(c) => Some(match c.next_attempt_at {
                Some(at) => at.min(c.timeout_at),
                None => c.timeout_at,
            }),
            Phase::Securing(s) => s.timeout_at,
            Phase::Closing(c) => Some(c.ask_at.map_or(c.deadline, |at| at.min(c.deadline))),
            _ => None,
        }
    }

    pub(crate) fn is_released(&self) -> bool {
        matches!(self.phase, Phase::Closed { .. })
    }

    /// The server whose `Connect` has not been fired yet for this socket, if any.
    pub(crate) fn unannounced(&self) -> Option<ServerId> {
        match &self.phase {
            Phase::Securing(s) => match s.announce {
                Announce::Connect(server) => Some(server),
                Announce::Open => None,
            },
            _ => None,
        }
    }

    // ---- app calls --------------------------------------------------------------------------

    /// `send(data)` ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket)).
    pub(crate) fn send(&mut self, data: Bytes, ctx: &mut Ctx) -> Result<bool, ApiError> {
        match self.phase {
            Phase::Open => {}
            _ => return Err(state_error("send()", self.ready_state())),
        }
        if self.queue.has_no_buffer() {
            if let Some(buffer) = ctx.send_buffer() {
                self.queue.adopt(buffer);
            }
        }
        let below = self.queue.push(data, (), &ctx.config)?;
        self.settle(ctx);
        Ok(below)
    }

    /// `close()`.
    pub(crate) fn close(&mut self, now: Instant, ctx: &mut Ctx) {
        match self.phase {
            Phase::Connecting(_) | Phase::Securing(_) => self.release(None, true, ctx),
            Phase::Open | Phase::HalfClosed => {
                // No Data after the call; what was read still counts for the closing handshake.
                for item in self.inbox.take().into_iter().flat_map(|inbox| inbox.items) {
                    match item {
                        Item::Data(_) => {}
                        Item::Eof(_) => self.eof_seen = true,
                        Item::NotifyEnd(_) => self.peer_fin = true,
                    }
                }
                self.decoder.reset();
                self.begin_closing(now, ctx);
                self.settle(ctx);
            }
            Phase::Closing(_) | Phase::Closed { .. } => {}
        }
    }

    /// `closeImmediately()`: discard the queue, release, `Close`.
    pub(crate) fn close_immediately(&mut self, ctx: &mut Ctx) {
        if !self.is_released() {
            self.release(None, true, ctx);
        }
    }

    /// `halfclose()` (W3C).
    pub(crate) fn halfclose(&mut self, now: Instant, ctx: &mut Ctx) {
        match &mut self.phase {
            Phase::Connecting(c) => c.halfclose = true,
            Phase::Securing(s) => s.halfclose = true,
            Phase::Open if self.peer_fin => {
                // Both directions are now ending: this is the closing handshake.
                self.begin_closing(now, ctx);
                self.settle(ctx);
            }
            Phase::Open => {
                self.phase = Phase::HalfClosed;
                self.settle(ctx);
            }
            Phase::HalfClosed | Phase::Closing(_) | Phase::Closed { .. } => {}
        }
    }

    /// `upgradeToSecure()` (Mozilla's STARTTLS): only in `open` and not half-closed by either
    /// side, whatever the internal phase (a `useSecureTransport` socket in its handshake reads
    /// `connecting`: `InvalidStateError`, as in Mozilla's code, where the state check comes
    /// first). `ssl` is true at once; see the module docs for the ordering rules. Plaintext
    /// read but not yet delivered fails the upgrade closed ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket), RFC 3207 §4.2).
    pub(crate) fn upgrade_to_secure(&mut self, ctx: &mut Ctx) -> Result<(), ApiError> {
        match self.phase {
            Phase::Open if !self.peer_fin => {}
            Phase::Open => {
                return Err(ApiError::state(
                    "upgradeToSecure() after the peer's FIN: no handshake is possible",
                ))
            }
            _ => return Err(state_error("upgradeToSecure()", self.ready_state())),
        }
        if self.tls.is_some() {
            return Ok(());
        }
        if self.accepted && self.tls_role.is_none() {
            return Err(ApiError::state(
                "upgradeToSecure() on an accepted socket needs a server with a TLS config",
            ));
        }
        self.secure = true;
        // What the app has seen stays seen. Anything read but not yet delivered (waiting in
        // the inbox, held while suspended, or the start of a character the decoder keeps) is
        // plaintext the peer sent past the STARTTLS point: it may be neither delivered nor
        // given to TLS, so the upgrade fails closed (CVE-2011-0411's class).
        let undelivered = self.inbox.as_ref().map_or(0, |i| i.bytes) + self.decoder.pending();
        if undelivered > 0 {
            self.inbox = None;
            self.decoder.reset();
            let e = SocketError::new(
                ErrorCode::ProtocolOther,
                format!(
                    "upgradeToSecure() was called with {undelivered} bytes of plaintext read \
                     but not yet delivered: the peer sent past the STARTTLS point (a plaintext \
                     injection, RFC 3207 §4.2); they are dropped and the upgrade fails closed"
                ),
            );
            self.fail(e, ctx);
            return Ok(());
        }
        // The bytes queued so far go out as plaintext; nothing sent later may join them.
        self.queue.seal();
        let plain = self.queue.buffered();
        self.start_tls(plain, ctx);
        self.settle(ctx);
        Ok(())
    }

    /// `suspend()`: counted; stops reading from the OS while the count is above 0.
    pub(crate) fn suspend(&mut self, ctx: &mut Ctx) {
        self.suspended = self.suspended.saturating_add(1);
        if !self.is_released() {
            self.settle(ctx);
        }
    }

    /// `resume()`: `InvalidStateError` if not suspended; at 0, what was read meanwhile is
    /// delivered as the app polls, before anything read later.
    pub(crate) fn resume(&mut self, ctx: &mut Ctx) -> Result<(), ApiError> {
        if self.suspended == 0 {
            return Err(ApiError::state("resume() without a matching suspend()"));
        }
        self.suspended -= 1;
        if self.suspended == 0 {
            if let Some(inbox) = self.inbox.as_deref_mut() {
                for _ in 0..std::mem::take(&mut inbox.unscheduled) {
                    ctx.deliver(self.id.into());
                }
            }
        }
        if !self.is_released() {
            self.settle(ctx);
        }
        Ok(())
    }

    /// A `Deliver` marker reached the front of the output queue: the next item read becomes
    /// its event, unless the app suspended the socket meanwhile.
    pub(crate) fn deliver_next(&mut self, ctx: &mut Ctx) {
        let Some(inbox) = self.inbox.as_deref_mut() else {
            return;
        };
        if inbox.items.is_empty() {
            return; // dropped by close() or a failure
        }
        if self.suspended > 0 {
            inbox.unscheduled += 1;
            return;
        }
        let item = inbox.items.pop_front();
        if inbox.items.is_empty() && inbox.unscheduled == 0 {
            // An idle socket holds no buffer (memory per socket); the next read reuses it.
            if let Some(mut emptied) = self.inbox.take() {
                emptied.bytes = 0;
                ctx.keep_inbox(emptied);
            }
        }
        match item {
            Some(Item::Data(data)) => {
                if let Some(inbox) = self.inbox.as_deref_mut() {
                    inbox.bytes -= data.len();
                }
                self.deliver(data, ctx);
            }
            Some(Item::Eof(at)) => self.transport_eof(at, ctx),
            Some(Item::NotifyEnd(at)) => self.stream_end(at, ctx),
            None => {}
        }
    }

    // ---- inputs -----------------------------------------------------------------------------

    pub(crate) fn resolved(
        &mut self,
        now: Instant,
        result: Result<Vec<IpAddr>, ResolveError>,
        ctx: &mut Ctx,
    ) -> Result<(), InputError> {
        let Phase::Connecting(c) = &mut self.phase else {
            return Err(self.unexpected("a resolution for a socket that is not connecting"));
        };
        if !c.resolving && !c.candidates.is_empty() {
            return Err(InputError::Unexpected(
                "a resolution that was not asked for",
            ));
        }
        c.resolving = false;
        let addrs = match result {
            Ok(addrs) if !addrs.is_empty() => addrs,
            Ok(_) | Err(ResolveError::NotFound) => {
                let e = SocketError::new(
                    ErrorCode::DomainNotFound,
                    format!("{} has no address", self.host),
                );
                self.release(Some(e), false, ctx);
                return Ok(());
            }
            Err(why) => {
                let e = SocketError::new(
                    ErrorCode::DomainNotFound,
                    format!("{} could not be resolved ({why:?})", self.host),
                );
                self.release(Some(e), false, ctx);
                return Ok(());
            }
        };
        let mut addrs = addrs;
        if let Some(family) = c.dns_query_type {
            addrs.retain(|&ip| family.admits(ip));
            if addrs.is_empty() {
                let e = SocketError::new(
                    ErrorCode::DomainNotFound,
                    format!("{} has no {} address", self.host, family.as_str()),
                );
                self.release(Some(e), false, ctx);
                return Ok(());
            }
        }
        c.candidates = candidates(&addrs, self.port, c.local_ip);
        if c.candidates.is_empty() {
            let e = SocketError::new(
                ErrorCode::Network,
                format!("{} has no address of the local address's family", self.host),
            );
            self.release(Some(e), false, ctx);
            return Ok(());
        }
        self.start_attempt(now, ctx);
        Ok(())
    }

    pub(crate) fn connected(
        &mut self,
        attempt: u8,
        local: SocketAddr,
        ctx: &mut Ctx,
    ) -> Result<(), InputError> {
        let c = self.attempt(attempt)?;
        let remote = c.candidates[attempt as usize];
        let others = c.pending & !(1 << attempt);
        let (halfclose, timeout_at) = (c.halfclose, c.timeout_at);
        for other in 0..MAX_CANDIDATES as u8 {
            if others & (1 << other) != 0 {
                ctx.action(Action::AbortConnect {
                    id: self.id,
                    attempt: other,
                });
            }
        }
        self.remote = Some(remote);
        self.local = Some(local);
        if self.secure {
            let securing = Securing {
                timeout_at: Some(timeout_at),
                halfclose,
                announce: Announce::Open,
            };
            self.phase = Phase::Securing(Box::new(securing));
            self.start_tls(0, ctx);
        } else {
            self.open(halfclose, ctx);
        }
        self.settle(ctx);
        Ok(())
    }

    pub(crate) fn connect_failed(
        &mut self,
        now: Instant,
        attempt: u8,
        error: io::ErrorKind,
        ctx: &mut Ctx,
    ) -> Result<(), InputError> {
        let c = self.attempt(attempt)?;
        c.pending &= !(1 << attempt);
        c.last_error = Some(error);
        if (c.started as usize) < c.candidates.len() {
            self.start_attempt(now, ctx);
        } else if c.pending == 0 {
            self.release(Some(SocketError::from_io(error)), false, ctx);
        }
        Ok(())
    }

    pub(crate) fn received(
        &mut self,
        now: Instant,
        data: Bytes,
        ctx: &mut Ctx,
    ) -> Result<(), InputError> {
        self.check_reading()?;
        if data.is_empty() {
            return Err(InputError::Unexpected(
                "an empty read; report the end of the stream as Input::Eof",
            ));
        }
        match self.phase {
            // Until our close_notify is out, TLS may still need what arrives (the rest of a
            // handshake); after it, nothing more can reach the app.
            Phase::Closing(_) if self.tls.as_ref().is_some_and(|t| !t.notify_sent) => {
                self.decrypt(now, data, ctx)
            }
            Phase::Closing(_) => {} // read and discard until the peer's FIN
            _ => {
                let held = self.inbox.as_ref().map_or(0, |i| i.bytes);
                if self.suspended > 0 && held + data.len() > ctx.config.max_held_bytes {
                    return Err(InputError::Unexpected(
                        "the I/O layer kept reading a suspended socket",
                    ));
                }
                if self.tls.is_some() {
                    self.decrypt(now, data, ctx);
                } else {
                    self.enqueue(Item::Data(data), ctx);
                }
            }
        }
        if !self.is_released() {
            self.settle(ctx);
        }
        Ok(())
    }

    pub(crate) fn eof_input(&mut self, now: Instant, ctx: &mut Ctx) -> Result<(), InputError> {
        self.check_reading()?;
        self.eof_read = true;
        match self.phase {
            // Behind the data read before it.
            Phase::Open | Phase::HalfClosed => {
                self.settle(ctx); // stop reading first
                self.enqueue(Item::Eof(now), ctx);
            }
            _ => self.transport_eof(now, ctx),
        }
        Ok(())
    }

    pub(crate) fn written(&mut self, len: usize, ctx: &mut Ctx) -> Result<(), InputError> {
        match self.phase {
            Phase::Securing(_) | Phase::Open | Phase::HalfClosed | Phase::Closing(_) => {}
            Phase::Connecting(_) => return Err(InputError::Unexpected("a write before open")),
            Phase::Closed { .. } => return Err(InputError::UnknownId),
        }
        match self.tls.as_deref_mut() {
            Some(tls) if !tls.sending_plain() => tls.written(len, &mut self.queue)?,
            tls => {
                self.queue.written(len)?;
                if let Some(tls) = tls {
                    tls.plain_before -= len.min(tls.plain_before);
                }
            }
        }
        self.settle(ctx);
        Ok(())
    }

    /// The answer to [`Action::QueryUnacked`] (see [`Closing`]).
    pub(crate) fn unacked(
        &mut self,
        now: Instant,
        bytes: Option<usize>,
        ctx: &mut Ctx,
    ) -> Result<(), InputError> {
        let c = match &mut self.phase {
            Phase::Closing(c) if c.asking => c,
            _ => return Err(self.unexpected("an Unacked answer to no QueryUnacked")),
        };
        c.asking = false;
        match bytes {
            Some(0) => {
                c.delivery = Delivery::Acknowledged;
                c.deadline = now + ctx.config.linger_timeout;
            }
            Some(_) => {
                c.ask_at = Some(now + c.backoff);
                c.backoff = (c.backoff * 2).min(ctx.config.unacked_poll_interval);
            }
            None => {
                c.delivery = Delivery::Unknowable;
                ctx.unacked_unknowable = true;
            }
        }
        self.settle(ctx);
        Ok(())
    }

    pub(crate) fn failed(&mut self, error: io::ErrorKind, ctx: &mut Ctx) -> Result<(), InputError> {
        match self.phase {
            Phase::Securing(_) | Phase::Open | Phase::HalfClosed | Phase::Closing(_) => {}
            Phase::Connecting(_) => {
                return Err(InputError::Unexpected(
                    "a failure while connecting; report it as Input::ConnectFailed",
                ))
            }
            Phase::Closed { .. } => return Err(InputError::UnknownId),
        }
        // Nothing received is lost: what was read goes out before the error (BEHAVIOUR §0),
        // even to a suspended app, since the socket ends here.
        for item in self.inbox.take().into_iter().flat_map(|inbox| inbox.items) {
            if let Item::Data(data) = item {
                self.deliver(data, ctx);
            }
        }
        self.flush_decoder(ctx);
        self.release(Some(SocketError::from_io(error)), false, ctx);
        Ok(())
    }

    pub(crate) fn timeout(&mut self, now: Instant, ctx: &mut Ctx) {
        match &mut self.phase {
            Phase::Connecting(c) => {
                if c.timeout_at <= now {
                    let e = SocketError::new(
                        ErrorCode::NetworkTimeout,
                        format!("no connection to {} within the connect timeout", self.host),
                    );
                    self.release(Some(e), false, ctx);
                } else if c.next_attempt_at.is_some_and(|at| at <= now) {
                    c.next_attempt_at = None;
                    self.start_attempt(now, ctx);
                }
            }
            Phase::Securing(s) if s.timeout_at.is_some_and(|at| at <= now) => {
                let e = SocketError::new(
                    ErrorCode::NetworkTimeout,
                    "the TLS handshake did not complete within the connect timeout",
                );
                self.release(Some(e), false, ctx);
            }
            Phase::Closing(c) if c.deadline <= now => {
                let why = match c.delivery {
                    // Linger over: the peer's TCP has all of it.
                    Delivery::Acknowledged => return self.release(None, false, ctx),
                    _ if !self.fin_sent => {
                        "the peer did not take the queued data within the close timeout"
                    }
                    Delivery::Pending => {
                        "the peer did not acknowledge all the data sent within the close timeout"
                    }
                    Delivery::Unknowable => {
                        "the peer did not close within the close timeout, and the I/O layer \
                         cannot tell whether it received all the data sent"
                    }
                };
                let e = SocketError::new(ErrorCode::NetworkTimeout, why);
                self.release(Some(e), false, ctx);
            }
            Phase::Closing(c) if c.ask_at.is_some_and(|at| at <= now) => {
                c.ask_at = None;
                self.settle(ctx);
            }
            _ => {}
        }
    }

    // ---- internals --------------------------------------------------------------------------

    fn unexpected(&self, why: &'static str) -> InputError {
        if self.is_released() {
            InputError::UnknownId
        } else {
            InputError::Unexpected(why)
        }
    }

    fn check_reading(&self) -> Result<(), InputError> {
        match self.phase {
            Phase::Closed { .. } => Err(InputError::UnknownId),
            Phase::Connecting(_) => Err(InputError::Unexpected("data before the socket opened")),
            _ if self.eof_read || self.eof_seen => Err(InputError::Unexpected(
                "data or end of stream after the end of the stream",
            )),
            _ if self.peer_fin && self.tls.is_none() => Err(InputError::Unexpected(
                "data or end of stream after the end of the stream",
            )),
            _ => Ok(()),
        }
    }

    fn attempt(&mut self, attempt: u8) -> Result<&mut Connecting, InputError> {
        match &mut self.phase {
            Phase::Connecting(c)
                if (attempt as usize) < MAX_CANDIDATES && c.pending & (1 << attempt) != 0 =>
            {
                Ok(c)
            }
            Phase::Closed { .. } => Err(InputError::UnknownId),
            _ => Err(InputError::Unexpected(
                "a connect result for no attempt in flight",
            )),
        }
    }

    fn start_attempt(&mut self, now: Instant, ctx: &mut Ctx) {
        let Phase::Connecting(c) = &mut self.phase else {
            return;
        };
        let attempt = c.started;
        let remote = c.candidates[attempt as usize];
        c.started += 1;
        c.pending |= 1 << attempt;
        let local = match (c.local_ip, c.local_port) {
            (None, 0) => None,
            (Some(ip), port) => Some(SocketAddr::new(ip, port)),
            (None, port) => Some(SocketAddr::new(unspecified(remote.ip()), port)),
        };
        // A fixed local port cannot be shared by racing attempts of one family: take turns.
        let race = c.local_port == 0 && (c.started as usize) < c.candidates.len();
        c.next_attempt_at = race.then(|| now + ctx.config.connection_attempt_delay);
        ctx.action(Action::Connect {
            id: self.id,
            attempt,
            remote,
            local,
            no_delay: c.no_delay,
            keep_alive: c.keep_alive,
            settings: c.settings,
        });
    }

    /// `open`: the connection (and its handshake, if secure) is established.
    fn open(&mut self, halfclose: bool, ctx: &mut Ctx) {
        let announce = match &self.phase {
            Phase::Securing(s) => s.announce,
            _ => Announce::Open,
        };
        self.phase = Phase::Open;
        ctx.event(match announce {
            Announce::Open => Event::Open { id: self.id.into() },
            Announce::Connect(server) => Event::Connect {
                server,
                socket: self.id,
            },
        });
        if halfclose {
            self.phase = Phase::HalfClosed;
        }
    }

    /// Starts the TLS session; `plain_before` bytes of the queue still go out as plaintext.
    fn start_tls(&mut self, plain_before: usize, ctx: &mut Ctx) {
        let role = match &self.tls_role {
            Some(role) => role.clone(),
            None => match ctx.default_client_config() {
                Ok(config) => Role::Client(config),
                Err(e) => return self.fail(e, ctx),
            },
        };
        match tls::start(&role, &self.host) {
            Ok(engine) => {
                let mut session = Tls {
                    engine,
                    plain_before,
                    wire: VecDeque::new(),
                    wire_bytes: 0,
                    handed: 0,
                    in_flight: 0,
                    notify_sent: false,
                };
                session.collect(0);
                self.tls = Some(Box::new(session));
            }
            Err(e) => self.fail(e, ctx),
        }
    }

    /// Ciphertext from the peer: through TLS, then like plaintext.
    fn decrypt(&mut self, now: Instant, data: Bytes, ctx: &mut Ctx) {
        let Some(tls) = self.tls.as_deref_mut() else {
            return self.deliver(data, ctx);
        };
        let mut plaintext = Vec::new();
        let result = tls.engine.receive(data, &mut plaintext, &mut ctx.blocks);
        tls.collect(0);
        let handshaken = !tls.engine.is_handshaking();
        let closed = tls.engine.peer_closed();
        if let Err(e) = result {
            return self.fail(e, ctx);
        }
        if handshaken {
            if let Phase::Securing(s) = &self.phase {
                let halfclose = s.halfclose;
                self.open(halfclose, ctx);
            }
        }
        let closing = matches!(self.phase, Phase::Closing(_));
        for chunk in plaintext {
            if !closing {
                self.enqueue(Item::Data(chunk), ctx);
            } // after close(): no more Data
        }
        if closed && !self.notify_read {
            self.notify_read = true;
            if closing {
                self.stream_end(now, ctx);
            } else {
                self.enqueue(Item::NotifyEnd(now), ctx);
            }
        }
    }

    /// Puts what was read behind what came before it, with its `Deliver` marker.
    fn enqueue(&mut self, item: Item, ctx: &mut Ctx) {
        let inbox = self.inbox.get_or_insert_with(|| ctx.inbox());
        if let Item::Data(data) = &item {
            inbox.bytes += data.len();
        }
        inbox.items.push_back(item);
        ctx.deliver(self.id.into());
    }

    fn deliver(&mut self, data: Bytes, ctx: &mut Ctx) {
        let data = match self.binary_type {
            BinaryType::ArrayBuffer => Data::Bytes(data),
            BinaryType::String => match self.decoder.decode(data) {
                Some(text) => Data::Text(text),
                None => return,
            },
        };
        ctx.event(Event::Data { id: self.id, data });
    }

    fn flush_decoder(&mut self, ctx: &mut Ctx) {
        if let Some(text) = self.decoder.finish() {
            ctx.event(Event::Data {
                id: self.id,
                data: Data::Text(text),
            });
        }
    }

    /// The transport's FIN, once the app may see it.
    fn transport_eof(&mut self, now: Instant, ctx: &mut Ctx) {
        self.eof_seen = true;
        let tls_unfinished = self
            .tls
            .as_ref()
            .map(|t| (t.engine.is_handshaking(), t.engine.peer_closed()));
        match (&self.phase, tls_unfinished) {
            (Phase::Securing(_), _) | (Phase::Open | Phase::HalfClosed, Some((true, _))) => {
                let e = SocketError::new(
                    ErrorCode::ProtocolOther,
                    "the peer closed the connection during the TLS handshake",
                );
                self.fail(e, ctx);
            }
            (Phase::Open | Phase::HalfClosed, Some((false, false))) => {
                self.flush_decoder(ctx);
                let e = SocketError::new(
                    ErrorCode::ProtocolOther,
                    "the peer closed the connection without TLS close_notify: data may be truncated",
                );
                self.fail(e, ctx);
            }
            _ if !self.peer_fin => self.stream_end(now, ctx),
            _ => self.settle(ctx),
        }
    }

    /// The end of the peer's stream: TCP FIN, or close_notify under TLS.
    fn stream_end(&mut self, now: Instant, ctx: &mut Ctx) {
        self.peer_fin = true;
        match self.phase {
            Phase::Open if self.allow_half_open => {
                self.flush_decoder(ctx);
                ctx.event(Event::HalfClose { id: self.id });
            }
            Phase::Open | Phase::HalfClosed => {
                self.flush_decoder(ctx);
                self.begin_closing(now, ctx);
            }
            _ => {}
        }
        self.settle(ctx);
    }

    fn begin_closing(&mut self, now: Instant, ctx: &Ctx) {
        self.phase = Phase::Closing(Box::new(Closing {
            deadline: now + ctx.config.close_timeout,
            delivery: if ctx.unacked_unknowable {
                Delivery::Unknowable
            } else {
                Delivery::Pending
            },
            asking: false,
            ask_at: None,
            backoff: FIRST_UNACKED_POLL.min(ctx.config.unacked_poll_interval),
        }));
    }

    /// Asks for the next write, if one can be handed out: it is, when the app polls as far as
    /// this ([`write_next`](Self::write_next)), so that it takes what is queued by then.
    #[inline]
    fn pump(&mut self, ctx: &mut Ctx) {
        let can = match self.tls.as_deref() {
            Some(tls) if !tls.sending_plain() => {
                tls.in_flight == 0
                    && (!tls.wire.is_empty() || Self::encrypting(tls) && !self.queue.is_empty())
            }
            _ => !self.queue.writing() && !self.queue.is_empty(),
        };
        if can && !self.write_queued {
            self.write_queued = true;
            ctx.write_due(self.id);
        }
    }

    /// The session takes plaintext for encryption.
    fn encrypting(tls: &Tls) -> bool {
        !tls.engine.is_handshaking() && !tls.notify_sent
    }

    /// The marker of [`pump`](Self::pump) was polled: hands the next write to the I/O layer,
    /// plaintext from the queue, or TLS records (encrypting more of the queue once the
    /// handshake is done, and close_notify when it is due).
    pub(crate) fn write_next(&mut self, ctx: &mut Ctx) {
        self.write_queued = false;
        let writable = matches!(
            self.phase,
            Phase::Securing(_) | Phase::Open | Phase::HalfClosed | Phase::Closing(_)
        );
        if !writable {
            return;
        }
        let tls = match self.tls.as_deref_mut() {
            Some(tls) if !tls.sending_plain() => tls,
            _ => {
                if let Some((data, ())) = self.queue.next_write() {
                    ctx.action(Action::Write { id: self.id, data });
                }
                return;
            }
        };
        if tls.in_flight > 0 {
            return;
        }
        if Self::encrypting(tls) {
            while tls.wire_bytes < TLS_WIRE_TARGET {
                let Some(chunk) = self.queue.take_front(TLS_WIRE_TARGET) else {
                    break;
                };
                if let Err(e) = tls.engine.encrypt(&chunk) {
                    return self.fail(e, ctx);
                }
                tls.collect(chunk.len());
            }
        }
        self.close_notify_if_due();
        let Some(tls) = self.tls.as_deref_mut() else {
            return;
        };
        // Records that release credit without bytes (none in practice) are settled here.
        while let Some((front, credit)) = tls.wire.front() {
            if !front.is_empty() {
                break;
            }
            self.queue.release(*credit);
            tls.wire.pop_front();
        }
        match tls.next_write() {
            Some(data) => ctx.action(Action::Write { id: self.id, data }),
            None => self.settle(ctx), // credit released: Drain or FIN may be due
        }
    }

    /// Queues TLS close_notify once the app's stream ends (`close()`, `halfclose()`) and all
    /// its plaintext is encrypted: behind the last record, in the same write when that one is
    /// not out yet. An armed `Drain` fires first, once everything is written ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket)
    /// close: flush, `Drain`, close_notify, FIN).
    #[inline]
    fn close_notify_if_due(&mut self) {
        let fin_due = matches!(self.phase, Phase::HalfClosed | Phase::Closing(_));
        let Some(tls) = self.tls.as_deref_mut() else {
            return;
        };
        let drained = !self.queue.drain_armed() && self.queue.is_empty();
        if fin_due && !self.fin_sent && drained && Self::encrypting(tls) && !tls.sending_plain() {
            tls.notify_sent = true;
            tls.engine.close_notify();
            tls.collect(0);
        }
    }

    /// Nothing of ours is waiting: no plaintext, no TLS record.
    #[inline]
    fn flushed(&self) -> bool {
        self.queue.buffered() == 0 && self.tls.as_ref().is_none_or(|t| t.wire.is_empty())
    }

    /// Derives the follow-up work from the state (see the module docs).
    fn settle(&mut self, ctx: &mut Ctx) {
        if let Some(buffer) = self.queue.give_back() {
            ctx.keep_send_buffer(buffer);
        }
        let writable = matches!(
            self.phase,
            Phase::Securing(_) | Phase::Open | Phase::HalfClosed | Phase::Closing(_)
        );
        if writable {
            if self.flushed() && self.queue.take_drain() {
                ctx.event(Event::Drain { id: self.id.into() });
            }
            self.close_notify_if_due();
            self.pump(ctx);
            let fin_due = matches!(self.phase, Phase::HalfClosed | Phase::Closing(_));
            let tls_done = self
                .tls
                .as_ref()
                .is_none_or(|t| t.notify_sent || t.sending_plain());
            if fin_due && !self.fin_sent && self.flushed() && tls_done {
                self.fin_sent = true;
                ctx.action(Action::Shutdown { id: self.id });
            }
            if let (Phase::Closing(c), true) = (&mut self.phase, self.fin_sent) {
                // The release needs the peer's TCP to have everything (or, when the I/O layer
                // cannot tell, the peer's FIN) and the peer's FIN (or the linger's end).
                match c.delivery {
                    Delivery::Acknowledged | Delivery::Unknowable if self.eof_seen => {
                        self.release(None, false, ctx);
                        return;
                    }
                    Delivery::Pending if !c.asking && c.ask_at.is_none() => {
                        c.asking = true;
                        ctx.action(Action::QueryUnacked { id: self.id });
                    }
                    _ => {}
                }
            }
        }
        let want = match self.phase {
            Phase::Open | Phase::HalfClosed => {
                !self.eof_read && !self.notify_read && !self.peer_fin && self.suspended == 0
            }
            Phase::Securing(_) | Phase::Closing(_) => !self.eof_read,
            Phase::Connecting(_) | Phase::Closed { .. } => false,
        };
        if self.eof_read {
            // The I/O layer stops reading by itself once it reported the FIN.
            self.reading = false;
        }
        if want != self.reading && !self.is_released() {
            self.reading = want;
            ctx.action(Action::SetReading {
                id: self.id.into(),
                enabled: want,
            });
        }
    }

    /// A failure of the connection or its TLS: `Error`, then `Close` ([BEHAVIOUR §0](crate::behaviour#0-everywhere)). A socket
    /// a secure server has not announced yet reports it on the server instead.
    fn fail(&mut self, error: SocketError, ctx: &mut Ctx) {
        self.release(Some(error), false, ctx);
    }

    /// The end: `Release`, then `Error` (if any), then `Close`.
    fn release(&mut self, error: Option<SocketError>, by_app: bool, ctx: &mut Ctx) {
        let unannounced = self.unannounced();
        self.phase = Phase::Closed { by_app };
        self.queue.clear();
        self.inbox = None;
        self.tls = None;
        self.reading = false;
        match unannounced {
            // The app never saw this id: the server reports that it could not serve it.
            Some(server) => {
                ctx.release(self.id.into());
                if let Some(error) = error {
                    ctx.event(Event::Error {
                        id: server.into(),
                        error,
                    });
                }
                ctx.forget_unannounced(self.id);
            }
            None => ctx.end(self.id.into(), error),
        }
    }
}

fn unspecified(like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    }
}

/// RFC 8305 §4: the resolver's order, families interleaved starting with the first address's
/// family, duplicates dropped, only the local address's family when one is set.
fn candidates(
    addrs: &[IpAddr],
    port: u16,
    local: Option<IpAddr>,
) -> ArrayVec<SocketAddr, MAX_CANDIDATES> {
    let usable = |ip: &&IpAddr| local.is_none_or(|l| l.is_ipv4() == ip.is_ipv4());
    let mut first_family: Vec<&IpAddr> = Vec::new();
    let mut other_family: Vec<&IpAddr> = Vec::new();
    let mut seen = Vec::new();
    for ip in addrs.iter().filter(usable) {
        if seen.contains(ip) {
            continue;
        }
        seen.push(*ip);
        match first_family.first() {
            None => first_family.push(ip),
            Some(f) if f.is_ipv4() == ip.is_ipv4() => first_family.push(ip),
            Some(_) => other_family.push(ip),
        }
    }
    let mut out = ArrayVec::new();
    let mut a = first_family.into_iter();
    let mut b = other_family.into_iter();
    loop {
        let (x, y) = (a.next(), b.next());
        if x.is_none() && y.is_none() {
            break;
        }
        for ip in [x, y].into_iter().flatten() {
            if out.try_push(SocketAddr::new(*ip, port)).is_err() {
                return out;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod tls_tests;

#[cfg(test)]
mod starttls_tests;

#[cfg(test)]
mod pair_tests;
