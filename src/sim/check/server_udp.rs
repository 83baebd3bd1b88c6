//! The checker's model of a server or UDP socket ([`Other`]) and the checks of their calls,
//! actions and events against it.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::{Action, Event, ReadyState, SocketId};

use super::CheckedCore;

/// What the checker knows of a server or UDP socket.
#[derive(Debug)]
pub(super) struct Other {
    pub(super) state: ReadyState,
    pub(super) suspended: u32,
    /// UDP: datagrams sent and not yet reported sent (or failed).
    pub(super) queue: VecDeque<Bytes>,
    pub(super) queued: usize,
    /// UDP: how many at the front of `queue` were handed out in `SendDatagrams` and not
    /// answered.
    pub(super) in_flight: usize,
    pub(super) armed: bool,
    opened: bool,
    released: bool,
    pub(super) closed: bool,
    closed_by_app: bool,
}

impl Other {
    pub(super) fn new() -> Other {
        Other {
            state: ReadyState::Connecting,
            suspended: 0,
            queue: VecDeque::new(),
            queued: 0,
            in_flight: 0,
            armed: false,
            opened: false,
            released: false,
            closed: false,
            closed_by_app: false,
        }
    }
}

impl CheckedCore {
    pub(super) fn other(&mut self, id: SocketId) -> Option<&mut Other> {
        self.others.get_mut(&id).filter(|o| !o.closed)
    }

    pub(super) fn open_other(&mut self, id: SocketId) {
        if self.others.insert(id, Other::new()).is_some() {
            self.violate(id, "open returned an id already issued".into());
        }
    }

    pub(super) fn app_closed(&mut self, id: SocketId) {
        if let Some(o) = self.other(id) {
            o.closed_by_app = true;
        }
    }

    pub(super) fn suspended(&mut self, id: SocketId, suspend: bool) {
        let Some(o) = self.other(id) else { return };
        if suspend {
            o.suspended += 1;
        } else if o.suspended == 0 {
            self.violate(id, "resume succeeded without a suspend".into());
        } else {
            o.suspended -= 1;
        }
    }
}

impl CheckedCore {
    pub(super) fn other_action(&mut self, id: SocketId, action: &Action) {
        let limit = self.core.config().max_datagrams_in_flight.max(1);
        let Some(o) = self.others.get_mut(&id) else {
            return self.violate(id, format!("{action:?} for a socket never opened"));
        };
        let problem = if o.closed {
            Some(format!("{action:?} after Close"))
        } else if o.released {
            Some(format!("{action:?} after Release"))
        } else {
            match action {
                Action::SendDatagrams { datagrams, .. } => {
                    // In flight: the first `in_flight` queued, handed out in queue order.
                    let mut problem = datagrams
                        .is_empty()
                        .then(|| "an action with no datagram".to_owned());
                    for (data, _) in datagrams {
                        if o.in_flight >= limit {
                            problem.get_or_insert(format!(
                                "a datagram while {limit} are in flight, the limit"
                            ));
                        } else if o.queue.get(o.in_flight) != Some(data) {
                            problem
                                .get_or_insert("a datagram that is not the next one queued".into());
                        }
                        o.in_flight += 1;
                    }
                    problem
                }
                Action::Release { .. } => {
                    o.released = true;
                    o.queue.clear();
                    o.queued = 0;
                    o.in_flight = 0;
                    o.armed = false;
                    None
                }
                _ => None,
            }
        };
        if let Some(problem) = problem {
            self.violate(id, problem);
        }
    }

    pub(super) fn other_event(&mut self, id: SocketId, event: &Event) {
        let attrs = self.other_attrs(id);
        let Some(o) = self.others.get_mut(&id) else {
            return self.violate(id, format!("{event:?} for a socket never opened"));
        };
        let mut problems = Vec::new();
        if o.closed {
            problems.push(format!("{event:?} after Close"));
        }
        match event {
            Event::Open { .. } => {
                let again = std::mem::replace(&mut o.opened, true);
                if again {
                    problems.push("a second Open".into());
                }
            }
            Event::Drain { .. } => {
                if !std::mem::take(&mut o.armed) {
                    problems.push("Drain without a send that returned false".into());
                }
                if o.queued != 0 || attrs.is_some_and(|(_, b, _)| b.unwrap_or(0) != 0) {
                    problems.push(format!("Drain with {} bytes buffered", o.queued));
                }
            }
            Event::Message { .. } => {
                if !o.opened {
                    problems.push("Message before Open".into());
                }
                if o.closed_by_app {
                    problems.push("Message after close()".into());
                }
            }
            Event::Close { .. } => {
                if !o.released {
                    problems.push("Close before Release".into());
                }
                if attrs.is_some() {
                    problems.push("the id still answers after Close".into());
                }
                o.closed = true;
                o.state = ReadyState::Closed;
            }
            _ => {}
        }
        for p in problems {
            self.violate(id, p);
        }
    }

    /// A server's or UDP socket's readyState, bufferedAmount (UDP) and suspend count.
    pub(super) fn other_attrs(&self, id: SocketId) -> Option<(ReadyState, Option<usize>, u32)> {
        match id {
            SocketId::ServerId(id) => {
                let s = self.core.server(id)?;
                Some((s.ready_state(), None, s.suspend_count()))
            }
            SocketId::UdpId(id) => {
                let s = self.core.udp(id)?;
                Some((
                    s.ready_state(),
                    Some(s.buffered_amount()),
                    s.suspend_count(),
                ))
            }
            _ => None,
        }
    }
}
