//! `tls_records`: a TLS socket of ours (opened secure, or upgraded by STARTTLS after a
//! plaintext prelude) against a real rustls server, with the fuzzer choosing how the peer's
//! records are cut, which bits flip, what garbage is injected, and what the app does.
//!
//! Under STARTTLS the peer may also write plaintext past its go-ahead (the injection class of
//! Postfix CVE-2011-0411): in the prelude's write, read with it (the app gets it before the
//! call) or in a read of its own that the app has not polled, or holds while suspended, when
//! it calls `upgradeToSecure`; or late, after the call ([`TlsOp::Inject`]).
//!
//! Checked, beyond "no panic":
//! - no plaintext `Data` after the upgrade call: everything delivered after it is a prefix of
//!   what the peer sent through TLS; everything delivered at all is a prefix of the prelude
//!   (with an injection read with it) followed by that: no injected or corrupted byte ever
//!   reaches the app as data ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket));
//! - an injection read but not delivered when the app calls `upgradeToSecure` ends the socket
//!   at once: `Error(SecurityError)` (kind `SecurityProtocol`) then `Close`, nothing written
//!   after the call (no ClientHello), nothing delivered;
//! - the prelude read before the call is delivered as plaintext, whole, and never given to TLS
//!   (the handshake still succeeds when nothing else went wrong);
//! - `bufferedAmount` is 0 whenever `Drain` fires; one `Close` per socket, last, after an
//!   `Error` if any, with `readyState` `closed` at the `Error`;
//! - when nothing was injected or flipped and nobody closed, both sides received everything.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};

use crate::tls::{self, ClientConfig, ServerConfig};
use crate::{
    Action, BinaryType, Bytes, Config, Core, Event, Input, Output, ReadyState, SocketId, TcpId,
    TcpOptions,
};

/// 2030-01-01: inside the test certificates' validity (2026–2126).
#[derive(Debug)]
struct FixedTime;
impl rustls::time_provider::TimeProvider for FixedTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(Duration::from_secs(
            1_893_456_000,
        )))
    }
}

/// A CA and a leaf for `fuzz.test`, made once with openssl for fuzzing only (not secret).
fn configs() -> &'static (Arc<ClientConfig>, Arc<ServerConfig>) {
    static CONFIGS: OnceLock<(Arc<ClientConfig>, Arc<ServerConfig>)> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let ca = CertificateDer::from(&include_bytes!("ca.der")[..]);
        let leaf = CertificateDer::from(&include_bytes!("leaf.der")[..]);
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            &include_bytes!("leaf.key.der")[..],
        ));
        let mut roots = tls::RootCertStore::empty();
        roots.add(ca).expect("the fuzz CA parses");
        let client = tls::client_config(tls::ClientOptions {
            roots: Some(roots),
            time: Some(Arc::new(FixedTime)),
            ..Default::default()
        })
        .expect("a client config");
        let mut options = tls::ServerOptions::new(vec![leaf], key.clone_key());
        options.time = Some(Arc::new(FixedTime));
        let server = tls::server_config(options).expect("a server config");
        (client, server)
    })
}

/// One fuzz case.
#[derive(Arbitrary, Clone, Debug)]
pub struct TlsRecordsCase {
    /// Upgrade with STARTTLS after the prelude (else `useSecureTransport`).
    pub starttls: bool,
    /// Plaintext the peer sends before the upgrade (STARTTLS only).
    pub prelude: Vec<u8>,
    /// Plaintext the peer writes past the STARTTLS point, right behind the prelude (STARTTLS
    /// only; at most [`MAX_INJECTED`] bytes are used).
    pub injected: Vec<u8>,
    /// How `injected` is read before the app calls `upgradeToSecure`.
    pub injected_read: InjectedRead,
    /// What happens, in order (at most 64 steps are taken).
    pub ops: Vec<TlsOp>,
}

/// The most injected bytes a case uses (held while suspended, they stay far below
/// [`Config::max_held_bytes`]).
pub const MAX_INJECTED: usize = 16 << 10;

/// How the injection behind the prelude is read before the upgrade call.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectedRead {
    /// In the prelude's read: delivered with it, before the call (the core cannot tell it
    /// apart; the app has to).
    WithThePrelude,
    /// In a read of its own whose `Data` the app has not polled when it calls.
    Unpolled,
    /// In a read that was in flight when the app suspended: held.
    HeldWhileSuspended,
}

/// One step of a case.
#[derive(Arbitrary, Clone, Debug)]
pub enum TlsOp {
    /// The peer sends this through TLS (once its handshake is done).
    PeerSend(Vec<u8>),
    /// Hand at most this many of the peer's bytes to the socket (0: all).
    Deliver(u16),
    /// Flip one bit of the peer's bytes not yet delivered.
    Flip {
        /// Position (modulo the bytes waiting).
        at: u16,
        /// Which bit.
        bit: u8,
    },
    /// Raw bytes into the socket, between the peer's (under STARTTLS, a late injection: after
    /// the upgrade call, so TLS gets it).
    Inject(Vec<u8>),
    /// The app sends this.
    AppSend(Vec<u8>),
    /// `suspend()`.
    Suspend,
    /// `resume()`.
    Resume,
    /// `close()`.
    Close,
    /// The peer sends close_notify.
    PeerCloseNotify,
    /// The peer's FIN reaches the socket (after what was sent before it).
    PeerFin,
    /// Time passes.
    Wait(u16),
}

/// The harness's view of the run.
struct Run {
    core: Core,
    now: Instant,
    id: TcpId,
    peer: Option<rustls::ServerConnection>,
    /// Our bytes the peer reads as plaintext before its TLS starts.
    peer_plain: Vec<u8>,
    peer_got: Vec<u8>,
    /// Bytes on their way to us (the peer's, with flips).
    to_us: VecDeque<u8>,
    /// Our FIN or close reached the peer.
    peer_done: bool,
    /// The peer sent close_notify.
    peer_notified: bool,
    reading: bool,
    /// The plaintext the app may legitimately see: prelude, then the peer's TLS data.
    legit: Vec<u8>,
    /// What the peer sent through TLS: all the app may see after the upgrade call.
    tls_sent: Vec<u8>,
    delivered: Vec<u8>,
    /// Delivered after the upgrade call (or, on a secure open, at all).
    after_call: Vec<u8>,
    sent_by_app: Vec<u8>,
    upgraded: bool,
    tampered: bool,
    closed_by_app: bool,
    error: Option<crate::SocketError>,
    closed: bool,
    /// The core released the socket: no input for it makes sense any more.
    released: bool,
    fin_to_us: bool,
    eof_sent: bool,
}

/// The fuzz target.
pub fn tls_records(data: &[u8]) {
    let mut u = Unstructured::new(data);
    if let Ok(case) = TlsRecordsCase::arbitrary(&mut u) {
        run_tls_records(&case);
    }
}

/// Runs one case, panicking when an invariant breaks.
pub fn run_tls_records(case: &TlsRecordsCase) {
    let (client, server) = configs().clone();
    let mut core = Core::new(Config::default());
    #[allow(clippy::disallowed_methods)] // the one reading of a clock; only offsets matter
    let now = Instant::now();
    let options = TcpOptions {
        use_secure_transport: !case.starttls,
        tls_config: Some(client),
        binary_type: BinaryType::ArrayBuffer,
        ..TcpOptions::default()
    };
    let id = core.tcp_open(now, "fuzz.test", 443, options).expect("open");
    let mut run = Run {
        core,
        now,
        id,
        peer: None,
        peer_plain: Vec::new(),
        peer_got: Vec::new(),
        to_us: VecDeque::new(),
        peer_done: false,
        peer_notified: false,
        reading: false,
        legit: Vec::new(),
        tls_sent: Vec::new(),
        delivered: Vec::new(),
        after_call: Vec::new(),
        sent_by_app: Vec::new(),
        upgraded: !case.starttls,
        tampered: false,
        closed_by_app: false,
        error: None,
        closed: false,
        released: false,
        fin_to_us: false,
        eof_sent: false,
    };
    let server = rustls::ServerConnection::new(server).expect("a server connection");
    if case.starttls {
        run.pump();
        run.prelude_then_upgrade(case);
    }
    run.peer = Some(server);
    run.pump();
    for op in case.ops.iter().take(64) {
        if run.closed {
            break;
        }
        run.step(op);
        run.pump();
    }
    run.finish();
}

impl Run {
    /// The plaintext prelude and the injection behind it (one write of the peer's), read
    /// before the call as the case says; then `upgradeToSecure`.
    fn prelude_then_upgrade(&mut self, case: &TlsRecordsCase) {
        let id = self.id;
        let injected = &case.injected[..case.injected.len().min(MAX_INJECTED)];
        let with_prelude = case.injected_read == InjectedRead::WithThePrelude;
        let mut first = case.prelude.clone();
        if with_prelude {
            first.extend_from_slice(injected);
        }
        // The first read, delivered before the call: plaintext, whole.
        if !first.is_empty() {
            self.legit.extend_from_slice(&first);
            self.to_us.extend(first.iter().copied());
            self.deliver(0);
            self.pump();
        }
        assert_eq!(
            self.delivered, first,
            "the prelude is delivered as plaintext"
        );
        let undelivered = !with_prelude && !injected.is_empty();
        if undelivered {
            if case.injected_read == InjectedRead::HeldWhileSuspended {
                self.core.tcp_suspend(id).expect("suspend in open");
                self.pump();
            }
            // A read the app has not polled (or holds) when it calls.
            let data = Bytes::copy_from_slice(injected);
            self.input(Input::Received { id, data });
        }
        if self.closed {
            return;
        }
        self.core
            .tcp_upgrade_to_secure(id)
            .expect("upgrade in open");
        self.upgraded = true;
        if undelivered {
            let delivered = self.delivered.len();
            self.pump();
            assert!(
                self.closed,
                "an undelivered injection ends the socket at the call"
            );
            let error = self.error.as_ref().expect("an Error before the Close");
            assert_eq!(
                (error.name(), error.kind()),
                ("SecurityError", crate::SocketErrorKind::SecurityProtocol),
                "{error}"
            );
            assert_eq!(self.delivered.len(), delivered, "no Data after the call");
            assert!(self.peer_plain.is_empty(), "nothing written after the call");
        }
    }

    fn step(&mut self, op: &TlsOp) {
        let id = self.id;
        match op {
            TlsOp::PeerSend(data) => {
                if let Some(peer) = self.peer.as_mut().filter(|p| !p.is_handshaking()) {
                    use std::io::Write;
                    // Data after a close_notify is to be ignored (RFC 8446 §6.1): not owed.
                    let open = !self.peer_done && !self.peer_notified;
                    if open && peer.writer().write_all(data).is_ok() {
                        self.legit.extend_from_slice(data);
                        self.tls_sent.extend_from_slice(data);
                    }
                }
            }
            TlsOp::Deliver(n) => self.deliver(*n as usize),
            TlsOp::Flip { at, bit } => {
                self.take_peer_output();
                if !self.to_us.is_empty() {
                    let at = *at as usize % self.to_us.len();
                    self.to_us[at] ^= 1 << (bit % 8);
                    self.tampered = true;
                }
            }
            TlsOp::Inject(bytes) => {
                if !bytes.is_empty() && self.reading && !self.fin_to_us && !self.released {
                    self.tampered = true;
                    let data = Bytes::copy_from_slice(bytes);
                    self.input(Input::Received { id, data });
                }
            }
            TlsOp::AppSend(data) => {
                let result = self.core.tcp_send(id, data.clone());
                if result.is_ok() {
                    self.sent_by_app.extend_from_slice(data);
                }
            }
            TlsOp::Suspend => _ = self.core.tcp_suspend(id),
            TlsOp::Resume => _ = self.core.tcp_resume(id),
            TlsOp::Close => {
                if self.core.tcp_close(self.now, id).is_ok() {
                    self.closed_by_app = true;
                }
            }
            TlsOp::PeerCloseNotify => {
                if let Some(peer) = self.peer.as_mut() {
                    peer.send_close_notify();
                    self.peer_notified = true;
                }
            }
            TlsOp::PeerFin => {
                self.take_peer_output();
                self.fin_to_us = true;
            }
            TlsOp::Wait(ms) => {
                self.now += Duration::from_millis(*ms as u64 * 10);
                self.core.handle_timeout(self.now);
            }
        }
    }

    fn input(&mut self, input: Input) {
        let result = self.core.handle_input(self.now, input.clone());
        assert!(
            result.is_ok(),
            "the harness sent a sane input {input:?}: {result:?}"
        );
    }

    fn take_peer_output(&mut self) {
        if let Some(peer) = self.peer.as_mut() {
            let mut out = Vec::new();
            while peer.wants_write() {
                if peer.write_tls(&mut out).is_err() {
                    break;
                }
            }
            self.to_us.extend(out);
        }
    }

    /// Hands the socket at most `n` of the bytes waiting (0: all), then the FIN if due.
    fn deliver(&mut self, n: usize) {
        self.take_peer_output();
        if self.eof_sent {
            self.to_us.clear(); // the wire to us is closed
            return;
        }
        if !self.reading || self.released {
            return;
        }
        let n = if n == 0 {
            self.to_us.len()
        } else {
            n.min(self.to_us.len())
        };
        if n > 0 {
            let data: Vec<u8> = self.to_us.drain(..n).collect();
            let id = self.id;
            self.input(Input::Received {
                id,
                data: data.into(),
            });
            self.pump(); // the read may have ended the socket
        }
        let due = self.to_us.is_empty() && self.fin_to_us && !self.eof_sent;
        if due && self.reading && !self.released {
            self.eof_sent = true;
            let id = self.id;
            self.input(Input::Eof { id });
        }
    }

    /// Plays the I/O layer until the core has nothing more to say.
    fn pump(&mut self) {
        for _ in 0..10_000 {
            let out = self.core.poll_output();
            match out {
                Output::Timeout(_) => return,
                Output::Action(action) => self.act(action),
                Output::Event(event) => self.event(event),
            }
        }
        panic!("poll_output does not end");
    }

    fn act(&mut self, action: Action) {
        let id = self.id;
        match action {
            Action::Resolve { .. } => {
                let result = Ok(vec!["192.0.2.1".parse().expect("an address")]);
                self.input(Input::Resolved {
                    id: id.into(),
                    result,
                });
            }
            Action::Connect { attempt, .. } => {
                let local = "192.0.2.2:40000".parse().expect("an address");
                self.input(Input::Connected { id, attempt, local });
            }
            Action::SetReading { enabled, .. } => self.reading = enabled,
            Action::Write { data, .. } => {
                if !self.peer_done {
                    self.send_to_peer(&data);
                }
                let len = data.len();
                self.input(Input::Written { id, len });
            }
            Action::Shutdown { .. } => self.peer_done = true,
            // Every write reached the peer at once: nothing is unacknowledged.
            Action::QueryUnacked { .. } => self.input(Input::Unacked { id, bytes: Some(0) }),
            Action::Release { .. } => {
                self.peer_done = true;
                self.released = true;
            }
            other => panic!("an action the harness does not expect: {other:?}"),
        }
    }

    fn send_to_peer(&mut self, data: &[u8]) {
        match self.peer.as_mut() {
            None => self.peer_plain.extend_from_slice(data),
            Some(peer) => {
                let mut rest = data;
                while !rest.is_empty() {
                    if peer.read_tls(&mut rest).is_err() {
                        break;
                    }
                    let Ok(state) = peer.process_new_packets() else {
                        self.peer_done = true; // the peer rejects us: its alert goes out
                        break;
                    };
                    let mut buf = vec![0; state.plaintext_bytes_to_read()];
                    use std::io::Read;
                    if peer.reader().read_exact(&mut buf).is_ok() {
                        self.peer_got.extend_from_slice(&buf);
                    }
                    if state.peer_has_closed() {
                        break;
                    }
                }
            }
        }
    }

    fn event(&mut self, event: Event) {
        let mine = SocketId::from(self.id);
        assert!(!self.closed, "an event after Close: {event:?}");
        match event {
            Event::Data { data, .. } => {
                self.delivered.extend_from_slice(data.as_bytes());
                assert!(
                    self.legit.starts_with(&self.delivered),
                    "delivered data that nobody sent as plaintext (after {} good bytes)",
                    self.delivered.len() - data.len()
                );
                if self.upgraded {
                    self.after_call.extend_from_slice(data.as_bytes());
                    assert!(
                        self.tls_sent.starts_with(&self.after_call),
                        "plaintext Data after upgradeToSecure() (after {} good bytes)",
                        self.after_call.len() - data.len()
                    );
                }
            }
            Event::Drain { id } => {
                assert_eq!(id, mine);
                let buffered = self.core.tcp(self.id).map_or(0, |s| s.buffered_amount());
                assert_eq!(buffered, 0, "bufferedAmount is 0 at Drain");
            }
            Event::Error { id, error } => {
                assert_eq!(id, mine);
                assert!(self.error.is_none(), "a second Error");
                let state = self.core.tcp(self.id).map(|s| s.ready_state());
                assert_eq!(state, Some(ReadyState::Closed), "closed at the Error");
                self.error = Some(error);
            }
            Event::Close { id } => {
                assert_eq!(id, mine);
                self.closed = true;
            }
            Event::Open { .. } | Event::HalfClose { .. } => {}
            other => panic!("an event the harness does not expect: {other:?}"),
        }
    }

    fn finish(&mut self) {
        if self.closed {
            assert!(
                self.core.tcp(self.id).is_none(),
                "the id is dead after Close"
            );
            return;
        }
        // Let everything through, then judge the undisturbed runs.
        self.core.tcp_resume(self.id).ok();
        while self
            .core
            .tcp(self.id)
            .is_some_and(|s| s.suspend_count() > 0)
        {
            if self.core.tcp_resume(self.id).is_err() {
                break;
            }
        }
        self.pump();
        for _ in 0..100 {
            self.deliver(0);
            self.pump();
            if self.to_us.is_empty() && self.peer.as_ref().is_none_or(|p| !p.wants_write()) {
                break;
            }
        }
        let undisturbed = !self.tampered && !self.closed_by_app && self.error.is_none();
        if undisturbed && !self.fin_to_us {
            let handshaken = self.peer.as_ref().is_some_and(|p| !p.is_handshaking());
            assert!(
                handshaken,
                "the handshake completes when nothing disturbs it"
            );
            assert_eq!(
                self.delivered, self.legit,
                "we got everything the peer sent"
            );
            assert_eq!(
                self.peer_got, self.sent_by_app,
                "the peer got everything we sent"
            );
            let buffered = self.core.tcp(self.id).map_or(0, |s| s.buffered_amount());
            assert_eq!(buffered, 0, "nothing stays buffered");
        }
        // The app sends only after the upgrade: not one byte of it may leave in plaintext.
        assert!(
            self.peer_plain.is_empty() || !self.upgraded,
            "plaintext after the upgrade"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TlsOp::*;

    fn case(starttls: bool, prelude: &[u8], ops: Vec<TlsOp>) -> TlsRecordsCase {
        TlsRecordsCase {
            starttls,
            prelude: prelude.to_vec(),
            injected: Vec::new(),
            injected_read: InjectedRead::WithThePrelude,
            ops,
        }
    }

    #[test]
    fn honest_runs_pass_both_ways() {
        for starttls in [false, true] {
            run_tls_records(&case(
                starttls,
                b"220 ready\r\n",
                vec![
                    Deliver(0),
                    PeerSend(b"hello".to_vec()),
                    Deliver(3),
                    AppSend(b"ping".to_vec()),
                    Deliver(0),
                    Suspend,
                    PeerSend(b" world".to_vec()),
                    Deliver(0),
                    Resume,
                    Deliver(0),
                ],
            ));
        }
    }

    #[test]
    fn tampering_and_endings_never_leak_plaintext() {
        let endings: Vec<Vec<TlsOp>> = vec![
            vec![
                Deliver(0),
                PeerSend(b"abc".to_vec()),
                Flip { at: 7, bit: 3 },
                Deliver(0),
            ],
            vec![
                Deliver(0),
                Inject(b"\x17\x03\x03\x00\x03abc".to_vec()),
                Deliver(0),
            ],
            vec![Deliver(0), PeerSend(b"abc".to_vec()), PeerFin, Deliver(0)],
            vec![
                Deliver(0),
                PeerSend(b"abc".to_vec()),
                PeerCloseNotify,
                PeerFin,
                Deliver(0),
            ],
            vec![Deliver(0), Close, PeerCloseNotify, PeerFin, Deliver(0)],
            vec![Inject(b"250 INJECTED\r\n".to_vec()), Deliver(0)],
            vec![Wait(u16::MAX)],
        ];
        for ops in endings {
            run_tls_records(&case(true, b"220 go\r\n", ops));
        }
    }
}

#[cfg(test)]
mod injection {
    use super::*;
    use TlsOp::*;

    fn injected(how: InjectedRead, ops: Vec<TlsOp>) -> TlsRecordsCase {
        TlsRecordsCase {
            starttls: true,
            prelude: b"220 go ahead\r\n".to_vec(),
            injected: b"250 INJECTED\r\n".to_vec(),
            injected_read: how,
            ops,
        }
    }

    #[test]
    fn an_injection_not_yet_delivered_at_the_call_fails_closed() {
        let honest = vec![
            PeerSend(b"hello".to_vec()),
            Deliver(0),
            AppSend(b"x".to_vec()),
        ];
        for how in [InjectedRead::Unpolled, InjectedRead::HeldWhileSuspended] {
            run_tls_records(&injected(how, honest.clone()));
        }
    }

    #[test]
    fn an_injection_read_with_the_prelude_is_delivered_before_the_call_only() {
        let honest = vec![
            PeerSend(b"hello".to_vec()),
            Deliver(0),
            AppSend(b"x".to_vec()),
        ];
        run_tls_records(&injected(InjectedRead::WithThePrelude, honest));
    }

    #[test]
    fn a_late_injection_goes_to_tls() {
        let late = vec![Inject(b"250 INJECTED\r\n".to_vec()), Deliver(0)];
        run_tls_records(&injected(InjectedRead::WithThePrelude, late));
    }
}

#[cfg(test)]
mod found {
    use super::*;
    use TlsOp::*;

    #[test]
    fn garbage_after_close_with_a_record_cut_in_two() {
        for _ in 0..20 {
            run_tls_records(&TlsRecordsCase {
                starttls: false,
                prelude: vec![],
                injected: vec![],
                injected_read: InjectedRead::WithThePrelude,
                ops: vec![
                    PeerSend(vec![226, 120, 226, 226, 104]),
                    Deliver(284),
                    Suspend,
                    Deliver(231),
                    Close,
                    Inject(vec![99, 172, 226]),
                ],
            });
        }
    }
}
