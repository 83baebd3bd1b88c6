//! I/O layers for the [`sockstate`] core on foreign event loops, written to be copied:
//! [`mio_layer`] (a poll loop on mio, DNS on threads woken through a `Waker`) and
//! [`tokio_layer`] (one task owning the core, readiness through tokio's sockets, DNS on
//! tokio's blocking pool). They keep the rules of the core's chapter "Writing an I/O layer"
//! (`sockstate::io_layer`); the comments name the rule where a line exists because of one.
//!
//! What they share is here: the [`Loop`] (the drain rule, and feeding what the OS did to the
//! core) around a layer's [`Os`] (what it does with its sockets), the [`Engine`] (a plain
//! `Core`, or a `CheckedCore` that checks the I/O contract after every step), how a read or
//! a write becomes an input, and the few socket options mio and tokio cannot set ([`os`]).

pub mod mio_layer;
pub mod os;
pub mod tokio_layer;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::ControlFlow;
use std::time::Instant;

use bytes::BytesMut;
use sockstate::sim::{Call, CheckedCore, Returned, Violation};
use sockstate::{Accepted, Action, ApiError, Config, Core, Event, Input, InputError, Output};
use sockstate::{ResolveError, ServerId, SocketId, TcpId};

/// Bytes per stream read, and reads (or accepts, or datagrams) per socket per turn: one busy
/// socket cannot starve the others; one stopped by the bound is served again without a wait.
/// 64 KiB also holds any datagram whole.
pub const CHUNK: usize = 64 << 10;
/// See [`CHUNK`].
pub const PER_TURN: usize = 16;

/// What the OS did, for the core, in order.
#[derive(Debug)]
pub enum Report<S> {
    /// An input for the core.
    Input(Input),
    /// A connection accepted on a server (`S`: the layer's stream type), with its local and
    /// remote addresses.
    Accepted(ServerId, S, SocketAddr, SocketAddr),
}

/// A DNS lookup's answer, for `Input::Resolved`.
pub type Answer = (SocketId, Result<Vec<IpAddr>, ResolveError>);

/// What a layer does with its OS sockets; the [`Loop`] does the rest.
pub trait Os {
    /// The layer's TCP stream type.
    type Stream;
    /// Starts `action` on the OS. What it completes at once (a write the OS took, a failed
    /// bind) is reported at once: the loop feeds it before polling the next output.
    fn execute(&mut self, action: Action);
    /// What the OS did since the last call, in order.
    fn take_reports(&mut self) -> Vec<Report<Self::Stream>>;
    /// Adopts a connection the core accepted as `id` (before any of its actions).
    fn adopt(&mut self, id: TcpId, stream: Self::Stream);
}

/// A core and a layer's OS sockets: the part of every loop that is the same on any runtime.
pub struct Loop<O> {
    /// The core (checked or not); app calls go through [`Engine::call`].
    pub engine: Engine,
    /// The layer's sockets.
    pub os: O,
    /// Inputs the core refused: a bug of the layer. The tests assert it stays empty.
    pub input_errors: Vec<InputError>,
}

impl<O: Os> Loop<O> {
    /// A loop of `engine` on `os`.
    pub fn with(engine: Engine, os: O) -> Loop<O> {
        Loop {
            engine,
            os,
            input_errors: Vec::new(),
        }
    }

    /// The drain rule: polls the core until `Timeout`, carrying out every action and feeding
    /// its immediate result back at once, and handing events to `app`. `Break(true)`: `app`
    /// returned `true`; `Break(false)`: `end` has passed; else how long to wait for the OS:
    /// until the core's deadline (or `end`), then call [`Loop::woke`].
    pub fn turn(
        &mut self,
        end: Instant,
        app: &mut impl FnMut(&mut Engine, Event) -> bool,
    ) -> ControlFlow<bool, Instant> {
        let deadline = loop {
            match self.engine.poll_output() {
                Output::Action(action) => {
                    self.os.execute(action);
                    self.feed(Instant::now());
                }
                Output::Event(event) => {
                    if app(&mut self.engine, event) {
                        return ControlFlow::Break(true);
                    }
                }
                Output::Timeout(deadline) => break deadline,
            }
        };
        match Instant::now() >= end {
            true => ControlFlow::Break(false),
            false => ControlFlow::Continue(deadline.map_or(end, |d| d.min(end))),
        }
    }

    /// After a wait: what the OS did goes to the core, then its timers run (harmless early).
    pub fn woke(&mut self) {
        let now = Instant::now();
        self.feed(now);
        self.engine.handle_timeout(now);
    }

    /// Hands what the OS did to the core.
    fn feed(&mut self, now: Instant) {
        for report in self.os.take_reports() {
            let result = match report {
                Report::Input(input) => self.engine.handle_input(now, input),
                Report::Accepted(server, stream, local, remote) => {
                    match self.engine.handle_accepted(now, server, local, remote) {
                        // Adopted before any of its actions (its `SetReading` follows).
                        Ok(Accepted::Socket(id)) => {
                            self.os.adopt(id, stream);
                            Ok(())
                        }
                        Ok(_) => Ok(()), // refused (max_connections): dropped, so closed
                        Err(e) => Err(e),
                    }
                }
            };
            if let Err(e) = result {
                self.input_errors.push(e);
            }
        }
    }
}

/// What a stream read into `buf` did, as the core's input (the bytes split off `buf`, which
/// the core then owns). `Err` for `WouldBlock` (wait) and `EINTR` (read again): never
/// reported.
pub fn read_input(id: TcpId, result: io::Result<usize>, buf: &mut BytesMut) -> io::Result<Input> {
    match result {
        // The peer's FIN: never read again after it.
        Ok(0) => Ok(Input::Eof { id }),
        Ok(n) => {
            buf.truncate(n);
            let data = buf.split().freeze();
            Ok(Input::Received { id, data })
        }
        Err(e) if retry(&e) => Err(e),
        Err(e) => Ok(Input::Failed {
            id,
            error: e.kind(),
        }),
    }
}

/// What a write (`Write`, or one datagram of a `SendDatagrams`) did, as the core's input. `Err` for
/// `WouldBlock` (a 0-byte write counts as one: the core refuses `Written(0)`) and `EINTR`:
/// keep the write and try again (when writable, or at once).
pub fn write_input(id: SocketId, result: io::Result<usize>) -> io::Result<Input> {
    match (result, id) {
        (Err(e), _) if retry(&e) => Err(e),
        // A partial write is reported as such; the core re-issues the rest.
        (Ok(len), SocketId::TcpId(id)) if len > 0 => Ok(Input::Written { id, len }),
        (Ok(_), SocketId::TcpId(_)) => Err(io::ErrorKind::WouldBlock.into()),
        // One datagram per send: each answered on its own.
        (Ok(_), SocketId::UdpId(id)) => Ok(Input::Sent { id, count: 1 }),
        (Err(e), SocketId::TcpId(id)) => Ok(Input::Failed {
            id,
            error: e.kind(),
        }),
        (Err(e), SocketId::UdpId(id)) => Ok(Input::SendFailed {
            id,
            error: e.kind(),
        }),
        (_, id) => unreachable!("{id} does not write"),
    }
}

/// `WouldBlock` means "wait", `EINTR` "again": neither is reported.
fn retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

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
