//! Recording and deterministic replay of a core's session.
//!
//! Everything that ever reaches a [`Core`] is an app call, an [`Input`] (or an accepted
//! connection) or a clock reading, and everything it does is an [`Output`] returned by
//! [`Core::poll_output`]. An I/O layer that writes those down with an [`Encoder`] (the driver
//! does, when its config asks it to; so does the simulator, for a host, with the feature
//! `sim`: `Sim::record_host`) makes a recording; [`Replay`] feeds the recording to a
//! fresh core, without any I/O, and yields the same events in the same order. Whenever the core
//! now does something other than what the recording says it did (a regression, or a recording
//! of another build), the replay stops with [`ReplayError::Diverged`], naming the first step
//! that differs.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use sockstate::replay::{Encoder, PayloadLimit, Replay};
//! use sockstate::{Call, Config, Core, Event, Input, Output, UdpOptions};
//!
//! // A session: open a UDP socket, the OS binds it, a datagram arrives.
//! let t0 = Instant::now();
//! let mut core = Core::new(Config::default());
//! let mut rec = Encoder::new(core.config(), PayloadLimit::Full, t0);
//! let mut poll = |core: &mut Core, rec: &mut Encoder| loop {
//!     let out = core.poll_output();
//!     rec.polled(&out);
//!     if let Output::Timeout(_) = out { break; }
//! };
//! let open = Call::UdpOpen { options: UdpOptions::default() };
//! rec.call(t0, &open);
//! let result = open.apply(&mut core, t0);
//! rec.call_result(&result);
//! poll(&mut core, &mut rec);
//! let Ok(sockstate::Returned::Bound(id)) = result else { panic!() };
//! let t1 = t0 + Duration::from_millis(3);
//! for input in [
//!     Input::Bound { id, local: "0.0.0.0:4000".parse().unwrap() },
//!     Input::Datagram { id, data: "hi".into(), remote: "127.0.0.1:9".parse().unwrap() },
//! ] {
//!     rec.input(t1, &input);
//!     let result = core.handle_input(t1, input);
//!     rec.input_result(&result);
//!     poll(&mut core, &mut rec);
//! }
//! rec.end(true);
//! let file = rec.take();
//!
//! // Later, elsewhere: the same events, in the same order.
//! let mut replay = Replay::new(file, Instant::now()).unwrap();
//! let mut events = Vec::new();
//! while let Some(event) = replay.next_event().unwrap() {
//!     events.push(event);
//! }
//! assert!(matches!(events[..], [Event::Open { .. }, Event::Message { .. }]));
//! assert!(replay.summary().complete());
//! ```
//!
//! # The file format (version 3)
//!
//! All integers marked *varint* are unsigned LEB128 (7 bits per byte, least significant group
//! first, at most 10 bytes); *zigzag* varints map signed `n` to `(n << 1) ^ (n >> 63)`. Fixed
//! integers are little-endian.
//!
//! **Header.** `"SOCKREC\0"` (8 bytes); version (`u16`, 3; version 2 is read too and replays
//! up to its first UDP send, where it fails with [`FormatError::UnsupportedVersion`]: it
//! recorded one `Action::SendTo` per datagram, which the core batches since version 3;
//! version 1, from before UDP host names, is not read); flags (`u16`, 0); payload mode (`u8`: 0 full payloads, 1 the first N
//! bytes of each, followed by N as a varint); the core's [`Config`] as varints in field order (`high_water_mark`, `send_buffer_limit`,
//! `connect_timeout`, `connection_attempt_delay`, `close_timeout`, `linger_timeout`,
//! `unacked_poll_interval` as nanoseconds, `max_held_bytes`, `max_queued_datagrams`,
//! `max_datagrams_in_flight`).
//!
//! **Records**, each a tag byte and its fields, until the end of the file:
//!
//! | tag | record | fields |
//! |---|---|---|
//! | `0x01` | app call | time, call, result |
//! | `0x02` | input | time, input, result |
//! | `0x03` | accepted connection | time, server id, local address, remote address, result |
//! | `0x04` | `handle_timeout(now)` | time |
//! | `0x05` | end | `u8` (0 complete, 1 the recorder stopped early), the number of records before it (varint; 0: unknown); the last record |
//! | `0x06` | TLS draw ([`TlsDraws`]) | kind `u8`, then: 0 random bytes; 1 key share (group `u16`, public key); 2 shared secret (peer's key share, secret); 3 signature; 4 time (option of seconds since 1970, varint); 5 the classical component of a hybrid key share (group `u16`, public key); 6 a certificate verifier's verdict (below); 7 the certificate chain our side presented (option of: the key's `SignatureAlgorithm` `u8`, a count and the certificates, DER); 8 the signature scheme our key chose (option of `u16`). Byte strings are a varint length and the bytes. It follows the step that drew it |
//! | `0x40 + k` | `poll_output()` | `u32` digest of the output, whose kind is `k` (below) |
//!
//! - *time*: the `now` given to the core, as a zigzag varint of nanoseconds since the previous
//!   record's time (the first is counted from the recorder's epoch). Calls that take no `now`
//!   carry the time they were made.
//! - *ids*: slot index and serial (two varints); a fresh core replaying the same steps issues
//!   the same ids.
//! - *addresses*: `4` + 4 bytes, or `6` + 16 bytes; a socket address adds the port (`u16`),
//!   and for IPv6 flow info and scope id (varints). Options are `0`, or `1` and the value;
//!   booleans one byte (0 or 1).
//! - *payloads*: length (varint); with limited payloads, then the number of bytes kept
//!   (varint); then the bytes. The replay fills what was not kept with zeros.
//! - *socket ids* (of `Resolved`, which names a TCP or a UDP socket): the kind (`u8`: 1 TCP,
//!   2 server, 3 UDP), then the id.
//! - *strings*: length (varint) and the UTF-8 bytes.
//! - *calls*: a `u8` per [`Call`] variant (0 `TcpOpen` ... 18 `UdpClose` in declaration
//!   order, then 19 `UdpAddSource`, 20 `UdpDropSource`), then its arguments in declaration
//!   order; options in field order. A TLS config cannot be stored: a `u8` says 0 none, 1
//!   one was given (files written before the facts below; the replay must be handed a
//!   config, [`Replay::with_client_tls`]), 2 one was given, and its facts follow: the ALPN
//!   protocols (a count and byte strings), flags (`u8`: 1 SNI, 2 a client certificate is
//!   available, 4 the server's cipher suite order wins), the largest fragment (option of
//!   varint), the TLS 1.3 tickets a server sends (varint). *Results*: 0 done, 1/2 `send`
//!   returned `false`/`true`, 3/4/5
//!   the new TCP socket/server/UDP socket and its id, 6 an [`ApiError`]
//!   (DOMException code 0-3 and message).
//! - *inputs*: a `u8` per [`Input`] variant (0 `Resolved` ... 15 `JoinFailed` in declaration
//!   order as of version 2, where 12 is `Sent` of one datagram; then 16 `Sent` with its
//!   count, 17 `Datagrams`: id, source address, segment size, payload), then its fields in
//!   order; `io::ErrorKind`s are one byte (a fixed table,
//!   unknown kinds recorded as `Other`). *Results*: 0 accepted, 1 unknown id, 2 unexpected
//!   (and the reason as a string).
//! - *verdicts* (draw kind 6): 0 accepted; refused with 1 a `CertificateError` without
//!   fields (`u8`: 0 `BadEncoding`, 1 `Expired`, 2 `NotValidYet`, 3 `Revoked`, 4
//!   `UnhandledCriticalExtension`, 5 `UnknownIssuer`, 6 `UnknownRevocationStatus`, 7
//!   `ExpiredRevocationList`, 8 `BadSignature`, 9 `NotValidForName`, 10 `InvalidPurpose`, 11
//!   `ApplicationVerificationFailure`, 12 `InvalidOcspResponse`), 2 `ExpiredContext` (time,
//!   not after: varint seconds), 3 `NotValidYetContext` (time, not before), 4
//!   `NotValidForNameContext` (the name expected, a count and the names presented), 6
//!   `Other` (its error's text), 5 any other error (its text: it replays as another error,
//!   and the replay diverges where it is reported).
//! - *poll kinds*: 0-12 the [`Action`](crate::Action)s in declaration order (`Resolve` ...
//!   `LeaveMulticast`; 10 was version 2's `SendTo`), 13-20 the [`Event`]s (`Open` ...
//!   `Message`), 21 `Timeout`, 22 `SendDatagrams` (digested with its number of datagrams,
//!   then each one's address and payload). The digest
//!   is a fixed 64-bit multiply-rotate hash folded to 32 bits over the output's ids (by
//!   serial), addresses, flags, error names and messages, deadlines (nanoseconds from the
//!   epoch) and, of each payload, its length and first 16 bytes (fewer if the recording kept
//!   fewer; text is not digested at all then). Digests catch a divergence at the first output
//!   that differs; the replayed core's own outputs are what the replay yields.
//!
//! A file without an end record was cut short (the process died, or the copy is
//! incomplete): it replays up to its last whole record, and [`Summary::end`] says so. Every
//! read is bounds-checked; a damaged file is a [`FormatError`], never a panic.
//!
//! # TLS sessions
//!
//! A config built with [`ClientOptions::draws`](crate::tls::ClientOptions) /
//! [`ServerOptions::draws`](crate::tls::ServerOptions) set to the recording's [`TlsDraws`]
//! (the driver's `Recording::tls_draws`) records what rustls draws while handshaking (random
//! bytes, key shares and shared secrets, signatures, the time; [`TlsDraws`] explains why
//! this works with any provider), what its certificate verifier decided (accepted, or the
//! error), and the certificate chain our side presented (public: it crosses the wire) with
//! the signature scheme our key chose. Each call that was given such a config records the
//! config's facts (ALPN, SNI, ...). The replay then builds its own configs from those facts:
//! a verifier that gives the recorded verdicts, a resolver that presents the recorded chain
//! with a key that gives the recorded signatures, and the recorded draws; the handshake is the
//! recorded one byte for byte, and the session replays whole, with its application data.
//! **No private key and no trust store is recorded or needed**; but the recorded shared
//! secrets decrypt the session: keep a recording of a TLS session as secret as its traffic.
//!
//! Configs built otherwise (with only [`TlsDraws::provider`] and [`TlsDraws::time`]) record
//! their draws, and the replay must be handed configs built on [`Replay::tls_draws`]
//! ([`Replay::with_client_tls`], [`Replay::with_server_tls`]). A TLS socket whose config does
//! not draw through the recording's [`TlsDraws`] (the default client config among them) makes
//! another handshake on replay, reported as a divergence at its first write. TLS versions are
//! not among the facts (rustls does not tell a config's): a replay allows 1.2 and 1.3, and
//! a session of a config limited to one of them diverges at its hello. Servers that verify
//! client certificates do not replay (sockstate's server configs do not ask for them).
//!
//! # What is not in a recording
//! - The [`Policy`]'s answers are not stored as such: a call that the policy
//!   refused is refused again on replay (by a policy that gives the recorded answer).
//! - Calls made on the core past the recorder (the driver's `core_mut`).

mod format;
mod outcome;
mod tls;
mod tls_configs;

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use format::{end_record, Encoder, FormatError, Header, PayloadLimit, MAGIC, VERSION};
pub use outcome::{Divergence, End, ReplayError, Summary};
pub use tls::TlsDraws;

use crate::call::{Call, Returned};
use crate::error::ApiError;
use crate::id::ServerId;
use crate::io::{Accepted, Event, Input, Output};
use crate::policy::{Policy, Request};
use crate::tls::{ClientConfig, ServerConfig};
use crate::{Config, Core, DomException};
use format::{digest, kind_name, Decoder, Record};
use tls_configs::{ConfigFacts, GivenTls};

/// One step of a replay, as [`Replay::next_step`] yields it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// An app call and what it returned (as recorded, and as now).
    Call {
        /// The call.
        call: Call,
        /// What it returned.
        result: Result<Returned, ApiError>,
    },
    /// An input and whether the core accepted it (`Err`: its refusal, as text).
    Input {
        /// The input.
        input: Input,
        /// What the core said.
        result: Result<(), String>,
    },
    /// A connection accepted on a server.
    Accepted {
        /// The server.
        server: ServerId,
        /// What the core made of it.
        result: Result<Accepted, String>,
    },
    /// `handle_timeout`.
    Timeout,
    /// What `poll_output` returned.
    Output(Output),
}

/// The policy of a replayed core: refuses exactly what the recorded core's policy refused.
struct Recorded(Arc<Mutex<Option<String>>>);

impl Policy for Recorded {
    fn check(&self, _: &Request<'_>) -> Result<(), Cow<'static, str>> {
        match self.0.lock() {
            Ok(mut deny) => deny.take().map_or(Ok(()), |why| Err(why.into())),
            Err(_) => Ok(()),
        }
    }
}

/// Replays a recording on a fresh core built from its recorded [`Config`]: every call, input,
/// accepted connection and timeout at its recorded time (counted from `base`), every
/// `poll_output` checked against the recording.
pub struct Replay {
    core: Core,
    decoder: Decoder,
    header: Header,
    base: Instant,
    step: u64,
    deny: Arc<Mutex<Option<String>>>,
    client_tls: Option<Arc<ClientConfig>>,
    server_tls: Option<Arc<ServerConfig>>,
    summary: Summary,
    kept: u64,
    structural: bool,
    failed: bool,
    /// The TLS draws recorded, handed to configs built from them.
    draws: TlsDraws,
    /// The record read after the draws that follow a step.
    ahead: Option<Record>,
    /// Configs built from recorded facts (few: one per distinct config of the session).
    built: Vec<(ConfigFacts, Built)>,
}

/// A TLS config a replay built from recorded facts.
#[derive(Clone)]
enum Built {
    Client(Arc<ClientConfig>),
    Server(Arc<ServerConfig>),
}

impl fmt::Debug for Replay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replay")
            .field("header", &self.header)
            .field("step", &self.step)
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl Replay {
    /// Reads the recording's header and builds the core. `base` stands for the recorder's
    /// epoch: the replayed core sees recorded times as offsets from it.
    pub fn new(recording: impl Into<Bytes>, base: Instant) -> Result<Replay, ReplayError> {
        let data = recording.into();
        let bytes = data.len();
        let mut decoder = Decoder::new(data);
        let header = decoder.header()?;
        let deny = Arc::new(Mutex::new(None));
        let core = Core::with_policy(header.config.clone(), Recorded(Arc::clone(&deny)));
        let (kept, structural) = match header.payloads {
            PayloadLimit::Full => (u64::MAX, false),
            PayloadLimit::FirstBytes(n) => (u64::from(n), true),
        };
        Ok(Replay {
            core,
            decoder,
            header,
            base,
            step: 0,
            deny,
            client_tls: None,
            server_tls: None,
            summary: Summary {
                bytes,
                ..Summary::default()
            },
            kept,
            structural,
            failed: false,
            draws: TlsDraws::replaying(),
            ahead: None,
            built: Vec::new(),
        })
    }

    /// The client TLS config to use where the recorded app gave one, instead of one built from
    /// the recording (recordings of sessions whose configs were built without
    /// [`TlsDraws`]' verdicts and chains, `ClientOptions::draws`, need one).
    pub fn with_client_tls(mut self, config: Arc<ClientConfig>) -> Self {
        self.client_tls = Some(config);
        self
    }

    /// The server TLS config to use where the recorded app gave one, instead of one built from
    /// the recording.
    pub fn with_server_tls(mut self, config: Arc<ServerConfig>) -> Self {
        self.server_tls = Some(config);
        self
    }

    /// The recorded TLS draws: build the replay's TLS configs with its
    /// [`provider`](TlsDraws::provider) and [`time`](TlsDraws::time), as the recorded session
    /// built its own with those of the recording's `TlsDraws`, and hand them over with
    /// [`with_client_tls`](Self::with_client_tls) / [`with_server_tls`](Self::with_server_tls).
    pub fn tls_draws(&self) -> &TlsDraws {
        &self.draws
    }

    /// The recording's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The recorded core's configuration.
    pub fn config(&self) -> &Config {
        &self.header.config
    }

    /// The replayed core (its sockets' attributes at the current step).
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// What the replay went through so far.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Steps replayed so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Replays the whole recording; its events in order, and the summary.
    pub fn events(
        recording: impl Into<Bytes>,
        base: Instant,
    ) -> Result<(Vec<Event>, Summary), ReplayError> {
        let mut replay = Replay::new(recording, base)?;
        let mut events = Vec::new();
        while let Some(event) = replay.next_event()? {
            events.push(event);
        }
        Ok((events, replay.summary))
    }

    /// Replays up to the next event; `None` at the end of the recording.
    pub fn next_event(&mut self) -> Result<Option<Event>, ReplayError> {
        loop {
            match self.next_step()? {
                None => return Ok(None),
                Some(Step::Output(Output::Event(event))) => return Ok(Some(event)),
                Some(_) => {}
            }
        }
    }

    fn at(&self, ns: i64) -> Result<Instant, ReplayError> {
        let at = match ns >= 0 {
            true => self.base.checked_add(Duration::from_nanos(ns as u64)),
            false => self
                .base
                .checked_sub(Duration::from_nanos(ns.unsigned_abs())),
        };
        at.ok_or(ReplayError::Time { step: self.step })
    }

    fn diverged(
        &mut self,
        at: Option<i64>,
        what: String,
        recorded: String,
        replayed: String,
    ) -> ReplayError {
        self.failed = true;
        let replayed = match self.draws.trouble() {
            Some(trouble) => format!("{replayed} (TLS: {trouble})"),
            None => replayed,
        };
        ReplayError::Diverged(Box::new(Divergence {
            step: self.step,
            at: at.map(|ns| Duration::from_nanos(ns.max(0) as u64)),
            what,
            recorded,
            replayed,
        }))
    }

    /// Replays one record; `None` at the end of the recording. After an error, it stays
    /// at the step that failed (and returns `None`).
    pub fn next_step(&mut self) -> Result<Option<Step>, ReplayError> {
        if self.failed {
            return Ok(None);
        }
        let record = match self.next_record() {
            Ok(Some(record)) => record,
            Ok(None) => {
                if self.summary.end == End::Running {
                    self.summary.end = End::Cut;
                }
                return Ok(None);
            }
            Err(e) => {
                self.failed = true;
                return Err(e.into());
            }
        };
        let step = self.replay(record);
        if step.is_err() {
            self.failed = true;
        }
        let step = step?;
        if step.is_some() {
            self.step += 1;
            self.summary.steps = self.step;
        }
        Ok(step)
    }

    /// The next record that is not a draw, and the draws after it (made by its step) queued
    /// for it.
    fn next_record(&mut self) -> Result<Option<Record>, FormatError> {
        let record = match self.ahead.take() {
            Some(record) => Some(record),
            None => loop {
                match self.decoder.record()? {
                    Some(Record::Draw(draw)) => self.draws.give(draw),
                    other => break other,
                }
            },
        };
        if record.is_some() {
            loop {
                match self.decoder.record()? {
                    Some(Record::Draw(draw)) => self.draws.give(draw),
                    other => {
                        self.ahead = other;
                        break;
                    }
                }
            }
        }
        Ok(record)
    }

    fn time(&mut self, ns: i64) -> Result<Instant, ReplayError> {
        let now = self.at(ns)?;
        self.summary.duration = Duration::from_nanos(ns.max(0) as u64);
        Ok(now)
    }

    fn replay(&mut self, record: Record) -> Result<Option<Step>, ReplayError> {
        Ok(Some(match record {
            Record::Call {
                at,
                mut call,
                result,
                tls,
            } => {
                let now = self.time(at)?;
                self.summary.calls += 1;
                if let Some(given) = tls {
                    self.give_tls(&mut call, given)?;
                }
                if let Err(e) = &result {
                    if e.exception() == DomException::SecurityError {
                        if let Ok(mut deny) = self.deny.lock() {
                            *deny = Some(e.message().to_string());
                        }
                    }
                }
                let now_result = call.apply(&mut self.core, now);
                if let Ok(mut deny) = self.deny.lock() {
                    *deny = None;
                }
                if now_result != result {
                    return Err(self.diverged(
                        Some(at),
                        format!("call {call}"),
                        format!("{result:?}"),
                        format!("{now_result:?}"),
                    ));
                }
                Step::Call {
                    call,
                    result: now_result,
                }
            }
            Record::Input { at, input, result } => {
                let now = self.time(at)?;
                self.summary.inputs += 1;
                let what = format!("input {}", short(&input));
                let now_result = self
                    .core
                    .handle_input(now, input.clone())
                    .map_err(|e| e.to_string());
                if now_result != result {
                    return Err(self.diverged(
                        Some(at),
                        what,
                        format!("{result:?}"),
                        format!("{now_result:?}"),
                    ));
                }
                Step::Input {
                    input,
                    result: now_result,
                }
            }
            Record::Accepted {
                at,
                server,
                local,
                remote,
                result,
            } => {
                let now = self.time(at)?;
                self.summary.accepted += 1;
                let now_result = self
                    .core
                    .handle_accepted(now, server, local, remote)
                    .map_err(|e| e.to_string());
                if now_result != result {
                    return Err(self.diverged(
                        Some(at),
                        format!("accept on {server} of {remote}"),
                        format!("{result:?}"),
                        format!("{now_result:?}"),
                    ));
                }
                Step::Accepted {
                    server,
                    result: now_result,
                }
            }
            Record::Timeout { at } => {
                let now = self.time(at)?;
                self.summary.timeouts += 1;
                self.core.handle_timeout(now);
                Step::Timeout
            }
            Record::Poll { kind, digest: d } => {
                self.summary.polls += 1;
                let out = self.core.poll_output();
                let (now_kind, now_digest) = digest(&out, self.base, self.kept, self.structural);
                if (now_kind, now_digest) != (kind, d) {
                    return Err(self.diverged(
                        None,
                        "poll_output".into(),
                        format!("{} (digest {d:#010x})", kind_name(kind)),
                        format!("{} (digest {now_digest:#010x})", short(&out)),
                    ));
                }
                match out {
                    Output::Action(_) => self.summary.actions += 1,
                    Output::Event(_) => self.summary.events += 1,
                    Output::Timeout(_) => {}
                }
                Step::Output(out)
            }
            // `next_record` queues draws and never returns one.
            Record::Draw(draw) => {
                self.draws.give(draw);
                return Ok(None);
            }
            Record::End { complete, steps } => {
                if steps != 0 && steps != self.step {
                    return Err(ReplayError::Format(FormatError::Invalid {
                        offset: self.decoder.offset(),
                        what: format!(
                            "the end record counts {steps} records, the file holds {}",
                            self.step
                        )
                        .into(),
                    }));
                }
                self.summary.end = if complete {
                    End::Complete
                } else {
                    End::Stopped
                };
                return Ok(None);
            }
        }))
    }

    /// The TLS config of a recorded call: the one handed to the replay, else one built from
    /// the recorded facts and draws.
    fn give_tls(&mut self, call: &mut Call, given: GivenTls) -> Result<(), ReplayError> {
        let client = match call {
            Call::TcpOpen { .. } => true,
            Call::ServerListen { .. } => false,
            _ => return Ok(()),
        };
        let handed = match client {
            true => self.client_tls.clone().map(Built::Client),
            false => self.server_tls.clone().map(Built::Server),
        };
        let config = match (handed, given) {
            (Some(config), _) => config,
            (None, GivenTls::Facts(facts)) => self.build(facts, client)?,
            (None, GivenTls::Bare) => {
                return Err(ReplayError::NeedsTlsConfig {
                    step: self.step,
                    call: call.to_string(),
                })
            }
        };
        match (call, config) {
            (Call::TcpOpen { options, .. }, Built::Client(config)) => {
                options.tls_config = Some(config)
            }
            (Call::ServerListen { options }, Built::Server(config)) => {
                options.tls_config = Some(config)
            }
            _ => {}
        }
        Ok(())
    }

    fn build(&mut self, facts: ConfigFacts, client: bool) -> Result<Built, ReplayError> {
        let found = self.built.iter().find(|(f, b)| {
            *f == facts
                && matches!(
                    (b, client),
                    (Built::Client(_), true) | (Built::Server(_), false)
                )
        });
        if let Some((_, built)) = found {
            return Ok(built.clone());
        }
        let built = match client {
            true => facts.client_config(&self.draws).map(Built::Client),
            false => facts.server_config(&self.draws).map(Built::Server),
        };
        let built = built.map_err(|e| ReplayError::TlsConfig {
            step: self.step,
            error: e.to_string(),
        })?;
        self.built.push((facts, built.clone()));
        Ok(built)
    }
}

/// `Debug` text cut to a readable length (payloads can be megabytes).
fn short(value: &impl fmt::Debug) -> String {
    const MAX: usize = 200;
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

#[cfg(test)]
mod sharing_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod udp_tests;
