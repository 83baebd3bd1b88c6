//! Faults on demand in the simulated network: refused connections, black holes, host
//! crashes and restarts, silenced, reset and failed connections (partitions and holds
//! are in paths.rs).

use std::io;
use std::net::{IpAddr, SocketAddr};

use super::net::Ev;
use super::{CheckedCore, ConnId, HostId, Sim, SimError};
use crate::Core;

impl Sim {
    /// Connections to `addr` are refused from now on, listener or not.
    pub fn refuse(&mut self, addr: SocketAddr) {
        self.refused.insert(addr);
    }

    /// Nothing to or from `ip` gets through from now on, also segments already on the way:
    /// connects get no answer and connections go quiet (so the core's timers decide). As with
    /// TCP's retransmissions, what was held goes through, in order, once [`Sim::heal`]ed.
    pub fn black_hole(&mut self, ip: IpAddr) {
        self.note(None, format!("black hole {ip}"));
        self.black_holes.insert(ip);
    }

    /// Undoes [`Sim::black_hole`] and [`Sim::refuse`] for `ip`.
    pub fn heal(&mut self, ip: IpAddr) {
        self.note(None, format!("heal {ip}"));
        self.black_holes.remove(&ip);
        self.refused.retain(|a| a.ip() != ip);
        self.retransmit();
    }

    /// The host crashes (turmoil's `crash`): its core and every socket of it vanish at once,
    /// without a segment. Its peers see what Linux peers see: silence (what they send is held,
    /// as their TCP retransmits; connects to it time out; datagrams to it are lost) until
    /// their own timers end it, or until [`Sim::restart`]. Calls on it fail meanwhile. The
    /// transcript and the violations of its core so far are kept.
    pub fn crash(&mut self, host: HostId) -> Result<(), SimError> {
        let h = self
            .hosts
            .get_mut(host.0 as usize)
            .ok_or(SimError::UnknownHost(host))?;
        h.down = true;
        let old = std::mem::replace(
            &mut h.core,
            CheckedCore::new(Core::new(self.cfg.core.clone())),
        );
        h.deadline = None;
        h.dirty = false;
        h.socks.clear();
        h.servers.clear();
        h.udps.clear();
        h.opening.clear();
        let kept = old.violations().iter().map(|v| (host, v.clone()));
        self.net_violations.extend(kept);
        self.note(Some(host), format!("{host} crashes"));
        self.established.retain(|(h, _), _| *h != host);
        self.ready.retain(|(h, _)| *h != host);
        self.held_datagrams.retain(|d| d.host != host);
        // What was on its way to its sockets finds none (a new core reuses their ids).
        self.queue.retain(|_, ev| {
            !matches!(ev, Ev::Resolve { host: h, .. } | Ev::Input { host: h, .. }
                | Ev::Datagram { host: h, .. } | Ev::UdpDeliver { host: h, .. }
                | Ev::UdpFlush { host: h, .. } if *h == host)
        });
        self.crash_ends(host);
        self.keep_alive_forget(host, None);
        Ok(())
    }

    /// The crashed host is back (turmoil's `bounce`), with a fresh core made from
    /// [`SimConfig::core`](super::SimConfig::core) and the same addresses: scripted listeners
    /// on them accept again, and what its peers' TCP sends again now reaches it, to be
    /// answered with a reset where it belonged to a connection of before the crash.
    pub fn restart(&mut self, host: HostId) -> Result<(), SimError> {
        let core = Core::new(self.cfg.core.clone());
        self.restart_with(host, core)
    }

    /// [`Sim::restart`] with `core` (which must have no socket yet to be checked).
    pub fn restart_with(&mut self, host: HostId, core: Core) -> Result<(), SimError> {
        let h = self
            .hosts
            .get_mut(host.0 as usize)
            .ok_or(SimError::UnknownHost(host))?;
        let mut core = CheckedCore::new(core);
        if !self.cfg.check {
            core.core_mut();
        }
        h.core = core;
        h.down = false;
        self.note(Some(host), format!("{host} restarts"));
        self.retransmit();
        Ok(())
    }

    /// The connection goes silent for good (the peer vanished): every segment either way is
    /// lost from now on, including those on the way, so writes stall once the buffers are full.
    pub fn silence(&mut self, conn: ConnId) -> Result<(), SimError> {
        let c = self.conn_mut(conn)?;
        c.silenced = true;
        c.faulted = true;
        self.note(None, format!("{conn} silenced"));
        Ok(())
    }

    /// A reset in the middle of the network, in any state: what is on the way is lost (a SYN
    /// included), and one link delay from now both ends get a reset. A core still connecting
    /// gets a refused attempt (`ConnectionRefused`, as Linux reports a reset in SYN_SENT); a
    /// side that has accepted gets `ConnectionReset`. The checker reports a violation if an
    /// end the reset reached is still alive by then.
    pub fn reset(&mut self, conn: ConnId) -> Result<(), SimError> {
        self.conn_mut(conn)?;
        self.kill(conn, io::ErrorKind::ConnectionReset, true);
        Ok(())
    }

    /// The OS reports `error` (a retransmission timeout, say) on each core end of the
    /// connection, now (a core still connecting gets a failed connect with `error`). The
    /// checker reports a violation if such an end is still alive afterwards.
    pub fn fail(&mut self, conn: ConnId, error: io::ErrorKind) -> Result<(), SimError> {
        self.conn_mut(conn)?;
        self.kill(conn, error, false);
        Ok(())
    }
}
