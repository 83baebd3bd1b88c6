//! What every benchmark program shares: arguments, repetitions, statistics, memory readings and
//! the table they print. Each program measures a workload against its baselines in one run, on
//! loopback, and prints medians and ratios (never asserts a speed: machines are shared and
//! noisy). `--smoke` runs every workload once, small, as a correctness check for CI.
#![allow(dead_code)] // each bench program uses a part

use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// How this run was asked for: `cargo bench -p sockstate-driver (--benches | --bench NAME) -- [--smoke]
/// [--runs N] [FILTER]`.
#[derive(Clone, Debug)]
pub struct Args {
    /// Small sizes, one run each: checks that every workload completes and is correct.
    pub smoke: bool,
    /// Repetitions per implementation (medians are taken over them; default 5, smoke 1).
    pub runs: usize,
    /// Only workloads whose name contains this.
    pub filter: Option<String>,
    /// Everything else (programs that re-execute themselves as a helper process read this).
    pub rest: Vec<String>,
}

impl Args {
    /// Parses the process arguments (ignoring the `--bench` flag cargo passes).
    pub fn parse() -> Args {
        let mut args = Args {
            smoke: false,
            runs: 5,
            filter: None,
            rest: Vec::new(),
        };
        let mut runs = None;
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--bench" => {}
                "--smoke" => args.smoke = true,
                "--runs" => runs = it.next().and_then(|n| n.parse().ok()),
                s if s.starts_with("--") => args.rest.push(arg),
                _ if args.filter.is_none() && args.rest.is_empty() => args.filter = Some(arg),
                _ => args.rest.push(arg),
            }
        }
        args.runs = runs.unwrap_or(if args.smoke { 1 } else { 5 }).max(1);
        args
    }

    /// Whether the workload `name` is selected.
    pub fn wants(&self, name: &str) -> bool {
        self.filter.as_deref().is_none_or(|f| name.contains(f))
    }

    /// `full` normally, `smoke` in smoke mode.
    pub fn size<T>(&self, full: T, smoke: T) -> T {
        if self.smoke {
            smoke
        } else {
            full
        }
    }
}

/// The median of some samples (the mean of the middle two for an even count).
pub fn median(samples: &[f64]) -> f64 {
    percentile(samples, 50.0)
}

/// The `p`-th percentile (0..=100) by linear interpolation between closest ranks.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (p / 100.0).clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

/// Runs `f` once per repetition for every implementation, interleaved (A B C, A B C, ...) so
/// that a noisy moment spreads over all of them, and returns each one's samples in order.
pub fn interleaved<K: Copy, S>(
    runs: usize,
    impls: &[K],
    mut f: impl FnMut(K, usize) -> S,
) -> Vec<Vec<S>> {
    let mut samples: Vec<Vec<S>> = impls.iter().map(|_| Vec::with_capacity(runs)).collect();
    for run in 0..runs {
        for (i, &k) in impls.iter().enumerate() {
            samples[i].push(f(k, run));
        }
    }
    samples
}

/// Fails the program (non-zero exit, never a hang) when a bounded workload overstays.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    what: &'static str,
    at: Instant,
}

impl Deadline {
    /// A deadline `limit` from now for the work called `what`.
    pub fn new(what: &'static str, limit: Duration) -> Deadline {
        Deadline {
            what,
            at: Instant::now() + limit,
        }
    }

    /// Exits the process with a message if the deadline has passed.
    pub fn check(&self) {
        if Instant::now() > self.at {
            eprintln!("benchmark {:?} overran its time limit", self.what);
            std::process::exit(3);
        }
    }

    /// Time left (zero once passed).
    pub fn left(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }
}

/// Reads a `Vm*` line of `/proc/<pid>/status` in KiB (`pid` `None`: this process).
pub fn vm_kib(pid: Option<u32>, field: &str) -> Option<u64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Resident memory now, KiB.
pub fn rss_kib() -> u64 {
    vm_kib(None, "VmRSS").unwrap_or(0)
}

/// Peak resident memory since start (or the last [`reset_peak_rss`]), KiB.
pub fn peak_rss_kib() -> u64 {
    vm_kib(None, "VmHWM").unwrap_or(0)
}

/// Resets the peak-RSS mark to the current RSS (Linux `clear_refs` 5).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The machine, for the report's header.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
        .unwrap_or("unknown CPU")
        .trim()
        .to_owned();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{model}, {cpus} CPUs, Linux {}", kernel.trim())
}

/// What a row's ratio is held against: `value / baseline >= min` (higher is better) or
/// `value / baseline <= max` (lower is better).
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// No target: the row is context.
    None,
    /// Ratio at least this (throughput-like metrics).
    AtLeast(f64),
    /// Ratio at most this (time- or memory-like metrics).
    AtMost(f64),
}

/// One line of the report.
#[derive(Clone, Debug)]
pub struct Row {
    /// Workload and metric, e.g. `bulk upload GB/s`.
    pub metric: String,
    /// The implementation measured.
    pub imp: String,
    /// The median.
    pub value: f64,
    /// The baseline it is compared with (its name and median), if any.
    pub baseline: Option<(String, f64)>,
    /// What the ratio should reach.
    pub target: Target,
}

/// The table a program prints at the end.
#[derive(Debug, Default)]
pub struct Report {
    title: String,
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Report {
    /// An empty report headed `title`.
    pub fn new(title: &str) -> Report {
        Report {
            title: title.to_owned(),
            ..Default::default()
        }
    }

    /// A row without a baseline.
    pub fn value(&mut self, metric: &str, imp: &str, value: f64) {
        self.rows.push(Row {
            metric: metric.to_owned(),
            imp: imp.to_owned(),
            value,
            baseline: None,
            target: Target::None,
        });
    }

    /// A row compared with `baseline` (name, median) against `target`.
    pub fn ratio(
        &mut self,
        metric: &str,
        imp: &str,
        value: f64,
        baseline: (&str, f64),
        target: Target,
    ) {
        self.rows.push(Row {
            metric: metric.to_owned(),
            imp: imp.to_owned(),
            value,
            baseline: Some((baseline.0.to_owned(), baseline.1)),
            target,
        });
    }

    /// A free-text line printed under the table (what bounds the workload, who saturated).
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Rows whose ratio misses its target.
    pub fn misses(&self) -> usize {
        self.rows.iter().filter(|r| verdict(r) == "MISS").count()
    }

    /// The table as Markdown (smoke runs say so: their figures mean nothing).
    pub fn render(&self, args: &Args) -> String {
        let mut out = String::new();
        let mode = if args.smoke {
            "smoke run: correctness only, figures are not measurements".to_owned()
        } else {
            format!("median of {} runs", args.runs)
        };
        let _ = writeln!(out, "\n### {} ({mode})\n", self.title);
        let _ = writeln!(out, "machine: {}\n", machine());
        let _ = writeln!(
            out,
            "| metric | implementation | median | vs | ratio | target | |"
        );
        let _ = writeln!(out, "|---|---|--:|---|--:|---|---|");
        for r in &self.rows {
            let (vs, ratio) = match &r.baseline {
                Some((name, b)) => (name.clone(), format!("{:.3}", r.value / b)),
                None => (String::new(), String::new()),
            };
            let target = match r.target {
                Target::None => String::new(),
                Target::AtLeast(t) => format!("≥ {t}"),
                Target::AtMost(t) => format!("≤ {t}"),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {vs} | {ratio} | {target} | {} |",
                r.metric,
                r.imp,
                fmt_value(r.value),
                if args.smoke { "" } else { verdict(r) },
            );
        }
        for note in &self.notes {
            let _ = writeln!(out, "\n{note}");
        }
        out
    }

    /// Prints the table to stdout.
    pub fn print(&self, args: &Args) {
        print!("{}", self.render(args));
    }
}

fn verdict(r: &Row) -> &'static str {
    let Some((_, b)) = &r.baseline else {
        return "";
    };
    let ratio = r.value / b;
    match r.target {
        Target::None => "",
        Target::AtLeast(t) if ratio >= t => "ok",
        Target::AtMost(t) if ratio <= t => "ok",
        _ => "MISS",
    }
}

fn fmt_value(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.3e}", v)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}
