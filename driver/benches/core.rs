//! Workload 6 of issue 7: the sans-IO core alone, fed by hand the inputs the driver would feed
//! it (no sockets, no clock reads: one `Instant` serves as "now" throughout).
//!
//! - The cost of one cycle, in ns (median of runs of many iterations) and in instructions
//!   (`valgrind --tool=callgrind`, when installed: this program re-executes itself under it
//!   with a role and N iterations, and with 0, and divides the difference by N):
//!   - TCP send: `tcp_send` → `Action::Write` → `Input::Written` → `Event::Drain` (the high-water
//!     mark is 0, so every send returns `false` and arms `Drain`, as a sender that fills the
//!     queue sees at every turn);
//!   - TCP receive: `Input::Received` → `Event::Data` (`arraybuffer`, and `string`);
//!   - the same two for UDP: `udp_send` → `SendDatagrams` → `Sent` → `Drain`, `Input::Datagram` →
//!     `Event::Message`.
//! - Bytes allocated per cycle (a counting global allocator): with `Bytes` clones of one
//!   buffer, a plaintext cycle should allocate nothing of payload size (no copy of the payload).
//! - Bytes of core state per idle socket, opened to `Open` and left alone: the allocator's live
//!   bytes after 10 000 of them minus before, divided by 10 000 (so the tables' growth counts).
//!
//! `cargo bench -p sockstate-driver --bench core [-- --smoke] [--runs N] [FILTER]`; the filter
//! matches row names (`tcp send`, `idle`, ...). Child role (internal): `--role=NAME --iters=N`.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Debug;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{interleaved, median, Args, Deadline, Report, Target};
use sockstate::{
    Accepted, Action, BinaryType, Config, Core, Data, Event, Input, Output, ServerOptions, TcpId,
    TcpOptions, TcpSocket, UdpId, UdpOptions, UdpSocket,
};

// ---- a counting allocator ------------------------------------------------------------------

/// The system allocator, counting calls and bytes.
struct Counting;

/// Allocations (and reallocations) made.
static ALLOCS: AtomicU64 = AtomicU64::new(0);
/// Bytes asked for by them (a reallocation counts its new size).
static ALLOCATED: AtomicU64 = AtomicU64::new(0);
/// Bytes allocated and not yet freed.
static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        ALLOCATED.fetch_add(layout.size() as u64, Relaxed);
        LIVE.fetch_add(layout.size() as i64, Relaxed);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        ALLOCATED.fetch_add(layout.size() as u64, Relaxed);
        LIVE.fetch_add(layout.size() as i64, Relaxed);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Relaxed);
        // SAFETY: `ptr` was allocated by `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        ALLOCATED.fetch_add(new_size as u64, Relaxed);
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Relaxed);
        // SAFETY: forwarded with the caller's pointer, layout and size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocation counters at one moment.
#[derive(Clone, Copy, Debug)]
struct Counts {
    allocs: u64,
    bytes: u64,
    live: i64,
}

impl Counts {
    fn now() -> Counts {
        Counts {
            allocs: ALLOCS.load(Relaxed),
            bytes: ALLOCATED.load(Relaxed),
            live: LIVE.load(Relaxed),
        }
    }
}

// ---- the cycles ----------------------------------------------------------------------------

const KIB: usize = 1024;

/// One measured cycle of the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cycle {
    /// `tcp_send` → `Write` → `Written` → `Drain`.
    TcpSend(usize),
    /// `Received` → `Data`, with this `binaryType`.
    TcpReceive(usize, BinaryType),
    /// `udp_send` → `SendDatagrams` → `Sent` → `Drain`.
    UdpSend(usize),
    /// `Datagram` → `Message`.
    UdpReceive(usize),
}

const CYCLES: [Cycle; 7] = [
    Cycle::TcpSend(64),
    Cycle::TcpSend(64 * KIB),
    Cycle::TcpReceive(64, BinaryType::ArrayBuffer),
    Cycle::TcpReceive(64 * KIB, BinaryType::ArrayBuffer),
    Cycle::TcpReceive(64 * KIB, BinaryType::String),
    Cycle::UdpSend(1200),
    Cycle::UdpReceive(1200),
];

impl Cycle {
    fn name(self) -> String {
        let size = |n: usize| {
            if n >= KIB && n % KIB == 0 {
                format!("{} KiB", n / KIB)
            } else {
                format!("{n} B")
            }
        };
        match self {
            Cycle::TcpSend(n) => format!("tcp send {} → Write → Written → Drain", size(n)),
            Cycle::TcpReceive(n, t) => {
                format!("tcp Received {} → Data ({})", size(n), t.as_str())
            }
            Cycle::UdpSend(n) => format!("udp send {} → SendDatagrams → Sent → Drain", size(n)),
            Cycle::UdpReceive(n) => format!("udp Datagram {} → Message", size(n)),
        }
    }

    /// The name a child process is given in `--role=`.
    fn role(self) -> String {
        match self {
            Cycle::TcpSend(n) => format!("tcp-send-{n}"),
            Cycle::TcpReceive(n, t) => format!("tcp-receive-{n}-{}", t.as_str()),
            Cycle::UdpSend(n) => format!("udp-send-{n}"),
            Cycle::UdpReceive(n) => format!("udp-receive-{n}"),
        }
    }

    fn from_role(role: &str) -> Option<Cycle> {
        CYCLES.into_iter().find(|c| c.role() == role)
    }

    fn size(self) -> usize {
        match self {
            Cycle::TcpSend(n)
            | Cycle::TcpReceive(n, _)
            | Cycle::UdpSend(n)
            | Cycle::UdpReceive(n) => n,
        }
    }
}

#[cold]
fn fail(what: &str, got: &dyn Debug) -> ! {
    eprintln!("core benchmark failed: {what}: got {got:?}");
    std::process::exit(1);
}

/// Polls one output and checks it with `ok`.
fn expect(core: &mut Core, what: &str, ok: impl FnOnce(&Output) -> bool) -> Output {
    let out = core.poll_output();
    if !ok(&out) {
        fail(what, &out);
    }
    out
}

/// Drains the outputs left, which must be no more than the next deadline.
fn idle(core: &mut Core) {
    expect(core, "no more output", |o| matches!(o, Output::Timeout(_)));
}

const PEER: ([u8; 4], u16) = ([127, 0, 0, 1], 4000);

/// A TCP client socket driven to `Open` by hand, as the driver would (connect, `Connected`).
fn open_tcp(core: &mut Core, now: Instant, binary_type: BinaryType, local_port: u16) -> TcpId {
    let options = TcpOptions::default().binary_type(binary_type);
    let id = core
        .tcp_open(now, "127.0.0.1", PEER.1, options)
        .unwrap_or_else(|e| fail("tcp_open", &e));
    let Output::Action(Action::Connect { attempt, .. }) = expect(core, "Connect", |o| {
        matches!(o, Output::Action(Action::Connect { .. }))
    }) else {
        unreachable!()
    };
    let local = SocketAddr::from(([127, 0, 0, 1], local_port));
    core.handle_input(now, Input::Connected { id, attempt, local })
        .unwrap_or_else(|e| fail("Connected", &e));
    opened(core);
    id
}

/// What a socket says once it is up: `Open`, then reading starts; then nothing more.
fn opened(core: &mut Core) {
    expect(core, "Open", |o| {
        matches!(o, Output::Event(Event::Open { .. }))
    });
    expect(core, "SetReading", |o| {
        matches!(o, Output::Action(Action::SetReading { enabled: true, .. }))
    });
    idle(core);
}

/// A UDP socket on 127.0.0.1 driven to `Open` by hand (bind, `Bound`).
fn open_udp(core: &mut Core, now: Instant, local_port: u16) -> UdpId {
    let options = UdpOptions::default().local_address(Some([127, 0, 0, 1].into()));
    let id = core
        .udp_open(now, options)
        .unwrap_or_else(|e| fail("udp_open", &e));
    expect(core, "Bind", |o| {
        matches!(o, Output::Action(Action::Bind { .. }))
    });
    let local = SocketAddr::from(([127, 0, 0, 1], local_port));
    core.handle_input(now, Input::Bound { id, local })
        .unwrap_or_else(|e| fail("Bound", &e));
    opened(core);
    id
}

/// A core with one open socket, ready to run one kind of cycle again and again.
struct Bench {
    cycle: Cycle,
    core: Core,
    now: Instant,
    /// Cloned (a reference count) for every send or receive.
    payload: Bytes,
    tcp: Option<TcpId>,
    udp: Option<UdpId>,
    peer: SocketAddr,
}

impl Bench {
    fn new(cycle: Cycle) -> Bench {
        // Every send returns `false`, so every cycle ends with `Drain`.
        let config = Config::default().high_water_mark(0);
        let mut core = Core::new(config);
        let now = Instant::now();
        let (mut tcp, mut udp) = (None, None);
        match cycle {
            Cycle::TcpSend(_) => {
                tcp = Some(open_tcp(&mut core, now, BinaryType::ArrayBuffer, 50_000))
            }
            Cycle::TcpReceive(_, t) => tcp = Some(open_tcp(&mut core, now, t, 50_000)),
            Cycle::UdpSend(_) | Cycle::UdpReceive(_) => {
                udp = Some(open_udp(&mut core, now, 50_000))
            }
        }
        // ASCII, so that `string` decodes it whole.
        let payload = Bytes::from(vec![b'x'; cycle.size()]);
        Bench {
            cycle,
            core,
            now,
            payload,
            tcp,
            udp,
            peer: SocketAddr::from(PEER),
        }
    }

    /// One cycle, every output checked.
    fn run(&mut self) {
        let (core, now, len) = (&mut self.core, self.now, self.payload.len());
        match (self.cycle, self.tcp, self.udp) {
            (Cycle::TcpSend(_), Some(id), _) => {
                match core.tcp_send(id, self.payload.clone()) {
                    Ok(false) => {}
                    other => fail("tcp_send → false", &other),
                }
                match core.poll_output() {
                    Output::Action(Action::Write { data, .. }) if data.len() == len => {
                        drop(data);
                        core.handle_input(now, Input::Written { id, len })
                            .unwrap_or_else(|e| fail("Written", &e));
                    }
                    other => fail("Write", &other),
                }
                expect(core, "Drain", |o| {
                    matches!(o, Output::Event(Event::Drain { .. }))
                });
            }
            (Cycle::TcpReceive(..), Some(id), _) => {
                let data = self.payload.clone();
                core.handle_input(now, Input::Received { id, data })
                    .unwrap_or_else(|e| fail("Received", &e));
                match core.poll_output() {
                    Output::Event(Event::Data { data, .. }) if data.len() == len => {
                        if let Data::Text(text) = &data {
                            std::hint::black_box(text.len());
                        }
                    }
                    other => fail("Data", &other),
                }
            }
            (Cycle::UdpSend(_), _, Some(id)) => {
                match core.udp_send(id, self.payload.clone(), Some(self.peer)) {
                    Ok(false) => {}
                    other => fail("udp_send → false", &other),
                }
                match core.poll_output() {
                    Output::Action(Action::SendDatagrams { datagrams, .. })
                        if datagrams.len() == 1 && datagrams[0].0.len() == len =>
                    {
                        drop(datagrams);
                        core.handle_input(now, Input::Sent { id, count: 1 })
                            .unwrap_or_else(|e| fail("Sent", &e));
                    }
                    other => fail("SendDatagrams", &other),
                }
                expect(core, "Drain", |o| {
                    matches!(o, Output::Event(Event::Drain { .. }))
                });
            }
            (Cycle::UdpReceive(_), _, Some(id)) => {
                let data = self.payload.clone();
                core.handle_input(
                    now,
                    Input::Datagram {
                        id,
                        data,
                        remote: self.peer,
                    },
                )
                .unwrap_or_else(|e| fail("Datagram", &e));
                match core.poll_output() {
                    Output::Event(Event::Message { data, .. }) if data.len() == len => {}
                    other => fail("Message", &other),
                }
            }
            _ => fail("a bench without its socket", &self.cycle),
        }
        match core.poll_output() {
            Output::Timeout(None) => {}
            other => fail("no more output", &other),
        }
    }

    /// `n` cycles; their duration.
    fn time(&mut self, n: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..n {
            self.run();
        }
        start.elapsed()
    }
}

/// Child process: one warm-up cycle (first-use allocations), then `iters` cycles, then exit.
/// Run under callgrind with `iters` N and 0: the difference of the totals is N cycles.
fn child(role: &str, iters: u64) -> ! {
    if let Some(&(kind, ..)) = IDLE.iter().find(|(_, r, _)| *r == role) {
        let per = idle_sockets(kind, iters as usize);
        println!("{} {}", per.heap, per.resident);
        std::process::exit(0);
    }
    let Some(cycle) = Cycle::from_role(role) else {
        fail("unknown role", &role);
    };
    let mut bench = Bench::new(cycle);
    bench.run();
    for _ in 0..iters {
        bench.run();
    }
    std::process::exit(0);
}

/// Instructions of one cycle: callgrind totals with `iters` cycles minus with 0, over `iters`.
/// `None` (with the reason) when valgrind is missing or fails.
fn instructions(cycle: Cycle, iters: u64) -> Result<f64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let total = |n: u64| -> Result<u64, String> {
        let out = std::env::temp_dir().join(format!(
            "sockstate-core-bench-{}-{}-{n}.callgrind",
            std::process::id(),
            cycle.role()
        ));
        let status = Command::new("valgrind")
            .arg("--tool=callgrind")
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(&exe)
            .arg(format!("--role={}", cycle.role()))
            .arg(format!("--iters={n}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map_err(|e| format!("valgrind could not run: {e}"))?;
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let _ = std::fs::remove_file(&out);
        if !status.success() {
            return Err(format!("valgrind exited with {status}"));
        }
        text.lines()
            .find_map(|l| {
                l.strip_prefix("totals:")
                    .or_else(|| l.strip_prefix("summary:"))
            })
            .and_then(|t| t.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| "no totals in callgrind's output".to_owned())
    };
    let (with, without) = (total(iters)?, total(0)?);
    Ok(with.saturating_sub(without) as f64 / iters as f64)
}

/// Whether `valgrind` runs here.
fn have_valgrind() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

// ---- idle sockets ------------------------------------------------------------------------

/// What one idle socket costs: live heap bytes (and resident memory) added by opening
/// `count` sockets of one kind to `Open`, divided by `count`.
#[derive(Clone, Copy, Debug)]
struct PerSocket {
    heap: f64,
    resident: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Idle {
    TcpClient,
    TcpAccepted,
    Udp,
}

const IDLE: [(Idle, &str, &str); 3] = [
    (
        Idle::TcpClient,
        "idle-tcp-client",
        "idle TCP socket (client)",
    ),
    (
        Idle::TcpAccepted,
        "idle-tcp-accepted",
        "idle TCP socket (accepted)",
    ),
    (Idle::Udp, "idle-udp", "idle UDP socket"),
];

/// Measures idle sockets in a fresh process (so that resident memory is not memory an
/// earlier measurement freed): `--role=idle-... --iters=COUNT` prints `heap resident`.
fn idle_in_child(role: &str, count: usize) -> Result<PerSocket, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .arg(format!("--role={role}"))
        .arg(format!("--iters={count}"))
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut fields = text.split_whitespace().map(|f| f.parse::<f64>());
    match (fields.next(), fields.next()) {
        (Some(Ok(heap)), Some(Ok(resident))) => Ok(PerSocket { heap, resident }),
        _ => Err(format!("unexpected output {text:?}")),
    }
}

fn idle_sockets(kind: Idle, count: usize) -> PerSocket {
    let now = Instant::now();
    let mut core = Core::new(Config::default());
    // The server is made before the measurement starts: it is not per socket.
    let server = (kind == Idle::TcpAccepted).then(|| {
        let options = ServerOptions::default().local_address(Some([127, 0, 0, 1].into()));
        let server = core
            .server_listen(now, options)
            .unwrap_or_else(|e| fail("server_listen", &e));
        expect(&mut core, "Listen", |o| {
            matches!(o, Output::Action(Action::Listen { .. }))
        });
        let local = SocketAddr::from(PEER);
        core.handle_input(now, Input::Listening { id: server, local })
            .unwrap_or_else(|e| fail("Listening", &e));
        expect(&mut core, "Open", |o| {
            matches!(o, Output::Event(Event::Open { .. }))
        });
        expect(&mut core, "SetReading", |o| {
            matches!(o, Output::Action(Action::SetReading { .. }))
        });
        idle(&mut core);
        server
    });
    let (before, rss_before) = (Counts::now(), common::rss_kib());
    for i in 0..count {
        // Distinct ports, as real sockets have (the core does not care).
        let port = 10_000 + (i % 50_000) as u16;
        match kind {
            Idle::TcpClient => _ = open_tcp(&mut core, now, BinaryType::String, port),
            Idle::Udp => _ = open_udp(&mut core, now, port),
            Idle::TcpAccepted => {
                let server = server.unwrap_or_else(|| fail("no server", &kind));
                let remote = SocketAddr::from(([127, 0, 0, 2], port));
                match core.handle_accepted(now, server, SocketAddr::from(PEER), remote) {
                    Ok(Accepted::Socket(_)) => {}
                    other => fail("handle_accepted", &other),
                }
                expect(&mut core, "Connect", |o| {
                    matches!(o, Output::Event(Event::Connect { .. }))
                });
                expect(&mut core, "SetReading", |o| {
                    matches!(o, Output::Action(Action::SetReading { enabled: true, .. }))
                });
                idle(&mut core);
            }
        }
    }
    let (after, rss_after) = (Counts::now(), common::rss_kib());
    let live = match kind {
        Idle::TcpClient | Idle::TcpAccepted => core.tcp_ids().count(),
        Idle::Udp => core.udp_ids().count(),
    };
    if live != count {
        fail("sockets alive", &live);
    }
    std::hint::black_box(&core);
    PerSocket {
        heap: (after.live - before.live) as f64 / count as f64,
        resident: (rss_after.saturating_sub(rss_before) * 1024) as f64 / count as f64,
    }
}

// ---- the program ---------------------------------------------------------------------------

fn main() {
    let args = Args::parse();
    let flag = |name: &str| {
        args.rest
            .iter()
            .find_map(|a| a.strip_prefix(name)?.strip_prefix('='))
    };
    if let Some(role) = flag("--role") {
        let iters = flag("--iters").and_then(|n| n.parse().ok()).unwrap_or(0);
        child(role, iters);
    }
    let deadline = Deadline::new("core benchmark", Duration::from_secs(80));
    let mut report = Report::new("The core alone: cycles and memory");

    // Memory: each kind in a fresh process.
    let count = args.size(10_000, 1_000);
    for (kind, role, name) in IDLE {
        let metric = format!("{name}: heap bytes per socket at {count}");
        if !args.wants(&metric) {
            continue;
        }
        let per = idle_in_child(role, count).unwrap_or_else(|e| fail(role, &e));
        if kind == Idle::TcpClient {
            report.ratio(
                &metric,
                "core",
                per.heap,
                ("budget 256 B", 256.0),
                Target::AtMost(1.0),
            );
        } else {
            report.value(&metric, "core", per.heap);
        }
        report.value(
            &format!("{name}: resident bytes per socket at {count}"),
            "core",
            per.resident,
        );
        deadline.check();
    }
    report.value(
        "size_of::<TcpSocket>()",
        "core",
        std::mem::size_of::<TcpSocket>() as f64,
    );
    report.value(
        "size_of::<UdpSocket>()",
        "core",
        std::mem::size_of::<UdpSocket>() as f64,
    );

    // Cycles: ns (runs of calibrated length, interleaved), bytes allocated, instructions.
    let cycles: Vec<Cycle> = CYCLES
        .into_iter()
        .filter(|c| args.wants(&c.name()))
        .collect();
    let mut benches: Vec<Bench> = cycles.iter().map(|&c| Bench::new(c)).collect();
    let target = args.size(Duration::from_millis(60), Duration::from_millis(5));
    let iters: Vec<u64> = benches
        .iter_mut()
        .map(|b| {
            let probe = b.time(200).as_secs_f64() / 200.0;
            ((target.as_secs_f64() / probe.max(1e-9)) as u64).clamp(200, 5_000_000)
        })
        .collect();
    let indices: Vec<usize> = (0..benches.len()).collect();
    let samples = interleaved(args.runs, &indices, |i, _| {
        deadline.check();
        benches[i].time(iters[i]).as_secs_f64() * 1e9 / iters[i] as f64
    });
    let valgrind = have_valgrind();
    let mut notes = Vec::new();
    for (i, bench) in benches.iter_mut().enumerate() {
        let name = bench.cycle.name();
        report.value(&format!("{name}: ns"), "core", median(&samples[i]));
        let n = 10_000;
        let before = Counts::now();
        for _ in 0..n {
            bench.run();
        }
        let after = Counts::now();
        report.value(
            &format!("{name}: bytes allocated"),
            "core",
            (after.bytes - before.bytes) as f64 / n as f64,
        );
        report.value(
            &format!("{name}: allocations"),
            "core",
            (after.allocs - before.allocs) as f64 / n as f64,
        );
        // Callgrind is slow (~50×) and exact: one run of each, and in smoke mode only the
        // first, to check the mechanism.
        if valgrind && (!args.smoke || i == 0) {
            match instructions(bench.cycle, args.size(2_000, 20)) {
                Ok(ir) => report.value(&format!("{name}: instructions"), "core", ir),
                Err(why) => {
                    if args.smoke {
                        fail("callgrind", &why);
                    }
                    notes.push(format!("{name}: no instruction count ({why})"));
                }
            }
            deadline.check();
        }
    }
    if !valgrind {
        notes.push("valgrind is not installed: no instruction counts".to_owned());
    }
    report.note(
        "Method: one `Core`, one open socket, inputs fed by hand as the driver feeds them, one \
         `Instant` as now (the driver's clock reads and syscalls are not in these figures). \
         Payloads are `Bytes` clones of one buffer. `ns`: median over runs of many cycles; \
         `instructions`: callgrind totals of N cycles minus those of 0 cycles, over N (one \
         warm-up cycle in both); `bytes allocated` / `allocations`: per cycle, from a \
         counting global allocator, after warm-up.",
    );
    report.note(
        "Idle sockets: the allocator's live bytes after opening N sockets to `Open` (nothing \
         sent or received) minus before, over N, each kind in a fresh process: the socket \
         tables' growth counts (they grow by 64 slots or 1/32 of a table at a time). \
         `resident` is RSS growth over N. An accepted socket also has an entry in the core's \
         map of accepted sockets to their server. The 256 B budget is issue 7's target for an \
         idle plaintext TCP socket.",
    );
    report.note(
        "Copies of payload: none in the core on the send path and on the receive path with \
         `binaryType` `arraybuffer` (0 bytes allocated per cycle: the `Bytes` handed in is the \
         `Bytes` handed out). `string` allocates the `String` and copies the bytes into it \
         once (UTF-8 validated) unless the `Bytes` is the sole owner of its whole buffer, \
         which the driver's reads are not (they are split from one 64 KiB read buffer): one \
         copy. The driver adds one on the UDP receive path (each datagram is copied out of \
         its 64 KiB read slot into a buffer of its own size) and none on TCP.",
    );
    for note in notes {
        report.note(note);
    }
    report.print(&args);
}
