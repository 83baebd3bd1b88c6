//! The checker's model of a TCP socket ([`Model`], its byte [`Stream`]s, the [`Outcome`]) and
//! the checks of the TCP actions and events against it.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::{Action, BinaryType, Data, Event, ReadyState, SocketError, SocketId};

use super::CheckedCore;

/// Received bytes up to which the text check runs at every `Data` event (always at the end).
const PREFIX_CHECK_MAX: usize = 64 << 10;

/// How a checked socket ended, for end-to-end checks.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outcome {
    /// Its `Close` was delivered.
    pub closed: bool,
    /// The `Error` it reported, if any.
    pub error: Option<SocketError>,
    /// The app called `close` or `close_immediately` on it.
    pub closed_by_app: bool,
    /// `Open` was delivered.
    pub opened: bool,
    /// The I/O layer reported the peer's FIN (`Eof`), so everything the peer sent has arrived.
    pub end_of_stream: bool,
}

/// Bytes of one direction, kept up to a cap (past it only the count is kept).
#[derive(Debug, Default)]
pub(super) struct Stream {
    bytes: Vec<u8>,
    total: u64,
    overflow: bool,
}

impl Stream {
    pub(super) fn push(&mut self, data: &[u8], cap: usize) {
        self.total += data.len() as u64;
        if self.overflow {
            return;
        }
        if self.bytes.len() + data.len() > cap {
            self.overflow = true;
            self.bytes = Vec::new();
        } else {
            self.bytes.extend_from_slice(data);
        }
    }

    pub(super) fn known(&self) -> Option<&[u8]> {
        (!self.overflow).then_some(&self.bytes[..])
    }
}

/// What the checker knows of one TCP socket.
#[derive(Debug)]
pub(super) struct Model {
    pub(super) state: ReadyState,
    binary: BinaryType,
    allow_half_open: bool,
    pub(super) suspended: u32,
    /// Sent and not yet taken by the OS: `bufferedAmount`.
    pub(super) queue: VecDeque<Bytes>,
    pub(super) queued: usize,
    pub(super) in_flight: Option<usize>,
    pub(super) armed: bool,
    pub(super) opened: bool,
    released: bool,
    shutdown: bool,
    halfclose_event: bool,
    pub(super) error: Option<SocketError>,
    pub(super) closed: bool,
    pub(super) closed_by_app: bool,
    /// An `Eof` or `Failed` input was accepted: the decoder must have been flushed at the end.
    pub(super) stream_end: bool,
    pub(super) eof: bool,
    pub(super) sent: Stream,
    pub(super) fed: Stream,
    got: Stream,
    /// TLS (`ssl`, from `useSecureTransport`, a secure server or `upgradeToSecure`): what the
    /// OS carries from then on is ciphertext (see [`Model::start_tls`]).
    pub(super) tls: bool,
    /// Bytes queued before `upgradeToSecure` and still to be written as plaintext.
    pub(super) plain_before: usize,
    /// Under TLS: ciphertext bytes the OS took, and the plaintext bytes that released from
    /// `bufferedAmount` (never more: a record is longer than what it carries).
    pub(super) cipher_written: u64,
    pub(super) plain_released: u64,
}

impl Model {
    pub(super) fn new(binary: BinaryType, allow_half_open: bool) -> Model {
        Model {
            state: ReadyState::Connecting,
            binary,
            allow_half_open,
            suspended: 0,
            queue: VecDeque::new(),
            queued: 0,
            in_flight: None,
            armed: false,
            opened: false,
            released: false,
            shutdown: false,
            halfclose_event: false,
            error: None,
            closed: false,
            closed_by_app: false,
            stream_end: false,
            eof: false,
            sent: Stream::default(),
            fed: Stream::default(),
            got: Stream::default(),
            tls: false,
            plain_before: 0,
            cipher_written: 0,
            plain_released: 0,
        }
    }

    /// From here on writes are ciphertext once the bytes queued so far went out as plaintext
    /// (STARTTLS order), and received bytes are ciphertext: neither can be compared with the
    /// plaintext any more, so the byte checks stop (those made so far stand: plaintext
    /// delivered before the upgrade was checked when it was delivered). What is still
    /// checked: one write in flight, `Written` within it, `bufferedAmount` equal to the
    /// plaintext not yet released (released only by a `Written`, never more than the
    /// ciphertext written), `Drain` and FIN ordering.
    pub(super) fn start_tls(&mut self) {
        self.tls = true;
        self.plain_before = self.queued;
        for stream in [&mut self.fed, &mut self.got] {
            stream.overflow = true;
            stream.bytes = Vec::new();
        }
    }

    /// Whether the next write is ciphertext.
    pub(super) fn writes_ciphertext(&self) -> bool {
        self.tls && self.plain_before == 0
    }

    /// Whether `data` is the start of the queued bytes.
    fn queue_starts_with(&self, mut data: &[u8]) -> bool {
        for chunk in &self.queue {
            let n = chunk.len().min(data.len());
            if chunk[..n] != data[..n] {
                return false;
            }
            data = &data[n..];
            if data.is_empty() {
                return true;
            }
        }
        data.is_empty()
    }

    pub(super) fn take_written(&mut self, mut n: usize) {
        self.queued = self.queued.saturating_sub(n);
        while n > 0 {
            let Some(front) = self.queue.front_mut() else {
                return;
            };
            if front.len() <= n {
                n -= front.len();
                self.queue.pop_front();
            } else {
                let _ = front.split_to(n);
                n = 0;
            }
        }
    }
}

impl CheckedCore {
    pub(super) fn action(&mut self, action: &Action) {
        let other = match action {
            Action::Listen { id, .. } => Some(SocketId::from(*id)),
            Action::Resolve {
                id: id @ SocketId::UdpId(_),
                ..
            } => Some(*id),
            Action::Bind { id, .. }
            | Action::SendDatagrams { id, .. }
            | Action::JoinMulticast { id, .. }
            | Action::LeaveMulticast { id, .. } => Some((*id).into()),
            Action::SetReading { id, .. } | Action::Release { id }
                if !matches!(id, SocketId::TcpId(_)) =>
            {
                Some(*id)
            }
            _ => None,
        };
        if let Some(id) = other {
            return self.other_action(id, action);
        }
        let id = match action {
            Action::Connect { id, .. }
            | Action::AbortConnect { id, .. }
            | Action::Write { id, .. }
            | Action::Shutdown { id } => *id,
            Action::Resolve {
                id: SocketId::TcpId(id),
                ..
            }
            | Action::SetReading {
                id: SocketId::TcpId(id),
                ..
            }
            | Action::Release {
                id: SocketId::TcpId(id),
            } => *id,
            _ => return,
        };
        let Some(m) = self.models.get_mut(&id) else {
            return self.violate(id, format!("{action:?} for a socket never opened"));
        };
        let problem: Option<String> = if m.closed {
            Some(format!("{action:?} after Close"))
        } else if m.released {
            Some(format!("{action:?} after Release"))
        } else {
            match action {
                Action::Resolve { .. } | Action::Connect { .. } | Action::AbortConnect { .. }
                    if m.opened =>
                {
                    Some(format!("{action:?} after Open"))
                }
                Action::Write { data, .. } => {
                    let problem = if m.in_flight.is_some() {
                        Some("a second write while one is in flight".to_string())
                    } else if data.is_empty() {
                        Some("an empty write".into())
                    } else if m.shutdown {
                        Some("a write after FIN".into())
                    } else if m.writes_ciphertext() {
                        None // its bytes cannot be compared with the plaintext
                    } else if m.tls && data.len() > m.plain_before {
                        Some(format!(
                            "a plaintext write of {} bytes, {} before the STARTTLS point",
                            data.len(),
                            m.plain_before
                        ))
                    } else if !m.queue_starts_with(data) {
                        Some("a write that is not the front of the queued bytes".into())
                    } else {
                        None
                    };
                    m.in_flight = Some(data.len());
                    problem
                }
                Action::Shutdown { .. } => {
                    let problem = if m.shutdown {
                        Some("a second FIN".to_string())
                    } else if m.queued > 0 || m.in_flight.is_some() {
                        Some(format!("FIN with {} bytes not yet written", m.queued))
                    } else {
                        None
                    };
                    m.shutdown = true;
                    problem
                }
                Action::Release { .. } => {
                    m.released = true;
                    m.queue.clear();
                    m.queued = 0;
                    m.in_flight = None;
                    m.armed = false;
                    None
                }
                _ => None,
            }
        };
        if let Some(problem) = problem {
            self.violate(id, problem);
        }
    }
}

impl CheckedCore {
    pub(super) fn event(&mut self, event: &Event) {
        let other = match event {
            Event::Open { id }
            | Event::Drain { id }
            | Event::Error { id, .. }
            | Event::Close { id }
                if !matches!(id, SocketId::TcpId(_)) =>
            {
                Some(*id)
            }
            Event::Message { id, .. } => Some((*id).into()),
            Event::Connect { server, socket } => {
                if self.other((*server).into()).is_none() {
                    self.violate(*server, format!("Connect of {socket} on a dead server"));
                }
                if self.model(*socket).is_none() {
                    self.violate(*socket, "Connect for a socket not accepted".into());
                }
                return;
            }
            _ => None,
        };
        if let Some(id) = other {
            return self.other_event(id, event);
        }
        let Some(id) = event.tcp() else {
            return;
        };
        let keep = self.keep;
        let attrs = self
            .core
            .tcp(id)
            .map(|s| (s.ready_state(), s.buffered_amount()));
        let Some(m) = self.models.get_mut(&id) else {
            return self.violate(id, format!("{event:?} for a socket never opened"));
        };
        let mut problems: Vec<String> = Vec::new();
        if m.closed {
            problems.push(format!("{event:?} after Close"));
        } else if m.error.is_some() && !matches!(event, Event::Close { .. }) {
            problems.push(format!("{event:?} between Error and Close"));
        }
        match event {
            Event::Open { .. } => {
                if m.opened {
                    problems.push("a second Open".into());
                }
                m.opened = true;
            }
            Event::Data { data, .. } => {
                if !m.opened {
                    problems.push("Data before Open".into());
                }
                if m.closed_by_app {
                    problems.push("Data after close()".into());
                }
                if m.released {
                    problems.push("Data after Release".into());
                }
                let binary = matches!(data, Data::Bytes(_));
                if binary != (m.binary == BinaryType::ArrayBuffer) {
                    problems.push(format!("Data of the wrong type for {:?}", m.binary));
                }
                let before = m.got.bytes.len();
                m.got.push(data.as_bytes(), keep);
                if let Some(p) = stream_prefix_problem(m, before) {
                    problems.push(p);
                }
            }
            Event::Drain { .. } => {
                if !m.armed {
                    problems.push("Drain without a send that returned false".into());
                }
                m.armed = false;
                if m.queued != 0 || attrs.is_some_and(|(_, b)| b != 0) {
                    problems.push(format!("Drain with {} bytes buffered", m.queued));
                }
                // Under TLS: every record written, not just the plaintext released.
                if m.in_flight.is_some() {
                    problems.push("Drain with a write in flight".into());
                }
            }
            Event::HalfClose { .. } => {
                if !m.allow_half_open {
                    problems.push("HalfClose without allowHalfOpen".into());
                }
                if m.halfclose_event {
                    problems.push("a second HalfClose".into());
                }
                m.halfclose_event = true;
                problems.extend(stream_end_problem(m));
            }
            Event::Error { error, .. } => {
                if m.error.is_some() {
                    problems.push("a second Error".into());
                }
                if let Some((state, _)) = attrs.filter(|(s, _)| *s != ReadyState::Closed) {
                    problems.push(format!("Error delivered in readyState {state:?}"));
                }
                m.error = Some(error.clone());
            }
            Event::Close { .. } => {
                if !m.released {
                    problems.push("Close before Release".into());
                }
                if attrs.is_some() {
                    problems.push("the id still answers after Close".into());
                }
                m.closed = true;
                m.state = ReadyState::Closed;
                if !m.halfclose_event {
                    problems.extend(stream_end_problem(m));
                }
            }
            _ => {}
        }
        for p in problems {
            self.violate(id, p);
        }
    }
}

/// What the app got so far must be the start of what the bytes received decode to.
fn stream_prefix_problem(m: &Model, got_before: usize) -> Option<String> {
    let (fed, got) = (m.fed.known()?, m.got.known()?);
    match m.binary {
        BinaryType::ArrayBuffer => (!fed.starts_with(got)).then(|| {
            format!(
                "Data bytes {:?} are not what was received",
                &got[got_before..]
            )
        }),
        BinaryType::String if fed.len() <= PREFIX_CHECK_MAX => {
            let expected = String::from_utf8_lossy(fed);
            (!expected.as_bytes().starts_with(got)).then(|| {
                format!(
                    "text {:?} is not the start of the decoded bytes {expected:?}",
                    String::from_utf8_lossy(got)
                )
            })
        }
        BinaryType::String => None,
    }
}

/// At the end of the stream (not cut short by the app), the app has everything received.
fn stream_end_problem(m: &Model) -> Option<String> {
    if m.closed_by_app || !m.stream_end {
        return None;
    }
    let (fed, got) = (m.fed.known()?, m.got.known()?);
    let expected = match m.binary {
        BinaryType::ArrayBuffer => fed.to_vec(),
        BinaryType::String => String::from_utf8_lossy(fed).into_owned().into_bytes(),
    };
    (expected != got).then(|| {
        format!(
            "at the end of the stream the app got {:?}, expected {:?}",
            String::from_utf8_lossy(got),
            String::from_utf8_lossy(&expected)
        )
    })
}
