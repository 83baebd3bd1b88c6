//! A TCP connection of the simulated network: its two ends (a core's socket, a scripted
//! peer, or the accepting kernel before an accept) and its two pipes (send buffer, wire,
//! receive buffer), and what [`Sim`] tells of connections.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::peer::PeerEnd;
use super::{ConnId, HostId, Link, Sim, SimError};
use crate::TcpId;

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
    pub(crate) unsent: VecDeque<Bytes>,
    pub(crate) unsent_len: usize,
    /// The sender asked for FIN and it went on the wire (behind every unsent byte).
    pub(crate) fin_on_wire: bool,
    /// On the wire (or held by a black hole): sent and not yet acknowledged.
    pub(crate) in_flight: usize,
    pub(crate) unread: VecDeque<Bytes>,
    pub(crate) unread_len: usize,
    /// The FIN arrived.
    pub(crate) fin: bool,
    /// The sender's retransmission give-up, scheduled (its queue key) while it has something
    /// unacknowledged.
    pub(crate) rto: Option<(Instant, u64)>,
    pub(crate) link_free_at: Instant,
    pub(crate) last_arrival: Instant,
    /// The sequence number of the next segment sent.
    pub(crate) next_seq: u64,
    /// The sequence number the receiving end takes next: as TCP's receiver, it takes segments
    /// in order only, so one sent again after a black hole is not overtaken by later ones.
    pub(crate) expect: u64,
    /// Segments that arrived ahead of `expect`, held by the receiver until the gap is filled.
    pub(crate) early: BTreeMap<u64, Segment>,
}

impl Pipe {
    pub(crate) fn new(now: Instant) -> Pipe {
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
    pub(crate) fn queued(&self) -> usize {
        self.unsent_len + self.in_flight
    }

    /// Room in the receiver's window: its receive buffer less what is unread or on the way.
    pub(crate) fn window(&self, recv_buffer: usize) -> usize {
        recv_buffer.saturating_sub(self.in_flight + self.unread_len)
    }

    /// The sender's kernel takes `data` into its send buffer.
    pub(crate) fn push(&mut self, data: Bytes) {
        if !data.is_empty() {
            self.unsent_len += data.len();
            self.unsent.push_back(data);
        }
    }

    pub(crate) fn take(&mut self, n: usize) -> Bytes {
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

    pub(crate) fn core_end(&mut self, side: usize) -> Option<&mut CoreEnd> {
        match &mut self.ends[side].kind {
            EndKind::Core(c) => Some(c),
            _ => None,
        }
    }
}

impl Sim {
    /// Every connection so far, oldest first.
    pub fn conns(&self) -> impl Iterator<Item = ConnId> + '_ {
        (0..self.conns.len() as u32).map(ConnId)
    }

    /// The connection of a host's socket: the one it got established on (also after its
    /// release), else its latest connect attempt while it is connecting.
    pub fn conn_of(&self, host: HostId, id: TcpId) -> Option<ConnId> {
        if let Some(conn) = self.established.get(&(host, id)) {
            return Some(*conn);
        }
        let sock = self.hosts.get(host.0 as usize)?.socks.get(&id)?;
        sock.attempts.values().max().copied()
    }

    /// The connection's two addresses: the connecting side's, then the accepting side's.
    pub fn conn_addrs(&self, conn: ConnId) -> Option<(SocketAddr, SocketAddr)> {
        let c = self.conns.get(conn.0 as usize)?;
        Some((c.ends[0].addr, c.ends[1].addr))
    }

    /// The cores' sockets at the connection's two ends (connecting side first), where a core
    /// (not a scripted peer) holds that end.
    pub fn conn_sockets(&self, conn: ConnId) -> Option<[Option<(HostId, TcpId)>; 2]> {
        let c = self.conns.get(conn.0 as usize)?;
        Some([c.core_socket(0), c.core_socket(1)])
    }

    /// Whether a fault touched the connection (reset, silence, failure, black hole, flipped
    /// bit, or a scripted reset): then its bytes may legitimately differ or stop.
    pub fn faulted(&self, conn: ConnId) -> bool {
        self.conns.get(conn.0 as usize).is_some_and(|c| c.faulted)
    }

    pub(super) fn conn_mut(&mut self, conn: ConnId) -> Result<&mut Conn, SimError> {
        self.conns
            .get_mut(conn.0 as usize)
            .ok_or(SimError::UnknownConn(conn))
    }
}
