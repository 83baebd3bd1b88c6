//! The data path of an open connection in the simulated network: writes taken into the
//! send buffer as the window allows, reads handed over in seeded chunks, FIN.

use bytes::Bytes;

use super::conn::{EndKind, EndState, Segment};
use super::net::Ev;
use super::{ConnId, HostId, Sim};
use crate::{Input, TcpId};

impl Sim {
    /// Something arrived for `ends[side]`.
    pub(super) fn kick(&mut self, conn: ConnId, side: usize) {
        let c = self.conn(conn);
        match &c.ends[side].kind {
            EndKind::Core(ce) if ce.reading => self.schedule_deliver(conn, side),
            EndKind::Peer(_) => self.peer_pump(conn),
            _ => {}
        }
    }

    /// `ends[side]` may send more: the other side read, or it has something new to say.
    pub(super) fn pump(&mut self, conn: ConnId, side: usize) {
        self.flush(conn, side);
        match self.conns[conn.0 as usize].ends[side].kind {
            EndKind::Core(_) => self.pump_core(conn, side),
            EndKind::Peer(_) => self.peer_pump(conn),
            EndKind::Nobody => {}
        }
    }

    pub(super) fn schedule_deliver(&mut self, conn: ConnId, side: usize) {
        let Some(ce) = self.conn(conn).core_end(side) else {
            return;
        };
        if !std::mem::replace(&mut ce.deliver_scheduled, true) {
            self.schedule(self.now, Ev::Deliver { conn, side });
        }
    }

    /// A core end reads a seeded chunk of what has arrived, or the end of the stream.
    pub(super) fn deliver(&mut self, conn: ConnId, side: usize) {
        let (max, chunked) = {
            let link = &self.conns[conn.0 as usize].link;
            (link.max_read.max(1), link.chunked_reads)
        };
        let c = self.conn(conn);
        let open = c.ends[side].state == EndState::Open;
        let Some(host) = c.ends[side].host else {
            return;
        };
        let unread = c.pipes[1 - side].unread_len;
        let fin = c.pipes[1 - side].fin;
        let Some(ce) = c.core_end(side) else { return };
        ce.deliver_scheduled = false;
        if !open || !ce.reading {
            return;
        }
        let id = ce.id;
        if unread > 0 {
            let most = max.min(unread);
            let n = if chunked {
                self.rng.between(1, most)
            } else {
                most
            };
            let data = self.conn(conn).pipes[1 - side].take(n);
            self.feed(host, Input::Received { id, data });
            self.pump(conn, 1 - side);
            if unread > n || fin {
                self.schedule_deliver(conn, side);
            }
        } else if fin && !std::mem::replace(&mut ce.eof_fed, true) {
            self.feed(host, Input::Eof { id });
        }
    }

    /// `Action::Write`.
    pub(super) fn write(
        &mut self,
        host: HostId,
        id: TcpId,
        conn: ConnId,
        side: usize,
        data: Bytes,
    ) {
        let c = self.conn(conn);
        let fin = c.ends[side].fin_sent;
        let Some(ce) = c.core_end(side) else { return };
        if ce.write.is_some() || ce.taken.is_some() {
            let what = "a second write while one is in flight".into();
            return self.violation(host, Some(id.into()), what);
        }
        ce.write = Some(data);
        if fin {
            self.violation(host, Some(id.into()), "a write after FIN".into());
        }
        self.pump_core(conn, side);
    }

    /// The OS takes (part of) a core end's pending write, if the buffers have room.
    pub(super) fn pump_core(&mut self, conn: ConnId, side: usize) {
        let partial = self.conns[conn.0 as usize].link.partial_writes;
        let c = self.conn(conn);
        if c.ends[side].state != EndState::Open {
            return;
        }
        let space = c.link.send_buffer.saturating_sub(c.pipes[side].queued());
        let Some(ce) = c.core_end(side) else { return };
        if space == 0 || ce.write.is_none() {
            return;
        }
        let data = ce.write.take().unwrap_or_default();
        let most = data.len().min(space);
        let n = if partial {
            self.rng.between(1, most)
        } else {
            most
        };
        if let Some(ce) = self.conn(conn).core_end(side) {
            ce.taken = Some(n);
        }
        self.conn(conn).pipes[side].push(data.slice(..n));
        self.flush(conn, side);
        self.schedule(self.now, Ev::Written { conn, side, len: n });
    }

    /// `ends[side]`'s kernel puts what its send buffer holds on the wire while the receiver's
    /// window has room, then its FIN once nothing is left before it. An end that closed its
    /// socket (FIN) keeps sending; a reset has emptied the buffer.
    pub(super) fn flush(&mut self, conn: ConnId, side: usize) {
        loop {
            let c = self.conn(conn);
            if c.killed {
                return;
            }
            let window = c.pipes[side].window(c.link.recv_buffer);
            let pipe = &mut c.pipes[side];
            let Some(front) = pipe.unsent.front_mut() else {
                break;
            };
            if window == 0 {
                return;
            }
            let chunk = if front.len() <= window {
                pipe.unsent.pop_front().unwrap_or_default()
            } else {
                front.split_to(window)
            };
            pipe.unsent_len -= chunk.len();
            self.send_segment(conn, side, Segment::Data(chunk));
        }
        let c = self.conn(conn);
        if c.ends[side].fin_sent
            && !c.ends[side].rst_sent
            && !std::mem::replace(&mut c.pipes[side].fin_on_wire, true)
        {
            self.send_segment(conn, side, Segment::Fin);
        }
    }

    /// `Action::QueryUnacked`: what `ends[side]` sent that the other end's kernel has not
    /// taken (bytes still in its send buffer, waiting for the window; on the wire, held by a
    /// black hole or sent to a closed end) and its FIN until that arrived, as Linux's
    /// `SIOCOUTQ` counts.
    pub(super) fn unacked(&mut self, conn: ConnId, side: usize) -> usize {
        let c = self.conn(conn);
        let pipe = &c.pipes[side];
        pipe.queued() + usize::from(c.ends[side].fin_sent && !pipe.fin)
    }

    /// `Action::Shutdown`.
    pub(super) fn shutdown(&mut self, conn: ConnId, side: usize) {
        let end = &mut self.conn(conn).ends[side];
        if end.state == EndState::Open && !std::mem::replace(&mut end.fin_sent, true) {
            self.flush(conn, side);
        }
    }
}
