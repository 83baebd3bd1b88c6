//! TCP reads and writes: the one write in flight per socket, reads into the shared buffer, and
//! FINs.

use std::io;
use std::net::Shutdown;

use bytes::{Bytes, BytesMut};
use polling::Poller;
use socket2::{SockRef, Socket};
use sockstate::{Input, SocketId, TcpId};

use super::os::retry;
use super::sources::{Io, Owner, Source};
use super::{Reactor, Report};

/// A stream read of at most this many bytes is copied out of the read buffer rather than split
/// off it: it then holds its own bytes only, not the whole chunk (for as long as the app or a
/// send queue keeps it: an echo of a few bytes pinned 64 KiB until written), and the buffer
/// serves the next read as it is. Larger reads are handed over without a copy.
pub(super) const SMALL_READ: usize = 4 << 10;

impl Reactor {
    /// `Action::Write`: try at once; on `WouldBlock` hold it and wait
    /// for writability.
    pub(crate) fn write(
        &mut self,
        poller: &Poller,
        id: SocketId,
        data: Bytes,
        reports: &mut Vec<Report>,
    ) {
        let Some(key) = self.main(id) else {
            return;
        };
        let Some(source) = self.sources.get_mut(key) else {
            return;
        };
        if source.dead {
            return; // a failure is already reported; the core will release the socket
        }
        // Tried at once unless the OS said it would block and has not said otherwise since.
        if source.ready.write {
            match attempt(&source.io, source.owner, &data, reports) {
                // Nothing the source wants or knows changed: the core hands over a write only
                // once the last one was reported, so none was in flight before this one either,
                // and readiness stands. Its registration and its place in `due` are as `sync`
                // left them after the last change: no `sync` is needed (the common case).
                Attempt::Done => return,
                Attempt::Blocked => {
                    source.ready.write = false;
                    source.pending = Some(data);
                }
                Attempt::Failed(id, e) => fail(source, id, &e, reports),
            }
        } else {
            source.pending = Some(data);
        }
        self.sync(poller, key, reports);
    }

    /// The OS socket of `id`, unless a failure was reported for it (no more I/O then).
    fn live_stream(&mut self, id: TcpId) -> Option<&mut Source> {
        let key = self.main(id.into())?;
        self.sources.get_mut(key).filter(|source| !source.dead)
    }

    /// `Action::Shutdown`: FIN (`shutdown(SHUT_WR)`); reading goes on as the core says.
    pub(crate) fn shutdown(&mut self, id: TcpId, reports: &mut Vec<Report>) {
        let Some(source) = self.live_stream(id) else {
            return;
        };
        if let Err(e) = retry(|| source.io.sock().shutdown(Shutdown::Write)) {
            fail(source, id, &e, reports);
        }
    }

    /// `Action::QueryUnacked`: how many of our bytes (and our FIN) the kernel still holds
    /// unsent or unacknowledged, answered at once as `Input::Unacked` ([BEHAVIOUR §1](sockstate::behaviour#1-tcpsocket) close).
    /// When some are, a pending error (a reset that came after the last read) is reported as
    /// `Input::Failed` instead: those bytes will never be acknowledged.
    pub(crate) fn query_unacked(&mut self, id: TcpId, reports: &mut Vec<Report>) {
        let Some(source) = self.live_stream(id) else {
            return;
        };
        let bytes = unacked(&source.io.sock());
        if bytes.is_some_and(|n| n > 0) {
            match source.io.sock().take_error() {
                Ok(Some(e)) | Err(e) => return fail(source, id, &e, reports),
                Ok(None) => {}
            }
        }
        reports.push(Input::Unacked { id, bytes }.into());
    }

    /// Reads what is there: at most `reads_per_turn` chunks of a stream or
    /// `datagrams_per_turn` datagrams (fairness between sockets). Readiness is cleared when
    /// the queue was found empty; a source stopped by the limit stays ready (and due).
    pub(super) fn read(&mut self, key: usize, reports: &mut Vec<Report>) {
        let Some(source) = self.sources.get_mut(key) else {
            return;
        };
        if !source.reading || source.eof || source.dead {
            return;
        }
        match (&source.io, source.owner) {
            (Io::Udp(_), Owner::Udp(_)) => self.read_datagrams(key, reports),
            (Io::Socket(socket), Owner::Stream(id)) => {
                let chunk = self.limits.read_chunk.max(1);
                for _ in 0..self.limits.reads_per_turn.max(1) {
                    match recv_chunk(socket, &mut self.buf, chunk) {
                        Ok((data, _)) if data.is_empty() => {
                            source.eof = true;
                            reports.push(Input::Eof { id }.into());
                            return;
                        }
                        Ok((data, more)) => {
                            reports.push(Input::Received { id, data }.into());
                            // A short read took all the bytes queued, but a FIN or a reset
                            // that came with them shows only in the next read, and raises no
                            // new event (polling registers no `EPOLLRDHUP`): so read on until
                            // `WouldBlock`, unless the kernel said nothing at all is left.
                            if more == Some(false) && !source.hangup {
                                source.ready.read = false;
                                return;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            source.ready.read = false;
                            return;
                        }
                        Err(e) => {
                            fail(source, id, &e, reports);
                            return;
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// Writes the write in flight, if any (a UDP socket's queued datagrams); reports what the
    /// OS took.
    pub(super) fn flush(&mut self, key: usize, reports: &mut Vec<Report>) {
        let Some(source) = self.sources.get_mut(key) else {
            return;
        };
        if let Io::Udp(_) = source.io {
            return self.flush_datagrams(key, reports);
        }
        let Some(data) = &source.pending else {
            return;
        };
        if source.dead {
            return;
        }
        match attempt(&source.io, source.owner, data, reports) {
            Attempt::Done => source.pending = None,
            Attempt::Blocked => source.ready.write = false,
            Attempt::Failed(id, e) => fail(source, id, &e, reports),
        }
    }
}

/// What became of one write tried on a socket.
enum Attempt {
    /// It is over: what the OS took is reported (a UDP send error too, as `SendFailed`).
    Done,
    /// The OS would block (or took nothing): hold it and wait for writability.
    Blocked,
    /// The stream failed (see [`fail`]).
    Failed(TcpId, io::Error),
}

/// Tries a write once, reporting what the OS took.
fn attempt(io: &Io, owner: Owner, data: &Bytes, reports: &mut Vec<Report>) -> Attempt {
    match (io, owner) {
        (Io::Socket(socket), Owner::Stream(id)) => match retry(|| send(socket, data)) {
            Ok(0) => Attempt::Blocked, // nothing taken: wait for writability
            Ok(len) => {
                reports.push(Input::Written { id, len }.into());
                Attempt::Done
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Attempt::Blocked,
            Err(e) => Attempt::Failed(id, e),
        },
        _ => Attempt::Done,
    }
}

/// A stream that failed: no more I/O on it; the core is told once and will release it.
fn fail(source: &mut Source, id: TcpId, e: &io::Error, reports: &mut Vec<Report>) {
    source.dead = true;
    source.pending = None;
    reports.push(
        Input::Failed {
            id,
            error: e.kind(),
        }
        .into(),
    );
}

/// One read of at most `chunk` bytes of a stream, straight into `buf`'s spare capacity
/// (nothing is zero-filled first); empty at the end of the stream. A read of at most
/// [`SMALL_READ`] bytes is copied out and `buf` keeps its space for the next read; a larger
/// one is split off without a copy, and `buf` then reuses its allocation once every read split
/// from it has been dropped, else starts a new one (growing one shared with data handed out
/// would copy what is left of it). With the bytes comes whether more is queued, where the
/// kernel says (see [`recv_inq`]).
pub(super) fn recv_chunk(
    socket: &Socket,
    buf: &mut BytesMut,
    chunk: usize,
) -> io::Result<(Bytes, Option<bool>)> {
    debug_assert!(buf.is_empty(), "every read is taken out of the buffer");
    buf.clear();
    buf.reserve(chunk);
    let spare = &mut buf.spare_capacity_mut()[..chunk];
    let (n, more) = retry(|| recv_inq(socket, &mut spare[..]))?;
    // SAFETY: `recv_inq` hands `spare` straight to the kernel and never writes uninitialised
    // bytes into it, so its first `n` bytes are initialised by the kernel; `n <= chunk`, which
    // is within the capacity `reserve` made. The safe ways cost a pass over every byte
    // received: zero-filling each chunk before the read overwrites it (which was 90% of the
    // driver's user-space instructions in a bulk transfer), or reading into a scratch buffer
    // and copying.
    unsafe { buf.set_len(n.min(chunk)) };
    let data = if buf.len() <= SMALL_READ {
        let data = Bytes::copy_from_slice(buf);
        buf.clear();
        data
    } else {
        buf.split().freeze()
    };
    Ok((data, more))
}

/// Asks the kernel to say, with every read of a stream, how much is left to read
/// (`TCP_INQ`, Linux 4.18+): a read that leaves nothing then needs no second read to see
/// `WouldBlock`. Where it is refused, reads go on until `WouldBlock`.
pub(super) fn want_inq(socket: &Socket) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: a valid descriptor, and an option value of the size given that outlives
        // the call.
        let _ = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_TCP,
                libc::TCP_INQ,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = socket;
}

/// `recv` into `buf`, and whether more is queued: with `TCP_INQ` on (see [`want_inq`]), the
/// kernel appends the bytes left in the receive queue to the read, and 1 when only a FIN is
/// left, so that `Some(false)` means the next read would block until new bytes arrive, which
/// raise a new event. `None` when the kernel did not say.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn recv_inq(
    socket: &Socket,
    buf: &mut [std::mem::MaybeUninit<u8>],
) -> io::Result<(usize, Option<bool>)> {
    use std::os::fd::AsRawFd;

    // Room for one control message of one `int`, aligned for `cmsghdr`.
    let mut control = [0u64; 4];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: all-zero is a valid `msghdr` (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at one live iovec covering `buf` and at `control` with its size;
    // the kernel writes only within them, and both outlive the call.
    let r = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, 0) };
    let n = usize::try_from(r).map_err(|_| io::Error::last_os_error())?;
    let more = super::os::cmsg_int(&msg, libc::SOL_TCP, libc::TCP_CM_INQ).map(|inq| inq > 0);
    Ok((n, more))
}

/// One `recv` (platforms without `TCP_INQ`): the kernel does not say what is left.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn recv_inq(
    socket: &Socket,
    buf: &mut [std::mem::MaybeUninit<u8>],
) -> io::Result<(usize, Option<bool>)> {
    Ok((socket.recv(buf)?, None))
}

/// `send` without `SIGPIPE`: a peer that went away is an error, not a signal.
fn send(socket: &Socket, data: &[u8]) -> io::Result<usize> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let flags = libc::MSG_NOSIGNAL;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let flags = 0;
    socket.send_with_flags(data, flags)
}

/// Bytes the kernel holds unsent or unacknowledged on this TCP socket, the FIN counting one
/// (`ioctl(SIOCOUTQ)`, Linux's `TIOCOUTQ` number); `None` where that cannot be asked.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn unacked(socket: &SockRef<'_>) -> Option<usize> {
    use std::os::fd::AsRawFd;
    let mut count: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one `int` through the pointer, which points to `count`; the
    // descriptor is the live socket borrowed by `socket`.
    let r = unsafe { libc::ioctl(socket.as_raw_fd(), libc::TIOCOUTQ, &mut count) };
    (r == 0).then(|| usize::try_from(count).unwrap_or(0))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn unacked(_socket: &SockRef<'_>) -> Option<usize> {
    None
}
