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

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bytes::Bytes;

use crate::core::Ctx;
use crate::error::{ApiError, ErrorCode, InputError, SocketError};
use crate::host::Host;
use crate::id::TcpId;
use crate::io::{Action, Event, ResolveError};
use crate::payload::BinaryType;
use crate::queue::SendQueue;
use crate::text::Utf8Decoder;
use crate::tls::Role;

mod attributes;
mod closing;
mod connect;
mod inbox;
mod options;
mod tls_session;
mod write;

pub use self::attributes::ReadyState;
use self::closing::{Closing, Delivery};
pub(crate) use self::connect::AcceptedFrom;
pub use self::connect::MAX_CANDIDATES;
use self::connect::{candidates, Connecting};
pub(crate) use self::inbox::Inbox;
use self::inbox::Item;
pub use self::options::{DnsQueryType, TcpOptions, MAX_KEEP_ALIVE_DELAY, MIN_KEEP_ALIVE_DELAY};
use self::tls_session::{Announce, Securing, Tls};

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
            queue: SendQueue::new(),
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

#[cfg(test)]
mod tests;

#[cfg(test)]
mod tls_tests;

#[cfg(test)]
mod starttls_tests;

#[cfg(test)]
mod pair_tests;
