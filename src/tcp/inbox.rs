//! The inbox: what was read and not yet delivered, and its delivery as events when the app
//! polls that far.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use crate::core::Ctx;
use crate::io::Event;
use crate::payload::{BinaryType, Data};

use super::TcpSocket;

/// What was read and not yet delivered to the app, in order (see the `tcp` module docs).
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    pub(super) items: VecDeque<Item>,
    /// Data bytes in `items`.
    pub(super) bytes: usize,
    /// `Deliver` markers that came while the app had the socket suspended; queued again on
    /// `resume`.
    pub(super) unscheduled: usize,
}

impl Inbox {
    /// Items it has room for without allocating.
    pub(crate) fn room(&self) -> usize {
        self.items.capacity()
    }
}

#[derive(Debug)]
pub(super) enum Item {
    /// Plaintext for a `Data` event.
    Data(Bytes),
    /// The transport's FIN, read at this time.
    Eof(Instant),
    /// The peer's TLS close_notify, read at this time: its stream ends.
    NotifyEnd(Instant),
}

impl TcpSocket {
    /// A `Deliver` marker reached the front of the output queue: the next item read becomes
    /// its event, unless the app suspended the socket meanwhile.
    pub(crate) fn deliver_next(&mut self, ctx: &mut Ctx) {
        let Some(inbox) = self.inbox.as_deref_mut() else {
            return;
        };
        if inbox.items.is_empty() {
            return; // dropped by close() or a failure
        }
        if self.suspended > 0 {
            inbox.unscheduled += 1;
            return;
        }
        let item = inbox.items.pop_front();
        if inbox.items.is_empty() && inbox.unscheduled == 0 {
            // An idle socket holds no buffer (memory per socket); the next read reuses it.
            if let Some(mut emptied) = self.inbox.take() {
                emptied.bytes = 0;
                ctx.keep_inbox(emptied);
            }
        }
        match item {
            Some(Item::Data(data)) => {
                if let Some(inbox) = self.inbox.as_deref_mut() {
                    inbox.bytes -= data.len();
                }
                self.deliver(data, ctx);
            }
            Some(Item::Eof(at)) => self.transport_eof(at, ctx),
            Some(Item::NotifyEnd(at)) => self.stream_end(at, ctx),
            None => {}
        }
    }
}

impl TcpSocket {
    /// Puts what was read behind what came before it, with its `Deliver` marker.
    pub(super) fn enqueue(&mut self, item: Item, ctx: &mut Ctx) {
        let inbox = self.inbox.get_or_insert_with(|| ctx.inbox());
        if let Item::Data(data) = &item {
            inbox.bytes += data.len();
        }
        inbox.items.push_back(item);
        ctx.deliver(self.id.into());
    }

    pub(super) fn deliver(&mut self, data: Bytes, ctx: &mut Ctx) {
        let data = match self.binary_type {
            BinaryType::ArrayBuffer => Data::Bytes(data),
            BinaryType::String => match self.decoder.decode(data) {
                Some(text) => Data::Text(text),
                None => return,
            },
        };
        ctx.event(Event::Data { id: self.id, data });
    }

    pub(super) fn flush_decoder(&mut self, ctx: &mut Ctx) {
        if let Some(text) = self.decoder.finish() {
            ctx.event(Event::Data {
                id: self.id,
                data: Data::Text(text),
            });
        }
    }
}
