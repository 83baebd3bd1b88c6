//! The recording file format: encoding ([`Encoder`]) and decoding ([`Decoder`]). The layout is
//! documented in the [module docs](super).

use std::borrow::Cow;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::call::{Call, Returned};
use crate::error::{ApiError, DomException, InputError};
use crate::id::{ServerId, SocketId, TcpId, UdpId};
use crate::io::{Accepted, Action, Event, Input, Output, ResolveError};
use crate::io::{MulticastInterface, SocketSettings};
use crate::payload::{BinaryType, Data};
use crate::tcp::DnsQueryType;
use crate::{Config, ServerOptions, TcpOptions, UdpOptions};

use super::tls::{Draw, TlsDraws};
use super::tls_configs::GivenTls;

mod tls;

/// The first eight bytes of every recording.
pub const MAGIC: [u8; 8] = *b"SOCKREC\0";
/// The format version this build writes. It also reads version 2, which differs only in
/// how UDP sends were made: a version 2 recording replays up to its first per-datagram
/// `Action::SendTo`, where it fails with [`FormatError::UnsupportedVersion`].
pub const VERSION: u16 = 3;
/// The oldest version this build reads.
const OLDEST: u16 = 2;
/// The poll kind of version 2's `Action::SendTo`, which version 3 has no more.
const KIND_SEND_TO: u8 = 10;

/// Largest payload a recording with limited payloads may ask the replay to rebuild (zero-filled):
/// a corrupt length cannot make it allocate more.
const MAX_REBUILT: u64 = 1 << 28;

// Record tags.
pub(crate) const TAG_CALL: u8 = 0x01;
pub(crate) const TAG_INPUT: u8 = 0x02;
pub(crate) const TAG_ACCEPTED: u8 = 0x03;
pub(crate) const TAG_TIMEOUT: u8 = 0x04;
pub(crate) const TAG_END: u8 = 0x05;
pub(crate) const TAG_DRAW: u8 = 0x06;
/// `TAG_POLL + kind`: one `poll_output`, its output's kind ([`kind_name`]) and digest.
pub(crate) const TAG_POLL: u8 = 0x40;
const POLL_KINDS: u8 = 0x40;

/// How much of each payload (a send's data, bytes read, a datagram) a recording keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PayloadLimit {
    /// Every byte: the replay checks the bytes the core writes and delivers.
    #[default]
    Full,
    /// The first `n` bytes of each payload and its length (0: lengths only, "headers only").
    /// The replay fills the rest with zeros and checks structure (which outputs, on which
    /// sockets, of which lengths, and the first bytes that were kept) rather than content.
    /// TLS sessions do not replay past the first record cut short.
    FirstBytes(u32),
}

impl PayloadLimit {
    /// Bytes of each payload kept (`u64::MAX`: all).
    fn kept(self) -> u64 {
        match self {
            PayloadLimit::Full => u64::MAX,
            PayloadLimit::FirstBytes(n) => u64::from(n),
        }
    }
}

/// The fixed part at the start of a recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The format version.
    pub version: u16,
    /// How much of each payload was kept.
    pub payloads: PayloadLimit,
    /// The configuration of the recorded core.
    pub config: Config,
}

/// Why a recording could not be read: the file is not one, is of another version, or is
/// damaged. `offset` is the byte where reading failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// The file does not start with [`MAGIC`].
    NotARecording,
    /// The file is a recording of a version this build does not read.
    UnsupportedVersion {
        /// The file's version.
        found: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// The file ends in the middle of something.
    Truncated {
        /// Where the file ended.
        offset: usize,
        /// What was being read.
        reading: &'static str,
    },
    /// A field holds a value no recording has.
    Invalid {
        /// Where the field starts.
        offset: usize,
        /// What is wrong.
        what: Cow<'static, str>,
    },
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FormatError::NotARecording => {
                f.write_str("not a sockstate recording (it does not start with \"SOCKREC\\0\")")
            }
            FormatError::UnsupportedVersion { found, supported } => write!(
                f,
                "recording format version {found} is not supported (this build reads version \
                 {supported}, and version {OLDEST} up to its first UDP send, which version 3 \
                 batches)"
            ),
            FormatError::Truncated { offset, reading } => write!(
                f,
                "the recording is truncated: it ends at byte {offset}, in the middle of {reading}"
            ),
            FormatError::Invalid { offset, what } => {
                write!(f, "the recording is corrupt at byte {offset}: {what}")
            }
        }
    }
}

impl std::error::Error for FormatError {}

// ---- primitives ---------------------------------------------------------------------------

#[inline]
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_opt<T>(out: &mut Vec<u8>, v: Option<T>, f: impl FnOnce(&mut Vec<u8>, T)) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            f(out, v);
        }
    }
}

fn put_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
    }
}

fn put_addr(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_le_bytes());
        }
        SocketAddr::V6(a) => {
            out.push(6);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_le_bytes());
            put_varint(out, u64::from(a.flowinfo()));
            put_varint(out, u64::from(a.scope_id()));
        }
    }
}

fn put_duration(out: &mut Vec<u8>, d: Duration) {
    put_varint(out, u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
}

fn put_id(out: &mut Vec<u8>, index: usize, serial: u64) {
    put_varint(out, index as u64);
    put_varint(out, serial);
}

/// `io::ErrorKind`s by their code in the file; anything else is recorded as `Other`.
const ERROR_KINDS: &[io::ErrorKind] = {
    use io::ErrorKind as K;
    &[
        K::Other,
        K::NotFound,
        K::PermissionDenied,
        K::ConnectionRefused,
        K::ConnectionReset,
        K::ConnectionAborted,
        K::NotConnected,
        K::AddrInUse,
        K::AddrNotAvailable,
        K::BrokenPipe,
        K::AlreadyExists,
        K::WouldBlock,
        K::InvalidInput,
        K::InvalidData,
        K::TimedOut,
        K::WriteZero,
        K::Interrupted,
        K::Unsupported,
        K::UnexpectedEof,
        K::OutOfMemory,
        K::HostUnreachable,
        K::NetworkUnreachable,
        K::NetworkDown,
        K::ResourceBusy,
        K::StorageFull,
        K::Deadlock,
        K::FileTooLarge,
        K::ArgumentListTooLong,
        K::ReadOnlyFilesystem,
    ]
};

fn put_error_kind(out: &mut Vec<u8>, kind: io::ErrorKind) {
    let code = ERROR_KINDS.iter().position(|k| *k == kind).unwrap_or(0);
    out.push(code as u8);
}

fn dom_code(e: DomException) -> u8 {
    match e {
        DomException::InvalidStateError => 0,
        DomException::InvalidAccessError => 1,
        DomException::QuotaExceededError => 2,
        DomException::SecurityError => 3,
    }
}

fn binary_code(b: BinaryType) -> u8 {
    match b {
        BinaryType::String => 0,
        BinaryType::ArrayBuffer => 1,
    }
}

// ---- the encoder --------------------------------------------------------------------------

/// Writes a recording into a growing buffer: the header at creation, then one record per step.
/// The caller takes the bytes ([`take`](Encoder::take)) whenever it likes, always between
/// records.
///
/// With [`hold_payloads`](Encoder::hold_payloads), large payloads are not copied: the encoder
/// keeps a reference to the app's or the I/O layer's buffer, and
/// [`take_buffers`](Encoder::take_buffers) hands the recording over as a list of buffers (for
/// a vectored write).
#[derive(Debug)]
pub struct Encoder {
    out: Vec<u8>,
    /// Whole buffers that come before `out`: payloads held by reference and the bytes
    /// encoded between them.
    held: Vec<Bytes>,
    /// Their bytes.
    held_len: usize,
    /// Payloads of at least this many bytes are held (`usize::MAX`: none).
    hold_from: usize,
    epoch: Instant,
    last_ns: i64,
    kept: u64,
    structural: bool,
    steps: u64,
}

impl Encoder {
    /// A recording of a core built with `config`, times counted from `epoch`.
    pub fn new(config: &Config, payloads: PayloadLimit, epoch: Instant) -> Encoder {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // flags, reserved
        match payloads {
            PayloadLimit::Full => out.push(0),
            PayloadLimit::FirstBytes(n) => {
                out.push(1);
                put_varint(&mut out, u64::from(n));
            }
        }
        put_config(&mut out, config);
        Encoder {
            out,
            held: Vec::new(),
            held_len: 0,
            hold_from: usize::MAX,
            epoch,
            last_ns: 0,
            kept: payloads.kept(),
            structural: payloads != PayloadLimit::Full,
            steps: 0,
        }
    }

    /// Holds payloads of at least `from` bytes by reference instead of copying them (with
    /// full payloads only): a copy-free recording, for I/O layers that write it with
    /// [`take_buffers`](Encoder::take_buffers). A held buffer stays allocated until the
    /// recording is taken; its bytes count in [`pending`](Encoder::pending).
    pub fn hold_payloads(&mut self, from: usize) {
        self.hold_from = from.max(1);
    }

    /// The bytes written since the last `take` (copied together if payloads are held).
    pub fn bytes(&self) -> Cow<'_, [u8]> {
        match self.held.is_empty() {
            true => Cow::Borrowed(&self.out),
            false => Cow::Owned(self.joined()),
        }
    }

    fn joined(&self) -> Vec<u8> {
        let mut all = Vec::with_capacity(self.pending());
        for buffer in &self.held {
            all.extend_from_slice(buffer);
        }
        all.extend_from_slice(&self.out);
        all
    }

    /// Bytes written since the last `take`.
    pub fn pending(&self) -> usize {
        self.held_len + self.out.len()
    }

    /// The bytes written since the last `take` (whole records only), in one buffer (copied
    /// together if payloads are held).
    pub fn take(&mut self) -> Vec<u8> {
        if !self.held.is_empty() {
            let all = self.joined();
            self.held.clear();
            self.held_len = 0;
            self.out.clear();
            return all;
        }
        std::mem::take(&mut self.out)
    }

    /// As [`take`](Encoder::take), leaving `spare` (emptied) as the new buffer.
    pub fn swap(&mut self, mut spare: Vec<u8>) -> Vec<u8> {
        spare.clear();
        if !self.held.is_empty() {
            let all = self.take();
            self.out = spare;
            return all;
        }
        std::mem::replace(&mut self.out, spare)
    }

    /// The bytes written since the last `take` (whole records only), appended to `into` as
    /// buffers in order: held payloads as they are, the rest in buffers of the encoder's.
    pub fn take_buffers(&mut self, into: &mut Vec<Bytes>) {
        into.append(&mut self.held);
        self.held_len = 0;
        if !self.out.is_empty() {
            into.push(Bytes::from(std::mem::take(&mut self.out)));
        }
    }

    fn time(&mut self, now: Instant) {
        let ns = match now.checked_duration_since(self.epoch) {
            Some(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            None => -i64::try_from((self.epoch - now).as_nanos()).unwrap_or(i64::MAX),
        };
        put_varint(&mut self.out, zigzag(ns.wrapping_sub(self.last_ns)));
        self.last_ns = ns;
    }

    fn payload(&mut self, data: &Bytes) {
        let len = data.len() as u64;
        put_varint(&mut self.out, len);
        if self.kept != u64::MAX {
            let kept = len.min(self.kept);
            put_varint(&mut self.out, kept);
            self.out.extend_from_slice(&data[..kept as usize]);
        } else if data.len() >= self.hold_from {
            let before = std::mem::take(&mut self.out);
            self.held_len += before.len() + data.len();
            self.held.push(Bytes::from(before));
            self.held.push(data.clone());
        } else {
            self.out.extend_from_slice(data);
        }
    }

    /// An app call at `now`: write it before running it, then [`call_result`](Self::call_result).
    pub fn call(&mut self, now: Instant, call: &Call) {
        self.out.push(TAG_CALL);
        self.steps += 1;
        self.time(now);
        let out = &mut self.out;
        match call {
            Call::TcpOpen {
                host,
                port,
                options,
            } => {
                out.push(0);
                put_bytes(out, host.as_bytes());
                out.extend_from_slice(&port.to_le_bytes());
                put_tcp_options(out, options);
            }
            Call::TcpSend { id, data } => {
                out.push(1);
                put_id(out, id.index, id.serial);
                self.payload(data);
            }
            Call::TcpClose { id } => tcp_call(out, 2, *id),
            Call::TcpCloseImmediately { id } => tcp_call(out, 3, *id),
            Call::TcpHalfclose { id } => tcp_call(out, 4, *id),
            Call::TcpSuspend { id } => tcp_call(out, 5, *id),
            Call::TcpResume { id } => tcp_call(out, 6, *id),
            Call::TcpUpgradeToSecure { id } => tcp_call(out, 7, *id),
            Call::ServerListen { options } => {
                out.push(8);
                put_server_options(out, options);
            }
            Call::ServerClose { id } => server_call(out, 9, *id),
            Call::ServerSuspend { id } => server_call(out, 10, *id),
            Call::ServerResume { id } => server_call(out, 11, *id),
            Call::UdpOpen { options } => {
                out.push(12);
                put_udp_options(out, options);
            }
            Call::UdpSend { id, data, to } => {
                out.push(13);
                put_id(out, id.index, id.serial);
                put_opt(out, *to, put_addr);
                self.payload(data);
            }
            Call::UdpJoin { id, group } => {
                udp_call(out, 14, *id);
                put_ip(out, *group);
            }
            Call::UdpLeave { id, group } => {
                udp_call(out, 15, *id);
                put_ip(out, *group);
            }
            Call::UdpAddSource { id, source, group } => {
                udp_call(out, 19, *id);
                put_ip(out, *source);
                put_ip(out, *group);
            }
            Call::UdpDropSource { id, source, group } => {
                udp_call(out, 20, *id);
                put_ip(out, *source);
                put_ip(out, *group);
            }
            Call::UdpSuspend { id } => udp_call(out, 16, *id),
            Call::UdpResume { id } => udp_call(out, 17, *id),
            Call::UdpClose { id } => udp_call(out, 18, *id),
        }
    }

    /// What the call written by [`call`](Self::call) returned.
    pub fn call_result(&mut self, result: &Result<Returned, ApiError>) {
        let out = &mut self.out;
        match result {
            Ok(Returned::Done) => out.push(0),
            Ok(Returned::Sent(false)) => out.push(1),
            Ok(Returned::Sent(true)) => out.push(2),
            Ok(Returned::Opened(id)) => {
                out.push(3);
                put_id(out, id.index, id.serial);
            }
            Ok(Returned::Listening(id)) => {
                out.push(4);
                put_id(out, id.index, id.serial);
            }
            Ok(Returned::Bound(id)) => {
                out.push(5);
                put_id(out, id.index, id.serial);
            }
            Err(e) => {
                out.push(6);
                out.push(dom_code(e.exception()));
                put_bytes(out, e.message().as_bytes());
            }
        }
    }

    /// An input at `now`: write it before handing it over, then
    /// [`input_result`](Self::input_result).
    pub fn input(&mut self, now: Instant, input: &Input) {
        self.out.push(TAG_INPUT);
        self.steps += 1;
        self.time(now);
        let out = &mut self.out;
        match input {
            Input::Resolved { id, result } => {
                out.push(0);
                put_socket_id(out, *id);
                match result {
                    Ok(ips) => {
                        out.push(0);
                        put_varint(out, ips.len() as u64);
                        for ip in ips {
                            put_ip(out, *ip);
                        }
                    }
                    Err(ResolveError::NotFound) => out.push(1),
                    Err(ResolveError::Temporary) => out.push(2),
                    Err(ResolveError::Other) => out.push(3),
                }
            }
            Input::Connected { id, attempt, local } => {
                tcp_call(out, 1, *id);
                out.push(*attempt);
                put_addr(out, *local);
            }
            Input::ConnectFailed { id, attempt, error } => {
                tcp_call(out, 2, *id);
                out.push(*attempt);
                put_error_kind(out, *error);
            }
            Input::Received { id, data } => {
                tcp_call(out, 3, *id);
                self.payload(data);
            }
            Input::Eof { id } => tcp_call(out, 4, *id),
            Input::Written { id, len } => {
                tcp_call(out, 5, *id);
                put_varint(out, *len as u64);
            }
            Input::Unacked { id, bytes } => {
                tcp_call(out, 6, *id);
                put_opt(out, *bytes, |o, b| put_varint(o, b as u64));
            }
            Input::Failed { id, error } => {
                tcp_call(out, 7, *id);
                put_error_kind(out, *error);
            }
            Input::Listening { id, local } => {
                server_call(out, 8, *id);
                put_addr(out, *local);
            }
            Input::ListenFailed { id, error } => {
                server_call(out, 9, *id);
                put_error_kind(out, *error);
            }
            Input::Bound { id, local } => {
                udp_call(out, 10, *id);
                put_addr(out, *local);
            }
            Input::BindFailed { id, error } => {
                udp_call(out, 11, *id);
                put_error_kind(out, *error);
            }
            // A count of 1 as version 2 wrote every `Sent`.
            Input::Sent { id, count: 1 } => udp_call(out, 12, *id),
            Input::Sent { id, count } => {
                udp_call(out, 16, *id);
                put_varint(out, *count as u64);
            }
            Input::SendFailed { id, error } => {
                udp_call(out, 13, *id);
                put_error_kind(out, *error);
            }
            Input::Datagram { id, data, remote } => {
                udp_call(out, 14, *id);
                put_addr(out, *remote);
                self.payload(data);
            }
            Input::Datagrams {
                id,
                data,
                segment_size,
                remote,
            } => {
                udp_call(out, 17, *id);
                put_addr(out, *remote);
                put_varint(out, *segment_size as u64);
                self.payload(data);
            }
            Input::JoinFailed {
                id,
                group,
                source,
                error,
            } => {
                udp_call(out, 15, *id);
                put_ip(out, *group);
                put_opt(out, *source, put_ip);
                put_error_kind(out, *error);
            }
        }
    }

    /// What the core said of the input written by [`input`](Self::input).
    pub fn input_result(&mut self, result: &Result<(), InputError>) {
        put_input_result(&mut self.out, result.as_ref().err());
    }

    /// A connection accepted on `server` at `now`, and what the core made of it.
    pub fn accepted(
        &mut self,
        now: Instant,
        server: ServerId,
        local: SocketAddr,
        remote: SocketAddr,
        result: &Result<Accepted, InputError>,
    ) {
        self.out.push(TAG_ACCEPTED);
        self.steps += 1;
        self.time(now);
        let out = &mut self.out;
        put_id(out, server.index, server.serial);
        put_addr(out, local);
        put_addr(out, remote);
        match result {
            Ok(Accepted::Socket(id)) => {
                out.push(0);
                put_id(out, id.index, id.serial);
            }
            Ok(Accepted::Refused) => out.push(1),
            Err(e) => {
                out.push(2);
                put_input_result(out, Some(e));
            }
        }
    }

    /// `handle_timeout(now)`.
    pub fn timeout(&mut self, now: Instant) {
        self.out.push(TAG_TIMEOUT);
        self.steps += 1;
        self.time(now);
    }

    /// One `poll_output` and what it returned (its kind and digest).
    #[inline]
    pub fn polled(&mut self, output: &Output) {
        let (kind, digest) = digest(output, self.epoch, self.kept, self.structural);
        self.steps += 1;
        self.out.push(TAG_POLL + kind);
        self.out.extend_from_slice(&digest.to_le_bytes());
    }

    /// What the TLS configs of `draws` drew since the last call (random bytes, key shares,
    /// signatures, the time), as draw records: call it after each whole record.
    #[inline]
    pub fn draws(&mut self, draws: &TlsDraws) {
        if !draws.pending() {
            return;
        }
        for draw in draws.take() {
            let out = &mut self.out;
            out.push(TAG_DRAW);
            match draw {
                Draw::Random(b) => {
                    out.push(0);
                    put_bytes(out, &b);
                }
                Draw::KeyShare { group, public } => {
                    out.push(1);
                    out.extend_from_slice(&group.to_le_bytes());
                    put_bytes(out, &public);
                }
                Draw::Hybrid { group, public } => {
                    out.push(5);
                    out.extend_from_slice(&group.to_le_bytes());
                    put_bytes(out, &public);
                }
                Draw::Secret { peer, secret } => {
                    out.push(2);
                    put_bytes(out, &peer);
                    put_bytes(out, &secret);
                }
                Draw::Signature(b) => {
                    out.push(3);
                    put_bytes(out, &b);
                }
                Draw::Time(t) => {
                    out.push(4);
                    put_opt(out, t, put_varint);
                }
                other => _ = tls::put_draw(out, &other),
            }
        }
    }

    /// Records written so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The last record: whether the recording is complete (`false`: the recorder stopped
    /// early, e.g. its writer fell behind), and how many records precede it.
    pub fn end(&mut self, complete: bool) {
        let steps = self.steps;
        self.out.extend_from_slice(&end_record(complete, steps));
    }
}

/// The end record on its own, for a writer that ends a recording whose encoder stopped:
/// `steps` 0 when the number of records before it is not known.
pub fn end_record(complete: bool, steps: u64) -> Vec<u8> {
    let mut out = vec![TAG_END, u8::from(!complete)];
    put_varint(&mut out, steps);
    out
}

/// A socket id of any kind: the kind (1 TCP, 2 server, 3 UDP, as in the digest), then the id.
fn put_socket_id(out: &mut Vec<u8>, id: SocketId) {
    let (kind, index, serial) = match id {
        SocketId::TcpId(i) => (1, i.index, i.serial),
        SocketId::ServerId(i) => (2, i.index, i.serial),
        SocketId::UdpId(i) => (3, i.index, i.serial),
    };
    out.push(kind);
    put_id(out, index, serial);
}

fn tcp_call(out: &mut Vec<u8>, code: u8, id: TcpId) {
    out.push(code);
    put_id(out, id.index, id.serial);
}
fn server_call(out: &mut Vec<u8>, code: u8, id: ServerId) {
    out.push(code);
    put_id(out, id.index, id.serial);
}
fn udp_call(out: &mut Vec<u8>, code: u8, id: UdpId) {
    out.push(code);
    put_id(out, id.index, id.serial);
}

fn put_input_result(out: &mut Vec<u8>, error: Option<&InputError>) {
    match error {
        None => out.push(0),
        Some(InputError::UnknownId) => out.push(1),
        Some(InputError::Unexpected(why)) => {
            out.push(2);
            put_bytes(out, why.as_bytes());
        }
    }
}

fn put_config(out: &mut Vec<u8>, config: &Config) {
    let Config {
        high_water_mark,
        send_buffer_limit,
        connect_timeout,
        connection_attempt_delay,
        close_timeout,
        linger_timeout,
        unacked_poll_interval,
        max_held_bytes,
        max_queued_datagrams,
        max_datagrams_in_flight,
    } = config;
    put_varint(out, *high_water_mark as u64);
    put_varint(out, *send_buffer_limit as u64);
    put_duration(out, *connect_timeout);
    put_duration(out, *connection_attempt_delay);
    put_duration(out, *close_timeout);
    put_duration(out, *linger_timeout);
    put_duration(out, *unacked_poll_interval);
    put_varint(out, *max_held_bytes as u64);
    put_varint(out, *max_queued_datagrams as u64);
    put_varint(out, *max_datagrams_in_flight as u64);
}

fn put_tcp_options(out: &mut Vec<u8>, options: &TcpOptions) {
    let TcpOptions {
        local_address,
        local_port,
        use_secure_transport,
        tls_config,
        binary_type,
        no_delay,
        keep_alive,
        allow_half_open,
        send_buffer_size,
        receive_buffer_size,
        dns_query_type,
    } = options;
    put_opt(out, *local_address, put_ip);
    put_opt(out, *local_port, |o, p| {
        o.extend_from_slice(&p.to_le_bytes())
    });
    out.push(u8::from(*use_secure_transport));
    tls::put_client(out, tls_config.as_deref());
    out.push(binary_code(*binary_type));
    out.push(u8::from(*no_delay));
    put_opt(out, *keep_alive, put_duration);
    out.push(u8::from(*allow_half_open));
    put_buffer_sizes(out, *send_buffer_size, *receive_buffer_size);
    put_opt(out, *dns_query_type, put_dns_query_type);
}

fn put_buffer_sizes(out: &mut Vec<u8>, send: Option<u32>, receive: Option<u32>) {
    put_opt(out, send, |o, n| put_varint(o, u64::from(n)));
    put_opt(out, receive, |o, n| put_varint(o, u64::from(n)));
}

fn put_interface(out: &mut Vec<u8>, interface: MulticastInterface) {
    match interface {
        MulticastInterface::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        MulticastInterface::V6(index) => {
            out.push(6);
            put_varint(out, u64::from(index));
        }
    }
}

fn put_server_options(out: &mut Vec<u8>, options: &ServerOptions) {
    let ServerOptions {
        local_address,
        local_port,
        binary_type,
        backlog,
        address_reuse,
        max_connections,
        use_secure_transport,
        tls_config,
        ipv6_only,
        send_buffer_size,
        receive_buffer_size,
    } = options;
    put_opt(out, *local_address, put_ip);
    put_opt(out, *local_port, |o, p| {
        o.extend_from_slice(&p.to_le_bytes())
    });
    out.push(binary_code(*binary_type));
    put_varint(out, u64::from(*backlog));
    out.push(u8::from(*address_reuse));
    put_opt(out, *max_connections, |o, m| put_varint(o, u64::from(m)));
    out.push(u8::from(*use_secure_transport));
    tls::put_server(out, tls_config.as_deref());
    out.push(u8::from(*ipv6_only));
    put_buffer_sizes(out, *send_buffer_size, *receive_buffer_size);
}

fn put_udp_options(out: &mut Vec<u8>, options: &UdpOptions) {
    let UdpOptions {
        local_address,
        local_port,
        remote_address,
        remote_host,
        remote_port,
        address_reuse,
        loopback,
        ipv6_only,
        broadcast,
        multicast_time_to_live,
        multicast_interface,
        send_buffer_size,
        receive_buffer_size,
        dns_query_type,
    } = options;
    put_opt(out, *local_address, put_ip);
    put_opt(out, *local_port, |o, p| {
        o.extend_from_slice(&p.to_le_bytes())
    });
    put_opt(out, *remote_address, put_ip);
    put_opt(out, remote_host.as_deref(), |o, h| {
        put_bytes(o, h.as_bytes())
    });
    put_opt(out, *remote_port, |o, p| {
        o.extend_from_slice(&p.to_le_bytes())
    });
    out.push(u8::from(*address_reuse));
    out.push(u8::from(*loopback));
    out.push(u8::from(*ipv6_only));
    out.push(u8::from(*broadcast));
    put_opt(out, *multicast_time_to_live, |o, t| o.push(t));
    put_opt(out, *multicast_interface, put_interface);
    put_buffer_sizes(out, *send_buffer_size, *receive_buffer_size);
    put_opt(out, *dns_query_type, put_dns_query_type);
}

fn put_dns_query_type(out: &mut Vec<u8>, q: DnsQueryType) {
    out.push(match q {
        DnsQueryType::Ipv4 => 4,
        DnsQueryType::Ipv6 => 6,
    })
}

// ---- the digest of an output ---------------------------------------------------------------

/// Bytes of a payload that enter its output's digest (with its length).
const DIGEST_PREFIX: usize = 16;

/// A small, fixed hash over words (stable across builds and platforms: it is part of the
/// format).
struct Hash(u64);

impl Hash {
    #[inline]
    fn u(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn id(&mut self, id: SocketId) {
        let (kind, serial) = match id {
            SocketId::TcpId(i) => (1, i.serial),
            SocketId::ServerId(i) => (2, i.serial),
            SocketId::UdpId(i) => (3, i.serial),
        };
        self.u(kind);
        self.u(serial);
    }
    fn ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(ip) => self.u(u64::from(u32::from(ip))),
            IpAddr::V6(ip) => {
                let v = u128::from(ip);
                self.u(v as u64);
                self.u((v >> 64) as u64);
            }
        }
    }
    fn addr(&mut self, addr: SocketAddr) {
        self.ip(addr.ip());
        self.u(u64::from(addr.port()));
    }
    fn payload(&mut self, data: &[u8], kept: u64) {
        self.u(data.len() as u64);
        let n = data.len().min(DIGEST_PREFIX).min(kept as usize);
        for chunk in data[..n].chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.u(u64::from_le_bytes(word));
        }
    }
    fn str(&mut self, s: &str) {
        self.u(s.len() as u64);
        for chunk in s.as_bytes().chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.u(u64::from_le_bytes(word));
        }
    }
    fn settings(&mut self, s: &SocketSettings) {
        let SocketSettings {
            send_buffer,
            receive_buffer,
            ipv6_only,
            broadcast,
            multicast_ttl,
            multicast_interface,
        } = s;
        self.u(send_buffer.map_or(u64::MAX, u64::from));
        self.u(receive_buffer.map_or(u64::MAX, u64::from));
        self.u(u64::from(*ipv6_only) | u64::from(*broadcast) << 1);
        self.u(multicast_ttl.map_or(u64::MAX, u64::from));
        match multicast_interface {
            None => self.u(u64::MAX),
            Some(MulticastInterface::V4(ip)) => self.u(u64::from(u32::from(*ip))),
            Some(MulticastInterface::V6(index)) => self.u(u64::from(*index) | 1 << 32),
        }
    }
    fn finish(&self) -> u32 {
        (self.0 ^ (self.0 >> 32)) as u32
    }
}

/// The names of the output kinds of poll records, by kind.
pub(crate) fn kind_name(kind: u8) -> &'static str {
    const NAMES: [&str; 23] = [
        "Action::Resolve",
        "Action::Connect",
        "Action::AbortConnect",
        "Action::SetReading",
        "Action::Write",
        "Action::Shutdown",
        "Action::QueryUnacked",
        "Action::Release",
        "Action::Listen",
        "Action::Bind",
        "Action::SendTo (version 2)",
        "Action::JoinMulticast",
        "Action::LeaveMulticast",
        "Event::Open",
        "Event::Data",
        "Event::Drain",
        "Event::Connect",
        "Event::HalfClose",
        "Event::Error",
        "Event::Close",
        "Event::Message",
        "Timeout",
        "Action::SendDatagrams",
    ];
    NAMES.get(kind as usize).copied().unwrap_or("?")
}

/// An output's kind ([`kind_name`]) and its digest: the kind, the ids, addresses, flags,
/// deadlines (relative to `epoch`), error codes and messages, and of each payload its length
/// and first bytes (at most 16, at most `kept`). `structural`: text is digested by nothing but
/// its socket (its length depends on bytes the recording did not keep).
pub(crate) fn digest(output: &Output, epoch: Instant, kept: u64, structural: bool) -> (u8, u32) {
    let mut h = Hash(0);
    let kind = match output {
        Output::Action(action) => match action {
            Action::Resolve { id, name } => {
                h.id(*id);
                h.str(name.as_str());
                0
            }
            Action::Connect {
                id,
                attempt,
                remote,
                local,
                no_delay,
                keep_alive,
                settings,
            } => {
                h.settings(settings);
                h.id((*id).into());
                h.u(u64::from(*attempt));
                h.addr(*remote);
                if let Some(local) = local {
                    h.addr(*local);
                }
                h.u(u64::from(*no_delay));
                h.u(keep_alive.map_or(u64::MAX, |d| d.as_nanos() as u64));
                1
            }
            Action::AbortConnect { id, attempt } => {
                h.id((*id).into());
                h.u(u64::from(*attempt));
                2
            }
            Action::SetReading { id, enabled } => {
                h.id(*id);
                h.u(u64::from(*enabled));
                3
            }
            Action::Write { id, data } => {
                h.id((*id).into());
                h.payload(data, kept);
                4
            }
            Action::Shutdown { id } => {
                h.id((*id).into());
                5
            }
            Action::QueryUnacked { id } => {
                h.id((*id).into());
                6
            }
            Action::Release { id } => {
                h.id(*id);
                7
            }
            Action::Listen {
                id,
                local,
                backlog,
                reuse_address,
                settings,
            } => {
                h.settings(settings);
                h.id((*id).into());
                h.addr(*local);
                h.u(u64::from(*backlog));
                h.u(u64::from(*reuse_address));
                8
            }
            Action::Bind {
                id,
                local,
                reuse_address,
                loopback,
                settings,
            } => {
                h.settings(settings);
                h.id((*id).into());
                h.addr(*local);
                h.u(u64::from(*reuse_address));
                h.u(u64::from(*loopback));
                9
            }
            Action::SendDatagrams { id, datagrams } => {
                h.id((*id).into());
                h.u(datagrams.len() as u64);
                for (data, remote) in datagrams {
                    h.addr(*remote);
                    h.payload(data, kept);
                }
                22
            }
            Action::JoinMulticast { id, group, source } => {
                h.id((*id).into());
                h.ip(*group);
                if let Some(source) = source {
                    h.ip(*source);
                }
                11
            }
            Action::LeaveMulticast { id, group, source } => {
                h.id((*id).into());
                h.ip(*group);
                if let Some(source) = source {
                    h.ip(*source);
                }
                12
            }
        },
        Output::Event(event) => match event {
            Event::Open { id } => {
                h.id(*id);
                13
            }
            Event::Data { id, data } => {
                h.id((*id).into());
                match data {
                    Data::Bytes(b) => h.payload(b, kept),
                    Data::Text(t) if !structural => h.payload(t.as_bytes(), kept),
                    Data::Text(_) => {}
                }
                14
            }
            Event::Drain { id } => {
                h.id(*id);
                15
            }
            Event::Connect { server, socket } => {
                h.id((*server).into());
                h.id((*socket).into());
                16
            }
            Event::HalfClose { id } => {
                h.id((*id).into());
                17
            }
            Event::Error { id, error } => {
                h.id(*id);
                h.str(error.code.name());
                h.str(&error.message);
                18
            }
            Event::Close { id } => {
                h.id(*id);
                19
            }
            Event::Message { id, data, remote } => {
                h.id((*id).into());
                h.addr(*remote);
                h.payload(data, kept);
                20
            }
        },
        Output::Timeout(at) => {
            match at {
                None => h.u(u64::MAX),
                Some(at) => match at.checked_duration_since(epoch) {
                    Some(d) => h.u(d.as_nanos() as u64),
                    None => h.u((epoch - *at).as_nanos() as u64 ^ (1 << 63)),
                },
            }
            21
        }
    };
    debug_assert!(kind < POLL_KINDS);
    (kind, h.finish())
}

// ---- the decoder --------------------------------------------------------------------------

/// One record of a recording, decoded.
#[derive(Clone, Debug)]
pub(crate) enum Record {
    Call {
        at: i64,
        call: Call,
        result: Result<Returned, ApiError>,
        /// The TLS config the app gave, as far as the recording knows it.
        tls: Option<GivenTls>,
    },
    Input {
        at: i64,
        input: Input,
        result: Result<(), String>,
    },
    Accepted {
        at: i64,
        server: ServerId,
        local: SocketAddr,
        remote: SocketAddr,
        result: Result<Accepted, String>,
    },
    Timeout {
        at: i64,
    },
    Poll {
        kind: u8,
        digest: u32,
    },
    End {
        complete: bool,
        steps: u64,
    },
    Draw(Draw),
}

/// Reads a recording: [`header`](Decoder::header) first, then records until `None`. Every
/// read is bounds-checked: a damaged file is a [`FormatError`], never a panic.
#[derive(Debug)]
pub(crate) struct Decoder {
    data: Bytes,
    pos: usize,
    last_ns: i64,
    kept: u64,
    max_rebuilt: u64,
    /// The TLS config of the call being read (a file holds its facts, not the config).
    call_tls: Option<GivenTls>,
    /// The file's format version.
    version: u16,
}

impl Decoder {
    pub(crate) fn new(data: Bytes) -> Decoder {
        Decoder {
            data,
            pos: 0,
            last_ns: 0,
            kept: u64::MAX,
            max_rebuilt: MAX_REBUILT,
            call_tls: None,
            version: VERSION,
        }
    }

    pub(crate) fn offset(&self) -> usize {
        self.pos
    }

    fn truncated(&self, reading: &'static str) -> FormatError {
        FormatError::Truncated {
            offset: self.data.len(),
            reading,
        }
    }

    fn invalid(&self, at: usize, what: impl Into<Cow<'static, str>>) -> FormatError {
        FormatError::Invalid {
            offset: at,
            what: what.into(),
        }
    }

    fn u8(&mut self, reading: &'static str) -> Result<u8, FormatError> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or_else(|| self.truncated(reading))?;
        self.pos += 1;
        Ok(b)
    }

    fn array<const N: usize>(&mut self, reading: &'static str) -> Result<[u8; N], FormatError> {
        let end = self.pos.checked_add(N).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| self.truncated(reading))?;
        let mut a = [0; N];
        a.copy_from_slice(&self.data[self.pos..end]);
        self.pos = end;
        Ok(a)
    }

    fn varint(&mut self, reading: &'static str) -> Result<u64, FormatError> {
        let start = self.pos;
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8(reading)?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(self.invalid(start, format!("{reading}: a number above 2^64")));
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.invalid(start, format!("{reading}: a number above 2^64")))
    }

    fn usize(&mut self, reading: &'static str) -> Result<usize, FormatError> {
        let at = self.pos;
        let v = self.varint(reading)?;
        usize::try_from(v).map_err(|_| self.invalid(at, format!("{reading}: {v} is too large")))
    }

    fn u32(&mut self, reading: &'static str) -> Result<u32, FormatError> {
        let at = self.pos;
        let v = self.varint(reading)?;
        u32::try_from(v).map_err(|_| self.invalid(at, format!("{reading}: {v} is too large")))
    }

    fn bool(&mut self, reading: &'static str) -> Result<bool, FormatError> {
        let at = self.pos;
        match self.u8(reading)? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(self.invalid(at, format!("{reading}: {b} is not a boolean"))),
        }
    }

    fn slice(&mut self, len: usize, reading: &'static str) -> Result<Bytes, FormatError> {
        let end = self.pos.checked_add(len).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| self.truncated(reading))?;
        let b = self.data.slice(self.pos..end);
        self.pos = end;
        Ok(b)
    }

    fn string(&mut self, reading: &'static str) -> Result<String, FormatError> {
        let len = self.usize(reading)?;
        let at = self.pos;
        let b = self.slice(len, reading)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.invalid(at, format!("{reading}: not UTF-8")))
    }

    fn payload(&mut self, reading: &'static str) -> Result<Bytes, FormatError> {
        let at = self.pos;
        let len = self.varint(reading)?;
        if self.kept == u64::MAX {
            let len = usize::try_from(len)
                .map_err(|_| self.invalid(at, format!("{reading}: {len} bytes")))?;
            return self.slice(len, reading);
        }
        let kept = self.varint(reading)?;
        if kept > len || kept > self.kept {
            return Err(self.invalid(
                at,
                format!(
                    "{reading}: {kept} bytes kept of {len} (at most {})",
                    self.kept
                ),
            ));
        }
        if len > self.max_rebuilt {
            return Err(self.invalid(at, format!("{reading}: {len} bytes is too large")));
        }
        let b = self.slice(kept as usize, reading)?;
        if kept == len {
            return Ok(b);
        }
        let mut full = BytesMut::zeroed(len as usize);
        full[..b.len()].copy_from_slice(&b);
        Ok(full.freeze())
    }

    fn opt<T>(
        &mut self,
        reading: &'static str,
        f: impl FnOnce(&mut Self) -> Result<T, FormatError>,
    ) -> Result<Option<T>, FormatError> {
        match self.bool(reading)? {
            false => Ok(None),
            true => f(self).map(Some),
        }
    }

    fn port(&mut self, reading: &'static str) -> Result<u16, FormatError> {
        self.array::<2>(reading).map(u16::from_le_bytes)
    }

    fn ip(&mut self) -> Result<IpAddr, FormatError> {
        let at = self.pos;
        match self.u8("an address")? {
            4 => Ok(IpAddr::V4(Ipv4Addr::from(self.array::<4>("an address")?))),
            6 => Ok(IpAddr::V6(Ipv6Addr::from(self.array::<16>("an address")?))),
            f => Err(self.invalid(at, format!("address family {f}"))),
        }
    }

    fn addr(&mut self) -> Result<SocketAddr, FormatError> {
        let at = self.pos;
        match self.u8("an address")? {
            4 => {
                let ip = Ipv4Addr::from(self.array::<4>("an address")?);
                let port = self.port("an address")?;
                Ok(SocketAddr::V4(SocketAddrV4::new(ip, port)))
            }
            6 => {
                let ip = Ipv6Addr::from(self.array::<16>("an address")?);
                let port = self.port("an address")?;
                let flow = self.u32("an address")?;
                let scope = self.u32("an address")?;
                Ok(SocketAddr::V6(SocketAddrV6::new(ip, port, flow, scope)))
            }
            f => Err(self.invalid(at, format!("address family {f}"))),
        }
    }

    fn duration(&mut self, reading: &'static str) -> Result<Duration, FormatError> {
        self.varint(reading).map(Duration::from_nanos)
    }

    fn raw_id(&mut self, reading: &'static str) -> Result<(usize, u64), FormatError> {
        Ok((self.usize(reading)?, self.varint(reading)?))
    }
    fn tcp(&mut self) -> Result<TcpId, FormatError> {
        let (index, serial) = self.raw_id("a socket id")?;
        Ok(TcpId { index, serial })
    }
    fn server(&mut self) -> Result<ServerId, FormatError> {
        let (index, serial) = self.raw_id("a server id")?;
        Ok(ServerId { index, serial })
    }
    fn udp(&mut self) -> Result<UdpId, FormatError> {
        let (index, serial) = self.raw_id("a UDP socket id")?;
        Ok(UdpId { index, serial })
    }
    fn socket_id(&mut self) -> Result<SocketId, FormatError> {
        let at = self.pos;
        Ok(match self.u8("a socket id's kind")? {
            1 => self.tcp()?.into(),
            2 => self.server()?.into(),
            3 => self.udp()?.into(),
            k => return Err(self.invalid(at, format!("socket id kind {k}"))),
        })
    }
    fn dns_query_type(&mut self, reading: &'static str) -> Result<DnsQueryType, FormatError> {
        let at = self.pos;
        match self.u8(reading)? {
            4 => Ok(DnsQueryType::Ipv4),
            6 => Ok(DnsQueryType::Ipv6),
            q => Err(self.invalid(at, format!("DNS query type {q}"))),
        }
    }

    fn error_kind(&mut self) -> Result<io::ErrorKind, FormatError> {
        let at = self.pos;
        let code = self.u8("an OS error")?;
        ERROR_KINDS
            .get(code as usize)
            .copied()
            .ok_or_else(|| self.invalid(at, format!("OS error code {code}")))
    }

    fn binary_type(&mut self) -> Result<BinaryType, FormatError> {
        let at = self.pos;
        match self.u8("a binaryType")? {
            0 => Ok(BinaryType::String),
            1 => Ok(BinaryType::ArrayBuffer),
            b => Err(self.invalid(at, format!("binaryType {b}"))),
        }
    }

    fn time(&mut self) -> Result<i64, FormatError> {
        let delta = unzigzag(self.varint("a time")?);
        self.last_ns = self.last_ns.wrapping_add(delta);
        Ok(self.last_ns)
    }

    /// Reads the header; the decoder is then at the first record.
    pub(crate) fn header(&mut self) -> Result<Header, FormatError> {
        if self.data.len() < MAGIC.len() {
            return Err(if MAGIC.starts_with(&self.data) {
                self.truncated("the header")
            } else {
                FormatError::NotARecording
            });
        }
        if self.data[..MAGIC.len()] != MAGIC {
            return Err(FormatError::NotARecording);
        }
        self.pos = MAGIC.len();
        let version = u16::from_le_bytes(self.array::<2>("the header")?);
        if !(OLDEST..=VERSION).contains(&version) {
            return Err(FormatError::UnsupportedVersion {
                found: version,
                supported: VERSION,
            });
        }
        self.version = version;
        let at = self.pos;
        let flags = u16::from_le_bytes(self.array::<2>("the header")?);
        if flags != 0 {
            return Err(self.invalid(at, format!("unknown header flags {flags:#x}")));
        }
        let at = self.pos;
        let payloads = match self.u8("the header")? {
            0 => PayloadLimit::Full,
            1 => PayloadLimit::FirstBytes(self.u32("the payload limit")?),
            m => return Err(self.invalid(at, format!("payload mode {m}"))),
        };
        self.kept = payloads.kept();
        let r = "the core's configuration";
        let config = Config {
            high_water_mark: self.usize(r)?,
            send_buffer_limit: self.usize(r)?,
            connect_timeout: self.duration(r)?,
            connection_attempt_delay: self.duration(r)?,
            close_timeout: self.duration(r)?,
            linger_timeout: self.duration(r)?,
            unacked_poll_interval: self.duration(r)?,
            max_held_bytes: self.usize(r)?,
            max_queued_datagrams: self.usize(r)?,
            max_datagrams_in_flight: self.usize(r)?,
        };
        Ok(Header {
            version,
            payloads,
            config,
        })
    }

    /// The next record, `None` at the end of the file.
    pub(crate) fn record(&mut self) -> Result<Option<Record>, FormatError> {
        let at = self.pos;
        let Some(&tag) = self.data.get(self.pos) else {
            return Ok(None);
        };
        self.pos += 1;
        let record = match tag {
            TAG_CALL => {
                let at = self.time()?;
                self.call_tls = None;
                let call = self.call()?;
                let result = self.call_result()?;
                Record::Call {
                    at,
                    call,
                    result,
                    tls: self.call_tls.take(),
                }
            }
            TAG_INPUT => {
                let at = self.time()?;
                let input = self.input()?;
                let result = self.input_result()?;
                Record::Input { at, input, result }
            }
            TAG_ACCEPTED => {
                let at = self.time()?;
                let server = self.server()?;
                let local = self.addr()?;
                let remote = self.addr()?;
                let code_at = self.pos;
                let result = match self.u8("an accept's result")? {
                    0 => Ok(Accepted::Socket(self.tcp()?)),
                    1 => Ok(Accepted::Refused),
                    2 => match self.input_result()? {
                        Err(e) => Err(e),
                        Ok(()) => return Err(self.invalid(code_at, "an accept error that is none")),
                    },
                    c => return Err(self.invalid(code_at, format!("accept result {c}"))),
                };
                Record::Accepted {
                    at,
                    server,
                    local,
                    remote,
                    result,
                }
            }
            TAG_TIMEOUT => Record::Timeout { at: self.time()? },
            TAG_DRAW => Record::Draw(self.draw()?),
            TAG_END => {
                let complete = !self.bool("the end record")?;
                let steps = self.varint("the end record")?;
                if self.pos != self.data.len() {
                    return Err(self.invalid(self.pos, "bytes after the end record"));
                }
                Record::End { complete, steps }
            }
            // Version 2 sent datagrams one action each; this core batches them, so such a
            // recording cannot replay past its first send.
            t if t == TAG_POLL + KIND_SEND_TO && self.version < 3 => {
                return Err(FormatError::UnsupportedVersion {
                    found: self.version,
                    supported: VERSION,
                })
            }
            t if (TAG_POLL..TAG_POLL + POLL_KINDS).contains(&t)
                && kind_name(t - TAG_POLL) != "?" =>
            {
                let digest = u32::from_le_bytes(self.array::<4>("a poll record")?);
                Record::Poll {
                    kind: t - TAG_POLL,
                    digest,
                }
            }
            t => return Err(self.invalid(at, format!("unknown record tag {t:#04x}"))),
        };
        Ok(Some(record))
    }

    fn blob(&mut self, reading: &'static str) -> Result<Vec<u8>, FormatError> {
        let len = self.usize(reading)?;
        Ok(self.slice(len, reading)?.to_vec())
    }

    fn draw(&mut self) -> Result<Draw, FormatError> {
        let at = self.pos;
        let r = "a TLS draw";
        Ok(match self.u8(r)? {
            0 => Draw::Random(self.blob(r)?),
            1 => Draw::KeyShare {
                group: u16::from_le_bytes(self.array::<2>(r)?),
                public: self.blob(r)?,
            },
            2 => Draw::Secret {
                peer: self.blob(r)?,
                secret: self.blob(r)?,
            },
            3 => Draw::Signature(self.blob(r)?),
            4 => Draw::Time(self.opt(r, |d| d.varint(r))?),
            5 => Draw::Hybrid {
                group: u16::from_le_bytes(self.array::<2>(r)?),
                public: self.blob(r)?,
            },
            k => self.tls_draw(k, at)?,
        })
    }

    fn call(&mut self) -> Result<Call, FormatError> {
        let at = self.pos;
        let call = match self.u8("a call")? {
            0 => {
                let host = self.string("a host")?;
                let port = self.port("a port")?;
                let options = self.tcp_options()?;
                Call::TcpOpen {
                    host,
                    port,
                    options,
                }
            }
            1 => Call::TcpSend {
                id: self.tcp()?,
                data: self.payload("a send's data")?,
            },
            2 => Call::TcpClose { id: self.tcp()? },
            3 => Call::TcpCloseImmediately { id: self.tcp()? },
            4 => Call::TcpHalfclose { id: self.tcp()? },
            5 => Call::TcpSuspend { id: self.tcp()? },
            6 => Call::TcpResume { id: self.tcp()? },
            7 => Call::TcpUpgradeToSecure { id: self.tcp()? },
            8 => Call::ServerListen {
                options: self.server_options()?,
            },
            9 => Call::ServerClose { id: self.server()? },
            10 => Call::ServerSuspend { id: self.server()? },
            11 => Call::ServerResume { id: self.server()? },
            12 => Call::UdpOpen {
                options: self.udp_options()?,
            },
            13 => {
                let id = self.udp()?;
                let to = self.opt("a destination", Self::addr)?;
                let data = self.payload("a datagram")?;
                Call::UdpSend { id, data, to }
            }
            14 => Call::UdpJoin {
                id: self.udp()?,
                group: self.ip()?,
            },
            15 => Call::UdpLeave {
                id: self.udp()?,
                group: self.ip()?,
            },
            16 => Call::UdpSuspend { id: self.udp()? },
            17 => Call::UdpResume { id: self.udp()? },
            18 => Call::UdpClose { id: self.udp()? },
            19 => Call::UdpAddSource {
                id: self.udp()?,
                source: self.ip()?,
                group: self.ip()?,
            },
            20 => Call::UdpDropSource {
                id: self.udp()?,
                source: self.ip()?,
                group: self.ip()?,
            },
            c => return Err(self.invalid(at, format!("unknown call {c}"))),
        };
        Ok(call)
    }

    fn call_result(&mut self) -> Result<Result<Returned, ApiError>, FormatError> {
        let at = self.pos;
        Ok(Ok(match self.u8("a call's result")? {
            0 => Returned::Done,
            1 => Returned::Sent(false),
            2 => Returned::Sent(true),
            3 => Returned::Opened(self.tcp()?),
            4 => Returned::Listening(self.server()?),
            5 => Returned::Bound(self.udp()?),
            6 => {
                let at = self.pos;
                let exception = match self.u8("an API error")? {
                    0 => DomException::InvalidStateError,
                    1 => DomException::InvalidAccessError,
                    2 => DomException::QuotaExceededError,
                    3 => DomException::SecurityError,
                    e => return Err(self.invalid(at, format!("DOMException {e}"))),
                };
                let message = self.string("an API error")?;
                return Ok(Err(ApiError::new(exception, message)));
            }
            r => return Err(self.invalid(at, format!("call result {r}"))),
        }))
    }

    fn input_result(&mut self) -> Result<Result<(), String>, FormatError> {
        let at = self.pos;
        match self.u8("an input's result")? {
            0 => Ok(Ok(())),
            1 => Ok(Err(InputError::UnknownId.to_string())),
            2 => {
                let why = self.string("an input error")?;
                Ok(Err(format!("unexpected input: {why}")))
            }
            r => Err(self.invalid(at, format!("input result {r}"))),
        }
    }

    fn input(&mut self) -> Result<Input, FormatError> {
        let at = self.pos;
        let input = match self.u8("an input")? {
            0 => {
                let id = self.socket_id()?;
                let r_at = self.pos;
                let result = match self.u8("a resolution")? {
                    0 => {
                        let n = self.usize("a resolution")?;
                        // Each address takes at least 5 bytes: a corrupt count fails here,
                        // before any allocation.
                        if n > (self.data.len() - self.pos) / 5 {
                            return Err(self.truncated("a resolution"));
                        }
                        let mut ips = Vec::with_capacity(n);
                        for _ in 0..n {
                            ips.push(self.ip()?);
                        }
                        Ok(ips)
                    }
                    1 => Err(ResolveError::NotFound),
                    2 => Err(ResolveError::Temporary),
                    3 => Err(ResolveError::Other),
                    r => return Err(self.invalid(r_at, format!("resolver result {r}"))),
                };
                Input::Resolved { id, result }
            }
            1 => Input::Connected {
                id: self.tcp()?,
                attempt: self.u8("an attempt")?,
                local: self.addr()?,
            },
            2 => Input::ConnectFailed {
                id: self.tcp()?,
                attempt: self.u8("an attempt")?,
                error: self.error_kind()?,
            },
            3 => Input::Received {
                id: self.tcp()?,
                data: self.payload("bytes read")?,
            },
            4 => Input::Eof { id: self.tcp()? },
            5 => Input::Written {
                id: self.tcp()?,
                len: self.usize("a written length")?,
            },
            6 => Input::Unacked {
                id: self.tcp()?,
                bytes: self.opt("an unacked count", |d| d.usize("an unacked count"))?,
            },
            7 => Input::Failed {
                id: self.tcp()?,
                error: self.error_kind()?,
            },
            8 => Input::Listening {
                id: self.server()?,
                local: self.addr()?,
            },
            9 => Input::ListenFailed {
                id: self.server()?,
                error: self.error_kind()?,
            },
            10 => Input::Bound {
                id: self.udp()?,
                local: self.addr()?,
            },
            11 => Input::BindFailed {
                id: self.udp()?,
                error: self.error_kind()?,
            },
            12 => Input::Sent {
                id: self.udp()?,
                count: 1,
            },
            16 => Input::Sent {
                id: self.udp()?,
                count: self.usize("a count of datagrams sent")?,
            },
            17 => {
                let id = self.udp()?;
                let remote = self.addr()?;
                let segment_size = self.usize("a segment size")?;
                let data = self.payload("coalesced datagrams")?;
                Input::Datagrams {
                    id,
                    data,
                    segment_size,
                    remote,
                }
            }
            13 => Input::SendFailed {
                id: self.udp()?,
                error: self.error_kind()?,
            },
            14 => {
                let id = self.udp()?;
                let remote = self.addr()?;
                let data = self.payload("a datagram")?;
                Input::Datagram { id, data, remote }
            }
            15 => Input::JoinFailed {
                id: self.udp()?,
                group: self.ip()?,
                source: self.opt("a source", Self::ip)?,
                error: self.error_kind()?,
            },
            i => return Err(self.invalid(at, format!("unknown input {i}"))),
        };
        Ok(input)
    }

    fn tcp_options(&mut self) -> Result<TcpOptions, FormatError> {
        let r = "TCP options";
        let local_address = self.opt(r, Self::ip)?;
        let local_port = self.opt(r, |d| d.port(r))?;
        let use_secure_transport = self.bool(r)?;
        if let Some(given) = self.given_tls()? {
            self.call_tls = Some(given);
        }
        Ok(TcpOptions {
            local_address,
            local_port,
            use_secure_transport,
            tls_config: None,
            binary_type: self.binary_type()?,
            no_delay: self.bool(r)?,
            keep_alive: self.opt(r, |d| d.duration(r))?,
            allow_half_open: self.bool(r)?,
            send_buffer_size: self.opt(r, |d| d.u32(r))?,
            receive_buffer_size: self.opt(r, |d| d.u32(r))?,
            dns_query_type: self.opt(r, |d| d.dns_query_type(r))?,
        })
    }

    fn server_options(&mut self) -> Result<ServerOptions, FormatError> {
        let r = "server options";
        let local_address = self.opt(r, Self::ip)?;
        let local_port = self.opt(r, |d| d.port(r))?;
        let binary_type = self.binary_type()?;
        let backlog = self.u32(r)?;
        let address_reuse = self.bool(r)?;
        let max_connections = self.opt(r, |d| d.u32(r))?;
        let use_secure_transport = self.bool(r)?;
        if let Some(given) = self.given_tls()? {
            self.call_tls = Some(given);
        }
        Ok(ServerOptions {
            local_address,
            local_port,
            binary_type,
            backlog,
            address_reuse,
            max_connections,
            use_secure_transport,
            tls_config: None,
            ipv6_only: self.bool(r)?,
            send_buffer_size: self.opt(r, |d| d.u32(r))?,
            receive_buffer_size: self.opt(r, |d| d.u32(r))?,
        })
    }

    fn udp_options(&mut self) -> Result<UdpOptions, FormatError> {
        let r = "UDP options";
        Ok(UdpOptions {
            local_address: self.opt(r, Self::ip)?,
            local_port: self.opt(r, |d| d.port(r))?,
            remote_address: self.opt(r, Self::ip)?,
            remote_host: self.opt(r, |d| d.string(r))?,
            remote_port: self.opt(r, |d| d.port(r))?,
            address_reuse: self.bool(r)?,
            loopback: self.bool(r)?,
            ipv6_only: self.bool(r)?,
            broadcast: self.bool(r)?,
            multicast_time_to_live: self.opt(r, |d| d.u8(r))?,
            multicast_interface: self.opt(r, |d| {
                let at = d.pos;
                match d.u8(r)? {
                    4 => Ok(MulticastInterface::V4(Ipv4Addr::from(d.array::<4>(r)?))),
                    6 => Ok(MulticastInterface::V6(d.u32(r)?)),
                    f => Err(d.invalid(at, format!("interface family {f}"))),
                }
            })?,
            send_buffer_size: self.opt(r, |d| d.u32(r))?,
            receive_buffer_size: self.opt(r, |d| d.u32(r))?,
            dns_query_type: self.opt(r, |d| d.dns_query_type(r))?,
        })
    }
}
