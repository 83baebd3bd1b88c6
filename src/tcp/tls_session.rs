//! A socket's TLS session: the `Securing` phase's state, the ciphertext waiting for the OS
//! (with the plaintext credit it releases), and decryption of what arrives.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};

use crate::core::Ctx;
use crate::error::InputError;
use crate::id::ServerId;
use crate::queue::{SendQueue, COALESCE};
use crate::tls::{self, Engine, Role};

use super::{Item, Phase, TcpSocket};

/// Whom to tell when the handshake of a secure socket completes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Announce {
    /// A client: `Open`.
    Open,
    /// A socket accepted by a secure server: `Connect { server, socket }`. Until then the app
    /// does not know the id, so a failed handshake is reported on the server instead.
    Connect(ServerId),
}

/// The TLS handshake of a socket that is not yet `open`.
#[derive(Debug)]
pub(super) struct Securing {
    /// The connect timeout still runs: it bounds the handshake too.
    pub(super) timeout_at: Option<Instant>,
    pub(super) halfclose: bool,
    pub(super) announce: Announce,
}

/// A TLS session and the ciphertext waiting for the OS.
#[derive(Debug)]
pub(super) struct Tls {
    pub(super) engine: Box<dyn Engine>,
    /// Bytes queued before `upgrade_to_secure` still to be written as plaintext.
    pub(super) plain_before: usize,
    /// Ciphertext to write, as the engine produced it (handshake flights, records, alerts),
    /// each with the plaintext bytes it releases once fully written.
    pub(super) wire: VecDeque<(Bytes, usize)>,
    pub(super) wire_bytes: usize,
    /// Bytes at the front of `wire` that were handed out in a write (in flight, or its rest
    /// after a partial write): they are never copied again (see [`Tls::next_write`]).
    handed: usize,
    /// Length of the write in flight; 0: none.
    pub(super) in_flight: usize,
    pub(super) notify_sent: bool,
}

impl Tls {
    /// Moves the engine's pending ciphertext to the wire, crediting `credit` plaintext bytes.
    pub(super) fn collect(&mut self, credit: usize) {
        match self.engine.take_outgoing() {
            Some(out) => {
                self.wire_bytes += out.len();
                self.wire.push_back((out, credit));
            }
            // Encrypting never yields nothing; if it did, the credit is released at once.
            None if credit > 0 => self.wire.push_back((Bytes::new(), credit)),
            None => {}
        }
    }

    /// Plaintext is still being written ahead of the first record (STARTTLS).
    pub(super) fn sending_plain(&self) -> bool {
        self.plain_before > 0
    }

    /// The next write: the rest of the last one, or else the front of `wire` joined with
    /// the small entries behind it, as the send queue joins small sends (up to
    /// [`COALESCE`] bytes). So what the app did in one turn (a send, then `close()`'s
    /// close_notify) leaves in one write, as one TCP segment. Only small entries are copied,
    /// each at most once; one of more than [`COALESCE`] bytes goes out as it is.
    pub(super) fn next_write(&mut self) -> Option<Bytes> {
        let (front, _) = self.wire.front().filter(|_| self.in_flight == 0)?;
        if self.handed > 0 {
            self.in_flight = front.len();
            return Some(front.clone());
        }
        let mut total = 0;
        let joined = (self.wire.iter())
            .take_while(|(b, _)| {
                total += b.len();
                total <= COALESCE
            })
            .count();
        let data = match joined {
            0 | 1 => front.clone(),
            n => {
                let size = self.wire.iter().take(n).map(|(b, _)| b.len()).sum();
                let mut out = BytesMut::with_capacity(size);
                for (b, _) in self.wire.iter().take(n) {
                    out.extend_from_slice(b);
                }
                out.freeze()
            }
        };
        self.handed = data.len();
        self.in_flight = data.len();
        Some(data)
    }

    /// The OS took `len` bytes of the write in flight: the entries they complete release
    /// their plaintext credit (exactly, however the write joined them), in order.
    pub(super) fn written(
        &mut self,
        mut len: usize,
        queue: &mut SendQueue,
    ) -> Result<(), InputError> {
        if len == 0 || len > self.in_flight {
            return Err(match self.in_flight {
                0 => InputError::Unexpected("a write completed but none was in flight"),
                _ => InputError::Unexpected(
                    "a write completed with a length the write in flight cannot have",
                ),
            });
        }
        self.in_flight = 0;
        self.handed -= len;
        self.wire_bytes -= len;
        while let Some((front, credit)) = self.wire.front_mut() {
            let n = len.min(front.len());
            front.advance(n);
            len -= n;
            if !front.is_empty() {
                break;
            }
            queue.release(*credit);
            self.wire.pop_front();
        }
        Ok(())
    }
}

impl TcpSocket {
    /// Starts the TLS session; `plain_before` bytes of the queue still go out as plaintext.
    pub(super) fn start_tls(&mut self, plain_before: usize, ctx: &mut Ctx) {
        let role = match &self.tls_role {
            Some(role) => role.clone(),
            None => match ctx.default_client_config() {
                Ok(config) => Role::Client(config),
                Err(e) => return self.fail(e, ctx),
            },
        };
        match tls::start(&role, &self.host) {
            Ok(engine) => {
                let mut session = Tls {
                    engine,
                    plain_before,
                    wire: VecDeque::new(),
                    wire_bytes: 0,
                    handed: 0,
                    in_flight: 0,
                    notify_sent: false,
                };
                session.collect(0);
                self.tls = Some(Box::new(session));
            }
            Err(e) => self.fail(e, ctx),
        }
    }

    /// Ciphertext from the peer: through TLS, then like plaintext.
    pub(super) fn decrypt(&mut self, now: Instant, data: Bytes, ctx: &mut Ctx) {
        let Some(tls) = self.tls.as_deref_mut() else {
            return self.deliver(data, ctx);
        };
        let mut plaintext = Vec::new();
        let result = tls.engine.receive(data, &mut plaintext, &mut ctx.blocks);
        tls.collect(0);
        let handshaken = !tls.engine.is_handshaking();
        let closed = tls.engine.peer_closed();
        if let Err(e) = result {
            return self.fail(e, ctx);
        }
        if handshaken {
            if let Phase::Securing(s) = &self.phase {
                let halfclose = s.halfclose;
                self.open(halfclose, ctx);
            }
        }
        let closing = matches!(self.phase, Phase::Closing(_));
        for chunk in plaintext {
            if !closing {
                self.enqueue(Item::Data(chunk), ctx);
            } // after close(): no more Data
        }
        if closed && !self.notify_read {
            self.notify_read = true;
            if closing {
                self.stream_end(now, ctx);
            } else {
                self.enqueue(Item::NotifyEnd(now), ctx);
            }
        }
    }
}
