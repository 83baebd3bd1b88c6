//! [`CheckedCore`]: a [`Core`] whose every call, input and output is checked against the
//! invariants of the behaviour contract ([BEHAVIOUR §0](crate::behaviour#0-everywhere), [§1](crate::behaviour#1-tcpsocket)), after every step.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use crate::call::{Call, Returned};
use crate::replay::{Encoder, PayloadLimit};
use crate::{
    Accepted, Action, ApiError, BinaryType, Core, Data, DomException, Event, Input, InputError,
    Output, ReadyState, ServerId, SocketError, SocketId, TcpId,
};

/// Outputs each call, input or timer run may produce, amortized over the run (the drain bound).
const OUTPUT_BUDGET: i64 = 64;
/// Past this deficit `poll_output` is taken not to end: the checker reports it and stops.
const RUNAWAY: i64 = 1_000_000;
/// Received bytes up to which the text check runs at every `Data` event (always at the end).
const PREFIX_CHECK_MAX: usize = 64 << 10;

/// A broken invariant: which socket (if one) and what happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The socket concerned, if any.
    pub socket: Option<SocketId>,
    /// What was wrong.
    pub what: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.socket {
            Some(id) => write!(f, "{id}: {}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

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
struct Stream {
    bytes: Vec<u8>,
    total: u64,
    overflow: bool,
}

impl Stream {
    fn push(&mut self, data: &[u8], cap: usize) {
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

    fn known(&self) -> Option<&[u8]> {
        (!self.overflow).then_some(&self.bytes[..])
    }
}

/// What the checker knows of one TCP socket.
#[derive(Debug)]
struct Model {
    state: ReadyState,
    binary: BinaryType,
    allow_half_open: bool,
    suspended: u32,
    /// Sent and not yet taken by the OS: `bufferedAmount`.
    queue: VecDeque<Bytes>,
    queued: usize,
    in_flight: Option<usize>,
    armed: bool,
    opened: bool,
    released: bool,
    shutdown: bool,
    halfclose_event: bool,
    error: Option<SocketError>,
    closed: bool,
    closed_by_app: bool,
    /// An `Eof` or `Failed` input was accepted: the decoder must have been flushed at the end.
    stream_end: bool,
    eof: bool,
    sent: Stream,
    fed: Stream,
    got: Stream,
    /// TLS (`ssl`, from `useSecureTransport`, a secure server or `upgradeToSecure`): what the
    /// OS carries from then on is ciphertext (see [`Model::start_tls`]).
    tls: bool,
    /// Bytes queued before `upgradeToSecure` and still to be written as plaintext.
    plain_before: usize,
    /// Under TLS: ciphertext bytes the OS took, and the plaintext bytes that released from
    /// `bufferedAmount` (never more: a record is longer than what it carries).
    cipher_written: u64,
    plain_released: u64,
}

impl Model {
    fn new(binary: BinaryType, allow_half_open: bool) -> Model {
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
    fn start_tls(&mut self) {
        self.tls = true;
        self.plain_before = self.queued;
        for stream in [&mut self.fed, &mut self.got] {
            stream.overflow = true;
            stream.bytes = Vec::new();
        }
    }

    /// Whether the next write is ciphertext.
    fn writes_ciphertext(&self) -> bool {
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

    fn take_written(&mut self, mut n: usize) {
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

/// What the checker knows of a server or UDP socket.
#[derive(Debug)]
struct Other {
    state: ReadyState,
    suspended: u32,
    /// UDP: datagrams sent and not yet reported sent (or failed).
    queue: VecDeque<Bytes>,
    queued: usize,
    /// UDP: how many at the front of `queue` were handed out as `SendTo` and not answered.
    in_flight: usize,
    armed: bool,
    opened: bool,
    released: bool,
    closed: bool,
    closed_by_app: bool,
}

impl Other {
    fn new() -> Other {
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

    fn other(&mut self, id: SocketId) -> Option<&mut Other> {
        self.others.get_mut(&id).filter(|o| !o.closed)
    }

    fn open_other(&mut self, id: SocketId) {
        if self.others.insert(id, Other::new()).is_some() {
            self.violate(id, "open returned an id already issued".into());
        }
    }

    fn app_closed(&mut self, id: SocketId) {
        if let Some(o) = self.other(id) {
            o.closed_by_app = true;
        }
    }

    fn suspended(&mut self, id: SocketId, suspend: bool) {
        let Some(o) = self.other(id) else { return };
        if suspend {
            o.suspended += 1;
        } else if o.suspended == 0 {
            self.violate(id, "resume succeeded without a suspend".into());
        } else {
            o.suspended -= 1;
        }
    }

    fn called(&mut self, call: &Call, returned: Returned) {
        let hwm = self.core.config().high_water_mark;
        let limit = self.core.config().send_buffer_limit;
        let keep = self.keep;
        match (call, returned) {
            (Call::TcpOpen { options, .. }, Returned::Opened(id)) => {
                if self.models.contains_key(&id) {
                    self.violate(id, "open returned an id already issued".into());
                    return;
                }
                self.models
                    .insert(id, Model::new(options.binary_type, options.allow_half_open));
                self.note_tls(id);
            }
            (Call::TcpSend { id, data }, Returned::Sent(below)) => {
                let Some(m) = self.model(*id) else {
                    return self.violate(*id, "send succeeded on a dead id".into());
                };
                let state = m.state;
                m.queued += data.len();
                let queued = m.queued;
                if !data.is_empty() {
                    m.queue.push_back(data.clone());
                }
                m.sent.push(data, keep);
                if !below {
                    m.armed = true;
                }
                if state != ReadyState::Open {
                    self.violate(*id, format!("send succeeded in state {state:?}"));
                }
                if below != (queued <= hwm) {
                    self.violate(
                        *id,
                        format!("send returned {below} with {queued} bytes buffered (mark {hwm})"),
                    );
                }
                if queued > limit {
                    self.violate(
                        *id,
                        format!("{queued} bytes buffered, above the cap {limit}"),
                    );
                }
            }
            (Call::TcpClose { id } | Call::TcpCloseImmediately { id }, _) => {
                if let Some(m) = self.model(*id) {
                    m.closed_by_app = true;
                }
            }
            (Call::TcpSuspend { id }, _) => {
                if let Some(m) = self.model(*id) {
                    m.suspended += 1;
                }
            }
            (Call::TcpResume { id }, _) => {
                let Some(m) = self.model(*id) else { return };
                if m.suspended == 0 {
                    self.violate(*id, "resume succeeded without a suspend".into());
                } else {
                    m.suspended -= 1;
                }
            }
            (Call::TcpUpgradeToSecure { id }, _) => self.note_tls(*id),
            (Call::TcpHalfclose { .. }, _) => {}
            (Call::ServerListen { .. }, Returned::Listening(id)) => {
                self.open_other(id.into());
            }
            (Call::UdpOpen { .. }, Returned::Bound(id)) => self.open_other(id.into()),
            (Call::UdpSend { id, data, .. }, Returned::Sent(below)) => {
                let Some(o) = self.other(SocketId::from(*id)) else {
                    return self.violate(*id, "send succeeded on a dead id".into());
                };
                let state = o.state;
                o.queued += data.len();
                o.queue.push_back(data.clone());
                o.armed |= !below;
                let queued = o.queued;
                if state != ReadyState::Open {
                    self.violate(*id, format!("send succeeded in state {state:?}"));
                }
                if below != (queued <= hwm) {
                    self.violate(
                        *id,
                        format!("send returned {below} with {queued} bytes buffered (mark {hwm})"),
                    );
                }
            }
            (Call::ServerClose { id }, _) => self.app_closed((*id).into()),
            (Call::UdpClose { id }, _) => self.app_closed((*id).into()),
            (Call::ServerSuspend { id }, _) => self.suspended((*id).into(), true),
            (Call::UdpSuspend { id }, _) => self.suspended((*id).into(), true),
            (Call::ServerResume { id }, _) => self.suspended((*id).into(), false),
            (Call::UdpResume { id }, _) => self.suspended((*id).into(), false),
            (Call::UdpJoin { .. } | Call::UdpLeave { .. }, _) => {}
            (call, returned) => self.violations.push(Violation {
                socket: call.socket(),
                what: format!("{call} returned {returned:?}"),
            }),
        }
    }

    /// A refused call must be refused for a reason the model agrees with.
    fn refused_call(&mut self, call: &Call, e: &ApiError) {
        let limit = self.core.config().send_buffer_limit;
        match call {
            Call::TcpSend { id, data } => {
                let Some(m) = self.model(*id) else { return };
                let (state, queued) = (m.state, m.queued);
                let quota = queued.saturating_add(data.len()) > limit;
                let expected = match state {
                    ReadyState::Open if quota => DomException::QuotaExceededError,
                    ReadyState::Open => {
                        return self.violate(*id, format!("send refused while open: {e}"))
                    }
                    _ => DomException::InvalidStateError,
                };
                if e.exception() != expected {
                    self.violate(*id, format!("send refused in {state:?} with {e}"));
                }
            }
            Call::TcpResume { id } if self.model(*id).is_some_and(|m| m.suspended > 0) => {
                self.violate(*id, format!("resume refused while suspended: {e}"));
            }
            Call::TcpClose { id }
            | Call::TcpCloseImmediately { id }
            | Call::TcpHalfclose { id }
            | Call::TcpSuspend { id }
                if self.model(*id).is_some() =>
            {
                self.violate(*id, format!("{call} refused on a live socket: {e}"));
            }
            Call::ServerResume { id }
                if self.other((*id).into()).is_some_and(|o| o.suspended > 0) =>
            {
                self.violate(*id, format!("resume refused while suspended: {e}"));
            }
            Call::UdpResume { id } if self.other((*id).into()).is_some_and(|o| o.suspended > 0) => {
                self.violate(*id, format!("resume refused while suspended: {e}"));
            }
            Call::ServerSuspend { id } | Call::ServerClose { id }
                if self.other((*id).into()).is_some() =>
            {
                self.violate(*id, format!("{call} refused on a live server: {e}"));
            }
            _ => {}
        }
    }

    fn accepted(&mut self, input: &Input) {
        if let Input::Sent { id } | Input::SendFailed { id, .. } = input {
            let Some(o) = self.other((*id).into()) else {
                return self.violate(*id, "a send result accepted for a dead id".into());
            };
            let was = o.in_flight;
            o.in_flight = was.saturating_sub(1);
            if let Some(front) = o.queue.pop_front() {
                o.queued -= front.len();
            }
            if was == 0 {
                self.violate(
                    *id,
                    "a send result accepted with no datagram in flight".into(),
                );
            }
            return;
        }
        let keep = self.keep;
        let (id, problem) = match input {
            Input::Written { id, len } => {
                let buffered = self.core.tcp(*id).map(|s| s.buffered_amount());
                let Some(m) = self.model(*id) else {
                    return self.violate(*id, "Written accepted for a dead id".into());
                };
                let mut problem = match m.in_flight.take() {
                    Some(w) if *len <= w && *len > 0 => None,
                    Some(w) => Some(format!("Written({len}) accepted for a write of {w}")),
                    None => Some(format!("Written({len}) accepted with no write in flight")),
                };
                if m.writes_ciphertext() {
                    // Ciphertext: the plaintext it releases is what `bufferedAmount` lost.
                    let now = buffered.unwrap_or(m.queued);
                    if now > m.queued {
                        problem.get_or_insert(format!(
                            "bufferedAmount grew from {} to {now} on a Written",
                            m.queued
                        ));
                    }
                    let released = m.queued.saturating_sub(now);
                    m.cipher_written += *len as u64;
                    m.plain_released += released as u64;
                    if m.plain_released > m.cipher_written {
                        problem.get_or_insert(format!(
                            "{} plaintext bytes released by {} bytes of ciphertext",
                            m.plain_released, m.cipher_written
                        ));
                    }
                    m.take_written(released);
                } else {
                    m.plain_before = m.plain_before.saturating_sub(*len);
                    m.take_written(*len);
                }
                (*id, problem)
            }
            Input::Received { id, data } => {
                let Some(m) = self.model(*id) else {
                    return self.violate(*id, "Received accepted for a dead id".into());
                };
                let problem = match m.state {
                    // Under TLS: the handshake.
                    ReadyState::Connecting if !m.tls => {
                        Some("data accepted before open".to_string())
                    }
                    _ if m.eof => Some("data accepted after the end of stream".into()),
                    _ => None,
                };
                if !m.closed_by_app {
                    m.fed.push(data, keep);
                }
                (*id, problem)
            }
            Input::Eof { id } | Input::Failed { id, .. } => {
                let Some(m) = self.model(*id) else {
                    return self.violate(*id, "end of stream accepted for a dead id".into());
                };
                let eof = matches!(input, Input::Eof { .. });
                // A failure after the peer's FIN is real (a reset while closing); a second
                // FIN is not.
                let problem = match (m.state, m.eof && eof) {
                    (ReadyState::Connecting, _) if !m.tls => {
                        Some("end of stream accepted before open")
                    }
                    (_, true) => Some("a second end of stream accepted"),
                    _ => None,
                };
                m.stream_end = true;
                m.eof |= eof;
                (*id, problem.map(str::to_owned))
            }
            Input::Resolved {
                id: SocketId::TcpId(id),
                ..
            }
            | Input::Connected { id, .. }
            | Input::ConnectFailed { id, .. } => {
                let Some(m) = self.model(*id) else {
                    return self.violate(*id, "connect input accepted for a dead id".into());
                };
                let problem = (m.state != ReadyState::Connecting)
                    .then(|| format!("{input:?} accepted in state {:?}", m.state));
                (*id, problem)
            }
            _ => return,
        };
        if let Some(problem) = problem {
            self.violate(id, problem);
        }
    }

    fn action(&mut self, action: &Action) {
        let other = match action {
            Action::Listen { id, .. } => Some(SocketId::from(*id)),
            Action::Resolve {
                id: id @ SocketId::UdpId(_),
                ..
            } => Some(*id),
            Action::Bind { id, .. }
            | Action::SendTo { id, .. }
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

    fn other_action(&mut self, id: SocketId, action: &Action) {
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
                Action::SendTo { data, .. } => {
                    // In flight: the first `in_flight` queued, handed out in queue order.
                    let problem = if o.in_flight >= limit {
                        Some(format!("a datagram while {limit} are in flight, the limit"))
                    } else if o.queue.get(o.in_flight) != Some(data) {
                        Some("a datagram that is not the next one queued".into())
                    } else {
                        None
                    };
                    o.in_flight += 1;
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

    fn other_event(&mut self, id: SocketId, event: &Event) {
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
    fn other_attrs(&self, id: SocketId) -> Option<(ReadyState, Option<usize>, u32)> {
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

    fn event(&mut self, event: &Event) {
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Instant;

    use bytes::Bytes;

    use super::CheckedCore;
    use crate::sim::{Call, Returned};
    use crate::testkit::tls::{server_config, Ca, Peer};
    use crate::{Action, BinaryType, Config, Core, Event, Input, Output, TcpId, TcpOptions};

    /// A TLS client and a rustls server joined by hand: every write taken in two parts (a
    /// partial write first), the server echoing what it decrypts. `plain` counts the bytes
    /// that go to the server in plaintext before its TLS starts (STARTTLS).
    struct Link {
        core: CheckedCore,
        peer: Peer,
        id: TcpId,
        now: Instant,
        plain: usize,
        prelude: Vec<u8>,
        events: Vec<Event>,
    }

    impl Link {
        fn open(secure: bool) -> Link {
            let ca = Ca::new("test CA");
            let peer = Peer::server(server_config(ca.leaf(&["localhost"], 2035)));
            let mut core = CheckedCore::new(Core::new(Config::default()));
            #[allow(clippy::disallowed_methods)] // the one real reading; only offsets matter
            let now = Instant::now();
            let options = TcpOptions {
                use_secure_transport: secure,
                tls_config: Some(ca.client_config()),
                binary_type: BinaryType::ArrayBuffer,
                ..TcpOptions::default()
            };
            let call = Call::TcpOpen {
                host: "localhost".into(),
                port: 443,
                options,
            };
            let Ok(Returned::Opened(id)) = core.call(now, &call) else {
                panic!()
            };
            let mut link = Link {
                core,
                peer,
                id,
                now,
                plain: 0,
                prelude: Vec::new(),
                events: Vec::new(),
            };
            link.pump();
            assert!(link.events.contains(&Event::Open { id: id.into() }));
            link
        }

        fn call(&mut self, call: Call) -> Returned {
            self.core.call(self.now, &call).unwrap()
        }

        /// Carries out the core's actions until nothing moves.
        fn pump(&mut self) {
            let id = self.id;
            let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
            loop {
                let mut inputs = Vec::new();
                loop {
                    match self.core.poll_output() {
                        Output::Timeout(_) => break,
                        Output::Event(e) => self.events.push(e),
                        Output::Action(Action::Resolve { .. }) => inputs.push(Input::Resolved {
                            id: id.into(),
                            result: Ok(vec![local.ip()]),
                        }),
                        Output::Action(Action::Connect { attempt, .. }) => {
                            inputs.push(Input::Connected { id, attempt, local })
                        }
                        Output::Action(Action::Write { data, .. }) => {
                            let len = data.len().div_ceil(2);
                            let (plain, tls) = data[..len].split_at(self.plain.min(len));
                            self.plain -= plain.len();
                            self.prelude.extend_from_slice(plain);
                            self.peer.feed(tls).unwrap();
                            inputs.push(Input::Written { id, len });
                        }
                        Output::Action(Action::Shutdown { .. }) => inputs.push(Input::Eof { id }),
                        Output::Action(Action::QueryUnacked { .. }) => {
                            inputs.push(Input::Unacked { id, bytes: Some(0) })
                        }
                        Output::Action(_) => {}
                    }
                }
                let echo = std::mem::take(&mut self.peer.plain);
                if !echo.is_empty() {
                    self.peer.send(&echo);
                }
                let ciphertext = self.peer.take();
                if !ciphertext.is_empty() && self.core.core().tcp(id).is_some() {
                    inputs.push(Input::Received {
                        id,
                        data: ciphertext.into(),
                    });
                }
                if inputs.is_empty() {
                    return;
                }
                for input in inputs {
                    self.core.handle_input(self.now, input).unwrap();
                }
            }
        }

        fn got(&self) -> Vec<u8> {
            let data = self.events.iter().filter_map(|e| match e {
                Event::Data { data, .. } => Some(data.as_bytes()),
                _ => None,
            });
            data.flatten().copied().collect()
        }
    }

    #[test]
    fn a_tls_run_has_no_violation() {
        let mut link = Link::open(true);
        let id = link.id;
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        // Above the high-water mark: `Drain` armed, and fired only once every record is out.
        let sent = link.call(Call::TcpSend {
            id,
            data: data.clone().into(),
        });
        assert_eq!(sent, Returned::Sent(false));
        link.pump();
        assert_eq!(link.got(), data);
        assert!(link.events.contains(&Event::Drain { id: id.into() }));
        link.call(Call::TcpClose { id });
        link.pump();
        assert_eq!(link.events.last(), Some(&Event::Close { id: id.into() }));
        assert_eq!(link.core.violations(), []);
    }

    #[test]
    fn a_starttls_run_has_no_violation() {
        let mut link = Link::open(false);
        let id = link.id;
        link.plain = 6;
        link.call(Call::TcpSend {
            id,
            data: "HELLO\n".into(),
        });
        link.call(Call::TcpUpgradeToSecure { id });
        link.call(Call::TcpSend {
            id,
            data: "secret".into(),
        });
        link.pump();
        assert_eq!(link.prelude, b"HELLO\n");
        assert_eq!(link.peer.plain, b"");
        assert_eq!(&link.got()[..], b"secret");
        assert_eq!(link.core.violations(), []);
    }

    #[test]
    fn a_violation_on_a_tls_socket_is_still_caught() {
        let mut link = Link::open(true);
        let id = link.id;
        let write = Action::Write {
            id,
            data: Bytes::from_static(b"0123456789"),
        };
        link.core.action(&write);
        link.core.action(&write);
        link.core.accepted(&Input::Written { id, len: 11 });
        let found: Vec<_> = (link.core.violations().iter())
            .map(|v| v.what.as_str())
            .collect();
        assert_eq!(
            found,
            [
                "a second write while one is in flight",
                "Written(11) accepted for a write of 10"
            ]
        );
    }
}
