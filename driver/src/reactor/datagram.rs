//! UDP sockets: binding with their options, batched reads, and multicast memberships.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};

use bytes::Bytes;
use polling::Poller;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use sockstate::{Input, UdpId};

use super::os::{new_socket, retry};
use super::sources::{Io, Owner};
use super::stream::Attempt;
use super::{Reactor, Report};

/// A whole UDP datagram always fits: the largest IPv4 payload is 65 507 bytes and the largest
/// IPv6 one (without jumbograms) 65 527, so nothing read is ever truncated.
const DATAGRAM_BUFFER: usize = 65_536;

/// Datagrams one read call takes at most, each into its own [`DATAGRAM_BUFFER`]: with
/// `recvmmsg` (Linux), one syscall reads what is queued, up to this many, and a short count
/// says the queue is empty (no extra call to see `EAGAIN`). Elsewhere one `recv_from` each.
/// The buffer is allocated zeroed at the first read and only the pages datagrams land in
/// become resident.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) const DATAGRAM_BATCH: usize = 8;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) const DATAGRAM_BATCH: usize = 1;

impl Reactor {
    /// `Action::Bind`: a bound UDP socket with its options, not read until `SetReading`.
    pub(crate) fn bind(
        &mut self,
        poller: &Poller,
        id: UdpId,
        local: SocketAddr,
        reuse_address: bool,
        loopback: bool,
        reports: &mut Vec<Report>,
    ) {
        let socket = self.start_udp(local, reuse_address, loopback);
        let bound = self.open(poller, socket, |s| (Io::Udp(s.into()), Owner::Udp(id)));
        reports.push(
            match bound {
                Ok(local) => Input::Bound { id, local },
                Err(e) => Input::BindFailed {
                    id,
                    error: e.kind(),
                },
            }
            .into(),
        );
    }

    /// `Action::JoinMulticast` on the configured interface, else the socket's local address's
    /// (any interface if that is unspecified).
    pub(crate) fn join(&mut self, id: UdpId, group: IpAddr, reports: &mut Vec<Report>) {
        if let Err(e) = self.membership(id, group, true) {
            reports.push(
                Input::JoinFailed {
                    id,
                    group,
                    error: e.kind(),
                }
                .into(),
            );
        }
    }

    /// `Action::LeaveMulticast` (a failure is not reported).
    pub(crate) fn leave(&mut self, id: UdpId, group: IpAddr) {
        let _ = self.membership(id, group, false);
    }

    fn membership(&self, id: UdpId, group: IpAddr, join: bool) -> io::Result<()> {
        let source = self
            .main(id.into())
            .and_then(|key| self.sources.get(key))
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
        let sock = source.io.sock();
        match group {
            IpAddr::V4(group) => {
                let local = sock.local_addr()?.as_socket();
                let iface = self.interface_v4(local).unwrap_or(Ipv4Addr::UNSPECIFIED);
                if join {
                    sock.join_multicast_v4(&group, &iface)
                } else {
                    sock.leave_multicast_v4(&group, &iface)
                }
            }
            IpAddr::V6(group) => {
                let index = self.limits.multicast_interface_v6;
                if join {
                    sock.join_multicast_v6(&group, index)
                } else {
                    sock.leave_multicast_v6(&group, index)
                }
            }
        }
    }

    /// The IPv4 multicast interface: the configured one, else a specific local address.
    fn interface_v4(&self, local: Option<SocketAddr>) -> Option<Ipv4Addr> {
        self.limits.multicast_interface_v4.or(match local {
            Some(SocketAddr::V4(a)) if !a.ip().is_unspecified() => Some(*a.ip()),
            _ => None,
        })
    }

    /// Reads what is queued, at most `datagrams_per_turn` datagrams (fairness between
    /// sockets), [`DATAGRAM_BATCH`] per call. Readiness is cleared when the queue was found
    /// empty; a source stopped by the limit stays ready (and due).
    pub(super) fn read_datagrams(&mut self, key: usize, reports: &mut Vec<Report>) {
        let Some(source) = self.sources.get_mut(key) else {
            return;
        };
        let (Io::Udp(socket), Owner::Udp(id)) = (&source.io, source.owner) else {
            return;
        };
        let mut left = self.limits.datagrams_per_turn.max(1);
        while left > 0 {
            let asked = left.min(DATAGRAM_BATCH);
            let read = recv_datagrams(socket, &mut self.datagram, asked, |data, remote| {
                let data = Bytes::copy_from_slice(data);
                reports.push(Input::Datagram { id, data, remote }.into());
            });
            match read {
                Ok(n) if n == asked => left -= n,
                // Fewer than asked: the queue is empty for now; a datagram arriving
                // since raises a new event. (A pending error could also cut a batch
                // short, but an unconnected UDP socket, as ours are, is never given
                // one: Linux reports ICMP errors only to connected sockets or with
                // `IP_RECVERR`.)
                Ok(_) => {
                    source.ready.read = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    source.ready.read = false;
                    return;
                }
                // A UDP read error (an ICMP report of an earlier send) is consumed by
                // the failing call and concerns no datagram: there is nothing to
                // report, and the next read goes on (counted against the limit, so
                // that no error can keep the loop here).
                Err(_) => left -= 1,
            }
        }
    }

    /// A UDP socket with its options, bound.
    fn start_udp(&self, local: SocketAddr, reuse: bool, loopback: bool) -> io::Result<Socket> {
        let socket = new_socket(Domain::for_address(local), Type::DGRAM, Protocol::UDP)?;
        socket.set_reuse_address(reuse)?;
        match local {
            SocketAddr::V4(_) => {
                socket.set_multicast_loop_v4(loopback)?;
                if let Some(iface) = self.interface_v4(Some(local)) {
                    socket.set_multicast_if_v4(&iface)?;
                }
            }
            SocketAddr::V6(_) => {
                socket.set_multicast_loop_v6(loopback)?;
                if self.limits.multicast_interface_v6 != 0 {
                    socket.set_multicast_if_v6(self.limits.multicast_interface_v6)?;
                }
            }
        }
        socket.bind(&SockAddr::from(local))?;
        Ok(socket)
    }
}

/// Tries to send one datagram to `to`, reporting `Sent` or `SendFailed`.
pub(super) fn send_datagram(
    socket: &UdpSocket,
    id: UdpId,
    data: &Bytes,
    to: Option<SocketAddr>,
    reports: &mut Vec<Report>,
) -> Attempt {
    let Some(to) = to else {
        return Attempt::Done;
    };
    match retry(|| socket.send_to(data, to)) {
        Ok(_) => reports.push(Input::Sent { id }.into()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Attempt::Blocked,
        Err(e) => reports.push(
            Input::SendFailed {
                id,
                error: e.kind(),
            }
            .into(),
        ),
    }
    Attempt::Done
}

/// Reads up to `max` (at most [`DATAGRAM_BATCH`]) queued datagrams with one `recvmmsg`, each
/// whole into its own [`DATAGRAM_BUFFER`] slot of `buf`, and hands each to `each` in order.
/// Returns how many were read; `WouldBlock` when none was queued.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn recv_datagrams(
    socket: &UdpSocket,
    buf: &mut Vec<u8>,
    max: usize,
    mut each: impl FnMut(&[u8], SocketAddr),
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;

    use socket2::SockAddrStorage;

    let n = max.clamp(1, DATAGRAM_BATCH);
    if buf.len() < DATAGRAM_BATCH * DATAGRAM_BUFFER {
        // Zeroed by the allocator (fresh pages), not written: only used pages become resident.
        *buf = vec![0; DATAGRAM_BATCH * DATAGRAM_BUFFER];
    }
    let mut names: [SockAddrStorage; DATAGRAM_BATCH] =
        std::array::from_fn(|_| SockAddrStorage::zeroed());
    let mut iovecs: [libc::iovec; DATAGRAM_BATCH] = std::array::from_fn(|_| libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    });
    // SAFETY: all-zero is a valid `mmsghdr` (null pointers, zero lengths).
    let mut msgs: [libc::mmsghdr; DATAGRAM_BATCH] = unsafe { std::mem::zeroed() };
    let slots = buf.chunks_exact_mut(DATAGRAM_BUFFER);
    for (((slot, iov), msg), name) in slots.zip(&mut iovecs).zip(&mut msgs).zip(&mut names) {
        iov.iov_base = slot.as_mut_ptr().cast();
        iov.iov_len = slot.len();
        msg.msg_hdr.msg_iov = iov;
        msg.msg_hdr.msg_iovlen = 1;
        msg.msg_hdr.msg_namelen = name.size_of();
        msg.msg_hdr.msg_name = (name as *mut SockAddrStorage).cast();
    }
    let read = retry(|| {
        // SAFETY: the first `n` headers point at live iovecs, each covering one slot of `buf`,
        // and at live address storages of the length given; the kernel writes only within
        // them, and all of them outlive the call.
        let r = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as _,
                libc::MSG_DONTWAIT as _,
                std::ptr::null_mut(),
            )
        };
        usize::try_from(r).map_err(|_| io::Error::last_os_error())
    })?;
    for (i, (msg, name)) in msgs.iter().zip(&mut names).take(read).enumerate() {
        let len = (msg.msg_len as usize).min(DATAGRAM_BUFFER);
        let namelen = msg.msg_hdr.msg_namelen;
        let storage = std::mem::replace(name, SockAddrStorage::zeroed());
        // SAFETY: the kernel wrote a socket address of `namelen` bytes (at most the storage's
        // size) into this storage.
        let remote = unsafe { SockAddr::new(storage, namelen) }.as_socket();
        if let Some(remote) = remote {
            each(&buf[i * DATAGRAM_BUFFER..][..len], remote);
        }
    }
    Ok(read)
}

/// One `recv_from` (platforms without `recvmmsg`): see the Linux version.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) fn recv_datagrams(
    socket: &UdpSocket,
    buf: &mut Vec<u8>,
    _max: usize,
    mut each: impl FnMut(&[u8], SocketAddr),
) -> io::Result<usize> {
    if buf.len() < DATAGRAM_BUFFER {
        *buf = vec![0; DATAGRAM_BUFFER];
    }
    let (n, remote) = retry(|| socket.recv_from(&mut buf[..DATAGRAM_BUFFER]))?;
    each(&buf[..n], remote);
    Ok(1)
}
