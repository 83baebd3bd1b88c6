//! Workload 4 of issue 7: UDP datagrams per second over loopback, 64- and 1200-byte payloads,
//! the driver (by default, and with `Config::spin_polls`) against raw blocking
//! `std::net::UdpSocket` `send_to`/`recv_from`, and against a hand-written epoll loop with no
//! library in it (what the readiness model itself costs here).
//!
//! Each run has a sender and a receiver, each on its own thread and both of the same
//! implementation: the receiver binds `127.0.0.1:0`, the sender sends `count` datagrams (or
//! what it can within its time budget) as fast as it may, and the receiver reads until the
//! sender is done and nothing more arrives.
//!
//! UDP may drop (here: the receiver's socket buffer overflows when the sender outruns it), so
//! the figure is what the *receiver* got over *its own* first-to-last datagram interval: the
//! sustained delivery rate, bounded by whichever side is slower, unaffected by loss, start-up
//! or the idle wait at the end. The loss and each thread's CPU use are reported next to it, so
//! the reader can see which side was saturated. Both implementations use the kernel's default
//! socket buffer sizes (the driver offers no option to change them, so neither does the
//! baseline) and the same payloads: `Bytes` clones (driver) or slices (raw) of a pool of 1024
//! prepared datagrams, each carrying its index, checked on receipt.
//!
//! Each path is also measured alone, on one thread, as CPU time per datagram (steadier than
//! rates on a shared machine): sending to a socket nobody reads, and draining bursts already
//! queued in the kernel; and raw sending once more from a socket registered in an epoll set,
//! which is what any event loop's socket costs the kernel.
//!
//! `cargo bench -p sockstate-driver --bench udp [-- --smoke] [--runs N] [FILTER]`
//! (`--imp=NAME` runs the implementations whose name starts with it, for profiling: `driver`,
//! `hand`, `raw`)
//!
//! Issue 19's rows are in `udp/`: bursts of 64 datagrams, the driver batched (GSO, `sendmmsg`,
//! GRO reads) against raw per-datagram calls and a hand-written GSO + GRO loop
//! (`udp/batched.rs`), and a 64 B ping-pong of the driver with and without batching
//! (`udp/pingpong.rs`); filters `burst`, `ping-pong`.
//!
//! Smoke mode sends 50 datagrams per run (they fit in the receiver's buffer, so none may be
//! lost) and fails on any loss, reordering or corruption.

mod common;

#[path = "udp/batched.rs"]
mod batched;
#[path = "udp/driven.rs"]
mod driven;
#[path = "udp/pingpong.rs"]
mod pingpong;
#[path = "udp/raw.rs"]
mod raw;

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{interleaved, median, Args, Deadline, Report, Target};
use driven::{drain_driver, receive_driver, send_driver};
use raw::{drain_raw, receive_raw, send_raw};
use sockstate_driver::{Config, Driver, Event, UdpOptions};

/// Prepared datagrams per size; the sender cycles through them.
const POOL: usize = 1024;
/// The receiver stops once the sender is done and nothing arrived for this long.
const IDLE: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Imp {
    Driver,
    /// The driver with `Config::spin_polls` = [`SPIN_POLLS`] (main runs only).
    Spinning,
    /// A hand-written readiness loop on raw `epoll` (one `epoll_wait` per wait, sockets
    /// registered edge-triggered for reading, non-blocking `send_to`/`recv_from` until
    /// `WouldBlock`): what any event loop pays on this machine, with no library in it.
    EpollLoop,
    Raw,
}

/// `Config::spin_polls` of [`Imp::Spinning`].
const SPIN_POLLS: u32 = 8;

impl Imp {
    fn name(self) -> &'static str {
        match self {
            Imp::Driver => "driver",
            Imp::Spinning => "driver, spin_polls 8",
            Imp::EpollLoop => "hand-written epoll loop",
            Imp::Raw => "raw std::net",
        }
    }

    /// Its threads' names.
    fn thread(self) -> &'static str {
        match self {
            Imp::Driver => "driver",
            Imp::Spinning => "spinning",
            Imp::EpollLoop => "epoll",
            Imp::Raw => "raw",
        }
    }

    /// The driver's configuration for this implementation.
    fn config(self) -> Config {
        Config::default().spin_polls(if self == Imp::Spinning { SPIN_POLLS } else { 0 })
    }
}

/// One run's outcome.
#[derive(Clone, Copy, Debug)]
struct Sample {
    /// Datagrams the receiver got per second over its first-to-last interval.
    delivered_per_s: f64,
    /// Datagrams the sender handed to the OS per second (first send to last one taken).
    sent_per_s: f64,
    /// Share of the datagrams sent that never arrived.
    loss: f64,
    /// Shares of its active interval each thread ran on a CPU, and waited for one.
    send_busy: (f64, f64),
    recv_busy: (f64, f64),
    /// CPU time each thread used per datagram (less sensitive to a busy machine than rates).
    send_cpu_ns: f64,
    recv_cpu_ns: f64,
}

/// What the sender did.
struct Sent {
    count: u64,
    elapsed: Duration,
    /// Shares of `elapsed` the thread ran and waited for a CPU.
    busy: (f64, f64),
}

/// What the receiver got.
#[derive(Default)]
struct Received {
    count: u64,
    first: Option<Instant>,
    last: Option<Instant>,
    /// Scheduler statistics at the first datagram.
    sched: Sched,
    /// Shares of the first-to-last interval the thread ran and waited for a CPU.
    busy: (f64, f64),
    /// Datagrams of the wrong size or content.
    corrupt: u64,
    /// Datagrams whose index did not follow the previous one's (loss or reordering).
    gaps: u64,
    next: u32,
}

impl Received {
    /// The receiver is done: its scheduler statistics since the first datagram, as shares
    /// of the first-to-last interval (the idle wait since adds almost nothing to either).
    fn finish(mut self) -> Received {
        if let (Some(first), Some(last)) = (self.first, self.last) {
            self.busy = Sched::since(self.sched, last - first);
        }
        self
    }

    /// Counts and checks one datagram (the same work for both implementations).
    fn take(&mut self, data: &[u8], size: usize) {
        let now = Instant::now();
        if self.first.is_none() {
            self.first = Some(now);
            self.sched = Sched::now();
        }
        self.last = Some(now);
        self.count += 1;
        match check(data, size) {
            Some(index) => {
                if index != self.next {
                    self.gaps += 1;
                }
                self.next = (index + 1) % POOL as u32;
            }
            None => self.corrupt += 1,
        }
    }
}

/// This thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`, exact) and the time it spent runnable
/// but waiting for a CPU (`/proc/thread-self/schedstat`, updated at scheduler events only, so
/// meaningful over long intervals).
#[derive(Clone, Copy, Debug, Default)]
struct Sched {
    run: Duration,
    wait: Duration,
}

impl Sched {
    fn now() -> Sched {
        let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
        let wait = stat.split_whitespace().nth(1).and_then(|f| f.parse().ok());
        Sched {
            run: thread_cpu(),
            wait: Duration::from_nanos(wait.unwrap_or(0)),
        }
    }

    /// Shares of `wall` this thread ran and waited for a CPU since `start`.
    fn since(start: Sched, wall: Duration) -> (f64, f64) {
        let end = Sched::now();
        let wall = wall.as_secs_f64();
        (
            (end.run - start.run).as_secs_f64() / wall,
            (end.wait - start.wait).as_secs_f64() / wall,
        )
    }
}

/// CPU time this thread has used.
/// A metric's rows: each driver configuration against raw when raw ran (then raw's own row),
/// else each one that ran. `value(i)` is the median of `imps[i]`.
fn rows(
    report: &mut Report,
    imps: &[Imp],
    metric: &str,
    value: impl Fn(usize) -> f64,
    target: Target,
) {
    let raw = imps.iter().position(|&imp| imp == Imp::Raw);
    for (i, &imp) in imps.iter().enumerate().filter(|&(_, &imp)| imp != Imp::Raw) {
        match raw {
            Some(r) => report.ratio(
                metric,
                imp.name(),
                value(i),
                (Imp::Raw.name(), value(r)),
                target,
            ),
            None => report.value(metric, imp.name(), value(i)),
        }
    }
    if let Some(r) = raw {
        report.value(metric, Imp::Raw.name(), value(r));
    }
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0;
    if !ok {
        fail("clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    }
    Duration::new(
        ts.tv_sec.unsigned_abs(),
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// The datagrams of one size: index `i` carries `i` (little-endian u32) first and a byte
/// derived from it last.
fn pool(size: usize) -> Vec<Bytes> {
    (0..POOL as u32)
        .map(|i| {
            let mut d = vec![0x5a_u8; size];
            d[..4].copy_from_slice(&i.to_le_bytes());
            d[size - 1] = (i as u8) ^ 0xa5;
            Bytes::from(d)
        })
        .collect()
}

/// The index a datagram carries, if it is intact.
fn check(data: &[u8], size: usize) -> Option<u32> {
    if data.len() != size {
        return None;
    }
    let index = u32::from_le_bytes(data[..4].try_into().ok()?);
    (index < POOL as u32 && data[size - 1] == (index as u8) ^ 0xa5 && data[4] == 0x5a)
        .then_some(index)
}

/// One run: a receiver thread and a sender thread of `imp`.
fn run(imp: Imp, size: usize, count: u64, budget: Duration, smoke: bool) -> Sample {
    let pool = pool(size);
    pair(
        imp.name(),
        imp.thread(),
        smoke,
        move |addr, done, deadline| match imp {
            Imp::Driver | Imp::Spinning => {
                receive_driver(imp.config(), None, size, addr, done, deadline)
            }
            Imp::EpollLoop => receive_raw(size, addr, done, true, deadline),
            Imp::Raw => receive_raw(size, addr, done, false, deadline),
        },
        move |to, deadline| match imp {
            Imp::Driver | Imp::Spinning => {
                send_driver(imp.config(), &pool, to, count, budget, deadline)
            }
            Imp::EpollLoop => send_raw(&pool, to, count, budget, true, deadline),
            Imp::Raw => send_raw(&pool, to, count, budget, false, deadline),
        },
    )
}

/// One run of an implementation called `name`: a receiver thread (`receive`, which sends its
/// address once bound and reads until `done` and quiet) and a sender thread (`send` to that
/// address), both named after `thread`; every datagram checked, the outcome as a [`Sample`].
fn pair(
    name: &str,
    thread: &str,
    smoke: bool,
    receive: impl FnOnce(&mpsc::Sender<SocketAddr>, &AtomicBool, Deadline) -> Received + Send + 'static,
    send: impl FnOnce(SocketAddr, Deadline) -> Sent + Send + 'static,
) -> Sample {
    let deadline = Deadline::new("udp run", Duration::from_secs(20));
    let done = Arc::new(AtomicBool::new(false));
    let (addr_tx, addr_rx) = mpsc::channel();
    let receiver = {
        let done = Arc::clone(&done);
        spawn(thread, "recv", move || receive(&addr_tx, &done, deadline))
    };
    let Ok(to) = addr_rx.recv_timeout(Duration::from_secs(5)) else {
        fail("the receiver did not start");
    };
    let sender = spawn(thread, "send", move || send(to, deadline));
    let sent = sender
        .join()
        .unwrap_or_else(|_| fail("the sender panicked"));
    done.store(true, Ordering::Release);
    let got = receiver
        .join()
        .unwrap_or_else(|_| fail("the receiver panicked"));
    if got.corrupt > 0 {
        fail(&format!("{name}: {} corrupt datagrams", got.corrupt));
    }
    if got.count == 0 || got.count > sent.count {
        fail(&format!(
            "{name}: received {} of {} datagrams",
            got.count, sent.count
        ));
    }
    // Smoke runs fit in the socket buffer: anything lost or out of order is a failure there
    // (elsewhere a gap is expected wherever the buffer overflowed).
    if smoke && (got.gaps > 0 || got.count != sent.count) {
        fail(&format!(
            "{name}: received {} of {} datagrams with {} gaps",
            got.count, sent.count, got.gaps
        ));
    }
    let span = match (got.first, got.last) {
        (Some(a), Some(b)) => (b - a).as_secs_f64(),
        _ => 0.0,
    };
    let delivered_per_s = if span > 0.0 {
        (got.count - 1) as f64 / span
    } else {
        f64::NAN
    };
    Sample {
        delivered_per_s,
        sent_per_s: sent.count as f64 / sent.elapsed.as_secs_f64(),
        loss: 1.0 - got.count as f64 / sent.count as f64,
        send_busy: sent.busy,
        recv_busy: got.busy,
        send_cpu_ns: sent.busy.0 * sent.elapsed.as_secs_f64() * 1e9 / sent.count as f64,
        recv_cpu_ns: got.busy.0 * span * 1e9 / got.count as f64,
    }
}

/// Each implementation's samples of one workload, in the order of its implementations.
struct Runs(Vec<Vec<Sample>>);

impl Runs {
    /// `args.runs` interleaved runs of each of `imps`, each `run(imp, count, budget)` (50
    /// datagrams within 5 s in smoke mode).
    fn take<I: Copy>(
        args: &Args,
        imps: &[I],
        count: u64,
        budget: Duration,
        mut run: impl FnMut(I, u64, Duration) -> Sample,
    ) -> Runs {
        let count = args.size(count, 50);
        let budget = args.size(budget, Duration::from_secs(5));
        Runs(interleaved(args.runs, imps, |imp, _| {
            run(imp, count, budget)
        }))
    }

    /// The median of `f` over the runs of implementation `i`.
    fn pick(&self, i: usize, f: fn(&Sample) -> f64) -> f64 {
        median(&self.0[i].iter().map(f).collect::<Vec<_>>())
    }

    /// A note's line: how much of its interval each thread of implementation `i` (called
    /// `what`) ran, and waited for a CPU.
    fn busy(&self, what: &str, i: usize) -> String {
        format!(
            "{what}: sender ran {:.0}% (waited for a CPU {:.0}%), receiver ran {:.0}% \
             (waited {:.0}%)",
            100.0 * self.pick(i, |s| s.send_busy.0),
            100.0 * self.pick(i, |s| s.send_busy.1),
            100.0 * self.pick(i, |s| s.recv_busy.0),
            100.0 * self.pick(i, |s| s.recv_busy.1),
        )
    }
}

/// A thread named after its implementation and role (`perf report --sort comm` tells them
/// apart).
fn spawn<T: Send + 'static>(
    thread: &str,
    role: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let name = format!("{thread}-{role}");
    std::thread::Builder::new()
        .name(name)
        .spawn(f)
        .unwrap_or_else(|e| fail(&format!("spawn: {e}")))
}

fn fail(why: &str) -> ! {
    eprintln!("udp benchmark failed: {why}");
    std::process::exit(1);
}

// ---- each path alone ------------------------------------------------------------------------

/// Datagrams per queued burst in [`drain`]: they fit in the receive buffer (64 × 1200 B is
/// about 150 KB of the kernel's 208 KiB default), so none is lost.
const BURST: usize = 64;

/// What one implementation adds per datagram on each path, measured on one thread (no
/// wake-ups, no second thread competing for the CPU): thread CPU time per datagram.
#[derive(Clone, Copy, Debug)]
struct Alone {
    /// Sending to a socket nobody reads (its full buffer drops them: the same kernel work for
    /// both implementations).
    send_ns: f64,
    /// Receiving bursts of [`BURST`] datagrams already queued in the kernel.
    drain_ns: f64,
}

fn alone(imp: Imp, size: usize, count: u64, bursts: usize) -> Alone {
    let deadline = Deadline::new("udp path alone", Duration::from_secs(20));
    let pool = pool(size);
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| fail(&e.to_string()));
    let to = sink.local_addr().unwrap_or_else(|e| fail(&e.to_string()));
    let budget = Duration::from_secs(10);
    let sent = match imp {
        Imp::Driver | Imp::Spinning => {
            send_driver(imp.config(), &pool, to, count, budget, deadline)
        }
        Imp::EpollLoop => send_raw(&pool, to, count, budget, true, deadline),
        Imp::Raw => send_raw(&pool, to, count, budget, false, deadline),
    };
    drop(sink);
    let (cpu, got) = match imp {
        Imp::Driver | Imp::Spinning => drain_driver(imp, &pool, bursts, deadline),
        Imp::EpollLoop => drain_raw(&pool, bursts, true, deadline),
        Imp::Raw => drain_raw(&pool, bursts, false, deadline),
    };
    if got.count != (bursts * BURST) as u64 || got.gaps > 0 || got.corrupt > 0 {
        fail(&format!(
            "{}: drained {} of {} datagrams, {} gaps, {} corrupt",
            imp.name(),
            got.count,
            bursts * BURST,
            got.gaps,
            got.corrupt
        ));
    }
    Alone {
        send_ns: sent.busy.0 * sent.elapsed.as_secs_f64() * 1e9 / sent.count as f64,
        drain_ns: cpu.as_secs_f64() * 1e9 / got.count as f64,
    }
}

/// Sends `BURST` datagrams of the pool from `tx` to `to`, starting at pool index `from`.
fn burst(tx: &UdpSocket, pool: &[Bytes], from: usize, to: SocketAddr) {
    for i in from..from + BURST {
        if let Err(e) = tx.send_to(&pool[i % POOL], to) {
            fail(&format!("burst send_to: {e}"));
        }
    }
}

/// A row of the table: its name, how to read it from a sample, its target.
type Metric = (&'static str, fn(&Sample) -> f64, Target);

// ---- the program ----------------------------------------------------------------------------

fn main() {
    let args = Args::parse();
    let mut report = Report::new("UDP datagrams over loopback: driver vs raw std::net");
    // `--imp=NAME` runs those whose name starts with it (for profiling).
    let only = args.rest.iter().find_map(|a| a.strip_prefix("--imp="));
    let imps: Vec<Imp> = [Imp::Driver, Imp::Spinning, Imp::EpollLoop, Imp::Raw]
        .into_iter()
        .filter(|imp| only.is_none_or(|o| imp.name().starts_with(o)))
        .collect();
    // Each path alone: spinning changes nothing there.
    let alone_imps: Vec<Imp> = imps
        .iter()
        .copied()
        .filter(|&i| i != Imp::Spinning)
        .collect();
    let metrics: [Metric; 4] = [
        (
            "delivered dgram/s",
            |s| s.delivered_per_s,
            Target::AtLeast(0.9),
        ),
        ("sender dgram/s", |s| s.sent_per_s, Target::None),
        ("sender CPU ns/dgram", |s| s.send_cpu_ns, Target::None),
        ("receiver CPU ns/dgram", |s| s.recv_cpu_ns, Target::None),
    ];
    let mut cpu_notes = Vec::new();
    for (size, count) in [(64, 400_000_u64), (1200, 300_000)] {
        let name = format!("udp {size} B");
        if !args.wants(&name) {
            continue;
        }
        let samples = Runs::take(
            &args,
            &imps,
            count,
            Duration::from_millis(1500),
            |imp, n, t| run(imp, size, n, t, args.smoke),
        );
        let pick = |i: usize, f: fn(&Sample) -> f64| samples.pick(i, f);
        for (metric, f, target) in metrics {
            let metric = format!("{name} {metric}");
            rows(&mut report, &imps, &metric, |i| pick(i, f), target);
        }
        // The driver against the same loop without a library: what sockstate itself costs.
        let at = |imp: Imp| imps.iter().position(|&i| i == imp);
        if let (Some(d), Some(e)) = (at(Imp::Driver), at(Imp::EpollLoop)) {
            for (metric, f) in [
                (
                    "delivered dgram/s",
                    (|s| s.delivered_per_s) as fn(&Sample) -> f64,
                ),
                ("sender CPU ns/dgram", |s| s.send_cpu_ns),
            ] {
                report.ratio(
                    &format!("{name} {metric}, driver against the epoll loop"),
                    Imp::Driver.name(),
                    pick(d, f),
                    (Imp::EpollLoop.name(), pick(e, f)),
                    Target::None,
                );
            }
        }
        let alone = interleaved(args.runs, &alone_imps, |imp, _| {
            alone(imp, size, args.size(100_000, 500), args.size(1000, 5))
        });
        let pick = |i: usize, f: fn(&Alone) -> f64| -> f64 {
            median(&alone[i].iter().map(f).collect::<Vec<_>>())
        };
        for (metric, f) in [
            (
                "send path alone, CPU ns/dgram",
                (|a| a.send_ns) as fn(&Alone) -> f64,
            ),
            ("queued burst drained, CPU ns/dgram", |a| a.drain_ns),
        ] {
            let metric = format!("{name} {metric}");
            rows(
                &mut report,
                &alone_imps,
                &metric,
                |i| pick(i, f),
                Target::None,
            );
        }
        for (i, imp) in imps.iter().enumerate() {
            report.value(
                &format!("{name} loss %"),
                imp.name(),
                100.0 * samples.pick(i, |s| s.loss),
            );
            cpu_notes.push(samples.busy(&format!("{name} {}", imp.name()), i));
        }
    }
    // Issue 19: bursts (the driver batched, against raw and a hand-written GSO+GRO loop), and
    // a ping-pong that batching must not slow down.
    batched::measure(&args, &mut report, &mut cpu_notes);
    pingpong::measure(&args, &mut report);
    report.note(
        "Method: sender and receiver of the same implementation, each on its own thread, \
         kernel-default socket buffers on both sides. `delivered` counts what the receiver got \
         over its own first-to-last datagram interval (so loss, start-up and the idle wait at \
         the end do not enter the figure); `sender` is datagrams handed to the OS per second \
         (the driver's from the first `send_to` to the last `Sent`, honouring `false` by \
         waiting for `Drain`); `loss` is what overflowed the receiver's buffer. `alone` rows: one \
         thread, CPU time per datagram (CLOCK_THREAD_CPUTIME_ID): sending to a socket nobody \
         reads, draining bursts of 64 queued datagrams (the driver's socket suspended while \
         they are queued, then resumed; the epoll loop waits once per burst, then reads until `WouldBlock`).",
    );
    if !args.smoke {
        // (A smoke run's intervals are shorter than the scheduler's accounting granularity.)
        report.note(format!(
            "Thread time (from /proc/thread-self/schedstat, share of each side's active \
             interval, medians): a side that ran ~100% was the bound; time waiting for a CPU \
             is the shared machine's.\n- {}",
            cpu_notes.join("\n- ")
        ));
    }
    report.print(&args);
}
