//! Typed, generational socket handles and the table that issues them.
//!
//! An id is a slot index plus a serial number drawn from one counter per [`Core`](crate::Core).
//! The serial never repeats (it is 64 bits), so an id whose socket has delivered its `Close` never
//! answers again, even after its slot was reused (BEHAVIOUR §0: "a new socket never gets an equal
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

/// The source of serial numbers shared by the three tables of one core.
#[derive(Debug, Default)]
pub(crate) struct Serials(u64);

impl Serials {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

/// A slab of sockets addressed by typed generational ids.
#[derive(Debug)]
pub(crate) struct Table<I, T> {
    slots: Slab<(u64, T)>,
    _id: std::marker::PhantomData<I>,
}

impl<I: RawId, T> Default for Table<I, T> {
    fn default() -> Self {
        Table {
            slots: Slab::new(),
            _id: std::marker::PhantomData,
        }
    }
}

impl<I: RawId, T> Table<I, T> {
    /// Stores `value` and returns its new id. `make` sees the id, so a socket can know itself.
    pub(crate) fn insert_with(&mut self, serials: &mut Serials, make: impl FnOnce(I) -> T) -> I {
        let entry = self.slots.vacant_entry();
        let id = I::from_raw(entry.key(), serials.next());
        entry.insert((id.serial_no(), make(id)));
        id
    }

    pub(crate) fn get(&self, id: I) -> Option<&T> {
        match self.slots.get(id.index()) {
            Some((serial, value)) if *serial == id.serial_no() => Some(value),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, id: I) -> Option<&mut T> {
        match self.slots.get_mut(id.index()) {
            Some((serial, value)) if *serial == id.serial_no() => Some(value),
            _ => None,
        }
    }

    /// Removes the socket if `id` still names it.
    pub(crate) fn remove(&mut self, id: I) -> Option<T> {
        self.get(id)?;
        Some(self.slots.remove(id.index()).1)
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn ids(&self) -> impl Iterator<Item = I> + '_ {
        self.slots
            .iter()
            .map(|(index, (serial, _))| I::from_raw(index, *serial))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
