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

#[path = "stream/baselines.rs"]
mod baselines;
#[path = "stream/driven.rs"]
mod driven;

use std::fmt::Display;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use baselines::{Polled, Raw, Tokio};
use bytes::Bytes;
use common::{interleaved, median, percentile, Args, Deadline, Report, Target};
use driven::{driver_bulk, driver_pingpong, recorded_where, RECORDED, RECORDINGS, STOPPED};
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
