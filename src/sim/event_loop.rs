//! The simulated network's loop: the earliest happening or due timer runs next, every
//! output of a host's core is taken, and each action is carried out as an OS would.

use std::time::Instant;

use super::conn::EndKind;
use super::net::{Ev, SockIo};
use super::{keepalive, Happening, HostId, Record, Sim, Stop, Violation};
use crate::{Action, Event, Input, Output, SocketId, TcpId};

impl Sim {
    pub(super) fn next_event_until(&mut self, until: Option<Instant>) -> Option<(HostId, Event)> {
        loop {
            for i in 0..self.hosts.len() {
                if std::mem::take(&mut self.hosts[i].dirty) {
                    self.drain(HostId(i as u32));
                }
            }
            if let Some(e) = self.ready.pop_front() {
                return Some(e);
            }
            if !self.advance(until) {
                return None;
            }
        }
    }

    /// Runs the earliest scheduled happening or due timer. `false` when there is none (before
    /// `until`) or a limit is reached.
    pub(super) fn advance(&mut self, until: Option<Instant>) -> bool {
        if self.stop.is_some() {
            return false;
        }
        let net = self.queue.keys().next().map(|(at, _)| *at);
        let timer = self
            .hosts
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.deadline.map(|at| (at, i)))
            .min();
        let at = match (net, timer) {
            (None, None) => return false,
            (Some(n), Some((t, _))) => n.min(t),
            (Some(n), None) => n,
            (None, Some((t, _))) => t,
        };
        if until.is_some_and(|u| at > u) {
            return false;
        }
        if at > self.start + self.cfg.time_limit {
            self.stop = Some(Stop::TimeLimit);
            return false;
        }
        self.steps += 1;
        if self.steps > self.cfg.step_limit {
            self.stop = Some(Stop::StepLimit);
            return false;
        }
        self.now = self.now.max(at);
        match (net, timer) {
            (Some(n), t) if t.is_none_or(|(t, _)| n <= t) => {
                if let Some((_, ev)) = self.queue.pop_first() {
                    self.process(ev);
                }
            }
            (_, Some((_, i))) => {
                let host = HostId(i as u32);
                self.record(Some(host), Happening::Timers);
                let now = self.now;
                self.hosts[i].core.handle_timeout(now);
                self.drain(host);
            }
            (_, None) => {}
        }
        true
    }

    /// Takes every output of a host's core: actions are carried out, events queued for the app.
    pub(super) fn drain(&mut self, host: HostId) {
        let i = host.0 as usize;
        let mut count = 0u64;
        loop {
            let out = self.hosts[i].core.poll_output();
            match out {
                Output::Timeout(at) => {
                    self.hosts[i].deadline = at;
                    return;
                }
                Output::Action(action) => {
                    self.record(Some(host), Happening::Action(action.clone()));
                    self.act(host, action);
                }
                Output::Event(event) => {
                    self.record(Some(host), Happening::Event(event.clone()));
                    self.ready.push_back((host, event));
                }
            }
            count += 1;
            if count > 10_000_000 {
                self.violation(host, None, "poll_output does not end".into());
                self.hosts[i].deadline = None;
                return;
            }
        }
    }

    /// Feeds `input` to a host's core now and carries out what follows.
    pub(super) fn feed(&mut self, host: HostId, input: Input) {
        let i = host.0 as usize;
        let result = self.hosts[i].core.handle_input(self.now, input.clone());
        if let Err(e) = &result {
            let what = format!("the core refused {input:?} from the network: {e}");
            self.violation(host, None, what);
        }
        self.record(Some(host), Happening::Input { input, result });
        self.drain(host);
    }

    pub(super) fn schedule(&mut self, at: Instant, ev: Ev) {
        self.schedule_keyed(at, ev);
    }

    /// [`schedule`](Self::schedule), returning its key in the queue (to take it out again).
    pub(super) fn schedule_keyed(&mut self, at: Instant, ev: Ev) -> (Instant, u64) {
        self.seq += 1;
        let key = (at.max(self.now), self.seq);
        self.queue.insert(key, ev);
        key
    }

    pub(super) fn record(&mut self, host: Option<HostId>, what: Happening) {
        if self.cfg.record {
            self.transcript.push(Record {
                at: self.now - self.start,
                host,
                what,
            });
        }
    }

    pub(super) fn note(&mut self, host: Option<HostId>, what: String) {
        self.record(host, Happening::Net(what));
    }

    pub(super) fn violation(
        &mut self,
        host: HostId,
        socket: Option<crate::SocketId>,
        what: String,
    ) {
        let v = Violation { socket, what };
        self.record(Some(host), Happening::Violation(v.clone()));
        self.net_violations.push((host, v));
    }

    /// Carries out one action of a host's core.
    pub(super) fn act(&mut self, host: HostId, action: Action) {
        match action {
            Action::Resolve { id, name } => {
                match id {
                    crate::SocketId::TcpId(tcp) => self.sock(host, tcp).resolving = true,
                    crate::SocketId::UdpId(udp) => {
                        self.hosts[host.0 as usize].udp_resolving.insert(udp);
                    }
                    crate::SocketId::ServerId(_) => {
                        return self.violation(host, Some(id), "a Resolve for a server".into())
                    }
                }
                let at = self.now + self.cfg.dns_delay;
                self.schedule(at, Ev::Resolve { host, id, name });
            }
            Action::Connect {
                id,
                attempt,
                remote,
                options,
            } => {
                let (local, keep_alive) = (options.local, options.keep_alive);
                let now = self.now;
                let ka = keep_alive.map(|idle| keepalive::KeepAlive::new(idle, now));
                self.sock(host, id).keep_alive = ka;
                self.connect(host, id, attempt, remote, local);
            }
            Action::AbortConnect { id, attempt } => {
                if let Some(conn) = self.sock(host, id).attempts.remove(&attempt) {
                    self.close_end(conn, 0);
                }
            }
            Action::SetReading {
                id: crate::SocketId::TcpId(id),
                enabled,
            } => match self.sock(host, id).conn {
                Some((conn, side)) => {
                    if let EndKind::Core(ce) = &mut self.conns[conn.0 as usize].ends[side].kind {
                        ce.reading = enabled;
                    }
                    if enabled {
                        self.schedule_deliver(conn, side);
                    }
                }
                None => self.violation(host, Some(id.into()), "SetReading before open".into()),
            },
            Action::Write { id, data } => match self.sock(host, id).conn {
                Some((conn, side)) => self.write(host, id, conn, side, data),
                None => self.violation(host, Some(id.into()), "a write before open".into()),
            },
            Action::Shutdown { id } => match self.sock(host, id).conn {
                Some((conn, side)) => self.shutdown(conn, side),
                None => self.violation(host, Some(id.into()), "a FIN before open".into()),
            },
            Action::QueryUnacked { id } => match self.sock(host, id).conn {
                Some((conn, side)) => {
                    let bytes = Some(self.unacked(conn, side));
                    let input = Input::Unacked { id, bytes };
                    self.schedule(self.now, Ev::Input { host, input });
                }
                None => self.violation(host, Some(id.into()), "a query before open".into()),
            },
            Action::Release {
                id: crate::SocketId::TcpId(id),
            } => {
                let sock = self.hosts[host.0 as usize]
                    .socks
                    .remove(&id)
                    .unwrap_or_default();
                for conn in sock.attempts.into_values() {
                    self.close_end(conn, 0);
                }
                if let Some((conn, side)) = sock.conn {
                    self.close_end(conn, side);
                    if sock.keep_alive.is_some() {
                        self.keep_alive_forget(host, Some((conn, side)));
                    }
                }
            }
            Action::Listen {
                id, local, backlog, ..
            } => {
                self.hosts[host.0 as usize].opening.insert(id.into());
                self.server_listen(host, id, local, backlog);
            }
            Action::SetReading {
                id: SocketId::ServerId(id),
                enabled,
            } => self.server_reading(host, id, enabled),
            Action::Release {
                id: SocketId::ServerId(id),
            } => {
                self.hosts[host.0 as usize].opening.remove(&id.into());
                self.server_release(host, id);
            }
            // The sim has no send buffer, interfaces, TTLs or broadcast addresses for UDP,
            // and its `::` takes no IPv4: the other settings change nothing it can show.
            Action::Bind {
                id,
                local,
                reuse_address,
                loopback,
                settings,
            } => {
                self.hosts[host.0 as usize].opening.insert(id.into());
                let rcvbuf = settings.receive_buffer;
                self.udp_bind(host, id, local, reuse_address, loopback, rcvbuf);
            }
            // One at a time, as the simulated OS takes them (see `UdpIo::backlog`), or
            // together.
            Action::SendDatagrams { id, datagrams } if self.cfg.udp_batches => {
                self.udp_send_batch(host, id, datagrams.into())
            }
            Action::SendDatagrams { id, datagrams } => {
                for (data, remote) in datagrams {
                    self.udp_send_to(host, id, data, remote);
                }
            }
            // A source-specific membership is modelled as the group's (the sim's hosts
            // filter no sources).
            Action::JoinMulticast { id, group, .. } => self.udp_group(host, id, group, true),
            Action::LeaveMulticast { id, group, .. } => self.udp_group(host, id, group, false),
            Action::SetReading {
                id: SocketId::UdpId(id),
                enabled,
            } => self.udp_reading(host, id, enabled),
            Action::Release {
                id: SocketId::UdpId(id),
            } => {
                self.hosts[host.0 as usize].opening.remove(&id.into());
                self.udp_release(host, id);
            }
        }
    }

    pub(super) fn sock(&mut self, host: HostId, id: TcpId) -> &mut SockIo {
        self.hosts[host.0 as usize].socks.entry(id).or_default()
    }
}
