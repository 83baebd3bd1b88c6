//! The OS side: the map from ids to OS sockets, their interest in the poller, the one write in
//! flight per socket, and the syscalls that carry out the core's actions. Everything that
//! happens is reported as an [`Input`] (or an accepted connection, which the driver hands to
//! the core); no protocol state lives here.
//!
//! Rules kept throughout:
//! - readiness is tracked per source ([`Source::ready`]): an event from the poller sets it, and
//!   only the OS taking it back (`WouldBlock`, or a read that drained the queue) clears it. A
//!   source that can act on what it knows without asking the OS (it stopped at a per-turn limit,
//!   or reading was resumed over data already reported) waits in [`Reactor::due`] for the next
//!   round, whose wait then polls without blocking;
//! - a wait begins a round of the sources it found ready and those due, served
//!   [`Limits::sources_per_turn`] per turn without waiting again (see [`Reactor::wait`]);
//! - where the poller supports it (epoll, kqueue), every source is registered edge-triggered,
//!   for reading, and for writing too from its first write that would block (a connect
//!   attempt from the start): at most one `modify` in its life, none per event or per change
//!   of interest. A socket that wants nothing wakes the loop only when its state changes (new
//!   data, freed buffer space, a hang-up), never again for the same state, so an idle loop
//!   sleeps;
//! - elsewhere sources are registered one-shot: after each event a source is disarmed, and
//!   [`Reactor::sync`] re-arms it with `modify` for what is wanted and not known ready, and
//!   nothing is armed that is not wanted;
//! - reading follows the core's `SetReading` exactly and stops for good at the end of stream;
//!   writing is independent of reading (a blocked write never stops reads);
//! - `EINTR` is retried, `WouldBlock` means "wait for readiness" and is never reported;
//! - a source is deleted from the poller before its socket is closed.
//!
//! One file per concern, each with the [`Reactor`] methods of that concern:
//! - here: the reactor itself, its limits and reports, and the actions that concern every
//!   kind of socket (`SetReading`, `Release`);
//! - [`sources`]: the OS sockets' registration in the poller, their readiness, and the
//!   rounds of the loop (with the rests of listening sockets);
//! - [`connect`]: connect attempts, until one wins or fails;
//! - [`stream`]: TCP reads and writes (the one write in flight) and FINs;
//! - [`accept`]: listening sockets and the connections they accept;
//! - [`datagram`]: UDP sockets, the sends of a turn taken together, their reads and
//!   multicast memberships;
//! - [`batch`]: the syscalls that send and read many datagrams at once (`sendmmsg`, UDP GSO,
//!   `recvmmsg`, UDP GRO), with their run-time fallbacks;
//! - [`os`]: the syscall helpers they share.
//!
//! [`Source::ready`]: sources::Source::ready

mod accept;
mod batch;
mod connect;
mod datagram;
mod os;
mod sources;
mod stream;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod udp_tests;

use rustc_hash::FxBuildHasher;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use bytes::BytesMut;
use polling::Poller;
use socket2::Socket;
use sockstate::{Input, ServerId, SocketId};

use crate::wait::{Ready, Waiter};

pub(crate) use sources::Mode;
use sources::{Entry, Sources};

/// Limits of one turn of the loop, and the multicast interfaces (see
/// [`Config`](crate::Config)).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) read_chunk: usize,
    pub(crate) reads_per_turn: usize,
    pub(crate) accepts_per_turn: usize,
    pub(crate) datagrams_per_turn: usize,
    pub(crate) sources_per_turn: usize,
    pub(crate) spin_polls: u32,
    pub(crate) multicast_interface_v4: Option<Ipv4Addr>,
    pub(crate) multicast_interface_v6: u32,
}

/// What the reactor reports to the driver: an input for the core, or a connection accepted
/// on a server (for [`Core::handle_accepted`](sockstate::Core::handle_accepted)).
#[derive(Debug)]
pub(crate) enum Report {
    Input(Input),
    Accepted {
        server: ServerId,
        socket: Socket,
        local: SocketAddr,
        remote: SocketAddr,
    },
}

impl From<Input> for Report {
    fn from(input: Input) -> Report {
        Report::Input(input)
    }
}

pub(crate) struct Reactor {
    sources: Sources,
    /// By [`SocketId::serial`].
    ids: HashMap<u64, Entry, FxBuildHasher>,
    /// The connect attempts in progress of a TCP id, by [`SocketId::serial`] (none for an accepted
    /// socket, and none once connected: nothing is allocated).
    attempts: HashMap<u64, Vec<usize>, FxBuildHasher>,
    /// Listening sockets bound to a specific address, and that address: every connection
    /// they accept has it as its local address (asked once, not once per accept).
    fixed_locals: Vec<(usize, SocketAddr)>,
    /// Listening sockets resting after `accept` ran out of resources, and until when: kept
    /// apart so that no turn of the loop has to look at every socket.
    resting: Vec<(usize, Instant)>,
    /// Where streams are read into (see [`recv_chunk`]); always empty between reads.
    ///
    /// [`recv_chunk`]: stream::recv_chunk
    buf: BytesMut,
    /// Where datagrams are read into, [`DATAGRAM_BATCH`] messages at a time (see
    /// [`recv_datagrams`]); each slot always empty between reads.
    ///
    /// [`DATAGRAM_BATCH`]: batch::DATAGRAM_BATCH
    /// [`recv_datagrams`]: batch::recv_datagrams
    datagram: Vec<BytesMut>,
    /// UDP sources with datagrams queued by `SendDatagrams` this turn (see
    /// [`flush_sends`](Reactor::flush_sends)).
    sends: Vec<usize>,
    waiter: Waiter,
    /// What the last wait reported (kept for its allocation).
    ready: Vec<Ready>,
    /// Sources to service at the next turn (their [`Source::queued`] is set): they can act
    /// without waiting for the OS, so that turn polls without blocking.
    ///
    /// [`Source::queued`]: sources::Source::queued
    due: Vec<usize>,
    /// The round being serviced, from [`next`](Reactor::next) on (see [`Reactor::wait`]).
    servicing: Vec<usize>,
    next: usize,
    mode: Mode,
    limits: Limits,
}

impl Reactor {
    pub(crate) fn new(poller: &Poller, mode: Mode, limits: Limits) -> Reactor {
        Reactor {
            sources: Sources::default(),
            ids: HashMap::default(),
            attempts: HashMap::default(),
            fixed_locals: Vec::new(),
            resting: Vec::new(),
            buf: BytesMut::new(),
            datagram: Vec::new(),
            sends: Vec::new(),
            waiter: Waiter::new(poller).spinning(limits.spin_polls),
            ready: Vec::new(),
            due: Vec::new(),
            servicing: Vec::new(),
            next: 0,
            mode,
            limits,
        }
    }

    /// Whether any OS socket or resolution is live.
    pub(crate) fn is_idle(&self) -> bool {
        self.ids.is_empty()
    }

    // ---- actions --------------------------------------------------------------------------

    /// `Action::Resolve` was handed to the resolver: its answer is awaited.
    pub(crate) fn resolving(&mut self, id: SocketId) {
        self.ids.entry(id.serial()).or_default().resolving = true;
    }

    /// Whether an answer for `id` is still awaited (taking it if so).
    pub(crate) fn take_resolving(&mut self, id: SocketId) -> bool {
        match self.ids.get_mut(&id.serial()) {
            Some(entry) if entry.resolving => {
                entry.resolving = false;
                true
            }
            _ => false,
        }
    }

    /// `Action::SetReading`.
    pub(crate) fn set_reading(
        &mut self,
        poller: &Poller,
        id: SocketId,
        enabled: bool,
        reports: &mut Vec<Report>,
    ) {
        let Some(entry) = self.ids.get_mut(&id.serial()) else {
            return;
        };
        entry.reading = enabled;
        if let Some(key) = entry.main() {
            if let Some(source) = self.sources.get_mut(key) {
                source.reading = enabled;
            }
            self.sync(poller, key, reports);
        }
    }

    /// `Action::Release`: delete and close every OS socket of the id and forget it.
    pub(crate) fn release(&mut self, poller: &Poller, id: SocketId) {
        let serial = id.serial();
        if let Some(entry) = self.ids.remove(&serial) {
            let attempts = self.attempts.remove(&serial).unwrap_or_default();
            for key in entry.main().into_iter().chain(attempts) {
                self.close_source(poller, key);
            }
        }
    }

    /// Deletes and closes every socket (the driver is going away).
    pub(crate) fn close_all(&mut self, poller: &Poller) {
        let keys: Vec<usize> = self.sources.keys().collect();
        for key in keys {
            self.close_source(poller, key);
        }
        self.ids.clear();
        self.attempts.clear();
    }
}
