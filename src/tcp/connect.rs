//! How a `TCPSocket` comes to be: `open`'s connect attempts (RFC 8305 candidates, racing) and a
//! server's accepted socket.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrayvec::ArrayVec;

use crate::core::Ctx;
use crate::error::InputError;
use crate::host::Host;
use crate::id::{ServerId, TcpId};
use crate::io::{Action, ConnectOptions, SocketSettings};
use crate::payload::BinaryType;
use crate::tls::{Role, ServerConfig};

use super::{Announce, DnsQueryType, Phase, Securing, TcpOptions, TcpSocket};

/// Most addresses one `open` tries (RFC 8305 candidates), in the order they are tried.
pub const MAX_CANDIDATES: usize = 16;

/// The state that exists only until the connection is established.
#[derive(Debug)]
pub(super) struct Connecting {
    pub(super) resolving: bool,
    pub(super) candidates: ArrayVec<SocketAddr, MAX_CANDIDATES>,
    /// `candidates[..started]` have been tried.
    pub(super) started: u8,
    /// Bit `i`: attempt `i` is in flight.
    pub(super) pending: u16,
    pub(super) last_error: Option<io::ErrorKind>,
    pub(super) next_attempt_at: Option<Instant>,
    pub(super) timeout_at: Instant,
    pub(super) local_ip: Option<IpAddr>,
    local_port: u16,
    no_delay: bool,
    keep_alive: Option<Duration>,
    settings: SocketSettings,
    pub(super) dns_query_type: Option<DnsQueryType>,
    pub(super) halfclose: bool,
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

impl TcpSocket {
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
}

impl TcpSocket {
    pub(super) fn attempt(&mut self, attempt: u8) -> Result<&mut Connecting, InputError> {
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

    pub(super) fn start_attempt(&mut self, now: Instant, ctx: &mut Ctx) {
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
            options: Box::new(ConnectOptions {
                local,
                no_delay: c.no_delay,
                keep_alive: c.keep_alive,
                settings: c.settings,
            }),
        });
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
pub(super) fn candidates(
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
