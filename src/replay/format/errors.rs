//! Errors: why a file is not a readable recording ([`FormatError`]), and the errors a
//! recording holds (OS error kinds, DOMExceptions, input errors), encoded and decoded.

use std::borrow::Cow;
use std::io;

use super::values::put_bytes;
use super::{Decoder, OLDEST};
use crate::error::{DomException, InputError};

/// Why a recording could not be read: the file is not one, is of another version, or is
/// damaged. `offset` is the byte where reading failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// The file does not start with [`MAGIC`](super::MAGIC).
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

/// `io::ErrorKind`s by their code in the file; anything else is recorded as `Other`.
pub(super) const ERROR_KINDS: &[io::ErrorKind] = {
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

pub(super) fn put_error_kind(out: &mut Vec<u8>, kind: io::ErrorKind) {
    let code = ERROR_KINDS.iter().position(|k| *k == kind).unwrap_or(0);
    out.push(code as u8);
}

pub(super) fn dom_code(e: DomException) -> u8 {
    match e {
        DomException::InvalidStateError => 0,
        DomException::InvalidAccessError => 1,
        DomException::QuotaExceededError => 2,
        DomException::SecurityError => 3,
    }
}

pub(super) fn put_input_result(out: &mut Vec<u8>, error: Option<&InputError>) {
    match error {
        None => out.push(0),
        Some(InputError::UnknownId) => out.push(1),
        Some(InputError::Unexpected(why)) => {
            out.push(2);
            put_bytes(out, why.as_bytes());
        }
    }
}

impl Decoder {
    pub(super) fn truncated(&self, reading: &'static str) -> FormatError {
        FormatError::Truncated {
            offset: self.data.len(),
            reading,
        }
    }

    pub(super) fn invalid(&self, at: usize, what: impl Into<Cow<'static, str>>) -> FormatError {
        FormatError::Invalid {
            offset: at,
            what: what.into(),
        }
    }

    pub(super) fn error_kind(&mut self) -> Result<io::ErrorKind, FormatError> {
        let at = self.pos;
        let code = self.u8("an OS error")?;
        ERROR_KINDS
            .get(code as usize)
            .copied()
            .ok_or_else(|| self.invalid(at, format!("OS error code {code}")))
    }

    pub(super) fn input_result(&mut self) -> Result<Result<(), String>, FormatError> {
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

    /// A DOMException by its code ([`dom_code`]).
    pub(super) fn dom_exception(&mut self) -> Result<DomException, FormatError> {
        let at = self.pos;
        Ok(match self.u8("an API error")? {
            0 => DomException::InvalidStateError,
            1 => DomException::InvalidAccessError,
            2 => DomException::QuotaExceededError,
            3 => DomException::SecurityError,
            e => return Err(self.invalid(at, format!("DOMException {e}"))),
        })
    }
}
