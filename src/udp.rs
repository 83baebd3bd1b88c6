//! The `UDPSocket` state machine ([BEHAVIOUR §3](crate::behaviour#3-udpsocket)).
//!
//! Internal phases and the `readyState` each reports:
//!
//! | phase     | readyState | meaning                                                          |
//! |-----------|------------|------------------------------------------------------------------|
//! | `Resolving` | `opening` | `Resolve` asked for a `remote_host` name, no answer yet; group calls are recorded |
//! | `Opening` | `opening`  | `Bind` asked of the I/O layer, no answer yet; group calls are recorded |
//! | `Open`    | `open`     | bound: sending, receiving while not suspended                     |
//! | `Closing` | `closing`  | `close()` with datagrams queued: they are still sent, nothing is received |
//! | `Closed`  | `closed`   | `Release` and `Close` queued; the slot is freed when `Close` is delivered |
//!
//! Every transition, stimulus by stimulus:
//!
//! | stimulus          | Resolving | Opening | Open | Closing | Closed |
//! |-------------------|-----------|---------|------|---------|--------|
//! | `Resolved`        | usable address: `Bind` (→ Opening); none: `Release`, `Error` (`DomainNotFoundError`), `Close` | input error | input error | input error | unknown id |
//! | `send`            | `InvalidStateError` | `InvalidStateError` | queue; a `Send` marker (one per turn) hands out `SendDatagrams` when polled, up to the limit in flight | `InvalidStateError` | `InvalidStateError` |
//! | `close`           | `Release`, `Close` | `Release`, `Close` | queue empty: `Release`, `Close`; else → Closing | nothing | nothing |
//! | `join`/`leave` (also source-specific) | recorded (they fix the family) | recorded, applied at open | `JoinMulticast`/`LeaveMulticast` | `InvalidStateError` | `InvalidStateError` |
//! | `suspend`/`resume`| counted | counted | counted, read interest (held datagrams first) | counted | counted |
//! | `Bound`           | input error | → Open (`Open`), joins, read unless suspended | input error | input error | unknown id |
//! | `BindFailed`      | input error | `Release`, `Error`, `Close` | input error | input error | unknown id |
//! | `Sent { count }`  | input error | input error | `count` oldest in flight done (0 or more than in flight: input error), next `SendDatagrams`, `Drain` | same, then `Release`, `Close` when empty | unknown id |
//! | `SendFailed`      | input error | input error | `Error` (oldest in flight dropped), as `Sent` | same | unknown id |
//! | `Datagram`        | input error | input error | inbox → `Message` when polled, not while suspended | discarded | unknown id |
//! | `Datagrams`       | input error | input error | inbox → one `Message` per segment, in a row (empty or segment 0: input error) | discarded | unknown id |
//! | `JoinFailed`      | input error | input error | `Error`, group forgotten | same | unknown id |
//! | timer             | – | – | – | close timeout → `NetworkTimeoutError`, `Close` | – |
//!
//! After each stimulus, [`UdpSocket::settle`] derives the follow-up work from the state: a
//! `Send` marker when datagrams wait and fewer than [`Config::max_datagrams_in_flight`] are
//! handed out (the marker, polled, hands out every datagram sent meanwhile in one
//! `SendDatagrams`, in queue order; the answers come in that order), the release once a
//! closing socket's queue is empty, and the read interest. `bufferedAmount` and `Drain` are
//! as TCP's, per datagram (`udp/queue.rs`). What is read waits in the inbox (`udp/inbox.rs`)
//! until the app polls as far as its `Deliver` marker: one per read, which delivers a GRO
//! run's datagrams one `Message` each, in a row.
//!
//! Files: this one the state machine; `options` the options and destination checks;
//! `multicast` the memberships; `queue` the send queue; `inbox` what was read.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use arrayvec::ArrayVec;
use bytes::Bytes;

#[cfg(doc)]
use crate::config::Config;
use crate::core::Ctx;
use crate::error::{ApiError, DomException, ErrorCode, InputError, SocketError};
use crate::host::DnsName;
use crate::id::UdpId;
use crate::io::{Action, Event, Output, ResolveError};
use crate::reading::Reading;
use crate::tcp::{DnsQueryType, ReadyState};

mod inbox;
mod multicast;
mod options;
mod queue;

use inbox::Inbox;
pub use multicast::MAX_MULTICAST_GROUPS;
pub(crate) use options::Remote;
use options::{ask_bind, check_destination, check_family, max_payload, BindOptions};
pub use options::{UdpOptions, MAX_DATAGRAM_V4, MAX_DATAGRAM_V6};
use queue::DatagramQueue;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Resolving,
    Opening,
    Open,
    Closing,
    Closed,
}

/// One `UDPSocket`: its attributes and state. Read it with [`Core::udp`](crate::Core::udp);
/// change it with the `Core::udp_*` methods.
#[derive(Debug)]
pub struct UdpSocket {
    id: UdpId,
    phase: Phase,
    /// The address asked for in `Bind` (its family is the socket's); while `Resolving`, the
    /// provisional one.
    bind: SocketAddr,
    /// While `Resolving`: what the `Bind` after the answer needs.
    resolving: Option<Box<Resolving>>,
    local: Option<SocketAddr>,
    remote: Option<SocketAddr>,
    address_reuse: bool,
    loopback: bool,
    queue: DatagramQueue,
    /// A `Send` marker is queued (see `settle`).
    send_due: bool,
    /// A `send` returned `false` since the last `Drain`.
    drain_armed: bool,
    /// Groups joined by the app (in `Opening`: to be joined at open); allocated at the first.
    groups: Option<Box<ArrayVec<IpAddr, MAX_MULTICAST_GROUPS>>>,
    /// Source-specific memberships `(group, source)`, counted with `groups`.
    sources: Option<Box<ArrayVec<(IpAddr, IpAddr), MAX_MULTICAST_GROUPS>>>,
    held: Option<Box<Inbox>>,
    /// The close timeout, while `Closing`.
    deadline: Option<Instant>,
    /// Counted `suspend` and whether the I/O layer reads.
    reading: Reading,
}

/// A socket waiting for its `remote_host` to resolve.
#[derive(Debug)]
struct Resolving {
    name: Arc<DnsName>,
    port: u16,
    /// The family fixed at construction (`Some(true)`: IPv4).
    family: Option<bool>,
    dns_query_type: Option<DnsQueryType>,
    /// Whether `local_address` was given (the bind address is then kept as it is).
    local_fixed: bool,
    options: BindOptions,
}

/// What [`Core::udp_send_all`](crate::Core::udp_send_all) refused: the datagram after the
/// first `queued` ones, which were queued (as by that many `send` calls), and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendAllError {
    /// Datagrams queued before the one refused.
    pub queued: usize,
    /// What `send` threw for it.
    pub error: ApiError,
}

impl std::fmt::Display for SendAllError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "after {} datagrams queued: {}", self.queued, self.error)
    }
}

impl std::error::Error for SendAllError {}

fn state_error(verb: &str, state: ReadyState) -> ApiError {
    ApiError::new(
        DomException::InvalidStateError,
        format!(
            "{verb} needs readyState \"open\"; it is \"{}\"",
            state.as_str()
        ),
    )
}

impl UdpSocket {
    /// A new socket; asks the I/O layer to bind `bind`, or first to resolve the destination's
    /// name (both validated by [`UdpOptions::addresses`]).
    pub(crate) fn open(
        id: UdpId,
        bind: SocketAddr,
        remote: Remote,
        options: &UdpOptions,
        ctx: &mut Ctx,
    ) -> UdpSocket {
        let bind_options = BindOptions {
            address_reuse: options.address_reuse,
            loopback: options.loopback,
            settings: options.settings(),
        };
        let (phase, remote, resolving) = match remote {
            Remote::None => (Phase::Opening, None, None),
            Remote::Addr(addr) => (Phase::Opening, Some(addr), None),
            Remote::Name(name, port, family) => {
                ctx.action(Action::Resolve {
                    id: id.into(),
                    name: Arc::clone(&name),
                });
                let resolving = Resolving {
                    name,
                    port,
                    family,
                    dns_query_type: options.dns_query_type,
                    local_fixed: options.local_address.is_some(),
                    options: bind_options,
                };
                (Phase::Resolving, None, Some(Box::new(resolving)))
            }
        };
        if phase == Phase::Opening {
            ask_bind(id, bind, bind_options, ctx);
        }
        UdpSocket {
            id,
            phase,
            bind,
            resolving,
            local: None,
            remote,
            address_reuse: options.address_reuse,
            loopback: options.loopback,
            queue: DatagramQueue::default(),
            send_due: false,
            drain_armed: false,
            groups: None,
            sources: None,
            held: None,
            deadline: None,
            reading: Reading::default(),
        }
    }

    // ---- attributes -------------------------------------------------------------------------

    /// `readyState`: `opening`, `open`, `closing` or `closed`.
    pub fn ready_state(&self) -> ReadyState {
        match self.phase {
            Phase::Resolving | Phase::Opening => ReadyState::Opening,
            Phase::Open => ReadyState::Open,
            Phase::Closing => ReadyState::Closing,
            Phase::Closed => ReadyState::Closed,
        }
    }

    /// `localAddress` with `localPort`: the address the OS bound, known from `Open`.
    pub fn local_address(&self) -> Option<SocketAddr> {
        self.local
    }

    /// `remoteAddress` with `remotePort`: the default destination of `send`, if one was given.
    pub fn remote_address(&self) -> Option<SocketAddr> {
        self.remote
    }

    /// `addressReuse`.
    pub fn address_reuse(&self) -> bool {
        self.address_reuse
    }

    /// `loopback`.
    pub fn loopback(&self) -> bool {
        self.loopback
    }

    /// `bufferedAmount`: bytes of datagrams accepted by `send` that the OS has not yet taken.
    pub fn buffered_amount(&self) -> usize {
        self.queue.buffered()
    }

    /// The multicast groups joined (or, while `opening`, to be joined at open), in the order
    /// they were joined.
    pub fn multicast_groups(&self) -> &[IpAddr] {
        self.groups.as_deref().map_or(&[], |g| g.as_slice())
    }

    /// The source-specific memberships `(group, source)` (Node's
    /// `addSourceSpecificMembership`), in the order they were added; they count against
    /// [`MAX_MULTICAST_GROUPS`] with [`multicast_groups`](Self::multicast_groups).
    pub fn source_memberships(&self) -> &[(IpAddr, IpAddr)] {
        self.sources.as_deref().map_or(&[], |s| s.as_slice())
    }

    fn memberships(&self) -> usize {
        self.multicast_groups().len() + self.source_memberships().len()
    }

    /// How many `suspend` calls are not yet matched by a `resume`.
    pub fn suspend_count(&self) -> u32 {
        self.reading.count()
    }

    /// The socket's next timer.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadline
    }

    // ---- app calls --------------------------------------------------------------------------

    /// `send(data, remoteAddress?, remotePort?)` ([BEHAVIOUR §3](crate::behaviour#3-udpsocket)): one datagram to `to`, or to
    /// the default destination.
    pub(crate) fn send(
        &mut self,
        data: Bytes,
        to: Option<SocketAddr>,
        ctx: &mut Ctx,
    ) -> Result<bool, ApiError> {
        let to = self.destination(to)?;
        let below = self.push(data, to, max_payload(to.ip()), ctx)?;
        self.settle(ctx);
        Ok(below)
    }

    /// `send` of each datagram in turn, all to `to` (checked once), stopping at the first
    /// one refused: [`Core::udp_send_all`](crate::Core::udp_send_all).
    pub(crate) fn send_all(
        &mut self,
        datagrams: impl IntoIterator<Item = Bytes>,
        to: Option<SocketAddr>,
        ctx: &mut Ctx,
    ) -> Result<bool, SendAllError> {
        let fail = |queued, error| SendAllError { queued, error };
        let to = self.destination(to).map_err(|e| fail(0, e))?;
        let (mut queued, mut below) = (0, true);
        let max = max_payload(to.ip());
        for data in datagrams {
            match self.push(data, to, max, ctx) {
                Ok(b) => below = b,
                Err(error) => {
                    self.settle(ctx);
                    return Err(fail(queued, error));
                }
            }
            queued += 1;
        }
        self.settle(ctx);
        Ok(below)
    }

    /// The destination of a `send`: `to`, else the default one; `open` and a valid one for
    /// this socket, or the error `send` throws.
    #[inline]
    fn destination(&self, to: Option<SocketAddr>) -> Result<SocketAddr, ApiError> {
        if self.phase != Phase::Open {
            return Err(state_error("send()", self.ready_state()));
        }
        let Some(to) = to.or(self.remote) else {
            return Err(ApiError::access(
                "send() without a destination, and the socket has no remoteAddress/remotePort",
            ));
        };
        check_destination(to, self.bind.ip())?;
        Ok(to)
    }

    /// Queues one datagram to a checked destination, which takes at most `max` bytes.
    #[inline]
    fn push(
        &mut self,
        data: Bytes,
        to: SocketAddr,
        max: usize,
        ctx: &Ctx,
    ) -> Result<bool, ApiError> {
        if data.len() > max {
            return Err(ApiError::access(format!(
                "a datagram to {to} carries at most {max} bytes; this one has {}",
                data.len()
            )));
        }
        let below = self.queue.push(data, to, &ctx.config)?;
        self.drain_armed |= !below;
        Ok(below)
    }

    /// `close()`: queued datagrams are still sent, then `Close`; no `Message` after the call.
    pub(crate) fn close(&mut self, now: Instant, ctx: &mut Ctx) {
        match self.phase {
            Phase::Resolving | Phase::Opening => self.release(None, ctx),
            Phase::Open => {
                self.held = None;
                self.phase = Phase::Closing;
                self.deadline = Some(now + ctx.config.close_timeout);
                self.settle(ctx);
            }
            Phase::Closing | Phase::Closed => {}
        }
    }

    /// Checks a `joinMulticastGroup(group)` (the policy is asked after this passes).
    /// `suspend()`: counted; stops reading while the count is above 0.
    pub(crate) fn suspend(&mut self, ctx: &mut Ctx) {
        self.reading.suspend();
        self.settle(ctx);
    }

    /// `resume()`: `InvalidStateError` if not suspended; at 0, the datagrams read meanwhile
    /// are delivered as the app polls, before any read later.
    pub(crate) fn resume(&mut self, ctx: &mut Ctx) -> Result<(), ApiError> {
        if self.reading.resume()? {
            if let Some(held) = self.held.as_deref_mut() {
                for _ in 0..std::mem::take(&mut held.unscheduled) {
                    ctx.deliver(self.id.into());
                }
            }
        }
        self.settle(ctx);
        Ok(())
    }

    /// A `Deliver` marker reached the front of the output queue: the next datagram read
    /// becomes its `Message`, unless the app suspended the socket meanwhile (and none after
    /// `close()`, which dropped them). While its read holds more datagrams, the marker stays
    /// at the front ([`Ctx::delivering`]), so that they are delivered together where they
    /// were read.
    #[inline]
    pub(crate) fn deliver_next(&mut self, ctx: &mut Ctx) -> Option<Output> {
        let held = self.held.as_deref_mut()?;
        if held.is_empty() {
            return None;
        }
        if self.reading.is_suspended() {
            held.unscheduled += 1;
            return None;
        }
        let (data, remote, more) = held.next()?;
        if more {
            ctx.delivering = Some(self.id);
        }
        Some(Output::Event(Event::Message {
            id: self.id,
            data,
            remote,
        }))
    }

    /// The rest of the read being delivered ([`Ctx::delivering`]) as `Message`s, at once
    /// ([`Core::poll_messages`](crate::Core::poll_messages)): what `deliver_next` would
    /// give poll by poll. None while suspended (the next poll counts the marker).
    pub(crate) fn deliver_run(&mut self, events: &mut Vec<Event>, ctx: &mut Ctx) -> usize {
        let Some(held) = self.held.as_deref_mut() else {
            ctx.delivering = None;
            return 0;
        };
        if self.reading.is_suspended() {
            return 0;
        }
        ctx.delivering = None;
        let id = self.id;
        held.rest_of_run(|data, remote| events.push(Event::Message { id, data, remote }))
    }

    /// A `Send` marker reached the front of the output queue: the datagrams sent since the
    /// last hand-out go as one action, up to the limit in flight.
    #[inline]
    pub(crate) fn send_next(&mut self, ctx: &Ctx) -> Option<Output> {
        self.send_due = false;
        if !matches!(self.phase, Phase::Open | Phase::Closing) {
            return None;
        }
        let datagrams = self.queue.hand_out(ctx.config.max_datagrams_in_flight)?;
        Some(Output::Action(Action::SendDatagrams {
            id: self.id,
            datagrams,
        }))
    }

    // ---- inputs -----------------------------------------------------------------------------

    /// The answer for `remote_host`: the first usable address (of the family fixed at
    /// construction, or by a group recorded while resolving; of `dnsQueryType`; specified)
    /// is the default destination and picks the family of the bind, else
    /// `DomainNotFoundError`.
    pub(crate) fn resolved(
        &mut self,
        result: Result<Vec<IpAddr>, ResolveError>,
        ctx: &mut Ctx,
    ) -> Result<(), InputError> {
        match self.phase {
            Phase::Resolving => {}
            Phase::Closed => return Err(InputError::UnknownId),
            Phase::Opening | Phase::Open | Phase::Closing => {
                return Err(InputError::Unexpected(
                    "a resolution for a socket that did not ask for one",
                ))
            }
        }
        let Some(r) = self.resolving.take() else {
            return Err(InputError::Unexpected(
                "a resolution that was not asked for",
            ));
        };
        let family = r
            .family
            .or_else(|| (self.memberships() > 0).then(|| self.bind.is_ipv4()));
        let usable = |ip: &IpAddr| {
            !ip.is_unspecified()
                && family.is_none_or(|v4| ip.is_ipv4() == v4)
                && r.dns_query_type.is_none_or(|t| t.admits(*ip))
        };
        let why = match &result {
            Ok(addrs) if addrs.is_empty() => "has no address".to_owned(),
            Ok(addrs) => match addrs.iter().copied().find(usable) {
                Some(ip) => {
                    let remote = SocketAddr::new(ip, r.port);
                    if !r.local_fixed {
                        let unspecified = match ip {
                            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                        };
                        self.bind.set_ip(unspecified);
                    }
                    self.remote = Some(remote);
                    self.phase = Phase::Opening;
                    ask_bind(self.id, self.bind, r.options, ctx);
                    return Ok(());
                }
                None => match (r.dns_query_type, family) {
                    (Some(t), _) => format!("has no {} address", t.as_str()),
                    (None, Some(true)) => "has no IPv4 address, the socket's family".to_owned(),
                    (None, Some(false)) => "has no IPv6 address, the socket's family".to_owned(),
                    (None, None) => "has no usable address".to_owned(),
                },
            },
            Err(ResolveError::NotFound) => "has no address".to_owned(),
            Err(why) => format!("could not be resolved ({why:?})"),
        };
        let e = SocketError::new(ErrorCode::DomainNotFound, format!("{} {why}", r.name));
        self.release(Some(e), ctx);
        Ok(())
    }

    pub(crate) fn bound(&mut self, local: SocketAddr, ctx: &mut Ctx) -> Result<(), InputError> {
        self.check_opening()?;
        self.local = Some(local);
        self.phase = Phase::Open;
        ctx.event(Event::Open { id: self.id.into() });
        for &group in self.multicast_groups() {
            let source = None;
            ctx.action(Action::JoinMulticast {
                id: self.id,
                group,
                source,
            });
        }
        for &(group, source) in self.source_memberships() {
            let source = Some(source);
            ctx.action(Action::JoinMulticast {
                id: self.id,
                group,
                source,
            });
        }
        self.settle(ctx);
        Ok(())
    }

    pub(crate) fn bind_failed(
        &mut self,
        error: io::ErrorKind,
        ctx: &mut Ctx,
    ) -> Result<(), InputError> {
        self.check_opening()?;
        self.release(Some(SocketError::from_io(error)), ctx);
        Ok(())
    }

    /// The `count` oldest datagrams in flight were sent.
    pub(crate) fn sent(&mut self, count: usize, ctx: &mut Ctx) -> Result<(), InputError> {
        self.check_bound()?;
        self.queue.sent(count)?;
        self.answered(ctx);
        Ok(())
    }

    /// The oldest datagram in flight was refused by the OS and dropped.
    pub(crate) fn send_failed(
        &mut self,
        error: io::ErrorKind,
        ctx: &mut Ctx,
    ) -> Result<(), InputError> {
        self.check_bound()?;
        let to = self.queue.failed()?;
        let what = format!("the datagram to {to} was dropped");
        self.error(SocketError::from_io_in(error, what), ctx);
        self.answered(ctx);
        Ok(())
    }

    /// After an answer: `Drain` once the queue is empty, also of empty datagrams
    /// ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket) Drain), then the follow-up work.
    fn answered(&mut self, ctx: &mut Ctx) {
        if self.queue.is_empty() && std::mem::take(&mut self.drain_armed) {
            ctx.event(Event::Drain { id: self.id.into() });
        }
        self.settle(ctx);
    }

    /// A datagram arrived.
    pub(crate) fn datagram(
        &mut self,
        data: Bytes,
        remote: SocketAddr,
        ctx: &mut Ctx,
    ) -> Result<(), InputError> {
        self.check_bound()?;
        self.hold(data, 0, 1, remote, ctx)
    }

    /// Datagrams of `segment` bytes (the last may be shorter) arrived back to back in `data`.
    pub(crate) fn datagrams(
        &mut self,
        data: Bytes,
        segment: usize,
        remote: SocketAddr,
        ctx: &mut Ctx,
    ) -> Result<(), InputError> {
        self.check_bound()?;
        if segment == 0 {
            return Err(InputError::Unexpected(
                "coalesced datagrams of segment size 0",
            ));
        }
        if data.is_empty() {
            return Err(InputError::Unexpected("coalesced datagrams of no byte"));
        }
        let count = data.len().div_ceil(segment);
        let segment = if count == 1 { 0 } else { segment };
        self.hold(data, segment, count, remote, ctx)
    }

    /// Keeps a read of `count` datagrams, to be delivered when the app polls this far (see
    /// `deliver_next`); none after `close()`.
    fn hold(
        &mut self,
        data: Bytes,
        segment: usize,
        count: usize,
        remote: SocketAddr,
        ctx: &mut Ctx,
    ) -> Result<(), InputError> {
        if self.phase == Phase::Closing {
            return Ok(()); // no Message after close()
        }
        let suspended = self.reading.is_suspended();
        let held = self.held.get_or_insert_with(Default::default);
        let config = &ctx.config;
        if suspended
            && !held.fits(
                count,
                data.len(),
                config.max_held_bytes,
                config.max_queued_datagrams,
            )
        {
            return Err(InputError::Unexpected(
                "the I/O layer kept reading a suspended socket",
            ));
        }
        held.push(data, segment, count, remote);
        ctx.deliver(self.id.into());
        Ok(())
    }

    /// The OS refused to join `group`: `Error`, and the group counts as not joined. Also
    /// reported when the app left the group meanwhile: the join it asked for failed.
    pub(crate) fn timeout(&mut self, now: Instant, ctx: &mut Ctx) {
        if self.phase == Phase::Closing && self.deadline.is_some_and(|at| at <= now) {
            let e = SocketError::new(
                ErrorCode::NetworkTimeout,
                "the queued datagrams were not sent within the close timeout",
            );
            self.release(Some(e), ctx);
        }
    }

    // ---- internals --------------------------------------------------------------------------

    fn check_opening(&self) -> Result<(), InputError> {
        match self.phase {
            Phase::Opening => Ok(()),
            Phase::Closed => Err(InputError::UnknownId),
            Phase::Resolving => Err(InputError::Unexpected(
                "a bind result for a socket that was not asked to bind",
            )),
            Phase::Open | Phase::Closing => Err(InputError::Unexpected(
                "a bind result for a socket that is already bound",
            )),
        }
    }

    fn check_bound(&self) -> Result<(), InputError> {
        match self.phase {
            Phase::Open | Phase::Closing => Ok(()),
            Phase::Closed => Err(InputError::UnknownId),
            Phase::Resolving | Phase::Opening => Err(InputError::Unexpected(
                "a datagram or send result before the socket was bound",
            )),
        }
    }

    /// An `Error` event that does not end the socket (a datagram or a join failed).
    fn error(&self, error: SocketError, ctx: &mut Ctx) {
        ctx.event(Event::Error {
            id: self.id.into(),
            error,
        });
    }

    /// Derives the follow-up work from the state (see the module docs).
    fn settle(&mut self, ctx: &mut Ctx) {
        if matches!(self.phase, Phase::Open | Phase::Closing) {
            let max = ctx.config.max_datagrams_in_flight;
            if !self.send_due && self.queue.can_hand_out(max) {
                self.send_due = true;
                ctx.send_due(self.id);
            }
        }
        if self.phase == Phase::Closing && self.queue.is_empty() {
            self.release(None, ctx);
            return;
        }
        let open = self.phase == Phase::Open;
        self.reading.update(self.id.into(), open, ctx);
    }

    /// The end: `Release`, then `Error` (if any), then `Close`.
    fn release(&mut self, error: Option<SocketError>, ctx: &mut Ctx) {
        self.phase = Phase::Closed;
        self.resolving = None;
        self.queue.clear();
        self.drain_armed = false;
        self.held = None;
        self.deadline = None;
        self.reading.released();
        ctx.end(self.id.into(), error);
    }
}

#[cfg(test)]
mod tests;
