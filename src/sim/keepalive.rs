//! TCP keep-alive in the simulated network, as Linux's `tcp_keepalive_timer` does it, for a
//! core's connection opened with [`TcpOptions::keep_alive`](crate::TcpOptions::keep_alive)
//! ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket), `keepAliveDelay`).
//!
//! The driver sets `SO_KEEPALIVE` and `TCP_KEEPIDLE` (the option's delay) and leaves
//! `TCP_KEEPINTVL` and `TCP_KEEPCNT` at Linux's defaults, so the sim uses those:
//! [`KEEP_ALIVE_INTERVAL`] (75 s) and [`KEEP_ALIVE_PROBES`] (9). Once the connection is
//! established, the end's timer runs:
//!
//! - while it has data or a FIN unacknowledged, it probes nothing (TCP's retransmissions
//!   watch the peer) and looks again after the idle delay;
//! - when nothing has come from the other end (a segment, or the acknowledgement of its
//!   data) for the idle delay, it sends a probe and looks again after the interval; every
//!   answer counts as hearing from the other end and starts over;
//! - after [`KEEP_ALIVE_PROBES`] probes without an answer, it sends a reset and its core gets
//!   `ETIMEDOUT` (`TimedOut`, which the core reports as `NetworkTimeoutError`). A reset the
//!   path cannot carry then is lost for good: the other end learns of it when it next sends.
//!
//! So a silent other end (its host crashed or down, [`Sim::silence`], a partition, a hold, a
//! black hole) ends an idle connection at `last heard + idle + 75 s × 9`; one that answers
//! (its kernel does, even if its app never reads or writes) keeps it open for good, probed
//! every `max(idle, 75 s)` or so; a host restarted after a crash answers the first probe
//! that reaches it with a reset (`ConnectionReset`). A probe or its answer that cannot pass
//! is lost, never held. Without keep-alive a silent other end goes unnoticed while the
//! connection is idle, as on Linux.
//!
//! With keep-alive on, an open connection always has a timer to come, so [`Sim::run`] goes on
//! until [`SimConfig::time_limit`](super::SimConfig::time_limit): use [`Sim::run_for`].

use std::io;
use std::time::{Duration, Instant};

use super::conn::{EndState, Segment};
use super::net::Ev;
use super::{ConnId, HostId, Sim};

/// The interval between keep-alive probes: Linux's default `tcp_keepalive_intvl` (the driver
/// leaves `TCP_KEEPINTVL` at it).
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(75);

/// Unanswered keep-alive probes before the connection fails: Linux's default
/// `tcp_keepalive_probes` (the driver leaves `TCP_KEEPCNT` at it).
pub const KEEP_ALIVE_PROBES: u32 = 9;

/// One core end's keep-alive state.
#[derive(Debug)]
pub(crate) struct KeepAlive {
    /// `TCP_KEEPIDLE`.
    idle: Duration,
    /// When a segment (or an acknowledgement) last came from the other end.
    heard: Instant,
    /// Probes sent since then.
    probes_out: u32,
}

impl KeepAlive {
    pub(crate) fn new(idle: Duration, now: Instant) -> KeepAlive {
        KeepAlive {
            idle,
            heard: now,
            probes_out: 0,
        }
    }
}

/// Keep-alive happenings in the queue.
#[derive(Debug)]
pub(crate) enum KaEv {
    /// `ends[side]`'s keep-alive timer.
    Timer { conn: ConnId, side: usize },
    /// A probe from `ends[dir]` reaches the other end.
    Probe { conn: ConnId, dir: usize },
    /// The other end's answer reaches `ends[dir]`: an ACK, or a reset.
    Answer {
        conn: ConnId,
        dir: usize,
        reset: bool,
    },
}

impl Sim {
    /// The keep-alive state of `ends[side]`, while a core's socket holds it.
    fn keep_alive(&mut self, conn: ConnId, side: usize) -> Option<&mut KeepAlive> {
        let (host, id) = self.conns[conn.0 as usize].core_socket(side)?;
        let sock = self.hosts[host.0 as usize].socks.get_mut(&id)?;
        if sock.conn != Some((conn, side)) {
            return None;
        }
        sock.keep_alive.as_mut()
    }

    /// `ends[side]` is established: its keep-alive timer (if it has keep-alive) starts.
    pub(super) fn keep_alive_arm(&mut self, conn: ConnId, side: usize) {
        let now = self.now;
        let Some(ka) = self.keep_alive(conn, side) else {
            return;
        };
        ka.heard = now;
        ka.probes_out = 0;
        let at = now + ka.idle;
        self.schedule(at, Ev::KeepAlive(KaEv::Timer { conn, side }));
    }

    /// `ends[side]` heard from the other end.
    pub(super) fn keep_alive_heard(&mut self, conn: ConnId, side: usize) {
        let now = self.now;
        if let Some(ka) = self.keep_alive(conn, side) {
            ka.heard = now;
            ka.probes_out = 0;
        }
    }

    /// Runs a keep-alive happening.
    pub(super) fn keep_alive_event(&mut self, ev: KaEv) {
        match ev {
            KaEv::Timer { conn, side } => self.keep_alive_timer(conn, side),
            KaEv::Probe { conn, dir } => {
                if self.probe_lost(conn, dir) {
                    return self.note(None, format!("{conn}: keep-alive probe lost"));
                }
                // The other end's kernel answers: an ACK while it has the connection, a
                // reset once it is closed or its host came back without it.
                let reset = self.conns[conn.0 as usize].ends[1 - dir].state == EndState::Closed;
                let at = self.now + self.delay(conn);
                let ev = KaEv::Answer { conn, dir, reset };
                self.schedule(at, Ev::KeepAlive(ev));
            }
            KaEv::Answer { conn, dir, reset } => {
                if self.probe_lost(conn, 1 - dir) {
                    return self.note(None, format!("{conn}: keep-alive answer lost"));
                }
                if self.conns[conn.0 as usize].ends[dir].state != EndState::Open {
                    return;
                }
                if reset {
                    self.note(None, format!("{conn}: keep-alive probe answered with RST"));
                    self.conn(conn).faulted = true;
                    self.reset_end(conn, dir, io::ErrorKind::ConnectionReset);
                } else {
                    self.keep_alive_heard(conn, dir);
                }
            }
        }
    }

    /// `host`'s socket on `ends[side]` of `conn` is released, or (`None`) `host` crashed:
    /// the keep-alive timers of those ends leave the queue, so a finished run ends at once.
    pub(super) fn keep_alive_forget(&mut self, host: HostId, only: Option<(ConnId, usize)>) {
        let conns = &self.conns;
        self.queue.retain(|_, ev| match ev {
            Ev::KeepAlive(KaEv::Timer { conn, side }) => {
                let end = &conns[conn.0 as usize].ends[*side];
                end.host != Some(host) || only.is_some_and(|o| o != (*conn, *side))
            }
            _ => true,
        });
    }

    /// Whether what `ends[dir]` sends now is lost.
    fn probe_lost(&self, conn: ConnId, dir: usize) -> bool {
        let c = &self.conns[conn.0 as usize];
        c.killed || c.silenced || self.is_held(conn, dir)
    }

    /// Linux's `tcp_keepalive_timer` for `ends[side]`.
    fn keep_alive_timer(&mut self, conn: ConnId, side: usize) {
        let now = self.now;
        if self.conns[conn.0 as usize].ends[side].state != EndState::Open {
            return;
        }
        let busy = self.unacked(conn, side) > 0;
        let Some(&mut KeepAlive {
            idle,
            heard,
            probes_out,
        }) = self.keep_alive(conn, side)
        else {
            return;
        };
        let timer = Ev::KeepAlive(KaEv::Timer { conn, side });
        if busy {
            return self.schedule(now + idle, timer);
        }
        if now < heard + idle {
            return self.schedule(heard + idle, timer);
        }
        if probes_out >= KEEP_ALIVE_PROBES {
            self.note(
                None,
                format!("{conn}: {probes_out} keep-alive probes unanswered: RST, timed out"),
            );
            self.conn(conn).faulted = true;
            // Sent once, never again: lost if the path is cut now (the other end then learns
            // of it only when it sends, from the closed end's reset).
            if !self.probe_lost(conn, side) {
                self.conn(conn).ends[side].rst_sent = true;
                self.send(conn, side, Segment::Rst);
            }
            return self.reset_end(conn, side, io::ErrorKind::TimedOut);
        }
        if let Some(ka) = self.keep_alive(conn, side) {
            ka.probes_out += 1;
        }
        let n = probes_out + 1;
        self.note(None, format!("{conn}: keep-alive probe {n}"));
        if self.probe_lost(conn, side) {
            self.note(None, format!("{conn}: keep-alive probe lost"));
        } else {
            let at = now + self.delay(conn);
            self.schedule(at, Ev::KeepAlive(KaEv::Probe { conn, dir: side }));
        }
        self.schedule(now + KEEP_ALIVE_INTERVAL, timer);
    }
}
