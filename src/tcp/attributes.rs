//! `readyState` (of every socket type) and the other attributes a `TCPSocket` reports.

use std::net::SocketAddr;
use std::time::Instant;

use crate::host::Host;
use crate::id::ServerId;
use crate::payload::BinaryType;

use super::{Announce, Phase, TcpSocket};

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

impl TcpSocket {
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
}
