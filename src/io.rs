//! What crosses the boundary between the core and whoever does the I/O (DESIGN "The shape"):
//! [`Input`]s in, [`Output`]s out.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::{ApiError, SocketError};
use crate::host::DnsName;
use crate::id::{ServerId, SocketId, TcpId, UdpId};
use crate::payload::{Data, Preview};

mod datagrams;
pub use datagrams::{Datagrams, DatagramsIter};

/// One item from [`Core::poll_output`](crate::Core::poll_output). Call it until it returns
/// `Timeout`; then wait for I/O or for that deadline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Something for the I/O layer to do.
    Action(Action),
    /// A spec event for the app.
    Event(Event),
    /// Nothing more to do until this instant (call
    /// [`Core::handle_timeout`](crate::Core::handle_timeout) then), or until an input arrives.
    /// `None`: no timer is running.
    Timeout(Option<Instant>),
}

/// Work for the I/O layer. Every socket's life ends with exactly one `Release`. The rules for
/// carrying these out are in [Writing an I/O layer](crate::io_layer).
///
/// For a TCP socket the I/O layer keeps one OS socket per connect attempt until one connects;
/// that one is then the socket of the id. A server or UDP socket has one OS socket from its
/// `Listen` or `Bind` on.
///
/// Exhaustive on purpose: it is the I/O layer's contract, so a new variant must be a compile
/// error in every I/O layer rather than a panic in an `_ =>` arm. Adding one is a breaking
/// change (a new major version before 1.0, a minor one after).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Resolve `name`; answer with [`Input::Resolved`] naming the same `id`. A TCP socket
    /// asks it for `open(host)`, a UDP socket for a host name as its default destination
    /// (`UdpOptions::remote_host`), before its [`Action::Bind`].
    Resolve {
        /// The socket waiting for the answer: a `TcpId` or a `UdpId`, never a `ServerId`.
        id: SocketId,
        /// The validated name.
        name: Arc<DnsName>,
    },
    /// Start a non-blocking connect; answer with [`Input::Connected`] or
    /// [`Input::ConnectFailed`] naming the same `attempt`.
    Connect {
        /// The socket.
        id: TcpId,
        /// Which attempt of this socket (several may race, RFC 8305).
        attempt: u8,
        /// Where to connect.
        remote: SocketAddr,
        /// The rest, boxed: once per attempt, so that every other action and event moves in
        /// fewer bytes.
        options: Box<ConnectOptions>,
    },
    /// Another attempt won: close this attempt's OS socket and report nothing more of it.
    AbortConnect {
        /// The socket.
        id: TcpId,
        /// The losing attempt.
        attempt: u8,
    },
    /// Start (`true`) or stop (`false`) reading: a TCP socket's bytes, a server's connections,
    /// a UDP socket's datagrams. A new OS socket is not read until this says so. When stopped,
    /// do not read at all, so the peer feels back-pressure. It states the interest as of the
    /// moment it is polled: the latest one received is the one that holds.
    SetReading {
        /// The socket.
        id: SocketId,
        /// Read or not.
        enabled: bool,
    },
    /// Write these bytes (at most one write is in flight per socket); answer with
    /// [`Input::Written`] for the bytes the OS took (fewer is fine), or [`Input::Failed`].
    Write {
        /// The socket.
        id: TcpId,
        /// The bytes.
        data: Bytes,
    },
    /// Send FIN (`shutdown(SHUT_WR)`). Keep reading if told to.
    Shutdown {
        /// The socket.
        id: TcpId,
    },
    /// Tell how many bytes of this socket the OS still holds unsent or unacknowledged by the
    /// peer, our FIN included; answer with [`Input::Unacked`]. Asked only after
    /// [`Action::Shutdown`], while a graceful close waits until the peer's TCP has everything
    /// ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket) close): the core asks again on its own timer until the answer is 0, so
    /// the I/O layer keeps no state for it. On Linux: `ioctl(fd, SIOCOUTQ)` (which counts the
    /// FIN), and, when that is not 0, `SO_ERROR`: a pending error is [`Input::Failed`]
    /// instead. An I/O layer that cannot tell answers `bytes: None`; the core then releases
    /// on the peer's FIN, or reports `NetworkTimeoutError` at the close timeout.
    QueryUnacked {
        /// The socket.
        id: TcpId,
    },
    /// Close every OS socket of this id and forget it; report nothing more about it.
    Release {
        /// The socket.
        id: SocketId,
    },
    /// Create a TCP socket, bind it to `local` (port 0: ephemeral) and listen ([BEHAVIOUR §2](crate::behaviour#2-tcpserversocket));
    /// answer with [`Input::Listening`] or [`Input::ListenFailed`]. Accepted connections go
    /// to [`Core::handle_accepted`](crate::Core::handle_accepted), only while
    /// [`Action::SetReading`] says so.
    Listen {
        /// The server.
        id: ServerId,
        /// Where to listen (`localAddress`, `localPort`).
        local: SocketAddr,
        /// The `listen(2)` backlog (at least 1, at most `i32::MAX`).
        backlog: u32,
        /// Set `SO_REUSEADDR` (`addressReuse`).
        reuse_address: bool,
        /// Buffer sizes and `ipv6_only`, set before `bind` and `listen` (accepted
        /// connections inherit the buffer sizes). Boxed, as rare.
        settings: Box<SocketSettings>,
    },
    /// Create a UDP socket and bind it to `local` (port 0: ephemeral) ([BEHAVIOUR §3](crate::behaviour#3-udpsocket)); answer
    /// with [`Input::Bound`] or [`Input::BindFailed`].
    Bind {
        /// The socket.
        id: UdpId,
        /// Where to bind (`localAddress`, `localPort`).
        local: SocketAddr,
        /// Set `SO_REUSEADDR` (`addressReuse`). Never set for port 0 ([BEHAVIOUR §3](crate::behaviour#3-udpsocket)): Linux
        /// would then hand out ephemeral ports that other reuse-enabled sockets hold.
        reuse_address: bool,
        /// Set `IP_MULTICAST_LOOP` / `IPV6_MULTICAST_LOOP` (`loopback`).
        loopback: bool,
        /// Every setting of [`SocketSettings`], set before `bind`. Boxed, as rare.
        settings: Box<SocketSettings>,
    },
    /// Send these datagrams, in order, each whole to its own destination; answer with
    /// [`Input::Sent`] (how many the OS took, in order) and [`Input::SendFailed`] (the oldest
    /// one not yet answered was refused), until every one is answered.
    ///
    /// One action carries every datagram the app queued since the last one, up to
    /// [`Config::max_datagrams_in_flight`](crate::Config::max_datagrams_in_flight) handed out
    /// and not yet answered per socket; more follow as answers come. Hand them to the OS in
    /// this order, after those of earlier actions of the socket, and answer in that order:
    /// each answer is for the oldest datagrams not yet answered. A layer that sends one at a
    /// time answers `Sent { count: 1 }` each; one that batches writes a run of equal-size
    /// datagrams to one destination as one UDP GSO `sendmsg` or several datagrams with one
    /// `sendmmsg`, and answers `Sent { count }` for all that the call took.
    SendDatagrams {
        /// The socket.
        id: UdpId,
        /// The datagrams (at least one; each possibly empty) and their destinations, of the
        /// socket's address family, in the order the app sent them. A lone one is held
        /// inline (no allocation).
        datagrams: Datagrams,
    },
    /// Join a multicast group (`IP_ADD_MEMBERSHIP` / `IPV6_JOIN_GROUP`) on the socket's
    /// multicast interface ([`SocketSettings::multicast_interface`]), else on the interface
    /// of the socket's local address (any interface if unspecified). If the OS refuses, report
    /// [`Input::JoinFailed`].
    JoinMulticast {
        /// The socket.
        id: UdpId,
        /// The group, of the socket's address family.
        group: IpAddr,
        /// Source-specific (Node's `addSourceSpecificMembership`): receive the group's
        /// datagrams from this source only (`IP_ADD_SOURCE_MEMBERSHIP` /
        /// `MCAST_JOIN_SOURCE_GROUP`). A layer that cannot reports [`Input::JoinFailed`]
        /// (`Unsupported`).
        source: Option<IpAddr>,
    },
    /// Leave a multicast group joined by [`Action::JoinMulticast`] (with the same `source`).
    /// A failure is not reported.
    LeaveMulticast {
        /// The socket.
        id: UdpId,
        /// The group.
        group: IpAddr,
        /// The source of a source-specific membership (`IP_DROP_SOURCE_MEMBERSHIP`).
        source: Option<IpAddr>,
    },
}

/// How to make the OS socket of an [`Action::Connect`] attempt, besides where it connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Bind here first (`localAddress`/`localPort`), if set.
    pub local: Option<SocketAddr>,
    /// Set `TCP_NODELAY`.
    pub no_delay: bool,
    /// Enable keep-alive with this idle time, if set (`keepAliveDelay`, whole seconds from 1
    /// to 32 767: `TCP_KEEPIDLE`).
    pub keep_alive: Option<Duration>,
    /// Buffer sizes, set before `bind` and `connect` (the other settings are at their
    /// defaults).
    pub settings: SocketSettings,
}

/// Socket-level settings the app asked for, carried by [`Action::Connect`],
/// [`Action::Listen`] and [`Action::Bind`]: set each one that is not at its default on the
/// new OS socket before `bind`, and leave the OS default otherwise. The core has validated
/// the values (ranges in [`TcpOptions`](crate::TcpOptions), [`ServerOptions`](crate::ServerOptions)
/// and [`UdpOptions`](crate::UdpOptions)), and fills only what applies: the buffer sizes for
/// all three actions, `ipv6_only` for `Listen` and `Bind`, the rest for `Bind` only. Plain
/// data, so that a recording can keep it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SocketSettings {
    /// `SO_SNDBUF` in bytes (`sendBufferSize`). The OS may round or cap it; Linux doubles
    /// it for its own bookkeeping, and reads back the doubled value.
    pub send_buffer: Option<u32>,
    /// `SO_RCVBUF` in bytes (`receiveBufferSize`). Set before `connect`/`listen`, so that TCP
    /// chooses its window scale for it. Rounded, capped and doubled as `send_buffer`.
    pub receive_buffer: Option<u32>,
    /// `IPV6_V6ONLY` (`ipv6Only`): on an IPv6 socket, set it to this **either way**, so that
    /// the OS's default (Linux: `net.ipv6.bindv6only`) does not decide whether `::` also
    /// takes IPv4 (Linux makes a socket bound to a specific IPv6 address IPv6-only anyway).
    /// Never `true` for an IPv4 or IPv4-mapped local address; ignore it on IPv4.
    pub ipv6_only: bool,
    /// `SO_BROADCAST` (Node's `setBroadcast`), UDP only; never `true` on IPv6.
    pub broadcast: bool,
    /// `IP_MULTICAST_TTL` / `IPV6_MULTICAST_HOPS` (`multicastTimeToLive`), UDP only; `None`:
    /// the OS default (1).
    pub multicast_ttl: Option<u8>,
    /// `IP_MULTICAST_IF` / `IPV6_MULTICAST_IF`, UDP only, of the local address's family:
    /// multicast is sent through this interface and [`Action::JoinMulticast`] joins on it.
    /// `None`: the I/O layer's own choice (the reference driver: its configured interface,
    /// else the local address's).
    pub multicast_interface: Option<MulticastInterface>,
}

/// The largest `sendBufferSize` / `receiveBufferSize` an app may ask for: 64 MiB. Direct
/// Sockets takes any positive size and Chrome clamps it; we refuse what is out of range
/// instead (`InvalidAccessError`), so that the size asked is the size set (the OS still caps
/// it at `net.core.wmem_max`/`rmem_max` unless the process may override them).
pub const MAX_BUFFER_SIZE: u32 = 64 << 20;

impl SocketSettings {
    /// `InvalidAccessError` for a buffer size of 0 or above [`MAX_BUFFER_SIZE`].
    pub(crate) fn check(&self) -> Result<(), ApiError> {
        for (name, size) in [
            ("sendBufferSize", self.send_buffer),
            ("receiveBufferSize", self.receive_buffer),
        ] {
            if let Some(size) = size.filter(|&s| s == 0 || s > MAX_BUFFER_SIZE) {
                return Err(ApiError::access(format!(
                    "{name} {size} is not between 1 and {MAX_BUFFER_SIZE}"
                )));
            }
        }
        Ok(())
    }
}

/// `InvalidAccessError` for `ipv6Only` on an IPv4 or IPv4-mapped local address (it could
/// then never be bound).
pub(crate) fn check_ipv6_only(local: IpAddr, ipv6_only: bool) -> Result<(), ApiError> {
    let v6 = matches!(local, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none());
    if ipv6_only && !v6 {
        return Err(ApiError::access(format!(
            "ipv6Only needs an IPv6 localAddress (such as ::); {local} is IPv4"
        )));
    }
    Ok(())
}

/// The interface a UDP socket sends multicast through and joins groups on
/// (`UdpOptions::multicast_interface`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MulticastInterface {
    /// An IPv4 socket: the interface that has this (unicast, specified) address.
    V4(std::net::Ipv4Addr),
    /// An IPv6 socket: the interface of this index (not 0), as `if_nametoindex` gives it.
    V6(u32),
}

/// A spec event for the app. Per socket, events come in the order things happened and `Close`
/// is always the last one. Its `Debug` shows a payload's length and first bytes only
/// ([`Preview`]).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// `open`: the connection is established (`readyState` is `open`).
    Open {
        /// The socket.
        id: SocketId,
    },
    /// `data`: bytes or text received, per the socket's `binaryType`.
    Data {
        /// The socket.
        id: TcpId,
        /// What was received.
        data: Data,
    },
    /// `drain`: the send queue became empty after a `send` had returned `false`.
    Drain {
        /// The socket.
        id: SocketId,
    },
    /// `connect` of a `TCPServerSocket` ([BEHAVIOUR §2](crate::behaviour#2-tcpserversocket)): `socket` was accepted and is `open`
    /// (after its TLS handshake on a secure server), its address attributes filled from the
    /// OS. An accepted socket fires no `Open`.
    Connect {
        /// The server that accepted it.
        server: ServerId,
        /// The new socket (`connectedSocket`).
        socket: TcpId,
    },
    /// `halfclose`: the peer sent FIN and `allowHalfOpen` is set; the socket stays writable.
    HalfClose {
        /// The socket.
        id: TcpId,
    },
    /// `error`: a remote or OS failure; `readyState` is already `closed` and `Close` follows.
    Error {
        /// The socket.
        id: SocketId,
        /// What failed.
        error: SocketError,
    },
    /// `close`: the last event of the socket; its id is dead once this is delivered.
    Close {
        /// The socket.
        id: SocketId,
    },
    /// `message` (`UDPSocket`, [BEHAVIOUR §3](crate::behaviour#3-udpsocket)): one datagram, whole.
    Message {
        /// The socket.
        id: UdpId,
        /// The datagram's payload (possibly empty).
        data: Bytes,
        /// Its source: `remoteAddress` and `remotePort`.
        remote: SocketAddr,
    },
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Open { id } => f.debug_struct("Open").field("id", id).finish(),
            Event::Data { id, data } => f
                .debug_struct("Data")
                .field("id", id)
                .field("data", data)
                .finish(),
            Event::Drain { id } => f.debug_struct("Drain").field("id", id).finish(),
            Event::Connect { server, socket } => f
                .debug_struct("Connect")
                .field("server", server)
                .field("socket", socket)
                .finish(),
            Event::HalfClose { id } => f.debug_struct("HalfClose").field("id", id).finish(),
            Event::Error { id, error } => f
                .debug_struct("Error")
                .field("id", id)
                .field("error", error)
                .finish(),
            Event::Close { id } => f.debug_struct("Close").field("id", id).finish(),
            Event::Message { id, data, remote } => f
                .debug_struct("Message")
                .field("id", id)
                .field("data", &Preview(data))
                .field("remote", remote)
                .finish(),
        }
    }
}

impl Event {
    /// The socket the event is about (for `Connect`, the server that accepted).
    pub fn id(&self) -> SocketId {
        match self {
            Event::Open { id }
            | Event::Drain { id }
            | Event::Error { id, .. }
            | Event::Close { id } => *id,
            Event::Data { id, .. } | Event::HalfClose { id } => (*id).into(),
            Event::Connect { server, .. } => (*server).into(),
            Event::Message { id, .. } => (*id).into(),
        }
    }

    /// The TCP socket whose own event this is (`Connect` names a server's new socket and is
    /// not counted).
    pub(crate) fn tcp(&self) -> Option<TcpId> {
        match self {
            Event::Data { id, .. } | Event::HalfClose { id } => Some(*id),
            Event::Open {
                id: SocketId::TcpId(id),
            }
            | Event::Drain {
                id: SocketId::TcpId(id),
            }
            | Event::Error {
                id: SocketId::TcpId(id),
                ..
            }
            | Event::Close {
                id: SocketId::TcpId(id),
            } => Some(*id),
            _ => None,
        }
    }
}

/// Why a name did not resolve. All of them are reported to the app as `DomainNotFoundError`,
/// with different messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResolveError {
    /// The name does not exist or has no address.
    NotFound,
    /// The resolver could not answer now.
    Temporary,
    /// Anything else.
    Other,
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResolveError::NotFound => "the name does not exist or has no address",
            ResolveError::Temporary => "the resolver could not answer now",
            ResolveError::Other => "the resolver failed",
        })
    }
}

impl std::error::Error for ResolveError {}

/// Something the OS reported, for [`Core::handle_input`](crate::Core::handle_input). What to
/// report when is in [Writing an I/O layer](crate::io_layer).
///
/// Exhaustive, as [`Action`] is: adding a variant is a breaking change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// The answer to [`Action::Resolve`], in the resolver's order of preference.
    Resolved {
        /// The socket, as the action named it (a `TcpId` or a `UdpId`).
        id: SocketId,
        /// The addresses, or why there are none.
        result: Result<Vec<IpAddr>, ResolveError>,
    },
    /// Attempt `attempt` connected; `local` is the address the OS chose.
    Connected {
        /// The socket.
        id: TcpId,
        /// The attempt of [`Action::Connect`].
        attempt: u8,
        /// The local address and port.
        local: SocketAddr,
    },
    /// Attempt `attempt` failed (its OS socket is already closed).
    ConnectFailed {
        /// The socket.
        id: TcpId,
        /// The attempt of [`Action::Connect`].
        attempt: u8,
        /// Why.
        error: io::ErrorKind,
    },
    /// Bytes read (never empty: the end of the stream is [`Input::Eof`]).
    Received {
        /// The socket.
        id: TcpId,
        /// The bytes.
        data: Bytes,
    },
    /// The peer's FIN: a read returned 0. Do not read this socket again.
    Eof {
        /// The socket.
        id: TcpId,
    },
    /// The OS took the first `len` bytes of the write in flight.
    Written {
        /// The socket.
        id: TcpId,
        /// How many bytes (at least 1, at most the write's length).
        len: usize,
    },
    /// The answer to [`Action::QueryUnacked`]: how many bytes (FIN included) the OS still
    /// holds unsent or unacknowledged, or `None` if this I/O layer cannot tell.
    Unacked {
        /// The socket.
        id: TcpId,
        /// The count (`Some(0)`: the peer's TCP has acknowledged everything).
        bytes: Option<usize>,
    },
    /// The connection failed after it was established (reset, broken pipe, timeout...).
    Failed {
        /// The socket.
        id: TcpId,
        /// Why.
        error: io::ErrorKind,
    },
    /// The server of [`Action::Listen`] listens; `local` is the address the OS chose (the
    /// real port when 0 was asked for).
    Listening {
        /// The server.
        id: ServerId,
        /// The local address and port.
        local: SocketAddr,
    },
    /// [`Action::Listen`] failed (its OS socket is already closed).
    ListenFailed {
        /// The server.
        id: ServerId,
        /// Why.
        error: io::ErrorKind,
    },
    /// The socket of [`Action::Bind`] is bound; `local` is the address the OS chose.
    Bound {
        /// The socket.
        id: UdpId,
        /// The local address and port.
        local: SocketAddr,
    },
    /// [`Action::Bind`] failed (its OS socket is already closed).
    BindFailed {
        /// The socket.
        id: UdpId,
        /// Why.
        error: io::ErrorKind,
    },
    /// The OS took the `count` oldest datagrams of this socket handed out by
    /// [`Action::SendDatagrams`] and not yet answered, each whole. A `count` of 0, or above
    /// the datagrams not yet answered, is an [`InputError`](crate::InputError).
    Sent {
        /// The socket.
        id: UdpId,
        /// How many datagrams (at least 1).
        count: usize,
    },
    /// The OS refused the oldest datagram not yet answered (unreachable, refused by ICMP, too
    /// large for the path...). It is dropped and reported as an `Error` event; the socket
    /// stays open.
    SendFailed {
        /// The socket.
        id: UdpId,
        /// Why.
        error: io::ErrorKind,
    },
    /// A datagram arrived (one `recv_from`, or one message of a `recvmmsg` that the kernel did
    /// not coalesce).
    Datagram {
        /// The socket.
        id: UdpId,
        /// The payload (possibly empty).
        data: Bytes,
        /// Its source address and port.
        remote: SocketAddr,
    },
    /// Several datagrams of one sender arrived in one buffer, as UDP GRO hands them over:
    /// each of `segment_size` bytes but the last, which may be shorter. The core cuts `data`
    /// into them without copying ([`Bytes::split_to`]); each is its own `Message`. `data`
    /// empty or `segment_size` 0 is an [`InputError`](crate::InputError).
    Datagrams {
        /// The socket.
        id: UdpId,
        /// The datagrams back to back (at least one byte).
        data: Bytes,
        /// The size of each datagram but the last (at least 1): the kernel's `UDP_GRO`
        /// control message.
        segment_size: usize,
        /// Their source address and port.
        remote: SocketAddr,
    },
    /// The OS refused an [`Action::JoinMulticast`]; the socket stays open.
    JoinFailed {
        /// The socket.
        id: UdpId,
        /// The group of the action.
        group: IpAddr,
        /// The source of the action.
        source: Option<IpAddr>,
        /// Why.
        error: io::ErrorKind,
    },
}

impl Input {
    /// The socket this input is about.
    pub fn id(&self) -> SocketId {
        match self {
            Input::Resolved { id, .. } => *id,
            Input::Connected { id, .. }
            | Input::ConnectFailed { id, .. }
            | Input::Received { id, .. }
            | Input::Eof { id }
            | Input::Written { id, .. }
            | Input::Unacked { id, .. }
            | Input::Failed { id, .. } => (*id).into(),
            Input::Listening { id, .. } | Input::ListenFailed { id, .. } => (*id).into(),
            Input::Bound { id, .. }
            | Input::BindFailed { id, .. }
            | Input::Sent { id, .. }
            | Input::SendFailed { id, .. }
            | Input::Datagram { id, .. }
            | Input::Datagrams { id, .. }
            | Input::JoinFailed { id, .. } => (*id).into(),
        }
    }
}

/// What became of a connection given to [`Core::handle_accepted`](crate::Core::handle_accepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Accepted {
    /// It is now this socket: from here on it is driven like any other `TcpId` (its
    /// [`Action::SetReading`] follows). Set `TCP_NODELAY` on it (`noDelay`'s default; the app
    /// has no option for accepted sockets).
    Socket(TcpId),
    /// The server is at `max_connections`: close the OS socket at once and report nothing
    /// more of it. The server fired `Error` and keeps listening ([BEHAVIOUR §2](crate::behaviour#2-tcpserversocket)).
    Refused,
}
