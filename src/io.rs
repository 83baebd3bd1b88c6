//! What crosses the boundary between the core and whoever does the I/O (DESIGN "The shape"):
//! [`Input`]s in, [`Output`]s out.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::SocketError;
use crate::host::DnsName;
use crate::id::{ServerId, SocketId, TcpId};
use crate::payload::Data;

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

/// Work for the I/O layer. Every socket's life ends with exactly one `Release`.
///
/// For a TCP socket the I/O layer keeps one OS socket per connect attempt until one connects;
/// that one is then the socket of the id.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Resolve `name`; answer with [`Input::Resolved`].
    Resolve {
        /// The socket waiting for the answer.
        id: TcpId,
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
        /// Bind here first (`localAddress`/`localPort`), if set.
        local: Option<SocketAddr>,
        /// Set `TCP_NODELAY`.
        no_delay: bool,
        /// Enable keep-alive with this idle time, if set.
        keep_alive: Option<Duration>,
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
    /// do not read at all, so the peer feels back-pressure.
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
    /// Close every OS socket of this id and forget it; report nothing more about it.
    Release {
        /// The socket.
        id: SocketId,
    },
}

/// A spec event for the app. Per socket, events come in the order things happened and `Close`
/// is always the last one.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// `connect` of a `TCPServerSocket`: `socket` was accepted and is `open` (after its TLS
    /// handshake on a secure server), its address attributes filled from the OS.
    Connect {
        /// The server that accepted it.
        server: ServerId,
        /// The new socket.
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

/// Something the OS reported, for [`Core::handle_input`](crate::Core::handle_input).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input {
    /// The answer to [`Action::Resolve`], in the resolver's order of preference.
    Resolved {
        /// The socket.
        id: TcpId,
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
    /// The connection failed after it was established (reset, broken pipe, timeout...).
    Failed {
        /// The socket.
        id: TcpId,
        /// Why.
        error: io::ErrorKind,
    },
}
