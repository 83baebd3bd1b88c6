//! A `UDPSocket`'s send queue: `bufferedAmount`, the hard caps, `Drain` arming
//! ([BEHAVIOUR §3](crate::behaviour#3-udpsocket), as §1's for TCP), and the datagrams handed
//! out in [`Action::SendDatagrams`](crate::Action::SendDatagrams) until they are answered.

use std::collections::VecDeque;
use std::net::SocketAddr;

use bytes::Bytes;

use crate::config::Config;
use crate::error::{ApiError, InputError};
use crate::io::Datagrams;

/// Datagrams accepted by `send` and not yet answered by the I/O layer, in order: those
/// handed out (only their lengths and destinations are kept: the payloads went with the
/// action, so that nothing is cloned per datagram), then those waiting, which the next
/// action carries as they are (the queue's buffer itself when it goes whole).
#[derive(Debug, Default)]
pub(super) struct DatagramQueue {
    /// Handed out and not yet answered, oldest first: length and destination.
    in_flight: VecDeque<(usize, SocketAddr)>,
    /// Not yet handed out, in order.
    waiting: VecDeque<(Bytes, SocketAddr)>,
    /// Bytes of all of them: exactly `bufferedAmount`. (Whether `Drain` is armed is the
    /// socket's, which keeps it with its other flags: an idle socket fits its budget.)
    buffered: usize,
}

impl DatagramQueue {
    /// Queues a datagram: `QuotaExceededError` above [`Config::max_queued_datagrams`] or
    /// [`Config::send_buffer_limit`] (nothing queued), else `Ok(bufferedAmount <= high-water
    /// mark)`: when `false`, the socket arms `Drain`.
    #[inline]
    pub(super) fn push(
        &mut self,
        data: Bytes,
        to: SocketAddr,
        config: &Config,
    ) -> Result<bool, ApiError> {
        let queued = self.waiting.len() + self.in_flight.len();
        if queued >= config.max_queued_datagrams {
            return Err(ApiError::quota(format!(
                "{queued} datagrams are already queued, the limit"
            )));
        }
        let len = data.len();
        let after = self.buffered.saturating_add(len);
        if after > config.send_buffer_limit {
            return Err(ApiError::quota(format!(
                "sending {len} bytes would buffer {after} bytes, above the limit of {}",
                config.send_buffer_limit
            )));
        }
        self.buffered = after;
        self.waiting.push_back((data, to));
        Ok(after <= config.high_water_mark)
    }

    /// Whether [`hand_out`](Self::hand_out) would hand out something.
    #[inline]
    pub(super) fn can_hand_out(&self, max: usize) -> bool {
        !self.waiting.is_empty() && self.in_flight.len() < max.max(1)
    }

    /// The next datagrams to send, in order, so that at most `max` (at least 1) are handed
    /// out and not yet answered; `None` when there is none or the limit is reached. A lone
    /// one goes inline; all that wait go in the queue's own buffer (a new one, as large,
    /// takes the next sends).
    pub(super) fn hand_out(&mut self, max: usize) -> Option<Datagrams> {
        let room = max.max(1).saturating_sub(self.in_flight.len());
        let n = room.min(self.waiting.len());
        if n == 0 {
            return None;
        }
        // A lone one without `extend`, which costs ~100 instructions a call (as much as the
        // rest of its hand-out) and less than `push_back` per datagram of a run.
        if n == 1 {
            let (data, to) = &self.waiting[0];
            self.in_flight.push_back((data.len(), *to));
        } else {
            let handed = self.waiting.range(..n).map(|(data, to)| (data.len(), *to));
            self.in_flight.extend(handed);
        }
        Some(if n == 1 {
            let (data, to) = self.waiting.pop_front()?;
            Datagrams::one(data, to)
        } else if n == self.waiting.len() {
            let all = std::mem::replace(&mut self.waiting, VecDeque::with_capacity(n));
            Vec::from(all).into()
        } else {
            self.waiting.drain(..n).collect()
        })
    }

    /// The `count` oldest datagrams handed out were sent: their bytes leave
    /// The `count` oldest datagrams handed out were sent: their bytes leave
    /// `bufferedAmount`. A count of 0 or above those handed out changes nothing and is an
    /// [`InputError`].
    pub(super) fn sent(&mut self, count: usize) -> Result<(), InputError> {
        if count == 0 {
            return Err(InputError::Unexpected("a Sent of no datagram"));
        }
        if count > self.in_flight.len() {
            return Err(InputError::Unexpected(if self.in_flight.is_empty() {
                "a send completed but none was in flight"
            } else {
                "a Sent of more datagrams than are in flight"
            }));
        }
        let sent: usize = self.in_flight.drain(..count).map(|(len, _)| len).sum();
        self.buffered -= sent;
        Ok(())
    }

    /// The oldest datagram handed out was refused by the OS and is dropped: its bytes leave
    /// `bufferedAmount`. Returns its destination.
    pub(super) fn failed(&mut self) -> Result<SocketAddr, InputError> {
        let (len, to) = self.in_flight.pop_front().ok_or(InputError::Unexpected(
            "a send completed but none was in flight",
        ))?;
        self.buffered -= len;
        Ok(to)
    }

    /// `bufferedAmount`.
    pub(super) fn buffered(&self) -> usize {
        self.buffered
    }

    /// No datagram is queued or in flight (an empty one counts, though it adds nothing to
    /// `bufferedAmount`).
    pub(super) fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.in_flight.is_empty()
    }

    /// Discards everything (the socket was released).
    pub(super) fn clear(&mut self) {
        *self = DatagramQueue::default();
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

    const TO: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::LOCALHOST,
        7,
    ));

    #[test]
    fn datagrams_go_out_in_order_within_the_limit_and_are_answered_by_count() {
        let c = config(4, 100);
        let mut q = DatagramQueue::default();
        for d in [&b"ab"[..], b"cde", b"", b"f"] {
            q.push(Bytes::copy_from_slice(d), TO, &c).unwrap();
        }
        assert_eq!(q.buffered(), 6);
        let first = q.hand_out(3).unwrap();
        let sizes: Vec<usize> = first.iter().map(|(d, _)| d.len()).collect();
        assert_eq!(sizes, [2, 3, 0]);
        assert!(q.hand_out(3).is_none(), "three in flight, the limit");
        assert_eq!(q.sent(2), Ok(()));
        assert_eq!(q.buffered(), 1, "exact per datagram");
        assert!(!q.is_empty(), "the empty and the last one are still queued");
        assert_eq!(q.hand_out(3).unwrap(), [(Bytes::from_static(b"f"), TO)]);
        assert_eq!(q.failed(), Ok(TO), "the empty datagram");
        assert_eq!(q.sent(1), Ok(()));
        assert!(q.is_empty() && q.buffered() == 0);
    }

    #[test]
    fn the_queue_goes_on_after_handing_out_its_buffer() {
        // A lone datagram, then a run that takes the queue's buffer, then more sends: every
        // datagram once, in order, and `bufferedAmount` exact throughout.
        let c = config(100, 100);
        let mut q = DatagramQueue::default();
        let d = |b: &'static [u8]| (Bytes::from_static(b), TO);
        q.push(d(b"a").0, TO, &c).unwrap();
        assert_eq!(q.hand_out(64).unwrap(), [d(b"a")]);
        for b in [&b"bc"[..], b"def"] {
            q.push(Bytes::from_static(b), TO, &c).unwrap();
        }
        assert_eq!(q.hand_out(64).unwrap(), [d(b"bc"), d(b"def")]);
        q.push(d(b"ghij").0, TO, &c).unwrap();
        q.push(d(b"").0, TO, &c).unwrap();
        assert_eq!(q.buffered(), 10);
        assert_eq!(q.sent(2), Ok(()), "a and bc");
        assert_eq!(q.buffered(), 7);
        assert_eq!(q.hand_out(64).unwrap(), [d(b"ghij"), d(b"")]);
        assert_eq!(q.sent(3), Ok(()));
        assert!(q.is_empty() && q.buffered() == 0);
    }

    #[test]
    fn a_count_of_zero_or_above_what_is_in_flight_changes_nothing() {
        let c = config(100, 100);
        let mut q = DatagramQueue::default();
        assert!(q.sent(1).is_err() && q.failed().is_err());
        q.push(Bytes::from_static(b"abc"), TO, &c).unwrap();
        q.push(Bytes::from_static(b"de"), TO, &c).unwrap();
        q.hand_out(64).unwrap();
        assert!(q.sent(0).is_err());
        assert!(q.sent(3).is_err());
        assert_eq!(q.buffered(), 5);
        assert_eq!(q.sent(2), Ok(()));
        assert_eq!(q.buffered(), 0);
    }

    #[test]
    fn the_caps_refuse_and_queue_nothing() {
        let c = Config {
            max_queued_datagrams: 2,
            ..config(4, 6)
        };
        let mut q = DatagramQueue::default();
        assert_eq!(q.push(Bytes::from_static(b"12345"), TO, &c), Ok(false));
        assert!(q.push(Bytes::from_static(b"67"), TO, &c).is_err(), "bytes");
        q.push(Bytes::new(), TO, &c).unwrap();
        assert!(q.push(Bytes::new(), TO, &c).is_err(), "datagrams");
        q.hand_out(1).unwrap();
        assert!(q.push(Bytes::new(), TO, &c).is_err(), "in flight count too");
        assert_eq!(q.buffered(), 5);
    }
}
