//! One TCP socket joined to stdin and stdout, as `nc -N` does, and the [`Feeder`] that reads
//! stdin on a thread and hands it to the loop through a [`Handle`](sockstate_driver::Handle),
//! with back-pressure from `send`'s return value and `Drain`.

use std::io::{BufRead, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use sockstate_driver::{ApiError, Core, Driver, Event, ReadyState, SocketId, TcpId};

use crate::addr;
use crate::starttls::{Prelude, Step};

/// How [`run`] joins a socket to stdin and stdout.
#[derive(Default)]
pub struct PipeOptions {
    /// Print every event, TLS details and a summary on stderr.
    pub verbose: bool,
    /// A STARTTLS prelude to speak first.
    pub prelude: Option<Prelude>,
    /// Give up connecting after this long, and close once nothing moved for this long.
    pub wait: Option<Duration>,
    /// Each `\n` of stdin goes out as `\r\n`.
    pub crlf: bool,
}

/// Stdin ⇄ socket ⇄ stdout until the socket's `Close`. `Err` when it ended with `Error`.
/// At the end of stdin the socket is half-closed.
///
/// With a STARTTLS `prelude`, stdin is joined only once the prelude is through and
/// `upgradeToSecure()` was called; nothing received before that is printed, and a byte the
/// server sent after its answer to the upgrade command is an error (no upgrade, exit 1).
///
/// With `wait`, a socket not open after that long fails ("timed out"), and an open one with
/// no data either way for that long is closed (exit 0).
pub fn run(driver: &mut Driver, id: TcpId, options: PipeOptions) -> Result<(), String> {
    let PipeOptions {
        verbose,
        mut prelude,
        wait,
        crlf,
    } = options;
    let started = Instant::now();
    let mut received = 0u64;
    let mut failure = None;
    let mut feeder: Option<Feeder> = None;
    let start = |driver: &Driver| {
        Some(Feeder::start(
            driver,
            false,
            Arc::new(move |driver: &mut Driver, chunk: Vec<u8>| {
                driver.send(id, if crlf { to_crlf(&chunk) } else { chunk })
            }),
            Box::new(move |driver: &mut Driver| _ = driver.halfclose(id)),
        ))
    };
    let mut stdout = std::io::stdout().lock();
    // An accepted socket is open from the start (it fires `Connect`, not `Open`).
    let mut open = driver.tcp(id).map(|s| s.ready_state()) == Some(ReadyState::Open);
    if prelude.is_none() && open {
        feeder = start(driver);
    }
    let mut idle = Idle::new(wait);
    loop {
        let Some(event) = driver.next_event(idle.timeout()) else {
            if wait.is_none() || driver.tcp(id).is_none() {
                break;
            }
            if !open {
                failure = Some(format!("timed out: not connected after {} s", idle.secs()));
                let _ = driver.close_immediately(id);
                break;
            }
            let sent = feeder.as_ref().map_or(0, Feeder::sent);
            if idle.expired(sent + received) {
                if verbose {
                    eprintln!("sockcat: {id} idle for {} s: closing", idle.secs());
                }
                let _ = driver.close_immediately(id);
                break;
            }
            continue;
        };
        if verbose {
            log(driver, &event);
        }
        match event {
            Event::Open {
                id: SocketId::TcpId(opened),
            } if opened == id => {
                open = true;
                if verbose {
                    for line in tls_details(driver.core(), id) {
                        eprintln!("{line}");
                    }
                }
                if prelude.is_none() {
                    feeder = start(driver);
                }
            }
            Event::Data { data, .. } if prelude.is_some() => {
                let fed = prelude.as_mut().map(|p| p.feed(data.as_bytes()));
                match fed.unwrap_or_else(|| Ok(Vec::new())) {
                    Ok(steps) => {
                        for step in steps {
                            match step {
                                Step::Send(line) => _ = driver.send(id, line),
                                Step::Upgrade => {
                                    driver.upgrade_to_secure(id).map_err(|e| e.to_string())?;
                                    if verbose {
                                        eprintln!("{}", upgraded(id));
                                    }
                                    prelude = None;
                                    feeder = start(driver);
                                }
                            }
                        }
                    }
                    Err(refused) => {
                        failure = Some(refused);
                        let _ = driver.close(id);
                    }
                }
            }
            Event::Data { data, .. } => {
                received += data.len() as u64;
                idle.moved(received + feeder.as_ref().map_or(0, Feeder::sent));
                if stdout
                    .write_all(data.as_bytes())
                    .and_then(|()| stdout.flush())
                    .is_err()
                {
                    // Nobody reads our output any more: stop.
                    let _ = driver.close_immediately(id);
                }
            }
            Event::Drain { .. } => {
                if let Some(feeder) = &feeder {
                    feeder.drained();
                }
            }
            Event::Error {
                id: SocketId::TcpId(failed),
                error,
            } if failed == id => failure = failure.or(Some(error.to_string())),
            Event::Close {
                id: SocketId::TcpId(closed),
            } if closed == id => break,
            _ => {}
        }
    }
    if verbose {
        let sent = feeder.as_ref().map_or(0, Feeder::sent);
        summary(sent, received, started);
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// How the feeder hands one chunk of stdin to the loop: `Ok(true)` to go on at once,
/// `Ok(false)` to wait for `Drain`, `Err` to stop.
pub type Send =
    Arc<dyn Fn(&mut Driver, Vec<u8>) -> Result<bool, ApiError> + std::marker::Send + Sync>;

/// What to do on the loop thread at the end of stdin.
pub type AtEnd = Box<dyn FnOnce(&mut Driver) + std::marker::Send>;

/// Stdin, read on its own thread and handed to the loop chunk by chunk (or line by line).
pub struct Feeder {
    go: SyncSender<bool>,
    /// The last chunk's `send` returned `false`: wait for `Drain`.
    blocked: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
}

impl Feeder {
    pub fn start(driver: &Driver, lines: bool, send: Send, at_end: AtEnd) -> Feeder {
        let handle = driver.handle();
        let (go, go_rx) = sync_channel::<bool>(1);
        let feeder = Feeder {
            go: go.clone(),
            blocked: Arc::new(AtomicBool::new(false)),
            sent: Arc::new(AtomicU64::new(0)),
        };
        let (blocked, sent) = (Arc::clone(&feeder.blocked), Arc::clone(&feeder.sent));
        thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let chunk = if lines {
                    let mut line = Vec::new();
                    match stdin.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => None,
                        Ok(_) => {
                            if line.ends_with(b"\n") {
                                line.pop();
                            }
                            Some(line)
                        }
                    }
                } else {
                    match stdin.read(&mut buf) {
                        Ok(0) | Err(_) => None,
                        Ok(n) => Some(buf[..n].to_vec()),
                    }
                };
                let Some(chunk) = chunk else {
                    let _ = handle.run(at_end);
                    return;
                };
                let (go, blocked, sent, send) = (
                    go.clone(),
                    Arc::clone(&blocked),
                    Arc::clone(&sent),
                    Arc::clone(&send),
                );
                let handed = handle.run(move |driver| {
                    let len = chunk.len() as u64;
                    match send(driver, chunk) {
                        Ok(below) => {
                            sent.fetch_add(len, Ordering::SeqCst);
                            if below {
                                let _ = go.try_send(true);
                            } else {
                                blocked.store(true, Ordering::SeqCst);
                            }
                        }
                        Err(_) => _ = go.try_send(false), // not open any more
                    }
                });
                if handed.is_err() || !go_rx.recv().unwrap_or(false) {
                    return;
                }
            }
        });
        feeder
    }

    /// A `Drain` arrived: let stdin go on if it was waiting for one.
    pub fn drained(&self) {
        if self.blocked.swap(false, Ordering::SeqCst) {
            let _ = self.go.try_send(true);
        }
    }

    /// Bytes handed to `send` so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

/// Each `\n` as `\r\n` (as `nc -C`).
pub fn to_crlf(chunk: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunk.len() + chunk.len() / 16);
    for &b in chunk {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// `-w`'s idle timer: expired once the byte count stopped moving for the whole wait.
pub struct Idle {
    wait: Option<Duration>,
    moved: u64,
    since: Instant,
}

impl Idle {
    pub fn new(wait: Option<Duration>) -> Idle {
        Idle {
            wait,
            moved: 0,
            since: Instant::now(),
        }
    }

    /// How long the next wait for an event may take (`None`: no limit).
    pub fn timeout(&self) -> Option<Duration> {
        self.wait.map(|w| {
            w.saturating_sub(self.since.elapsed())
                .max(Duration::from_millis(1))
        })
    }

    /// Called when no event came in time: `true` when `moved` (bytes either way so far) did
    /// not change for the whole wait.
    pub fn expired(&mut self, moved: u64) -> bool {
        if moved != self.moved {
            self.moved = moved;
            self.since = Instant::now();
            return false;
        }
        self.wait.is_some_and(|w| self.since.elapsed() >= w)
    }

    /// Data moved: the wait starts again.
    pub fn moved(&mut self, moved: u64) {
        self.moved = moved;
        self.since = Instant::now();
    }

    pub fn secs(&self) -> f64 {
        self.wait.unwrap_or_default().as_secs_f64()
    }
}

/// The line of `-v` for `upgradeToSecure()`.
pub fn upgraded(id: TcpId) -> String {
    format!("sockcat: {id} upgradeToSecure")
}

/// What the TLS handshake agreed on and the peer's certificates, as `openssl s_client`
/// shows them: the lines of `-v` (of `core`'s socket: a driver's, or a replay's).
pub fn tls_details(driver: &Core, id: TcpId) -> Vec<String> {
    let Some(info) = driver.tcp(id).and_then(|s| s.tls_info()) else {
        return Vec::new();
    };
    let alpn = driver.tcp(id).and_then(|s| s.alpn_protocol()).map_or_else(
        || "none".into(),
        |p| String::from_utf8_lossy(p).into_owned(),
    );
    let group = info
        .key_exchange_group
        .map_or_else(|| "none".into(), |g| format!("{g:?}"));
    let mut lines = vec![format!(
        "sockcat: {id} TLS version {:?}, cipher {:?}, group {group}, ALPN {alpn}",
        info.version, info.cipher_suite
    )];
    for (depth, cert) in info.peer_certificates.iter().enumerate() {
        lines.push(match crate::certs::summary(cert) {
            Some(c) => format!(
                "sockcat: {id} certificate {depth}: subject {}; issuer {}; valid from {} to {}",
                c.subject, c.issuer, c.not_before, c.not_after
            ),
            None => format!("sockcat: {id} certificate {depth}: unreadable"),
        });
    }
    lines
}

/// One line per spec event on stderr.
pub fn log(driver: &Driver, event: &Event) {
    eprintln!("sockcat: {}", describe(driver.core(), event));
}

/// A spec event in words, with the addresses it concerns (the attributes of `core`'s sockets
/// as the event is delivered: a driver's, or a replay's).
pub fn describe(driver: &Core, event: &Event) -> String {
    match event {
        Event::Open {
            id: SocketId::TcpId(id),
        } => {
            let s = driver.tcp(*id);
            let local = addr(s.and_then(|s| s.local_address()));
            let remote = addr(s.and_then(|s| s.remote_address()));
            format!("{id} open {local} -> {remote}")
        }
        Event::Open {
            id: SocketId::ServerId(id),
        } => {
            let local = addr(driver.server(*id).and_then(|s| s.local_address()));
            format!("{id} open, listening on {local}")
        }
        Event::Open {
            id: SocketId::UdpId(id),
        } => {
            let local = addr(driver.udp(*id).and_then(|s| s.local_address()));
            format!("{id} open, bound to {local}")
        }
        Event::Connect { server, socket } => {
            let remote = addr(driver.tcp(*socket).and_then(|s| s.remote_address()));
            format!("{server} connect: {socket} from {remote}")
        }
        Event::Data { id, data } => format!("{id} data, {}", bytes(data.as_bytes())),
        Event::Message { id, data, remote } => {
            format!("{id} message from {remote}, {}", bytes(data))
        }
        Event::Drain { id } => format!("{id} drain"),
        Event::HalfClose { id } => format!("{id} halfclose"),
        Event::Error { id, error } => format!("{id} error {error}"),
        Event::Close { id } => format!("{id} close"),
        other => format!("{other:?}"),
    }
}

/// Bytes each way, seconds and throughput, on stderr.
pub fn summary(sent: u64, received: u64, started: Instant) {
    let seconds = started.elapsed().as_secs_f64();
    let mb_s = (sent + received) as f64 / 1e6 / seconds.max(1e-9);
    eprintln!(
        "sockcat: sent {sent} bytes, received {received} bytes in {seconds:.3} s ({mb_s:.1} MB/s)"
    );
}

/// Short printable text is shown; anything else is counted.
fn bytes(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(text)
            if data.len() <= 64
                && !text
                    .chars()
                    .any(|c| c.is_control() && c != '\r' && c != '\n') =>
        {
            format!("{text:?}")
        }
        _ => format!("{} bytes", data.len()),
    }
}
