//! Shared by the loopback tests: real peers written by others (Python 3's `socket` module in a
//! subprocess), a watchdog so that no test can hang, and deterministic test data.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use sockstate::tls::{self, ClientConfig, ClientOptions, RootCertStore};
use sockstate_driver::{Config, Driver, Event, SocketId};

/// A port on 127.0.0.1 where a connect is refused: the returned socket holds it bound and never
/// listens, so that no other test can take the port while the caller keeps the socket (a port
/// found free and closed again may be handed to another test's listener at once).
pub fn refusing_port() -> (socket2::Socket, u16) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    socket.bind(&local.into()).unwrap();
    let port = socket.local_addr().unwrap().as_socket().unwrap().port();
    (socket, port)
}

/// Fails the whole test binary if a test is still running after `secs` seconds: a last
/// resort, since every wait below has its own deadline.
pub struct Watchdog(Arc<AtomicBool>);

pub fn watchdog(name: &'static str, secs: u64) -> Watchdog {
    let done = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&done);
    thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            if flag.load(Ordering::SeqCst) {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        eprintln!("watchdog: test {name} still running after {secs} s");
        std::process::exit(101);
    });
    Watchdog(done)
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A Python 3 program run as a peer. Its stdout lines are read on a thread; it is killed when
/// dropped (if it has not exited by itself).
pub struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Peer {
    pub fn python(script: &str, args: &[&str]) -> Peer {
        let mut child = Command::new("python3")
            .arg("-u")
            .arg("-c")
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 must be installed to run the loopback tests");
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let (tx, lines) = channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Peer {
            child,
            stdin,
            lines,
        }
    }

    /// The next line the peer prints, within `secs` seconds (else the test fails).
    #[track_caller]
    pub fn line(&self, secs: u64) -> String {
        match self.lines.recv_timeout(Duration::from_secs(secs)) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!("the peer printed nothing within {secs} s"),
            Err(RecvTimeoutError::Disconnected) => panic!("the peer exited without printing"),
        }
    }

    /// A line if one was printed already.
    pub fn try_line(&self) -> Option<String> {
        self.lines.try_recv().ok()
    }

    /// The port the peer listens on: its first line.
    #[track_caller]
    pub fn port(&self) -> u16 {
        let line = self.line(10);
        line.trim()
            .parse()
            .unwrap_or_else(|_| panic!("expected a port, got {line:?}"))
    }

    /// Writes a line to the peer's stdin.
    pub fn tell(&mut self, line: &str) {
        if let Some(stdin) = &mut self.stdin {
            let _ = writeln!(stdin, "{line}");
            let _ = stdin.flush();
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stdin.take();
        let end = Instant::now() + Duration::from_secs(2);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A driver whose diagnostics are checked when the test ends.
pub fn driver(config: Config) -> Driver {
    Driver::new(config).expect("a poller")
}

/// Pulls events until `f` says stop, failing the test if that takes more than `secs` seconds.
#[track_caller]
pub fn run(driver: &mut Driver, secs: u64, mut f: impl FnMut(&mut Driver, Event) -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            panic!("no end within {secs} s");
        }
        if let Some(event) = driver.next_event(Some(left)) {
            if !f(driver, event) {
                return;
            }
        }
    }
}

/// Collects every event until `Close` of `id`, within `secs` seconds.
#[track_caller]
pub fn until_close(driver: &mut Driver, id: impl Into<SocketId>, secs: u64) -> Vec<Event> {
    let id = id.into();
    let mut log = Vec::new();
    run(driver, secs, |_, event| {
        let last = event == Event::Close { id };
        log.push(event);
        !last
    });
    log
}

/// Asserts that what `end` started ends with `Close` of `id` alone, within 5 s.
#[track_caller]
pub fn closes_alone(driver: &mut Driver, id: impl Into<SocketId>) {
    let id = id.into();
    assert_eq!(until_close(driver, id, 5), [Event::Close { id }]);
}

/// Asserts that the loop never refused an input nor failed to poll.
#[track_caller]
pub fn assert_healthy(driver: &Driver) {
    assert_eq!(
        driver.diagnostics(),
        &sockstate_driver::Diagnostics::default(),
        "the driver reported internal trouble"
    );
}

/// A deterministic pseudo-random byte stream (xorshift64*), reproducible from its seed: any
/// sequence of `take` calls yields the same bytes in the same order.
pub struct Stream {
    state: u64,
    spare: Vec<u8>,
}

impl Stream {
    pub fn new(seed: u64) -> Stream {
        Stream {
            state: seed | 1,
            spare: Vec::new(),
        }
    }

    pub fn take(&mut self, len: usize) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.spare);
        out.reserve(len + 8);
        while out.len() < len {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            out.extend_from_slice(&self.state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        self.spare = out.split_off(len);
        out
    }
}

/// CRC-32 (IEEE), as Python's `zlib.crc32`, continued from `crc`.
pub fn crc32(crc: u32, data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        t
    });
    let mut c = !crc;
    for &b in data {
        c = table[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// A TCP echo server: prints its port, echoes one connection until EOF, half-closes, then
/// prints `<bytes received> <crc32 of them>`.
pub const ECHO_SERVER: &str = r#"
import socket, sys, zlib
host = sys.argv[1]
fam = socket.AF_INET6 if ':' in host else socket.AF_INET
srv = socket.socket(fam, socket.SOCK_STREAM)
srv.bind((host, 0))
srv.listen(1)
srv.settimeout(30)
print(srv.getsockname()[1], flush=True)
c, _ = srv.accept()
c.settimeout(30)
n, crc = 0, 0
while True:
    d = c.recv(1 << 16)
    if not d:
        break
    n += len(d)
    crc = zlib.crc32(d, crc)
    c.sendall(d)
c.shutdown(socket.SHUT_WR)
print(n, crc, flush=True)
c.close()
"#;

/// A CA and a leaf it signed, written as PEM files for the peers; removed when dropped.
pub struct Pki {
    dir: PathBuf,
    ca: rcgen::Certificate,
}

impl Pki {
    pub fn new(test: &str, leaf_names: &[&str]) -> Pki {
        let dir =
            std::env::temp_dir().join(format!("sockstate-driver-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, "sockstate test CA");
        let ca = p.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = leaf_names.iter().map(|s| s.to_string()).collect();
        let leaf = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        // A client certificate from the same CA, for servers that ask for one.
        let client_key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(DnType::CommonName, "sockcat test client");
        let client = p.signed_by(&client_key, &ca, &ca_key).unwrap();
        std::fs::write(dir.join("client.pem"), client.pem()).unwrap();
        std::fs::write(dir.join("client-key.pem"), client_key.serialize_pem()).unwrap();
        Pki { dir, ca }
    }

    pub fn path(&self, file: &str) -> String {
        self.dir.join(file).to_string_lossy().into_owned()
    }

    /// A client config that trusts only this CA.
    pub fn client(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        tls::client_config(ClientOptions::default().roots(Some(roots))).unwrap()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TLS echo server on Python's `ssl`: echoes until close_notify, then prints
/// `<bytes> <TLS version>` and closes with its own close_notify.
pub const PY_TLS_ECHO: &str = r#"
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(1); srv.settimeout(20)
print(srv.getsockname()[1], flush=True)
raw, _ = srv.accept(); raw.settimeout(20)
try:
    c = ctx.wrap_socket(raw, server_side=True)
except (ssl.SSLError, OSError) as e:
    print('handshake failed', flush=True)
    sys.exit(0)
n = 0
while True:
    d = c.recv(65536)
    if not d:
        break
    n += len(d)
    c.sendall(d)
print(n, c.version(), flush=True)
try:
    c.unwrap()
except (ssl.SSLError, OSError):
    pass
raw.close()
"#;

/// An SMTP-style STARTTLS server on Python's `ssl`: a two-line greeting, `EHLO` answered with
/// a `STARTTLS` capability, `STARTTLS` answered with `220 go ahead`, then TLS. Over TLS it
/// answers each line with `250 got <line>`; at the end it prints `ok <version> <lines>`.
pub const PY_STARTTLS_SMTP: &str = r#"
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(1); srv.settimeout(20)
print(srv.getsockname()[1], flush=True)
raw, _ = srv.accept(); raw.settimeout(20)
def line(s):
    out = b''
    while not out.endswith(b'\n'):
        b = s.recv(1)
        if not b:
            raise SystemExit('eof in plaintext')
        out += b
    return out
raw.sendall(b'220-sockstate\r\n220 ESMTP\r\n')
assert line(raw).startswith(b'EHLO ')
raw.sendall(b'250-hello\r\n250 STARTTLS\r\n')
assert line(raw) == b'STARTTLS\r\n'
raw.sendall(b'220 go ahead\r\n')
c = ctx.wrap_socket(raw, server_side=True)
pending, lines = b'', []
while True:
    d = c.recv(65536)
    if not d:
        break
    pending += d
    while b'\r\n' in pending:
        l, pending = pending.split(b'\r\n', 1)
        lines.append(l.decode())
        c.sendall(b'250 got ' + l + b'\r\n')
print('ok', c.version(), '|'.join(lines), flush=True)
try:
    c.unwrap()
except (ssl.SSLError, OSError):
    pass
"#;

/// An SMTP-style STARTTLS server (as [`PY_STARTTLS_SMTP`]) that injects plaintext after its
/// `220 go ahead` (argv[3]): `small` (one line in the same write), `large` (126 000 bytes of
/// lines in the same write) or `late` (one line once the client's first TLS bytes arrived).
/// It then tries the handshake and prints `handshake ok` (then reads until the client's
/// close_notify and answers it) or `handshake failed`.
pub const PY_STARTTLS_INJECT: &str = r#"
import socket, ssl, sys
mode = sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(1); srv.settimeout(20)
print(srv.getsockname()[1], flush=True)
raw, _ = srv.accept(); raw.settimeout(20)
def line(s):
    out = b''
    while not out.endswith(b'\n'):
        b = s.recv(1)
        if not b:
            raise SystemExit('eof in plaintext')
        out += b
    return out
raw.sendall(b'220-sockstate\r\n220 ESMTP\r\n')
assert line(raw).startswith(b'EHLO ')
raw.sendall(b'250-hello\r\n250 STARTTLS\r\n')
assert line(raw) == b'STARTTLS\r\n'
try:
    if mode == 'late':
        raw.sendall(b'220 go ahead\r\n')
        raw.recv(1, socket.MSG_PEEK)  # the ClientHello is on its way
        raw.sendall(b'250 INJECTED\r\n')
    else:
        lines = 1 if mode == 'small' else 126000 // 14
        raw.sendall(b'220 go ahead\r\n' + b'250 INJECTED\r\n' * lines)
    c = ctx.wrap_socket(raw, server_side=True)
except (ssl.SSLError, OSError):
    print('handshake failed', flush=True)
    sys.exit(0)
print('handshake ok', flush=True)
try:
    while c.recv(65536):
        pass
    c.unwrap()
except (ssl.SSLError, OSError):
    pass
"#;
