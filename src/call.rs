//! App calls as values, so that one vocabulary serves recordings and their replay
//! ([`replay`](crate::replay)), the simulator's transcript, the invariant checker and the fuzz and
//! property tests.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bytes::Bytes;

use crate::{
    ApiError, Core, ServerId, ServerOptions, SocketId, TcpId, TcpOptions, UdpId, UdpOptions,
};

/// One call of the socket API on a [`Core`]: what a recording stores and its replay makes
/// ([`replay`](crate::replay)), and, with the feature `sim`, what `Sim::call` and
/// `CheckedCore::call` take. Equal calls have equal arguments, TLS
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
    /// [`Core::tcp_upgrade_to_secure`].
    TcpUpgradeToSecure {
        /// The socket.
        id: TcpId,
    },
    /// [`Core::server_listen`].
    ServerListen {
        /// `options`.
        options: ServerOptions,
    },
    /// [`Core::server_close`].
    ServerClose {
        /// The server.
        id: ServerId,
    },
    /// [`Core::server_suspend`].
    ServerSuspend {
        /// The server.
        id: ServerId,
    },
    /// [`Core::server_resume`].
    ServerResume {
        /// The server.
        id: ServerId,
    },
    /// [`Core::udp_open`].
    UdpOpen {
        /// `options`.
        options: UdpOptions,
    },
    /// [`Core::udp_send`].
    UdpSend {
        /// The socket.
        id: UdpId,
        /// The datagram.
        data: Bytes,
        /// `remoteAddress`/`remotePort`, if given.
        to: Option<SocketAddr>,
    },
    /// [`Core::udp_join_multicast_group`].
    UdpJoin {
        /// The socket.
        id: UdpId,
        /// The group.
        group: IpAddr,
    },
    /// [`Core::udp_leave_multicast_group`].
    UdpLeave {
        /// The socket.
        id: UdpId,
        /// The group.
        group: IpAddr,
    },
    /// [`Core::udp_add_source_specific_membership`].
    UdpAddSource {
        /// The socket.
        id: UdpId,
        /// The source.
        source: IpAddr,
        /// The group.
        group: IpAddr,
    },
    /// [`Core::udp_drop_source_specific_membership`].
    UdpDropSource {
        /// The socket.
        id: UdpId,
        /// The source.
        source: IpAddr,
        /// The group.
        group: IpAddr,
    },
    /// [`Core::udp_suspend`].
    UdpSuspend {
        /// The socket.
        id: UdpId,
    },
    /// [`Core::udp_resume`].
    UdpResume {
        /// The socket.
        id: UdpId,
    },
    /// [`Core::udp_close`].
    UdpClose {
        /// The socket.
        id: UdpId,
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
    /// `listen` created this server.
    Listening(ServerId),
    /// `open` created this UDP socket.
    Bound(UdpId),
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
            Call::TcpResume { id } => done(core.tcp_resume(*id)),
            Call::TcpUpgradeToSecure { id } => done(core.tcp_upgrade_to_secure(*id)),
            Call::ServerListen { options } => core
                .server_listen(now, options.clone())
                .map(Returned::Listening),
            Call::ServerClose { id } => done(core.server_close(now, *id)),
            Call::ServerSuspend { id } => done(core.server_suspend(*id)),
            Call::ServerResume { id } => done(core.server_resume(*id)),
            Call::UdpOpen { options } => core.udp_open(now, options.clone()).map(Returned::Bound),
            Call::UdpSend { id, data, to } => {
                core.udp_send(*id, data.clone(), *to).map(Returned::Sent)
            }
            Call::UdpJoin { id, group } => done(core.udp_join_multicast_group(*id, *group)),
            Call::UdpLeave { id, group } => done(core.udp_leave_multicast_group(*id, *group)),
            Call::UdpAddSource { id, source, group } => {
                done(core.udp_add_source_specific_membership(*id, *source, *group))
            }
            Call::UdpDropSource { id, source, group } => {
                done(core.udp_drop_source_specific_membership(*id, *source, *group))
            }
            Call::UdpSuspend { id } => done(core.udp_suspend(*id)),
            Call::UdpResume { id } => done(core.udp_resume(*id)),
            Call::UdpClose { id } => done(core.udp_close(now, *id)),
        }
    }

    /// The socket the call is about (`None` for calls that create one).
    pub fn socket(&self) -> Option<SocketId> {
        match self {
            Call::TcpOpen { .. } | Call::ServerListen { .. } | Call::UdpOpen { .. } => None,
            Call::TcpSend { id, .. }
            | Call::TcpClose { id }
            | Call::TcpCloseImmediately { id }
            | Call::TcpHalfclose { id }
            | Call::TcpSuspend { id }
            | Call::TcpResume { id }
            | Call::TcpUpgradeToSecure { id } => Some((*id).into()),
            Call::ServerClose { id } | Call::ServerSuspend { id } | Call::ServerResume { id } => {
                Some((*id).into())
            }
            Call::UdpSend { id, .. }
            | Call::UdpJoin { id, .. }
            | Call::UdpLeave { id, .. }
            | Call::UdpAddSource { id, .. }
            | Call::UdpDropSource { id, .. }
            | Call::UdpSuspend { id }
            | Call::UdpResume { id }
            | Call::UdpClose { id } => Some((*id).into()),
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
            (Call::ServerListen { options }, Call::ServerListen { options: o }) => {
                let ServerOptions {
                    local_address,
                    local_port,
                    binary_type,
                    backlog,
                    address_reuse,
                    max_connections,
                    use_secure_transport,
                    tls_config,
                    ipv6_only,
                    send_buffer_size,
                    receive_buffer_size,
                } = options;
                *local_address == o.local_address
                    && *local_port == o.local_port
                    && *binary_type == o.binary_type
                    && *backlog == o.backlog
                    && *address_reuse == o.address_reuse
                    && *max_connections == o.max_connections
                    && *use_secure_transport == o.use_secure_transport
                    && same_arc(tls_config, &o.tls_config)
                    && *ipv6_only == o.ipv6_only
                    && *send_buffer_size == o.send_buffer_size
                    && *receive_buffer_size == o.receive_buffer_size
            }
            // The other calls' arguments all compare with `==`; their `Debug` shows all of them.
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
        send_buffer_size,
        receive_buffer_size,
        dns_query_type,
        allow_half_open,
    } = a;
    *local_address == b.local_address
        && *local_port == b.local_port
        && *use_secure_transport == b.use_secure_transport
        && same_arc(tls_config, &b.tls_config)
        && *binary_type == b.binary_type
        && *no_delay == b.no_delay
        && *keep_alive == b.keep_alive
        && *send_buffer_size == b.send_buffer_size
        && *receive_buffer_size == b.receive_buffer_size
        && *dns_query_type == b.dns_query_type
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
            Call::TcpUpgradeToSecure { id } => write!(f, "tcp_upgrade_to_secure({id})"),
            Call::ServerListen { options } => write!(
                f,
                "server_listen({:?}:{:?})",
                options.local_address, options.local_port
            ),
            Call::ServerClose { id } => write!(f, "server_close({id})"),
            Call::ServerSuspend { id } => write!(f, "server_suspend({id})"),
            Call::ServerResume { id } => write!(f, "server_resume({id})"),
            Call::UdpOpen { options } => write!(
                f,
                "udp_open({:?}:{:?})",
                options.local_address, options.local_port
            ),
            Call::UdpSend { id, data, to } => {
                write!(f, "udp_send({id}, {} bytes, {to:?})", data.len())
            }
            Call::UdpJoin { id, group } => write!(f, "udp_join({id}, {group})"),
            Call::UdpLeave { id, group } => write!(f, "udp_leave({id}, {group})"),
            Call::UdpAddSource { id, source, group } => {
                write!(f, "udp_add_source({id}, {source}, {group})")
            }
            Call::UdpDropSource { id, source, group } => {
                write!(f, "udp_drop_source({id}, {source}, {group})")
            }
            Call::UdpSuspend { id } => write!(f, "udp_suspend({id})"),
            Call::UdpResume { id } => write!(f, "udp_resume({id})"),
            Call::UdpClose { id } => write!(f, "udp_close({id})"),
        }
    }
}
