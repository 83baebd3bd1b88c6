//! The recording file format: encoding ([`Encoder`]) and decoding ([`Decoder`]). The layout is
//! documented in the [module docs](super). Each submodule encodes and decodes one concern.

use std::time::Instant;

use bytes::Bytes;

use super::tls_configs::GivenTls;

mod calls;
mod errors;
mod header;
mod inputs;
mod options;
mod outputs;
mod records;
mod tls;
mod values;

pub use errors::FormatError;
pub use header::{Header, PayloadLimit};
pub(crate) use outputs::{digest, kind_name};
pub use records::end_record;
pub(crate) use records::Record;

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
}
