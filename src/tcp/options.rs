//! `TcpOptions`, the options of `TCPSocket.open`, and their checks.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::error::ApiError;
use crate::host::Host;
use crate::io::SocketSettings;
use crate::payload::BinaryType;
use crate::tls::ClientConfig;

crate::options_struct! {
    /// Options of `TCPSocket.open` (the W3C `TCPOptions` plus Mozilla's and Node's).
    ///
    /// ```
    /// use sockstate::{BinaryType, TcpOptions};
    /// let options = TcpOptions::default().binary_type(BinaryType::ArrayBuffer);
    /// assert!(options.no_delay);
    /// // The same, in one word:
    /// assert_eq!(TcpOptions::binary().binary_type, options.binary_type);
    /// ```
    #[derive(Clone, Debug)]
    pub struct TcpOptions {
        /// `localAddress`: bind to this address first (only addresses of its family are tried).
        pub local_address: Option<IpAddr>,
        /// `localPort`: bind to this port first (0 or `None`: ephemeral). With a fixed port,
        /// attempts run one at a time instead of racing.
        pub local_port: Option<u16>,
        /// `useSecureTransport`: TLS from the start; `Open` only after the handshake completed and
        /// the certificate was verified for `host` ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket), against Firefox) by the config's
        /// verifier (see `tls_config`).
        pub use_secure_transport: bool,
        /// The TLS client config for `useSecureTransport` and `upgradeToSecure` (trust roots,
        /// client certificate, ALPN); `None`: Mozilla's roots
        /// ([`tls::client_config`](crate::tls::client_config)).
        ///
        /// Honoured as given: sockstate has no switch that turns verification off, but a config
        /// built with rustls's own `dangerous()` API (a verifier that accepts any certificate) is
        /// used as it is, and such a socket then opens to an untrusted or self-signed server.
        pub tls_config: Option<Arc<ClientConfig>>,
        /// `binaryType` of received data.
        pub binary_type: BinaryType,
        /// `TCP_NODELAY` (default `true`, as the W3C draft).
        pub no_delay: bool,
        /// `keepAliveDelay` (Direct Sockets): TCP keep-alive with this idle time before the
        /// first probe (default `None`: off). From [`MIN_KEEP_ALIVE_DELAY`] (1 s, Direct
        /// Sockets' minimum) to [`MAX_KEEP_ALIVE_DELAY`] (32 767 s, Linux's `TCP_KEEPIDLE`
        /// maximum), else `InvalidAccessError`; the OS counts whole seconds, so a fraction is
        /// dropped.
        pub keep_alive: Option<Duration>,
        /// `sendBufferSize` (Direct Sockets): `SO_SNDBUF` in bytes, 1 to
        /// [`MAX_BUFFER_SIZE`](crate::MAX_BUFFER_SIZE), else `InvalidAccessError` (default
        /// `None`: the OS's).
        pub send_buffer_size: Option<u32>,
        /// `receiveBufferSize` (Direct Sockets): `SO_RCVBUF` in bytes, range as
        /// `send_buffer_size`.
        pub receive_buffer_size: Option<u32>,
        /// `dnsQueryType` (Direct Sockets): connect only to addresses of this family (default
        /// `None`: both). A name with no address of the family left after resolution ends in
        /// `Error(DomainNotFoundError)` + `Close`; an IP literal `host` or a `local_address`
        /// of the other family is `InvalidAccessError`.
        pub dns_query_type: Option<DnsQueryType>,
        /// Keep the socket writable after the peer's FIN and fire `HalfClose` (default `false`:
        /// the peer's FIN closes the socket once the queue is flushed).
        pub allow_half_open: bool,
    }
}

impl TcpOptions {
    /// The defaults, but received data as bytes (`binaryType` `"arraybuffer"`). The spec's
    /// default, `"string"`, decodes what arrives as UTF-8 and turns invalid bytes into U+FFFD:
    /// for anything that is not text, start from this.
    ///
    /// ```
    /// use sockstate::{BinaryType, TcpOptions};
    /// assert_eq!(TcpOptions::binary().binary_type, BinaryType::ArrayBuffer);
    /// assert_eq!(TcpOptions::default().binary_type, BinaryType::String);
    /// ```
    pub fn binary() -> Self {
        TcpOptions {
            binary_type: BinaryType::ArrayBuffer,
            ..TcpOptions::default()
        }
    }
}

impl Default for TcpOptions {
    fn default() -> Self {
        TcpOptions {
            local_address: None,
            local_port: None,
            use_secure_transport: false,
            tls_config: None,
            binary_type: BinaryType::String,
            no_delay: true,
            keep_alive: None,
            send_buffer_size: None,
            receive_buffer_size: None,
            dns_query_type: None,
            allow_half_open: false,
        }
    }
}

/// The shortest `keepAliveDelay` (Direct Sockets' minimum).
pub const MIN_KEEP_ALIVE_DELAY: Duration = Duration::from_secs(1);
/// The longest `keepAliveDelay` (Linux's `TCP_KEEPIDLE` maximum, 32 767 s).
pub const MAX_KEEP_ALIVE_DELAY: Duration = Duration::from_secs(32_767);

/// `dnsQueryType` (Direct Sockets): which address family a name is resolved to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DnsQueryType {
    /// `"ipv4"`: A records only.
    Ipv4,
    /// `"ipv6"`: AAAA records only.
    Ipv6,
}

impl DnsQueryType {
    /// The spec string: `"ipv4"` or `"ipv6"`.
    pub fn as_str(self) -> &'static str {
        match self {
            DnsQueryType::Ipv4 => "ipv4",
            DnsQueryType::Ipv6 => "ipv6",
        }
    }

    /// Whether `ip` is of this family.
    pub fn admits(self, ip: IpAddr) -> bool {
        ip.is_ipv4() == (self == DnsQueryType::Ipv4)
    }
}

impl TcpOptions {
    /// `InvalidAccessError` for out-of-range values (see each field), or a `dns_query_type`
    /// that contradicts `local_address` or an IP literal `host`.
    pub(crate) fn check(&self, host: &Host) -> Result<SocketSettings, ApiError> {
        if let Some(delay) = self.keep_alive {
            if !(MIN_KEEP_ALIVE_DELAY..=MAX_KEEP_ALIVE_DELAY).contains(&delay) {
                return Err(ApiError::access(format!(
                    "keepAliveDelay {delay:?} is not between {MIN_KEEP_ALIVE_DELAY:?} and \
                     {MAX_KEEP_ALIVE_DELAY:?}"
                )));
            }
        }
        let settings = SocketSettings {
            send_buffer: self.send_buffer_size,
            receive_buffer: self.receive_buffer_size,
            ..SocketSettings::default()
        };
        settings.check()?;
        if let Some(family) = self.dns_query_type {
            let literal = match host {
                Host::Ip(ip) => Some(("host", *ip)),
                Host::Name(_) => None,
            };
            let local = self.local_address.map(|ip| ("localAddress", ip));
            for (what, ip) in [literal, local].into_iter().flatten() {
                if !family.admits(ip) {
                    return Err(ApiError::access(format!(
                        "{what} {ip} is not of dnsQueryType \"{}\"",
                        family.as_str()
                    )));
                }
            }
        }
        Ok(settings)
    }
}
