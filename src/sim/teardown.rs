//! How connections of the simulated network end: a socket closed (FIN, or a reset with
//! unread data), a reset or OS failure reaching an end, a host crashing, and the faults
//! [`Sim::reset`] and [`Sim::fail`] inject (checked to end what they reach).

use std::io;

use super::conn::{EndKind, EndState, Segment};
use super::net::Ev;
use super::{ConnId, HostId, Sim};
use crate::Input;

impl Sim {
    /// The OS socket of `ends[side]` is closed: a reset if received data was left unread
    /// (as Linux does), else a FIN if none was sent.
    pub(super) fn close_end(&mut self, conn: ConnId, side: usize) {
        self.rto_stop(conn, side);
        if side == 0 {
            self.syn_stop(conn);
        }
        let c = self.conn(conn);
        let was = std::mem::replace(&mut c.ends[side].state, EndState::Closed);
        if let Some(ce) = c.core_end(side) {
            ce.write = None;
            ce.taken = None;
            ce.reading = false;
        }
        if was != EndState::Open || c.killed {
            return;
        }
        if c.pipes[1 - side].unread_len > 0 {
            c.ends[side].rst_sent = true;
            self.note(None, format!("{conn}: closed with unread data: RST"));
            self.discard_unsent(conn, side);
            self.send_segment(conn, side, Segment::Rst);
        } else if !std::mem::replace(&mut c.ends[side].fin_sent, true) {
            self.flush(conn, side);
        }
    }

    /// A reset from `ends[side]`: what its kernel has not put on the wire yet (the link's
    /// bandwidth decides how far it got) is discarded, as Linux purges the send queue; the
    /// reset goes out now.
    pub(super) fn discard_unsent(&mut self, conn: ConnId, side: usize) {
        let now = self.now;
        let pipe = &mut self.conn(conn).pipes[side];
        let waiting = std::mem::take(&mut pipe.unsent_len);
        pipe.unsent.clear();
        if waiting > 0 {
            self.note(
                None,
                format!("{conn}: reset discards {waiting} bytes waiting for the window"),
            );
        }
        let Some(bw) = self.conns[conn.0 as usize]
            .link
            .bandwidth
            .filter(|bw| *bw > 0)
        else {
            return; // without a bandwidth limit every byte is on the wire at once
        };
        let (mut gone, mut segments, mut cut) = (Vec::new(), 0u64, 0usize);
        for (key, ev) in self.queue.iter_mut() {
            let Ev::Arrive {
                conn: c,
                dir,
                seg,
                tx_start,
                ..
            } = ev
            else {
                continue;
            };
            if *c != conn || *dir != side {
                continue;
            }
            let sent = if *tx_start >= now {
                0
            } else {
                let ns = (now - *tx_start).as_nanos();
                usize::try_from(ns * u128::from(bw) / 1_000_000_000).unwrap_or(usize::MAX)
            };
            match seg {
                Segment::Data(d) if sent < d.len() => {
                    cut += d.len() - sent;
                    if sent == 0 {
                        gone.push(*key);
                        segments += 1;
                    } else {
                        *d = d.slice(..sent);
                    }
                }
                Segment::Data(_) => {}
                _ if *tx_start >= now => {
                    gone.push(*key);
                    segments += 1;
                }
                _ => {}
            }
        }
        for key in gone {
            self.queue.remove(&key);
        }
        if cut > 0 || segments > 0 {
            self.note(
                None,
                format!("{conn}: reset discards {cut} bytes not yet sent"),
            );
        }
        let pipe = &mut self.conn(conn).pipes[side];
        pipe.in_flight -= cut;
        pipe.next_seq -= segments;
        pipe.link_free_at = now;
    }

    /// `Sim::crash`: every end on `host` vanishes without a segment; what its kernel had not
    /// put on the wire is gone with it.
    pub(super) fn crash_ends(&mut self, host: HostId) {
        for i in 0..self.conns.len() {
            let conn = ConnId(i as u32);
            for side in 0..2 {
                let end = &mut self.conns[i].ends[side];
                // The end of a SYN not yet answered is no socket of the host: the SYN waits,
                // as any segment to a host that is down, and a restarted host may accept it.
                let unborn =
                    matches!(end.kind, EndKind::Nobody) && end.state == EndState::Connecting;
                if end.host != Some(host) || end.crashed || unborn {
                    continue;
                }
                end.crashed = true;
                if std::mem::replace(&mut end.state, EndState::Closed) == EndState::Closed {
                    continue;
                }
                if let EndKind::Core(ce) = &mut end.kind {
                    ce.write = None;
                    ce.taken = None;
                    ce.reading = false;
                }
                self.conns[i].faulted = true;
                self.rto_stop(conn, side);
                if side == 0 {
                    self.syn_stop(conn);
                }
                self.note(Some(host), format!("{conn}: end {side} vanishes"));
                self.discard_unsent(conn, side);
            }
        }
    }

    /// A reset or OS failure reaches `ends[side]`.
    pub(super) fn reset_end(&mut self, conn: ConnId, side: usize, error: io::ErrorKind) {
        self.rto_stop(conn, side);
        let c = self.conn(conn);
        c.ends[side].state = EndState::Closed;
        // Its kernel drops what it had not sent yet.
        c.pipes[side].unsent.clear();
        c.pipes[side].unsent_len = 0;
        let host = c.ends[side].host;
        match &mut c.ends[side].kind {
            EndKind::Core(ce) => {
                let id = ce.id;
                let Some(host) = host else { return };
                let live = self.hosts[host.0 as usize]
                    .socks
                    .get(&id)
                    .is_some_and(|s| s.conn == Some((conn, side)));
                if live {
                    self.feed(host, Input::Failed { id, error });
                }
            }
            EndKind::Peer(pe) => {
                pe.was_reset = true;
                pe.error = Some(error);
                self.note(None, format!("{conn}: peer gets {error}"));
                self.peer_pump(conn);
            }
            EndKind::Nobody => {}
        }
    }

    /// `Sim::reset` (in the network) and `Sim::fail` (at the core ends), in any state: an
    /// open end gets `error`; a connecting core end gets a failed connect (a reset in
    /// SYN_SENT is `ConnectionRefused`, as Linux reports it), and a SYN still on its way is
    /// lost. Every end it reaches must have ended by the time it arrived (checked).
    pub(super) fn kill(&mut self, conn: ConnId, error: io::ErrorKind, in_network: bool) {
        self.note(None, format!("{conn}: fault {error}"));
        let delay = self.delay(conn);
        let now = self.now;
        let at = if in_network { now + delay } else { now };
        let c = self.conn(conn);
        c.faulted = true;
        c.killed |= in_network;
        let mut sides = [false; 2];
        let mut evs = Vec::new();
        for (side, hit) in sides.iter_mut().enumerate() {
            let core = matches!(c.ends[side].kind, EndKind::Core(_));
            match c.ends[side].state {
                EndState::Open if in_network || core => {
                    evs.push(Ev::Kill { conn, side, error });
                    *hit = true;
                }
                // A scripted peer's connect (side 0) is reset in the network only.
                EndState::Connecting if core || (in_network && side == 0) => {
                    let error = if in_network {
                        io::ErrorKind::ConnectionRefused
                    } else {
                        error
                    };
                    evs.push(Ev::ConnectFailed { conn, error });
                    *hit = true;
                }
                _ => {}
            }
        }
        for ev in evs {
            self.schedule(at, ev);
        }
        self.schedule(at, Ev::FaultCheck { conn, sides });
    }

    /// [`Ev::FaultCheck`]: each end the fault reached is closed in the network, and no core
    /// socket still holds it.
    pub(super) fn fault_check(&mut self, conn: ConnId, sides: [bool; 2]) {
        for side in (0..2).filter(|&s| sides[s]) {
            let c = &self.conns[conn.0 as usize];
            let end = &c.ends[side];
            let held = c.core_socket(side).filter(|(host, id)| {
                self.hosts[host.0 as usize].socks.get(id).is_some_and(|s| {
                    s.conn == Some((conn, side)) || s.attempts.values().any(|a| *a == conn)
                })
            });
            if !end.is_live() && held.is_none() {
                continue;
            }
            let host = end
                .host
                .or(c.ends[1 - side].host)
                .unwrap_or(super::HostId(0));
            let socket = held.map(|(_, id)| id.into());
            let what = format!(
                "{conn}: a fault injected into the connection did not end its end {} in time",
                end.addr
            );
            self.violation(host, socket, what);
        }
    }
}
