//! Validated remote hosts: an IP literal or a DNS name of at most 253 bytes ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket)).

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use arrayvec::ArrayVec;

use crate::error::ApiError;

/// The longest DNS name in presentation form, without a trailing dot (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 253;

/// A syntactically valid DNS name: labels of 1–63 letters, digits, `-` or `_`, not starting
/// or ending with `-`, at most 253 bytes, and a last label that is not all digits (so that
/// `"127.1"` is refused rather than guessed at).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DnsName(ArrayVec<u8, MAX_NAME_LEN>);

impl DnsName {
    /// Checks `name`; a trailing dot is accepted and dropped.
    pub fn new(name: &str) -> Result<DnsName, ApiError> {
        let trimmed = name.strip_suffix('.').unwrap_or(name);
        if trimmed.is_empty() {
            return Err(ApiError::access("the host is empty"));
        }
        let mut bytes = ArrayVec::new();
        if bytes.try_extend_from_slice(trimmed.as_bytes()).is_err() {
            return Err(ApiError::access(format!(
                "the host is {} bytes long; a DNS name has at most {MAX_NAME_LEN}",
                trimmed.len()
            )));
        }
        let mut last = "";
        for label in trimmed.split('.') {
            let ok = (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(ApiError::access(format!(
                    "{name:?} is neither an IP address nor a valid DNS name"
                )));
            }
            last = label;
        }
        if last.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::access(format!(
                "{name:?} is neither an IP address nor a valid DNS name"
            )));
        }
        Ok(DnsName(bytes))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored (checked in `new`).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Debug for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `host` a socket was opened with.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Host {
    /// An IPv4 or IPv6 literal.
    Ip(IpAddr),
    /// A name to resolve (shared with the `Resolve` action, not copied).
    Name(Arc<DnsName>),
}

impl Host {
    /// Parses an IP literal (IPv6 optionally in brackets) or checks a DNS name.
    /// Anything else is `InvalidAccessError`.
    pub fn parse(host: &str) -> Result<Host, ApiError> {
        let literal = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = literal.parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        if host.contains(':') || host.starts_with('[') {
            return Err(ApiError::access(format!(
                "{host:?} is not a valid IPv6 address"
            )));
        }
        DnsName::new(host).map(|name| Host::Name(Arc::new(name)))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(ip) => ip.fmt(f),
            Host::Name(name) => name.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DomException;

    fn refused(host: &str) -> bool {
        matches!(Host::parse(host), Err(e) if e.exception() == DomException::InvalidAccessError)
    }

    #[test]
    fn literals_and_names_are_accepted() {
        assert_eq!(
            Host::parse("127.0.0.1").unwrap(),
            Host::Ip([127, 0, 0, 1].into())
        );
        assert_eq!(
            Host::parse("[::1]").unwrap(),
            Host::Ip("::1".parse().unwrap())
        );
        assert_eq!(
            Host::parse("::1").unwrap(),
            Host::Ip("::1".parse().unwrap())
        );
        assert_eq!(
            Host::parse("example.com.").unwrap().to_string(),
            "example.com"
        );
        assert_eq!(
            Host::parse("_srv.a-b.example").unwrap().to_string(),
            "_srv.a-b.example"
        );
        let longest = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61),
        ]
        .join(".");
        assert_eq!(longest.len(), 253);
        assert!(Host::parse(&longest).is_ok());
    }

    #[test]
    fn bad_hosts_are_invalid_access() {
        let too_long = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(62),
        ]
        .join(".");
        for host in [
            "",
            ".",
            "a..b",
            "-a.com",
            "a-.com",
            "a b",
            "ex@mple",
            "127.1",
            "1.2.3.4.5",
            "fe80::1%eth0",
            "[::1",
            "::g",
            &"x".repeat(64),
            &too_long,
            "ü.example",
        ] {
            assert!(refused(host), "{host:?} should be refused");
        }
    }
}
