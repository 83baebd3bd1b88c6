//! Test helpers shared by the unit tests of every state machine: a core on a virtual clock,
//! transcripts of whole outputs, and short constructors for the outputs tests expect.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::{Action, Config, Core, Data, ErrorCode, Event, Input, InputError, Output, SocketId};
use crate::{SocketError, TcpId};

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
