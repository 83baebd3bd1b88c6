//! [`CheckedCore`]: a [`Core`] whose every call, input and output is checked against the
//! invariants of the behaviour contract ([BEHAVIOUR §0](crate::behaviour#0-everywhere), [§1](crate::behaviour#1-tcpsocket)), after every step.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use crate::call::{Call, Returned};
use crate::replay::{Encoder, PayloadLimit};
use crate::{
    Accepted, ApiError, BinaryType, Core, Input, InputError, Output, ReadyState, ServerId,
    SocketId, TcpId,
};

mod calls;
mod inputs;
mod server_udp;
mod tcp;
mod violation;

use self::server_udp::Other;
use self::tcp::Model;
pub use self::tcp::Outcome;
pub use self::violation::Violation;

/// Outputs each call, input or timer run may produce, amortized over the run (the drain bound).
const OUTPUT_BUDGET: i64 = 64;
/// Past this deficit `poll_output` is taken not to end: the checker reports it and stops.
const RUNAWAY: i64 = 1_000_000;

/// A [`Core`] that checks, after every step, the invariants the property tests and fuzz
/// targets assert ([BEHAVIOUR §0](crate::behaviour#0-everywhere), [§1](crate::behaviour#1-tcpsocket)):
///
/// - `bufferedAmount` equals the bytes sent and not yet reported written;
/// - `readyState` only moves forward (`connecting` → `open` → `halfclosed` → `closing` →
///   `closed`), and is `closed` when `Error` is delivered;
/// - exactly one `Release` and one `Close` per socket, `Close` last and nothing after it;
///   `Error` at most once and followed by `Close`;
/// - `Drain` only after a `send` returned `false`, once per arming, with nothing buffered;
/// - a refused call or input changes nothing (no attribute, no output, no deadline);
/// - at most one write in flight, each a prefix of the queued bytes, and FIN only after the
///   queue is flushed;
/// - draining `poll_output` ends within a bound (amortized: 64 outputs per step);
/// - received bytes reach the app in order, and text events concatenate to the lossy UTF-8
///   decoding of the bytes; no `Data` after `close()`.
/// - under TLS (`useSecureTransport`, a secure server, `upgradeToSecure`) the OS carries
///   ciphertext, so the two byte checks above stop (plaintext queued before `upgradeToSecure`
///   is still checked as it goes out, and none of it after the STARTTLS point); the rest holds,
///   with `bufferedAmount` dropping only on a `Written`, by no more plaintext than the
///   ciphertext written so far.
///
/// Use it in place of a `Core` with the same calls ([`call`](CheckedCore::call),
/// [`handle_input`](CheckedCore::handle_input), [`handle_timeout`](CheckedCore::handle_timeout),
/// [`poll_output`](CheckedCore::poll_output)), then read [`violations`](CheckedCore::violations).
///
/// ```
/// use std::time::Instant;
/// use sockstate::sim::{Call, CheckedCore, Returned};
/// use sockstate::{Config, Core, Output, TcpOptions};
///
/// let mut core = CheckedCore::new(Core::new(Config::default()));
/// let now = Instant::now();
/// let open = Call::TcpOpen { host: "127.0.0.1".into(), port: 7, options: TcpOptions::default() };
/// let Ok(Returned::Opened(id)) = core.call(now, &open) else { panic!() };
/// // A send before `open` is refused, and the checker verifies that it changed nothing.
/// assert!(core.call(now, &Call::TcpSend { id, data: "x".into() }).is_err());
/// while !matches!(core.poll_output(), Output::Timeout(_)) {}
/// assert_eq!(core.violations(), []);
/// ```
pub struct CheckedCore {
    core: Core,
    enabled: bool,
    models: BTreeMap<TcpId, Model>,
    others: BTreeMap<SocketId, Other>,
    violations: Vec<Violation>,
    /// Outputs taken from the core (and checked) but not yet handed out.
    pending: VecDeque<Output>,
    deadline: Option<Instant>,
    credit: i64,
    keep: usize,
    /// The recording of everything that reaches the core ([`record`](CheckedCore::record)).
    recorder: Option<Box<Encoder>>,
}

impl fmt::Debug for CheckedCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckedCore")
            .field("core", &self.core)
            .field("enabled", &self.enabled)
            .field("violations", &self.violations)
            .finish_non_exhaustive()
    }
}

impl CheckedCore {
    /// Wraps `core`, which must have no socket yet. Up to 1 MiB per direction and socket is
    /// kept for the stream checks (past that, only lengths are compared).
    pub fn new(core: Core) -> CheckedCore {
        let enabled = core.tcp_ids().next().is_none()
            && core.server_ids().next().is_none()
            && core.udp_ids().next().is_none();
        CheckedCore {
            core,
            enabled,
            models: BTreeMap::new(),
            others: BTreeMap::new(),
            violations: Vec::new(),
            pending: VecDeque::new(),
            deadline: None,
            credit: OUTPUT_BUDGET,
            recorder: None,
            keep: 1 << 20,
        }
    }

    /// The wrapped core, for reading attributes.
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// The wrapped core, for calls the checker does not see. Checking stops for good (the
    /// checker's model would no longer match), and outputs it had taken are still handed out
    /// first by [`poll_output`](CheckedCore::poll_output).
    pub fn core_mut(&mut self) -> &mut Core {
        self.enabled = false;
        &mut self.core
    }

    /// Whether checks are running.
    pub fn is_checking(&self) -> bool {
        self.enabled
    }

    /// Every broken invariant so far, in order.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Records, from now on, everything that reaches the core and a digest of what it does,
    /// for [`replay`](crate::replay) (times counted from `epoch`). A replay starts from a
    /// fresh core: call this before the first step.
    pub fn record(&mut self, epoch: Instant) {
        let encoder = Encoder::new(self.core.config(), PayloadLimit::Full, epoch);
        self.recorder = Some(Box::new(encoder));
    }

    /// The recording so far, ended, if [`record`](CheckedCore::record) was called.
    pub fn recording(&self) -> Option<Vec<u8>> {
        let encoder = self.recorder.as_deref()?;
        let mut bytes = encoder.bytes().to_vec();
        bytes.extend_from_slice(&crate::replay::end_record(true, encoder.steps()));
        Some(bytes)
    }

    fn apply(&mut self, now: Instant, call: &Call) -> Result<Returned, ApiError> {
        let Some(recorder) = &mut self.recorder else {
            return call.apply(&mut self.core, now);
        };
        recorder.call(now, call);
        let result = call.apply(&mut self.core, now);
        recorder.call_result(&result);
        result
    }

    fn input(&mut self, now: Instant, input: Input) -> Result<(), InputError> {
        let Some(recorder) = &mut self.recorder else {
            return self.core.handle_input(now, input);
        };
        recorder.input(now, &input);
        let result = self.core.handle_input(now, input);
        recorder.input_result(&result);
        result
    }

    fn accept(
        &mut self,
        now: Instant,
        server: ServerId,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<Accepted, InputError> {
        let result = self.core.handle_accepted(now, server, local, remote);
        if let Some(recorder) = &mut self.recorder {
            recorder.accepted(now, server, local, remote, &result);
        }
        result
    }

    fn poll(&mut self) -> Output {
        let out = self.core.poll_output();
        if let Some(recorder) = &mut self.recorder {
            recorder.polled(&out);
        }
        out
    }

    /// Runs `call`, checking its result and, if it was refused, that it changed nothing.
    pub fn call(&mut self, now: Instant, call: &Call) -> Result<Returned, ApiError> {
        if !self.enabled {
            return self.apply(now, call);
        }
        self.settle();
        let before = self.snapshot();
        self.credit += OUTPUT_BUDGET;
        let result = self.apply(now, call);
        match &result {
            Ok(returned) => self.called(call, *returned),
            Err(e) => {
                self.refused_call(call, e);
                self.unchanged(&before, || format!("{call} was refused ({e})"));
            }
        }
        result
    }

    /// [`Core::handle_input`], checking that a refused input changed nothing and that an
    /// accepted one made sense.
    pub fn handle_input(&mut self, now: Instant, input: Input) -> Result<(), InputError> {
        if !self.enabled {
            return self.input(now, input);
        }
        self.settle();
        let before = self.snapshot();
        self.credit += OUTPUT_BUDGET;
        let result = self.input(now, input.clone());
        match &result {
            Ok(()) => self.accepted(&input),
            Err(e) => self.unchanged(&before, || format!("{input:?} was refused ({e})")),
        }
        result
    }

    /// [`Core::handle_accepted`]; an accepted socket is checked from here on, as open.
    pub fn handle_accepted(
        &mut self,
        now: Instant,
        server: ServerId,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<Accepted, InputError> {
        if !self.enabled {
            return self.accept(now, server, local, remote);
        }
        self.settle();
        let before = self.snapshot();
        self.credit += OUTPUT_BUDGET;
        let result = self.accept(now, server, local, remote);
        match &result {
            Ok(Accepted::Socket(id)) => {
                let binary = self
                    .core
                    .server(server)
                    .map_or(BinaryType::String, |s| s.binary_type());
                let mut m = Model::new(binary, false);
                m.opened = true;
                m.state = ReadyState::Open;
                if self.models.insert(*id, m).is_some() {
                    self.violate(*id, "an accepted socket got an id already issued".into());
                }
                self.note_tls(*id);
            }
            Ok(Accepted::Refused) => {}
            Err(e) => self.unchanged(&before, || {
                format!("an accepted connection was refused ({e})")
            }),
        }
        result
    }

    /// [`Core::handle_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.enabled {
            self.settle();
            self.credit += OUTPUT_BUDGET;
        }
        if let Some(recorder) = &mut self.recorder {
            recorder.timeout(now);
        }
        self.core.handle_timeout(now);
    }

    /// [`Core::poll_output`], checking each output as it comes out of the core and the
    /// attributes of every socket whenever the queue is drained.
    pub fn poll_output(&mut self) -> Output {
        if let Some(out) = self.pending.pop_front() {
            return out;
        }
        if !self.enabled {
            return self.poll();
        }
        self.pull()
    }

    /// How a socket ended (or stands), if the checker saw it opened.
    pub fn outcome(&self, id: TcpId) -> Option<Outcome> {
        self.models.get(&id).map(|m| Outcome {
            closed: m.closed,
            error: m.error.clone(),
            closed_by_app: m.closed_by_app,
            opened: m.opened,
            end_of_stream: m.eof,
        })
    }

    /// Every byte `send` accepted on `id`, in order (`None` past 1 MiB or for an unknown id).
    pub fn sent_bytes(&self, id: TcpId) -> Option<&[u8]> {
        self.models.get(&id).and_then(|m| m.sent.known())
    }

    /// Every byte the I/O layer delivered to `id` with an accepted `Received` input.
    pub fn received_bytes(&self, id: TcpId) -> Option<&[u8]> {
        self.models.get(&id).and_then(|m| m.fed.known())
    }

    /// Adds a violation for every socket whose `Close` has not been delivered.
    pub fn check_all_closed(&mut self) {
        let open: Vec<TcpId> = self
            .models
            .iter()
            .filter(|(_, m)| !m.closed)
            .map(|(id, _)| *id)
            .collect();
        for id in open {
            self.violate(id, "no Close was delivered by the end of the run".into());
        }
        let open: Vec<SocketId> = (self.others.iter())
            .filter(|(_, o)| !o.closed)
            .map(|(id, _)| *id)
            .collect();
        for id in open {
            self.violate(id, "no Close was delivered by the end of the run".into());
        }
    }

    // ---- internals --------------------------------------------------------------------------

    fn violate(&mut self, id: impl Into<SocketId>, what: String) {
        self.violations.push(Violation {
            socket: Some(id.into()),
            what,
        });
    }

    /// Takes one output from the core and checks it.
    fn pull(&mut self) -> Output {
        if self.credit < -RUNAWAY {
            self.enabled = false;
            self.violations.push(Violation {
                socket: None,
                what: "poll_output does not end: checking stopped".into(),
            });
            return Output::Timeout(self.deadline);
        }
        let out = self.poll();
        match &out {
            Output::Timeout(at) => {
                self.deadline = *at;
                self.observe_all();
            }
            Output::Action(a) => {
                self.credit -= 1;
                self.action(a);
            }
            Output::Event(e) => {
                self.credit -= 1;
                self.event(e);
            }
        }
        if self.credit == -1 {
            self.violations.push(Violation {
                socket: None,
                what: format!(
                    "poll_output produced more than {OUTPUT_BUDGET} outputs per step on average"
                ),
            });
        }
        out
    }

    /// Moves whatever the core has queued into `pending` (checked), so that the core is drained.
    fn settle(&mut self) {
        loop {
            match self.pull() {
                Output::Timeout(_) => return,
                out => self.pending.push_back(out),
            }
            if !self.enabled {
                return;
            }
        }
    }

    /// Every socket's observable attributes.
    fn snapshot(&self) -> Vec<(SocketId, String)> {
        let c = &self.core;
        let tcp = c.tcp_ids().filter_map(|id| {
            let s = c.tcp(id)?;
            let attrs = format!(
                "{:?} buffered {} suspended {} {:?} {:?} {:?} ssl {}",
                s.ready_state(),
                s.buffered_amount(),
                s.suspend_count(),
                s.local_address(),
                s.remote_address(),
                s.binary_type(),
                s.ssl()
            );
            Some((SocketId::from(id), attrs))
        });
        let servers = c.server_ids().filter_map(|id| {
            let s = c.server(id)?;
            let attrs = format!(
                "{:?} suspended {} {:?} connections {}",
                s.ready_state(),
                s.suspend_count(),
                s.local_address(),
                s.connection_count()
            );
            Some((SocketId::from(id), attrs))
        });
        let udp = c.udp_ids().filter_map(|id| {
            let s = c.udp(id)?;
            let attrs = format!(
                "{:?} buffered {} suspended {} {:?} {:?} groups {:?}",
                s.ready_state(),
                s.buffered_amount(),
                s.suspend_count(),
                s.local_address(),
                s.remote_address(),
                s.multicast_groups()
            );
            Some((SocketId::from(id), attrs))
        });
        tcp.chain(servers).chain(udp).collect()
    }

    fn unchanged(&mut self, before: &[(SocketId, String)], what: impl Fn() -> String) {
        let after = self.snapshot();
        if after != before {
            self.violations.push(Violation {
                socket: None,
                what: format!(
                    "{} but changed the sockets: {before:?} -> {after:?}",
                    what()
                ),
            });
        }
        let deadline = self.deadline;
        match self.pull() {
            Output::Timeout(at) if at == deadline => {}
            Output::Timeout(at) => self.violations.push(Violation {
                socket: None,
                what: format!("{} but moved the deadline {deadline:?} -> {at:?}", what()),
            }),
            out => {
                self.violations.push(Violation {
                    socket: None,
                    what: format!("{} but produced {out:?}", what()),
                });
                self.pending.push_back(out);
            }
        }
    }

    /// Starts the TLS model of `id` once the core says `ssl`.
    fn note_tls(&mut self, id: TcpId) {
        let ssl = self.core.tcp(id).is_some_and(|s| s.ssl());
        if let Some(m) = self.models.get_mut(&id).filter(|m| ssl && !m.tls) {
            m.start_tls();
        }
    }

    fn model(&mut self, id: TcpId) -> Option<&mut Model> {
        self.models.get_mut(&id).filter(|m| !m.closed)
    }

    /// After every drained step: states only move forward, `bufferedAmount` and the suspend
    /// count match the model, and only sockets whose `Close` was delivered are gone.
    fn observe_all(&mut self) {
        let mut problems = Vec::new();
        for (id, m) in self.models.iter_mut().filter(|(_, m)| !m.closed) {
            let Some(s) = self.core.tcp(*id) else {
                problems.push((*id, "the socket vanished without a Close".to_string()));
                continue;
            };
            let state = s.ready_state();
            if rank(state) < rank(m.state) {
                problems.push((*id, format!("readyState went {:?} -> {state:?}", m.state)));
            }
            m.state = state;
            if s.buffered_amount() != m.queued {
                problems.push((
                    *id,
                    format!(
                        "bufferedAmount {} but {} bytes are queued",
                        s.buffered_amount(),
                        m.queued
                    ),
                ));
            }
            if s.suspend_count() != m.suspended {
                problems.push((
                    *id,
                    format!(
                        "suspend count {} expected {}",
                        s.suspend_count(),
                        m.suspended
                    ),
                ));
            }
        }
        let ids: Vec<SocketId> = self
            .others
            .iter()
            .filter(|(_, o)| !o.closed)
            .map(|(id, _)| *id)
            .collect();
        let mut others = Vec::new();
        for id in ids {
            let attrs = self.other_attrs(id);
            let Some(o) = self.others.get_mut(&id) else {
                continue;
            };
            let Some((state, buffered, suspended)) = attrs else {
                others.push((id, "the socket vanished without a Close".to_string()));
                continue;
            };
            if rank(state) < rank(o.state) {
                others.push((id, format!("readyState went {:?} -> {state:?}", o.state)));
            }
            o.state = state;
            if buffered.is_some_and(|b| b != o.queued) {
                others.push((
                    id,
                    format!("bufferedAmount {buffered:?}, {} queued", o.queued),
                ));
            }
            if suspended != o.suspended {
                others.push((
                    id,
                    format!("suspend count {suspended} expected {}", o.suspended),
                ));
            }
        }
        for (id, p) in problems {
            self.violate(id, p);
        }
        for (id, p) in others {
            self.violate(id, p);
        }
    }
}

fn rank(state: ReadyState) -> u8 {
    match state {
        ReadyState::Connecting | ReadyState::Opening => 0,
        ReadyState::Open => 1,
        ReadyState::HalfClosed => 2,
        ReadyState::Closing => 3,
        ReadyState::Closed => 4,
    }
}

#[cfg(test)]
mod tests;
