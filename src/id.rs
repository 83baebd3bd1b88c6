//! Typed, generational socket handles and the table that issues them.
//!
//! An id is a slot index plus a serial number drawn from one counter per [`Core`](crate::Core).
//! The serial never repeats (it is 64 bits), so an id whose socket has delivered its `Close` never
//! answers again, even after its slot was reused ([BEHAVIOUR §0](crate::behaviour#0-everywhere): "a new socket never gets an equal
//! id").

use std::fmt;

use slab::Slab;

macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name {
            pub(crate) index: usize,
            pub(crate) serial: u64,
        }

        impl $name {
            /// A number unique to this socket within its [`Core`](crate::Core), for logs and maps.
            pub fn serial(self) -> u64 {
                self.serial
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "#{}"), self.serial)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }

        impl From<$name> for SocketId {
            fn from(id: $name) -> SocketId {
                SocketId::$name(id)
            }
        }
    };
}

typed_id!(
    /// Handle of a `TCPSocket` (client or accepted).
    TcpId,
    "tcp"
);
typed_id!(
    /// Handle of a `TCPServerSocket`.
    ServerId,
    "server"
);
typed_id!(
    /// Handle of a `UDPSocket`.
    UdpId,
    "udp"
);

/// Any of the three socket handles, for the events all interfaces share (`Error`, `Close`,
/// `Drain`, `Open`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
#[non_exhaustive]
pub enum SocketId {
    /// A `TCPSocket`.
    TcpId(TcpId),
    /// A `TCPServerSocket`.
    ServerId(ServerId),
    /// A `UDPSocket`.
    UdpId(UdpId),
}

impl SocketId {
    /// The socket's serial: one counter serves all three kinds, so it is unique among every
    /// socket of its [`Core`](crate::Core), whatever the kind (an I/O layer can key its maps
    /// by it alone).
    pub fn serial(self) -> u64 {
        match self {
            SocketId::TcpId(id) => id.serial,
            SocketId::ServerId(id) => id.serial,
            SocketId::UdpId(id) => id.serial,
        }
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketId::TcpId(id) => id.fmt(f),
            SocketId::ServerId(id) => id.fmt(f),
            SocketId::UdpId(id) => id.fmt(f),
        }
    }
}

/// Converts between a typed id and the table's raw `(index, serial)` pair.
pub(crate) trait RawId: Copy {
    fn from_raw(index: usize, serial: u64) -> Self;
    fn index(self) -> usize;
    fn serial_no(self) -> u64;
}

macro_rules! raw_id {
    ($($name:ident),*) => {$(
        impl RawId for $name {
            fn from_raw(index: usize, serial: u64) -> Self {
                $name { index, serial }
            }
            fn index(self) -> usize {
                self.index
            }
            fn serial_no(self) -> u64 {
                self.serial
            }
        }
    )*};
}
raw_id!(TcpId, ServerId, UdpId);

/// The hasher of the core's maps and sets keyed by ids or serials: rustc's Fx hash, one
/// multiply per word. Serials come from the core's own counter, never from a peer, so no
/// defence against chosen keys is needed (SipHash, the default, cost ~100 instructions per
/// lookup on the 10 000-connection path).
pub(crate) type IdHash = rustc_hash::FxBuildHasher;

/// The source of serial numbers shared by the three tables of one core.
#[derive(Debug, Default)]
pub(crate) struct Serials(u64);

impl Serials {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

/// The least a full [`Table`] grows by, in slots.
const PAGE: usize = 64;

/// A slab of sockets addressed by typed generational ids: [`slab::Slab`] holds each socket
/// with the serial of its id, and a lookup answers only when the serial matches, so an id
/// whose socket is gone never reaches the socket that took its slot. Freed slots are reused
/// (most recently freed first) before new ones are made.
///
/// A full table grows by [`PAGE`] slots or 1/32 of its capacity, whichever is more, not by
/// doubling as a `Vec` (and so `Slab`) would: a slot is a whole socket (~240 B for TCP), and a
/// doubled table at 10 000 sockets holds 6 384 empty slots, 393 B per socket in all against
/// the 256 B budget (BENCHMARKS.md, session 6: slab). At most 63 slots, or 1/32 of the
/// table, are ever allocated and unused; growing by 1/32 rather than by a page keeps the moves
/// of a growing table linear in its size (each growth may copy it).
#[derive(Debug)]
pub(crate) struct Table<I, T> {
    slab: Slab<(u64, T)>,
    _id: std::marker::PhantomData<I>,
}

impl<I: RawId, T> Default for Table<I, T> {
    fn default() -> Self {
        Table {
            slab: Slab::new(),
            _id: std::marker::PhantomData,
        }
    }
}

impl<I: RawId, T> Table<I, T> {
    /// Stores `value` and returns its new id. `make` sees the id, so a socket can know itself.
    pub(crate) fn insert_with(&mut self, serials: &mut Serials, make: impl FnOnce(I) -> T) -> I {
        let serial = serials.next();
        self.reserve_one();
        let slot = self.slab.vacant_entry();
        let id = I::from_raw(slot.key(), serial);
        slot.insert((serial, make(id)));
        id
    }

    /// Makes room for one more socket, if none is free, as the type's docs say.
    fn reserve_one(&mut self) {
        let capacity = self.slab.capacity();
        if self.slab.len() == capacity {
            self.slab.reserve_exact((capacity / 32).max(PAGE));
        }
    }

    pub(crate) fn get(&self, id: I) -> Option<&T> {
        match self.slab.get(id.index()) {
            Some((serial, value)) if *serial == id.serial_no() => Some(value),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, id: I) -> Option<&mut T> {
        match self.slab.get_mut(id.index()) {
            Some((serial, value)) if *serial == id.serial_no() => Some(value),
            _ => None,
        }
    }

    /// Removes the socket if `id` still names it.
    pub(crate) fn remove(&mut self, id: I) -> Option<T> {
        self.get(id)?;
        let (_, value) = self.slab.try_remove(id.index())?;
        Some(value)
    }

    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    /// The ids of every socket, in slot order.
    pub(crate) fn ids(&self) -> impl Iterator<Item = I> + '_ {
        (self.slab.iter()).map(|(index, (serial, _))| I::from_raw(index, *serial))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_unique_across_the_three_kinds() {
        let mut serials = Serials::default();
        let (mut tcp, mut servers, mut udp) = (
            Table::<TcpId, ()>::default(),
            Table::<ServerId, ()>::default(),
            Table::<UdpId, ()>::default(),
        );
        let mut seen = std::collections::HashSet::new();
        for _ in 0..3 {
            let ids: [SocketId; 3] = [
                tcp.insert_with(&mut serials, |_| ()).into(),
                servers.insert_with(&mut serials, |_| ()).into(),
                udp.insert_with(&mut serials, |_| ()).into(),
            ];
            for id in ids {
                assert!(seen.insert(id.serial()), "{id} shares its serial");
            }
        }
        assert_eq!(seen.len(), 9);
    }

    /// Consecutive serials, and ids of reused slots, spread over a table's buckets (the low
    /// bits, which pick the bucket) and its control bytes (the top 7 bits).
    #[test]
    fn the_id_hasher_spreads_consecutive_serials_and_ids() {
        use std::hash::BuildHasher;
        let hash = IdHash::default();
        let mut low = std::collections::HashMap::new();
        let mut top = std::collections::HashSet::new();
        for serial in 1..=4096u64 {
            let id = TcpId {
                index: (serial % 64) as usize,
                serial,
            };
            for h in [hash.hash_one(serial), hash.hash_one(id)] {
                *low.entry(h & 4095).or_insert(0) += 1;
                top.insert(h >> 57);
            }
        }
        let fullest = low.values().max().copied().unwrap_or(0);
        assert!(
            fullest <= 8,
            "{fullest} of 8192 hashes share a bucket of 4096"
        );
        assert_eq!(top.len(), 128, "every control byte value is used");
    }

    #[test]
    fn a_reused_slot_never_answers_to_the_old_id() {
        let mut serials = Serials::default();
        let mut table: Table<TcpId, &str> = Table::default();
        let first = table.insert_with(&mut serials, |_| "first");
        assert_eq!(table.remove(first), Some("first"));
        let second = table.insert_with(&mut serials, |_| "second");
        assert_eq!(first.index, second.index, "the slot is reused");
        assert_ne!(first, second);
        assert_eq!(table.get(first), None);
        assert_eq!(table.remove(first), None);
        assert_eq!(table.get(second), Some(&"second"));
    }

    /// Inserts and removes in a pattern that crosses pages of growth, checked against a plain map: every
    /// live id answers with its value, every dead one with nothing, freed slots are reused
    /// (most recent first) before the table grows, and `ids` lists the live ones in slot order.
    #[test]
    fn the_table_behaves_as_a_map_and_reuses_before_growing() {
        let mut serials = Serials::default();
        let mut table: Table<UdpId, u64> = Table::default();
        let mut model: std::collections::BTreeMap<usize, (UdpId, u64)> = Default::default();
        let mut dead = Vec::new();
        let mut issued = Vec::new();
        let mut most = 0;
        for round in 0..5u64 {
            for i in 0..150 {
                let value = round * 1000 + i;
                let mut seen = None;
                let id = table.insert_with(&mut serials, |id| {
                    seen = Some(id);
                    value
                });
                assert_eq!(seen, Some(id), "make sees the id the socket gets");
                issued.push(id);
                assert!(
                    model.insert(id.index, (id, value)).is_none(),
                    "a live slot reused"
                );
                most = most.max(model.len());
            }
            // Free every third live socket, most recently freed slot first to be reused.
            let victims: Vec<(UdpId, u64)> = model.values().step_by(3).copied().collect();
            for (id, value) in &victims {
                assert_eq!(table.remove(*id), Some(*value));
                assert_eq!(table.remove(*id), None, "removed twice");
                model.remove(&id.index);
                dead.push(*id);
            }
            let last_freed = victims.last().map(|(id, _)| id.index);
            let id = table.insert_with(&mut serials, |_| 7);
            assert_eq!(
                Some(id.index),
                last_freed,
                "the most recently freed slot is reused"
            );
            model.insert(id.index, (id, 7));
            issued.push(id);
            most = most.max(model.len());
        }
        assert_eq!(table.len(), model.len());
        let listed: Vec<UdpId> = table.ids().collect();
        let expected: Vec<UdpId> = model.values().map(|(id, _)| *id).collect();
        assert_eq!(listed, expected);
        for (id, value) in model.values() {
            assert_eq!(table.get(*id), Some(value));
        }
        for id in dead {
            assert_eq!(table.get(id), None, "a dead id answered");
        }
        // A slot is made only when none is free: as many as were ever alive at once (below
        // 2 048, the table grows a page at a time).
        assert!(
            issued.iter().all(|id| id.index < most),
            "a slot made while one was free"
        );
        assert_eq!(table.slab.capacity(), most.div_ceil(PAGE) * PAGE);
    }

    /// A full table grows by a page or by 1/32 of itself, whichever is more: never more than
    /// that is allocated and unused, and it grows a number of times logarithmic in its size
    /// past 2 048 slots (each growth may move it).
    #[test]
    fn a_full_table_grows_by_a_page_or_a_32nd_of_itself() {
        let mut serials = Serials::default();
        let mut table: Table<TcpId, u64> = Table::default();
        let mut growths = 0;
        for n in 1..=100_000u64 {
            let before = table.slab.capacity();
            table.insert_with(&mut serials, |_| n);
            let capacity = table.slab.capacity();
            if capacity != before {
                growths += 1;
                assert_eq!(capacity - before, (before / 32).max(PAGE));
            }
            assert!(capacity - table.len() < (capacity / 32).max(PAGE));
        }
        // 32 pages to 2 048 slots, then +1/32 at a time: ln(100 000 / 2 048) / ln(33 / 32).
        assert!(growths <= 32 + 127, "{growths} growths");
    }
}
