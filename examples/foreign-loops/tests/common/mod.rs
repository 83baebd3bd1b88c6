//! The scenarios every layer must pass, on loopback, each bounded in time.
#![allow(dead_code)]

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use foreign_loops::Engine;
use sockstate::sim::{Call, Returned};
use sockstate::{BinaryType, Config, Event, ServerOptions, SocketId, TcpOptions, UdpOptions};

/// What the scenarios need of a layer.
pub trait Layer: Calls {
    fn with(engine: Engine) -> Self;
    fn run(&mut self, timeout: Duration, app: impl FnMut(&mut Engine, Event) -> bool) -> bool;
    fn engine(&self) -> &Engine;
    fn input_errors(&self) -> usize;
}

const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
const LIMIT: Duration = Duration::from_secs(20);

fn layer<L: Layer>(checked: bool) -> L {
    L::with(Engine::new(Config::default(), checked))
}

fn healthy<L: Layer>(l: &L) {
    assert_eq!(l.input_errors(), 0, "inputs the core refused");
    assert_eq!(l.engine().violations(), [], "contract violations");
}

fn tcp_open(e: &mut Engine, host: &str, port: u16, options: TcpOptions) -> sockstate::TcpId {
    let call = Call::TcpOpen {
        host: host.into(),
        port,
        options,
    };
    match e.call(call).unwrap() {
        Returned::Opened(id) => id,
        r => panic!("{r:?}"),
    }
}

fn binary() -> TcpOptions {
    TcpOptions::default().binary_type(BinaryType::ArrayBuffer)
}

/// 10 MiB from our client to our server, echoed back, compared byte for byte; both close clean.
pub fn echo_10_mib<L: Layer>(checked: bool) {
    let mut l: L = layer(checked);
    let data: Vec<u8> = (0..10u32 << 20).map(|i| (i * 7 + i / 4099) as u8).collect();
    let options = ServerOptions::default()
        .local_address(Some(LOCAL))
        .binary_type(BinaryType::ArrayBuffer);
    let Returned::Listening(server) = l.engine_call(Call::ServerListen { options }) else {
        panic!()
    };
    let (mut client, mut got, mut closes, mut errors) = (None, Vec::new(), 0, Vec::new());
    let done = l.run(LIMIT, |e, event| {
        match event {
            Event::Open {
                id: SocketId::ServerId(_),
            } => {
                let port = e
                    .core()
                    .server(server)
                    .unwrap()
                    .local_address()
                    .unwrap()
                    .port();
                client = Some(tcp_open(e, "127.0.0.1", port, binary()));
            }
            Event::Open {
                id: SocketId::TcpId(id),
            } => {
                e.call(Call::TcpSend {
                    id,
                    data: data.clone().into(),
                })
                .unwrap();
            }
            Event::Data { id, data: d } if Some(id) == client => {
                got.extend_from_slice(d.as_bytes());
                if got.len() == data.len() {
                    e.call(Call::TcpClose { id }).unwrap();
                }
            }
            Event::Data { id, data: d } => {
                e.call(Call::TcpSend {
                    id,
                    data: d.as_bytes().to_vec().into(),
                })
                .unwrap();
            }
            Event::Error { error, .. } => errors.push(error.name()),
            Event::Close {
                id: SocketId::TcpId(_),
            } => {
                closes += 1;
                if closes == 2 {
                    e.call(Call::ServerClose { id: server }).unwrap();
                }
            }
            Event::Close {
                id: SocketId::ServerId(_),
            } => return true,
            _ => {}
        }
        false
    });
    assert!(
        done,
        "timed out with {} of {} bytes back",
        got.len(),
        data.len()
    );
    assert_eq!(errors, Vec::<&str>::new());
    assert!(got == data, "the echo differs");
    healthy(&l);
}

/// A datagram to our UDP echo and back.
pub fn udp_ping<L: Layer>(checked: bool) {
    let mut l: L = layer(checked);
    let bind = || UdpOptions::default().local_address(Some(LOCAL));
    let Returned::Bound(echo) = l.engine_call(Call::UdpOpen { options: bind() }) else {
        panic!()
    };
    let Returned::Bound(client) = l.engine_call(Call::UdpOpen { options: bind() }) else {
        panic!()
    };
    let mut open = 0;
    let done = l.run(LIMIT, |e, event| {
        match event {
            Event::Open { .. } => {
                open += 1;
                if open == 2 {
                    let to = e.core().udp(echo).unwrap().local_address();
                    e.call(Call::UdpSend {
                        id: client,
                        data: "ping".into(),
                        to,
                    })
                    .unwrap();
                }
            }
            Event::Message { id, data, remote } if id == echo => {
                e.call(Call::UdpSend {
                    id,
                    data,
                    to: Some(remote),
                })
                .unwrap();
            }
            Event::Message { data, .. } => {
                assert_eq!(&data[..], b"ping");
                e.call(Call::UdpClose { id: client }).unwrap();
                e.call(Call::UdpClose { id: echo }).unwrap();
            }
            Event::Close { id } if id == SocketId::from(echo) => return true,
            Event::Error { error, .. } => panic!("{error:?}"),
            _ => {}
        }
        false
    });
    assert!(done, "no pong");
    healthy(&l);
}

/// Runs until `id`'s `Close`; returns the names of its errors.
fn errors_until_close<L: Layer>(
    l: &mut L,
    id: sockstate::TcpId,
    mut open: impl FnMut(&mut Engine),
) -> Vec<&'static str> {
    let mut errors = Vec::new();
    let done = l.run(LIMIT, |e, event| {
        match event {
            Event::Open { .. } => open(e),
            Event::Error {
                id: SocketId::TcpId(i),
                error,
            } if i == id => errors.push(error.name()),
            Event::Close {
                id: SocketId::TcpId(i),
            } if i == id => return true,
            _ => {}
        }
        false
    });
    assert!(done, "no Close");
    errors
}

/// A port nobody listens on: `ConnectionRefusedError` + `Close`.
pub fn refused<L: Layer>(checked: bool) {
    // Bound and never listening: refused, and no other test can take the port meanwhile (a
    // port found free and closed again may go to another test's listener at once).
    let holder = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    holder
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let port = holder.local_addr().unwrap().as_socket().unwrap().port();
    let mut l: L = layer(checked);
    let id = l.engine_mut_call(|e| tcp_open(e, "127.0.0.1", port, TcpOptions::default()));
    assert_eq!(
        errors_until_close(&mut l, id, |_| {}),
        ["ConnectionRefusedError"]
    );
    healthy(&l);
}

/// The peer reads a little, then resets: `NetworkInterruptError` + `Close`.
pub fn reset<L: Layer>(checked: bool) {
    let peer = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = peer.local_addr().unwrap().port();
    let thread = std::thread::spawn(move || {
        let (mut s, _) = peer.accept().unwrap();
        let mut buf = [0; 5];
        s.read_exact(&mut buf).unwrap();
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap(); // RST on close
    });
    let mut l: L = layer(checked);
    let id = l.engine_mut_call(|e| tcp_open(e, "127.0.0.1", port, TcpOptions::default()));
    let errors = errors_until_close(&mut l, id, |e| {
        e.call(Call::TcpSend {
            id,
            data: "hello".into(),
        })
        .unwrap();
    });
    thread.join().unwrap();
    assert_eq!(errors, ["NetworkInterruptError"]);
    healthy(&l);
}

/// A TLS client (by name, so DNS off the loop too) against the driver's secure echo server.
pub fn tls_client<L: Layer>(checked: bool) {
    let (client_config, server_config) = pki();
    let (tx, rx) = mpsc::channel();
    let server = std::thread::spawn(move || {
        use sockstate_driver::{Config, Driver};
        let mut driver = Driver::new(Config::default()).unwrap();
        let options = ServerOptions::default()
            .local_address(Some(LOCAL))
            .use_secure_transport(true)
            .tls_config(Some(server_config));
        let server = driver.listen(options).unwrap();
        while let Some(event) = driver.next_event(Some(LIMIT)) {
            match event {
                Event::Open { .. } => tx
                    .send(driver.server(server).unwrap().local_address().unwrap())
                    .unwrap(),
                Event::Data { id, data } => _ = driver.send(id, data.as_bytes().to_vec()).unwrap(),
                Event::Close {
                    id: SocketId::TcpId(_),
                } => return,
                _ => {}
            }
        }
        panic!("the secure server timed out");
    });
    let at: SocketAddr = rx.recv_timeout(LIMIT).unwrap();
    let mut l: L = layer(checked);
    let options = binary()
        .use_secure_transport(true)
        .tls_config(Some(client_config));
    let id = l.engine_mut_call(|e| tcp_open(e, "localhost", at.port(), options));
    let (mut got, mut errors) = (Vec::new(), Vec::new());
    let done = l.run(LIMIT, |e, event| {
        match event {
            Event::Open { .. } => {
                _ = e
                    .call(Call::TcpSend {
                        id,
                        data: "hello over tls".into(),
                    })
                    .unwrap()
            }
            Event::Data { data, .. } => {
                got.extend_from_slice(data.as_bytes());
                if got.len() == 14 {
                    e.call(Call::TcpClose { id }).unwrap();
                }
            }
            Event::Error { error, .. } => errors.push(error.name()),
            Event::Close { .. } => return true,
            _ => {}
        }
        false
    });
    assert!(done, "no Close");
    assert_eq!(errors, Vec::<&str>::new());
    assert_eq!(got, b"hello over tls");
    assert!(l.engine().core().tcp(id).is_none());
    server.join().unwrap();
    healthy(&l);
}

/// A client config trusting a fresh CA, and a server config for `localhost` signed by it.
fn pki() -> (
    Arc<sockstate::tls::ClientConfig>,
    Arc<sockstate::tls::ServerConfig>,
) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use sockstate::tls::{self, pki_types::PrivateKeyDer, ClientOptions, RootCertStore};
    let ca_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = p.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let client = tls::client_config(ClientOptions::default().roots(Some(roots))).unwrap();
    let key = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let server =
        tls::server_config(tls::ServerOptions::new(vec![leaf.der().clone()], key)).unwrap();
    (client, server)
}

/// Shorthands for calls made before the loop runs.
pub trait Calls {
    fn engine_call(&mut self, call: Call) -> Returned;
    fn engine_mut_call<T>(&mut self, f: impl FnOnce(&mut Engine) -> T) -> T;
}
