//! Secure transport ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket) TLS rules, §2 secure server, §4 Security* names).
//!
//! Every rustls call of the crate lives in this module, behind the small `Engine` trait the
//! TCP state machine uses, so that a rustls upgrade (or a switch to its in-place `unbuffered`
//! API) touches one file, and tests can drive the state machine with a scripted engine.
//!
//! One crypto provider is chosen at build time ([`provider`]: aws-lc-rs with post-quantum key
//! exchange by default, *ring* with the feature `ring`), wired with `builder_with_provider` so
//! that cargo feature unification can never make a config builder panic for want of a
//! process-default provider (the crate never installs one, and never calls
//! `CryptoProvider::get_default`).
//!
//! Certificates are verified by every config built here: sockstate has no option or switch
//! that turns verification off. A config the embedder builds itself is honoured as given,
//! though: `TcpOptions::tls_config` takes any rustls `ClientConfig`, including one made with
//! rustls's own `dangerous()` API and a verifier that accepts anything, and sockstate does not
//! inspect or refuse it ([BEHAVIOUR §5](crate::behaviour#5-trust)).
//! Validity periods are checked against the config's `TimeProvider` (rustls's default reads the
//! system clock; pass a fixed one, as the tests do, for deterministic runs).

use std::fmt;
use std::ops::DerefMut;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, ReadEarlyData, UnbufferedConnectionCommon,
    UnbufferedStatus,
};
use rustls::{AlertDescription, CertificateError, Error as RustlsError, PeerIncompatible};

pub use rustls::pki_types;
pub use rustls::time_provider::TimeProvider;
pub use rustls::{
    CipherSuite, ClientConfig, NamedGroup, ProtocolVersion, RootCertStore, ServerConfig,
    SupportedProtocolVersion,
};

use crate::error::{ErrorCode, SocketError};
use crate::host::Host;

#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
compile_error!(
    "sockstate needs a crypto provider for rustls: enable the feature `aws-lc-rs` (the \
     default, post-quantum key exchange) or `ring`"
);

/// The crypto provider every config built here uses: rustls's aws-lc-rs provider (feature
/// `aws-lc-rs`, the default) offering the post-quantum hybrid `X25519MLKEM768` first, or its
/// *ring* provider (feature `ring`, classical key exchange only). With both features enabled,
/// aws-lc-rs is used.
///
/// The key exchange groups are set here, whatever rustls's own features say: on aws-lc-rs
/// `X25519MLKEM768`, `X25519`, `secp256r1`, `secp384r1` (the order browsers and rustls's own
/// default use); on *ring* `X25519`, `secp256r1`, `secp384r1` (rustls 0.23.48 moved
/// `secp384r1` first in ring's own default, which costs about four times X25519's handshake
/// time here; we keep the order browsers use).
///
/// ```
/// # #[cfg(feature = "aws-lc-rs")] {
/// use rustls::NamedGroup;
/// let provider = sockstate::tls::provider();
/// assert_eq!(provider.kx_groups[0].name(), NamedGroup::X25519MLKEM768);
/// # }
/// ```
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    {
        use rustls::crypto::aws_lc_rs::{default_provider, kx_group};
        Arc::new(rustls::crypto::CryptoProvider {
            kx_groups: vec![
                kx_group::X25519MLKEM768,
                kx_group::X25519,
                kx_group::SECP256R1,
                kx_group::SECP384R1,
            ],
            ..default_provider()
        })
    }
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    {
        use rustls::crypto::ring::kx_group;
        // rustls 0.23.48 deprecates this for want of post-quantum key exchange: choosing ring
        // without it is what the feature `ring` asks for (documented above and in the crate docs).
        #[allow(deprecated)]
        let default_provider = rustls::crypto::ring::default_provider;
        Arc::new(rustls::crypto::CryptoProvider {
            kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
            ..default_provider()
        })
    }
}

/// Trust anchors: Mozilla's root program, compiled in (`webpki-roots`). The default.
pub fn mozilla_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

crate::options_struct! {
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
        /// The crypto provider; `None`: [`provider()`]. (A recorded session's is wrapped by
        /// [`TlsDraws::provider`](crate::replay::TlsDraws::provider).)
        pub provider: Option<Arc<rustls::crypto::CryptoProvider>>,
        /// Record what the config draws and decides so that its sessions replay whole
        /// (the driver's `Recording::tls_draws`): the provider and the clock are wrapped by
        /// it, and the certificate verifier's verdicts and the client certificate presented
        /// are recorded too (never a private key; see [`crate::replay`]).
        pub draws: Option<crate::replay::TlsDraws>,
    }
}

/// A client config on [`provider`], verifying the server for the host it connects to.
///
/// No [`ClientOptions`] field turns verification off. This is the only way sockstate builds
/// a client config; `TcpOptions::tls_config` also takes a config the embedder built with
/// rustls directly, and honours it as given, even one whose verifier (set through rustls's
/// `dangerous()` API) accepts any certificate.
///
/// ```
/// let config = sockstate::tls::client_config(Default::default()).unwrap();
/// let options = sockstate::TcpOptions::default()
///     .use_secure_transport(true)
///     .tls_config(Some(config));
/// # let _ = options;
/// ```
pub fn client_config(options: ClientOptions) -> Result<Arc<ClientConfig>, RustlsError> {
    let (provider, time) = drawn(&options.draws, options.provider, options.time);
    let builder = match time {
        Some(time) => ClientConfig::builder_with_details(provider.clone(), time),
        None => ClientConfig::builder_with_provider(provider.clone()),
    };
    let builder = match &options.versions {
        Some(versions) => builder.with_protocol_versions(versions)?,
        None => builder.with_safe_default_protocol_versions()?,
    };
    let roots = options.roots.unwrap_or_else(mozilla_roots);
    let builder = match &options.draws {
        // The verifier `with_root_certificates` makes, its verdicts recorded.
        Some(draws) => {
            let verifier =
                rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .map_err(|e| RustlsError::General(e.to_string()))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(draws.verifier(verifier))
        }
        None => builder.with_root_certificates(roots),
    };
    let mut config = match options.client_auth {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    };
    if let Some(draws) = &options.draws {
        config.client_auth_cert_resolver =
            draws.client_certs(Arc::clone(&config.client_auth_cert_resolver));
    }
    config.alpn_protocols = options.alpn;
    Ok(Arc::new(config))
}

/// The provider and clock of a config: `draws`' wrappers of those given (or the defaults).
fn drawn(
    draws: &Option<crate::replay::TlsDraws>,
    provider: Option<Arc<rustls::crypto::CryptoProvider>>,
    time: Option<Arc<dyn TimeProvider>>,
) -> (
    Arc<rustls::crypto::CryptoProvider>,
    Option<Arc<dyn TimeProvider>>,
) {
    let provider = provider.unwrap_or_else(self::provider);
    match draws {
        None => (provider, time),
        Some(draws) => {
            let time = time.unwrap_or_else(|| Arc::new(rustls::time_provider::DefaultTimeProvider));
            (draws.provider(provider), Some(draws.time(time)))
        }
    }
}

crate::options_struct! {
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
        /// The crypto provider; `None`: [`provider()`].
        pub provider: Option<Arc<rustls::crypto::CryptoProvider>>,
        /// Record what the config draws and decides so that its sessions replay whole (as
        /// [`ClientOptions::draws`]; the chain presented is recorded, never the key).
        pub draws: Option<crate::replay::TlsDraws>,
    }
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
            provider: None,
            draws: None,
        }
    }
}

/// A server config on [`provider`].
pub fn server_config(options: ServerOptions) -> Result<Arc<ServerConfig>, RustlsError> {
    let (provider, time) = drawn(&options.draws, options.provider, options.time);
    let builder = match time {
        Some(time) => ServerConfig::builder_with_details(provider, time),
        None => ServerConfig::builder_with_provider(provider),
    };
    let builder = match &options.versions {
        Some(versions) => builder.with_protocol_versions(versions)?,
        None => builder.with_safe_default_protocol_versions()?,
    };
    let mut config = builder
        .with_no_client_auth()
        .with_single_cert(options.chain, options.key)?;
    if let Some(draws) = &options.draws {
        config.cert_resolver = draws.server_certs(Arc::clone(&config.cert_resolver));
    }
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
    /// Feeds ciphertext read from the peer; pushes the plaintext it yields onto `plaintext`
    /// (one buffer per call at most), gathered in a block from `blocks`.
    fn receive(
        &mut self,
        ciphertext: Bytes,
        plaintext: &mut Vec<Bytes>,
        blocks: &mut Blocks,
    ) -> Result<(), SocketError>;
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
    /// What the handshake agreed on, once it completed.
    fn info(&self) -> Option<TlsInfo>;
}

/// What a completed TLS handshake agreed on, for display and diagnostics
/// ([`TcpSocket::tls_info`](crate::TcpSocket::tls_info)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// The protocol version (`TLSv1_3` or `TLSv1_2`).
    pub version: rustls::ProtocolVersion,
    /// The cipher suite.
    pub cipher_suite: rustls::CipherSuite,
    /// The key exchange group (`None` when the session was resumed without one).
    pub key_exchange_group: Option<rustls::NamedGroup>,
    /// The peer's certificate chain, leaf first (empty when the peer sent none, as a client
    /// of a server that does not ask for one).
    pub peer_certificates: Vec<CertificateDer<'static>>,
}

/// Starts a session: a client verifying the server as `host`, or a server.
pub(crate) fn start(role: &Role, host: &Host) -> Result<Box<dyn Engine>, SocketError> {
    let engine: Box<dyn Engine> = match role {
        Role::Client(config) => {
            let name = match host {
                Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
                Host::Name(name) => ServerName::try_from(name.as_str().to_owned())
                    .map_err(|_| SocketError::new(ErrorCode::ProtocolOther, "invalid SNI name"))?,
            };
            let conn =
                UnbufferedClientConnection::new(config.clone(), name).map_err(|e| map_error(&e))?;
            Box::new(Unbuffered::new(conn))
        }
        Role::Server(config) => {
            let conn =
                UnbufferedServerConnection::new(config.clone()).map_err(|e| map_error(&e))?;
            Box::new(Unbuffered::new(conn))
        }
    };
    Ok(engine)
}

/// A rustls connection driven through its `unbuffered` API: ciphertext is decrypted where it
/// was read (no reassembly copy unless a record straddles two reads), and records are
/// encrypted straight into the buffer handed to the OS.
///
/// Copies of payload: receiving, rustls 0.23 moves each decrypted record into a plaintext
/// queue of its own (there is no public API to take it without that copy) and we copy it once
/// into the buffer the app gets; sending, plaintext is copied once, into the record it is
/// encrypted in.
struct Unbuffered<C> {
    conn: C,
    /// Ciphertext not yet consumed by rustls: at most one partial record once the handshake
    /// is done.
    incoming: BytesMut,
    /// Records encoded or encrypted, not yet taken for the wire.
    outgoing: BytesMut,
    /// Where decrypted records are gathered for the app during a `receive`: a block taken from
    /// the core's [`Blocks`] and given back (empty) before `receive` returns.
    plaintext: BytesMut,
    peer_closed: bool,
    notify_sent: bool,
}

/// The two sides of rustls's unbuffered API, which differ only in their concrete types.
trait Side: Send + DerefMut<Target = UnbufferedConnectionCommon<Self::Data>> {
    type Data;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data>;
    /// Reads 0-RTT data (only a server whose config enables it ever sees any).
    fn early_data(
        state: ReadEarlyData<'_, '_, Self::Data>,
        plaintext: &mut BytesMut,
    ) -> Result<usize, RustlsError>;
}

impl Side for UnbufferedClientConnection {
    type Data = ClientConnectionData;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, ClientConnectionData> {
        self.process_tls_records(incoming)
    }
    fn early_data(
        _: ReadEarlyData<'_, '_, ClientConnectionData>,
        _: &mut BytesMut,
    ) -> Result<usize, RustlsError> {
        Err(RustlsError::General("early data on a client".into()))
    }
}

impl Side for UnbufferedServerConnection {
    type Data = ServerConnectionData;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, ServerConnectionData> {
        self.process_tls_records(incoming)
    }
    fn early_data(
        mut state: ReadEarlyData<'_, '_, ServerConnectionData>,
        plaintext: &mut BytesMut,
    ) -> Result<usize, RustlsError> {
        let mut discard = 0;
        while let Some(record) = state.next_record() {
            let record = record?;
            discard += record.discard;
            plaintext.extend_from_slice(record.payload);
        }
        Ok(discard)
    }
}

/// What the app asks of a processing pass once the session can write application data.
enum Intent<'a> {
    /// Only process what was received.
    Receive,
    Encrypt(&'a [u8]),
    CloseNotify,
}

/// Where a processing pass stopped.
#[derive(PartialEq)]
enum Stop {
    /// rustls wants more ciphertext (or has nothing more to do).
    Blocked,
    /// Processed something; call again.
    Again,
}

/// TLS record header and the most a record adds to its plaintext (TLS 1.2 AES-GCM: 8 bytes of
/// explicit nonce and a 16-byte tag; TLS 1.3: content type and tag).
const RECORD_HEADER: usize = 5;
const RECORD_OVERHEAD: usize = RECORD_HEADER + 8 + 16 + 1;
/// Room the ciphertext buffer keeps: a 64 KiB read beside a partial record.
const INCOMING_ROOM: usize = (64 << 10) + 2 * (MAX_FRAGMENT + RECORD_OVERHEAD);
/// rustls's largest plaintext fragment (the TLS maximum).
const MAX_FRAGMENT: usize = 16 << 10;

/// Ciphertext of at most two records is decrypted into a buffer of its size (plaintext is never
/// longer) rather than into a block: a trickle of records then pins no block, and its plaintext
/// is still copied once.
const OWN_READ: usize = 2 * (MAX_FRAGMENT + RECORD_OVERHEAD);
/// Plaintext of a longer read that comes to at most this (rare: mostly records without data) is
/// copied out of its block, so that a part the app keeps holds its block at most 96 times its
/// size ([`BLOCK`] / 4 KiB; a whole record's part, at most 24 times).
const SMALL_PLAINTEXT: usize = 4 << 10;

/// The plaintext blocks of every TLS socket of a core, shared: each `receive` gathers the
/// plaintext it decrypts in a block, hands it to the app as a part of the block (no copy), and
/// gives the block back. A block is taken again while it has room after its parts, and is
/// reclaimed whole once the app has dropped them all. Without it, every 64 KiB read of a bulk
/// transfer got a fresh allocation (the previous read's plaintext still waited in the inbox,
/// so the buffer could not be reused), and the allocator trimmed and faulted those pages in
/// again: 28-50 k page faults per 2 GiB received, the driver's TLS throughput swinging by a
/// third from run to run. At most [`BLOCKS`] are kept (an idle socket holds none), each
/// [`BLOCK`] bytes unless a larger `receive` needed more.
#[derive(Debug, Default)]
pub(crate) struct Blocks {
    free: Vec<BytesMut>,
}

/// Most blocks a core keeps.
const BLOCKS: usize = 4;
/// A block's size: what the driver reads in one turn (4 reads of 64 KiB) and their records.
const BLOCK: usize = 4 * INCOMING_ROOM;

impl Blocks {
    /// A block with room for `need` bytes: a kept one that has it after its parts or can be
    /// reclaimed whole, else a new one.
    pub(crate) fn take(&mut self, need: usize) -> BytesMut {
        let fits = (self.free.iter_mut()).position(|b| b.capacity() >= need || b.try_reclaim(need));
        match fits {
            Some(i) => self.free.remove(i),
            None => BytesMut::with_capacity(need.max(BLOCK)),
        }
    }

    /// Keeps an emptied block (its parts may still be held by the app); when all are kept, the
    /// one kept longest goes.
    pub(crate) fn give(&mut self, mut block: BytesMut) {
        debug_assert!(block.is_empty(), "a block is given back once handed out");
        if block.capacity() == 0 && !block.try_reclaim(1) {
            return; // no allocation (never taken), or one whose parts are all still held
        }
        if self.free.len() == BLOCKS {
            self.free.remove(0);
        }
        self.free.push(block);
    }
}

impl<C: Side> Unbuffered<C> {
    fn new(conn: C) -> Self {
        let mut engine = Unbuffered {
            conn,
            incoming: BytesMut::new(),
            outgoing: BytesMut::new(),
            plaintext: BytesMut::new(),
            peer_closed: false,
            notify_sent: false,
        };
        // A client's ClientHello is encoded here; a server has nothing to say yet. Neither
        // can fail before any byte is received.
        let _ = engine.run(Intent::Receive);
        engine
    }

    /// Runs rustls over the ciphertext held until it blocks, gathering plaintext (into
    /// `self.plaintext`, whatever the intent: nothing decrypted is ever dropped) and records,
    /// and carries out `intent` when the session can write.
    fn run(&mut self, mut intent: Intent<'_>) -> Result<(), RustlsError> {
        loop {
            let status = self.conn.process(&mut self.incoming);
            let mut discard = status.discard;
            let stop = match status.state {
                Err(e) => {
                    self.incoming.advance(discard.min(self.incoming.len()));
                    return Err(e);
                }
                Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                    while let Some(record) = traffic.next_record() {
                        let record = record?;
                        discard += record.discard;
                        self.plaintext.extend_from_slice(record.payload);
                    }
                    Stop::Again
                }
                Ok(ConnectionState::ReadEarlyData(early)) => {
                    discard += C::early_data(early, &mut self.plaintext)?;
                    Stop::Again
                }
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    fill(&mut self.outgoing, RECORD_OVERHEAD, |buf| {
                        match encode.encode(buf) {
                            Ok(n) => Ok(n),
                            Err(EncodeError::InsufficientSize(e)) => Err(Some(e.required_size)),
                            Err(_) => Err(None),
                        }
                    })?;
                    Stop::Again
                }
                // Encoded records are in `outgoing`, which goes to the wire in order.
                Ok(ConnectionState::TransmitTlsData(transmit)) => {
                    transmit.done();
                    Stop::Again
                }
                Ok(ConnectionState::PeerClosed) => {
                    self.peer_closed = true;
                    Stop::Again
                }
                Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                    match std::mem::replace(&mut intent, Intent::Receive) {
                        Intent::Receive => {}
                        Intent::Encrypt(data) => {
                            let records = data.len().div_ceil(MAX_FRAGMENT).max(1);
                            let estimate = data.len() + records * RECORD_OVERHEAD;
                            fill(&mut self.outgoing, estimate, |buf| {
                                traffic.encrypt(data, buf).map_err(encrypt_error)
                            })?;
                        }
                        Intent::CloseNotify => {
                            fill(&mut self.outgoing, RECORD_OVERHEAD, |buf| {
                                traffic.queue_close_notify(buf).map_err(encrypt_error)
                            })?;
                        }
                    }
                    Stop::Blocked
                }
                Ok(_) => Stop::Blocked, // BlockedHandshake, Closed
            };
            self.incoming.advance(discard.min(self.incoming.len()));
            if stop == Stop::Blocked {
                return match intent {
                    Intent::Receive => Ok(()),
                    _ => Err(RustlsError::General(
                        "the TLS session cannot send application data".into(),
                    )),
                };
            }
        }
    }
}

/// How many more bytes complete the record at the front of `held` (its header first), so that
/// a record straddling two reads is joined with the least copying; `None` when that record is
/// already whole (rustls holds it back, e.g. a handshake message spanning records): then
/// there is nothing to complete, and what comes next is appended whole.
fn record_rest(held: &[u8]) -> Option<usize> {
    match held.get(..RECORD_HEADER) {
        None => Some(RECORD_HEADER - held.len()),
        Some(header) => {
            let body = usize::from(u16::from_be_bytes([header[3], header[4]]));
            (RECORD_HEADER + body)
                .checked_sub(held.len())
                .filter(|&rest| rest > 0)
        }
    }
}

/// Encodes into the spare end of `out`: `write` gets at least `want` bytes and may ask for
/// more (`Err(Some(required))`); what it does not use is given back.
fn fill(
    out: &mut BytesMut,
    want: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, Option<usize>>,
) -> Result<(), RustlsError> {
    let start = out.len();
    let mut size = want;
    loop {
        out.resize(start + size, 0);
        match write(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(Some(required)) if required > size => size = required,
            Err(_) => {
                out.truncate(start);
                return Err(RustlsError::General("TLS record encoding failed".into()));
            }
        }
    }
}

fn encrypt_error(e: EncryptError) -> Option<usize> {
    match e {
        EncryptError::InsufficientSize(e) => Some(e.required_size),
        _ => None,
    }
}

impl<C> fmt::Debug for Unbuffered<C>
where
    C: Side,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unbuffered")
            .field("handshaking", &self.conn.is_handshaking())
            .field("incoming", &self.incoming.len())
            .field("outgoing", &self.outgoing.len())
            .finish_non_exhaustive()
    }
}

impl<C: Side> Engine for Unbuffered<C> {
    fn receive(
        &mut self,
        ciphertext: Bytes,
        plaintext: &mut Vec<Bytes>,
        blocks: &mut Blocks,
    ) -> Result<(), SocketError> {
        // Room for all the plaintext this ciphertext can hold: a buffer of its own when short
        // (see `OWN_READ`), else in one block.
        let need = self.incoming.len() + ciphertext.len();
        let mut own = false;
        if self.plaintext.is_empty() && self.plaintext.capacity() < need {
            own = need <= OWN_READ;
            let buffer = match own {
                true => BytesMut::with_capacity(need),
                false => blocks.take(need),
            };
            blocks.give(std::mem::replace(&mut self.plaintext, buffer));
        }
        let result = if !self.notify_sent {
            self.receive_records(ciphertext)
        } else {
            // rustls 0.23 counts our close_notify as a fatal alert, and a malformed record
            // after it (possible only after a TLS half-close) trips its `debug_assert!` on
            // sending a second one. Contain that upstream assertion: the record is a protocol
            // error either way.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.receive_records(ciphertext)
            }))
            .unwrap_or_else(|_| {
                Err(SocketError::new(
                    ErrorCode::ProtocolOther,
                    "a malformed TLS record after our close_notify",
                ))
            })
        };
        if own {
            let mine = std::mem::take(&mut self.plaintext);
            if !mine.is_empty() {
                plaintext.push(mine.freeze());
            }
        } else if self.plaintext.len() > SMALL_PLAINTEXT {
            plaintext.push(self.plaintext.split().freeze());
        } else if !self.plaintext.is_empty() {
            plaintext.push(Bytes::copy_from_slice(&self.plaintext));
            self.plaintext.clear();
        }
        blocks.give(std::mem::take(&mut self.plaintext));
        result
    }

    fn encrypt(&mut self, plaintext: &[u8]) -> Result<(), SocketError> {
        self.run(Intent::Encrypt(plaintext))
            .map_err(|e| map_error(&e))
    }

    fn close_notify(&mut self) {
        self.notify_sent = true;
        // Fails only if the session cannot write (closed, or failed): then there is nobody
        // to notify.
        let _ = self.run(Intent::CloseNotify);
    }

    fn take_outgoing(&mut self) -> Option<Bytes> {
        (!self.outgoing.is_empty()).then(|| self.outgoing.split().freeze())
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

    fn info(&self) -> Option<TlsInfo> {
        if self.conn.is_handshaking() {
            return None;
        }
        Some(TlsInfo {
            version: self.conn.protocol_version()?,
            cipher_suite: self.conn.negotiated_cipher_suite()?.suite(),
            key_exchange_group: self.conn.negotiated_key_exchange_group().map(|g| g.name()),
            peer_certificates: self.conn.peer_certificates().unwrap_or_default().to_vec(),
        })
    }
}

impl<C: Side> Unbuffered<C> {
    /// Processes `ciphertext`. A buffer nobody else holds is decrypted where it is, and a
    /// record straddling two such buffers is joined by copying only its rest; otherwise the
    /// ciphertext is copied into the engine's own buffer, whose allocation is reused.
    fn receive_records(&mut self, mut data: Bytes) -> Result<(), SocketError> {
        while !data.is_empty() && !self.peer_closed {
            if self.incoming.is_empty() && data.is_unique() {
                match std::mem::take(&mut data).try_into_mut() {
                    Ok(whole) => self.incoming = whole,
                    Err(shared) => data = shared,
                }
            }
            if !data.is_empty() {
                // While handshaking rustls may hold back a message spanning records: join all.
                let rest = match data.is_unique() && !self.conn.is_handshaking() {
                    true => record_rest(&self.incoming),
                    false => None,
                };
                let take = rest.unwrap_or(data.len()).min(data.len());
                // Room for a whole read beside a partial record, reserved once and then reused
                // (growing by doubling freed and mapped large buffers over and over).
                self.incoming.reserve(take.max(INCOMING_ROOM));
                self.incoming.extend_from_slice(&data.split_to(take));
            }
            self.plaintext.reserve(self.incoming.len() + data.len());
            self.run(Intent::Receive).map_err(|e| map_error(&e))?;
        }
        Ok(())
    }
}

/// Maps a rustls error to its Mozilla name ([BEHAVIOUR §4](crate::behaviour#4-errors)).
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

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::{record_rest, Blocks, BLOCK, BLOCKS};

    /// Where a buffer's bytes start, to tell allocations apart.
    fn at(buf: &[u8]) -> usize {
        buf.as_ptr() as usize
    }

    #[test]
    fn a_block_serves_receives_while_it_has_room_and_is_reclaimed_once_its_parts_are_dropped() {
        let mut blocks = Blocks::default();
        let mut block = blocks.take(100);
        assert!(block.capacity() >= BLOCK, "a new block is a whole one");
        block.extend_from_slice(&[1; 100]);
        let first = block.split().freeze(); // handed to the app
        let base = at(&first);
        blocks.give(block);
        // The next receive continues in the same block, after the part handed out.
        let mut block = blocks.take(BLOCK / 2);
        block.extend_from_slice(&[2; 10]);
        assert_eq!(at(&block), base + 100, "the same block, after its part");
        let second = block.split().freeze();
        blocks.give(block);
        // Too little room left and its parts still held: a new block.
        let mut other = blocks.take(BLOCK);
        other.extend_from_slice(&[3; 10]);
        assert!(
            at(&other) < base || at(&other) >= base + BLOCK,
            "a new block"
        );
        other.clear();
        blocks.give(other);
        // The app drops what it was given: the first block is reclaimed whole.
        drop((first, second));
        let mut again = blocks.take(BLOCK);
        again.extend_from_slice(&[4; 10]);
        assert_eq!(at(&again), base, "reclaimed from its start");
        again.clear();
        blocks.give(again);
    }

    #[test]
    fn the_core_keeps_a_few_blocks_and_none_without_an_allocation() {
        let mut blocks = Blocks::default();
        blocks.give(BytesMut::new());
        assert!(blocks.free.is_empty(), "nothing to reuse");
        let taken: Vec<BytesMut> = (0..BLOCKS + 2).map(|_| blocks.take(BLOCK)).collect();
        for block in taken {
            blocks.give(block);
        }
        assert_eq!(blocks.free.len(), BLOCKS);
    }

    #[test]
    fn the_rest_of_a_straddling_record_is_counted_from_its_header() {
        assert_eq!(record_rest(b""), Some(5));
        assert_eq!(record_rest(b"\x17\x03"), Some(3));
        // A 10-byte body with 2 of it held: 8 to come.
        assert_eq!(record_rest(b"\x17\x03\x03\x00\x0aab"), Some(8));
        // A whole record held back (or more than one): nothing to complete, never a
        // byte-at-a-time join.
        assert_eq!(record_rest(b"\x17\x03\x03\x00\x02ab"), None);
        assert_eq!(record_rest(b"\x17\x03\x03\x00\x01abcdef"), None);
    }

    /// The configs built here offer the post-quantum hybrid first when aws-lc-rs is the
    /// provider, and the server picks it: the negotiated group of a whole handshake (both ends
    /// on this module's configs, in memory) is X25519MLKEM768. On ring alone: X25519.
    #[test]
    fn handshake_negotiates_the_providers_first_group() {
        use super::{client_config, ClientOptions, ServerName};
        use crate::testkit::tls::{client_config_with, server_config, Ca};
        use rustls::NamedGroup;

        let expected = if cfg!(feature = "aws-lc-rs") {
            NamedGroup::X25519MLKEM768
        } else {
            NamedGroup::X25519
        };
        let ca = Ca::new("kx test CA");
        let client = client_config_with(ca.roots(), None);
        assert_eq!(client.crypto_provider().kx_groups[0].name(), expected);
        let default = client_config(ClientOptions::default()).unwrap();
        assert_eq!(default.crypto_provider().kx_groups[0].name(), expected);

        let name = ServerName::try_from("kx.test").unwrap();
        let mut c = rustls::ClientConnection::new(client, name).unwrap();
        let mut s =
            rustls::ServerConnection::new(server_config(ca.leaf(&["kx.test"], 2040))).unwrap();
        for _ in 0..10 {
            if !c.is_handshaking() && !s.is_handshaking() {
                break;
            }
            let mut wire = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut wire).unwrap();
            }
            let mut rd = &wire[..];
            while !rd.is_empty() {
                s.read_tls(&mut rd).unwrap();
                s.process_new_packets().unwrap();
            }
            let mut wire = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut wire).unwrap();
            }
            let mut rd = &wire[..];
            while !rd.is_empty() {
                c.read_tls(&mut rd).unwrap();
                c.process_new_packets().unwrap();
            }
        }
        assert!(!c.is_handshaking() && !s.is_handshaking());
        for group in [
            c.negotiated_key_exchange_group(),
            s.negotiated_key_exchange_group(),
        ] {
            assert_eq!(group.map(|g| g.name()), Some(expected));
        }
    }
}
