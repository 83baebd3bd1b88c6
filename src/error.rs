//! The three kinds of failure (DESIGN "Errors"):
//!
//! - [`ApiError`]: synchronous misuse of a method, named after the DOMException the spec throws.
//!   The socket's state is unchanged ([BEHAVIOUR §0](crate::behaviour#0-everywhere)).
//! - [`SocketError`]: a remote or OS failure, carried by the `Error` event ([BEHAVIOUR §4](crate::behaviour#4-errors)).
//! - [`InputError`]: an [`Input`](crate::Input) that makes no sense in the socket's state, which is
//!   a bug in the I/O layer. The state is unchanged.

use std::borrow::Cow;
use std::fmt;
use std::io;

/// The DOMException a method would throw in the spec.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum DomException {
    /// The method is not allowed in the socket's current `readyState` (or the id is dead).
    InvalidStateError,
    /// An argument is invalid: a bad host, port, address, group or payload size.
    InvalidAccessError,
    /// The send would exceed the hard cap on buffered bytes, or another fixed bound.
    QuotaExceededError,
    /// The embedder's [`Policy`](crate::Policy) refused the request.
    SecurityError,
}

impl DomException {
    /// The exception's name as the spec writes it.
    pub fn name(self) -> &'static str {
        match self {
            DomException::InvalidStateError => "InvalidStateError",
            DomException::InvalidAccessError => "InvalidAccessError",
            DomException::QuotaExceededError => "QuotaExceededError",
            DomException::SecurityError => "SecurityError",
        }
    }
}

/// Synchronous misuse: the call did nothing (no state change, nothing queued, no event).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ApiError {
    exception: DomException,
    message: Cow<'static, str>,
}

impl ApiError {
    pub(crate) fn new(exception: DomException, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            exception,
            message: message.into(),
        }
    }
    pub(crate) fn state(message: &'static str) -> Self {
        Self::new(DomException::InvalidStateError, message)
    }
    pub(crate) fn access(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(DomException::InvalidAccessError, message)
    }
    pub(crate) fn quota(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(DomException::QuotaExceededError, message)
    }
    pub(crate) fn dead() -> Self {
        Self::state("the socket is closed: its Close event was delivered")
    }

    /// Which DOMException the spec would throw.
    pub fn exception(&self) -> DomException {
        self.exception
    }

    /// What was wrong, for people.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.exception.name(), self.message)
    }
}

impl std::error::Error for ApiError {}

/// The class of a [`SocketError`] ([BEHAVIOUR §4](crate::behaviour#4-errors)).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum SocketErrorKind {
    /// Connection-level failures.
    Network,
    /// The peer's certificate was not acceptable.
    SecurityCertificate,
    /// The TLS protocol failed (version, alert, malformed records).
    SecurityProtocol,
}

/// The precise failure an `Error` event reports: Mozilla's names ([BEHAVIOUR §4](crate::behaviour#4-errors)).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `ConnectionRefusedError`: nobody listens at the address.
    ConnectionRefused,
    /// `NetworkTimeoutError`: connect or close did not complete in time.
    NetworkTimeout,
    /// `DomainNotFoundError`: the name did not resolve.
    DomainNotFound,
    /// `NetworkInterruptError`: the connection was reset or the pipe broke.
    NetworkInterrupt,
    /// `NetworkError`: any other network failure.
    Network,
    /// `SecurityUntrustedCertificateIssuerError`.
    UntrustedCertificateIssuer,
    /// `SecurityExpiredCertificateError`.
    ExpiredCertificate,
    /// `SecurityCertificateDomainMismatchError`.
    CertificateDomainMismatch,
    /// `SecurityRevokedCertificateError`.
    RevokedCertificate,
    /// `SecurityBadCertificateError`.
    BadCertificate,
    /// `SecurityError` of kind `SecurityCertificate`: any other certificate problem.
    CertificateOther,
    /// `SecurityUnsupportedTLSVersionError`.
    UnsupportedTlsVersion,
    /// `SecurityError` of kind `SecurityProtocol`: any other TLS protocol failure.
    ProtocolOther,
}

impl ErrorCode {
    /// Mozilla's error name, e.g. `"ConnectionRefusedError"`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::ConnectionRefused => "ConnectionRefusedError",
            ErrorCode::NetworkTimeout => "NetworkTimeoutError",
            ErrorCode::DomainNotFound => "DomainNotFoundError",
            ErrorCode::NetworkInterrupt => "NetworkInterruptError",
            ErrorCode::Network => "NetworkError",
            ErrorCode::UntrustedCertificateIssuer => "SecurityUntrustedCertificateIssuerError",
            ErrorCode::ExpiredCertificate => "SecurityExpiredCertificateError",
            ErrorCode::CertificateDomainMismatch => "SecurityCertificateDomainMismatchError",
            ErrorCode::RevokedCertificate => "SecurityRevokedCertificateError",
            ErrorCode::BadCertificate => "SecurityBadCertificateError",
            ErrorCode::CertificateOther | ErrorCode::ProtocolOther => "SecurityError",
            ErrorCode::UnsupportedTlsVersion => "SecurityUnsupportedTLSVersionError",
        }
    }

    /// The class this name belongs to.
    pub fn kind(self) -> SocketErrorKind {
        match self {
            ErrorCode::ConnectionRefused
            | ErrorCode::NetworkTimeout
            | ErrorCode::DomainNotFound
            | ErrorCode::NetworkInterrupt
            | ErrorCode::Network => SocketErrorKind::Network,
            ErrorCode::UntrustedCertificateIssuer
            | ErrorCode::ExpiredCertificate
            | ErrorCode::CertificateDomainMismatch
            | ErrorCode::RevokedCertificate
            | ErrorCode::BadCertificate
            | ErrorCode::CertificateOther => SocketErrorKind::SecurityCertificate,
            ErrorCode::UnsupportedTlsVersion | ErrorCode::ProtocolOther => {
                SocketErrorKind::SecurityProtocol
            }
        }
    }

    /// The W3C draft's coarser name: `"NetworkError"` or `"SecurityError"`.
    pub fn w3c_name(self) -> &'static str {
        match self.kind() {
            SocketErrorKind::Network => "NetworkError",
            SocketErrorKind::SecurityCertificate | SocketErrorKind::SecurityProtocol => {
                "SecurityError"
            }
        }
    }
}

/// A remote or OS failure, delivered in [`Event::Error`](crate::Event::Error). Comparable with
/// `==`, so tests can assert whole transcripts.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SocketError {
    /// Which failure.
    pub code: ErrorCode,
    /// Details for people; deterministic for a given input.
    pub message: Cow<'static, str>,
}

impl SocketError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        SocketError {
            code,
            message: message.into(),
        }
    }

    /// Maps an OS error reported by the I/O layer to its name ([BEHAVIOUR §4](crate::behaviour#4-errors)).
    pub fn from_io(kind: io::ErrorKind) -> Self {
        let code = match kind {
            io::ErrorKind::ConnectionRefused => ErrorCode::ConnectionRefused,
            io::ErrorKind::TimedOut => ErrorCode::NetworkTimeout,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => ErrorCode::NetworkInterrupt,
            _ => ErrorCode::Network,
        };
        SocketError::new(code, io::Error::from(kind).to_string())
    }

    /// As [`from_io`](Self::from_io), with what failed in front of the OS's message.
    pub(crate) fn from_io_in(kind: io::ErrorKind, what: impl fmt::Display) -> Self {
        let code = Self::from_io(kind).code;
        SocketError::new(code, format!("{what}: {}", io::Error::from(kind)))
    }

    /// Mozilla's name of the error.
    pub fn name(&self) -> &'static str {
        self.code.name()
    }

    /// The error's class.
    pub fn kind(&self) -> SocketErrorKind {
        self.code.kind()
    }
}

impl fmt::Display for SocketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.name(), self.message)
    }
}

impl std::error::Error for SocketError {}

/// An [`Input`](crate::Input) the core refused because it makes no sense: a bug in the I/O layer,
/// or a report that arrived after the socket was released. Nothing changed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum InputError {
    /// The id names no live socket (never issued, or its `Close` was already delivered or queued).
    UnknownId,
    /// The input contradicts the socket's state; the text says how.
    Unexpected(&'static str),
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::UnknownId => f.write_str("input for an unknown or closed socket"),
            InputError::Unexpected(why) => write!(f, "unexpected input: {why}"),
        }
    }
}

impl std::error::Error for InputError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_map_to_mozilla_names() {
        let name = |k| SocketError::from_io(k).name();
        assert_eq!(
            name(io::ErrorKind::ConnectionRefused),
            "ConnectionRefusedError"
        );
        assert_eq!(name(io::ErrorKind::TimedOut), "NetworkTimeoutError");
        assert_eq!(
            name(io::ErrorKind::ConnectionReset),
            "NetworkInterruptError"
        );
        assert_eq!(name(io::ErrorKind::BrokenPipe), "NetworkInterruptError");
        assert_eq!(name(io::ErrorKind::HostUnreachable), "NetworkError");
        assert_eq!(ErrorCode::ProtocolOther.name(), "SecurityError");
        assert_eq!(
            ErrorCode::ProtocolOther.kind(),
            SocketErrorKind::SecurityProtocol
        );
        assert_eq!(ErrorCode::CertificateOther.w3c_name(), "SecurityError");
        assert_eq!(ErrorCode::NetworkTimeout.w3c_name(), "NetworkError");
    }
}
