//! UDP sockets: binding with their options, the sends of a turn taken together, batched
//! reads, and multicast memberships. The syscalls are in [`batch`](super::batch).

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use polling::Poller;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use sockstate::{Datagrams, Input, MulticastInterface, SocketSettings, UdpId};

use super::batch::{recv_datagrams, Read, Udp, DATAGRAM_BATCH};
use super::os::{apply_settings, new_socket};
use super::sources::{Io, Owner};
use super::{Reactor, Report};

impl Reactor {
    /// `Action::Bind`: a bound UDP socket with its options, not read until `SetReading`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn bind(
        &mut self,
        poller: &Poller,
        id: UdpId,
        local: SocketAddr,
        reuse_address: bool,
        loopback: bool,
        settings: SocketSettings,
        reports: &mut Vec<Report>,
    ) {
        let socket = self.start_udp(local, reuse_address, loopback, &settings);
        let bound = self.open(poller, socket, |s| {
            (Io::Udp(Box::new(Udp::new(s.into()))), Owner::Udp(id))
        });
        reports.push(
            match bound {
                Ok(local) => Input::Bound { id, local },
                Err(e) => Input::BindFailed {
                    id,
                    error: e.kind(),
                },
            }
            .into(),
        );
    }

    /// `Action::JoinMulticast` on the socket's multicast interface (set at bind: its own,
    /// else the driver's, else its local address's), source-specific if `source` is set
    /// (IPv4 only: an IPv6 source is `Unsupported`).
    pub(crate) fn join(
        &mut self,
        id: UdpId,
        group: IpAddr,
        source: Option<IpAddr>,
        reports: &mut Vec<Report>,
    ) {
        if let Err(e) = self.membership(id, group, source, true) {
            reports.push(
                Input::JoinFailed {
                    id,
                    group,
                    source,
                    error: e.kind(),
                }
                .into(),
            );
        }
    }

    /// `Action::LeaveMulticast` (a failure is not reported).
    pub(crate) fn leave(&mut self, id: UdpId, group: IpAddr, source: Option<IpAddr>) {
        let _ = self.membership(id, group, source, false);
    }

    fn membership(
        &self,
        id: UdpId,
        group: IpAddr,
        source: Option<IpAddr>,
        join: bool,
    ) -> io::Result<()> {
        let source_entry = self
            .main(id.into())
            .and_then(|key| self.sources.get(key))
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
        let sock = source_entry.io.sock();
        // The interface is read back from the OS rather than kept here.
        match (group, source) {
            (IpAddr::V4(group), None) => {
                let iface = sock.multicast_if_v4()?;
                if join {
                    sock.join_multicast_v4(&group, &iface)
                } else {
                    sock.leave_multicast_v4(&group, &iface)
                }
            }
            (IpAddr::V4(group), Some(IpAddr::V4(source))) => {
                let iface = sock.multicast_if_v4()?;
                if join {
                    sock.join_ssm_v4(&source, &group, &iface)
                } else {
                    sock.leave_ssm_v4(&source, &group, &iface)
                }
            }
            (IpAddr::V6(group), None) => {
                let index = sock.multicast_if_v6()?;
                if join {
                    sock.join_multicast_v6(&group, index)
                } else {
                    sock.leave_multicast_v6(&group, index)
                }
            }
            _ => Err(io::ErrorKind::Unsupported.into()),
        }
    }

    /// The IPv4 multicast interface: the configured one, else a specific local address.
    fn interface_v4(&self, local: Option<SocketAddr>) -> Option<Ipv4Addr> {
        self.limits.multicast_interface_v4.or(match local {
            Some(SocketAddr::V4(a)) if !a.ip().is_unspecified() => Some(*a.ip()),
            _ => None,
        })
    }

    /// `Action::SendDatagrams`: queued for the end of the turn
    /// ([`flush_sends`](Self::flush_sends)), where the datagrams of every action taken
    /// meanwhile go out together.
    pub(crate) fn send_datagrams(&mut self, id: UdpId, datagrams: Datagrams) {
        let Some(key) = self.main(id.into()) else {
            return;
        };
        let Some(source) = self.sources.get_mut(key) else {
            return;
        };
        let Io::Udp(udp) = &mut source.io else {
            return;
        };
        // A lone one without `extend` (~100 instructions a call); into an empty queue, a
        // run's buffer becomes the queue (no copy of each datagram).
        if datagrams.len() == 1 {
            if let Some(datagram) = datagrams.into_iter().next() {
                udp.out.push_back(datagram);
            }
        } else if udp.out.is_empty() {
            udp.out = Vec::from(datagrams).into();
        } else {
            udp.out.extend(Vec::from(datagrams));
        }
        if !std::mem::replace(&mut udp.flushing, true) {
            self.sends.push(key);
        }
    }

    /// Sends the datagrams [`send_to`](Self::send_to) queued, socket by socket, each socket's
    /// in one or a few syscalls (see [`batch`](super::batch)); what would block waits for
    /// writability. The driver calls this whenever it has taken every action the core had,
    /// and before it hands the app an event: inlined there, as there is mostly none.
    #[inline]
    pub(crate) fn flush_sends(&mut self, poller: &Poller, reports: &mut Vec<Report>) {
        if !self.sends.is_empty() {
            self.send_all(poller, reports);
        }
    }

    fn send_all(&mut self, poller: &Poller, reports: &mut Vec<Report>) {
        let mut sends = std::mem::take(&mut self.sends);
        for key in sends.drain(..) {
            let Some(source) = self.sources.get_mut(key) else {
                continue; // released: its datagrams went with it
            };
            match &mut source.io {
                Io::Udp(udp) if udp.flushing => udp.flushing = false,
                _ => continue, // a socket that took the key of a released one
            }
            if source.ready.write {
                self.flush_datagrams(key, reports);
            }
            self.sync(poller, key, reports);
        }
        self.sends = sends; // keep the allocation
    }

    /// Sends a UDP socket's queued datagrams until none is left or the OS would block.
    pub(super) fn flush_datagrams(&mut self, key: usize, reports: &mut Vec<Report>) {
        let Some(source) = self.sources.get_mut(key) else {
            return;
        };
        let (Io::Udp(udp), Owner::Udp(id)) = (&mut source.io, source.owner) else {
            return;
        };
        if !udp.send_queued(id, reports) {
            source.ready.write = false;
        }
    }

    /// Reads what is queued, at most `datagrams_per_turn` datagrams (fairness between
    /// sockets; a message GRO coalesced is taken whole, so the last one may bring more),
    /// [`DATAGRAM_BATCH`] messages per call. Readiness is cleared when the queue was found
    /// empty; a source stopped by the limit stays ready (and due).
    pub(super) fn read_datagrams(&mut self, key: usize, reports: &mut Vec<Report>) {
        let Some(source) = self.sources.get_mut(key) else {
            return;
        };
        let (Io::Udp(udp), Owner::Udp(id)) = (&source.io, source.owner) else {
            return;
        };
        let mut left = self.limits.datagrams_per_turn.max(1);
        while left > 0 {
            let asked = left.min(DATAGRAM_BATCH);
            let read = recv_datagrams(udp, &mut self.datagram, asked, |data, segment, remote| {
                reports.push(
                    match segment {
                        None => Input::Datagram { id, data, remote },
                        Some(segment_size) => Input::Datagrams {
                            id,
                            data,
                            segment_size,
                            remote,
                        },
                    }
                    .into(),
                );
            });
            match read {
                Ok(Read {
                    messages,
                    datagrams,
                }) if messages == asked => left = left.saturating_sub(datagrams.max(messages)),
                // Fewer than asked: the queue is empty for now; a datagram arriving
                // since raises a new event. (A pending error could also cut a batch
                // short, but an unconnected UDP socket, as ours are, is never given
                // one: Linux reports ICMP errors only to connected sockets or with
                // `IP_RECVERR`.)
                Ok(_) => {
                    source.ready.read = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    source.ready.read = false;
                    return;
                }
                // A UDP read error (an ICMP report of an earlier send) is consumed by
                // the failing call and concerns no datagram: there is nothing to
                // report, and the next read goes on (counted against the limit, so
                // that no error can keep the loop here).
                Err(_) => left -= 1,
            }
        }
    }

    /// A UDP socket with its options, bound. The socket's own multicast interface wins over
    /// the driver's.
    fn start_udp(
        &self,
        local: SocketAddr,
        reuse: bool,
        loopback: bool,
        settings: &SocketSettings,
    ) -> io::Result<Socket> {
        let socket = new_socket(Domain::for_address(local), Type::DGRAM, Protocol::UDP)?;
        socket.set_reuse_address(reuse)?;
        apply_settings(&socket, local, settings)?;
        match local {
            SocketAddr::V4(_) => {
                socket.set_multicast_loop_v4(loopback)?;
                let own = match settings.multicast_interface {
                    Some(MulticastInterface::V4(iface)) => Some(iface),
                    _ => None,
                };
                if let Some(iface) = own.or_else(|| self.interface_v4(Some(local))) {
                    socket.set_multicast_if_v4(&iface)?;
                }
            }
            SocketAddr::V6(_) => {
                socket.set_multicast_loop_v6(loopback)?;
                let index = match settings.multicast_interface {
                    Some(MulticastInterface::V6(index)) => index,
                    _ => self.limits.multicast_interface_v6,
                };
                if index != 0 {
                    socket.set_multicast_if_v6(index)?;
                }
            }
        }
        socket.bind(&SockAddr::from(local))?;
        Ok(socket)
    }
}
