//! What rustls draws from outside the core (random bytes, key shares and their shared
//! secrets, signatures, the time), recorded and fed back so that TLS sessions replay.
//!
//! [`TlsDraws`] wraps any [`CryptoProvider`] (generically: ring, aws-lc-rs, ...) and any
//! [`TimeProvider`]: build the session's TLS configs with [`TlsDraws::provider`] and
//! [`TlsDraws::time`] (for example through [`tls::ClientOptions`](crate::tls::ClientOptions)'s
//! `provider` and `time`). While recording, each draw is logged and an I/O layer writes it into
//! the recording after the step that made it ([`Encoder::draws`](super::Encoder::draws)); a
//! replay hands out the recorded draws, in order, to configs built from its own
//! [`Replay::tls_draws`](super::Replay::tls_draws).
//!
//! Key exchanges are not re-run on replay: the replay gives back the recorded public key share
//! and the recorded shared secret (after checking that the peer's share is the recorded one).
//! Providers compute key shares and signatures with their own generators, out of reach of
//! [`CryptoProvider::secure_random`]; recording their results is what makes this work with
//! any provider. **A recording of a TLS session therefore holds what decrypts it**: keep it
//! as secret as the traffic.
//!
//! The wrappers of a provider are `'static` (rustls requires it): each
//! [`TlsDraws::provider`] call leaks a few hundred bytes, once per session recorded or
//! replayed.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rustls::crypto::{
    ActiveKeyExchange, CompletedKeyExchange, CryptoProvider, GetRandomFailed, KeyProvider,
    SecureRandom, SharedSecret, SupportedKxGroup,
};
use rustls::pki_types::{PrivateKeyDer, UnixTime};
use rustls::sign::{Signer, SigningKey};
use rustls::time_provider::TimeProvider;
use rustls::{Error, NamedGroup, SignatureAlgorithm, SignatureScheme};

use super::tls_configs::Refusal;

/// One thing rustls drew from outside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Draw {
    /// `SecureRandom::fill`.
    Random(Vec<u8>),
    /// A key exchange started: its group and our public key share.
    KeyShare { group: u16, public: Vec<u8> },
    /// The classical component of a hybrid key share (sent alongside it): its group and our
    /// public key.
    Hybrid { group: u16, public: Vec<u8> },
    /// A key exchange completed: the peer's share and the shared secret.
    Secret { peer: Vec<u8>, secret: Vec<u8> },
    /// A signature made with our key.
    Signature(Vec<u8>),
    /// The time (seconds since the Unix epoch), or `None`.
    Time(Option<u64>),
    /// What a recorded verifier said of a certificate chain or a signature.
    Verdict(Result<(), Refusal>),
    /// The certificate chain our side presented and its key's algorithm (`None`: none).
    Chain(Option<(Vec<Vec<u8>>, u8)>),
    /// The signature scheme our key chose among those offered (`None`: none fits).
    Scheme(Option<u16>),
}

impl Draw {
    fn name(&self) -> &'static str {
        match self {
            Draw::Random(_) => "random bytes",
            Draw::KeyShare { .. } => "a key share",
            Draw::Hybrid { .. } => "a hybrid key share's component",
            Draw::Secret { .. } => "a shared secret",
            Draw::Signature(_) => "a signature",
            Draw::Time(_) => "the time",
            Draw::Verdict(_) => "a certificate check's outcome",
            Draw::Chain(_) => "a certificate chain",
            Draw::Scheme(_) => "a signature scheme",
        }
    }
}

#[derive(Debug)]
struct Log {
    replaying: bool,
    draws: Mutex<VecDeque<Draw>>,
    /// Something was logged since the last take (recording).
    pending: AtomicBool,
    /// A replayed draw was missing or of another kind: the first such complaint.
    trouble: Mutex<Option<String>>,
    /// The recording stopped: nothing more is logged.
    discarded: AtomicBool,
}

/// The draws of one session's TLS configs: logged while recording, handed back on replay.
#[derive(Clone, Debug)]
pub struct TlsDraws {
    log: Arc<Log>,
}

impl Default for TlsDraws {
    fn default() -> Self {
        TlsDraws::recording()
    }
}

impl TlsDraws {
    /// Draws to record.
    pub fn recording() -> TlsDraws {
        TlsDraws::new(false)
    }

    pub(crate) fn replaying() -> TlsDraws {
        TlsDraws::new(true)
    }

    fn new(replaying: bool) -> TlsDraws {
        TlsDraws {
            log: Arc::new(Log {
                replaying,
                draws: Mutex::new(VecDeque::new()),
                pending: AtomicBool::new(false),
                trouble: Mutex::new(None),
                discarded: AtomicBool::new(false),
            }),
        }
    }

    /// `inner` with its random source, key exchange groups and key loading wrapped.
    ///
    /// Known limitation: rustls takes these parts as `&'static`, so the wrappers are leaked
    /// (`Box::leak`), and with them the draws they still hold, for the life of the process: a
    /// few small objects per call. Wrap a config once and share it, rather than per
    /// session, in a long-lived process that records or replays many TLS sessions.
    pub fn provider(&self, inner: Arc<CryptoProvider>) -> Arc<CryptoProvider> {
        let mut provider = (*inner).clone();
        let random: &'static Random = Box::leak(Box::new(Random {
            inner: inner.secure_random,
            log: self.clone(),
        }));
        provider.secure_random = random;
        provider.kx_groups = (inner.kx_groups.iter())
            .map(|&group| -> &'static dyn SupportedKxGroup {
                Box::leak(Box::new(Group {
                    inner: group,
                    log: self.clone(),
                }))
            })
            .collect();
        let keys: &'static Keys = Box::leak(Box::new(Keys {
            inner: inner.key_provider,
            log: self.clone(),
        }));
        provider.key_provider = keys;
        Arc::new(provider)
    }

    /// `inner` (the clock certificates are checked against), wrapped.
    pub fn time(&self, inner: Arc<dyn TimeProvider>) -> Arc<dyn TimeProvider> {
        Arc::new(Time {
            inner,
            log: self.clone(),
        })
    }

    /// Whether anything was logged since the last [`take`](Self::take) (cheap).
    #[inline]
    pub(crate) fn pending(&self) -> bool {
        self.log.pending.load(Ordering::Relaxed)
    }

    /// The draws logged since the last call.
    pub(crate) fn take(&self) -> Vec<Draw> {
        self.log.pending.store(false, Ordering::Relaxed);
        match self.log.draws.lock() {
            Ok(mut draws) => draws.drain(..).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Queues a recorded draw for the replay.
    pub(crate) fn give(&self, draw: Draw) {
        if let Ok(mut draws) = self.log.draws.lock() {
            draws.push_back(draw);
        }
    }

    /// The first replayed draw that did not match what was asked, if any.
    pub(crate) fn trouble(&self) -> Option<String> {
        self.log.trouble.lock().ok().and_then(|t| t.clone())
    }

    /// Stops logging and forgets what was logged (the recording stopped early), so that
    /// nothing accumulates.
    pub fn discard(&self) {
        self.log.discarded.store(true, Ordering::Relaxed);
        drop(self.take());
    }

    /// Whether these are a replay's draws (handed out) rather than a recording's (logged).
    pub(super) fn is_replaying(&self) -> bool {
        self.log.replaying
    }

    pub(super) fn log(&self, draw: Draw) {
        if self.log.discarded.load(Ordering::Relaxed) {
            return;
        }
        if let Ok(mut draws) = self.log.draws.lock() {
            draws.push_back(draw);
            self.log.pending.store(true, Ordering::Relaxed);
        }
    }

    fn complain(&self, what: String) {
        if let Ok(mut trouble) = self.log.trouble.lock() {
            trouble.get_or_insert(what);
        }
    }

    /// Logs the secret of a key exchange completed with `peer`'s share.
    fn log_secret(&self, peer: &[u8], secret: &SharedSecret) {
        self.log(Draw::Secret {
            peer: peer.to_vec(),
            secret: secret.secret_bytes().to_vec(),
        });
    }

    /// The recorded secret of a key exchange completed with `peer`'s share.
    fn replayed_secret(&self, peer: &[u8]) -> Result<SharedSecret, Error> {
        self.next("a shared secret", |d| match d {
            Draw::Secret { peer: p, secret } if p == peer => Ok(secret),
            other => Err(other),
        })
        .map(SharedSecret::from)
        .ok_or_else(|| replay_error("the peer's key share"))
    }

    /// Takes the next recorded draw if `is` says it is of its kind.
    fn skip(&self, is: impl FnOnce(&Draw) -> bool) {
        if let Ok(mut draws) = self.log.draws.lock() {
            if draws.front().is_some_and(is) {
                draws.pop_front();
            }
        }
    }

    /// The next recorded draw if it is a hybrid component (taken), else nothing (left).
    fn hybrid(&self) -> Option<(NamedGroup, Vec<u8>)> {
        let mut draws = self.log.draws.lock().ok()?;
        match draws.front() {
            Some(Draw::Hybrid { .. }) => match draws.pop_front() {
                Some(Draw::Hybrid { group, public }) => Some((NamedGroup::from(group), public)),
                _ => None,
            },
            _ => None,
        }
    }

    /// The recorded signature made by our key.
    pub(super) fn replayed_signature(&self) -> Result<Vec<u8>, Error> {
        self.next("a signature", |d| match d {
            Draw::Signature(s) => Ok(s),
            other => Err(other),
        })
        .ok_or_else(|| replay_error("a signature"))
    }

    /// The recorded choice of a signature scheme (`None`: none fitted, or it is missing).
    pub(super) fn replayed_scheme(&self) -> Option<SignatureScheme> {
        self.next("a signature scheme", |d| match d {
            Draw::Scheme(s) => Ok(s),
            other => Err(other),
        })
        .flatten()
        .map(SignatureScheme::from)
    }

    /// The next recorded draw, if it is of the kind `want` accepts.
    pub(super) fn next<T>(
        &self,
        asked: &'static str,
        want: impl FnOnce(Draw) -> Result<T, Draw>,
    ) -> Option<T> {
        let draw = self.log.draws.lock().ok()?.pop_front();
        match draw {
            None => {
                self.complain(format!(
                    "rustls asked for {asked}; the recording has no more"
                ));
                None
            }
            Some(draw) => want(draw)
                .map_err(|other| {
                    let got = other.name();
                    self.complain(format!("rustls asked for {asked}; the recording has {got}"));
                })
                .ok(),
        }
    }
}

#[derive(Debug)]
struct Random {
    inner: &'static dyn SecureRandom,
    log: TlsDraws,
}

impl SecureRandom for Random {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        if !self.log.log.replaying {
            self.inner.fill(buf)?;
            self.log.log(Draw::Random(buf.to_vec()));
            return Ok(());
        }
        let len = buf.len();
        let bytes = self.log.next("random bytes", |d| match d {
            Draw::Random(b) if b.len() == len => Ok(b),
            other => Err(other),
        });
        match bytes {
            Some(bytes) => {
                buf.copy_from_slice(&bytes);
                Ok(())
            }
            None => Err(GetRandomFailed),
        }
    }

    fn fips(&self) -> bool {
        self.inner.fips()
    }
}

#[derive(Debug)]
struct Group {
    inner: &'static dyn SupportedKxGroup,
    log: TlsDraws,
}

pub(super) fn replay_error(what: &str) -> Error {
    Error::General(format!("replay: {what} does not match the recording"))
}

impl SupportedKxGroup for Group {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let group = u16::from(self.inner.name());
        if !self.log.log.replaying {
            let inner = self.inner.start()?;
            self.log.log(Draw::KeyShare {
                group,
                public: inner.pub_key().to_vec(),
            });
            if let Some((group, public)) = inner.hybrid_component() {
                self.log.log(Draw::Hybrid {
                    group: u16::from(group),
                    public: public.to_vec(),
                });
            }
            return Ok(Box::new(Exchange {
                inner: Some(inner),
                public: Vec::new(),
                hybrid: None,
                group: self.inner.name(),
                log: self.log.clone(),
            }));
        }
        let public = self.log.next("a key share", |d| match d {
            Draw::KeyShare { group: g, public } if g == group => Ok(public),
            other => Err(other),
        });
        let public = public.ok_or_else(|| replay_error("a key share"))?;
        Ok(Box::new(Exchange {
            inner: None,
            public,
            hybrid: self.log.hybrid(),
            group: self.inner.name(),
            log: self.log.clone(),
        }))
    }

    /// The side that answers a key share (a TLS 1.3 server): with a KEM (ML-KEM hybrids) it
    /// encapsulates rather than starting an exchange of its own, so the provider's own
    /// `start_and_complete` runs, and its share and secret are what is recorded.
    fn start_and_complete(&self, peer: &[u8]) -> Result<CompletedKeyExchange, Error> {
        let group = u16::from(self.inner.name());
        if !self.log.log.replaying {
            let done = self.inner.start_and_complete(peer)?;
            self.log.log(Draw::KeyShare {
                group,
                public: done.pub_key.clone(),
            });
            self.log.log_secret(peer, &done.secret);
            return Ok(done);
        }
        let public = self.log.next("a key share", |d| match d {
            Draw::KeyShare { group: g, public } if g == group => Ok(public),
            other => Err(other),
        });
        let public = public.ok_or_else(|| replay_error("a key share"))?;
        Ok(CompletedKeyExchange {
            group: self.inner.name(),
            pub_key: public,
            secret: self.log.replayed_secret(peer)?,
        })
    }

    fn name(&self) -> NamedGroup {
        self.inner.name()
    }

    fn fips(&self) -> bool {
        self.inner.fips()
    }

    fn usable_for_version(&self, version: rustls::ProtocolVersion) -> bool {
        self.inner.usable_for_version(version)
    }
}

/// A key exchange: the provider's while recording, the recording's on replay.
struct Exchange {
    inner: Option<Box<dyn ActiveKeyExchange>>,
    public: Vec<u8>,
    /// On replay: the recorded classical component of a hybrid share.
    hybrid: Option<(NamedGroup, Vec<u8>)>,
    group: NamedGroup,
    log: TlsDraws,
}

impl ActiveKeyExchange for Exchange {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, Error> {
        match self.inner {
            Some(inner) => {
                let secret = inner.complete(peer)?;
                self.log.log_secret(peer, &secret);
                Ok(secret)
            }
            None => self.log.replayed_secret(peer),
        }
    }

    fn pub_key(&self) -> &[u8] {
        match &self.inner {
            Some(inner) => inner.pub_key(),
            None => &self.public,
        }
    }

    fn hybrid_component(&self) -> Option<(NamedGroup, &[u8])> {
        match &self.inner {
            Some(inner) => inner.hybrid_component(),
            None => self.hybrid.as_ref().map(|(g, p)| (*g, p.as_slice())),
        }
    }

    fn complete_hybrid_component(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, Error> {
        match self.inner {
            Some(inner) => {
                let secret = inner.complete_hybrid_component(peer)?;
                self.log.log_secret(peer, &secret);
                Ok(secret)
            }
            None => self.log.replayed_secret(peer),
        }
    }

    fn group(&self) -> NamedGroup {
        self.group
    }
}

#[derive(Debug)]
struct Keys {
    inner: &'static dyn KeyProvider,
    log: TlsDraws,
}

impl KeyProvider for Keys {
    fn load_private_key(&self, key: PrivateKeyDer<'static>) -> Result<Arc<dyn SigningKey>, Error> {
        Ok(Arc::new(Key {
            inner: self.inner.load_private_key(key)?,
            log: self.log.clone(),
        }))
    }

    fn fips(&self) -> bool {
        self.inner.fips()
    }
}

#[derive(Debug)]
struct Key {
    inner: Arc<dyn SigningKey>,
    log: TlsDraws,
}

impl SigningKey for Key {
    /// The choice is recorded (a replay-only key, which has no key to choose with, gives it
    /// back) and, on replay, taken off the recording to stay in step.
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let inner = self.inner.choose_scheme(offered);
        match self.log.log.replaying {
            // Recordings from before schemes were recorded have none to skip.
            true => self.log.skip(|d| matches!(d, Draw::Scheme(_))),
            false => self
                .log
                .log(Draw::Scheme(inner.as_ref().map(|s| u16::from(s.scheme())))),
        }
        Some(Box::new(Sign {
            inner: inner?,
            log: self.log.clone(),
        }))
    }

    fn public_key(&self) -> Option<rustls::pki_types::SubjectPublicKeyInfoDer<'_>> {
        self.inner.public_key()
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        self.inner.algorithm()
    }
}

#[derive(Debug)]
struct Sign {
    inner: Box<dyn Signer>,
    log: TlsDraws,
}

impl Signer for Sign {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        if !self.log.log.replaying {
            let signature = self.inner.sign(message)?;
            self.log.log(Draw::Signature(signature.clone()));
            return Ok(signature);
        }
        self.log.replayed_signature()
    }

    fn scheme(&self) -> SignatureScheme {
        self.inner.scheme()
    }
}

struct Time {
    inner: Arc<dyn TimeProvider>,
    log: TlsDraws,
}

impl fmt::Debug for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Time").field("inner", &self.inner).finish()
    }
}

impl TimeProvider for Time {
    fn current_time(&self) -> Option<UnixTime> {
        if !self.log.log.replaying {
            let now = self.inner.current_time();
            self.log.log(Draw::Time(now.map(|t| t.as_secs())));
            return now;
        }
        self.log
            .next("the time", |d| match d {
                Draw::Time(t) => Ok(t),
                other => Err(other),
            })
            .flatten()
            .map(|secs| UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs)))
    }
}
