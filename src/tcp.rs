//! The `TCPSocket` state machine (BEHAVIOUR §1).
//!
//! Internal phases and the `readyState` each reports:
//!
//! | phase          | readyState   | meaning                                                   |
//! |----------------|--------------|-----------------------------------------------------------|
//! | `Connecting`   | `connecting` | resolving, or connect attempts racing (RFC 8305)          |
//! | `Open`         | `open`       | established (the peer may have half-closed, `allowHalfOpen`) |
//! | `HalfClosed`   | `halfclosed` | `halfclose()` called: flush, then FIN; still receiving    |
//! | `Closing`      | `closing`    | `close()` or peer FIN: flush, `Drain`, FIN, then linger until the peer's FIN |
//! | `Closed`       | `closed` (`closing` when the app ended it) | `Release` and `Close` queued; the slot is freed when `Close` is delivered |
//!
//! Every transition, stimulus by stimulus (the methods below hold one `match` each):
//!
//! | stimulus            | Connecting | Open | HalfClosed | Closing | Closed |
//! |---------------------|------------|------|------------|---------|--------|
//! | `send`              | `InvalidStateError` | queue, write | `InvalidStateError` | `InvalidStateError` | `InvalidStateError` |
//! | `close`             | `Release`, `Close` | → Closing | → Closing | nothing | nothing |
//! | `close_immediately` | `Release`, `Close` | discard, `Release`, `Close` | same | same | nothing |
//! | `halfclose`         | FIN after connect | → HalfClosed | nothing | nothing | nothing |
//! | `suspend`/`resume`  | counted | counted, read interest | same | counted (still discarding) | counted |
//! | `Resolved`          | start attempts / `DomainNotFoundError` | input error | … | … | unknown id |
//! | `Connected`         | → Open (`Open`), abort the others | input error | … | … | unknown id |
//! | `ConnectFailed`     | next attempt / error of the last | input error | … | … | unknown id |
//! | `Received`          | input error | `Data` (held while suspended) | `Data` | discarded | unknown id |
//! | `Eof`               | input error | `HalfClose`, or → Closing | → Closing | FIN seen | unknown id |
//! | `Written`           | input error | next write, `Drain` | + FIN when empty | + FIN, linger | unknown id |
//! | `Failed`            | input error | `Error`, `Close` | same | same | unknown id |
//! | timer               | next attempt / `NetworkTimeoutError` | – | – | close timeout → `NetworkTimeoutError`; linger → `Close` | – |
//!
//! After each stimulus, [`TcpSocket::settle`] derives the follow-up work from the state: the next
//! write, the FIN once the queue is empty, the release once both FINs are through, and the read
//! interest.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use arrayvec::ArrayVec;
use bytes::Bytes;

use crate::core::Ctx;
use crate::error::{ApiError, ErrorCode, InputError, SocketError};
use crate::host::Host;
use crate::id::TcpId;
use crate::io::{Action, Event, ResolveError};
use crate::payload::{BinaryType, Data};
use crate::queue::{Progress, SendQueue};
use crate::text::Utf8Decoder;

/// Most addresses one `open` tries (RFC 8305 candidates), in the order they are tried.
pub const MAX_CANDIDATES: usize = 16;

/// Options of `TCPSocket.open` (the W3C `TCPOptions` plus Mozilla's and Node's).
///
/// ```
/// use sockstate::{BinaryType, TcpOptions};
/// let options = TcpOptions { binary_type: BinaryType::ArrayBuffer, ..TcpOptions::default() };
/// assert!(options.no_delay);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpOptions {
    /// `localAddress`: bind to this address first (only addresses of its family are tried).
    pub local_address: Option<IpAddr>,
    /// `localPort`: bind to this port first (0 or `None`: ephemeral). With a fixed port,
    /// attempts run one at a time instead of racing.
    pub local_port: Option<u16>,
    /// `binaryType` of received data.
    pub binary_type: BinaryType,
    /// `TCP_NODELAY` (default `true`, as the W3C draft).
    pub no_delay: bool,
    /// TCP keep-alive with this idle time (default off).
    pub keep_alive: Option<Duration>,
    /// Keep the socket writable after the peer's FIN and fire `HalfClose` (default `false`:
    /// the peer's FIN closes the socket once the queue is flushed).
    pub allow_half_open: bool,
}

impl Default for TcpOptions {
    fn default() -> Self {
        TcpOptions {
            local_address: None,
            local_port: None,
            binary_type: BinaryType::String,
            no_delay: true,
            keep_alive: None,
            allow_half_open: false,
        }
    }
}

/// The spec's `readyState`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ReadyState {
    /// `"connecting"` (TCP) or `"opening"` (server, UDP).
    Connecting,
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
    /// The spec's string for a `TCPSocket`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadyState::Connecting => "connecting",
            ReadyState::Open => "open",
            ReadyState::HalfClosed => "halfclosed",
            ReadyState::Closing => "closing",
            ReadyState::Closed => "closed",
        }
    }

    /// The spec's string for a `TCPServerSocket` or `UDPSocket`: as [`as_str`](Self::as_str),
    /// but `Connecting` is their first state, `"opening"`.
    pub fn as_opening_str(self) -> &'static str {
        match self {
            ReadyState::Connecting => "opening",
            other => other.as_str(),
        }
    }
}

#[derive(Debug)]
enum Phase {
    Connecting(Box<Connecting>),
    Open,
    HalfClosed,
    Closing,
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
    halfclose: bool,
}

/// Data read while the app had the socket suspended, delivered on `resume`.
#[derive(Debug, Default)]
struct Held {
    chunks: VecDeque<Bytes>,
    bytes: usize,
    eof: bool,
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
    held: Option<Box<Held>>,
    /// Close timeout or linger (connect timers live in `Connecting`).
    deadline: Option<Instant>,
    suspended: u32,
    decoder: Utf8Decoder,
    binary_type: BinaryType,
    allow_half_open: bool,
    /// What the I/O layer was last told by `SetReading`.
    reading: bool,
    peer_fin: bool,
    fin_sent: bool,
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
    /// A client socket (`open`), connecting to `host:port`.
    pub(crate) fn connecting(
        id: TcpId,
        now: Instant,
        host: Host,
        port: u16,
        options: &TcpOptions,
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
            halfclose: false,
        };
        let mut socket = TcpSocket {
            id,
            phase: Phase::Connecting(Box::new(connecting)),
            host,
            port,
            remote: None,
            local: None,
            queue: SendQueue::new(false),
            held: None,
            deadline: None,
            suspended: 0,
            decoder: Utf8Decoder::default(),
            binary_type: options.binary_type,
            allow_half_open: options.allow_half_open,
            reading: false,
            peer_fin: false,
            fin_sent: false,
        };
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
                ctx.action(Action::Resolve { id, name });
            }
        }
        socket
    }

    /// A socket accepted by a server: already open, with its addresses from the OS.
    pub(crate) fn accepted(
        id: TcpId,
        local: SocketAddr,
        remote: SocketAddr,
        binary_type: BinaryType,
        ctx: &mut Ctx,
    ) -> TcpSocket {
        let mut socket = TcpSocket {
            id,
            phase: Phase::Open,
            host: Host::Ip(remote.ip()),
            port: remote.port(),
            remote: Some(remote),
            local: Some(local),
            queue: SendQueue::new(false),
            held: None,
            deadline: None,
            suspended: 0,
            decoder: Utf8Decoder::default(),
            binary_type,
            allow_half_open: false,
            reading: false,
            peer_fin: false,
            fin_sent: false,
        };
        socket.settle(None, ctx);
        socket
    }

    // ---- attributes -------------------------------------------------------------------------

    /// `readyState`.
    pub fn ready_state(&self) -> ReadyState {
        match self.phase {
            Phase::Connecting(_) => ReadyState::Connecting,
            Phase::Open => ReadyState::Open,
            Phase::HalfClosed => ReadyState::HalfClosed,
            Phase::Closing | Phase::Closed { by_app: true } => ReadyState::Closing,
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

    /// `bufferedAmount`: bytes accepted by `send` that the OS has not yet taken.
    pub fn buffered_amount(&self) -> usize {
        self.queue.buffered()
    }

    /// `binaryType`.
    pub fn binary_type(&self) -> BinaryType {
        self.binary_type
    }

    /// `ssl`: whether the socket uses TLS.
    pub fn ssl(&self) -> bool {
        false
    }

    /// How many `suspend` calls are not yet matched by a `resume`.
    pub fn suspend_count(&self) -> u32 {
        self.suspended
    }

    /// The socket's next timer.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Connecting(c) => Some(match c.next_attempt_at {
                Some(at) => at.min(c.timeout_at),
                None => c.timeout_at,
            }),
            _ => self.deadline,
        }
    }

    pub(crate) fn is_released(&self) -> bool {
        matches!(self.phase, Phase::Closed { .. })
    }

    // ---- app calls --------------------------------------------------------------------------

    /// `send(data)` (BEHAVIOUR §1).
    pub(crate) fn send(&mut self, data: Bytes, ctx: &mut Ctx) -> Result<bool, ApiError> {
        match self.phase {
            Phase::Open => {}
            _ => return Err(state_error("send()", self.ready_state())),
        }
        let below = self.queue.push(data, (), &ctx.config)?;
        self.settle(None, ctx);
        Ok(below)
    }

    /// `close()`.
    pub(crate) fn close(&mut self, now: Instant, ctx: &mut Ctx) {
        match self.phase {
            Phase::Connecting(_) => self.release(None, true, ctx),
            Phase::Open | Phase::HalfClosed => {
                self.held = None;
                self.decoder.reset();
                self.begin_closing(now, ctx);
                self.settle(Some(now), ctx);
            }
            Phase::Closing | Phase::Closed { .. } => {}
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
            Phase::Open if self.peer_fin => {
                // Both directions are now ending: this is the closing handshake.
                self.begin_closing(now, ctx);
                self.settle(Some(now), ctx);
            }
            Phase::Open => {
                self.phase = Phase::HalfClosed;
                self.settle(Some(now), ctx);
            }
            Phase::HalfClosed | Phase::Closing | Phase::Closed { .. } => {}
        }
    }

    /// `suspend()`: counted; stops reading from the OS while the count is above 0.
    pub(crate) fn suspend(&mut self, ctx: &mut Ctx) {
        self.suspended = self.suspended.saturating_add(1);
        if !self.is_released() {
            self.settle(None, ctx);
        }
    }

    /// `resume()`: `InvalidStateError` if not suspended; at 0, held data is delivered first.
    pub(crate) fn resume(&mut self, now: Instant, ctx: &mut Ctx) -> Result<(), ApiError> {
        if self.suspended == 0 {
            return Err(ApiError::state("resume() without a matching suspend()"));
        }
        self.suspended -= 1;
        if self.suspended == 0 && matches!(self.phase, Phase::Open | Phase::HalfClosed) {
            if let Some(held) = self.held.take() {
                for chunk in held.chunks {
                    self.deliver(chunk, ctx);
                }
                if held.eof {
                    self.eof(now, ctx);
                    return Ok(());
                }
            }
        }
        if !self.is_released() {
            self.settle(Some(now), ctx);
        }
        Ok(())
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
        let halfclose = c.halfclose;
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
        self.phase = Phase::Open;
        ctx.event(Event::Open { id: self.id.into() });
        if halfclose {
            self.phase = Phase::HalfClosed;
        }
        self.settle(None, ctx);
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

    pub(crate) fn received(&mut self, data: Bytes, ctx: &mut Ctx) -> Result<(), InputError> {
        self.check_reading()?;
        if data.is_empty() {
            return Err(InputError::Unexpected(
                "an empty read; report the end of the stream as Input::Eof",
            ));
        }
        match self.phase {
            Phase::Closing => Ok(()), // read and discard until the peer's FIN
            _ if self.suspended > 0 || self.held.is_some() => {
                let held = self.held.get_or_insert_with(Default::default);
                if held.bytes + data.len() > ctx.config.max_held_bytes {
                    if held.chunks.is_empty() {
                        self.held = None;
                    }
                    return Err(InputError::Unexpected(
                        "the I/O layer kept reading a suspended socket",
                    ));
                }
                held.bytes += data.len();
                held.chunks.push_back(data);
                Ok(())
            }
            _ => {
                self.deliver(data, ctx);
                Ok(())
            }
        }
    }

    pub(crate) fn eof_input(&mut self, now: Instant, ctx: &mut Ctx) -> Result<(), InputError> {
        self.check_reading()?;
        if let Some(held) = &mut self.held {
            if held.eof {
                return Err(InputError::Unexpected("a second end of stream"));
            }
        }
        if matches!(self.phase, Phase::Open | Phase::HalfClosed)
            && (self.suspended > 0 || self.held.is_some())
        {
            self.held.get_or_insert_with(Default::default).eof = true;
            return Ok(());
        }
        self.eof(now, ctx);
        Ok(())
    }

    pub(crate) fn written(
        &mut self,
        now: Instant,
        len: usize,
        ctx: &mut Ctx,
    ) -> Result<(), InputError> {
        match self.phase {
            Phase::Open | Phase::HalfClosed | Phase::Closing => {}
            Phase::Connecting(_) => return Err(InputError::Unexpected("a write before open")),
            Phase::Closed { .. } => return Err(InputError::UnknownId),
        }
        if let Progress::Empty { drain: true } = self.queue.written(len)? {
            ctx.event(Event::Drain { id: self.id.into() });
        }
        self.settle(Some(now), ctx);
        Ok(())
    }

    pub(crate) fn failed(&mut self, error: io::ErrorKind, ctx: &mut Ctx) -> Result<(), InputError> {
        match self.phase {
            Phase::Open | Phase::HalfClosed | Phase::Closing => {}
            Phase::Connecting(_) => {
                return Err(InputError::Unexpected(
                    "a failure while connecting; report it as Input::ConnectFailed",
                ))
            }
            Phase::Closed { .. } => return Err(InputError::UnknownId),
        }
        // Nothing received is lost: held data goes out before the error (BEHAVIOUR §0).
        if let Some(held) = self.held.take() {
            for chunk in held.chunks {
                self.deliver(chunk, ctx);
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
            Phase::Closing if self.deadline.is_some_and(|at| at <= now) => {
                self.deadline = None;
                if self.fin_sent {
                    self.release(None, false, ctx); // linger over: our data is with the OS
                } else {
                    let e = SocketError::new(
                        ErrorCode::NetworkTimeout,
                        "the peer did not take the queued data within the close timeout",
                    );
                    self.release(Some(e), false, ctx);
                }
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
            _ if self.peer_fin || self.held.as_ref().is_some_and(|h| h.eof) => Err(
                InputError::Unexpected("data or end of stream after the end of the stream"),
            ),
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
        });
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

    /// The peer's FIN, once the app may see it.
    fn eof(&mut self, now: Instant, ctx: &mut Ctx) {
        self.peer_fin = true;
        self.held = None;
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
        self.settle(Some(now), ctx);
    }

    fn begin_closing(&mut self, now: Instant, ctx: &Ctx) {
        self.phase = Phase::Closing;
        self.deadline = Some(if self.fin_sent {
            now + ctx.config.linger_timeout
        } else {
            now + ctx.config.close_timeout
        });
    }

    /// Derives the follow-up work from the state (see the module docs).
    fn settle(&mut self, now: Option<Instant>, ctx: &mut Ctx) {
        if matches!(self.phase, Phase::Open | Phase::HalfClosed | Phase::Closing) {
            if let Some((data, ())) = self.queue.next_write() {
                ctx.action(Action::Write { id: self.id, data });
            }
            let fin_due = matches!(self.phase, Phase::HalfClosed | Phase::Closing);
            if fin_due && !self.fin_sent && self.queue.is_empty() {
                self.fin_sent = true;
                ctx.action(Action::Shutdown { id: self.id });
                // Linger from now. Calls without a clock (`send`, `suspend`) never reach this
                // in `Closing`; if one did, the close deadline already set would bound it.
                if let (Phase::Closing, Some(now)) = (&self.phase, now) {
                    self.deadline = Some(now + ctx.config.linger_timeout);
                }
            }
            if self.fin_sent && self.peer_fin {
                self.release(None, false, ctx);
                return;
            }
        }
        let want = match self.phase {
            Phase::Open | Phase::HalfClosed => !self.peer_fin && self.suspended == 0,
            Phase::Closing => !self.peer_fin,
            Phase::Connecting(_) | Phase::Closed { .. } => false,
        };
        if want != self.reading && !self.is_released() {
            self.reading = want;
            ctx.action(Action::SetReading {
                id: self.id.into(),
                enabled: want,
            });
        }
    }

    /// The end: `Release`, then `Error` (if any), then `Close`.
    fn release(&mut self, error: Option<SocketError>, by_app: bool, ctx: &mut Ctx) {
        self.phase = Phase::Closed { by_app };
        self.queue.clear();
        self.held = None;
        self.deadline = None;
        self.reading = false;
        ctx.action(Action::Release { id: self.id.into() });
        if let Some(error) = error {
            ctx.event(Event::Error {
                id: self.id.into(),
                error,
            });
        }
        ctx.event(Event::Close { id: self.id.into() });
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
