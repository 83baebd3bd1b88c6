//! The simulated UDP network: bound sockets, datagrams with seeded loss, duplication and
//! reordering, and multicast groups.

use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;

use super::{HostId, Sim};
use crate::{Input, UdpId};

/// Datagrams an unread socket holds before it drops more (its receive buffer).
const INBOX: usize = 256;

/// A host's bound UDP socket.
#[derive(Debug)]
pub(crate) struct UdpIo {
    local: SocketAddr,
    reuse: bool,
    loopback: bool,
    reading: bool,
    groups: BTreeSet<IpAddr>,
    inbox: VecDeque<(Bytes, SocketAddr)>,
    /// `SendTo`s taken and not yet answered (at most the core's
    /// [`max_datagrams_in_flight`](crate::Config::max_datagrams_in_flight)).
    sending: usize,
    /// The OS is taking one datagram: its `Sent` is scheduled and not yet fed.
    busy: bool,
    /// `SendTo`s taken while `busy`: the simulated OS takes them one at a time, each after
    /// the last one's `Sent` was fed, as it took them when the core handed out one at a time
    /// (so a run draws from the seeded RNG in the same order whatever the core's limit).
    backlog: VecDeque<(Bytes, SocketAddr)>,
}

impl Sim {
    /// `Action::Bind`.
    pub(super) fn udp_bind(
        &mut self,
        host: HostId,
        id: UdpId,
        local: SocketAddr,
        reuse: bool,
        loopback: bool,
    ) {
        let ips = &self.hosts[host.0 as usize].ips;
        let ip_ok = local.ip().is_unspecified() || ips.contains(&local.ip());
        let taken = move |s: &Sim, port: u16| {
            s.hosts[host.0 as usize].udps.values().any(|u| {
                u.local.port() == port
                    && !(reuse && u.reuse)
                    && super::ports::overlap(u.local.ip(), local.ip())
            })
        };
        let result = if !ip_ok {
            Err(io::ErrorKind::AddrNotAvailable)
        } else if local.port() != 0 {
            match taken(self, local.port()) {
                true => Err(io::ErrorKind::AddrInUse),
                false => Ok(local),
            }
        } else {
            // Linux: no ephemeral port left is `EADDRINUSE` for a bind.
            match self.ephemeral(host, taken) {
                Some(port) => Ok(SocketAddr::new(local.ip(), port)),
                None => Err(io::ErrorKind::AddrInUse),
            }
        };
        let input = match result {
            Ok(bound) => {
                self.hosts[host.0 as usize].udps.insert(
                    id,
                    UdpIo {
                        local: bound,
                        reuse,
                        loopback,
                        reading: false,
                        groups: BTreeSet::new(),
                        inbox: VecDeque::new(),
                        sending: 0,
                        busy: false,
                        backlog: VecDeque::new(),
                    },
                );
                Input::Bound { id, local: bound }
            }
            Err(error) => Input::BindFailed { id, error },
        };
        self.schedule(self.now, super::net::Ev::Input { host, input });
    }

    /// `Action::SendTo`: the OS takes the datagram now, or after those taken before it (see
    /// [`UdpIo::backlog`]).
    pub(super) fn udp_send_to(&mut self, host: HostId, id: UdpId, data: Bytes, remote: SocketAddr) {
        let Some(u) = self.hosts[host.0 as usize].udps.get_mut(&id) else {
            let what = "a datagram sent before the socket was bound".into();
            return self.violation(host, Some(id.into()), what);
        };
        let limit = self.cfg.core.max_datagrams_in_flight.max(1);
        if u.sending >= limit {
            let what = format!("a datagram while {limit} are in flight, the limit");
            return self.violation(host, Some(id.into()), what);
        }
        u.sending += 1;
        if std::mem::replace(&mut u.busy, true) {
            u.backlog.push_back((data, remote));
            return;
        }
        self.udp_transmit(host, id, data, remote);
    }

    /// The OS takes a datagram: copies travel to every receiver, and `Sent` is scheduled now.
    fn udp_transmit(&mut self, host: HostId, id: UdpId, data: Bytes, remote: SocketAddr) {
        let Some(u) = self.hosts[host.0 as usize].udps.get(&id) else {
            return;
        };
        let (loopback, local) = (u.loopback, u.local);
        let from = match local.ip() {
            ip if ip.is_unspecified() => {
                let family = |ip: &&IpAddr| ip.is_ipv4() == remote.is_ipv4();
                let ips = &self.hosts[host.0 as usize].ips;
                let ip = ips.iter().find(family).copied().unwrap_or(ip);
                SocketAddr::new(ip, local.port())
            }
            ip => SocketAddr::new(ip, local.port()),
        };
        let mut receivers: Vec<(HostId, UdpId)> = Vec::new();
        for (i, h) in self.hosts.iter().enumerate() {
            let to_host = HostId(i as u32);
            if remote.ip().is_multicast() && to_host == host && !loopback {
                continue;
            }
            for (uid, u) in &h.udps {
                let port = u.local.port() == remote.port();
                let addressed = if remote.ip().is_multicast() {
                    u.groups.contains(&remote.ip())
                } else {
                    h.ips.contains(&remote.ip())
                        && (u.local.ip() == remote.ip()
                            || (u.local.ip().is_unspecified()
                                && u.local.is_ipv4() == remote.is_ipv4()))
                };
                if port && addressed {
                    receivers.push((to_host, *uid));
                    if !remote.ip().is_multicast() {
                        break;
                    }
                }
            }
        }
        self.note(
            Some(host),
            format!(
                "{id}: datagram of {} bytes {from} -> {remote}, {} receivers",
                data.len(),
                receivers.len()
            ),
        );
        for (to_host, to) in receivers {
            let link = self.link(host, to_host);
            if self.black_holes.contains(&from.ip()) || self.black_holes.contains(&remote.ip()) {
                continue;
            }
            if self.rng.chance(link.udp_loss) {
                self.note(None, format!("datagram to {to} lost"));
                continue;
            }
            let copies = if self.rng.chance(link.udp_duplicate) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let jitter = link.jitter.as_nanos() as u64 + link.udp_reorder.as_nanos() as u64;
                let extra = Duration::from_nanos(self.rng.below(jitter.saturating_add(1)));
                let at = self.now + link.latency + extra;
                let data = data.clone();
                self.schedule(
                    at,
                    super::net::Ev::Datagram {
                        host: to_host,
                        id: to,
                        data,
                        from,
                    },
                );
            }
        }
        self.schedule(
            self.now,
            super::net::Ev::Input {
                host,
                input: Input::Sent { id },
            },
        );
    }

    /// A datagram reaches a socket: read now, or held (up to the receive buffer).
    pub(super) fn udp_arrive(&mut self, host: HostId, id: UdpId, data: Bytes, from: SocketAddr) {
        let Some(u) = self.hosts[host.0 as usize].udps.get_mut(&id) else {
            return;
        };
        if u.reading {
            self.feed(
                host,
                Input::Datagram {
                    id,
                    data,
                    remote: from,
                },
            );
        } else if u.inbox.len() < INBOX {
            u.inbox.push_back((data, from));
        } else {
            self.note(
                Some(host),
                format!("{id}: receive buffer full, datagram dropped"),
            );
        }
    }

    /// `Action::SetReading` for a UDP socket: held datagrams are read on enable.
    pub(super) fn udp_reading(&mut self, host: HostId, id: UdpId, enabled: bool) {
        let Some(u) = self.hosts[host.0 as usize].udps.get_mut(&id) else {
            return;
        };
        u.reading = enabled;
        if enabled {
            let held: Vec<_> = u.inbox.drain(..).collect();
            for (data, from) in held {
                let ev = super::net::Ev::Datagram {
                    host,
                    id,
                    data,
                    from,
                };
                self.schedule(self.now, ev);
            }
        }
    }

    /// `Action::JoinMulticast` / `LeaveMulticast`.
    pub(super) fn udp_group(&mut self, host: HostId, id: UdpId, group: IpAddr, join: bool) {
        if let Some(u) = self.hosts[host.0 as usize].udps.get_mut(&id) {
            if join {
                u.groups.insert(group);
            } else {
                u.groups.remove(&group);
            }
        }
    }

    /// `Input::Sent` is about to be fed: the socket may send one more.
    pub(super) fn udp_sent(&mut self, host: HostId, id: UdpId) {
        if let Some(u) = self.hosts[host.0 as usize].udps.get_mut(&id) {
            u.sending = u.sending.saturating_sub(1);
            u.busy = false;
        }
    }

    /// `Input::Sent` was fed: the OS takes the next datagram taken meanwhile, if any.
    pub(super) fn udp_send_next(&mut self, host: HostId, id: UdpId) {
        let Some(u) = self.hosts[host.0 as usize].udps.get_mut(&id) else {
            return;
        };
        if u.busy {
            return;
        }
        if let Some((data, remote)) = u.backlog.pop_front() {
            u.busy = true;
            self.udp_transmit(host, id, data, remote);
        }
    }

    /// `Action::Release` of a UDP socket.
    pub(super) fn udp_release(&mut self, host: HostId, id: UdpId) {
        let h = &mut self.hosts[host.0 as usize];
        h.udps.remove(&id);
        h.udp_resolving.remove(&id);
    }
}
