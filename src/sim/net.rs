//! The simulated TCP network: connections made of two ends and two pipes, and everything that
//! happens to them in virtual time.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::peer::PeerEnd;
use super::{ConnId, HostId, Link, Sim};
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

#[derive(Debug)]
pub(crate) enum Segment {
    /// Never on the wire: a connection request held by a black hole.
    Syn,
    SynAck,
    Data(Bytes),
    Fin,
    Rst,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EndState {
    Connecting,
    Open,
    Closed,
}

#[derive(Debug)]
pub(crate) struct CoreEnd {
    pub(crate) id: TcpId,
    pub(crate) attempt: u8,
    pub(crate) reading: bool,
    /// A write the OS has not taken yet (the buffers are full).
    pub(crate) write: Option<Bytes>,
    /// The OS took this much of the write; `Written` is on its way.
    pub(crate) taken: Option<usize>,
    pub(crate) eof_fed: bool,
    pub(crate) deliver_scheduled: bool,
}

impl CoreEnd {
    pub(crate) fn new(id: TcpId, attempt: u8) -> CoreEnd {
        CoreEnd {
            id,
            attempt,
            reading: false,
            write: None,
            taken: None,
            eof_fed: false,
            deliver_scheduled: false,
        }
    }
}

#[derive(Debug)]
pub(crate) enum EndKind {
    /// The accepting side before it accepted.
    Nobody,
    Core(CoreEnd),
    Peer(Box<PeerEnd>),
}

#[derive(Debug)]
pub(crate) struct End {
    pub(crate) addr: SocketAddr,
    pub(crate) host: Option<HostId>,
    pub(crate) state: EndState,
    pub(crate) fin_sent: bool,
    pub(crate) rst_sent: bool,
    /// Its host crashed: the end vanished without a word.
    pub(crate) crashed: bool,
    pub(crate) kind: EndKind,
}

impl End {
    pub(crate) fn is_live(&self) -> bool {
        self.state != EndState::Closed
    }
}

/// One direction of a connection: the sender's kernel send buffer (`unsent`, and `in_flight`
/// until it arrives), the wire, and the receiver's kernel receive buffer (`unread`).
#[derive(Debug)]
pub(crate) struct Pipe {
    /// Taken by the sender's kernel, waiting for room in the receiver's window.
    unsent: VecDeque<Bytes>,
    unsent_len: usize,
    /// The sender asked for FIN and it went on the wire (behind every unsent byte).
    pub(crate) fin_on_wire: bool,
    /// On the wire (or held by a black hole): sent and not yet acknowledged.
    pub(crate) in_flight: usize,
    unread: VecDeque<Bytes>,
    unread_len: usize,
    /// The FIN arrived.
    pub(crate) fin: bool,
    /// The sender's retransmission give-up, scheduled (its queue key) while it has something
    /// unacknowledged.
    pub(crate) rto: Option<(Instant, u64)>,
    link_free_at: Instant,
    last_arrival: Instant,
    /// The sequence number of the next segment sent.
    next_seq: u64,
    /// The sequence number the receiving end takes next: as TCP's receiver, it takes segments
    /// in order only, so one sent again after a black hole is not overtaken by later ones.
    expect: u64,
    /// Segments that arrived ahead of `expect`, held by the receiver until the gap is filled.
    early: BTreeMap<u64, Segment>,
}

impl Pipe {
    fn new(now: Instant) -> Pipe {
        Pipe {
            unsent: VecDeque::new(),
            unsent_len: 0,
            fin_on_wire: false,
            in_flight: 0,
            unread: VecDeque::new(),
            unread_len: 0,
            fin: false,
            link_free_at: now,
            last_arrival: now,
            next_seq: 0,
            expect: 0,
            early: BTreeMap::new(),
            rto: None,
        }
    }

    /// What the sender's kernel holds: its send buffer's use (unacknowledged bytes).
    fn queued(&self) -> usize {
        self.unsent_len + self.in_flight
    }

    /// Room in the receiver's window: its receive buffer less what is unread or on the way.
    fn window(&self, recv_buffer: usize) -> usize {
        recv_buffer.saturating_sub(self.in_flight + self.unread_len)
    }

    /// The sender's kernel takes `data` into its send buffer.
    fn push(&mut self, data: Bytes) {
        if !data.is_empty() {
            self.unsent_len += data.len();
            self.unsent.push_back(data);
        }
    }

    fn take(&mut self, n: usize) -> Bytes {
        let n = n.min(self.unread_len);
        self.unread_len -= n;
        if let Some(front) = self.unread.front_mut() {
            if front.len() > n {
                return front.split_to(n);
            }
            if front.len() == n {
                return self.unread.pop_front().unwrap_or_default();
            }
        }
        let mut out = BytesMut::with_capacity(n);
        while out.len() < n {
            let Some(front) = self.unread.front_mut() else {
                break;
            };
            let k = front.len().min(n - out.len());
            out.extend_from_slice(&front.split_to(k));
            if front.is_empty() {
                self.unread.pop_front();
            }
        }
        out.freeze()
    }
}

#[derive(Debug)]
pub(crate) struct Conn {
    /// `ends[0]` connected, `ends[1]` accepted.
    pub(crate) ends: [End; 2],
    /// `pipes[i]` carries what `ends[i]` sends.
    pub(crate) pipes: [Pipe; 2],
    pub(crate) link: Link,
    pub(crate) silenced: bool,
    pub(crate) killed: bool,
    pub(crate) faulted: bool,
    /// Segments held by a black hole (direction, sequence number, segment), in order: TCP
    /// retransmits them once it heals.
    pub(crate) stalled: Vec<(usize, u64, Segment)>,
    /// The connect's SYN timer, while it is under way.
    pub(crate) syn: Option<super::retransmit::SynTimer>,
}

impl Conn {
    pub(crate) fn peer_side(&self) -> Option<usize> {
        (0..2).find(|&s| matches!(self.ends[s].kind, EndKind::Peer(_)))
    }

    pub(crate) fn peer(&self) -> Option<&PeerEnd> {
        match &self.ends[self.peer_side()?].kind {
            EndKind::Peer(p) => Some(p),
            _ => None,
        }
    }

    pub(crate) fn peer_mut(&mut self) -> Option<&mut PeerEnd> {
        let side = self.peer_side()?;
        match &mut self.ends[side].kind {
            EndKind::Peer(p) => Some(p),
            _ => None,
        }
    }

    /// Bytes that reached the scripted peer's kernel and it has not read.
    pub(crate) fn peer_unread(&self) -> Option<usize> {
        let p = self.peer_side()?;
        Some(self.pipes[1 - p].unread_len)
    }

    /// Whether the scripted peer has sent FIN or reset (or wants to, once its queue is out).
    pub(crate) fn peer_done_sending(&self) -> bool {
        match self.peer_side() {
            Some(p) => {
                let end = &self.ends[p];
                end.fin_sent || end.rst_sent || self.peer().is_some_and(|pe| pe.reset_wanted)
            }
            None => true,
        }
    }

    pub(crate) fn core_socket(&self, side: usize) -> Option<(HostId, TcpId)> {
        match &self.ends[side].kind {
            EndKind::Core(c) => Some((self.ends[side].host?, c.id)),
            _ => None,
        }
    }

    fn core_end(&mut self, side: usize) -> Option<&mut CoreEnd> {
        match &mut self.ends[side].kind {
            EndKind::Core(c) => Some(c),
            _ => None,
        }
    }
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

    fn send_segment(&mut self, conn: ConnId, side: usize, seg: Segment) {
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
                if c.ends[0].state != EndState::Connecting {
                    return;
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

    /// Something arrived for `ends[side]`.
    fn kick(&mut self, conn: ConnId, side: usize) {
        let c = self.conn(conn);
        match &c.ends[side].kind {
            EndKind::Core(ce) if ce.reading => self.schedule_deliver(conn, side),
            EndKind::Peer(_) => self.peer_pump(conn),
            _ => {}
        }
    }

    /// `ends[side]` may send more: the other side read, or it has something new to say.
    fn pump(&mut self, conn: ConnId, side: usize) {
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
    fn deliver(&mut self, conn: ConnId, side: usize) {
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
    fn pump_core(&mut self, conn: ConnId, side: usize) {
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
    fn flush(&mut self, conn: ConnId, side: usize) {
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
    fn discard_unsent(&mut self, conn: ConnId, side: usize) {
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
                if end.host != Some(host) || end.crashed {
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
    fn fault_check(&mut self, conn: ConnId, sides: [bool; 2]) {
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

    /// Runs the scripted peer of `conn`: read, echo, send, FIN or reset.
    pub(super) fn peer_pump(&mut self, conn: ConnId) {
        let c = self.conn(conn);
        let Some(p) = c.peer_side() else { return };
        if c.ends[p].state != EndState::Open {
            // Reset: its app still reads what reached its kernel first, as Linux's recv
            // returns queued data before ECONNRESET.
            let incoming = &mut c.pipes[1 - p];
            if let EndKind::Peer(pe) = &mut c.ends[p].kind {
                if pe.was_reset && !pe.paused {
                    incoming.unread_len = 0;
                    for chunk in incoming.unread.drain(..) {
                        pe.received.extend_from_slice(&chunk);
                    }
                }
            }
            return;
        }
        let send_buffer = c.link.send_buffer;
        let [e0, e1] = &mut c.ends;
        let end = if p == 0 { e0 } else { e1 };
        let EndKind::Peer(pe) = &mut end.kind else {
            return;
        };
        let incoming = &mut c.pipes[1 - p];
        let may_read = !pe.paused && (!pe.script.echo || pe.to_send_len < send_buffer);
        let freed = may_read && incoming.unread_len > 0;
        if freed {
            incoming.unread_len = 0;
            for chunk in incoming.unread.drain(..) {
                pe.received.extend_from_slice(&chunk);
                if pe.script.echo {
                    pe.queue(chunk);
                }
            }
        }
        if incoming.fin && incoming.unread_len == 0 && !pe.eof {
            pe.eof = true;
            pe.fin_wanted |= pe.script.close_on_eof;
        }
        // Send what fits (nothing after FIN: an echo of a peer that closed early is dropped).
        if end.fin_sent {
            pe.to_send.clear();
            pe.to_send_len = 0;
        }
        let mut out = Vec::new();
        let mut space = send_buffer.saturating_sub(c.pipes[p].queued());
        while space > 0 {
            let Some(front) = pe.to_send.front_mut() else {
                break;
            };
            let chunk = front.split_to(front.len().min(space));
            if front.is_empty() {
                pe.to_send.pop_front();
            }
            pe.to_send_len -= chunk.len();
            space -= chunk.len();
            pe.sent.extend_from_slice(&chunk);
            out.push(chunk);
        }
        let drained = pe.to_send.is_empty();
        let (reset, fin) = (drained && pe.reset_wanted, drained && pe.fin_wanted);
        let done_reading = pe.eof;
        for chunk in out {
            self.conn(conn).pipes[p].push(chunk);
        }
        self.flush(conn, p);
        let c = self.conn(conn);
        if reset {
            self.rto_stop(conn, p);
            let c = self.conn(conn);
            c.ends[p].state = EndState::Closed;
            c.ends[p].rst_sent = true;
            c.faulted = true;
            self.note(None, format!("{conn}: peer resets"));
            self.discard_unsent(conn, p);
            self.send_segment(conn, p, Segment::Rst);
            return;
        }
        if fin && !std::mem::replace(&mut c.ends[p].fin_sent, true) {
            self.flush(conn, p);
        }
        let c = self.conn(conn);
        if c.ends[p].fin_sent && done_reading {
            c.ends[p].state = EndState::Closed;
            self.rto_stop(conn, p);
        }
        if freed {
            self.pump(conn, 1 - p);
        }
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
