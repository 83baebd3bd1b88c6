//! TCP's retransmission timers in the simulated network, as Linux's: the give-up of data or a
//! FIN the other end never acknowledges (`tcp_retries2`), and the SYN retries of a connect
//! (`tcp_syn_retries`), for cores and scripted clients alike.
//!
//! **Data and FIN.** While an open end has bytes or a FIN unacknowledged (on the wire, held
//! by a black hole, a partition, a hold or a host that is down, or lost to [`Sim::silence`]),
//! its retransmission timer runs, from the send of the oldest of them (restarted by every
//! acknowledgement that leaves some outstanding, as Linux's `tcp_rearm_rto`). Linux's timer
//! fires after the RTO, then after twice it, and so on up to [`TCP_RTO_MAX`]; at each firing
//! after the first, `retransmits_timed_out` gives up once the time since the first
//! retransmission reaches `tcp_model_timeout(tcp_retries2, TCP_RTO_MIN)`:
//!
//! ```text
//! thresh  = ilog2(TCP_RTO_MAX / TCP_RTO_MIN)                       = 9
//! timeout = (2^(thresh+1) − 1) × TCP_RTO_MIN + (15 − thresh) × TCP_RTO_MAX
//!         = 1023 × 0.2 s + 6 × 120 s                               = 924.6 s
//! ```
//!
//! The RTO is Linux's after a handshake that measured a round trip `rtt` (twice the link's
//! least one-way delay, at least 1 µs): `rtt + max(2 × rtt, TCP_RTO_MIN)` rounded up to the
//! millisecond (Linux counts in jiffies), at most [`TCP_RTO_MAX`]: 201 ms on a link without
//! latency, as `ss -ti` shows on loopback, 202 ms on the default 1 ms link. The end then
//! gives up at the first firing `T = rto × (2^k − 1)` (intervals capped at 120 s) with
//! `T − rto ≥ 924.6 s`: 926.646 s after the send on the default link, after 15
//! retransmissions. It sends nothing (Linux's `tcp_write_err` sends no reset) and its socket
//! gets `TimedOut` (`NetworkTimeoutError`); what it had held back is not sent again, so the
//! other end learns of it only when it sends and the closed end answers with a reset. A
//! repair, heal, release or restart before then lets what was held through, at once (Linux
//! would wait for its next retransmission). Not modelled: tail loss probes (Linux's first
//! retransmission may come a few ms sooner), an RTT measured from the traffic (the sim uses the
//! link's least delay), acknowledgements lost on their own (an arrival is acknowledged at
//! once) and zero-window probes (a window the other end keeps shut never times out here).
//!
//! **SYN.** A connect's SYN is sent again 1 s (Linux's initial RTO for a SYN) after it, then
//! after 2 s, 4 s, ..., so at 1, 3, 7, 15, 31 and 63 s, and the connect fails with `TimedOut`
//! at `tcp_model_timeout(tcp_syn_retries = 6, 1 s)` = 127 s, Linux's default: a core's
//! `Input::ConnectFailed` (the core's own [`Config::connect_timeout`](crate::Config), 20 s
//! by default, usually fires first), a scripted client's [`PeerState::Failed`] at its
//! [`Peer::connect_timeout`] (127 s by default). A retry sends the SYN again only if it was
//! dropped (a listener's accept queue was full); a SYN held by a black hole, partition or hold
//! goes on when it heals, as data does, and one to an address no host has stays lost.

use std::io;
use std::time::{Duration, Instant};

use super::conn::EndState;
use super::net::Ev;
use super::{ConnId, Sim};

/// Linux's `TCP_RTO_MIN`: the least retransmission timeout, and the base of
/// `tcp_model_timeout` for data.
pub const TCP_RTO_MIN: Duration = Duration::from_millis(200);

/// Linux's `TCP_RTO_MAX`: the longest interval between two retransmissions.
pub const TCP_RTO_MAX: Duration = Duration::from_secs(120);

/// Linux's default `tcp_retries2`: retransmissions of data or a FIN before the connection
/// fails with `ETIMEDOUT` (the driver leaves it, and `TCP_USER_TIMEOUT`, as they are).
pub const TCP_RETRIES2: u32 = 15;

/// Linux's default `tcp_syn_retries`: SYN retransmissions before a connect fails with
/// `ETIMEDOUT`, 127 s after it started.
pub const TCP_SYN_RETRIES: u32 = 6;

/// Linux's initial RTO of a SYN (`TCP_TIMEOUT_INIT`).
const SYN_RTO: Duration = Duration::from_secs(1);

/// When a core's connect nobody answers fails: `tcp_model_timeout(tcp_syn_retries, 1 s)`,
/// 127 s.
pub(crate) fn syn_give_up() -> Duration {
    model_timeout(TCP_SYN_RETRIES, SYN_RTO)
}

/// Linux's `tcp_model_timeout(boundary, rto_base)`: how long `boundary` retransmissions with
/// exponential backoff from `rto_base` (capped at [`TCP_RTO_MAX`]) take.
pub(crate) fn model_timeout(boundary: u32, rto_base: Duration) -> Duration {
    let ratio = (TCP_RTO_MAX.as_micros() / rto_base.as_micros().max(1)).max(1);
    let thresh = ratio.ilog2();
    if boundary <= thresh {
        rto_base * ((2u32 << boundary) - 1)
    } else {
        rto_base * ((2u32 << thresh) - 1) + TCP_RTO_MAX * (boundary - thresh)
    }
}

/// The RTO after a handshake that measured `rtt`, as Linux's `tcp_rtt_estimator` and
/// `__tcp_set_rto` make it: `rtt + max(2 × rtt, TCP_RTO_MIN)`, rounded up to the jiffy.
pub(crate) fn rto(rtt: Duration) -> Duration {
    let rtt = rtt.max(Duration::from_micros(1));
    let us = (rtt + (rtt * 2).max(TCP_RTO_MIN)).as_micros();
    let ms = u64::try_from(us.div_ceil(1000)).unwrap_or(u64::MAX);
    Duration::from_millis(ms).min(TCP_RTO_MAX)
}

/// From the send of the oldest unacknowledged segment to the firing of the retransmission
/// timer that gives up, for this RTO (see the module docs).
pub(crate) fn give_up_after(rto: Duration) -> Duration {
    let limit = model_timeout(TCP_RETRIES2, TCP_RTO_MIN);
    let (mut at, mut interval) = (Duration::ZERO, rto);
    // Bounded: `at` grows by at least `rto` (≥ 1 ms) each turn, and `limit` is finite.
    loop {
        at += interval;
        if at > rto && at - rto >= limit {
            return at;
        }
        interval = (interval * 2).min(TCP_RTO_MAX);
    }
}

/// A connect's SYN retransmission timer.
#[derive(Debug)]
pub(crate) struct SynTimer {
    started: Instant,
    /// When the connect fails if still unanswered.
    give_up: Instant,
    /// The wait before the next retry.
    interval: Duration,
    /// The scheduled firing, to take out of the queue when the connect ends.
    key: Option<(Instant, u64)>,
    /// The last SYN was dropped by the listener (its accept queue full): the next retry sends
    /// it again.
    pub(crate) dropped: bool,
}

impl Sim {
    /// The RTO of `conn`'s ends, from its link.
    fn conn_rto(&self, conn: ConnId) -> Duration {
        rto(self.conns[conn.0 as usize].link.least_delay() * 2)
    }

    /// What `ends[side]` has sent that the other end has not acknowledged: bytes on the way
    /// (or held, or lost) and a FIN on the wire that has not arrived.
    fn outstanding(&self, conn: ConnId, side: usize) -> bool {
        let c = &self.conns[conn.0 as usize];
        let pipe = &c.pipes[side];
        pipe.in_flight > 0 || (pipe.fin_on_wire && !pipe.fin)
    }

    /// After `ends[side]` sent a segment: its retransmission timer starts if it was idle.
    pub(super) fn rto_sent(&mut self, conn: ConnId, side: usize) {
        let c = &self.conns[conn.0 as usize];
        if c.pipes[side].rto.is_some()
            || c.ends[side].state != EndState::Open
            || !self.outstanding(conn, side)
        {
            return;
        }
        let at = self.now + give_up_after(self.conn_rto(conn));
        let key = self.schedule_keyed(at, Ev::Rto { conn, side });
        self.conn(conn).pipes[side].rto = Some(key);
    }

    /// The other end acknowledged something `ends[side]` sent: the timer starts over if more
    /// is outstanding, else it stops.
    pub(super) fn rto_acked(&mut self, conn: ConnId, side: usize) {
        self.rto_stop(conn, side);
        self.rto_sent(conn, side);
    }

    /// `ends[side]` closed, or everything it sent is acknowledged: no give-up to come.
    pub(super) fn rto_stop(&mut self, conn: ConnId, side: usize) {
        if let Some(key) = self.conn(conn).pipes[side].rto.take() {
            self.queue.remove(&key);
        }
    }

    /// [`Ev::Rto`]: `ends[side]` gives up on what the other end never acknowledged.
    pub(super) fn rto_give_up(&mut self, conn: ConnId, side: usize) {
        self.conn(conn).pipes[side].rto = None;
        let live = self.conns[conn.0 as usize].ends[side].state == EndState::Open;
        if !live || !self.outstanding(conn, side) {
            return;
        }
        self.note(
            None,
            format!("{conn}: end {side}: {TCP_RETRIES2} retransmissions unanswered: timed out"),
        );
        let c = self.conn(conn);
        c.faulted = true;
        // Gone with its socket: nothing of it is sent again.
        c.stalled.retain(|(dir, ..)| *dir != side);
        self.reset_end(conn, side, io::ErrorKind::TimedOut);
    }

    /// A connect starts: its SYN timer runs until `give_up` from now.
    pub(super) fn syn_start(&mut self, conn: ConnId, give_up: Duration) {
        let now = self.now;
        self.conn(conn).syn = Some(SynTimer {
            started: now,
            give_up: now + give_up,
            interval: SYN_RTO,
            key: None,
            dropped: false,
        });
        self.syn_schedule(conn, now + SYN_RTO);
    }

    fn syn_schedule(&mut self, conn: ConnId, at: Instant) {
        let Some(give_up) = self.conn(conn).syn.as_ref().map(|s| s.give_up) else {
            return;
        };
        let key = self.schedule_keyed(at.min(give_up), Ev::SynTimer { conn });
        if let Some(s) = self.conn(conn).syn.as_mut() {
            s.key = Some(key);
        }
    }

    /// The connect of `conn` is over (connected, failed, aborted): its timer goes.
    pub(super) fn syn_stop(&mut self, conn: ConnId) {
        if let Some(key) = self.conn(conn).syn.take().and_then(|s| s.key) {
            self.queue.remove(&key);
        }
    }

    /// [`Ev::SynTimer`]: the connect fails, or its SYN goes again if it was dropped.
    pub(super) fn syn_timer(&mut self, conn: ConnId) {
        let now = self.now;
        let c = self.conn(conn);
        let Some(s) = c.syn.as_mut() else { return };
        s.key = None;
        if c.ends[0].state != EndState::Connecting {
            c.syn = None;
            return;
        }
        if now >= s.give_up {
            let after = now - s.started;
            c.syn = None;
            self.note(
                None,
                format!("{conn}: connect unanswered after {after:?}: timed out"),
            );
            let error = io::ErrorKind::TimedOut;
            return self.schedule(now, Ev::ConnectFailed { conn, error });
        }
        let again = std::mem::take(&mut s.dropped);
        // The wait doubles after each firing: 1, 3, 7, 15, ... s after the first SYN.
        s.interval = (s.interval * 2).min(TCP_RTO_MAX);
        let at = now + s.interval;
        if again {
            self.note(None, format!("{conn}: SYN sent again"));
            self.send_syn(conn);
        }
        self.syn_schedule(conn, at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_numbers() {
        assert_eq!(
            model_timeout(TCP_RETRIES2, TCP_RTO_MIN),
            Duration::from_millis(924_600)
        );
        assert_eq!(
            model_timeout(TCP_SYN_RETRIES, SYN_RTO),
            Duration::from_secs(127)
        );
        assert_eq!(rto(Duration::ZERO), Duration::from_millis(201));
        assert_eq!(rto(Duration::from_millis(2)), Duration::from_millis(202));
        assert_eq!(rto(Duration::from_millis(100)), Duration::from_millis(300));
        assert_eq!(rto(Duration::from_secs(100)), TCP_RTO_MAX);
        assert_eq!(
            give_up_after(Duration::from_millis(202)),
            Duration::from_millis(926_646)
        );
        assert_eq!(
            give_up_after(Duration::from_millis(201)),
            Duration::from_millis(925_623)
        );
        // Exactly 200 ms misses 924.6 s by 0.2 s at the 16th firing: the 17th gives up.
        assert_eq!(
            give_up_after(Duration::from_millis(200)),
            Duration::from_millis(1_044_600)
        );
    }
}
