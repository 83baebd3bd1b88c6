//! A TCP socket's send queue: `bufferedAmount`, the high-water mark, the hard cap, drain
//! arming and the one write in flight ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket) send/bufferedAmount/Drain). A UDP
//! socket's is `udp/queue.rs`.

use std::collections::VecDeque;

/// A TCP send queue's chunk list, as handed between sockets through the core's spares.
pub(crate) type SendBuffer = VecDeque<(Bytes, ())>;

use bytes::{Buf, Bytes, BytesMut};

/// A byte-stream chunk still takes small sends until it holds this much: many small sends
/// become few chunks (so per-chunk overhead stays a fraction of `bufferedAmount`) and few
/// writes. Any two neighbouring chunks not in flight hold more than this together.
pub(crate) const COALESCE: usize = 16 << 10;

use crate::config::Config;
use crate::error::{ApiError, InputError};

/// Chunks accepted by `send` and not yet taken by the OS. `M` is per-chunk metadata (nothing
/// for TCP).
#[derive(Debug)]
pub(crate) struct SendQueue<M = ()> {
    chunks: VecDeque<(Bytes, M)>,
    /// Bytes in `chunks`: exactly `bufferedAmount`.
    buffered: usize,
    /// The front chunk has been handed to the I/O layer as a write.
    writing: bool,
    /// A `send` returned `false` since the last `Drain`.
    drain_armed: bool,
    /// The last chunk takes no more bytes (see [`seal`](Self::seal)).
    sealed: bool,
}

impl<M> SendQueue<M> {
    /// An empty queue.
    pub(crate) fn new() -> Self {
        SendQueue {
            chunks: VecDeque::new(),
            buffered: 0,
            writing: false,
            drain_armed: false,
            sealed: false,
        }
    }
}

impl<M: Clone> SendQueue<M> {
    /// Queues `data` ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket) send): refused with `QuotaExceededError` above the hard cap,
    /// else `Ok(bufferedAmount <= high-water mark)`, arming `Drain` when that is `false`.
    pub(crate) fn push(&mut self, data: Bytes, meta: M, config: &Config) -> Result<bool, ApiError> {
        let after = self.buffered.saturating_add(data.len());
        if after > config.send_buffer_limit {
            return Err(ApiError::quota(format!(
                "sending {} bytes would buffer {after} bytes, above the limit of {}",
                data.len(),
                config.send_buffer_limit
            )));
        }
        if !data.is_empty() {
            self.buffered = after;
            if let Some(data) = self.coalesce(data) {
                self.chunks.push_back((data, meta));
                self.sealed = false;
            }
        }
        let below = after <= config.high_water_mark;
        if !below {
            self.drain_armed = true;
        }
        Ok(below)
    }

    /// Appends a stream's `data` to the last chunk when both are small and that chunk is
    /// neither in flight nor sealed; gives `data` back otherwise. The last chunk is reopened
    /// in place (when the queue owns it alone) with room for a whole [`COALESCE`] chunk, so
    /// growing it never copies again what it holds: every byte is copied once (twice for the
    /// first chunk when the app kept a reference to it).
    fn coalesce(&mut self, data: Bytes) -> Option<Bytes> {
        let in_flight = self.writing && self.chunks.len() == 1;
        if self.sealed || in_flight {
            return Some(data);
        }
        let Some((last, _)) = self.chunks.back_mut() else {
            return Some(data);
        };
        if last.len() + data.len() > COALESCE {
            return Some(data);
        }
        match std::mem::take(last).try_into_mut() {
            Ok(mut open) => {
                open.reserve(COALESCE.saturating_sub(open.len()));
                open.extend_from_slice(&data);
                *last = open.freeze();
                None
            }
            // Someone else holds it too (the app kept what it sent): the two are joined in
            // a chunk of the queue's own, so that how sends are joined never depends on who
            // holds a buffer. A replay of a recorded session must make the same writes.
            Err(shared) => {
                let mut open = BytesMut::with_capacity(COALESCE.max(shared.len() + data.len()));
                open.extend_from_slice(&shared);
                open.extend_from_slice(&data);
                *last = open.freeze();
                None
            }
        }
    }

    /// Nothing sent from now on joins the chunks queued so far (`upgradeToSecure`: they go out
    /// as plaintext, what follows through TLS).
    pub(crate) fn seal(&mut self) {
        self.sealed = true;
    }

    /// The next write to hand to the I/O layer, if none is in flight.
    #[inline]
    pub(crate) fn next_write(&mut self) -> Option<(Bytes, M)> {
        if self.writing {
            return None;
        }
        let (front, meta) = self.chunks.front()?;
        self.writing = true;
        Some((front.clone(), meta.clone()))
    }

    /// The I/O layer took `n` bytes of the write in flight.
    pub(crate) fn written(&mut self, n: usize) -> Result<(), InputError> {
        let Some((front, _)) = self.chunks.front_mut().filter(|_| self.writing) else {
            return Err(InputError::Unexpected(
                "a write completed but none was in flight",
            ));
        };
        let whole = n == front.len();
        if n > front.len() || (n == 0 && !whole) {
            return Err(InputError::Unexpected(
                "a write completed with a length the write in flight cannot have",
            ));
        }
        self.writing = false;
        if whole {
            self.pop_front();
        } else {
            front.advance(n);
        }
        self.buffered -= n;
        Ok(())
    }

    /// Takes up to `max` bytes from the front for encryption (TLS). They stay counted in
    /// `bufferedAmount` until [`release`](Self::release)d, when their ciphertext is written.
    pub(crate) fn take_front(&mut self, max: usize) -> Option<Bytes> {
        if self.writing {
            return None;
        }
        let (front, _) = self.chunks.front_mut()?;
        if front.len() <= max {
            return self.pop_front().map(|(b, _)| b);
        }
        Some(front.split_to(max))
    }

    fn pop_front(&mut self) -> Option<(Bytes, M)> {
        self.chunks.pop_front()
    }

    /// The chunk list's buffer, when the queue is empty and holds one: an idle socket gives it
    /// back (to the core's spares), so that it holds no heap.
    #[inline]
    pub(crate) fn give_back(&mut self) -> Option<VecDeque<(Bytes, M)>> {
        (self.chunks.is_empty() && self.chunks.capacity() > 0)
            .then(|| std::mem::take(&mut self.chunks))
    }

    /// Takes a spare buffer (empty) for the chunk list when the queue has none.
    #[inline]
    pub(crate) fn adopt(&mut self, buffer: VecDeque<(Bytes, M)>) {
        if self.chunks.capacity() == 0 && buffer.is_empty() {
            // The list replaced holds no buffer and no chunk: there is nothing to drop, and
            // forgetting it spares the generic drop of a deque on every send of a busy socket.
            std::mem::forget(std::mem::replace(&mut self.chunks, buffer));
        }
    }

    /// The queue has no buffer for its chunk list.
    #[inline]
    pub(crate) fn has_no_buffer(&self) -> bool {
        self.chunks.capacity() == 0
    }

    /// The OS took the ciphertext of `n` bytes handed out by `take_front`.
    pub(crate) fn release(&mut self, n: usize) {
        self.buffered -= n.min(self.buffered);
    }

    /// A `send` returned `false` since the last `Drain`: one is still to fire (TLS sends its
    /// close_notify only after it, [BEHAVIOUR §1](crate::behaviour#1-tcpsocket) close).
    pub(crate) fn drain_armed(&self) -> bool {
        self.drain_armed
    }

    /// A write of the front chunk is in flight.
    pub(crate) fn writing(&self) -> bool {
        self.writing
    }

    /// Whether `Drain` is due now: nothing is buffered and a `send` returned `false` since the
    /// last one ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket) Drain). Disarms it. Callers with bytes outside the queue (TLS
    /// records not yet written) ask only once those are written too.
    pub(crate) fn take_drain(&mut self) -> bool {
        self.buffered == 0 && std::mem::take(&mut self.drain_armed)
    }

    /// Discards everything (the connection failed or was closed at once).
    pub(crate) fn clear(&mut self) {
        self.chunks.clear();
        self.buffered = 0;
        self.writing = false;
        self.drain_armed = false;
    }

    /// Heap bytes the queue holds for chunk bookkeeping (not the payload).
    #[cfg(test)]
    pub(crate) fn bookkeeping_capacity(&self) -> usize {
        self.chunks.capacity()
    }

    /// `bufferedAmount`.
    pub(crate) fn buffered(&self) -> usize {
        self.buffered
    }

    /// No chunk is queued or in flight.
    pub(crate) fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(hwm: usize, cap: usize) -> Config {
        Config {
            high_water_mark: hwm,
            send_buffer_limit: cap,
            ..Config::default()
        }
    }

    #[test]
    fn exactly_the_high_water_mark_is_still_true() {
        let c = config(10, 100);
        let mut q = SendQueue::<()>::new();
        assert_eq!(q.push(Bytes::from_static(&[0; 10]), (), &c), Ok(true));
        assert_eq!(q.push(Bytes::from_static(&[0; 1]), (), &c), Ok(false));
        assert_eq!(q.buffered(), 11);
    }

    #[test]
    fn the_hard_cap_refuses_and_queues_nothing() {
        let c = config(10, 20);
        let mut q = SendQueue::<()>::new();
        q.push(Bytes::from_static(&[0; 15]), (), &c).unwrap();
        let err = q.push(Bytes::from_static(&[0; 6]), (), &c).unwrap_err();
        assert_eq!(err.exception(), crate::DomException::QuotaExceededError);
        assert_eq!(q.buffered(), 15);
        assert_eq!(q.push(Bytes::from_static(&[0; 5]), (), &c), Ok(false));
    }

    #[test]
    fn partial_writes_advance_and_drain_fires_once_when_empty() {
        let c = config(4, 100);
        let mut q = SendQueue::<()>::new();
        assert_eq!(q.push(Bytes::from_static(b"hello"), (), &c), Ok(false));
        let (w, ()) = q.next_write().unwrap();
        assert_eq!(&w[..], b"hello");
        assert!(q.next_write().is_none(), "one write in flight");
        assert_eq!(q.written(2), Ok(()));
        assert!(!q.take_drain());
        assert_eq!(q.buffered(), 3);
        let (w, ()) = q.next_write().unwrap();
        assert_eq!(&w[..], b"llo");
        assert_eq!(q.written(3), Ok(()));
        assert!(q.take_drain());
        assert!(!q.take_drain(), "once per arming");
        assert_eq!(q.buffered(), 0);
        q.push(Bytes::from_static(b"x"), (), &c).unwrap();
        q.next_write().unwrap();
        assert_eq!(q.written(1), Ok(()));
        assert!(!q.take_drain(), "never armed");
    }

    #[test]
    fn plaintext_taken_for_encryption_stays_buffered_until_released() {
        let c = config(4, 100);
        let mut q = SendQueue::<()>::new();
        q.push(Bytes::from_static(b"hello"), (), &c).unwrap();
        assert_eq!(q.take_front(3).unwrap(), Bytes::from_static(b"hel"));
        assert_eq!(q.take_front(3).unwrap(), Bytes::from_static(b"lo"));
        assert_eq!(q.take_front(3), None);
        assert_eq!(q.buffered(), 5);
        q.release(3);
        assert!(!q.take_drain());
        q.release(2);
        assert!(q.take_drain());
    }

    #[test]
    fn small_sends_share_chunks_and_the_write_in_flight_is_never_extended() {
        let c = config(1 << 20, 64 << 20);
        let mut q = SendQueue::<()>::new();
        q.push(Bytes::from_static(b"a"), (), &c).unwrap();
        assert_eq!(q.next_write().unwrap().0, Bytes::from_static(b"a"));
        for _ in 0..100_000 {
            q.push(Bytes::copy_from_slice(b"xy"), (), &c).unwrap();
        }
        assert_eq!(q.buffered(), 1 + 200_000);
        // The write in flight stays as it was handed out; the rest fills 16 KiB chunks.
        assert_eq!(q.chunks.len(), 1 + 200_000_usize.div_ceil(COALESCE));
        assert_eq!(q.written(1), Ok(()));
        let (next, ()) = q.next_write().unwrap();
        assert_eq!(next.len(), COALESCE);
        assert!(next.iter().all(|&b| b == b'x' || b == b'y'));
    }

    #[test]
    fn a_chunk_reopened_for_small_sends_is_never_moved_while_it_fills() {
        let c = config(1 << 20, 64 << 20);
        let mut q = SendQueue::<()>::new();
        q.push(Bytes::from_static(b"in flight"), (), &c).unwrap();
        q.next_write().unwrap();
        q.push(Bytes::copy_from_slice(b"xy"), (), &c).unwrap();
        q.push(Bytes::copy_from_slice(b"xy"), (), &c).unwrap();
        let at = q.chunks.back().unwrap().0.as_ptr();
        for _ in 2..COALESCE / 2 {
            q.push(Bytes::copy_from_slice(b"xy"), (), &c).unwrap();
        }
        let (last, ()) = q.chunks.back().unwrap();
        assert_eq!(last.len(), COALESCE);
        assert_eq!(last.as_ptr(), at, "filled in place: each byte copied once");
    }

    #[test]
    fn a_sealed_chunk_takes_no_more_and_large_sends_stay_whole() {
        let c = config(1 << 20, 64 << 20);
        let mut q = SendQueue::<()>::new();
        q.push(Bytes::from_static(b"plain"), (), &c).unwrap();
        q.seal();
        q.push(Bytes::copy_from_slice(b"secret"), (), &c).unwrap();
        q.push(Bytes::copy_from_slice(b"!"), (), &c).unwrap();
        assert_eq!(q.take_front(100).unwrap(), Bytes::from_static(b"plain"));
        assert_eq!(q.take_front(100).unwrap(), Bytes::from_static(b"secret!"));
        let big = Bytes::from(vec![7u8; COALESCE]);
        q.push(Bytes::copy_from_slice(b"z"), (), &c).unwrap();
        q.push(big.clone(), (), &c).unwrap();
        assert_eq!(q.take_front(usize::MAX).unwrap(), Bytes::from_static(b"z"));
        assert_eq!(
            q.take_front(usize::MAX).unwrap(),
            big,
            "not copied into a smaller chunk"
        );
    }

    #[test]
    fn impossible_write_results_change_nothing() {
        let c = config(4, 100);
        let mut q = SendQueue::<()>::new();
        assert!(q.written(1).is_err());
        q.push(Bytes::from_static(b"abc"), (), &c).unwrap();
        q.next_write().unwrap();
        assert!(q.written(4).is_err());
        assert!(q.written(0).is_err());
        assert_eq!(q.buffered(), 3);
        assert_eq!(q.written(3), Ok(()));
    }

    /// A replay hands the core what the app sent as parts of the recording, where the live
    /// app may have kept (or dropped) its buffers: the writes must not depend on that.
    #[test]
    fn how_sends_are_joined_never_depends_on_who_holds_the_buffers() {
        let c = config(1 << 20, 64 << 20);
        let writes = |keep: bool| {
            let mut q = SendQueue::<()>::new();
            let mut kept = Vec::new();
            let mut writes = Vec::new();
            for i in 0..3000usize {
                let data = Bytes::from(vec![i as u8; 1 + i % 37]);
                if keep {
                    kept.push(data.clone());
                }
                q.push(data, (), &c).unwrap();
                // Now and then the OS takes part of a write.
                if i % 97 == 0 {
                    if let Some((write, ())) = q.next_write() {
                        let n = (write.len() / 2).max(1);
                        q.written(n).unwrap();
                        writes.push(write);
                    }
                }
            }
            while let Some((write, ())) = q.next_write() {
                q.written(write.len()).unwrap();
                writes.push(write);
            }
            writes
        };
        let sole = writes(false);
        assert!(sole.len() > 10 && sole.iter().any(|w| w.len() > 1000));
        assert_eq!(sole, writes(true));
    }
}
