//! Test helpers shared by the unit tests of every state machine: a core on a virtual clock,
//! transcripts of whole outputs, and short constructors for the outputs tests expect.

#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::{Action, ApiError, Config, Core, Data, DomException, ErrorCode, Event, Input};
use crate::{InputError, Output, ReadyState, ServerId, SocketError, SocketId, TcpId, UdpId};

/// A core on a virtual clock.
pub(crate) struct Harness {
    pub core: Core,
    pub now: Instant,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(Config::default())
    }

    pub fn with_config(config: Config) -> Self {
        #[allow(clippy::disallowed_methods)] // the one real reading; only offsets matter
        let now = Instant::now();
        Harness {
            core: Core::new(config),
            now,
        }
    }

    /// Everything the core has to say now, up to (not including) the `Timeout`.
    #[track_caller]
    pub fn drain(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        loop {
            match self.core.poll_output() {
                Output::Timeout(_) => return out,
                o => out.push(o),
            }
            assert!(out.len() < 10_000, "poll_output does not end");
        }
    }

    /// The deadline `poll_output` reports once drained.
    #[track_caller]
    pub fn deadline(&mut self) -> Option<Instant> {
        match self.core.poll_output() {
            Output::Timeout(at) => at,
            other => panic!("expected the queue to be drained, got {other:?}"),
        }
    }

    #[track_caller]
    pub fn input(&mut self, input: Input) -> Vec<Output> {
        self.core
            .handle_input(self.now, input)
            .expect("input accepted");
        self.drain()
    }

    /// An input that must be refused and change nothing.
    #[track_caller]
    pub fn bad_input(&mut self, input: Input) -> InputError {
        let err = self
            .core
            .handle_input(self.now, input)
            .expect_err("input refused");
        assert_eq!(self.drain(), [], "a refused input produces nothing");
        err
    }

    /// Feeds `input`, a failure before the socket opened, and checks the whole transcript:
    /// `Release`, `Error(kind)`, `Close`, with `readyState` (read by `state`) already `closed`
    /// when the `Error` is delivered and the id dead after `Close` (BEHAVIOUR §0).
    #[track_caller]
    pub fn fails_before_open(
        &mut self,
        id: impl Into<SocketId>,
        input: Input,
        kind: std::io::ErrorKind,
        state: impl Fn(&Core) -> Option<ReadyState>,
    ) {
        let id = id.into();
        self.core
            .handle_input(self.now, input)
            .expect("input accepted");
        assert_eq!(self.core.poll_output(), release(id));
        assert_eq!(self.core.poll_output(), io_error(id, kind));
        assert_eq!(state(&self.core), Some(ReadyState::Closed));
        assert_eq!(self.core.poll_output(), close(id));
        assert_eq!(state(&self.core), None, "the id is dead after Close");
        assert_eq!(self.drain(), []);
    }

    /// Moves the clock and runs the timers.
    #[track_caller]
    pub fn advance(&mut self, by: Duration) -> Vec<Output> {
        self.now += by;
        self.core.handle_timeout(self.now);
        self.drain()
    }
}

pub(crate) fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().expect("test IP address")
}

/// A call that must be refused with this DOMException.
#[track_caller]
pub(crate) fn refused(result: Result<impl std::fmt::Debug, ApiError>, exception: DomException) {
    assert_eq!(result.expect_err("refused").exception(), exception);
}

pub(crate) fn open(id: impl Into<SocketId>) -> Output {
    Output::Event(Event::Open { id: id.into() })
}
pub(crate) fn close(id: impl Into<SocketId>) -> Output {
    Output::Event(Event::Close { id: id.into() })
}
pub(crate) fn drain(id: impl Into<SocketId>) -> Output {
    Output::Event(Event::Drain { id: id.into() })
}
pub(crate) fn error(id: impl Into<SocketId>, code: ErrorCode, message: &str) -> Output {
    Output::Event(Event::Error {
        id: id.into(),
        error: SocketError {
            code,
            message: message.to_owned().into(),
        },
    })
}
pub(crate) fn io_error(id: impl Into<SocketId>, kind: std::io::ErrorKind) -> Output {
    Output::Event(Event::Error {
        id: id.into(),
        error: SocketError::from_io(kind),
    })
}
pub(crate) fn text(id: TcpId, s: &str) -> Output {
    Output::Event(Event::Data {
        id,
        data: Data::Text(s.to_owned()),
    })
}
pub(crate) fn bytes(id: TcpId, b: &'static [u8]) -> Output {
    Output::Event(Event::Data {
        id,
        data: Data::Bytes(Bytes::from_static(b)),
    })
}
pub(crate) fn halfclose_event(id: TcpId) -> Output {
    Output::Event(Event::HalfClose { id })
}
pub(crate) fn write(id: TcpId, b: &'static [u8]) -> Output {
    Output::Action(Action::Write {
        id,
        data: Bytes::from_static(b),
    })
}
pub(crate) fn reading(id: impl Into<SocketId>, enabled: bool) -> Output {
    Output::Action(Action::SetReading {
        id: id.into(),
        enabled,
    })
}
pub(crate) fn shutdown(id: TcpId) -> Output {
    Output::Action(Action::Shutdown { id })
}
pub(crate) fn release(id: impl Into<SocketId>) -> Output {
    Output::Action(Action::Release { id: id.into() })
}
pub(crate) fn listen(id: ServerId, local: &str, backlog: u32, reuse_address: bool) -> Output {
    Output::Action(Action::Listen {
        id,
        local: addr(local),
        backlog,
        reuse_address,
    })
}
pub(crate) fn connect_event(server: ServerId, socket: TcpId) -> Output {
    Output::Event(Event::Connect { server, socket })
}
pub(crate) fn bind(id: UdpId, local: &str, reuse_address: bool, loopback: bool) -> Output {
    Output::Action(Action::Bind {
        id,
        local: addr(local),
        reuse_address,
        loopback,
    })
}
pub(crate) fn send_to(id: UdpId, b: &[u8], remote: &str) -> Output {
    Output::Action(Action::SendTo {
        id,
        data: Bytes::copy_from_slice(b),
        remote: addr(remote),
    })
}
pub(crate) fn message(id: UdpId, b: &[u8], remote: &str) -> Output {
    Output::Event(Event::Message {
        id,
        data: Bytes::copy_from_slice(b),
        remote: addr(remote),
    })
}
pub(crate) fn join(id: UdpId, group: &str) -> Output {
    Output::Action(Action::JoinMulticast {
        id,
        group: ip(group),
    })
}
pub(crate) fn leave(id: UdpId, group: &str) -> Output {
    Output::Action(Action::LeaveMulticast {
        id,
        group: ip(group),
    })
}
