//! Issue 7, workloads 1 and 2: one TCP connection on loopback, each endpoint on its own thread.
//!
//! - `bulk`: the client sends 1 GiB, then the server sends 1 GiB back on the same connection;
//!   GB/s per direction, and CPU seconds per GiB of both endpoint threads. Target: the driver
//!   ≥ 0.95 × `raw`.
//! - `pingpong`: the client sends a 64-byte message and waits for its echo, 50 000 times (or
//!   for a few seconds, whichever ends first); round trips per second, p50 and p99 latency,
//!   CPU per round trip. Target: the driver ≥ 0.95 × `polling` in round trips per second.
//!
//! Implementations, each with one thread per endpoint:
//! - `raw`: blocking `std::net` (`write_all` of 64 KiB slices, `read` into a 64 KiB buffer):
//!   the ceiling;
//! - `polling`: a hand-written non-blocking loop on `polling` 3, one-shot (re-armed with
//!   `modify` before each wait);
//! - `tokio`: a current-thread runtime per endpoint, `AsyncReadExt`/`AsyncWriteExt`;
//! - `driver`: `sockstate_driver::Driver` (server: `listen` and the accepted socket; client:
//!   `tcp_open`), sending `Bytes` slices of one buffer while `send` returns `true`, then
//!   waiting for `Drain`;
//! - `driver-rec`: the same with both drivers recording their session, full payloads, into a
//!   file each in the temporary directory (issue 16): the recorder's cost, as a ratio to
//!   `driver` in the same run, and the recording's bytes per round trip (client side).
//!
//! Every socket has `TCP_NODELAY`. Receivers check the byte count and, for every read, that
//! its first and last bytes are those of the stream's pattern at that offset (the pattern
//! repeats every 4 chunks, so a lost, repeated or reordered chunk shows); echoes are compared
//! whole (each message carries its sequence number).
//!
//! `cargo bench -p sockstate-driver --bench stream -- [--smoke] [--runs N] [FILTER]`, where
//! FILTER selects by `workload/implementation` (`bulk`, `pingpong`, `driver`,
//! `bulk/driver`, ...); `--samples` prints every run's figures on stderr; `--count N` sets the
//! round trips per ping-pong run (for profiling).

mod common;

use std::fmt::Display;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{interleaved, median, percentile, Args, Deadline, Report, Target};
use polling::{Event as Interest, Events, Poller};
use sockstate_driver::{
    BinaryType, Config, Data, Driver, Event, ReadyState, Recording, ServerOptions, SocketId, TcpId,
    TcpOptions,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bytes per write (and per read buffer) in every implementation.
const CHUNK: usize = 64 << 10;
/// The sent stream repeats every this many bytes (4 distinct chunks).
const PERIOD: usize = 4 * CHUNK;
/// Ping-pong message size.
const MSG: usize = 64;
/// How long one wait for readiness or an event may last before the loop looks again.
const WAIT: Duration = Duration::from_secs(1);

type Res<T> = Result<T, String>;

/// `?` with a word on what failed.
trait OrFail<T> {
    fn or_fail(self, what: &str) -> Res<T>;
}

impl<T, E: Display> OrFail<T> for Result<T, E> {
    fn or_fail(self, what: &str) -> Res<T> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Imp {
    Raw,
    Polling,
    Tokio,
    Driver,
    /// The driver, recording.
    DriverRec,
}

impl Imp {
    const ALL: [Imp; 5] = [
        Imp::Raw,
        Imp::Polling,
        Imp::Tokio,
        Imp::Driver,
        Imp::DriverRec,
    ];

    fn name(self) -> &'static str {
        match self {
            Imp::Raw => "raw",
            Imp::Polling => "polling",
            Imp::Tokio => "tokio",
            Imp::Driver => "driver",
            Imp::DriverRec => "driver-rec",
        }
    }
}

// ---- what is sent and how it is checked ---------------------------------------------------

/// The byte at `offset` of every bulk stream.
fn expected(offset: u64) -> u8 {
    (offset % PERIOD as u64 % 251) as u8
}

/// One buffer holding a whole period of the stream: every write is a slice of it.
#[derive(Clone)]
struct Pattern(Bytes);

impl Pattern {
    fn new() -> Pattern {
        Pattern((0..PERIOD as u64).map(expected).collect::<Vec<u8>>().into())
    }

    /// Where in the buffer the next write starts when `sent` of `total` bytes are sent: up
    /// to the end of the current chunk, at most what is left.
    fn range(&self, sent: u64, total: u64) -> Range<usize> {
        let start = (sent % PERIOD as u64) as usize;
        let end = (start / CHUNK + 1) * CHUNK;
        let left = usize::try_from(total - sent).unwrap_or(usize::MAX);
        start..end.min(start.saturating_add(left))
    }

    /// The next write as a slice.
    fn slice(&self, sent: u64, total: u64) -> &[u8] {
        &self.0[self.range(sent, total)]
    }

    /// The next write as `Bytes` (a new handle on the same buffer, no copy).
    fn bytes(&self, sent: u64, total: u64) -> Bytes {
        self.0.slice(self.range(sent, total))
    }
}

/// A bulk receiver's count and check.
struct Received {
    got: u64,
    total: u64,
}

impl Received {
    fn new(total: u64) -> Received {
        Received { got: 0, total }
    }

    /// Takes one read: in bounds, first and last bytes where the stream has them.
    fn take(&mut self, data: &[u8]) -> Res<()> {
        let (Some(&first), Some(&last)) = (data.first(), data.last()) else {
            return Ok(());
        };
        let end = self.got + data.len() as u64;
        if end > self.total {
            return Err(format!("received {end} bytes of {}", self.total));
        }
        if first != expected(self.got) || last != expected(end - 1) {
            return Err(format!("wrong bytes in {}..{end}", self.got));
        }
        self.got = end;
        Ok(())
    }

    fn done(&self) -> bool {
        self.got == self.total
    }
}

/// What one bulk run measured.
#[derive(Clone, Copy, Debug)]
struct Bulk {
    /// Seconds from the client's first write to the server's last byte read.
    up: f64,
    /// Seconds from then to the client's last byte read.
    down: f64,
    /// Both endpoints' threads, over the whole run.
    sched: Sched,
}

impl Bulk {
    /// From the client's start `t0`, the server's end of upload `t1` and the client's end of
    /// download `t2`.
    fn new(t0: Instant, t1: Instant, t2: Instant, sched: Sched) -> Bulk {
        Bulk {
            up: t1.saturating_duration_since(t0).as_secs_f64(),
            down: t2.saturating_duration_since(t1).as_secs_f64(),
            sched,
        }
    }
}

/// The ping-pong client's side: messages, their checks and the latencies.
struct Pinger {
    count: usize,
    until: Instant,
    msg: [u8; MSG],
    sent_at: Instant,
    first: Option<Instant>,
    last: Instant,
    rtts: Vec<f64>,
}

impl Pinger {
    fn new(count: usize, limit: Duration) -> Pinger {
        let now = Instant::now();
        let mut msg = [0; MSG];
        for (i, b) in msg.iter_mut().enumerate() {
            *b = i as u8 ^ 0x5a;
        }
        Pinger {
            count,
            until: now + limit,
            msg,
            sent_at: now,
            first: None,
            last: now,
            rtts: Vec::with_capacity(count),
        }
    }

    /// The next message (its sequence number in front), or `None` once `count` round trips
    /// are done or the time is up.
    fn next(&mut self) -> Option<[u8; MSG]> {
        let now = Instant::now();
        if self.rtts.len() >= self.count || now >= self.until {
            return None;
        }
        self.msg[..8].copy_from_slice(&(self.rtts.len() as u64).to_le_bytes());
        self.sent_at = now;
        self.first.get_or_insert(now);
        Some(self.msg)
    }

    /// The echo of the last message, whole.
    fn reply(&mut self, reply: &[u8]) -> Res<()> {
        let now = Instant::now();
        if reply != self.msg {
            return Err(format!("echo {} is not the message sent", self.rtts.len()));
        }
        self.rtts.push((now - self.sent_at).as_secs_f64() * 1e6);
        self.last = now;
        Ok(())
    }

    fn result(self, sched: Sched, smoke: bool) -> Res<PingPong> {
        let n = self.rtts.len();
        if n == 0 || (smoke && n < self.count) {
            return Err(format!("{n} of {} round trips in the time", self.count));
        }
        let secs = (self.last - self.first.unwrap_or(self.last)).as_secs_f64();
        Ok(PingPong {
            rate: n as f64 / secs.max(1e-9),
            p50: percentile(&self.rtts, 50.0),
            p99: percentile(&self.rtts, 99.0),
            n,
            secs,
            sched,
            recorded: 0,
        })
    }
}

/// What one ping-pong run measured.
#[derive(Clone, Copy, Debug)]
struct PingPong {
    /// Round trips per second.
    rate: f64,
    /// Latency percentiles, µs.
    p50: f64,
    p99: f64,
    /// Round trips done, in this many seconds.
    n: usize,
    secs: f64,
    /// Both endpoints' threads, over the whole run.
    sched: Sched,
    /// Bytes the client recorded (`driver-rec`).
    recorded: u64,
}

// ---- bounding every run ---------------------------------------------------------------------

/// The deadline of the run in progress, watched by [`watchdog`].
static RUNNING: Mutex<Option<Deadline>> = Mutex::new(None);

/// Exits the process (non-zero) when a run overstays its deadline, wherever it is blocked.
fn watchdog() {
    thread::spawn(|| loop {
        thread::sleep(Duration::from_millis(100));
        if let Some(deadline) = *RUNNING.lock().unwrap_or_else(|e| e.into_inner()) {
            deadline.check();
        }
    });
}

/// Runs `f` under a deadline of `limit`; a failure ends the program.
fn guarded<T>(what: &'static str, limit: Duration, f: impl FnOnce() -> Res<T>) -> T {
    *RUNNING.lock().unwrap_or_else(|e| e.into_inner()) = Some(Deadline::new(what, limit));
    let result = f();
    *RUNNING.lock().unwrap_or_else(|e| e.into_inner()) = None;
    result.unwrap_or_else(|e| {
        eprintln!("{what}: {e}");
        std::process::exit(2)
    })
}

/// Time a thread spent on a CPU and waiting for one (seconds).
#[derive(Clone, Copy, Debug, Default)]
struct Sched {
    cpu: f64,
    waited: f64,
}

impl Sched {
    /// This thread's totals so far (`/proc/thread-self/schedstat`: ns on a CPU, ns waiting on
    /// a run queue; zero where it cannot be read).
    fn now() -> Sched {
        let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
        let mut ns = stat
            .split_whitespace()
            .map(|f| f.parse::<f64>().unwrap_or(0.0));
        Sched {
            cpu: ns.next().unwrap_or(0.0) / 1e9,
            waited: ns.next().unwrap_or(0.0) / 1e9,
        }
    }

    fn since(self, start: Sched) -> Sched {
        Sched {
            cpu: self.cpu - start.cpu,
            waited: self.waited - start.waited,
        }
    }

    fn plus(self, other: Sched) -> Sched {
        Sched {
            cpu: self.cpu + other.cpu,
            waited: self.waited + other.waited,
        }
    }
}

/// Waits until both endpoints are set up, then runs `body`, with this thread's scheduling.
fn measured<T>(barrier: &Barrier, body: impl FnOnce() -> Res<T>) -> Res<(T, Sched)> {
    barrier.wait();
    let start = Sched::now();
    let value = body()?;
    Ok((value, Sched::now().since(start)))
}

type Joined<T> = thread::JoinHandle<Res<(T, Sched)>>;

fn join<T>(who: &str, handle: Joined<T>) -> Res<(T, Sched)> {
    handle
        .join()
        .map_err(|_| format!("{who} panicked"))?
        .map_err(|e| format!("{who}: {e}"))
}

/// Joins the server and client threads: their results and their scheduling together.
fn both<S, C>(server: Joined<S>, client: Joined<C>) -> Res<(S, C, Sched)> {
    let c = join("client", client);
    let s = join("server", server);
    let ((s, s_sched), (c, c_sched)) = (s?, c?);
    Ok((s, c, s_sched.plus(c_sched)))
}

// ---- raw, polling and tokio: one endpoint type each ----------------------------------------

/// An endpoint of the three baselines, over a connected `std` stream.
trait Endpoint: Sized {
    fn new(stream: TcpStream) -> Res<Self>;
    /// Writes `total` bytes of the pattern.
    fn send(&mut self, pattern: &Pattern, total: u64) -> Res<()>;
    /// Reads and checks `total` bytes.
    fn receive(&mut self, total: u64) -> Res<()>;
    /// The ping-pong client: the whole loop of `pinger`.
    fn ping(&mut self, pinger: &mut Pinger) -> Res<()>;
    /// The ping-pong server: echoes until the end of the stream.
    fn echo(&mut self) -> Res<()>;
}

/// A connected pair, server and client each on its own thread, `TCP_NODELAY` on both; each
/// runs its part once both are set up.
fn pair<E: Endpoint, S: Send + 'static, C: Send + 'static>(
    server: impl FnOnce(E) -> Res<S> + Send + 'static,
    client: impl FnOnce(E) -> Res<C> + Send + 'static,
) -> Res<(S, C, Sched)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).or_fail("bind")?;
    let addr = listener.local_addr().or_fail("local_addr")?;
    let barrier = Arc::new(Barrier::new(2));
    let b = Arc::clone(&barrier);
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().or_fail("accept")?;
        stream.set_nodelay(true).or_fail("nodelay")?;
        let end = E::new(stream)?;
        measured(&b, || server(end))
    });
    let client = thread::spawn(move || {
        let stream = TcpStream::connect(addr).or_fail("connect")?;
        stream.set_nodelay(true).or_fail("nodelay")?;
        let end = E::new(stream)?;
        measured(&barrier, || client(end))
    });
    both(server, client)
}

fn bulk<E: Endpoint>(pattern: &Pattern, total: u64) -> Res<Bulk> {
    let p = pattern.clone();
    let server = move |mut end: E| {
        end.receive(total)?;
        let t1 = Instant::now();
        end.send(&p, total)?;
        Ok(t1)
    };
    let p = pattern.clone();
    let client = move |mut end: E| {
        let t0 = Instant::now();
        end.send(&p, total)?;
        end.receive(total)?;
        Ok((t0, Instant::now()))
    };
    let (t1, (t0, t2), sched) = pair(server, client)?;
    Ok(Bulk::new(t0, t1, t2, sched))
}

fn pingpong<E: Endpoint>(count: usize, limit: Duration, smoke: bool) -> Res<PingPong> {
    let server = |mut end: E| end.echo();
    let client = move |mut end: E| {
        let mut pinger = Pinger::new(count, limit);
        end.ping(&mut pinger)?;
        Ok(pinger)
    };
    let (_, pinger, sched) = pair(server, client)?;
    pinger.result(sched, smoke)
}

/// `raw`: blocking `std::net`.
struct Raw(TcpStream);

impl Endpoint for Raw {
    fn new(stream: TcpStream) -> Res<Self> {
        Ok(Raw(stream))
    }

    fn send(&mut self, pattern: &Pattern, total: u64) -> Res<()> {
        let mut sent = 0;
        while sent < total {
            let chunk = pattern.slice(sent, total);
            self.0.write_all(chunk).or_fail("write")?;
            sent += chunk.len() as u64;
        }
        Ok(())
    }

    fn receive(&mut self, total: u64) -> Res<()> {
        let mut buf = vec![0; CHUNK];
        let mut received = Received::new(total);
        while !received.done() {
            match self.0.read(&mut buf) {
                Ok(0) => return Err("early end of stream".into()),
                Ok(n) => received.take(&buf[..n])?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        Ok(())
    }

    fn ping(&mut self, pinger: &mut Pinger) -> Res<()> {
        let mut reply = [0; MSG];
        while let Some(msg) = pinger.next() {
            self.0.write_all(&msg).or_fail("write")?;
            self.0.read_exact(&mut reply).or_fail("read")?;
            pinger.reply(&reply)?;
        }
        Ok(())
    }

    fn echo(&mut self) -> Res<()> {
        let mut buf = vec![0; CHUNK];
        loop {
            match self.0.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => self.0.write_all(&buf[..n]).or_fail("write")?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}

/// `polling`: non-blocking, one-shot registration re-armed before every wait.
struct Polled {
    poller: Poller,
    stream: TcpStream,
    events: Events,
}

const KEY: usize = 7;

impl Polled {
    /// Arms the socket for `interest` and waits (at most [`WAIT`]; the caller's next try
    /// tells whether it is ready).
    fn wait(&mut self, interest: Interest) -> Res<()> {
        self.poller
            .modify(&self.stream, interest)
            .or_fail("modify")?;
        self.events.clear(); // `wait` appends
        self.poller
            .wait(&mut self.events, Some(WAIT))
            .or_fail("wait")?;
        Ok(())
    }

    /// Writes all of `data`, waiting for writability when the kernel is full.
    fn write_all(&mut self, mut data: &[u8]) -> Res<()> {
        while !data.is_empty() {
            match (&self.stream).write(data) {
                Ok(0) => return Err("write took nothing".into()),
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.wait(Interest::writable(KEY))?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write: {e}")),
            }
        }
        Ok(())
    }

    /// One read: `Some(n)` (0 at the end of the stream), `None` when nothing is there yet.
    fn read(&mut self, buf: &mut [u8]) -> Res<Option<usize>> {
        loop {
            match (&self.stream).read(buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}

impl Drop for Polled {
    fn drop(&mut self) {
        let _ = self.poller.delete(&self.stream); // before the socket is closed
    }
}

impl Endpoint for Polled {
    fn new(stream: TcpStream) -> Res<Self> {
        stream.set_nonblocking(true).or_fail("nonblocking")?;
        let poller = Poller::new().or_fail("poller")?;
        // SAFETY: the stream is deleted from the poller in `Drop`, before it is closed.
        unsafe { poller.add(&stream, Interest::none(KEY)) }.or_fail("add")?;
        Ok(Polled {
            poller,
            stream,
            events: Events::new(),
        })
    }

    fn send(&mut self, pattern: &Pattern, total: u64) -> Res<()> {
        let mut sent = 0;
        while sent < total {
            match (&self.stream).write(pattern.slice(sent, total)) {
                Ok(0) => return Err("write took nothing".into()),
                Ok(n) => sent += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.wait(Interest::writable(KEY))?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write: {e}")),
            }
        }
        Ok(())
    }

    fn receive(&mut self, total: u64) -> Res<()> {
        let mut buf = vec![0; CHUNK];
        let mut received = Received::new(total);
        while !received.done() {
            match self.read(&mut buf)? {
                Some(0) => return Err("early end of stream".into()),
                Some(n) => received.take(&buf[..n])?,
                None => self.wait(Interest::readable(KEY))?,
            }
        }
        Ok(())
    }

    fn ping(&mut self, pinger: &mut Pinger) -> Res<()> {
        let mut reply = [0; MSG];
        while let Some(msg) = pinger.next() {
            self.write_all(&msg)?;
            let mut got = 0;
            while got < MSG {
                // The echo cannot be there yet: wait first, then read.
                self.wait(Interest::readable(KEY))?;
                while got < MSG {
                    match self.read(&mut reply[got..])? {
                        Some(0) => return Err("early end of stream".into()),
                        Some(n) => got += n,
                        None => break,
                    }
                }
            }
            pinger.reply(&reply)?;
        }
        Ok(())
    }

    fn echo(&mut self) -> Res<()> {
        let mut buf = vec![0; CHUNK];
        loop {
            match self.read(&mut buf)? {
                Some(0) => return Ok(()),
                Some(n) => {
                    self.write_all(&buf[..n])?;
                    if n < buf.len() {
                        // Most likely drained: wait rather than try a read that would block.
                        self.wait(Interest::readable(KEY))?;
                    }
                }
                None => self.wait(Interest::readable(KEY))?,
            }
        }
    }
}

/// `tokio`: a current-thread runtime on the endpoint's thread.
struct Tokio {
    rt: tokio::runtime::Runtime,
    stream: tokio::net::TcpStream,
}

impl Endpoint for Tokio {
    fn new(stream: TcpStream) -> Res<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .or_fail("runtime")?;
        stream.set_nonblocking(true).or_fail("nonblocking")?;
        let stream = {
            let _in = rt.enter();
            tokio::net::TcpStream::from_std(stream).or_fail("from_std")?
        };
        Ok(Tokio { rt, stream })
    }

    fn send(&mut self, pattern: &Pattern, total: u64) -> Res<()> {
        let stream = &mut self.stream;
        self.rt.block_on(async {
            let mut sent = 0;
            while sent < total {
                let chunk = pattern.slice(sent, total);
                stream.write_all(chunk).await.or_fail("write")?;
                sent += chunk.len() as u64;
            }
            Ok(())
        })
    }

    fn receive(&mut self, total: u64) -> Res<()> {
        let stream = &mut self.stream;
        self.rt.block_on(async {
            let mut buf = vec![0; CHUNK];
            let mut received = Received::new(total);
            while !received.done() {
                match stream.read(&mut buf).await.or_fail("read")? {
                    0 => return Err("early end of stream".into()),
                    n => received.take(&buf[..n])?,
                }
            }
            Ok(())
        })
    }

    fn ping(&mut self, pinger: &mut Pinger) -> Res<()> {
        let stream = &mut self.stream;
        self.rt.block_on(async {
            let mut reply = [0; MSG];
            while let Some(msg) = pinger.next() {
                stream.write_all(&msg).await.or_fail("write")?;
                stream.read_exact(&mut reply).await.or_fail("read")?;
                pinger.reply(&reply)?;
            }
            Ok(())
        })
    }

    fn echo(&mut self) -> Res<()> {
        let stream = &mut self.stream;
        self.rt.block_on(async {
            let mut buf = vec![0; CHUNK];
            loop {
                match stream.read(&mut buf).await.or_fail("read")? {
                    0 => return Ok(()),
                    n => stream.write_all(&buf[..n]).await.or_fail("write")?,
                }
            }
        })
    }
}

// ---- the driver -----------------------------------------------------------------------------

/// Runs the loop, handing every event to `on` until it returns `Ok(true)`; an `Error` event
/// fails the run.
fn drive(d: &mut Driver, mut on: impl FnMut(&mut Driver, Event) -> Res<bool>) -> Res<()> {
    loop {
        // `None`: timed out; the watchdog bounds the run.
        let Some(event) = d.next_event(Some(WAIT)) else {
            continue;
        };
        if let Event::Error { id, error } = event {
            return Err(format!("{id:?}: {error}"));
        }
        if on(d, event)? {
            return Ok(());
        }
    }
}

/// Bytes the last `driver-rec` client recorded.
static RECORDED: AtomicU64 = AtomicU64::new(0);
/// `driver-rec` clients whose recording stopped early (the writer fell behind), of all.
static STOPPED: AtomicU64 = AtomicU64::new(0);
static RECORDINGS: AtomicU64 = AtomicU64::new(0);

/// The driver config: recording into a file in the temporary directory when `record` (or
/// where `SOCKSTATE_BENCH_RECORD_TO` says: a directory, or `sink` for a writer that takes
/// everything at once, to measure the recorder apart from the disk), with the writer's
/// bound that `SOCKSTATE_BENCH_RECORD_BUFFER` (MiB) gives.
fn driver_config(record: bool, side: &str) -> Config {
    let recording = || {
        let recording = match record_to().as_deref() {
            Some("sink") => Recording::to_writer(io::sink()),
            _ => Recording::to_path(driver_config_file(side)),
        };
        // `SOCKSTATE_BENCH_RECORD_BUFFER`: the writer's bound in MiB instead of the default.
        match std::env::var("SOCKSTATE_BENCH_RECORD_BUFFER").map(|v| v.parse::<usize>()) {
            Ok(Ok(mib)) => recording.buffer(mib << 20),
            _ => recording,
        }
    };
    Config::default().record(record.then(recording))
}

/// `SOCKSTATE_BENCH_RECORD_TO`, if set.
fn record_to() -> Option<String> {
    std::env::var("SOCKSTATE_BENCH_RECORD_TO").ok()
}

/// Where the recordings go, for the report.
fn recorded_where() -> String {
    match record_to() {
        Some(to) if to == "sink" => "into io::sink() (no disk)".into(),
        _ => format!("into a file each in {}", record_dir().display()),
    }
}

fn record_dir() -> std::path::PathBuf {
    record_to().map_or_else(std::env::temp_dir, Into::into)
}

/// Notes the client's recorded bytes (`driver-rec`).
fn note_recorded(d: &Driver) {
    if let Some(stats) = d.recording_stats() {
        RECORDED.store(stats.bytes, Ordering::Relaxed);
        RECORDINGS.fetch_add(1, Ordering::Relaxed);
        STOPPED.fetch_add(u64::from(stats.stopped), Ordering::Relaxed);
    }
}

/// Removes the recordings of a run.
fn remove_recordings() {
    for side in ["server", "client"] {
        let _ = std::fs::remove_file(driver_config_file(side));
    }
}

fn driver_config_file(side: &str) -> std::path::PathBuf {
    record_dir().join(format!("sockstate-bench-{side}-{}.rec", std::process::id()))
}

/// A driver that listened on loopback, told `port` where, and accepted one connection
/// (`arraybuffer`); the listener is closed.
fn driver_accept(port: &mpsc::Sender<u16>, record: bool) -> Res<(Driver, TcpId)> {
    let mut d = Driver::new(driver_config(record, "server")).or_fail("driver")?;
    let options = ServerOptions::default()
        .local_address(Some(Ipv4Addr::LOCALHOST.into()))
        .binary_type(BinaryType::ArrayBuffer);
    let server = d.listen(options).or_fail("listen")?;
    let mut accepted = None;
    drive(&mut d, |d, event| match event {
        Event::Open { .. } => {
            let local = d.server(server).and_then(|s| s.local_address());
            let local = local.ok_or("the server has no address")?;
            port.send(local.port()).or_fail("port")?;
            Ok(false)
        }
        Event::Connect { socket, .. } => {
            accepted = Some(socket);
            Ok(true)
        }
        _ => Ok(false),
    })?;
    d.close(server).or_fail("close server")?;
    Ok((d, accepted.ok_or("nothing accepted")?))
}

/// A driver connected to `port` on loopback (`arraybuffer`, `TCP_NODELAY`).
fn driver_connect(port: &mpsc::Receiver<u16>, record: bool) -> Res<(Driver, TcpId)> {
    let port = port.recv_timeout(Duration::from_secs(10)).or_fail("port")?;
    let mut d = Driver::new(driver_config(record, "client")).or_fail("driver")?;
    let options = TcpOptions::default()
        .binary_type(BinaryType::ArrayBuffer)
        .no_delay(true);
    let id = d.tcp_open("127.0.0.1", port, options).or_fail("open")?;
    drive(&mut d, |_, event| Ok(matches!(event, Event::Open { .. })))?;
    Ok((d, id))
}

/// The driver's pair: server and client on their own threads.
fn driver_pair<S: Send + 'static, C: Send + 'static>(
    record: bool,
    server: impl FnOnce(Driver, TcpId) -> Res<S> + Send + 'static,
    client: impl FnOnce(Driver, TcpId) -> Res<C> + Send + 'static,
) -> Res<(S, C, Sched)> {
    let (tx, rx) = mpsc::channel();
    let barrier = Arc::new(Barrier::new(2));
    let b = Arc::clone(&barrier);
    let server = thread::spawn(move || {
        let (d, id) = driver_accept(&tx, record)?;
        measured(&b, || server(d, id))
    });
    let client = thread::spawn(move || {
        let (d, id) = driver_connect(&rx, record)?;
        measured(&barrier, || client(d, id))
    });
    both(server, client)
}

/// Whether `event` is the `Close` of `id`.
fn closed(event: &Event, id: TcpId) -> bool {
    matches!(event, Event::Close { id: SocketId::TcpId(i) } if *i == id)
}

/// Sends the pattern while `send` returns `true` (the caller calls again on `Drain`).
fn fill(d: &mut Driver, id: TcpId, pattern: &Pattern, sent: &mut u64, total: u64) -> Res<()> {
    while *sent < total {
        let chunk = pattern.bytes(*sent, total);
        *sent += chunk.len() as u64;
        if !d.send(id, chunk).or_fail("send")? {
            break;
        }
    }
    Ok(())
}

fn driver_bulk(pattern: &Pattern, total: u64, record: bool) -> Res<Bulk> {
    let p = pattern.clone();
    let server = move |mut d: Driver, id: TcpId| {
        let mut received = Received::new(total);
        let (mut sent, mut t1) = (0, None);
        drive(&mut d, |d, event| {
            match event {
                Event::Data { data, .. } => {
                    received.take(data.as_bytes())?;
                    if received.done() {
                        t1 = Some(Instant::now());
                        fill(d, id, &p, &mut sent, total)?;
                    }
                }
                Event::Drain { .. } => fill(d, id, &p, &mut sent, total)?,
                ref e if closed(e, id) => return Ok(true),
                _ => {}
            }
            if sent == total
                && d.tcp(id)
                    .is_some_and(|s| s.ready_state() == ReadyState::Open)
            {
                d.close(id).or_fail("close")?; // flushes, then FIN
            }
            Ok(false)
        })?;
        if !received.done() || sent != total {
            return Err(format!("received {}, sent {sent}", received.got));
        }
        t1.ok_or_else(|| "never done".to_owned())
    };
    let p = pattern.clone();
    let client = move |mut d: Driver, id: TcpId| {
        let t0 = Instant::now();
        let mut received = Received::new(total);
        let (mut sent, mut t2) = (0, None);
        fill(&mut d, id, &p, &mut sent, total)?;
        drive(&mut d, |d, event| {
            match event {
                Event::Drain { .. } => fill(d, id, &p, &mut sent, total)?,
                Event::Data { data, .. } => {
                    received.take(data.as_bytes())?;
                    if received.done() {
                        t2 = Some(Instant::now());
                        d.close(id).or_fail("close")?;
                    }
                }
                ref e if closed(e, id) => return Ok(true),
                _ => {}
            }
            Ok(false)
        })?;
        note_recorded(&d);
        Ok((t0, t2.ok_or("the download never completed")?))
    };
    let pair = driver_pair(record, server, client);
    remove_recordings();
    let (t1, (t0, t2), sched) = pair?;
    Ok(Bulk::new(t0, t1, t2, sched))
}

fn driver_pingpong(count: usize, limit: Duration, smoke: bool, record: bool) -> Res<PingPong> {
    let server = |mut d: Driver, id: TcpId| {
        drive(&mut d, |d, event| match event {
            Event::Data {
                data: Data::Bytes(data),
                ..
            } => {
                d.send(id, data).or_fail("send")?;
                Ok(false)
            }
            Event::Data { .. } => Err("text on an arraybuffer socket".into()),
            ref e => Ok(closed(e, id)),
        })
    };
    let client = move |mut d: Driver, id: TcpId| {
        let mut pinger = Pinger::new(count, limit);
        let mut reply = Vec::with_capacity(MSG);
        let next = |d: &mut Driver, pinger: &mut Pinger| match pinger.next() {
            Some(msg) => d.send(id, Bytes::copy_from_slice(&msg)).map(drop),
            None => d.close(id),
        };
        next(&mut d, &mut pinger).or_fail("send")?;
        drive(&mut d, |d, event| {
            match event {
                Event::Data { data, .. } => {
                    let data = data.as_bytes();
                    if reply.is_empty() && data.len() == MSG {
                        pinger.reply(data)?;
                    } else {
                        reply.extend_from_slice(data);
                        if reply.len() < MSG {
                            return Ok(false);
                        }
                        pinger.reply(&reply)?;
                        reply.clear();
                    }
                    next(d, &mut pinger).or_fail("send")?;
                }
                ref e if closed(e, id) => return Ok(true),
                _ => {}
            }
            Ok(false)
        })?;
        note_recorded(&d);
        Ok(pinger)
    };
    let pair = driver_pair(record, server, client);
    remove_recordings();
    let (_, pinger, sched) = pair?;
    let mut result = pinger.result(sched, smoke)?;
    result.recorded = if record {
        RECORDED.load(Ordering::Relaxed)
    } else {
        0
    };
    Ok(result)
}

// ---- the program ----------------------------------------------------------------------------

fn main() {
    let args = Args::parse();
    watchdog();
    let mut report = Report::new("stream: one TCP connection on loopback (ping-pong, bulk)");
    let selected = |workload: &str| -> Vec<Imp> {
        Imp::ALL
            .into_iter()
            .filter(|imp| args.wants(&format!("{workload}/{}", imp.name())))
            .collect()
    };
    // Ping-pong first: latency is the more sensitive to what a bulk transfer leaves behind.
    let imps = selected("pingpong");
    if !imps.is_empty() {
        pingpongs(&args, &imps, &mut report);
    }
    let imps = selected("bulk");
    if !imps.is_empty() {
        bulks(&args, &imps, &mut report);
    }
    report.print(&args);
}

/// The driver's target; the other implementations are context.
fn driver_target(imp: Imp) -> Target {
    match imp {
        Imp::Driver | Imp::DriverRec => Target::AtLeast(0.95),
        _ => Target::None,
    }
}

/// Runs `run` for every implementation, interleaved, each run bounded by `limit`
/// (`--samples`: every run's figures on stderr).
fn measure<T: std::fmt::Debug>(
    args: &Args,
    imps: &[Imp],
    workload: &'static str,
    limit: Duration,
    mut run: impl FnMut(Imp) -> Res<T>,
) -> Vec<Vec<T>> {
    let show = args.rest.iter().any(|a| a == "--samples");
    interleaved(args.runs, imps, |imp, _| {
        let sample = guarded(workload, limit, || run(imp));
        if show {
            eprintln!("{workload}/{}: {sample:?}", imp.name());
        }
        sample
    })
}

/// Each implementation's median of `f` over its runs.
fn medians<T>(samples: &[Vec<T>], f: impl Fn(&T) -> f64) -> Vec<f64> {
    (samples.iter())
        .map(|runs| median(&runs.iter().map(&f).collect::<Vec<_>>()))
        .collect()
}

fn pingpongs(args: &Args, imps: &[Imp], report: &mut Report) {
    // `--count N`: round trips per run instead of the default (for profiling).
    let count = (args.rest.iter())
        .position(|a| a == "--count")
        .and_then(|i| args.rest.get(i + 1)?.parse::<usize>().ok())
        .unwrap_or(args.size(50_000, 300));
    let limit = Duration::from_secs(args.size(3, 10));
    let smoke = args.smoke;
    let bound = limit + Duration::from_secs(10);
    let samples = measure(args, imps, "pingpong", bound, |imp| match imp {
        Imp::Raw => pingpong::<Raw>(count, limit, smoke),
        Imp::Polling => pingpong::<Polled>(count, limit, smoke),
        Imp::Tokio => pingpong::<Tokio>(count, limit, smoke),
        Imp::Driver => driver_pingpong(count, limit, smoke, false),
        Imp::DriverRec => driver_pingpong(count, limit, smoke, true),
    });
    let (polling, none) = (Imp::Polling, |_| Target::None);
    let rate = medians(&samples, |p| p.rate);
    rows(
        report,
        "pingpong round trips/s",
        imps,
        &rate,
        polling,
        driver_target,
    );
    let p50 = medians(&samples, |p| p.p50);
    rows(report, "pingpong p50 µs", imps, &p50, polling, none);
    let p99 = medians(&samples, |p| p.p99);
    rows(report, "pingpong p99 µs", imps, &p99, polling, none);
    recording_rows(report, imps, "pingpong", &rate, Target::AtLeast(1.0 / 1.10));
    if let Some(i) = imps.iter().position(|&i| i == Imp::DriverRec) {
        let per = median(
            &(samples[i].iter())
                .map(|p| p.recorded as f64 / p.n as f64)
                .collect::<Vec<_>>(),
        );
        report.value("pingpong recording bytes/round trip", "driver-rec", per);
    }
    let cpu = medians(&samples, |p| p.sched.cpu / p.n as f64 * 1e6);
    rows(
        report,
        "pingpong CPU µs/round trip",
        imps,
        &cpu,
        polling,
        none,
    );
    let fewest = samples.iter().flatten().map(|p| p.n).min().unwrap_or(0);
    let waited = medians(&samples, |p| p.sched.waited / (2.0 * p.secs));
    report.note(format!(
        "pingpong: {MSG}-byte messages, {count} round trips per run or {} s, whichever ends \
         first (fewest in a run: {fewest}). CPU: both endpoint threads. Runnable but not \
         running (wake-up latency and other load), median: {}.",
        limit.as_secs(),
        shares(imps, &waited)
    ));
    report.note(
        "pingpong is bound by wake-ups: every round trip is two cross-CPU wake-ups. Syscalls \
         per message and side: 8 for the hand-written `polling` loop (it re-arms one-shot), 7 \
         for the driver (edge-triggered; TCP_INQ spares the read that would see WouldBlock), \
         2 for `raw`; polling 3's `wait` alone is 5 (timerfd_settime, epoll_ctl, \
         epoll_pwait, eventfd read, epoll_ctl). User space is about a tenth of the CPU; the \
         driver's gap to the hand-written loop is its own per-message work (about 8.6 k \
         instructions per round trip for both ends against 2.1 k, callgrind), spread over the \
         core's input/output plumbing and the reactor's bookkeeping, with 5 allocations per \
         round trip (small reads copied out of the read buffer, and the first clone of each \
         such `Bytes`, which allocates its shared header).",
    );
}

fn bulks(args: &Args, imps: &[Imp], report: &mut Report) {
    let total: u64 = args.size(1 << 30, 16 << 20);
    let pattern = Pattern::new();
    let before = (
        STOPPED.load(Ordering::Relaxed),
        RECORDINGS.load(Ordering::Relaxed),
    );
    let limit = Duration::from_secs(args.size(40, 15));
    let samples = measure(args, imps, "bulk", limit, |imp| match imp {
        Imp::Raw => bulk::<Raw>(&pattern, total),
        Imp::Polling => bulk::<Polled>(&pattern, total),
        Imp::Tokio => bulk::<Tokio>(&pattern, total),
        Imp::Driver => driver_bulk(&pattern, total, false),
        Imp::DriverRec => driver_bulk(&pattern, total, true),
    });
    let gbs = |secs: f64| total as f64 / secs / 1e9;
    let gib = 2.0 * total as f64 / f64::from(1 << 30);
    let raw = Imp::Raw;
    let up = medians(&samples, |b| gbs(b.up));
    rows(report, "bulk upload GB/s", imps, &up, raw, driver_target);
    let down = medians(&samples, |b| gbs(b.down));
    rows(
        report,
        "bulk download GB/s",
        imps,
        &down,
        raw,
        driver_target,
    );
    let cpu = medians(&samples, |b| b.sched.cpu / gib);
    rows(report, "bulk CPU s/GiB", imps, &cpu, raw, |_| Target::None);
    let stopped = STOPPED.load(Ordering::Relaxed) - before.0;
    let recordings = RECORDINGS.load(Ordering::Relaxed) - before.1;
    recording_rows(report, imps, "bulk upload", &up, Target::None);
    recording_rows(report, imps, "bulk download", &down, Target::None);
    if imps.contains(&Imp::DriverRec) {
        report.note(format!(
            "bulk/driver-rec: every byte sent and received is recorded, on both ends, {}; \
             the recording stopped early (its writer fell behind its bound, the overflow \
             policy) in {stopped} of {recordings} runs (client side), the last \
             after {:.0} MB: where it stopped, the rows above compare a recorded start of the \
             transfer, then an unrecorded rest.",
            recorded_where(),
            RECORDED.load(Ordering::Relaxed) as f64 / 1e6,
        ));
    }
    let waited = medians(&samples, |b| b.sched.waited / (2.0 * (b.up + b.down)));
    report.note(format!(
        "bulk: {} MiB each way per run, upload then download on one connection. CPU: both \
         endpoint threads. Runnable but not running (wake-up latency and other load), \
         median: {}.",
        total >> 20,
        shares(imps, &waited)
    ));
    report.note(
        "bulk is bound by the kernel: some 95% of the endpoints' CPU is the TCP loopback path \
         (the copy into the socket in send, the copy out in recv, delivery in softirq; perf \
         -e cpu-clock), and the two threads keep about 0.7 CPUs busy, each waiting on the \
         other's buffer. Readiness loops add a poller wait per wake-up; the driver also goes \
         back to the poller every `reads_per_turn` (4) reads of 64 KiB, five times the waits \
         of the hand-written loop (which reads until `WouldBlock`), and spends about 3% of \
         its CPU in its own code.",
    );
}

/// The recorder's cost: `driver-rec` as a ratio to `driver` (same run), when both ran.
fn recording_rows(report: &mut Report, imps: &[Imp], what: &str, medians: &[f64], target: Target) {
    let at = |imp| imps.iter().position(|&i| i == imp);
    if let (Some(off), Some(on)) = (at(Imp::Driver), at(Imp::DriverRec)) {
        let metric = format!("{what}: recording on / off");
        report.ratio(
            &metric,
            "driver-rec",
            medians[on],
            ("driver", medians[off]),
            target,
        );
    }
}

/// `raw 1.2%, polling 0.8%, ...`
fn shares(imps: &[Imp], values: &[f64]) -> String {
    (imps.iter().zip(values))
        .map(|(imp, v)| format!("{} {:.1}%", imp.name(), v * 100.0))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One row per implementation: the baseline's value, the others as ratios to it (plain
/// values when the baseline was filtered out).
fn rows(
    report: &mut Report,
    metric: &str,
    imps: &[Imp],
    medians: &[f64],
    baseline: Imp,
    target: impl Fn(Imp) -> Target,
) {
    let base = imps
        .iter()
        .position(|&i| i == baseline)
        .map(|i| (baseline.name(), medians[i]));
    for (&imp, &value) in imps.iter().zip(medians) {
        match base {
            Some(base) if imp != baseline => {
                report.ratio(metric, imp.name(), value, base, target(imp))
            }
            _ => report.value(metric, imp.name(), value),
        }
    }
}
