//! Datagrams in batches: the sends of a turn written with few syscalls, and reads that take
//! many datagrams per syscall.
//!
//! Sending (Linux): the queued datagrams go out in order, as
//! - one `sendmsg` with a `UDP_SEGMENT` control message (UDP GSO) for a run of datagrams to
//!   one destination, all of one size but the last, which may be shorter, as GSO allows: the
//!   kernel cuts the run back into those datagrams;
//! - one `sendmmsg` for other datagrams (any sizes and destinations), up to the next run;
//! - one `sendto` for a datagram alone (the common case of a request or a reply).
//!
//! GSO is used where the kernel takes the option (probed at bind), for at most
//! [`GSO_SEGMENTS`] datagrams and a total a datagram can carry, for segments that fit a
//! 1 500-byte MTU (a larger one may not fit the path, which the kernel refuses), and never to
//! a multicast group. A GSO send the kernel refuses as such (`EIO` from a device that cannot
//! checksum it, `EINVAL`, `EMSGSIZE` for a path MTU below the segment) turns GSO off for the
//! socket and the same datagrams go again without it: none is lost or reordered. Any other
//! error sends that run again one message per datagram, so that the error is reported for the
//! datagram it concerns (`SendFailed`) and the others still go.
//!
//! Reading (Linux): `recvmmsg` takes up to [`DATAGRAM_BATCH`] messages per call, and with
//! `UDP_GRO` on, a message may hold several datagrams of one sender, all of the size the
//! kernel reports but the last: the message is one `Datagrams` input (the buffer and the
//! segment size), which the core cuts into its datagrams without copying.
//!
//! Elsewhere: one `send_to` and one `recv_from` per datagram.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};

use bytes::{Bytes, BytesMut};
use sockstate::{Input, UdpId};

#[cfg(target_os = "linux")]
use super::os::cmsg_int;
use super::os::retry;
use super::stream::SMALL_READ;
use super::Report;

/// A whole UDP datagram always fits, and so does a GRO message (at most 65 535 bytes of IP
/// packet): the largest IPv4 payload is 65 507 bytes and the largest IPv6 one (without
/// jumbograms) 65 527, so nothing read is ever truncated.
pub(super) const DATAGRAM_BUFFER: usize = 65_536;

/// Messages one read call takes at most, each into its own [`DATAGRAM_BUFFER`]: with
/// `recvmmsg` (Linux), one syscall reads what is queued, up to this many, and a short count
/// says the queue is empty (no extra call to see `EAGAIN`). Elsewhere one `recv_from` each.
#[cfg(target_os = "linux")]
pub(super) const DATAGRAM_BATCH: usize = 8;
#[cfg(not(target_os = "linux"))]
pub(super) const DATAGRAM_BATCH: usize = 1;

/// Most datagrams in one GSO send (the kernel's `UDP_MAX_SEGMENTS` on every kernel with GSO)
/// and in one `sendmmsg`.
pub(super) const GSO_SEGMENTS: usize = 64;

/// Largest GSO segment: a datagram that fits a 1 500-byte MTU (IPv4: 20-byte IP header;
/// IPv6: 40) with its 8-byte UDP header. Larger runs go with `sendmmsg`.
const GSO_SEGMENT_MAX_V4: usize = 1_472;
const GSO_SEGMENT_MAX_V6: usize = 1_452;

/// A bound UDP socket with the datagrams it was asked to send and not yet sent.
pub(super) struct Udp {
    pub(super) socket: UdpSocket,
    /// Datagrams taken and not yet handed to the OS, in order: collected during a turn,
    /// written together at its end, or held while the socket would block.
    pub(super) out: VecDeque<(Bytes, SocketAddr)>,
    /// Runs of equal-size datagrams go as one GSO send.
    pub(super) gso: bool,
    /// The kernel coalesces datagrams it receives (`UDP_GRO`).
    pub(super) gro: bool,
    /// In [`Reactor::sends`](super::Reactor::sends).
    pub(super) flushing: bool,
}

impl Udp {
    /// Turns GSO and GRO on where the kernel takes them.
    pub(super) fn new(socket: UdpSocket) -> Udp {
        #[cfg(target_os = "linux")]
        let (gso, gro) = (
            // Segment size 0 is "none": the option is only probed (`ENOPROTOOPT` before 4.18).
            set_udp_option(&socket, libc::UDP_SEGMENT, 0).is_ok(),
            set_udp_option(&socket, libc::UDP_GRO, 1).is_ok(),
        );
        #[cfg(not(target_os = "linux"))]
        let (gso, gro) = (false, false);
        Udp {
            socket,
            out: VecDeque::new(),
            gso,
            gro,
            flushing: false,
        }
    }

    /// Sends what [`out`](Self::out) holds, in order, reporting one `Sent` with the count of
    /// each syscall, and `SendFailed` per datagram refused. `false` when the socket would
    /// block (the rest stays queued).
    pub(super) fn send_queued(&mut self, id: UdpId, reports: &mut Vec<Report>) -> bool {
        while !self.out.is_empty() {
            let result = self.send_some();
            match result {
                Ok(0) => {} // GSO refused: the same datagrams go again without it
                Ok(count) => {
                    // One is a request or a reply: no `drain` for it.
                    match count {
                        1 => drop(self.out.pop_front()),
                        _ => drop(self.out.drain(..count)),
                    }
                    reports.push(Input::Sent { id, count }.into());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) => {
                    self.out.pop_front();
                    let error = e.kind();
                    reports.push(Input::SendFailed { id, error }.into());
                }
            }
        }
        true
    }

    /// One syscall's worth from the front of the queue: how many datagrams the OS took, or
    /// the error of the first one.
    fn send_some(&mut self) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        {
            let run = if self.gso { gso_run(&self.out, 0) } else { 1 };
            if run >= 2 {
                match retry(|| send_gso(&self.socket, &self.out, run)) {
                    Ok(()) => return Ok(run),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(e),
                    Err(e) if refuses_gso(&e) => {
                        // This socket's path cannot take GSO: never again, and the same
                        // datagrams go without it.
                        self.gso = false;
                        return Ok(0);
                    }
                    // An error of one of the datagrams: each again on its own, so that it is
                    // reported for that one.
                    Err(_) => return retry(|| send_mmsg(&self.socket, &self.out, run)),
                }
            }
            let n = plain_run(&self.out, self.gso);
            if n >= 2 {
                return retry(|| send_mmsg(&self.socket, &self.out, n));
            }
        }
        let (data, to) = &self.out[0];
        retry(|| self.socket.send_to(data, *to)).map(|_| 1)
    }
}

/// The errors with which the kernel refuses a GSO send as such.
#[cfg(target_os = "linux")]
fn refuses_gso(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::EMSGSIZE | libc::ENOPROTOOPT)
    )
}

/// `setsockopt(SOL_UDP, option, value)`.
#[cfg(target_os = "linux")]
fn set_udp_option(socket: &UdpSocket, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid descriptor, and an option value of the size given that outlives the call.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// How many datagrams from `out[at]` on go as one GSO send: one destination (not a group),
/// the size of the first (at least 1 byte, at most a segment that fits the MTU) but the last,
/// which may be shorter, at most [`GSO_SEGMENTS`] and a total one datagram may carry.
#[cfg(target_os = "linux")]
fn gso_run(out: &VecDeque<(Bytes, SocketAddr)>, at: usize) -> usize {
    let Some((first, to)) = out.get(at) else {
        return 0;
    };
    let (segment, max_total) = match to {
        SocketAddr::V4(_) => (GSO_SEGMENT_MAX_V4, sockstate::MAX_DATAGRAM_V4),
        SocketAddr::V6(_) => (GSO_SEGMENT_MAX_V6, sockstate::MAX_DATAGRAM_V6),
    };
    let size = first.len();
    if size == 0 || size > segment || to.ip().is_multicast() {
        return 1;
    }
    let mut total = size;
    let mut n = 1;
    for (data, dest) in out.iter().skip(at + 1).take(GSO_SEGMENTS - 1) {
        if dest != to || data.is_empty() || data.len() > size || total + data.len() > max_total {
            break;
        }
        n += 1;
        total += data.len();
        if data.len() < size {
            break; // the short last segment ends a run
        }
    }
    n
}

/// How many datagrams from the front go as one `sendmmsg`: up to [`GSO_SEGMENTS`], stopping
/// before a run that goes as one GSO send (when `gso`).
#[cfg(target_os = "linux")]
fn plain_run(out: &VecDeque<(Bytes, SocketAddr)>, gso: bool) -> usize {
    let most = out.len().min(GSO_SEGMENTS);
    (1..most)
        .find(|&at| gso && gso_run(out, at) >= 2)
        .unwrap_or(most)
}

/// One `sendmsg` of the first `n` datagrams of `out` (one destination, see [`gso_run`]) with
/// `UDP_SEGMENT` set to the first one's size: the kernel sends each as its own datagram.
#[cfg(target_os = "linux")]
fn send_gso(socket: &UdpSocket, out: &VecDeque<(Bytes, SocketAddr)>, n: usize) -> io::Result<()> {
    use std::os::fd::AsRawFd;

    let n = n.min(GSO_SEGMENTS);
    let (first, to) = &out[0];
    let to = socket2::SockAddr::from(*to);
    let mut iovecs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; GSO_SEGMENTS];
    for (iov, (data, _)) in iovecs.iter_mut().zip(out.iter().take(n)) {
        iov.iov_base = data.as_ptr() as *mut libc::c_void;
        iov.iov_len = data.len();
    }
    // Room for one control message of one `u16`, aligned for `cmsghdr`.
    let mut control = [0u64; 4];
    // SAFETY: all-zero is a valid `msghdr` (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = to.as_ptr() as *mut libc::c_void;
    msg.msg_namelen = to.len();
    msg.msg_iov = iovecs.as_mut_ptr();
    msg.msg_iovlen = n as _;
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: `CMSG_SPACE` only computes a length.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) } as usize;
    debug_assert!(space <= std::mem::size_of_val(&control));
    msg.msg_controllen = space as _;
    // SAFETY: `msg_control` points at `control`, whose `space` bytes (checked above) hold one
    // header and a `u16`; `CMSG_FIRSTHDR` is non-null for a control length of at least one
    // header, and the data is written unaligned.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_UDP;
        (*cmsg).cmsg_type = libc::UDP_SEGMENT;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as _;
        libc::CMSG_DATA(cmsg)
            .cast::<u16>()
            .write_unaligned(first.len() as u16);
    }
    // SAFETY: `msg` points at a live socket address of the length given, at `n` live iovecs
    // over datagrams `out` holds (the kernel only reads them), and at the control message
    // built above; all of them outlive the call.
    let r = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One `sendmmsg` of the first `n` datagrams of `out`, each to its own destination: how many
/// the OS took (at least 1), or the first one's error.
#[cfg(target_os = "linux")]
fn send_mmsg(
    socket: &UdpSocket,
    out: &VecDeque<(Bytes, SocketAddr)>,
    n: usize,
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;

    let n = n.min(GSO_SEGMENTS);
    let names: Vec<socket2::SockAddr> = (out.iter().take(n))
        .map(|(_, to)| socket2::SockAddr::from(*to))
        .collect();
    let mut iovecs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; GSO_SEGMENTS];
    // SAFETY: all-zero is a valid `mmsghdr` (null pointers, zero lengths).
    let mut msgs: [libc::mmsghdr; GSO_SEGMENTS] = unsafe { std::mem::zeroed() };
    for (((msg, iov), name), (data, _)) in msgs.iter_mut().zip(&mut iovecs).zip(&names).zip(out) {
        iov.iov_base = data.as_ptr() as *mut libc::c_void;
        iov.iov_len = data.len();
        msg.msg_hdr.msg_iov = iov;
        msg.msg_hdr.msg_iovlen = 1;
        msg.msg_hdr.msg_name = name.as_ptr() as *mut libc::c_void;
        msg.msg_hdr.msg_namelen = name.len();
    }
    // SAFETY: the first `n` headers point at live iovecs over datagrams `out` holds and at
    // live socket addresses of the lengths given; the kernel only reads them (and writes each
    // header's `msg_len`), and all of them outlive the call.
    let r = unsafe { libc::sendmmsg(socket.as_raw_fd(), msgs.as_mut_ptr(), n as _, 0) };
    usize::try_from(r).map_err(|_| io::Error::last_os_error())
}

/// What one read call took.
pub(super) struct Read {
    /// Messages read (at most the number asked; fewer: the queue is empty).
    pub(super) messages: usize,
    /// Datagrams in them (more than `messages` when GRO coalesced some).
    pub(super) datagrams: usize,
}

/// Reads up to `max` (at most [`DATAGRAM_BATCH`]) queued messages with one `recvmmsg`, each
/// whole into its own [`DATAGRAM_BUFFER`] of `slots`, and hands each datagram in them to
/// `each` in order: its bytes, the segment size when GRO coalesced several datagrams into it
/// (`None`: one datagram), and the sender. A message of at most [`SMALL_READ`] bytes is
/// copied out of its slot (which serves the next read as it is); a larger one is split off
/// it without a copy. `WouldBlock` when nothing was queued.
#[cfg(target_os = "linux")]
pub(super) fn recv_datagrams(
    udp: &Udp,
    slots: &mut Vec<BytesMut>,
    max: usize,
    mut each: impl FnMut(Bytes, Option<usize>, SocketAddr),
) -> io::Result<Read> {
    use std::os::fd::AsRawFd;

    use socket2::{SockAddr, SockAddrStorage};

    let n = max.clamp(1, DATAGRAM_BATCH);
    slots.resize_with(DATAGRAM_BATCH, BytesMut::new);
    let mut names: [SockAddrStorage; DATAGRAM_BATCH] =
        std::array::from_fn(|_| SockAddrStorage::zeroed());
    let mut iovecs: [libc::iovec; DATAGRAM_BATCH] = std::array::from_fn(|_| libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    });
    // One control message of one `int` per message (`UDP_GRO`), aligned for `cmsghdr`.
    let mut controls = [[0u64; 4]; DATAGRAM_BATCH];
    // SAFETY: all-zero is a valid `mmsghdr` (null pointers, zero lengths).
    let mut msgs: [libc::mmsghdr; DATAGRAM_BATCH] = unsafe { std::mem::zeroed() };
    for ((((slot, iov), msg), name), control) in (slots.iter_mut().take(n))
        .zip(&mut iovecs)
        .zip(&mut msgs)
        .zip(&mut names)
        .zip(&mut controls)
    {
        debug_assert!(slot.is_empty(), "every read is taken out of its slot");
        slot.clear();
        // Not zero-filled: only the pages a datagram lands in become resident.
        slot.reserve(DATAGRAM_BUFFER);
        let spare = &mut slot.spare_capacity_mut()[..DATAGRAM_BUFFER];
        iov.iov_base = spare.as_mut_ptr().cast();
        iov.iov_len = spare.len();
        msg.msg_hdr.msg_iov = iov;
        msg.msg_hdr.msg_iovlen = 1;
        msg.msg_hdr.msg_namelen = name.size_of();
        msg.msg_hdr.msg_name = (name as *mut SockAddrStorage).cast();
        if udp.gro {
            msg.msg_hdr.msg_control = control.as_mut_ptr().cast();
            msg.msg_hdr.msg_controllen = std::mem::size_of_val(control) as _;
        }
    }
    let read = retry(|| {
        // SAFETY: the first `n` headers point at live iovecs, each covering the spare capacity
        // of one slot, at live address storages and control buffers of the lengths given;
        // the kernel writes only within them, and all of them outlive the call.
        let r = unsafe {
            libc::recvmmsg(
                udp.socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as _,
                libc::MSG_DONTWAIT as _,
                std::ptr::null_mut(),
            )
        };
        usize::try_from(r).map_err(|_| io::Error::last_os_error())
    })?;
    let mut datagrams = 0;
    for ((msg, name), slot) in msgs.iter().zip(&mut names).zip(slots.iter_mut()).take(read) {
        let len = (msg.msg_len as usize).min(DATAGRAM_BUFFER);
        // SAFETY: the kernel wrote `len` bytes (at most the spare capacity reserved) into the
        // slot's spare capacity.
        unsafe { slot.set_len(len) };
        let data = if len <= SMALL_READ {
            let data = Bytes::copy_from_slice(slot);
            slot.clear();
            data
        } else {
            slot.split().freeze()
        };
        let segment = gro_segment(&msg.msg_hdr).unwrap_or(len).max(1);
        let namelen = msg.msg_hdr.msg_namelen;
        let storage = std::mem::replace(name, SockAddrStorage::zeroed());
        // SAFETY: the kernel wrote a socket address of `namelen` bytes (at most the storage's
        // size) into this storage.
        let Some(remote) = unsafe { SockAddr::new(storage, namelen) }.as_socket() else {
            continue;
        };
        if len <= segment {
            datagrams += 1;
            each(data, None, remote);
        } else {
            datagrams += len.div_ceil(segment);
            each(data, Some(segment), remote);
        }
    }
    Ok(Read {
        messages: read,
        datagrams,
    })
}

/// The segment size of a message GRO coalesced, from its `UDP_GRO` control message.
#[cfg(target_os = "linux")]
fn gro_segment(msg: &libc::msghdr) -> Option<usize> {
    cmsg_int(msg, libc::SOL_UDP, libc::UDP_GRO)
        .and_then(|size| usize::try_from(size).ok().filter(|&s| s > 0))
}

/// One `recv_from` (platforms without `recvmmsg`): see the Linux version.
#[cfg(not(target_os = "linux"))]
pub(super) fn recv_datagrams(
    udp: &Udp,
    slots: &mut Vec<BytesMut>,
    _max: usize,
    mut each: impl FnMut(Bytes, Option<usize>, SocketAddr),
) -> io::Result<Read> {
    slots.resize_with(1, BytesMut::new);
    let slot = &mut slots[0];
    slot.resize(DATAGRAM_BUFFER, 0);
    let (n, remote) = retry(|| udp.socket.recv_from(&mut slot[..]))?;
    let data = Bytes::copy_from_slice(&slot[..n]);
    slot.clear();
    each(data, None, remote);
    Ok(Read {
        messages: 1,
        datagrams: 1,
    })
}
