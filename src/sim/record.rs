//! The recorder: the ordered transcript of everything that happened in a run.

use std::fmt;
use std::time::Duration;

use super::check::Violation;
use super::HostId;
use crate::call::{Call, Returned};
use std::net::SocketAddr;

use crate::{Accepted, Action, ApiError, Event, Input, InputError, ServerId};

/// One entry of the transcript ([`Sim::transcript`](super::Sim::transcript)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Virtual time since the start of the run.
    pub at: Duration,
    /// The host concerned (`None` for the network as a whole).
    pub host: Option<HostId>,
    /// What happened.
    pub what: Happening,
}

/// What a [`Record`] records.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Happening {
    /// The app called the core ([`Sim::call`](super::Sim::call)).
    Call {
        /// The call.
        call: Call,
        /// What it returned.
        result: Result<Returned, ApiError>,
    },
    /// The simulated OS reported something to the core.
    Input {
        /// The input.
        input: Input,
        /// Whether the core accepted it.
        result: Result<(), InputError>,
    },
    /// The simulated OS accepted a connection on a core's server.
    Accepted {
        /// The server.
        server: ServerId,
        /// Our end.
        local: SocketAddr,
        /// The peer's end.
        remote: SocketAddr,
        /// What the core made of it.
        result: Result<Accepted, InputError>,
    },
    /// The core's timers ran.
    Timers,
    /// The core asked the I/O layer (the simulator) to do something.
    Action(Action),
    /// The core delivered an event to the app.
    Event(Event),
    /// The network did something: a segment lost, a connection accepted, a fault applied.
    Net(String),
    /// An invariant was broken, or the core asked the network for something impossible.
    Violation(Violation),
}

impl Record {
    /// Writes the record as one line, naming its host `label`.
    pub(crate) fn write(&self, f: &mut impl fmt::Write, label: &str) -> fmt::Result {
        let at = self.at.as_secs_f64() * 1000.0;
        write!(f, "{at:>12.3}ms {label:<8} ")?;
        match &self.what {
            Happening::Call { call, result } => write!(f, "call   {call} -> {result:?}"),
            Happening::Input { input, result } => {
                write!(f, "input  {} -> {result:?}", short(input))
            }
            Happening::Accepted {
                server,
                local,
                remote,
                result,
            } => write!(f, "accept {server} {local} <- {remote} -> {result:?}"),
            Happening::Timers => f.write_str("timers"),
            Happening::Action(a) => write!(f, "action {}", short(a)),
            Happening::Event(e) => write!(f, "event  {}", short(e)),
            Happening::Net(what) => write!(f, "net    {what}"),
            Happening::Violation(v) => write!(f, "VIOLATION {v}"),
        }
    }
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = self.host.map_or("net".to_string(), |h| h.to_string());
        self.write(f, &label)
    }
}

/// `Debug` text cut to a readable length (payloads can be megabytes).
fn short(value: &impl fmt::Debug) -> String {
    const MAX: usize = 160;
    let text = format!("{value:?}");
    if text.len() <= MAX {
        return text;
    }
    let mut cut = MAX;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… ({} chars)", &text[..cut], text.len())
}
