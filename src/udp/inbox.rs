//! Datagrams a `UDPSocket` has read and not yet delivered as `Message`s, also while suspended
//! ([BEHAVIOUR §3](crate::behaviour#3-udpsocket): one `message` per datagram, in order).

use std::collections::VecDeque;
use std::net::SocketAddr;

use bytes::Bytes;

/// One read: a datagram, or a run of them from one sender back to back (UDP GRO).
#[derive(Debug)]
struct Read {
    data: Bytes,
    /// The size of each datagram of a run but the last; 0: `data` is one datagram.
    segment: usize,
    remote: SocketAddr,
}

/// The reads not yet delivered. Each has one `Deliver` marker in the output queue, which
/// delivers its datagrams one poll at a time and stays at the front until the last.
#[derive(Debug, Default)]
pub(super) struct Inbox {
    reads: VecDeque<Read>,
    /// Datagrams in `reads`.
    datagrams: usize,
    /// Bytes in `reads`.
    bytes: usize,
    /// `Deliver` markers that came while suspended; queued again on `resume`.
    pub(super) unscheduled: usize,
}

impl Inbox {
    /// Whether `count` more datagrams of `len` bytes in all fit under the bounds.
    pub(super) fn fits(&self, count: usize, len: usize, max_bytes: usize, max: usize) -> bool {
        self.bytes + len <= max_bytes && self.datagrams + count <= max
    }

    /// Keeps a read of `count` datagrams (`segment` 0: one).
    pub(super) fn push(&mut self, data: Bytes, segment: usize, count: usize, remote: SocketAddr) {
        self.bytes += data.len();
        self.datagrams += count;
        self.reads.push_back(Read {
            data,
            segment,
            remote,
        });
    }

    /// Nothing is held.
    pub(super) fn is_empty(&self) -> bool {
        self.reads.is_empty()
    }

    /// The next datagram, and whether its read holds more. A datagram of a run is a slice of
    /// the run's buffer (no copy).
    pub(super) fn next(&mut self) -> Option<(Bytes, SocketAddr, bool)> {
        let read = self.reads.front_mut()?;
        self.datagrams -= 1;
        if read.segment == 0 || read.data.len() <= read.segment {
            let read = self.reads.pop_front()?;
            self.bytes -= read.data.len();
            return Some((read.data, read.remote, false));
        }
        let data = read.data.split_to(read.segment);
        self.bytes -= data.len();
        Some((data, read.remote, true))
    }

    /// The rest of the front read, each datagram handed to `each` in order: what
    /// [`next`](Self::next) would give call by call until its read is done, with the
    /// counters and the queue touched once rather than per datagram. How many.
    pub(super) fn rest_of_run(&mut self, mut each: impl FnMut(Bytes, SocketAddr)) -> usize {
        let Some(read) = self.reads.pop_front() else {
            return 0;
        };
        let Read {
            mut data,
            segment,
            remote,
        } = read;
        self.bytes -= data.len();
        let mut count = 1;
        if segment > 0 {
            while data.len() > segment {
                each(data.split_to(segment), remote);
                count += 1;
            }
        }
        each(data, remote);
        self.datagrams -= count;
        count
    }
}
