//! The parts of a TLS config beyond its crypto provider that a replay needs: the verifier's
//! verdicts, the certificate chains presented, and the config facts a call records.
//!
//! A replay has no private key, trust roots or server certificate files; it does not need
//! them. While recording, configs built with [`ClientOptions::draws`](crate::tls::ClientOptions)
//! / [`ServerOptions::draws`](crate::tls::ServerOptions) wrap their certificate verifier and
//! certificate resolvers: each verdict (a chain or a signature accepted, or the error) and each
//! chain presented (public: it goes over the wire) is logged as a draw. On replay, configs
//! built from the recorded [`ConfigFacts`] use a verifier that returns the recorded verdicts
//! and resolvers that present the recorded chains with a key that returns the recorded
//! signatures: with the other draws (random bytes, key shares, the time), the handshake is
//! the recorded one, byte for byte. **No private key is ever recorded.**

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::time_provider::DefaultTimeProvider;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error, ServerConfig, SignatureAlgorithm,
    SignatureScheme,
};

use super::tls::{replay_error, Draw, TlsDraws};

/// Why a recorded verifier refused a certificate chain or a signature, as a recording holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A `CertificateError` without fields, by its index in [`unit_error`]'s table.
    Certificate(u8),
    /// `CertificateError::ExpiredContext` (seconds since 1970).
    Expired { time: u64, not_after: u64 },
    /// `CertificateError::NotValidYetContext` (seconds since 1970).
    NotValidYet { time: u64, not_before: u64 },
    /// `CertificateError::NotValidForNameContext`.
    NotValidForName {
        expected: String,
        presented: Vec<String>,
    },
    /// `CertificateError::Other` (webpki's `CaUsedAsEndEntity`, ...), by its inner error's
    /// `Debug` text (which is all rustls shows of it).
    OtherCertificate(String),
    /// Any other error, by its text: it replays as `Error::General`, so the replay diverges
    /// where the error is reported (saying so) rather than passing for the recorded one.
    Other(String),
}

/// The `CertificateError`s without fields, in a fixed order (the recording's table).
pub(crate) fn unit_error(index: u8) -> Option<CertificateError> {
    use CertificateError::*;
    Some(match index {
        0 => BadEncoding,
        1 => Expired,
        2 => NotValidYet,
        3 => Revoked,
        4 => UnhandledCriticalExtension,
        5 => UnknownIssuer,
        6 => UnknownRevocationStatus,
        7 => ExpiredRevocationList,
        8 => BadSignature,
        9 => NotValidForName,
        10 => InvalidPurpose,
        11 => ApplicationVerificationFailure,
        12 => InvalidOcspResponse,
        _ => return None,
    })
}

impl Refusal {
    /// What a recording keeps of `error`.
    pub(crate) fn of(error: &Error) -> Refusal {
        if let Error::InvalidCertificate(e) = error {
            let unit = (0u8..).map_while(|i| Some((i, unit_error(i)?)));
            if let Some((i, _)) = unit.into_iter().find(|(_, u)| u == e) {
                return Refusal::Certificate(i);
            }
            match e {
                CertificateError::ExpiredContext { time, not_after } => {
                    return Refusal::Expired {
                        time: time.as_secs(),
                        not_after: not_after.as_secs(),
                    }
                }
                CertificateError::NotValidYetContext { time, not_before } => {
                    return Refusal::NotValidYet {
                        time: time.as_secs(),
                        not_before: not_before.as_secs(),
                    }
                }
                CertificateError::NotValidForNameContext {
                    expected,
                    presented,
                } => {
                    return Refusal::NotValidForName {
                        expected: expected.to_str().into_owned(),
                        presented: presented.clone(),
                    }
                }
                CertificateError::Other(other) => {
                    return Refusal::OtherCertificate(format!("{:?}", other.0))
                }
                _ => {}
            }
        }
        Refusal::Other(error.to_string())
    }

    /// The error again, as rustls gave it.
    fn error(self) -> Error {
        let secs = |s| UnixTime::since_unix_epoch(Duration::from_secs(s));
        let certificate = match self {
            Refusal::Certificate(i) => match unit_error(i) {
                Some(e) => e,
                None => return Error::General(format!("certificate error {i}")),
            },
            Refusal::Expired { time, not_after } => CertificateError::ExpiredContext {
                time: secs(time),
                not_after: secs(not_after),
            },
            Refusal::NotValidYet { time, not_before } => CertificateError::NotValidYetContext {
                time: secs(time),
                not_before: secs(not_before),
            },
            Refusal::NotValidForName {
                expected,
                presented,
            } => match ServerName::try_from(expected) {
                Ok(expected) => CertificateError::NotValidForNameContext {
                    expected,
                    presented,
                },
                Err(e) => return Error::General(e.to_string()),
            },
            Refusal::OtherCertificate(text) => {
                CertificateError::Other(rustls::OtherError(Arc::new(Recorded(text))))
            }
            Refusal::Other(text) => return Error::General(text),
        };
        Error::InvalidCertificate(certificate)
    }
}

/// An error a recording names: shown as it was (its `Debug` is the recorded text).
struct Recorded(String);

impl std::fmt::Debug for Recorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Display for Recorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Recorded {}

/// What a recording keeps of a TLS config given to a call (a config itself cannot be
/// stored): enough, with the draws, to build one that makes the same handshake.
///
/// TLS versions are not among them (rustls does not tell a config's): a replay allows
/// rustls's defaults, 1.2 and 1.3.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ConfigFacts {
    /// ALPN protocols, most preferred first.
    pub(crate) alpn: Vec<Vec<u8>>,
    /// Client: the server name is sent (SNI).
    pub(crate) sni: bool,
    /// Client: a client certificate is available.
    pub(crate) client_certs: bool,
    /// Server: its own order of cipher suites wins.
    pub(crate) ignore_client_order: bool,
    /// The largest TLS record to send.
    pub(crate) max_fragment: Option<usize>,
    /// Server: TLS 1.3 session tickets sent after a handshake.
    pub(crate) tickets: usize,
}

/// The TLS config a recorded call was given: its facts, or nothing (a recording made before
/// facts were recorded: the replay must be handed a config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum GivenTls {
    Bare,
    Facts(ConfigFacts),
}

impl ConfigFacts {
    pub(crate) fn client(config: &ClientConfig) -> ConfigFacts {
        ConfigFacts {
            alpn: config.alpn_protocols.clone(),
            sni: config.enable_sni,
            client_certs: config.client_auth_cert_resolver.has_certs(),
            max_fragment: config.max_fragment_size,
            ..ConfigFacts::default()
        }
    }

    pub(crate) fn server(config: &ServerConfig) -> ConfigFacts {
        ConfigFacts {
            alpn: config.alpn_protocols.clone(),
            ignore_client_order: config.ignore_client_order,
            max_fragment: config.max_fragment_size,
            tickets: config.send_tls13_tickets,
            ..ConfigFacts::default()
        }
    }

    /// A client config with these facts that draws everything else from the recording.
    pub(crate) fn client_config(&self, draws: &TlsDraws) -> Result<Arc<ClientConfig>, Error> {
        let provider = draws.provider(crate::tls::provider());
        let verifier = Arc::new(Verifier {
            inner: None,
            schemes: provider
                .signature_verification_algorithms
                .supported_schemes(),
            draws: draws.clone(),
        });
        let time = draws.time(Arc::new(DefaultTimeProvider));
        let mut config = ClientConfig::builder_with_details(provider, time)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(Arc::new(ClientCerts {
                inner: None,
                has_certs: self.client_certs,
                draws: draws.clone(),
            }));
        config.alpn_protocols = self.alpn.clone();
        config.enable_sni = self.sni;
        config.max_fragment_size = self.max_fragment;
        Ok(Arc::new(config))
    }

    /// A server config with these facts that draws everything else from the recording.
    pub(crate) fn server_config(&self, draws: &TlsDraws) -> Result<Arc<ServerConfig>, Error> {
        let provider = draws.provider(crate::tls::provider());
        let time = draws.time(Arc::new(DefaultTimeProvider));
        let mut config = ServerConfig::builder_with_details(provider, time)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(ServerCerts {
                inner: None,
                draws: draws.clone(),
            }));
        config.alpn_protocols = self.alpn.clone();
        config.ignore_client_order = self.ignore_client_order;
        config.max_fragment_size = self.max_fragment;
        config.send_tls13_tickets = self.tickets;
        Ok(Arc::new(config))
    }
}

impl TlsDraws {
    /// `inner`, its verdicts recorded.
    pub(crate) fn verifier(&self, inner: Arc<dyn ServerCertVerifier>) -> Arc<Verifier> {
        Arc::new(Verifier {
            schemes: Vec::new(),
            inner: Some(inner),
            draws: self.clone(),
        })
    }

    /// `inner`, the chains it presents recorded.
    pub(crate) fn server_certs(&self, inner: Arc<dyn ResolvesServerCert>) -> Arc<ServerCerts> {
        Arc::new(ServerCerts {
            inner: Some(inner),
            draws: self.clone(),
        })
    }

    /// `inner`, the chains it presents recorded.
    pub(crate) fn client_certs(&self, inner: Arc<dyn ResolvesClientCert>) -> Arc<ClientCerts> {
        Arc::new(ClientCerts {
            has_certs: inner.has_certs(),
            inner: Some(inner),
            draws: self.clone(),
        })
    }

    /// Logs a verdict (recording), or gives back the recorded one (replay).
    fn verdict<T>(&self, ok: T, check: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
        if !self.is_replaying() {
            let verdict = check();
            self.log(Draw::Verdict(
                verdict.as_ref().map(|_| ()).map_err(Refusal::of),
            ));
            return verdict;
        }
        let recorded = self.next("a certificate check's outcome", |d| match d {
            Draw::Verdict(v) => Ok(v),
            other => Err(other),
        });
        match recorded {
            Some(Ok(())) => Ok(ok),
            Some(Err(refusal)) => Err(refusal.error()),
            None => Err(replay_error("a certificate check")),
        }
    }

    /// Logs the chain presented (recording), or gives back the recorded one with a key that
    /// signs with the recorded signatures (replay).
    fn chain(
        &self,
        resolve: impl FnOnce() -> Option<Arc<CertifiedKey>>,
    ) -> Option<Arc<CertifiedKey>> {
        if !self.is_replaying() {
            let key = resolve();
            self.log(Draw::Chain(key.as_ref().map(|k| {
                let chain = k.cert.iter().map(|c| c.to_vec()).collect();
                (chain, u8::from(k.key.algorithm()))
            })));
            return key;
        }
        let (chain, algorithm) = self
            .next("a certificate chain", |d| match d {
                Draw::Chain(c) => Ok(c),
                other => Err(other),
            })
            .flatten()?;
        let chain = chain.into_iter().map(CertificateDer::from).collect();
        let key = Arc::new(ReplayKey {
            algorithm: SignatureAlgorithm::from(algorithm),
            draws: self.clone(),
        });
        Some(Arc::new(CertifiedKey::new(chain, key)))
    }
}

/// A client's certificate verifier: the config's while recording (its verdicts logged), the
/// recorded verdicts on replay.
#[derive(Debug)]
pub(crate) struct Verifier {
    inner: Option<Arc<dyn ServerCertVerifier>>,
    /// On replay: the schemes of the replay's provider (those the default verifier offers).
    schemes: Vec<SignatureScheme>,
    draws: TlsDraws,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.draws
            .verdict(ServerCertVerified::assertion(), || match &self.inner {
                Some(v) => {
                    v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                }
                None => Err(replay_error("a certificate check")),
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.draws
            .verdict(HandshakeSignatureValid::assertion(), || match &self.inner {
                Some(v) => v.verify_tls12_signature(message, cert, dss),
                None => Err(replay_error("a signature check")),
            })
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.draws
            .verdict(HandshakeSignatureValid::assertion(), || match &self.inner {
                Some(v) => v.verify_tls13_signature(message, cert, dss),
                None => Err(replay_error("a signature check")),
            })
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        match &self.inner {
            Some(v) => v.supported_verify_schemes(),
            None => self.schemes.clone(),
        }
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|v| v.requires_raw_public_keys())
    }

    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        self.inner.as_ref().and_then(|v| v.root_hint_subjects())
    }
}

/// A server's certificate resolver: the config's while recording, the recorded chain on
/// replay.
#[derive(Debug)]
pub(crate) struct ServerCerts {
    inner: Option<Arc<dyn ResolvesServerCert>>,
    draws: TlsDraws,
}

impl ResolvesServerCert for ServerCerts {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.draws
            .chain(|| self.inner.as_ref().and_then(|r| r.resolve(hello)))
    }

    fn only_raw_public_keys(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|r| r.only_raw_public_keys())
    }
}

/// A client's certificate resolver (client authentication): the config's while recording,
/// the recorded chain on replay.
#[derive(Debug)]
pub(crate) struct ClientCerts {
    inner: Option<Arc<dyn ResolvesClientCert>>,
    has_certs: bool,
    draws: TlsDraws,
}

impl ResolvesClientCert for ClientCerts {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.draws
            .chain(|| (self.inner.as_ref()).and_then(|r| r.resolve(root_hint_subjects, sigschemes)))
    }

    fn only_raw_public_keys(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|r| r.only_raw_public_keys())
    }

    fn has_certs(&self) -> bool {
        self.has_certs
    }
}

/// A replay's stand-in for a private key: it chooses the recorded scheme and gives the
/// recorded signatures.
#[derive(Debug)]
struct ReplayKey {
    algorithm: SignatureAlgorithm,
    draws: TlsDraws,
}

impl SigningKey for ReplayKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let scheme = self.draws.replayed_scheme()?;
        offered.contains(&scheme).then(|| -> Box<dyn Signer> {
            Box::new(ReplaySigner {
                scheme,
                draws: self.draws.clone(),
            })
        })
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }
}

#[derive(Debug)]
struct ReplaySigner {
    scheme: SignatureScheme,
    draws: TlsDraws,
}

impl Signer for ReplaySigner {
    fn sign(&self, _message: &[u8]) -> Result<Vec<u8>, Error> {
        self.draws.replayed_signature()
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}
