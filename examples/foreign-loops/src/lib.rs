//! I/O layers for the [`sockstate`] core on foreign event loops, written to be copied:
//! [`mio_layer`] (a poll loop on mio, DNS on threads woken through a `Waker`); a tokio one
//! (one task owning the core, readiness through tokio's sockets) is to follow. They keep
//! the rules of the core's chapter "Writing an I/O layer" (`sockstate::io_layer`); the
//! comments name the rule where a line exists because of one.
//!
//! What they share is here: the [`Engine`] (a plain `Core`, or a `CheckedCore` that checks the
//! I/O contract after every step) and the few socket options mio and tokio cannot set
//! ([`os`]).

pub mod mio_layer;
pub mod os;

use std::net::SocketAddr;
use std::time::Instant;

use sockstate::sim::{Call, CheckedCore, Returned, Violation};
use sockstate::{Accepted, ApiError, Config, Core, Input, InputError, Output, ServerId};

/// The core a layer drives: plain, or checked against the I/O contract.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per loop, never moved in a hot path
pub enum Engine {
    /// A bare [`Core`].
    Plain(Core),
    /// A core whose every input and output is checked (`sockstate::sim::CheckedCore`).
    Checked(Box<CheckedCore>),
}

impl Engine {
    /// A new core, checked or not.
    pub fn new(config: Config, checked: bool) -> Engine {
        let core = Core::new(config);
        match checked {
            true => Engine::Checked(Box::new(CheckedCore::new(core))),
            false => Engine::Plain(core),
        }
    }

    /// An app call (the spec's methods), at the current time.
    pub fn call(&mut self, call: Call) -> Result<Returned, ApiError> {
        let now = Instant::now();
        match self {
            Engine::Plain(core) => call.apply(core, now),
            Engine::Checked(core) => core.call(now, &call),
        }
    }

    /// The core, for reading attributes.
    pub fn core(&self) -> &Core {
        match self {
            Engine::Plain(core) => core,
            Engine::Checked(core) => core.core(),
        }
    }

    /// What the checker found (always empty for a plain core).
    pub fn violations(&self) -> &[Violation] {
        match self {
            Engine::Plain(_) => &[],
            Engine::Checked(core) => core.violations(),
        }
    }

    /// [`Core::poll_output`].
    pub fn poll_output(&mut self) -> Output {
        match self {
            Engine::Plain(core) => core.poll_output(),
            Engine::Checked(core) => core.poll_output(),
        }
    }

    /// [`Core::handle_input`].
    pub fn handle_input(&mut self, now: Instant, input: Input) -> Result<(), InputError> {
        match self {
            Engine::Plain(core) => core.handle_input(now, input),
            Engine::Checked(core) => core.handle_input(now, input),
        }
    }

    /// [`Core::handle_accepted`].
    pub fn handle_accepted(
        &mut self,
        now: Instant,
        server: ServerId,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<Accepted, InputError> {
        match self {
            Engine::Plain(core) => core.handle_accepted(now, server, local, remote),
            Engine::Checked(core) => core.handle_accepted(now, server, local, remote),
        }
    }

    /// [`Core::handle_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        match self {
            Engine::Plain(core) => core.handle_timeout(now),
            Engine::Checked(core) => core.handle_timeout(now),
        }
    }
}
