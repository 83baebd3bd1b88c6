//! Syscall helpers shared by every kind of socket.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use sockstate::SocketSettings;

/// Retries a syscall interrupted by a signal (`EINTR`).
pub(super) fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Where the OS actually bound a socket (the real port when 0 was asked for).
pub(super) fn bound_address(socket: &Socket) -> io::Result<SocketAddr> {
    socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable))
}

/// The settings of an action that are not at their default (the OS keeps its own), except
/// the multicast interface, which UDP sockets choose themselves (with the driver's fallback).
/// `IPV6_V6ONLY` is set either way on an IPv6 socket, so that the OS default never decides
/// what `::` takes.
pub(super) fn apply_settings(
    socket: &Socket,
    local: SocketAddr,
    settings: &SocketSettings,
) -> io::Result<()> {
    if let Some(size) = settings.send_buffer {
        socket.set_send_buffer_size(size as usize)?;
    }
    if let Some(size) = settings.receive_buffer {
        socket.set_recv_buffer_size(size as usize)?;
    }
    if local.is_ipv6() {
        socket.set_only_v6(settings.ipv6_only)?;
    }
    if settings.broadcast {
        socket.set_broadcast(true)?;
    }
    if let Some(ttl) = settings.multicast_ttl.map(u32::from) {
        match local {
            SocketAddr::V4(_) => socket.set_multicast_ttl_v4(ttl)?,
            SocketAddr::V6(_) => socket.set_multicast_hops_v6(ttl)?,
        }
    }
    Ok(())
}

/// A new non-blocking socket (close-on-exec, as socket2 makes every socket): non-blocking from
/// `socket(2)` itself where the OS takes the flag there (two `fcntl` calls fewer per socket),
/// else made so at once.
pub(super) fn new_socket(domain: Domain, ty: Type, protocol: Protocol) -> io::Result<Socket> {
    #[cfg(any(
        target_os = "android",
        target_os = "dragonfly",
        target_os = "freebsd",
        target_os = "fuchsia",
        target_os = "illumos",
        target_os = "linux",
        target_os = "netbsd",
        target_os = "openbsd",
    ))]
    return Socket::new(domain, ty.nonblocking(), Some(protocol));
    #[allow(unreachable_code)]
    {
        let socket = Socket::new(domain, ty, Some(protocol))?;
        socket.set_nonblocking(true)?;
        Ok(socket)
    }
}

/// Where `send` cannot raise `SIGPIPE` by a flag, the socket says so itself.
pub(super) fn set_nosigpipe(socket: &Socket) -> io::Result<()> {
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    socket.set_nosigpipe(true)?;
    let _ = socket;
    Ok(())
}

/// The `int` a received control message of `level` and `kind` carries (`TCP_CM_INQ`,
/// `UDP_GRO`), the last one if there are several; `None` when there is none (or no control
/// buffer at all). `msg` is a header a `recvmsg`/`recvmmsg` has just filled in.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn cmsg_int(
    msg: &libc::msghdr,
    level: libc::c_int,
    kind: libc::c_int,
) -> Option<libc::c_int> {
    if msg.msg_control.is_null() {
        return None;
    }
    let mut value = None;
    // SAFETY: the kernel set `msg_controllen` to the control messages it wrote into the
    // buffer `msg_control` points at; the CMSG macros walk only within that, and the data is
    // read unaligned, as its length says it holds an `int`.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            let header = &*cmsg;
            if header.cmsg_level == level
                && header.cmsg_type == kind
                && header.cmsg_len as usize
                    >= libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as usize
            {
                value = Some(libc::CMSG_DATA(cmsg).cast::<libc::c_int>().read_unaligned());
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    value
}
