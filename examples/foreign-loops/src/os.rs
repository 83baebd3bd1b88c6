//! Sockets as the core's actions describe them, made with `socket2` (mio and tokio have no
//! option for keep-alive, backlog or multicast loop), and the close path's query. Every
//! socket is non-blocking; the layers then hand it to their own loop.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};

use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};
use sockstate::{ConnectOptions, MulticastInterface, SocketSettings};

/// `Action::Connect`: a non-blocking connect in progress (bound first to `local` if set).
pub fn connect(remote: SocketAddr, options: &ConnectOptions) -> io::Result<TcpStream> {
    let ConnectOptions {
        local,
        no_delay,
        keep_alive,
        ref settings,
    } = *options;
    let socket = Socket::new(
        Domain::for_address(remote),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    apply(&socket, remote, settings)?;
    socket.set_tcp_nodelay(no_delay)?;
    if let Some(idle) = keep_alive {
        socket.set_tcp_keepalive(&TcpKeepalive::new().with_time(idle))?;
    }
    if let Some(local) = local {
        socket.bind(&local.into())?;
    }
    match socket.connect(&remote.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(socket.into())
}

/// Whether a connect in progress is over: `Some(Ok(local))` connected, `Some(Err(_))`
/// failed, `None` still going (a spurious wake-up).
pub fn connect_result(stream: SockRef<'_>) -> Option<io::Result<SocketAddr>> {
    match stream.take_error() {
        Ok(Some(e)) | Err(e) => return Some(Err(e)),
        Ok(None) => {}
    }
    match stream.peer_addr() {
        Ok(_) => Some(stream.local_addr().and_then(|a| {
            a.as_socket()
                .ok_or_else(|| io::ErrorKind::InvalidData.into())
        })),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => None,
        Err(e) => Some(Err(e)),
    }
}

/// The settings of an action that are not at their defaults; `IPV6_V6ONLY` either way on an
/// IPv6 socket.
fn apply(socket: &Socket, local: SocketAddr, settings: &SocketSettings) -> io::Result<()> {
    if let Some(size) = settings.send_buffer {
        socket.set_send_buffer_size(size as usize)?;
    }
    if let Some(size) = settings.receive_buffer {
        socket.set_recv_buffer_size(size as usize)?;
    }
    if settings.broadcast {
        socket.set_broadcast(true)?;
    }
    let ttl = settings.multicast_ttl.map(u32::from);
    match (local, settings.multicast_interface) {
        (SocketAddr::V4(_), iface) => {
            if let Some(MulticastInterface::V4(iface)) = iface {
                socket.set_multicast_if_v4(&iface)?;
            }
            if let Some(ttl) = ttl {
                socket.set_multicast_ttl_v4(ttl)?;
            }
        }
        (SocketAddr::V6(_), iface) => {
            socket.set_only_v6(settings.ipv6_only)?;
            if let Some(MulticastInterface::V6(index)) = iface {
                socket.set_multicast_if_v6(index)?;
            }
            if let Some(hops) = ttl {
                socket.set_multicast_hops_v6(hops)?;
            }
        }
    }
    Ok(())
}

/// `Action::Listen`.
pub fn listen(
    local: SocketAddr,
    backlog: u32,
    reuse_address: bool,
    settings: &SocketSettings,
) -> io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(local),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    apply(&socket, local, settings)?;
    socket.set_reuse_address(reuse_address)?;
    socket.bind(&local.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

/// `Action::Bind`, with exactly the options it names (the core never asks `SO_REUSEADDR` for
/// port 0, [BEHAVIOUR §3](sockstate::behaviour#3-udpsocket)).
pub fn bind_udp(
    local: SocketAddr,
    reuse_address: bool,
    loopback: bool,
    settings: &SocketSettings,
) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(local), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_nonblocking(true)?;
    socket.set_reuse_address(reuse_address)?;
    apply(&socket, local, settings)?;
    match local {
        SocketAddr::V4(_) => socket.set_multicast_loop_v4(loopback)?,
        SocketAddr::V6(_) => socket.set_multicast_loop_v6(loopback)?,
    }
    socket.bind(&local.into())?;
    Ok(socket.into())
}

/// `Action::JoinMulticast` / `LeaveMulticast` on the socket's multicast interface, else on
/// the interface of its local address (any interface if it is unspecified); source-specific
/// when `source` is set (IPv4 only here: an IPv6 source is `Unsupported`).
pub fn membership(
    socket: SockRef<'_>,
    group: IpAddr,
    source: Option<IpAddr>,
    join: bool,
) -> io::Result<()> {
    let local = socket.local_addr()?.as_socket();
    match (group, source, local) {
        (IpAddr::V4(group), source, Some(SocketAddr::V4(local))) => {
            let own = socket.multicast_if_v4()?;
            let iface = if own.is_unspecified() {
                *local.ip()
            } else {
                own
            };
            match (source, join) {
                (None, true) => socket.join_multicast_v4(&group, &iface),
                (None, false) => socket.leave_multicast_v4(&group, &iface),
                (Some(IpAddr::V4(source)), true) => socket.join_ssm_v4(&source, &group, &iface),
                (Some(IpAddr::V4(source)), false) => socket.leave_ssm_v4(&source, &group, &iface),
                (Some(IpAddr::V6(_)), _) => Err(io::ErrorKind::InvalidInput.into()),
            }
        }
        (IpAddr::V6(group), None, _) => {
            let index = socket.multicast_if_v6()?;
            match join {
                true => socket.join_multicast_v6(&group, index),
                false => socket.leave_multicast_v6(&group, index),
            }
        }
        (IpAddr::V6(_), Some(_), _) => Err(io::ErrorKind::Unsupported.into()),
        _ => Err(io::ErrorKind::InvalidInput.into()),
    }
}

/// `Action::QueryUnacked`: bytes (our FIN counting one) the kernel holds unsent or
/// unacknowledged, or a pending error when some are (it is then `Input::Failed`). `Ok(None)`
/// where the OS cannot tell.
pub fn unacked(socket: SockRef<'_>) -> io::Result<Option<usize>> {
    let count = outq(&socket);
    if count.is_some_and(|n| n > 0) {
        if let Some(e) = socket.take_error()? {
            return Err(e);
        }
    }
    Ok(count)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn outq(socket: &SockRef<'_>) -> Option<usize> {
    use std::os::fd::AsRawFd;
    let mut count: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (Linux's TIOCOUTQ number) writes one `int` through the pointer, which
    // points at `count`; the descriptor is the live socket `socket` borrows.
    let r = unsafe { libc::ioctl(socket.as_raw_fd(), libc::TIOCOUTQ, &mut count) };
    (r == 0).then(|| usize::try_from(count).unwrap_or(0))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn outq(_: &SockRef<'_>) -> Option<usize> {
    None
}

/// A lookup's addresses (of `(name, 0)`) as `Input::Resolved` wants them, in the resolver's
/// order. `getaddrinfo`'s `EAI_AGAIN` does not survive `std`'s error, so every failure is
/// `NotFound` (both reach the app as `DomainNotFoundError`).
pub fn addresses(
    lookup: io::Result<impl Iterator<Item = SocketAddr>>,
) -> Result<Vec<std::net::IpAddr>, sockstate::ResolveError> {
    match lookup {
        Ok(addrs) => Ok(addrs.map(|a| a.ip()).collect()),
        Err(_) => Err(sockstate::ResolveError::NotFound),
    }
}
