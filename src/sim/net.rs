//! The simulated TCP network in virtual time: what is scheduled ([`Ev`]) and how each
//! happening runs, connects and their SYNs, segments put on the wire, held and sent again,
//! and their arrival in sequence. The connection types are in conn.rs, the data path of an
//! open connection in stream.rs, how connections end in teardown.rs.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::conn::{Conn, CoreEnd, End, EndKind, EndState, Pipe, Segment};
use super::peer::PeerEnd;
use super::{ConnId, HostId, Sim};
use crate::{DnsName, Input, ResolveError, SocketId, TcpId};

/// What a host's socket has in the network.
#[derive(Debug, Default)]
pub(crate) struct SockIo {
    pub(crate) resolving: bool,
    /// Connect attempts in flight, each with its connection.
    pub(crate) attempts: BTreeMap<u8, ConnId>,
    /// The established connection and which end of it this socket is.
    pub(crate) conn: Option<(ConnId, usize)>,
    /// TCP keep-alive, if its `Connect` asked for it (armed once established).
    pub(crate) keep_alive: Option<super::keepalive::KeepAlive>,
}

/// Something scheduled to happen at an instant.
#[derive(Debug)]
pub(crate) enum Ev {
    /// The name table answers.
    Resolve {
        host: HostId,
        id: SocketId,
        name: Arc<DnsName>,
    },
    /// A connection request reaches the accepting side.
    Syn { conn: ConnId },
    /// A connect attempt fails (refused, or could not even start).
    ConnectFailed { conn: ConnId, error: io::ErrorKind },
    /// A suspended server accepts again: it takes its accept queue.
    Accept {
        host: HostId,
        server: crate::ServerId,
    },
    /// A segment sent by `ends[dir]` arrives at the other end: the `seq`th of its pipe.
    Arrive {
        conn: ConnId,
        dir: usize,
        seq: u64,
        seg: Segment,
        /// When its first byte goes on the wire (bandwidth): until then it is still in the
        /// sending kernel, and a reset from that end discards it.
        tx_start: Instant,
    },
    /// A core end reads what has arrived.
    Deliver { conn: ConnId, side: usize },
    /// A core end's write was taken by the OS.
    Written {
        conn: ConnId,
        side: usize,
        len: usize,
    },
    /// An answer of the simulated OS (bind, listen, a datagram sent), if the socket lives.
    Input { host: HostId, input: Input },
    /// A datagram reaches a UDP socket.
    Datagram {
        host: HostId,
        id: crate::UdpId,
        /// One datagram, or (`segment` > 0) a run of them back to back, as GRO hands them.
        data: Bytes,
        /// 0, or the size of each datagram of the run but the last (`SimConfig::udp_batches`).
        segment: usize,
        from: SocketAddr,
        /// Where it was sent (the socket's address, or a multicast group).
        to: SocketAddr,
    },
    /// The end of a step's sends of a UDP socket (`SimConfig::udp_batches`).
    UdpFlush { host: HostId, id: crate::UdpId },
    /// A suspended UDP socket reads again: the oldest datagram its receive buffer holds is
    /// handed over (then the next, one per step, as they arrived).
    UdpDeliver { host: HostId, id: crate::UdpId },
    /// A fault reaches one end.
    Kill {
        conn: ConnId,
        side: usize,
        error: io::ErrorKind,
    },
    /// A fault injected into `conn` must have ended these ends by now (else a violation).
    FaultCheck { conn: ConnId, sides: [bool; 2] },
    /// `ends[side]` gives up on what the other end never acknowledged (retransmit.rs).
    Rto { conn: ConnId, side: usize },
    /// A connect's SYN retransmission timer (retransmit.rs).
    SynTimer { conn: ConnId },
    /// Keep-alive: `ends[side]`'s timer, or a probe (`answer`: its answer) arriving.
    KeepAlive(super::keepalive::KaEv),
}

impl Sim {
    pub(super) fn conn(&mut self, conn: ConnId) -> &mut Conn {
        &mut self.conns[conn.0 as usize]
    }

    /// `Action::Connect`: a new connection whose SYN is on its way, or a local failure.
    pub(super) fn connect(
        &mut self,
        host: HostId,
        id: TcpId,
        attempt: u8,
        remote: SocketAddr,
        local: Option<SocketAddr>,
    ) {
        let ips = &self.hosts[host.0 as usize].ips;
        let wanted = local.map(|l| l.ip()).filter(|ip| !ip.is_unspecified());
        let family = |ip: &IpAddr| ip.is_ipv4() == remote.is_ipv4();
        let (ip, mut error) = match wanted {
            Some(ip) if ips.contains(&ip) && family(&ip) => (ip, None),
            Some(ip) => (ip, Some(io::ErrorKind::AddrNotAvailable)),
            None => match ips.iter().find(|ip| family(ip)) {
                Some(ip) => (*ip, None),
                None => (remote.ip(), Some(io::ErrorKind::NetworkUnreachable)),
            },
        };
        let mut port = 0;
        if error.is_none() {
            match self.connect_port(host, ip, local.map_or(0, |l| l.port())) {
                Ok(p) => port = p,
                Err(e) => error = Some(e),
            }
        }
        let from = SocketAddr::new(ip, port);
        let kind = EndKind::Core(CoreEnd::new(id, attempt));
        let conn = self.new_conn(from, Some(host), kind, remote);
        self.sock(host, id).attempts.insert(attempt, conn);
        if let Some(error) = error {
            self.note(
                Some(host),
                format!("{conn}: connect to {remote} fails: {error}"),
            );
            self.schedule(self.now, Ev::ConnectFailed { conn, error });
            return;
        }
        self.syn_start(conn, super::retransmit::syn_give_up());
        self.send_syn(conn);
    }

    /// A new connection from `from` (of `host`, if a host has it) to `remote`, both ends
    /// connecting, on the link between their hosts (the default link without both).
    pub(super) fn new_conn(
        &mut self,
        from: SocketAddr,
        host: Option<HostId>,
        kind: EndKind,
        remote: SocketAddr,
    ) -> ConnId {
        let dest = self.host_of(remote.ip());
        let link = match (host, dest) {
            (Some(h), Some(d)) => self.link(h, d),
            _ => self.cfg.link.clone(),
        };
        let end = |addr, host, kind| End {
            addr,
            host,
            state: EndState::Connecting,
            fin_sent: false,
            rst_sent: false,
            crashed: false,
            kind,
        };
        let conn = ConnId(self.conns.len() as u32);
        let now = self.now;
        self.conns.push(Conn {
            ends: [end(from, host, kind), end(remote, dest, EndKind::Nobody)],
            pipes: [Pipe::new(now), Pipe::new(now)],
            link,
            silenced: false,
            killed: false,
            faulted: false,
            stalled: Vec::new(),
            syn: None,
        });
        conn
    }

    /// The SYN of `conn` goes on its way (and is lost if no host has the address).
    pub(super) fn send_syn(&mut self, conn: ConnId) {
        let c = &self.conns[conn.0 as usize];
        let (from, remote) = (c.ends[0].addr, c.ends[1].addr);
        self.note(c.ends[0].host, format!("{conn}: SYN {from} -> {remote}"));
        if self.conns[conn.0 as usize].ends[1].host.is_none() {
            self.note(None, format!("{conn}: no route to {remote}: SYN lost"));
            return;
        }
        let at = self.now + self.delay(conn);
        self.schedule(at, Ev::Syn { conn });
    }

    /// One segment's trip, drawn as the link's [`Delay`](super::Delay) says.
    pub(super) fn delay(&mut self, conn: ConnId) -> Duration {
        self.conns[conn.0 as usize].link.draw(&mut self.rng)
    }

    /// After `Sim::heal`, `Sim::repair` or `Sim::release`: what was held and may now pass is
    /// sent again, in order (TCP retransmission).
    pub(super) fn retransmit(&mut self) {
        for i in 0..self.conns.len() {
            let conn = ConnId(i as u32);
            if self.conns[i].stalled.is_empty() {
                continue;
            }
            let (stalled, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.conns[i].stalled)
                .into_iter()
                .partition(|(dir, _, _)| !self.is_held(conn, *dir));
            self.conns[i].stalled = kept;
            if stalled.is_empty() {
                continue;
            }
            let at = self.now + self.delay(conn);
            self.note(
                None,
                format!("{conn}: {} segments sent again", stalled.len()),
            );
            for (dir, seq, seg) in stalled {
                match seg {
                    Segment::Syn => self.schedule(at, Ev::Syn { conn }),
                    seg => {
                        // On the wire already: a reset from its end does not take it back.
                        let tx_start = self.start;
                        let ev = Ev::Arrive {
                            conn,
                            dir,
                            seq,
                            seg,
                            tx_start,
                        };
                        self.schedule(at, ev);
                    }
                }
            }
        }
    }

    /// Puts a segment from `ends[side]` on the wire, in order behind the ones before it.
    pub(super) fn send(&mut self, conn: ConnId, side: usize, seg: Segment) {
        self.send_segment(conn, side, seg);
    }

    pub(super) fn send_segment(&mut self, conn: ConnId, side: usize, seg: Segment) {
        if self.conns[conn.0 as usize].killed {
            return;
        }
        let seg = match seg {
            Segment::Data(data) if self.rng.chance(self.conns[conn.0 as usize].link.flip_rate) => {
                let mut flipped = BytesMut::from(&data[..]);
                let at = self.rng.below(data.len() as u64 * 8);
                flipped[(at / 8) as usize] ^= 1 << (at % 8);
                self.conn(conn).faulted = true;
                self.note(None, format!("{conn}: bit {at} flipped"));
                Segment::Data(flipped.freeze())
            }
            seg => seg,
        };
        let len = match &seg {
            Segment::Data(d) => d.len(),
            _ => 0,
        };
        let delay = self.delay(conn);
        let now = self.now;
        let c = self.conn(conn);
        let tx = c
            .link
            .bandwidth
            .filter(|bw| *bw > 0)
            .map(|bw| Duration::from_nanos((len as u128 * 1_000_000_000 / u128::from(bw)) as u64))
            .unwrap_or_default();
        let pipe = &mut c.pipes[side];
        let start = now.max(pipe.link_free_at);
        pipe.link_free_at = start + tx;
        let arrive = (start + tx + delay).max(pipe.last_arrival);
        pipe.last_arrival = arrive;
        pipe.in_flight += len;
        let seq = pipe.next_seq;
        pipe.next_seq += 1;
        let sent = matches!(seg, Segment::Data(_) | Segment::Fin);
        self.schedule(
            arrive,
            Ev::Arrive {
                conn,
                dir: side,
                seq,
                seg,
                tx_start: start,
            },
        );
        if sent {
            self.rto_sent(conn, side);
        }
    }

    /// Runs one scheduled happening.
    pub(super) fn process(&mut self, ev: Ev) {
        match ev {
            Ev::Resolve { host, id, name } => {
                let h = &mut self.hosts[host.0 as usize];
                let asked = match id {
                    SocketId::TcpId(tcp) => h
                        .socks
                        .get_mut(&tcp)
                        .is_some_and(|sock| std::mem::take(&mut sock.resolving)),
                    SocketId::UdpId(udp) => h.udp_resolving.remove(&udp),
                    SocketId::ServerId(_) => false,
                };
                if !asked {
                    return;
                }
                let key = name.as_str().to_ascii_lowercase();
                let result = self
                    .dns
                    .get(&key)
                    .cloned()
                    .unwrap_or(Err(ResolveError::NotFound));
                self.feed(host, Input::Resolved { id, result });
            }
            Ev::Syn { conn } => self.syn(conn),
            Ev::Accept { host, server } => self.server_accept_queue(host, server),
            Ev::ConnectFailed { conn, error } => {
                self.syn_stop(conn);
                let c = self.conn(conn);
                match c.ends[0].state {
                    EndState::Connecting => {}
                    // `Sim::fail` while the SYN-ACK was due at the same instant: the connect
                    // completed first, and the failure ends the connection now.
                    EndState::Open if c.faulted => return self.reset_end(conn, 0, error),
                    _ => return,
                }
                c.ends[0].state = EndState::Closed;
                if let EndKind::Peer(_) = c.ends[0].kind {
                    return self.peer_connect_failed(conn, error);
                }
                let Some((host, id, attempt)) = self.attempt_of(conn) else {
                    return;
                };
                self.sock(host, id).attempts.remove(&attempt);
                self.feed(host, Input::ConnectFailed { id, attempt, error });
            }
            Ev::Arrive {
                conn,
                dir,
                seq,
                seg,
                ..
            } => self.arrive(conn, dir, seq, seg),
            Ev::Deliver { conn, side } => self.deliver(conn, side),
            Ev::Written { conn, side, len } => {
                let c = self.conn(conn);
                let open = c.ends[side].state == EndState::Open;
                let host = c.ends[side].host;
                let Some(ce) = c.core_end(side) else { return };
                if !open || ce.taken != Some(len) {
                    return;
                }
                ce.taken = None;
                let id = ce.id;
                if let Some(host) = host {
                    self.feed(host, Input::Written { id, len });
                }
            }
            Ev::Input { host, input } => {
                let h = &mut self.hosts[host.0 as usize];
                let live = match &input {
                    Input::Bound { id, .. } | Input::BindFailed { id, .. } => {
                        h.opening.remove(&(*id).into())
                    }
                    Input::Listening { id, .. } | Input::ListenFailed { id, .. } => {
                        h.opening.remove(&(*id).into())
                    }
                    Input::Sent { id, .. } => h.udps.contains_key(id),
                    Input::Unacked { id, .. } => h.socks.contains_key(id),
                    _ => true,
                };
                if let Input::Sent { id, count } = &input {
                    self.udp_sent(host, *id, *count);
                }
                let sent = match &input {
                    Input::Sent { id, .. } => Some(*id),
                    _ => None,
                };
                if live {
                    self.feed(host, input);
                }
                if let Some(id) = sent {
                    self.udp_send_next(host, id);
                }
            }
            Ev::Datagram {
                host,
                id,
                data,
                segment,
                from,
                to,
            } => {
                let sender = self.host_of(from.ip());
                match sender {
                    Some(s) if self.partitioned.contains(&(s, host)) => {
                        for _ in super::dgram::segments(data, segment) {
                            self.note(None, format!("datagram to {id} lost in a partition"));
                        }
                    }
                    Some(s) if self.holds.contains(&(s, host)) => {
                        for data in super::dgram::segments(data, segment) {
                            self.note(
                                None,
                                format!("datagram to {id} held by the hold {s} -> {host}"),
                            );
                            let held = super::paths::HeldDatagram {
                                from_host: s,
                                host,
                                id,
                                data,
                                from,
                                to,
                            };
                            self.held_datagrams.push(held);
                        }
                    }
                    _ => self.udp_arrive(host, id, data, segment, from),
                }
            }
            Ev::UdpDeliver { host, id } => self.udp_deliver(host, id),
            Ev::UdpFlush { host, id } => self.udp_flush(host, id),
            Ev::Kill { conn, side, error } => {
                if self.conns[conn.0 as usize].ends[side].state == EndState::Open {
                    self.reset_end(conn, side, error);
                }
            }
            Ev::FaultCheck { conn, sides } => self.fault_check(conn, sides),
            Ev::Rto { conn, side } => self.rto_give_up(conn, side),
            Ev::SynTimer { conn } => self.syn_timer(conn),
            Ev::KeepAlive(ev) => self.keep_alive_event(ev),
        }
    }

    /// The host, socket and attempt of a connection's connecting core end.
    fn attempt_of(&mut self, conn: ConnId) -> Option<(HostId, TcpId, u8)> {
        let c = self.conn(conn);
        let host = c.ends[0].host?;
        let ce = c.core_end(0)?;
        let (id, attempt) = (ce.id, ce.attempt);
        let live = self.hosts[host.0 as usize]
            .socks
            .get(&id)
            .is_some_and(|s| s.attempts.get(&attempt) == Some(&conn));
        live.then_some((host, id, attempt))
    }

    fn syn(&mut self, conn: ConnId) {
        let (state, remote) = {
            let c = self.conn(conn);
            (c.ends[0].state, c.ends[1].addr)
        };
        let c = &self.conns[conn.0 as usize];
        if state != EndState::Connecting || c.silenced || c.killed {
            self.note(None, format!("{conn}: SYN to {remote} dropped"));
            return;
        }
        if let Some(why) = self.held_by(conn, 0) {
            self.note(None, format!("{conn}: SYN to {remote} held by {why}"));
            self.conn(conn).stalled.push((0, 0, Segment::Syn));
            return;
        }
        // A scripted peer connects to cores' servers only: scripted listeners refuse it.
        let scripted_client = matches!(c.ends[0].kind, EndKind::Peer(_));
        let script = self
            .listeners
            .get(&remote)
            .filter(|_| !scripted_client)
            .cloned();
        if script.is_none() && !self.refused.contains(&remote) {
            if let Some((host, server)) = self.core_listener(remote) {
                return self.server_syn(conn, host, server);
            }
        }
        match script {
            Some(script) if !self.refused.contains(&remote) => {
                self.note(None, format!("{conn}: accepted at {remote}"));
                let c = self.conn(conn);
                c.ends[1].kind = EndKind::Peer(Box::new(PeerEnd::new(script)));
                c.ends[1].state = EndState::Open;
                self.send_segment(conn, 1, Segment::SynAck);
                self.peer_pump(conn);
            }
            _ => {
                self.note(None, format!("{conn}: {remote} refuses"));
                let at = self.now + self.delay(conn);
                let error = io::ErrorKind::ConnectionRefused;
                self.schedule(at, Ev::ConnectFailed { conn, error });
            }
        }
    }

    fn arrive(&mut self, conn: ConnId, dir: usize, seq: u64, seg: Segment) {
        if self.conns[conn.0 as usize].killed {
            return;
        }
        if self.conns[conn.0 as usize].silenced {
            self.note(None, format!("{conn}: segment lost: {}", describe(&seg)));
            return;
        }
        if let Some(why) = self.held_by(conn, dir) {
            self.note(None, format!("{conn}: held by {why}: {}", describe(&seg)));
            self.conn(conn).stalled.push((dir, seq, seg));
            return;
        }
        let pipe = &mut self.conn(conn).pipes[dir];
        if seq != pipe.expect {
            // A gap before it (a segment held by a black hole and not yet sent again): the
            // receiver keeps it until the gap is filled.
            pipe.early.insert(seq, seg);
            return;
        }
        pipe.expect += 1;
        self.take_segment(conn, dir, seg);
        loop {
            let pipe = &mut self.conn(conn).pipes[dir];
            let expect = pipe.expect;
            let Some(seg) = pipe.early.remove(&expect) else {
                break;
            };
            pipe.expect += 1;
            self.take_segment(conn, dir, seg);
        }
    }

    /// The segment of `ends[dir]` next in sequence reaches the other end.
    fn take_segment(&mut self, conn: ConnId, dir: usize, seg: Segment) {
        let r = 1 - dir;
        self.keep_alive_heard(conn, r);
        let c = self.conn(conn);
        match (c.ends[r].state, seg) {
            (EndState::Closed, Segment::Data(_) | Segment::SynAck | Segment::Fin)
                if c.ends[r].crashed =>
            {
                // The host came back without this connection: its OS answers with a reset.
                if c.ends[dir].is_live() && !c.ends[r].rst_sent {
                    c.ends[r].rst_sent = true;
                    self.note(None, format!("{conn}: restarted host answers with RST"));
                    self.send_segment(conn, r, Segment::Rst);
                }
            }
            (EndState::Closed, Segment::Data(_) | Segment::SynAck) => {
                // Nobody owns this end any more: the OS answers with a reset, once.
                if c.ends[dir].is_live() && !c.ends[r].rst_sent {
                    c.ends[r].rst_sent = true;
                    self.note(None, format!("{conn}: closed end answers with RST"));
                    self.send_segment(conn, r, Segment::Rst);
                }
            }
            (EndState::Closed, Segment::Fin) if !c.ends[r].rst_sent => {
                // Its socket is closed but its kernel still has the connection (Linux's
                // FIN_WAIT2 or TIME_WAIT): it acknowledges the FIN.
                c.pipes[dir].fin = true;
                self.rto_acked(conn, dir);
            }
            (EndState::Connecting, Segment::SynAck) => self.established(conn),
            (EndState::Closed | EndState::Connecting, _)
            | (EndState::Open, Segment::SynAck | Segment::Syn) => {}
            (EndState::Open, Segment::Data(d)) => {
                // Taken into the receiving kernel: acknowledged (what reaches no one never is).
                let pipe = &mut c.pipes[dir];
                pipe.in_flight -= d.len();
                pipe.unread_len += d.len();
                pipe.unread.push_back(d);
                self.rto_acked(conn, dir);
                // Its ACK: the sender hears from this end (acknowledged on arrival).
                if !self.is_held(conn, r) {
                    self.keep_alive_heard(conn, dir);
                }
                self.kick(conn, r);
                // Acknowledged: the sender's send buffer has room again.
                self.pump(conn, dir);
            }
            (EndState::Open, Segment::Fin) => {
                c.pipes[dir].fin = true;
                self.rto_acked(conn, dir);
                self.kick(conn, r);
            }
            (EndState::Open, Segment::Rst) => {
                self.reset_end(conn, r, io::ErrorKind::ConnectionReset)
            }
        }
    }

    fn established(&mut self, conn: ConnId) {
        self.syn_stop(conn);
        if let EndKind::Peer(_) = self.conn(conn).ends[0].kind {
            return self.peer_established(conn);
        }
        let Some((host, id, attempt)) = self.attempt_of(conn) else {
            return;
        };
        let sock = self.sock(host, id);
        sock.attempts.remove(&attempt);
        sock.conn = Some((conn, 0));
        self.established.insert((host, id), conn);
        let c = self.conn(conn);
        c.ends[0].state = EndState::Open;
        let local = c.ends[0].addr;
        self.keep_alive_arm(conn, 0);
        self.feed(host, Input::Connected { id, attempt, local });
    }
}

fn describe(seg: &Segment) -> String {
    match seg {
        Segment::Syn => "SYN".into(),
        Segment::SynAck => "SYN-ACK".into(),
        Segment::Data(d) => format!("{} bytes", d.len()),
        Segment::Fin => "FIN".into(),
        Segment::Rst => "RST".into(),
    }
}
