//! App calls as values, so that one vocabulary serves the simulator's transcript, the invariant
//! checker and the fuzz and property tests.

use std::fmt;
use std::time::Instant;

use bytes::Bytes;

use crate::{ApiError, Core, SocketId, TcpId, TcpOptions};

/// One call of the socket API on a [`Core`], for [`Sim::call`](super::Sim::call) and
/// [`CheckedCore::call`](super::CheckedCore::call). Equal calls have equal arguments, TLS
/// configs being the same `Arc`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Call {
    /// [`Core::tcp_open`].
    TcpOpen {
        /// `host`.
        host: String,
        /// `port`.
        port: u16,
        /// `options`.
        options: TcpOptions,
    },
    /// [`Core::tcp_send`] (text is sent as its UTF-8 bytes).
    TcpSend {
        /// The socket.
        id: TcpId,
        /// The bytes.
        data: Bytes,
    },
    /// [`Core::tcp_close`].
    TcpClose {
        /// The socket.
        id: TcpId,
    },
    /// [`Core::tcp_close_immediately`].
    TcpCloseImmediately {
        /// The socket.
        id: TcpId,
    },
    /// [`Core::tcp_halfclose`].
    TcpHalfclose {
        /// The socket.
        id: TcpId,
    },
    /// [`Core::tcp_suspend`].
    TcpSuspend {
        /// The socket.
        id: TcpId,
    },
    /// [`Core::tcp_resume`].
    TcpResume {
        /// The socket.
        id: TcpId,
    },
}

/// What a successful [`Call`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Returned {
    /// The call returns nothing.
    Done,
    /// `send` returned this (`true`: below the high-water mark).
    Sent(bool),
    /// `open` created this socket.
    Opened(TcpId),
}

impl Call {
    /// Runs the call on `core` at `now`.
    pub fn apply(&self, core: &mut Core, now: Instant) -> Result<Returned, ApiError> {
        let done = |r: Result<(), ApiError>| r.map(|()| Returned::Done);
        match self {
            Call::TcpOpen {
                host,
                port,
                options,
            } => core
                .tcp_open(now, host, *port, options.clone())
                .map(Returned::Opened),
            Call::TcpSend { id, data } => core.tcp_send(*id, data.clone()).map(Returned::Sent),
            Call::TcpClose { id } => done(core.tcp_close(now, *id)),
            Call::TcpCloseImmediately { id } => done(core.tcp_close_immediately(*id)),
            Call::TcpHalfclose { id } => done(core.tcp_halfclose(now, *id)),
            Call::TcpSuspend { id } => done(core.tcp_suspend(*id)),
            Call::TcpResume { id } => done(core.tcp_resume(now, *id)),
        }
    }

    /// The socket the call is about (`None` for calls that create one).
    pub fn socket(&self) -> Option<SocketId> {
        match self {
            Call::TcpOpen { .. } => None,
            Call::TcpSend { id, .. }
            | Call::TcpClose { id }
            | Call::TcpCloseImmediately { id }
            | Call::TcpHalfclose { id }
            | Call::TcpSuspend { id }
            | Call::TcpResume { id } => Some((*id).into()),
        }
    }
}

impl PartialEq for Call {
    fn eq(&self, other: &Call) -> bool {
        match (self, other) {
            (
                Call::TcpOpen {
                    host,
                    port,
                    options,
                },
                Call::TcpOpen {
                    host: h,
                    port: p,
                    options: o,
                },
            ) => host == h && port == p && same_tcp_options(options, o),
            _ => format!("{self:?}") == format!("{other:?}"),
        }
    }
}

impl Eq for Call {}

fn same_arc<T>(a: &Option<std::sync::Arc<T>>, b: &Option<std::sync::Arc<T>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b),
        _ => false,
    }
}

fn same_tcp_options(a: &TcpOptions, b: &TcpOptions) -> bool {
    let TcpOptions {
        local_address,
        local_port,
        use_secure_transport,
        tls_config,
        binary_type,
        no_delay,
        keep_alive,
        allow_half_open,
    } = a;
    *local_address == b.local_address
        && *local_port == b.local_port
        && *use_secure_transport == b.use_secure_transport
        && same_arc(tls_config, &b.tls_config)
        && *binary_type == b.binary_type
        && *no_delay == b.no_delay
        && *keep_alive == b.keep_alive
        && *allow_half_open == b.allow_half_open
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::TcpOpen { host, port, .. } => write!(f, "tcp_open({host}, {port})"),
            Call::TcpSend { id, data } => write!(f, "tcp_send({id}, {} bytes)", data.len()),
            Call::TcpClose { id } => write!(f, "tcp_close({id})"),
            Call::TcpCloseImmediately { id } => write!(f, "tcp_close_immediately({id})"),
            Call::TcpHalfclose { id } => write!(f, "tcp_halfclose({id})"),
            Call::TcpSuspend { id } => write!(f, "tcp_suspend({id})"),
            Call::TcpResume { id } => write!(f, "tcp_resume({id})"),
        }
    }
}
