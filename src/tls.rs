//! Secure transport (BEHAVIOUR §1 TLS rules, §2 secure server, §4 Security* names).
//!
//! Every rustls call of the crate lives in this module, behind the small [`Engine`] trait the
//! TCP state machine uses, so that a rustls upgrade (or a switch to its in-place `unbuffered`
//! API) touches one file, and tests can drive the state machine with a scripted engine.
//!
//! One crypto provider is chosen deliberately: *ring* (it builds in a third of aws-lc-rs's time),
//! wired with `builder_with_provider` so that cargo feature unification can never make a config
//! builder panic for want of a process-default provider.
//!
//! Certificates are always verified: there is no option here that turns verification off.
//! Validity periods are checked against the config's `TimeProvider` (rustls's default reads the
//! system clock; pass a fixed one, as the tests do, for deterministic runs).

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{AlertDescription, CertificateError, Error as RustlsError, PeerIncompatible};

pub use rustls::pki_types;
pub use rustls::time_provider::TimeProvider;
pub use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};

use crate::error::{ErrorCode, SocketError};
use crate::host::Host;

/// The crypto provider every config built here uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Trust anchors: Mozilla's root program, compiled in (`webpki-roots`). The default.
pub fn mozilla_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// Options for a client config. Trust roots default to [`mozilla_roots`]; the OS store can be
/// loaded by the embedder (e.g. with `rustls-native-certs`, which reads files: the core does no
/// I/O) and passed as `roots`.
#[derive(Debug, Default)]
pub struct ClientOptions {
    /// Trust anchors; `None`: Mozilla's roots.
    pub roots: Option<RootCertStore>,
    /// A client certificate chain (leaf first) and its key, for servers that ask for one.
    pub client_auth: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    /// ALPN protocols to offer, most preferred first.
    pub alpn: Vec<Vec<u8>>,
    /// The clock certificates are checked against; `None`: the system clock.
    pub time: Option<Arc<dyn TimeProvider>>,
    /// TLS versions to allow; `None`: 1.2 and 1.3.
    pub versions: Option<Vec<&'static SupportedProtocolVersion>>,
}

/// A client config on the ring provider, verifying the server for the host it connects to.
///
/// ```
/// let config = sockstate::tls::client_config(Default::default()).unwrap();
/// let options = sockstate::TcpOptions {
///     use_secure_transport: true,
///     tls_config: Some(config),
///     ..Default::default()
/// };
/// # let _ = options;
/// ```
pub fn client_config(options: ClientOptions) -> Result<Arc<ClientConfig>, RustlsError> {
    let builder = match options.time {
        Some(time) => ClientConfig::builder_with_details(provider(), time),
        None => ClientConfig::builder_with_provider(provider()),
    };
    let builder = match &options.versions {
        Some(versions) => builder.with_protocol_versions(versions)?,
        None => builder.with_safe_default_protocol_versions()?,
    }
    .with_root_certificates(options.roots.unwrap_or_else(mozilla_roots));
    let mut config = match options.client_auth {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = options.alpn;
    Ok(Arc::new(config))
}

/// Options for a server config: its certificate chain (leaf first) and key are required.
#[derive(Debug)]
pub struct ServerOptions {
    /// The certificate chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
    /// ALPN protocols to accept, most preferred first.
    pub alpn: Vec<Vec<u8>>,
    /// The clock; `None`: the system clock.
    pub time: Option<Arc<dyn TimeProvider>>,
    /// TLS versions to allow; `None`: 1.2 and 1.3.
    pub versions: Option<Vec<&'static SupportedProtocolVersion>>,
}

impl ServerOptions {
    /// A chain and its key, everything else default.
    pub fn new(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Self {
        ServerOptions {
            chain,
            key,
            alpn: Vec::new(),
            time: None,
            versions: None,
        }
    }
}

/// A server config on the ring provider.
pub fn server_config(options: ServerOptions) -> Result<Arc<ServerConfig>, RustlsError> {
    let builder = match options.time {
        Some(time) => ServerConfig::builder_with_details(provider(), time),
        None => ServerConfig::builder_with_provider(provider()),
    };
    let builder = match &options.versions {
        Some(versions) => builder.with_protocol_versions(versions)?,
        None => builder.with_safe_default_protocol_versions()?,
    };
    let mut config = builder
        .with_no_client_auth()
        .with_single_cert(options.chain, options.key)?;
    config.alpn_protocols = options.alpn;
    Ok(Arc::new(config))
}

/// The TLS side a socket takes.
#[derive(Clone)]
pub(crate) enum Role {
    Client(Arc<ClientConfig>),
    Server(Arc<ServerConfig>),
}

impl fmt::Debug for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Client(_) => "Client",
            Role::Server(_) => "Server",
        })
    }
}

/// What the TCP state machine needs of a TLS session. Ciphertext goes in and out as owned
/// buffers; plaintext comes out as owned buffers handed to the app as they are.
pub(crate) trait Engine: Send + fmt::Debug {
    /// Feeds ciphertext read from the peer; pushes the plaintext it yields onto `plaintext`.
    fn receive(&mut self, ciphertext: &[u8], plaintext: &mut Vec<Bytes>)
        -> Result<(), SocketError>;
    /// Encrypts application data (only once the handshake is done).
    fn encrypt(&mut self, plaintext: &[u8]) -> Result<(), SocketError>;
    /// Queues a close_notify alert.
    fn close_notify(&mut self);
    /// Ciphertext to write, in order (handshake, records, alerts).
    fn take_outgoing(&mut self) -> Option<Bytes>;
    /// The handshake has not completed yet.
    fn is_handshaking(&self) -> bool;
    /// The peer sent close_notify: no more application data will come.
    fn peer_closed(&self) -> bool;
    /// The protocol ALPN agreed on, once the handshake got that far.
    fn alpn_protocol(&self) -> Option<&[u8]>;
}

/// Starts a session: a client verifying the server as `host`, or a server.
pub(crate) fn start(role: &Role, host: &Host) -> Result<Box<dyn Engine>, SocketError> {
    let conn: rustls::Connection = match role {
        Role::Client(config) => {
            let name = match host {
                Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
                Host::Name(name) => ServerName::try_from(name.as_str().to_owned())
                    .map_err(|_| SocketError::new(ErrorCode::ProtocolOther, "invalid SNI name"))?,
            };
            rustls::ClientConnection::new(config.clone(), name)
                .map_err(|e| map_error(&e))?
                .into()
        }
        Role::Server(config) => rustls::ServerConnection::new(config.clone())
            .map_err(|e| map_error(&e))?
            .into(),
    };
    let mut conn = conn;
    // The state machine bounds the ciphertext it asks for (it encrypts only while little is
    // waiting for the OS), so rustls's own 64 KiB limit would only split writes.
    conn.set_buffer_limit(None);
    Ok(Box::new(Rustls {
        conn,
        peer_closed: false,
        notify_sent: false,
    }))
}

/// rustls's buffered connection.
struct Rustls {
    conn: rustls::Connection,
    peer_closed: bool,
    notify_sent: bool,
}

impl fmt::Debug for Rustls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rustls")
            .field("handshaking", &self.conn.is_handshaking())
            .finish_non_exhaustive()
    }
}

impl Engine for Rustls {
    fn receive(
        &mut self,
        ciphertext: &[u8],
        plaintext: &mut Vec<Bytes>,
    ) -> Result<(), SocketError> {
        if !self.notify_sent {
            return self.receive_records(ciphertext, plaintext);
        }
        // rustls 0.23 counts our close_notify as a fatal alert, and a malformed record after it
        // (possible only after a TLS half-close) trips its `debug_assert!` on sending a second
        // one. Contain that upstream assertion: the record is a protocol error either way.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.receive_records(ciphertext, plaintext)
        }))
        .unwrap_or_else(|_| {
            Err(SocketError::new(
                ErrorCode::ProtocolOther,
                "a malformed TLS record after our close_notify",
            ))
        })
    }

    fn encrypt(&mut self, plaintext: &[u8]) -> Result<(), SocketError> {
        self.conn
            .writer()
            .write_all(plaintext)
            .map_err(|e| SocketError::new(ErrorCode::ProtocolOther, e.to_string()))
    }

    fn close_notify(&mut self) {
        self.notify_sent = true;
        self.conn.send_close_notify();
    }

    fn take_outgoing(&mut self) -> Option<Bytes> {
        if !self.conn.wants_write() {
            return None;
        }
        let mut out = Vec::new();
        while self.conn.wants_write() {
            // Writing into a Vec cannot fail.
            if self.conn.write_tls(&mut out).is_err() {
                break;
            }
        }
        (!out.is_empty()).then(|| Bytes::from(out))
    }

    fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }
}

impl Rustls {
    fn receive_records(
        &mut self,
        mut ciphertext: &[u8],
        plaintext: &mut Vec<Bytes>,
    ) -> Result<(), SocketError> {
        loop {
            if !ciphertext.is_empty() && !self.peer_closed {
                // Fails only when rustls's plaintext buffer is full; it is emptied below
                // after every call, so that cannot happen.
                self.conn
                    .read_tls(&mut ciphertext)
                    .map_err(|e| SocketError::new(ErrorCode::ProtocolOther, e.to_string()))?;
            }
            let state = self.conn.process_new_packets().map_err(|e| map_error(&e))?;
            self.peer_closed |= state.peer_has_closed();
            let ready = state.plaintext_bytes_to_read();
            if ready > 0 {
                let mut buf = BytesMut::with_capacity(ready);
                let mut writer = (&mut buf).writer();
                io::copy(&mut self.conn.reader().take(ready as u64), &mut writer)
                    .map_err(|e| SocketError::new(ErrorCode::ProtocolOther, e.to_string()))?;
                plaintext.push(buf.freeze());
            }
            if ciphertext.is_empty() || self.peer_closed {
                return Ok(());
            }
        }
    }
}

/// Maps a rustls error to its Mozilla name (BEHAVIOUR §4).
pub(crate) fn map_error(error: &RustlsError) -> SocketError {
    let code = match error {
        RustlsError::InvalidCertificate(e) => certificate_code(e),
        RustlsError::PeerIncompatible(
            PeerIncompatible::ServerDoesNotSupportTls12Or13
            | PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig
            | PeerIncompatible::SupportedVersionsExtensionRequired
            | PeerIncompatible::Tls12NotOffered
            | PeerIncompatible::Tls12NotOfferedOrEnabled,
        )
        | RustlsError::AlertReceived(AlertDescription::ProtocolVersion) => {
            ErrorCode::UnsupportedTlsVersion
        }
        RustlsError::AlertReceived(alert) => match alert {
            AlertDescription::UnknownCA => ErrorCode::UntrustedCertificateIssuer,
            AlertDescription::CertificateExpired => ErrorCode::ExpiredCertificate,
            AlertDescription::CertificateRevoked => ErrorCode::RevokedCertificate,
            AlertDescription::BadCertificate | AlertDescription::UnsupportedCertificate => {
                ErrorCode::BadCertificate
            }
            AlertDescription::CertificateUnknown => ErrorCode::CertificateOther,
            _ => ErrorCode::ProtocolOther,
        },
        _ => ErrorCode::ProtocolOther,
    };
    SocketError::new(code, error.to_string())
}

fn certificate_code(error: &CertificateError) -> ErrorCode {
    match error {
        CertificateError::UnknownIssuer => ErrorCode::UntrustedCertificateIssuer,
        CertificateError::Expired
        | CertificateError::ExpiredContext { .. }
        | CertificateError::NotValidYet
        | CertificateError::NotValidYetContext { .. } => ErrorCode::ExpiredCertificate,
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            ErrorCode::CertificateDomainMismatch
        }
        CertificateError::Revoked => ErrorCode::RevokedCertificate,
        CertificateError::BadEncoding
        | CertificateError::BadSignature
        | CertificateError::UnsupportedSignatureAlgorithmContext { .. }
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. }
        | CertificateError::UnhandledCriticalExtension
        | CertificateError::InvalidPurpose
        | CertificateError::InvalidPurposeContext { .. } => ErrorCode::BadCertificate,
        _ => ErrorCode::CertificateOther,
    }
}
