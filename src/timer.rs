//! The deadlines of all sockets, so that the next one is found without visiting every socket.
//!
//! Each socket knows its own next deadline (derived from its state). Whenever that changes, the
//! core pushes `(deadline, socket)` here. Entries are never removed eagerly: when one comes due,
//! the core asks the socket whether it still has a deadline that early, and skips it if not.
//! Every entry is pushed by a state change, so the heap grows only with work done.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::id::SocketId;

#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, SocketId)>>,
}

impl Timers {
    pub(crate) fn arm(&mut self, at: Instant, socket: SocketId) {
        self.heap.push(Reverse((at, socket)));
    }

    /// The earliest entry, which may be stale.
    pub(crate) fn peek(&self) -> Option<(Instant, SocketId)> {
        self.heap.peek().map(|Reverse(e)| *e)
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, SocketId)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Drops the earliest entry (found stale).
    pub(crate) fn pop(&mut self) {
        self.heap.pop();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}
