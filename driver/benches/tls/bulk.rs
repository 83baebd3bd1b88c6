//! Bulk throughput: the plain and record-carrying pumps over `std::net`, rustls's
//! `StreamOwned`, and the driver, each end on its own thread.

use super::crypto::{FRAGMENT, RECORD};
use super::*;

pub(super) fn bulk(imp: Imp, tls: &Tls, bytes: u64) -> Bulk {
    let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let (up_tx, up_rx) = mpsc::channel();
    let (down_tx, down_rx) = mpsc::channel();
    let server = match imp {
        Imp::Driver => {
            drop(listener);
            let config = tls.server.clone();
            let (port_tx, port_rx) = mpsc::channel();
            let server = thread::spawn(move || {
                let cpu = thread_cpu();
                driver_bulk_server(config, bytes, port_tx, up_tx, down_tx);
                ThreadCpu {
                    total: thread_cpu() - cpu,
                    ..ThreadCpu::NAN
                }
            });
            let port = port_rx
                .recv_timeout(STALL)
                .expect("the driver server listens");
            let addr = SocketAddr::new(LOCALHOST, port);
            let cpu = thread_cpu();
            let (up, down) = driver_bulk_client(tls.client.clone(), addr, bytes, &up_rx, &down_rx);
            let client = ThreadCpu {
                total: thread_cpu() - cpu,
                ..ThreadCpu::NAN
            };
            let server = server.join().unwrap();
            return Bulk {
                up,
                down,
                client,
                server,
            };
        }
        Imp::Plain => serve(listener, bytes, up_tx, down_tx, Stream),
        Imp::Records => serve(listener, bytes, up_tx, down_tx, |stream| {
            Records::new(stream, Dir::Down, Dir::Up)
        }),
        Imp::StreamOwned => {
            let config = tls.server.clone();
            serve(listener, bytes, up_tx, down_tx, move |stream| {
                let mut tls = StreamOwned::new(ServerConnection::new(config).unwrap(), stream);
                handshake(&mut tls.conn, &mut tls.sock);
                Stream(tls)
            })
        }
        Imp::EpollLoop => unreachable!("the epoll loop is measured for handshakes only"),
    };
    let cpu = thread_cpu();
    let stream = connect(addr);
    let (up, down, send, receive) = match imp {
        Imp::Plain => blocking_bulk_client(Stream(stream), bytes, &up_rx, &down_rx),
        Imp::Records => {
            let records = Records::new(stream, Dir::Up, Dir::Down);
            blocking_bulk_client(records, bytes, &up_rx, &down_rx)
        }
        _ => {
            let name = ServerName::IpAddress(LOCALHOST.into());
            let conn = ClientConnection::new(tls.client.clone(), name).unwrap();
            let mut tls = StreamOwned::new(conn, stream);
            handshake(&mut tls.conn, &mut tls.sock);
            blocking_bulk_client(Stream(tls), bytes, &up_rx, &down_rx)
        }
    };
    let client = ThreadCpu {
        total: thread_cpu() - cpu,
        send,
        receive,
    };
    Bulk {
        up,
        down,
        client,
        server: server.join().unwrap(),
    }
}

pub(super) fn accept(listener: &TcpListener) -> TcpStream {
    let (stream, _) = listener.accept().unwrap();
    prepare(&stream);
    stream
}

pub(super) fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, STALL).unwrap();
    prepare(&stream);
    stream
}

fn prepare(stream: &TcpStream) {
    stream.set_nodelay(true).unwrap();
    stream.set_read_timeout(Some(STALL)).unwrap();
    stream.set_write_timeout(Some(STALL)).unwrap();
}

pub(super) fn handshake<C, D>(conn: &mut C, sock: &mut TcpStream)
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<D>>,
    D: rustls::SideData,
{
    while conn.is_handshaking() {
        conn.complete_io(sock).unwrap();
    }
}

/// The sender's half of a bulk phase: `bytes` in chunks of one buffer; returns its start and
/// the CPU seconds it took.
fn pump_out(stream: &mut impl Write, bytes: u64) -> (Instant, f64) {
    let buf = pattern();
    let cpu = thread_cpu();
    let start = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        stream.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    stream.flush().unwrap();
    (start, thread_cpu() - cpu)
}

/// The receiver's half: reads exactly `bytes`, checking the pattern at every chunk boundary it
/// sees; returns when the last byte came and the CPU seconds it took.
fn pump_in(stream: &mut impl Read, bytes: u64) -> (Instant, f64) {
    let mut buf = vec![0; CHUNK];
    let cpu = thread_cpu();
    let mut got = 0u64;
    while got < bytes {
        let want = (bytes - got).min(CHUNK as u64) as usize;
        let n = stream.read(&mut buf[..want]).unwrap();
        assert!(n > 0, "the stream ended after {got} of {bytes} bytes");
        check(&buf[..n], got);
        got += n as u64;
    }
    (Instant::now(), thread_cpu() - cpu)
}

/// The bytes every sender sends: position `i` of each chunk holds `i as u8`.
pub(super) fn pattern() -> Bytes {
    (0..CHUNK).map(|i| i as u8).collect::<Vec<u8>>().into()
}

/// Checks the first byte of a received piece that starts at stream offset `at`.
pub(super) fn check(piece: &[u8], at: u64) {
    let expect = ((at % CHUNK as u64) as usize) as u8;
    assert_eq!(
        piece.first().copied().unwrap_or(expect),
        expect,
        "corrupt byte at {at}"
    );
}

type Times = mpsc::Sender<Instant>;

/// One end of a blocking bulk run: sends and receives a phase at a time.
trait Pumping {
    /// Sends `bytes` of the pattern; returns the start and the CPU seconds it took.
    fn pump_out(&mut self, bytes: u64) -> (Instant, f64);
    /// Receives `bytes`, checking them; returns when the last came and the CPU seconds.
    fn pump_in(&mut self, bytes: u64) -> (Instant, f64);
    /// Waits for the peer's close.
    fn linger(&mut self);
}

/// A byte stream, plain or TLS.
struct Stream<S>(S);

impl<S: Read + Write> Pumping for Stream<S> {
    fn pump_out(&mut self, bytes: u64) -> (Instant, f64) {
        pump_out(&mut self.0, bytes)
    }

    fn pump_in(&mut self, bytes: u64) -> (Instant, f64) {
        pump_in(&mut self.0, bytes)
    }

    fn linger(&mut self) {
        let mut end = [0; 1];
        let _ = self.0.read(&mut end);
    }
}

/// The direction of a record layer's key.
#[derive(Clone, Copy, Debug)]
pub(super) enum Dir {
    Up,
    Down,
}

/// One direction of a minimal TLS 1.3 record layer on ring: AES-128-GCM over full fragments,
/// the record header as additional data, the nonce the IV XOR the sequence number.
pub(super) struct RecordLayer {
    key: ::ring::aead::LessSafeKey,
    iv: [u8; 12],
    seq: u64,
}

impl RecordLayer {
    /// The header of a record of a full fragment (its content type and tag included).
    const HEADER: [u8; 5] = {
        let [hi, lo] = ((FRAGMENT + 1 + 16) as u16).to_be_bytes();
        [0x17, 3, 3, hi, lo]
    };

    pub(super) fn new(dir: Dir) -> RecordLayer {
        use ::ring::aead::{LessSafeKey, UnboundKey, AES_128_GCM};
        let secret = match dir {
            Dir::Up => 0x42,
            Dir::Down => 0x24,
        };
        RecordLayer {
            key: LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[secret; 16]).unwrap()),
            iv: [secret ^ 0xff; 12],
            seq: 0,
        }
    }

    fn nonce(&mut self) -> ::ring::aead::Nonce {
        let mut nonce = self.iv;
        for (b, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *b ^= s;
        }
        self.seq += 1;
        ::ring::aead::Nonce::assume_unique_for_key(nonce)
    }

    /// Seals `record` (`RECORD` bytes, its fragment already after the header) in place.
    pub(super) fn seal(&mut self, record: &mut [u8]) {
        record[..5].copy_from_slice(&Self::HEADER);
        record[5 + FRAGMENT] = 0x17; // the content type
        let nonce = self.nonce();
        let (body, tag) = record[5..].split_at_mut(FRAGMENT + 1);
        let sealed = self
            .key
            .seal_in_place_separate_tag(nonce, ::ring::aead::Aad::from(Self::HEADER), body)
            .unwrap();
        tag.copy_from_slice(sealed.as_ref());
    }

    /// Opens `record` in place; returns its fragment.
    pub(super) fn open<'r>(&mut self, record: &'r mut [u8]) -> &'r [u8] {
        let nonce = self.nonce();
        let aad = ::ring::aead::Aad::from(Self::HEADER);
        let plaintext = self
            .key
            .open_in_place(nonce, aad, &mut record[5..])
            .expect("the record authenticates");
        assert_eq!(plaintext[FRAGMENT], 0x17, "the content type survives");
        &plaintext[..FRAGMENT]
    }
}

/// A plain stream carrying [`RecordLayer`] records: each write of up to 64 KiB is copied
/// into 16 KiB records, sealed and written at once; the receiver reads whole records and
/// opens them where they were read.
struct Records {
    sock: TcpStream,
    out: RecordLayer,
    into: RecordLayer,
    buf: Vec<u8>,
}

impl Records {
    fn new(sock: TcpStream, out: Dir, into: Dir) -> Records {
        Records {
            sock,
            out: RecordLayer::new(out),
            into: RecordLayer::new(into),
            buf: vec![0; CHUNK / FRAGMENT * RECORD],
        }
    }
}

impl Pumping for Records {
    fn pump_out(&mut self, bytes: u64) -> (Instant, f64) {
        assert_eq!(bytes % FRAGMENT as u64, 0, "whole fragments");
        let pattern = pattern();
        let cpu = thread_cpu();
        let start = Instant::now();
        let mut left = bytes;
        while left > 0 {
            let records = (left / FRAGMENT as u64).min((CHUNK / FRAGMENT) as u64) as usize;
            let wire = &mut self.buf[..records * RECORD];
            for (i, record) in wire.chunks_mut(RECORD).enumerate() {
                record[5..5 + FRAGMENT].copy_from_slice(&pattern[i * FRAGMENT..][..FRAGMENT]);
                self.out.seal(record);
            }
            self.sock.write_all(wire).unwrap();
            left -= (records * FRAGMENT) as u64;
        }
        (start, thread_cpu() - cpu)
    }

    fn pump_in(&mut self, bytes: u64) -> (Instant, f64) {
        let cpu = thread_cpu();
        let mut got = 0u64;
        while got < bytes {
            let records = ((bytes - got) / FRAGMENT as u64).clamp(1, (CHUNK / FRAGMENT) as u64);
            let wire = &mut self.buf[..records as usize * RECORD];
            self.sock.read_exact(wire).unwrap();
            for record in wire.chunks_mut(RECORD) {
                check(self.into.open(record), got);
                got += FRAGMENT as u64;
            }
        }
        (Instant::now(), thread_cpu() - cpu)
    }

    fn linger(&mut self) {
        let mut end = [0; 1];
        let _ = self.sock.read(&mut end);
    }
}

/// Accepts one connection on a thread of its own and runs the server's end of a blocking
/// bulk run over what `ends` makes of it (the server's TLS handshake, if any, counts in its
/// CPU).
fn serve<P: Pumping>(
    listener: TcpListener,
    bytes: u64,
    up: Times,
    down: Times,
    ends: impl FnOnce(TcpStream) -> P + Send + 'static,
) -> thread::JoinHandle<ThreadCpu> {
    thread::spawn(move || {
        let cpu = thread_cpu();
        let pump = ends(accept(&listener));
        let (receive, send) = blocking_bulk_server(pump, bytes, up, down);
        ThreadCpu {
            total: thread_cpu() - cpu,
            send,
            receive,
        }
    })
}

/// Receives the upload, sends the download; returns the CPU seconds of each.
fn blocking_bulk_server(mut s: impl Pumping, bytes: u64, up: Times, down: Times) -> (f64, f64) {
    let (up_end, receive) = s.pump_in(bytes);
    up.send(up_end).unwrap();
    let (down_start, send) = s.pump_out(bytes);
    down.send(down_start).unwrap();
    s.linger(); // the client's close
    (receive, send)
}

/// Sends the upload, receives the download; returns the seconds of each direction and the
/// CPU seconds of this end's sending and receiving.
fn blocking_bulk_client(
    mut s: impl Pumping,
    bytes: u64,
    up: &mpsc::Receiver<Instant>,
    down: &mpsc::Receiver<Instant>,
) -> (f64, f64, f64, f64) {
    let (up_start, send) = s.pump_out(bytes);
    let up_end = up.recv_timeout(STALL).unwrap();
    let (down_end, receive) = s.pump_in(bytes);
    let down_start = down.recv_timeout(STALL).unwrap();
    (
        (up_end - up_start).as_secs_f64(),
        (down_end - down_start).as_secs_f64(),
        send,
        receive,
    )
}

pub(super) fn driver() -> Driver {
    Driver::new(Config::default()).unwrap()
}

/// A secure server on an ephemeral loopback port, binary data.
pub(super) fn secure_listen(driver: &mut Driver, config: Arc<ServerConfig>) -> ServerId {
    driver
        .listen(
            ServerOptions::default()
                .local_address(Some(LOCALHOST))
                .binary_type(BinaryType::ArrayBuffer)
                .use_secure_transport(true)
                .tls_config(Some(config)),
        )
        .unwrap()
}

/// The driver's next event; a stall is a failure, never a hang.
pub(super) fn event(driver: &mut Driver) -> Event {
    match driver.next_event(Some(STALL)) {
        Some(Event::Error { id, error }) => panic!("{id:?}: {error}"),
        Some(event) => event,
        None => panic!("no event for {STALL:?}: {:?}", driver.diagnostics()),
    }
}

/// Sends `bytes` on `id` as clones of one buffer, honouring `send`'s back-pressure; returns
/// when all of it is queued (the driver writes it while the caller goes on taking events).
/// Data events met on the way are counted into `received`.
fn driver_send(driver: &mut Driver, id: TcpId, bytes: u64, received: &mut u64) -> Instant {
    let buf = pattern();
    let start = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        left -= n as u64;
        if !driver.send(id, buf.slice(..n)).unwrap() && left > 0 {
            loop {
                match event(driver) {
                    Event::Drain { .. } => break,
                    Event::Data { data, .. } => *received += data.as_bytes().len() as u64,
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    }
    start
}

/// Takes events until `bytes` have arrived on the socket in all (`got` already counted).
fn driver_receive(driver: &mut Driver, bytes: u64, mut got: u64) -> Instant {
    while got < bytes {
        match event(driver) {
            Event::Data { data, .. } => {
                let data = data.as_bytes();
                check(data, got);
                got += data.len() as u64;
            }
            Event::Drain { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    Instant::now()
}

fn driver_bulk_server(
    config: Arc<ServerConfig>,
    bytes: u64,
    port: mpsc::Sender<u16>,
    up: Times,
    down: Times,
) {
    let mut driver = driver();
    let server = secure_listen(&mut driver, config);
    let socket = loop {
        match event(&mut driver) {
            Event::Open { .. } => {
                let local = driver.server(server).unwrap().local_address().unwrap();
                port.send(local.port()).unwrap();
            }
            Event::Connect { socket, .. } => break socket,
            other => panic!("unexpected {other:?}"),
        }
    };
    up.send(driver_receive(&mut driver, bytes, 0)).unwrap();
    let mut stray = 0;
    down.send(driver_send(&mut driver, socket, bytes, &mut stray))
        .unwrap();
    driver.close(server).unwrap();
    // The client closes once it has everything; the rest of ours is flushed meanwhile.
    while !matches!(
        event(&mut driver),
        Event::Close {
            id: SocketId::TcpId(_)
        }
    ) {}
}

fn driver_bulk_client(
    config: Arc<ClientConfig>,
    addr: SocketAddr,
    bytes: u64,
    up: &mpsc::Receiver<Instant>,
    down: &mpsc::Receiver<Instant>,
) -> (f64, f64) {
    let mut driver = driver();
    let options = TcpOptions::default()
        .use_secure_transport(true)
        .tls_config(Some(config))
        .binary_type(BinaryType::ArrayBuffer);
    let id = driver
        .tcp_open(&addr.ip().to_string(), addr.port(), options)
        .unwrap();
    assert!(matches!(event(&mut driver), Event::Open { .. }));
    let mut got = 0;
    let up_start = driver_send(&mut driver, id, bytes, &mut got);
    // Everything is queued; taking events flushes it, then the download comes.
    let down_end = driver_receive(&mut driver, bytes, got);
    let up_end = up.recv_timeout(STALL).unwrap();
    let down_start = down.recv_timeout(STALL).unwrap();
    driver.close(id).unwrap();
    while !matches!(event(&mut driver), Event::Close { .. }) {}
    (
        (up_end - up_start).as_secs_f64(),
        (down_end - down_start).as_secs_f64(),
    )
}
