//! Workload 3 of the benchmarks: 10 000 concurrent connections served on one thread, each
//! echoing 4 messages of 32 bytes (each waiting for its echo), against a hand-written
//! one-shot `polling` loop and tokio's current-thread runtime.
//!
//! `cargo bench -p sockstate-driver --bench conns [-- --smoke | --runs N | driver|polling|tokio]`
//!
//! Every run is three processes: this one, the server (this program again, `--conns-role=server`)
//! and the load client (`--conns-role=client`), because the open-file limit (20 000 here) does
//! not hold both ends of 10 000 connections, and so that the server's memory is its own. Each
//! run gets a fresh source address 127.x.y.z (ports left in `TIME_WAIT` by an earlier run slow
//! `connect` down) and a fresh listening port; the client keeps at most `window` connections
//! between `connect` and their first echo, well under the backlog every server listens with, so
//! no SYN is dropped (the kernel's `ListenOverflows` counter is checked).
//!
//! Measured per run: the client's time (phase 1: open every connection and echo its first
//! message; phase 2: the other messages on every connection at once, then the closes), the
//! server's peak RSS, the server's RSS with every connection open and idle minus its RSS
//! before the first one (per connection: the library's memory, since socket buffers are kernel
//! memory), the kernel's slab growth meanwhile, and both processes' CPU time: whichever used
//! about all of the wall time was the bound.

#[path = "common/mod.rs"]
mod common;

#[path = "conns/client.rs"]
mod client;
#[path = "conns/procs.rs"]
mod procs;
#[path = "conns/servers.rs"]
mod servers;

use std::net::Ipv4Addr;
use std::time::Duration;

use client::Load;
use common::{interleaved, median, vm_kib, Args, Deadline, Report, Target};
use procs::{Kernel, Proc};

/// The listen backlog of all three servers (the kernel caps it at `somaxconn`, 4096 here).
const BACKLOG: u32 = 4096;

/// The share of the wall time a process must have been on a CPU to count as the bound.
const SATURATED: f64 = 0.85;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Imp {
    Driver,
    Polling,
    Tokio,
}

impl Imp {
    const ALL: [Imp; 3] = [Imp::Driver, Imp::Polling, Imp::Tokio];

    fn name(self) -> &'static str {
        match self {
            Imp::Driver => "driver",
            Imp::Polling => "polling",
            Imp::Tokio => "tokio",
        }
    }
}

/// The value of `--name=value` among the extra arguments.
pub fn flag<T: std::str::FromStr>(rest: &[String], name: &str) -> Option<T> {
    rest.iter()
        .find_map(|a| a.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

fn main() {
    let args = Args::parse();
    if let Some(role) = args
        .rest
        .iter()
        .find_map(|a| a.strip_prefix("--conns-role="))
    {
        let outcome = child(role, &args.rest);
        if let Err(e) = outcome {
            eprintln!("conns {role}: {e}");
            std::process::exit(1);
        }
        return;
    }
    let load = Load {
        conns: args.size(10_000, 300),
        msgs: 4,
        size: 32,
        window: args.size(1024, 64),
        limit: args.size(Duration::from_secs(40), Duration::from_secs(10)),
    };
    let imps: Vec<Imp> = Imp::ALL
        .into_iter()
        .filter(|imp| args.wants(&format!("conns {}", imp.name())))
        .collect();
    if imps.is_empty() {
        return;
    }
    let whole = Deadline::new(
        "conns",
        Duration::from_secs(if args.smoke { 20 } else { 120 }),
    );
    let mut sources = Sources::new();
    let samples = interleaved(args.runs, &imps, |imp, run| {
        whole.check();
        let source = sources.next();
        match run_once(imp, load, source) {
            Ok(sample) => {
                eprintln!(
                    "run {run} {:8}: {:.3} s (connect {:.3} + echo {:.3}) from {source}, server \
                     cpu {:.2} s, client cpu {:.2} s, peak {} KiB, {:.0} B/idle conn, kernel \
                     {:.0} B/conn, {} listen drops",
                    imp.name(),
                    sample.total(),
                    sample.phase1,
                    sample.phase2,
                    sample.server_cpu,
                    sample.client_cpu,
                    sample.peak_kib,
                    sample.idle_bytes,
                    sample.kernel_bytes,
                    sample.listen_drops,
                );
                sample
            }
            Err(e) => {
                eprintln!("conns {}: {e}", imp.name());
                std::process::exit(1);
            }
        }
    });
    let report = report(load, &imps, &samples);
    report.print(&args);
}

/// What one run of one server measured.
#[derive(Clone, Copy, Debug)]
struct Sample {
    /// Seconds: every connection opened and its first message echoed.
    phase1: f64,
    /// Seconds: the other messages on every connection at once, and the closes.
    phase2: f64,
    /// CPU seconds (user + system) of the server, and of the client.
    server_cpu: f64,
    client_cpu: f64,
    /// The server's peak RSS, KiB.
    peak_kib: u64,
    /// The server's RSS growth with every connection open and idle, bytes per connection.
    idle_bytes: f64,
    /// The kernel's slab growth meanwhile, bytes per connection (both ends, all processes).
    kernel_bytes: f64,
    /// Socket buffer memory charged to TCP meanwhile (`sockstat` pages), bytes per connection.
    buffer_bytes: f64,
    /// Connections the kernel dropped from a full accept queue (anyone's) during the run.
    listen_drops: u64,
}

impl Sample {
    fn total(&self) -> f64 {
        self.phase1 + self.phase2
    }
}

/// One run: server and client processes, the client's two phases, the readings between.
fn run_once(imp: Imp, load: Load, source: Ipv4Addr) -> Result<Sample, String> {
    let deadline = Deadline::new("conns run", load.limit);
    let mut server_args = vec![
        "--conns-role=server".to_owned(),
        format!("--imp={}", imp.name()),
        format!("--backlog={BACKLOG}"),
    ];
    server_args.extend(load.to_args());
    let server = Proc::spawn("server", &server_args)?;
    let port = match server.expect("ready", &deadline)?[..] {
        [port @ 1..=65535] => port,
        _ => return Err("the server printed no port".into()),
    };
    let kernel_before = Kernel::read();
    let rss_before = vm_kib(Some(server.pid()), "VmRSS").ok_or("no VmRSS")?;

    let mut client_args = vec![
        "--conns-role=client".to_owned(),
        format!("--port={port}"),
        format!("--source={source}"),
    ];
    client_args.extend(load.to_args());
    let mut client = Proc::spawn("client", &client_args)?;
    client.expect("idle", &deadline)?;
    let rss_idle = vm_kib(Some(server.pid()), "VmRSS").ok_or("no VmRSS")?;
    let kernel_idle = Kernel::read();
    client.tell("go")?;
    let done = client.expect("done", &deadline)?;
    let served = server.expect("served", &deadline)?;
    client.finish(&deadline)?;
    server.finish(&deadline)?;
    let kernel_after = Kernel::read();

    let (&[phase1, phase2, c_user, c_sys], &[closed, faults, s_user, s_sys, peak_kib]) =
        (&done[..], &served[..])
    else {
        return Err(format!("bad reports: {done:?} {served:?}"));
    };
    if closed != load.conns as u64 || faults != 0 {
        return Err(format!(
            "the server saw {closed} of {} connections close, {faults} faults",
            load.conns
        ));
    }
    let per_conn = |kib: i64| kib as f64 * 1024.0 / load.conns as f64;
    Ok(Sample {
        phase1: phase1 as f64 / 1e9,
        phase2: phase2 as f64 / 1e9,
        server_cpu: (s_user + s_sys) as f64 / 1e6,
        client_cpu: (c_user + c_sys) as f64 / 1e6,
        peak_kib,
        idle_bytes: per_conn(rss_idle as i64 - rss_before as i64),
        kernel_bytes: per_conn(kernel_idle.slab_kib as i64 - kernel_before.slab_kib as i64),
        buffer_bytes: per_conn(4 * (kernel_idle.tcp_pages as i64 - kernel_before.tcp_pages as i64)),
        listen_drops: kernel_after.listen_drops - kernel_before.listen_drops,
    })
}

/// A child process's part: `--conns-role=server --imp=NAME` or `--conns-role=client`.
fn child(role: &str, rest: &[String]) -> Result<(), String> {
    let load = Load::from_args(rest).ok_or("missing load arguments")?;
    match role {
        "server" => {
            let backlog = flag(rest, "--backlog").ok_or("missing --backlog")?;
            let imp: String = flag(rest, "--imp").ok_or("missing --imp")?;
            match imp.as_str() {
                "driver" => servers::driver(load.conns, backlog, load.limit),
                "polling" => servers::polling(load.conns, backlog, load.limit),
                "tokio" => servers::tokio(load.conns, backlog, load.limit),
                other => Err(format!("unknown server {other}")),
            }
        }
        "client" => {
            let port = flag(rest, "--port").ok_or("missing --port")?;
            let source = flag(rest, "--source").ok_or("missing --source")?;
            client::run(load, port, source)
        }
        other => Err(format!("unknown role {other}")),
    }
}

/// Fresh loopback source addresses, 127.a.b.c, never one an earlier run used (the first two
/// octets come from this process's id and start time, so successive invocations differ too).
struct Sources {
    base: u32,
    next: u32,
}

impl Sources {
    fn new() -> Sources {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() ^ d.as_secs() as u32);
        let mixed = (std::process::id() ^ nanos.rotate_left(7)).wrapping_mul(2_654_435_761);
        // 127.(2..=254).(0..=255).0: leaves 127.0.x.x and 127.1.x.x to the other benchmarks.
        let a = 2 + (mixed >> 24) % 253;
        let b = (mixed >> 8) & 0xff;
        Sources {
            base: (127 << 24) | (a << 16) | (b << 8),
            next: 1,
        }
    }

    fn next(&mut self) -> Ipv4Addr {
        let ip = Ipv4Addr::from(self.base + self.next);
        self.next = self.next % 254 + 1;
        ip
    }
}

/// The table: times, memory and CPU, the driver against tokio (the target) and the polling
/// loop (the floor).
fn report(load: Load, imps: &[Imp], samples: &[Vec<Sample>]) -> Report {
    let mut report = Report::new(&format!(
        "{} connections on one thread, {} echoes of {} B each",
        load.conns, load.msgs, load.size
    ));
    let med =
        |i: usize, f: fn(&Sample) -> f64| median(&samples[i].iter().map(f).collect::<Vec<_>>());
    let find = |imp: Imp| imps.iter().position(|&i| i == imp);
    let tokio = find(Imp::Tokio);
    type Metric = (&'static str, fn(&Sample) -> f64, Target);
    let metrics: [Metric; 6] = [
        ("total time s", Sample::total, Target::AtMost(1.0)),
        ("connect + first echo s", |s| s.phase1, Target::None),
        ("3 echoes + close s", |s| s.phase2, Target::None),
        (
            "server peak RSS MiB",
            |s| s.peak_kib as f64 / 1024.0,
            Target::None,
        ),
        ("server CPU s", |s| s.server_cpu, Target::None),
        ("client CPU s", |s| s.client_cpu, Target::None),
    ];
    for (name, f, target) in metrics {
        for (i, imp) in imps.iter().enumerate() {
            let value = med(i, f);
            match (tokio, *imp) {
                (Some(t), Imp::Driver | Imp::Polling) => {
                    let target = if *imp == Imp::Driver {
                        target
                    } else {
                        Target::None
                    };
                    report.ratio(name, imp.name(), value, ("tokio", med(t, f)), target)
                }
                _ => report.value(name, imp.name(), value),
            }
        }
    }
    for (i, imp) in imps.iter().enumerate() {
        let value = med(i, |s| s.idle_bytes);
        if *imp == Imp::Driver {
            report.ratio(
                "library B per idle conn",
                imp.name(),
                value,
                ("1 KiB budget", 1024.0),
                Target::AtMost(1.0),
            );
        } else {
            report.value("library B per idle conn", imp.name(), value);
        }
    }
    let all = |f: fn(&Sample) -> f64| median(&samples.iter().flatten().map(f).collect::<Vec<_>>());
    report.note(format!(
        "Kernel memory (not in any RSS), median over every run with all connections open and \
         idle: slab grew {:.0} B per connection (both ends of each connection, their files and \
         epoll entries), TCP socket buffers {:.0} B per connection; the machine is shared, so \
         indicative.",
        all(|s| s.kernel_bytes),
        all(|s| s.buffer_bytes),
    ));
    let drops: u64 = samples.iter().flatten().map(|s| s.listen_drops).sum();
    report.note(format!(
        "Accept-queue drops during the runs (kernel ListenOverflows + ListenDrops, anyone's): \
         {drops}. Backlog {BACKLOG} everywhere; the client keeps at most {} connects \
         outstanding.",
        load.window
    ));
    let mut bound = Vec::new();
    for (i, imp) in imps.iter().enumerate() {
        let wall = med(i, Sample::total);
        let (server, client) = (
            med(i, |s| s.server_cpu) / wall,
            med(i, |s| s.client_cpu) / wall,
        );
        // A process that kept its CPU busy most of the run was the bound; when neither did,
        // the two waited on each other or on other work of the (shared) machine.
        let who = match (server >= SATURATED, client >= SATURATED) {
            (true, true) => "both",
            (true, false) => "the server",
            (false, true) => "the client",
            (false, false) => "neither saturated a CPU",
        };
        bound.push(format!(
            "{}: server CPU {:.0}% of the wall time, client {:.0}%: {who}",
            imp.name(),
            100.0 * server,
            100.0 * client,
        ));
    }
    report.note(format!("Who was the bound: {}.", bound.join("; ")));
    report
}
