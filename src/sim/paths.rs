//! Faults on the paths between hosts, turmoil's controls: partitions (what is sent is cut:
//! TCP holds and sends again on repair, datagrams are lost) and holds (everything waits,
//! nothing is lost), each both ways or one way; why a segment is held, and what is held
//! between two hosts ([`Sim::held`]).

use std::net::SocketAddr;

use bytes::Bytes;

use super::conn::Segment;
use super::net::Ev;
use super::{ConnId, HostId, Sim};

/// A datagram a hold keeps.
#[derive(Debug)]
pub(crate) struct HeldDatagram {
    /// The sender's host.
    pub(crate) from_host: HostId,
    /// The receiver's host and socket.
    pub(crate) host: HostId,
    pub(crate) id: crate::UdpId,
    pub(crate) data: Bytes,
    /// The sender's address.
    pub(crate) from: SocketAddr,
    /// Where it was sent.
    pub(crate) to: SocketAddr,
}

/// Something held between two hosts, as [`Sim::held`] lists it: read-only, it leaves when
/// the path is released, repaired or healed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Held {
    /// A TCP segment of `conn` from `from` to `to`, held by a black hole, a partition, a hold
    /// or the receiving host being down; TCP sends it again, in order, once it can pass.
    #[non_exhaustive]
    Segment {
        /// Its connection.
        conn: ConnId,
        /// The sending end's address.
        from: SocketAddr,
        /// The receiving end's address.
        to: SocketAddr,
        /// Payload bytes (0 for a SYN, SYN-ACK, FIN or RST).
        bytes: usize,
        /// A connection request (SYN).
        syn: bool,
        /// The sender's FIN.
        fin: bool,
        /// A reset.
        rst: bool,
    },
    /// A datagram held by a hold (a partition loses datagrams instead).
    #[non_exhaustive]
    Datagram {
        /// The sender's address.
        from: SocketAddr,
        /// Where it was sent (the receiver's address, or a multicast group).
        to: SocketAddr,
        /// Its size in bytes (`payload.len()`).
        size: usize,
        /// Its payload.
        payload: Bytes,
    },
}

impl Sim {
    /// Cuts the network between hosts `a` and `b`, both ways, from now on, also for what is
    /// on the way (turmoil's `partition`): TCP segments are held and sent again, in order, on
    /// [`Sim::repair`] (so the cores' timers decide meanwhile); datagrams are lost.
    pub fn partition(&mut self, a: HostId, b: HostId) {
        self.partition_oneway(a, b);
        self.partition_oneway(b, a);
    }

    /// [`Sim::partition`] from `a` to `b` only: what `b` sends still reaches `a`.
    pub fn partition_oneway(&mut self, a: HostId, b: HostId) {
        self.note(None, format!("partition {a} -> {b}"));
        self.partitioned.insert((a, b));
    }

    /// Undoes [`Sim::partition`] between `a` and `b`, both ways: held TCP segments are sent
    /// again.
    pub fn repair(&mut self, a: HostId, b: HostId) {
        self.partitioned.remove(&(b, a));
        self.repair_oneway(a, b);
    }

    /// Undoes [`Sim::partition_oneway`]`(a, b)`.
    pub fn repair_oneway(&mut self, a: HostId, b: HostId) {
        self.note(None, format!("repair {a} -> {b}"));
        self.partitioned.remove(&(a, b));
        self.retransmit();
    }

    /// Holds everything between hosts `a` and `b`, both ways, from now on, also what is on
    /// the way (turmoil's `hold`): TCP segments and datagrams alike wait, nothing is lost,
    /// until [`Sim::release`].
    pub fn hold(&mut self, a: HostId, b: HostId) {
        self.note(None, format!("hold {a} <-> {b}"));
        self.holds.insert((a, b));
        self.holds.insert((b, a));
    }

    /// [`Sim::hold`] from `a` to `b` only: TCP segments and datagrams `a` sends to `b` wait,
    /// also those on the way, until [`Sim::release_oneway`]`(a, b)`; what `b` sends still
    /// reaches `a` (so `b`'s acknowledgements do, and `a` sees its data unacknowledged).
    ///
    /// ```
    /// # use sockstate::sim::Sim;
    /// let mut sim = Sim::new(1);
    /// let a = sim.add_host("a", &["127.0.0.1".parse().unwrap()]).unwrap();
    /// let b = sim.add_host("b", &["127.0.0.2".parse().unwrap()]).unwrap();
    /// sim.hold_oneway(a, b);
    /// // ... what a sends to b waits ...
    /// sim.release_oneway(a, b); // ... and goes on, in order, nothing lost
    /// ```
    pub fn hold_oneway(&mut self, a: HostId, b: HostId) {
        self.note(None, format!("hold {a} -> {b}"));
        self.holds.insert((a, b));
    }

    /// Undoes [`Sim::hold`]: what was held goes on, in order, after the link's least delay.
    pub fn release(&mut self, a: HostId, b: HostId) {
        self.note(None, format!("release {a} <-> {b}"));
        self.holds.remove(&(a, b));
        self.holds.remove(&(b, a));
        self.let_held_go();
    }

    /// Undoes [`Sim::hold_oneway`]`(a, b)` (and `a` to `b` of [`Sim::hold`]): what `a` sent
    /// to `b` and was held goes on, in order, after the link's least delay.
    pub fn release_oneway(&mut self, a: HostId, b: HostId) {
        self.note(None, format!("release {a} -> {b}"));
        self.holds.remove(&(a, b));
        self.let_held_go();
    }

    /// What was held on a path no longer held goes on: TCP segments are sent again (in
    /// order, behind nothing), datagrams travel on after the link's least delay, in the order
    /// they were held.
    fn let_held_go(&mut self) {
        self.retransmit();
        let (go, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held_datagrams)
            .into_iter()
            .partition(|d| !self.holds.contains(&(d.from_host, d.host)));
        self.held_datagrams = keep;
        for d in go {
            let at = self.now + self.link(d.from_host, d.host).least_delay();
            let ev = Ev::Datagram {
                host: d.host,
                id: d.id,
                data: d.data,
                segment: 0,
                from: d.from,
                to: d.to,
            };
            self.schedule(at, ev);
        }
    }

    /// What is held now on its way from host `from` to host `to`, oldest first per
    /// connection: TCP segments (held by a [`Sim::hold`], a [`Sim::partition`], a
    /// [`Sim::black_hole`] or `to` being down) and datagrams (held by a hold). Call it with the
    /// hosts the other way round for the other direction. It changes nothing.
    ///
    /// ```
    /// use sockstate::sim::{Call, Held, Peer, Returned, Sim};
    /// use sockstate::TcpOptions;
    ///
    /// let mut sim = Sim::new(1);
    /// let a = sim.add_host("a", &["127.0.0.1".parse().unwrap()]).unwrap();
    /// let b = sim.add_host("b", &["127.0.0.2".parse().unwrap()]).unwrap();
    /// sim.listen("127.0.0.2:7".parse().unwrap(), Peer::sink()).unwrap();
    /// let open = Call::TcpOpen { host: "b".into(), port: 7, options: TcpOptions::default() };
    /// let Ok(Returned::Opened(id)) = sim.call(a, open) else { panic!() };
    /// let _ = sim.run_for(std::time::Duration::from_millis(100)); // open
    /// sim.hold_oneway(a, b);
    /// sim.call(a, Call::TcpSend { id, data: "hello".into() }).unwrap();
    /// let _ = sim.run_for(std::time::Duration::from_millis(100));
    /// let bytes: usize = sim
    ///     .held(a, b)
    ///     .map(|h| match h {
    ///         Held::Segment { bytes, .. } => bytes,
    ///         _ => 0,
    ///     })
    ///     .sum();
    /// assert_eq!(bytes, 5);
    /// assert_eq!(sim.held(b, a).count(), 0);
    /// sim.release_oneway(a, b);
    /// let _ = sim.run_for(std::time::Duration::from_millis(100));
    /// assert_eq!(sim.held(a, b).count(), 0);
    /// ```
    pub fn held(&self, from: HostId, to: HostId) -> impl Iterator<Item = Held> + '_ {
        let segments = self.conns.iter().enumerate().flat_map(move |(i, c)| {
            c.stalled.iter().filter_map(move |(dir, _, seg)| {
                let (sender, receiver) = (&c.ends[*dir], &c.ends[1 - *dir]);
                if sender.host != Some(from) || receiver.host != Some(to) {
                    return None;
                }
                let bytes = match seg {
                    Segment::Data(d) => d.len(),
                    _ => 0,
                };
                Some(Held::Segment {
                    conn: ConnId(i as u32),
                    from: sender.addr,
                    to: receiver.addr,
                    bytes,
                    syn: matches!(seg, Segment::Syn),
                    fin: matches!(seg, Segment::Fin),
                    rst: matches!(seg, Segment::Rst),
                })
            })
        });
        let datagrams = self
            .held_datagrams
            .iter()
            .filter(move |d| d.from_host == from && d.host == to)
            .map(|d| Held::Datagram {
                from: d.from,
                to: d.to,
                size: d.data.len(),
                payload: d.data.clone(),
            });
        segments.chain(datagrams)
    }

    /// Why what `ends[dir]` of `conn` sends is held now, for the transcript: an end is
    /// black-holed, the receiving host is down (its peers' TCP retransmits until it is back),
    /// or the path between their hosts is partitioned or held that way. (Order needs no care
    /// here: the receiver takes segments in sequence only.)
    pub(super) fn held_by(&self, conn: ConnId, dir: usize) -> Option<String> {
        let c = &self.conns[conn.0 as usize];
        if let Some(e) = c
            .ends
            .iter()
            .find(|e| self.black_holes.contains(&e.addr.ip()))
        {
            return Some(format!("a black hole ({})", e.addr.ip()));
        }
        let (from, to) = (c.ends[dir].host, c.ends[1 - dir].host);
        if let Some(to) = to.filter(|h| self.hosts[h.0 as usize].down) {
            return Some(format!("{to} being down"));
        }
        let (from, to) = (from?, to?);
        if self.partitioned.contains(&(from, to)) {
            Some(format!("the partition {from} -> {to}"))
        } else if self.holds.contains(&(from, to)) {
            Some(format!("the hold {from} -> {to}"))
        } else {
            None
        }
    }

    /// Whether what `ends[dir]` of `conn` sends is held now ([`held_by`](Self::held_by)).
    pub(super) fn is_held(&self, conn: ConnId, dir: usize) -> bool {
        self.held_by(conn, dir).is_some()
    }
}
