//! The write path: asking for a write, handing out plaintext or TLS records when it is polled,
//! and close_notify once it is due.

use crate::core::Ctx;
use crate::io::Action;

use super::{Phase, TcpSocket, Tls};

/// Ciphertext the core prepares ahead of the OS: plaintext is encrypted in slices of at most
/// this, and only while less than this is waiting to be written, so TLS never doubles the
/// memory of a large queue.
const TLS_WIRE_TARGET: usize = 64 << 10;

impl TcpSocket {
    /// Asks for the next write, if one can be handed out: it is, when the app polls as far as
    /// this ([`write_next`](Self::write_next)), so that it takes what is queued by then.
    #[inline]
    pub(super) fn pump(&mut self, ctx: &mut Ctx) {
        let can = match self.tls.as_deref() {
            Some(tls) if !tls.sending_plain() => {
                tls.in_flight == 0
                    && (!tls.wire.is_empty() || Self::encrypting(tls) && !self.queue.is_empty())
            }
            _ => !self.queue.writing() && !self.queue.is_empty(),
        };
        if can && !self.write_queued {
            self.write_queued = true;
            ctx.write_due(self.id);
        }
    }

    /// The session takes plaintext for encryption.
    fn encrypting(tls: &Tls) -> bool {
        !tls.engine.is_handshaking() && !tls.notify_sent
    }
}

impl TcpSocket {
    /// The marker of [`pump`](Self::pump) was polled: hands the next write to the I/O layer,
    /// plaintext from the queue, or TLS records (encrypting more of the queue once the
    /// handshake is done, and close_notify when it is due).
    pub(crate) fn write_next(&mut self, ctx: &mut Ctx) {
        self.write_queued = false;
        let writable = matches!(
            self.phase,
            Phase::Securing(_) | Phase::Open | Phase::HalfClosed | Phase::Closing(_)
        );
        if !writable {
            return;
        }
        let tls = match self.tls.as_deref_mut() {
            Some(tls) if !tls.sending_plain() => tls,
            _ => {
                if let Some((data, ())) = self.queue.next_write() {
                    ctx.action(Action::Write { id: self.id, data });
                }
                return;
            }
        };
        if tls.in_flight > 0 {
            return;
        }
        if Self::encrypting(tls) {
            while tls.wire_bytes < TLS_WIRE_TARGET {
                let Some(chunk) = self.queue.take_front(TLS_WIRE_TARGET) else {
                    break;
                };
                if let Err(e) = tls.engine.encrypt(&chunk) {
                    return self.fail(e, ctx);
                }
                tls.collect(chunk.len());
            }
        }
        self.close_notify_if_due();
        let Some(tls) = self.tls.as_deref_mut() else {
            return;
        };
        // Records that release credit without bytes (none in practice) are settled here.
        while let Some((front, credit)) = tls.wire.front() {
            if !front.is_empty() {
                break;
            }
            self.queue.release(*credit);
            tls.wire.pop_front();
        }
        match tls.next_write() {
            Some(data) => ctx.action(Action::Write { id: self.id, data }),
            None => self.settle(ctx), // credit released: Drain or FIN may be due
        }
    }

    /// Queues TLS close_notify once the app's stream ends (`close()`, `halfclose()`) and all
    /// its plaintext is encrypted: behind the last record, in the same write when that one is
    /// not out yet. An armed `Drain` fires first, once everything is written ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket)
    /// close: flush, `Drain`, close_notify, FIN).
    #[inline]
    pub(super) fn close_notify_if_due(&mut self) {
        let fin_due = matches!(self.phase, Phase::HalfClosed | Phase::Closing(_));
        let Some(tls) = self.tls.as_deref_mut() else {
            return;
        };
        let drained = !self.queue.drain_armed() && self.queue.is_empty();
        if fin_due && !self.fin_sent && drained && Self::encrypting(tls) && !tls.sending_plain() {
            tls.notify_sent = true;
            tls.engine.close_notify();
            tls.collect(0);
        }
    }

    /// Nothing of ours is waiting: no plaintext, no TLS record.
    #[inline]
    pub(super) fn flushed(&self) -> bool {
        self.queue.buffered() == 0 && self.tls.as_ref().is_none_or(|t| t.wire.is_empty())
    }
}
