//! The record framing: the encoder's output (held payloads, taking the bytes), the time and
//! payload of a record, the end record, and the decoder's dispatch on record tags.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::values::{put_varint, unzigzag, zigzag};
use super::{kind_name, Decoder, Encoder, FormatError};
use super::{KIND_SEND_TO, POLL_KINDS, TAG_ACCEPTED, TAG_CALL, TAG_DRAW, TAG_END, TAG_INPUT};
use super::{TAG_POLL, TAG_TIMEOUT, VERSION};
use crate::call::{Call, Returned};
use crate::error::ApiError;
use crate::id::ServerId;
use crate::io::{Accepted, Input};
use crate::replay::tls::Draw;
use crate::replay::tls_configs::GivenTls;

impl Encoder {
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

    pub(super) fn joined(&self) -> Vec<u8> {
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

    pub(super) fn time(&mut self, now: Instant) {
        let ns = match now.checked_duration_since(self.epoch) {
            Some(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            None => -i64::try_from((self.epoch - now).as_nanos()).unwrap_or(i64::MAX),
        };
        put_varint(&mut self.out, zigzag(ns.wrapping_sub(self.last_ns)));
        self.last_ns = ns;
    }

    pub(super) fn payload(&mut self, data: &Bytes) {
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

    /// `handle_timeout(now)`.
    pub fn timeout(&mut self, now: Instant) {
        self.out.push(TAG_TIMEOUT);
        self.steps += 1;
        self.time(now);
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

impl Decoder {
    pub(super) fn time(&mut self) -> Result<i64, FormatError> {
        let delta = unzigzag(self.varint("a time")?);
        self.last_ns = self.last_ns.wrapping_add(delta);
        Ok(self.last_ns)
    }

    pub(super) fn payload(&mut self, reading: &'static str) -> Result<Bytes, FormatError> {
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
            TAG_ACCEPTED => self.accepted()?,
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
}
