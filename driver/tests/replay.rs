//! Sessions recorded through the driver on loopback (issue 16), replayed offline on a fresh
//! core: the replay must give the identical event transcript.

mod common;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use sockstate_driver::sockstate::replay::{End, Replay, ReplayError, Summary};
use sockstate_driver::{
    Config, Driver, ErrorCode, Event, PayloadLimit, Recording, ServerOptions, SocketId, TcpOptions,
    UdpOptions,
};

/// An in-memory recording target.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A driver recording into memory, and every event it delivered.
struct Recorded {
    driver: Driver,
    file: Shared,
    events: Vec<Event>,
    draws: sockstate_driver::sockstate::replay::TlsDraws,
}

impl Recorded {
    fn new(config: Config, payloads: PayloadLimit) -> Recorded {
        let file = Shared::default();
        let record = Recording::to_writer(file.clone()).payloads(payloads);
        let draws = record.tls_draws().clone();
        let config = config.record(Some(record));
        Recorded {
            driver: driver(config),
            file,
            events: Vec::new(),
            draws,
        }
    }

    /// Pulls events (logging each) until `f` says stop.
    #[track_caller]
    fn run(&mut self, secs: u64, mut f: impl FnMut(&mut Driver, &Event) -> bool) {
        let events = &mut self.events;
        run(&mut self.driver, secs, |driver, event| {
            let more = f(driver, &event);
            events.push(event);
            more
        });
    }

    /// Events until `Close` of `id`.
    #[track_caller]
    fn until_close(&mut self, id: impl Into<SocketId>) {
        let id = id.into();
        self.run(10, |_, event| *event != Event::Close { id });
    }

    /// Ends the recording, replays it and asserts the identical transcript.
    #[track_caller]
    fn replay(mut self) -> (Vec<u8>, Summary) {
        assert_healthy(&self.driver);
        let stats = self.driver.recording_stats().unwrap();
        assert!(!stats.stopped);
        self.driver.finish_recording().unwrap();
        let file = self.file.0.lock().unwrap().clone();
        assert_eq!(file.len() as u64, stats.bytes + 3, "the end record follows");
        let (events, summary) = Replay::events(file.clone(), Instant::now())
            .unwrap_or_else(|e| panic!("replay failed: {e}"));
        assert_eq!(events, self.events, "the replay's events are the session's");
        assert!(summary.complete(), "{summary}");
        assert_eq!(summary.events, self.events.len() as u64);
        (file, summary)
    }
}

/// Options of a socket that reads bytes (the streams sent are not text).
fn bytes() -> TcpOptions {
    TcpOptions::default().binary_type(sockstate_driver::BinaryType::ArrayBuffer)
}

#[test]
fn a_plain_echo_client_replays() {
    let _w = watchdog("replay echo client", 30);
    let peer = Peer::python(ECHO_SERVER, &["127.0.0.1"]);
    let mut rec = Recorded::new(Config::default(), PayloadLimit::Full);
    let id = rec
        .driver
        .tcp_open("127.0.0.1", peer.port(), bytes())
        .unwrap();
    let mut stream = Stream::new(16);
    let mut echoed = 0;
    rec.run(10, |driver, event| match event {
        Event::Open { .. } => {
            for _ in 0..20 {
                driver.send(id, stream.take(3000)).unwrap();
            }
            true
        }
        Event::Data { data, .. } => {
            echoed += data.len();
            if echoed == 60_000 {
                driver.close(id).unwrap();
            }
            true
        }
        Event::Close { .. } => false,
        _ => true,
    });
    assert_eq!(echoed, 60_000);
    let (_, summary) = rec.replay();
    assert_eq!(summary.calls, 22);
}

#[test]
fn a_plain_echo_server_replays() {
    let _w = watchdog("replay echo server", 30);
    let mut rec = Recorded::new(Config::default(), PayloadLimit::Full);
    let options = ServerOptions::default().local_address(Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let server = rec.driver.listen(options).unwrap();
    let mut client = None;
    let mut closed = 0;
    rec.run(10, |driver, event| match event {
        Event::Open { .. } => {
            let port = driver
                .server(server)
                .unwrap()
                .local_address()
                .unwrap()
                .port();
            client = Some(std::thread::spawn(move || {
                use std::io::Read;
                let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                c.write_all(b"echo me, twice").unwrap();
                let mut buf = [0; 14];
                c.read_exact(&mut buf).unwrap();
                assert_eq!(&buf, b"echo me, twice");
            }));
            true
        }
        Event::Data { id, data } => {
            driver.send(*id, data.as_bytes().to_vec()).unwrap();
            true
        }
        Event::Close {
            id: SocketId::TcpId(_),
        } => {
            closed += 1;
            driver.close(server).unwrap();
            true
        }
        Event::Close { .. } => false,
        _ => true,
    });
    client.unwrap().join().unwrap();
    assert_eq!(closed, 1);
    let (_, summary) = rec.replay();
    assert_eq!(summary.accepted, 1);
}

#[test]
fn udp_with_multicast_on_127_0_0_1_replays() {
    let _w = watchdog("replay multicast", 30);
    let config = Config::default().multicast_interface_v4(Some(Ipv4Addr::LOCALHOST));
    let mut rec = Recorded::new(config, PayloadLimit::Full);
    let group: IpAddr = "239.255.16.7".parse().unwrap();
    let member = rec.driver.udp_open(UdpOptions::default()).unwrap();
    rec.driver.join_multicast_group(member, group).unwrap();
    let sender_options = UdpOptions::default().loopback(true);
    let sender = rec.driver.udp_open(sender_options).unwrap();
    let mut opened = 0;
    let mut got = 0;
    rec.run(10, |driver, event| match event {
        Event::Open { .. } => {
            opened += 1;
            if opened == 2 {
                let port = driver.udp(member).unwrap().local_address().unwrap().port();
                let to = SocketAddr::new(group, port);
                for i in 0..5 {
                    driver
                        .send_to(sender, format!("to the group {i}"), Some(to))
                        .unwrap();
                }
            }
            true
        }
        Event::Message { id, .. } if *id == member => {
            got += 1;
            got < 5
        }
        _ => true,
    });
    rec.driver.leave_multicast_group(member, group).unwrap();
    for id in [member, sender] {
        rec.driver.close(id).unwrap();
        rec.until_close(id);
    }
    rec.replay();
}

#[test]
fn a_refused_connect_replays() {
    let _w = watchdog("replay refused", 30);
    let (_holder, port) = refusing_port();
    let mut rec = Recorded::new(Config::default(), PayloadLimit::Full);
    let id = rec
        .driver
        .tcp_open("127.0.0.1", port, TcpOptions::default())
        .unwrap();
    rec.until_close(id);
    assert!(matches!(
        &rec.events[..],
        [Event::Error { error, .. }, Event::Close { .. }] if error.code == ErrorCode::ConnectionRefused
    ));
    rec.replay();
}

#[test]
fn a_reset_replays() {
    let _w = watchdog("replay reset", 30);
    let peer = Peer::python(
        r#"
import socket, struct
srv = socket.socket()
srv.bind(('127.0.0.1', 0))
srv.listen(1)
srv.settimeout(20)
print(srv.getsockname()[1], flush=True)
c, _ = srv.accept()
c.settimeout(20)
c.recv(100)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
c.close()
print('reset', flush=True)
"#,
        &[],
    );
    let mut rec = Recorded::new(Config::default(), PayloadLimit::Full);
    let id = rec
        .driver
        .tcp_open("127.0.0.1", peer.port(), TcpOptions::default())
        .unwrap();
    rec.run(10, |driver, event| {
        if let Event::Open { .. } = event {
            driver.send(id, "hello").unwrap();
        }
        !matches!(event, Event::Close { .. })
    });
    assert!(
        rec.events.iter().any(|e| matches!(
            e,
            Event::Error { error, .. } if error.code == ErrorCode::NetworkInterrupt
        )),
        "{:?}",
        rec.events
    );
    rec.replay();
}

#[test]
fn a_recording_with_limited_payloads_replays_its_structure() {
    let _w = watchdog("replay limited", 30);
    let peer = Peer::python(ECHO_SERVER, &["127.0.0.1"]);
    let mut rec = Recorded::new(Config::default(), PayloadLimit::FirstBytes(4));
    let id = rec
        .driver
        .tcp_open("127.0.0.1", peer.port(), bytes())
        .unwrap();
    rec.run(10, |driver, event| {
        match event {
            Event::Open { .. } => _ = driver.send(id, "some secret text").unwrap(),
            Event::Data { .. } => driver.close(id).unwrap(),
            _ => {}
        }
        !matches!(event, Event::Close { .. })
    });
    rec.driver.finish_recording().unwrap();
    let file = rec.file.0.lock().unwrap().clone();
    assert!(
        !file.windows(6).any(|w| w == b"secret"),
        "the payload is not in the file"
    );
    let (events, summary) = Replay::events(file, Instant::now()).unwrap();
    assert!(summary.complete());
    assert_eq!(events.len(), rec.events.len());
    for (replayed, live) in events.iter().zip(&rec.events) {
        match (replayed, live) {
            (Event::Data { data: a, .. }, Event::Data { data: b, .. }) => {
                assert_eq!(a.len(), b.len());
                assert_eq!(&a.as_bytes()[..4], &b.as_bytes()[..4]);
            }
            (a, b) => assert_eq!(a, b),
        }
    }
}

/// A writer that takes a long time per write.
struct Slow(Shared);

impl Write for Slow {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::thread::sleep(Duration::from_millis(300));
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_writer_that_falls_behind_stops_the_recording_not_the_loop() {
    let _w = watchdog("replay overflow", 30);
    let peer = Peer::python(ECHO_SERVER, &["127.0.0.1"]);
    let file = Shared::default();
    let record = Recording::to_writer(Slow(file.clone())).buffer(100 << 10);
    let config = Config::default().record(Some(record));
    let mut driver = driver(config);
    let id = driver.tcp_open("127.0.0.1", peer.port(), bytes()).unwrap();
    let mut stream = Stream::new(3);
    let mut echoed = 0;
    let mut live = Vec::new();
    let started = Instant::now();
    run(&mut driver, 20, |driver, event| {
        live.push(event.clone());
        match &event {
            Event::Open { .. } => {
                for _ in 0..64 {
                    driver.send(id, stream.take(16 << 10)).unwrap();
                }
            }
            Event::Data { data, .. } => {
                echoed += data.len();
                if echoed == 64 << 14 {
                    driver.close(id).unwrap();
                }
            }
            _ => {}
        }
        !matches!(event, Event::Close { .. })
    });
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the loop never waited on the writer"
    );
    assert_eq!(driver.diagnostics().recording_overflows, 1);
    assert!(driver.recording_stats().unwrap().stopped);
    driver.finish_recording().unwrap();
    let bytes = file.0.lock().unwrap().clone();
    let mut replay = Replay::new(bytes, Instant::now()).unwrap();
    let mut events = Vec::new();
    while let Some(event) = replay.next_event().unwrap() {
        events.push(event);
    }
    assert_eq!(replay.summary().end, End::Stopped);
    assert!(live.starts_with(&events), "a prefix of the session replays");
}

#[test]
fn a_recording_to_a_path_replays_and_a_damaged_one_is_an_error() {
    let _w = watchdog("replay path", 30);
    let path = std::env::temp_dir().join(format!("sockstate-replay-{}.rec", std::process::id()));
    let config = Config::default().record(Some(Recording::to_path(&path)));
    let mut driver = driver(config);
    let id = driver.udp_open(UdpOptions::default()).unwrap();
    let mut live = Vec::new();
    run(&mut driver, 10, |driver, event| {
        if let Event::Open { .. } = event {
            driver.close(id).unwrap();
        }
        live.push(event.clone());
        !matches!(event, Event::Close { .. })
    });
    drop(driver); // ends the recording
                  // SOCKSTATE_WRITE_SEEDS=1 cargo test -p sockstate-driver --test replay path
    let bytes = std::fs::read(&path).unwrap();
    if std::env::var_os("SOCKSTATE_WRITE_SEEDS").is_some() {
        // The driver's seed recording of the `replay_file` fuzz target, rewritten after a
        // change of the format.
        let seed = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fuzz_corpus/replay_file/driver_udp_open_close"
        );
        std::fs::write(seed, &bytes).unwrap();
    }
    let _ = std::fs::remove_file(&path);
    let (events, summary) = Replay::events(bytes.clone(), Instant::now()).unwrap();
    assert_eq!(events, live);
    assert!(summary.complete());
    let err = Replay::events(bytes[..bytes.len() - 2].to_vec(), Instant::now()).unwrap_err();
    assert!(matches!(err, ReplayError::Format(_)), "{err}");
}

mod tls_sessions {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use rustls::time_provider::DefaultTimeProvider;
    use sockstate_driver::sockstate::replay::{Step, TlsDraws};
    use sockstate_driver::sockstate::tls::{
        self, ClientConfig, ClientOptions, RootCertStore, ServerConfig,
    };
    use sockstate_driver::sockstate::{Input, Output};
    use sockstate_driver::{BinaryType, Data};

    /// The client and server configs of `pki`, drawing through `draws`.
    fn configs(pki: &Pki, draws: &TlsDraws) -> (Arc<ClientConfig>, Arc<ServerConfig>) {
        let provider = || Some(draws.provider(tls::provider()));
        let time = || Some(draws.time(Arc::new(DefaultTimeProvider)));
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(pki.path("ca.pem")).unwrap() {
            roots.add(ca.unwrap()).unwrap();
        }
        let options = ClientOptions::default()
            .roots(Some(roots))
            .provider(provider())
            .time(time());
        let client = tls::client_config(options).unwrap();
        let chain = CertificateDer::pem_file_iter(pki.path("cert.pem"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_file(pki.path("key.pem")).unwrap();
        let options = tls::ServerOptions::new(chain, key)
            .provider(provider())
            .time(time());
        (client, tls::server_config(options).unwrap())
    }

    /// Our TLS client against our server in one driver, TLS from the start or by STARTTLS
    /// (both sides); recorded, then replayed with configs drawing from the recording.
    fn session(starttls: bool) {
        let pki = Pki::new(&format!("replay-tls-{starttls}"), &["localhost"]);
        let mut rec = Recorded::new(Config::default(), PayloadLimit::Full);
        let draws = rec_draws(&rec);
        let (client_tls, server_tls) = configs(&pki, &draws);
        let options = ServerOptions::default()
            .local_address(Some(IpAddr::V4(Ipv4Addr::LOCALHOST)))
            .use_secure_transport(!starttls)
            .tls_config(Some(server_tls))
            .binary_type(BinaryType::ArrayBuffer);
        let server = rec.driver.listen(options).unwrap();
        let mut client = None;
        let mut accepted = None;
        let mut echoed = Vec::new();
        rec.run(20, |driver, event| {
            match event {
                Event::Open { id } if *id == SocketId::from(server) => {
                    let port = driver
                        .server(server)
                        .unwrap()
                        .local_address()
                        .unwrap()
                        .port();
                    let options = TcpOptions::default()
                        .use_secure_transport(!starttls)
                        .tls_config(Some(client_tls.clone()))
                        .binary_type(BinaryType::ArrayBuffer);
                    client = Some(driver.tcp_open("localhost", port, options).unwrap());
                }
                Event::Open { id } => {
                    let id = client.filter(|c| SocketId::from(*c) == *id).unwrap();
                    let first = if starttls {
                        "STARTTLS\r\n"
                    } else {
                        "hello over TLS"
                    };
                    driver.send(id, first).unwrap();
                }
                Event::Connect { socket, .. } => accepted = Some(*socket),
                Event::Data { id, data } if Some(*id) == accepted => {
                    if data.as_bytes() == b"STARTTLS\r\n" {
                        driver.send(*id, "220 go ahead\r\n").unwrap();
                        driver.upgrade_to_secure(*id).unwrap();
                    } else {
                        driver.send(*id, data.as_bytes().to_vec()).unwrap();
                    }
                }
                Event::Data {
                    id,
                    data: Data::Bytes(b),
                } => {
                    if &b[..] == b"220 go ahead\r\n" {
                        driver.upgrade_to_secure(*id).unwrap();
                        driver.send(*id, "hello over TLS").unwrap();
                    } else {
                        echoed.extend_from_slice(b);
                        if echoed == b"hello over TLS" {
                            driver.close(*id).unwrap();
                        }
                    }
                }
                Event::Close { id } if Some(*id) == accepted.map(SocketId::from) => {
                    driver.close(server).unwrap();
                }
                Event::Close { id } if *id == SocketId::from(server) => return false,
                Event::Error { error, .. } => panic!("{error}"),
                _ => {}
            }
            true
        });
        assert_eq!(echoed, b"hello over TLS");
        assert_healthy(&rec.driver);
        rec.driver.finish_recording().unwrap();
        let file = rec.file.0.lock().unwrap().clone();
        let replay = Replay::new(file, Instant::now()).unwrap();
        let (client_tls, server_tls) = configs(&pki, replay.tls_draws());
        let mut replay = replay
            .with_client_tls(client_tls)
            .with_server_tls(server_tls);
        let mut events = Vec::new();
        while let Some(event) = replay.next_event().unwrap_or_else(|e| panic!("{e}")) {
            events.push(event);
        }
        assert_eq!(events, rec.events);
        assert!(replay.summary().complete());
        // Configs drawing fresh randomness make another handshake: the replay says where.
        let fresh = TlsDraws::recording();
        let (client_tls, server_tls) = configs(&pki, &fresh);
        let file = rec.file.0.lock().unwrap().clone();
        let replay = Replay::new(file, Instant::now()).unwrap();
        let mut replay = replay
            .with_client_tls(client_tls)
            .with_server_tls(server_tls);
        let err = loop {
            match replay.next_event() {
                Ok(Some(_)) => {}
                Ok(None) => panic!("a fresh handshake replayed"),
                Err(e) => break e,
            }
        };
        assert!(matches!(err, ReplayError::Diverged(_)), "{err}");
    }

    /// A TLS server on Python's `ssl` (a memory BIO, so that it controls the wire): after
    /// the handshake it waits for `go`, encrypts argv[3] (comma-separated message sizes) as
    /// records, then its close_notify, and writes that ciphertext in pieces of the sizes of
    /// argv[4] in turn, pausing after each so that every piece is a read of its own, of at
    /// most 4 KiB: records straddle reads. It prints the number of pieces, then reads until
    /// the client's FIN.
    const PY_TLS_DRIBBLE: &str = r#"
import socket, ssl, sys, time
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
sizes = [int(n) for n in sys.argv[3].split(',')]
pieces = [int(n) for n in sys.argv[4].split(',')]
srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(1); srv.settimeout(20)
print(srv.getsockname()[1], flush=True)
raw, _ = srv.accept(); raw.settimeout(20)
raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
c = ctx.wrap_bio(inc, out, server_side=True)
def pump():
    d = raw.recv(65536)
    if not d:
        raise SystemExit('eof')
    inc.write(d)
while True:
    try:
        c.do_handshake()
        break
    except ssl.SSLWantReadError:
        raw.sendall(out.read())
        pump()
raw.sendall(out.read())
got = b''
while got != b'go':
    try:
        got += c.read(65536)
    except ssl.SSLWantReadError:
        raw.sendall(out.read())
        pump()
raw.sendall(out.read())
for i, n in enumerate(sizes):
    c.write(bytes((i * 31 + j % 251) % 256 for j in range(n)))
try:
    c.unwrap()
except ssl.SSLWantReadError:
    pass
stream = out.read()
at = count = 0
while at < len(stream):
    n = pieces[count % len(pieces)]
    raw.sendall(stream[at:at + n])
    at += n
    count += 1
    time.sleep(0.004)
print(count, flush=True)
while raw.recv(65536):
    pass
raw.close()
"#;

    /// What [`PY_TLS_DRIBBLE`] sends for `sizes`.
    fn dribbled(sizes: &[usize]) -> Vec<u8> {
        (sizes.iter().enumerate())
            .flat_map(|(i, &n)| (0..n).map(move |j| ((i * 31 + j % 251) % 256) as u8))
            .collect()
    }

    /// The driver copies reads of at most 4 KiB into buffers of their own, and a replay
    /// hands the core parts of the recording: with TLS records straddling such reads, the
    /// replay must still split the plaintext into the same `Data` events.
    #[test]
    fn tls_records_straddling_small_reads_replay_with_the_same_data_events() {
        let _w = watchdog("replay straddling records", 60);
        let pki = Pki::new("replay-straddle", &["127.0.0.1"]);
        let sizes = [1, 300, 5000, 20_000, 3, 4096, 9000];
        let pieces = "1,5,6,700,4096,2,3000,1500,4000,17";
        let sizes_arg: Vec<String> = sizes.iter().map(usize::to_string).collect();
        let peer = Peer::python(
            PY_TLS_DRIBBLE,
            &[
                &pki.path("cert.pem"),
                &pki.path("key.pem"),
                &sizes_arg.join(","),
                pieces,
            ],
        );
        let port = peer.port();
        let mut rec = Recorded::new(Config::default(), PayloadLimit::Full);
        let (client_tls, _) = configs(&pki, &rec.draws);
        let options = TcpOptions::default()
            .use_secure_transport(true)
            .tls_config(Some(client_tls))
            .binary_type(BinaryType::ArrayBuffer);
        let id = rec.driver.tcp_open("127.0.0.1", port, options).unwrap();
        let mut got = Vec::new();
        let mut data_events = 0;
        rec.run(30, |driver, event| {
            match event {
                Event::Open { .. } => {
                    driver.send(id, "go").unwrap();
                }
                Event::Data { data, .. } => {
                    data_events += 1;
                    got.extend_from_slice(data.as_bytes());
                }
                Event::Error { error, .. } => panic!("{error}"),
                _ => {}
            }
            *event != Event::Close { id: id.into() }
        });
        assert!(got == dribbled(&sizes), "every byte, in order");
        let pieces: usize = peer.line(10).trim().parse().unwrap();
        // Most pieces complete no record: the records straddled the reads.
        assert!(
            data_events > 5 && data_events < pieces,
            "{data_events} data events from {pieces} pieces"
        );
        assert_healthy(&rec.driver);
        rec.driver.finish_recording().unwrap();
        let file = rec.file.0.lock().unwrap().clone();
        let replay = Replay::new(file, Instant::now()).unwrap();
        let (client_tls, _) = configs(&pki, replay.tls_draws());
        let mut replay = replay.with_client_tls(client_tls);
        let mut events = Vec::new();
        let mut reads = Vec::new();
        while let Some(step) = replay.next_step().unwrap_or_else(|e| panic!("{e}")) {
            match step {
                Step::Output(Output::Event(event)) => events.push(event),
                Step::Input {
                    input: Input::Received { data, .. },
                    ..
                } => reads.push(data),
                _ => {}
            }
        }
        assert_eq!(events, rec.events);
        assert!(replay.summary().complete());
        // The premise, from the recording: reads of at most 4 KiB (buffers of their own,
        // live) that end inside a TLS record.
        let stream = reads.concat();
        let mut ends = Vec::new();
        let mut at = 0;
        while at + 5 <= stream.len() {
            at += 5 + usize::from(u16::from_be_bytes([stream[at + 3], stream[at + 4]]));
            ends.push(at);
        }
        let mut offset = 0;
        let mut straddled = 0;
        for read in &reads {
            offset += read.len();
            straddled += usize::from(read.len() <= 4 << 10 && !ends.contains(&offset));
        }
        assert!(straddled > 5, "{straddled} small reads end inside a record");
    }

    fn rec_draws(rec: &Recorded) -> TlsDraws {
        rec.draws.clone()
    }

    #[test]
    fn a_tls_client_and_our_secure_server_replay() {
        let _w = watchdog("replay tls", 60);
        session(false);
    }

    #[test]
    fn starttls_on_both_sides_replays() {
        let _w = watchdog("replay starttls", 60);
        session(true);
    }
}
