//! The header of a recording: the magic, the format version, the payload limit and the
//! recorded core's configuration.

use std::time::Instant;

use super::values::{put_duration, put_varint};
use super::{Decoder, Encoder, FormatError, MAGIC, OLDEST, VERSION};
use crate::Config;

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
}

pub(super) fn put_config(out: &mut Vec<u8>, config: &Config) {
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

impl Decoder {
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
}
