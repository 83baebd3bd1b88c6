//! Faults on the paths between hosts, turmoil's controls: partitions (what is sent is cut:
//! TCP holds and sends again on repair, datagrams are lost) and holds (everything waits,
//! nothing is lost), each both ways or one way.

use super::net::Ev;
use super::{HostId, Sim};

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
            .partition(|(from, to, ..)| !self.holds.contains(&(*from, *to)));
        self.held_datagrams = keep;
        for (from, to, id, data, source) in go {
            let at = self.now + self.link(from, to).least_delay();
            let ev = Ev::Datagram {
                host: to,
                id,
                data,
                segment: 0,
                from: source,
            };
            self.schedule(at, ev);
        }
    }

    /// Whether what `from` sends to `to` is held now (partition or hold).
    pub(super) fn path_blocked(&self, from: HostId, to: HostId) -> bool {
        self.partitioned.contains(&(from, to)) || self.holds.contains(&(from, to))
    }
}
