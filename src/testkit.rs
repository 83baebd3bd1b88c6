//! Test helpers shared by the unit tests of every state machine: a core on a virtual clock,
//! transcripts of whole outputs, and short constructors for the outputs tests expect.

#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::{Action, ApiError, Config, Core, Data, DomException, ErrorCode, Event, Input};
use crate::{InputError, Output, ReadyState, ServerId, SocketError, SocketId};
use crate::{TcpId, UdpId};

/// A core on a virtual clock.
pub(crate) struct Harness {
    pub core: Core,
    pub now: Instant,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(Config::default())
    }

    pub fn with_config(config: Config) -> Self {
        #[allow(clippy::disallowed_methods)] // the one real reading; only offsets matter
        let now = Instant::now();
        Harness {
            core: Core::new(config),
            now,
        }
    }

    /// Everything the core has to say now, up to (not including) the `Timeout`.
    #[track_caller]
    pub fn drain(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        loop {
            match self.core.poll_output() {
                Output::Timeout(_) => return out,
                o => out.push(o),
            }
            assert!(out.len() < 10_000, "poll_output does not end");
        }
    }

    /// The deadline `poll_output` reports once drained.
    #[track_caller]
    pub fn deadline(&mut self) -> Option<Instant> {
        match self.core.poll_output() {
            Output::Timeout(at) => at,
            other => panic!("expected the queue to be drained, got {other:?}"),
        }
    }

    #[track_caller]
    pub fn input(&mut self, input: Input) -> Vec<Output> {
        self.core
            .handle_input(self.now, input)
            .expect("input accepted");
        self.drain()
    }

    /// An input that must be refused and change nothing.
    #[track_caller]
    pub fn bad_input(&mut self, input: Input) -> InputError {
        let err = self
            .core
            .handle_input(self.now, input)
            .expect_err("input refused");
        assert_eq!(self.drain(), [], "a refused input produces nothing");
        err
    }

    /// Feeds `input`, a failure before the socket opened, and checks the whole transcript:
    /// `Release`, `Error(kind)`, `Close`, with `readyState` (read by `state`) already `closed`
    /// when the `Error` is delivered and the id dead after `Close` ([BEHAVIOUR §0](crate::behaviour#0-everywhere)).
    #[track_caller]
    pub fn fails_before_open(
        &mut self,
        id: impl Into<SocketId>,
        input: Input,
        kind: std::io::ErrorKind,
        state: impl Fn(&Core) -> Option<ReadyState>,
    ) {
        let id = id.into();
        self.core
            .handle_input(self.now, input)
            .expect("input accepted");
        assert_eq!(self.core.poll_output(), release(id));
        assert_eq!(self.core.poll_output(), io_error(id, kind));
        assert_eq!(state(&self.core), Some(ReadyState::Closed));
        assert_eq!(self.core.poll_output(), close(id));
        assert_eq!(state(&self.core), None, "the id is dead after Close");
        assert_eq!(self.drain(), []);
    }

    /// Moves the clock and runs the timers.
    #[track_caller]
    pub fn advance(&mut self, by: Duration) -> Vec<Output> {
        self.now += by;
        self.core.handle_timeout(self.now);
        self.drain()
    }
}

pub(crate) fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().expect("test IP address")
}

/// A call that must be refused with this DOMException.
#[track_caller]
pub(crate) fn refused(result: Result<impl std::fmt::Debug, ApiError>, exception: DomException) {
    assert_eq!(result.expect_err("refused").exception(), exception);
}

pub(crate) fn open(id: impl Into<SocketId>) -> Output {
    Output::Event(Event::Open { id: id.into() })
}
pub(crate) fn close(id: impl Into<SocketId>) -> Output {
    Output::Event(Event::Close { id: id.into() })
}
pub(crate) fn drain(id: impl Into<SocketId>) -> Output {
    Output::Event(Event::Drain { id: id.into() })
}
pub(crate) fn error(id: impl Into<SocketId>, code: ErrorCode, message: &str) -> Output {
    Output::Event(Event::Error {
        id: id.into(),
        error: SocketError {
            code,
            message: message.to_owned().into(),
        },
    })
}
pub(crate) fn io_error(id: impl Into<SocketId>, kind: std::io::ErrorKind) -> Output {
    Output::Event(Event::Error {
        id: id.into(),
        error: SocketError::from_io(kind),
    })
}
pub(crate) fn text(id: TcpId, s: &str) -> Output {
    Output::Event(Event::Data {
        id,
        data: Data::Text(s.to_owned()),
    })
}
pub(crate) fn bytes(id: TcpId, b: &'static [u8]) -> Output {
    Output::Event(Event::Data {
        id,
        data: Data::Bytes(Bytes::from_static(b)),
    })
}
pub(crate) fn halfclose_event(id: TcpId) -> Output {
    Output::Event(Event::HalfClose { id })
}
pub(crate) fn write(id: TcpId, b: &'static [u8]) -> Output {
    Output::Action(Action::Write {
        id,
        data: Bytes::from_static(b),
    })
}
pub(crate) fn reading(id: impl Into<SocketId>, enabled: bool) -> Output {
    Output::Action(Action::SetReading {
        id: id.into(),
        enabled,
    })
}
pub(crate) fn shutdown(id: TcpId) -> Output {
    Output::Action(Action::Shutdown { id })
}
pub(crate) fn query(id: TcpId) -> Output {
    Output::Action(Action::QueryUnacked { id })
}
pub(crate) fn unacked(id: TcpId, bytes: usize) -> Input {
    Input::Unacked {
        id,
        bytes: Some(bytes),
    }
}
pub(crate) fn release(id: impl Into<SocketId>) -> Output {
    Output::Action(Action::Release { id: id.into() })
}
pub(crate) fn listen(id: ServerId, local: &str, backlog: u32, reuse_address: bool) -> Output {
    Output::Action(Action::Listen {
        id,
        local: addr(local),
        backlog,
        reuse_address,
        settings: Box::default(),
    })
}
pub(crate) fn connect_event(server: ServerId, socket: TcpId) -> Output {
    Output::Event(Event::Connect { server, socket })
}
pub(crate) fn bind(id: UdpId, local: &str, reuse_address: bool, loopback: bool) -> Output {
    Output::Action(Action::Bind {
        id,
        local: addr(local),
        reuse_address,
        loopback,
        settings: Box::default(),
    })
}
/// An `Action::SendDatagrams` of one datagram.
pub(crate) fn send_to(id: UdpId, b: &[u8], remote: &str) -> Output {
    send_all(id, &[(b, remote)])
}
/// An `Action::SendDatagrams` of these datagrams.
pub(crate) fn send_all(id: UdpId, datagrams: &[(&[u8], &str)]) -> Output {
    Output::Action(Action::SendDatagrams {
        id,
        datagrams: (datagrams.iter())
            .map(|(b, remote)| (Bytes::copy_from_slice(b), addr(remote)))
            .collect(),
    })
}
pub(crate) fn message(id: UdpId, b: &[u8], remote: &str) -> Output {
    Output::Event(Event::Message {
        id,
        data: Bytes::copy_from_slice(b),
        remote: addr(remote),
    })
}
pub(crate) fn join(id: UdpId, group: &str) -> Output {
    Output::Action(Action::JoinMulticast {
        id,
        group: ip(group),
        source: None,
    })
}
pub(crate) fn leave(id: UdpId, group: &str) -> Output {
    Output::Action(Action::LeaveMulticast {
        id,
        group: ip(group),
        source: None,
    })
}
pub(crate) fn join_from(id: UdpId, group: &str, source: &str) -> Output {
    Output::Action(Action::JoinMulticast {
        id,
        group: ip(group),
        source: Some(ip(source)),
    })
}
pub(crate) fn leave_from(id: UdpId, group: &str, source: &str) -> Output {
    Output::Action(Action::LeaveMulticast {
        id,
        group: ip(group),
        source: Some(ip(source)),
    })
}

/// TLS for tests: certificates made by rcgen at test time, a fixed clock so nothing expires,
/// and a rustls peer driven by hand.
pub(crate) mod tls {
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::time::Duration;

    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};

    use crate::tls::{self as core_tls, ClientConfig, RootCertStore, ServerConfig};

    /// 2030-01-01T00:00:00Z, inside every validity period below but `expired`'s.
    #[derive(Debug)]
    pub struct FixedTime;
    impl rustls::time_provider::TimeProvider for FixedTime {
        fn current_time(&self) -> Option<UnixTime> {
            Some(UnixTime::since_unix_epoch(Duration::from_secs(
                1_893_456_000,
            )))
        }
    }

    pub struct Ca {
        cert: rcgen::Certificate,
        key: KeyPair,
    }

    pub type Chain = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

    impl Ca {
        pub fn new(name: &str) -> Ca {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name.push(DnType::CommonName, name);
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2040, 1, 1);
            let cert = p.self_signed(&key).unwrap();
            Ca { cert, key }
        }

        /// A leaf for `names` (DNS names or IP literals), valid until `until_year`.
        pub fn leaf(&self, names: &[&str], until_year: i32) -> Chain {
            let key = KeyPair::generate().unwrap();
            let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            let mut p = CertificateParams::new(names).unwrap();
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(until_year, 1, 1);
            let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
            (vec![cert.der().clone()], key)
        }

        pub fn roots(&self) -> RootCertStore {
            let mut roots = RootCertStore::empty();
            roots.add(self.cert.der().clone()).unwrap();
            roots
        }

        pub fn client_config(&self) -> Arc<ClientConfig> {
            client_config_with(self.roots(), None)
        }
    }

    pub fn client_config_with(
        roots: RootCertStore,
        versions: Option<Vec<&'static rustls::SupportedProtocolVersion>>,
    ) -> Arc<ClientConfig> {
        core_tls::client_config(core_tls::ClientOptions {
            roots: Some(roots),
            time: Some(Arc::new(FixedTime)),
            versions,
            ..Default::default()
        })
        .unwrap()
    }

    pub fn server_config(chain: Chain) -> Arc<ServerConfig> {
        server_config_with(chain, None)
    }

    pub fn server_config_with(
        (chain, key): Chain,
        versions: Option<Vec<&'static rustls::SupportedProtocolVersion>>,
    ) -> Arc<ServerConfig> {
        let mut options = core_tls::ServerOptions::new(chain, key);
        options.time = Some(Arc::new(FixedTime));
        options.versions = versions;
        core_tls::server_config(options).unwrap()
    }

    /// A rustls endpoint the test drives by hand: ciphertext in and out, plaintext collected.
    pub struct Peer {
        pub conn: rustls::Connection,
        pub plain: Vec<u8>,
        pub closed_notify: bool,
    }

    impl Peer {
        pub fn server(config: Arc<ServerConfig>) -> Peer {
            let mut conn: rustls::Connection =
                rustls::ServerConnection::new(config).unwrap().into();
            conn.set_buffer_limit(None);
            Peer {
                conn,
                plain: Vec::new(),
                closed_notify: false,
            }
        }

        pub fn client(config: Arc<ClientConfig>, name: &str) -> Peer {
            let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
            let mut conn: rustls::Connection =
                rustls::ClientConnection::new(config, name).unwrap().into();
            conn.set_buffer_limit(None);
            Peer {
                conn,
                plain: Vec::new(),
                closed_notify: false,
            }
        }

        /// Takes ciphertext from the socket.
        pub fn feed(&mut self, mut ct: &[u8]) -> Result<(), rustls::Error> {
            while !ct.is_empty() && !self.closed_notify {
                self.conn.read_tls(&mut ct).unwrap();
                let state = self.conn.process_new_packets()?;
                self.closed_notify |= state.peer_has_closed();
                let mut buf = vec![0; state.plaintext_bytes_to_read()];
                self.conn.reader().read_exact(&mut buf).unwrap();
                self.plain.extend_from_slice(&buf);
            }
            Ok(())
        }

        pub fn send(&mut self, plain: &[u8]) {
            self.conn.writer().write_all(plain).unwrap();
        }

        /// Ciphertext for the socket.
        pub fn take(&mut self) -> Vec<u8> {
            let mut out = Vec::new();
            while self.conn.wants_write() {
                self.conn.write_tls(&mut out).unwrap();
            }
            out
        }
    }
}
