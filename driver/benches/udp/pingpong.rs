//! UDP ping-pong, 64 B, one datagram each way (issue 19): batching must not slow it down. The
//! driver as it is (batching on, the default) against the driver with
//! `Config::max_datagrams_in_flight` = 1 (no batching possible: the driver before it), and
//! against raw blocking `send_to`/`recv_from`, in the same run.
//!
//! A client sends one datagram and waits for its echo before the next, `count` times or for
//! the time budget; the server (the same implementation, its own thread) echoes each datagram
//! to its source. Each echo is checked; a lost one (there should be none on loopback, with one
//! datagram in flight) fails the program after a second.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sockstate_driver::Event;

use super::batched::config;
use super::common::{interleaved, median, percentile, Args, Deadline, Report, Target};
use super::driven::open_driver;
use super::{check, fail, pool, spawn, POOL};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Imp {
    Driver,
    DriverOne,
    Raw,
}

impl Imp {
    const ALL: [Imp; 3] = [Imp::Driver, Imp::DriverOne, Imp::Raw];

    fn name(self) -> &'static str {
        match self {
            Imp::Driver => "driver, batched",
            Imp::DriverOne => "driver, 1 in flight",
            Imp::Raw => "raw std::net",
        }
    }

    fn thread(self) -> &'static str {
        match self {
            Imp::Driver => "pp-batched",
            Imp::DriverOne => "pp-one",
            Imp::Raw => "pp-raw",
        }
    }
}

/// The payload's size.
const SIZE: usize = 64;

/// One run's outcome.
struct Sample {
    per_s: f64,
    p50_us: f64,
    p99_us: f64,
}

fn run(imp: Imp, count: u64, budget: Duration) -> Sample {
    let deadline = Deadline::new("udp ping-pong run", Duration::from_secs(20));
    let done = Arc::new(AtomicBool::new(false));
    let (addr_tx, addr_rx) = mpsc::channel();
    let server = {
        let done = Arc::clone(&done);
        spawn(imp.thread(), "server", move || match imp {
            Imp::Raw => serve_raw(&addr_tx, &done, deadline),
            _ => serve_driver(imp == Imp::Driver, &addr_tx, &done, deadline),
        })
    };
    let Ok(to) = addr_rx.recv_timeout(Duration::from_secs(5)) else {
        fail("the ping-pong server did not start");
    };
    let client = spawn(imp.thread(), "client", move || match imp {
        Imp::Raw => ping_raw(to, count, budget, deadline),
        _ => ping_driver(imp == Imp::Driver, to, count, budget, deadline),
    });
    let rtts = client
        .join()
        .unwrap_or_else(|_| fail("the ping-pong client panicked"));
    done.store(true, Ordering::Release);
    server
        .join()
        .unwrap_or_else(|_| fail("the ping-pong server panicked"));
    let total: f64 = rtts.iter().sum();
    Sample {
        per_s: rtts.len() as f64 / total,
        p50_us: 1e6 * percentile(&rtts, 50.0),
        p99_us: 1e6 * percentile(&rtts, 99.0),
    }
}

/// Checks an echo of ping `i`.
fn check_echo(data: &[u8], i: u64) {
    if check(data, SIZE) != Some((i % POOL as u64) as u32) {
        fail(&format!("ping-pong: echo {i} is wrong"));
    }
}

/// Pings until `count` or `budget`: each round trip's time, in seconds.
fn ping_raw(to: SocketAddr, count: u64, budget: Duration, deadline: Deadline) -> Vec<f64> {
    let pool = pool(SIZE);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| fail(&e.to_string()));
    let _ = socket.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0; 2048];
    let (start, mut rtts) = (Instant::now(), Vec::with_capacity(count as usize));
    for i in 0..count {
        if start.elapsed() > budget {
            break;
        }
        let t = Instant::now();
        socket
            .send_to(&pool[i as usize % POOL], to)
            .unwrap_or_else(|e| fail(&format!("ping send_to: {e}")));
        let (n, _) = socket
            .recv_from(&mut buf)
            .unwrap_or_else(|e| fail(&format!("ping recv_from (echo {i} lost?): {e}")));
        check_echo(&buf[..n], i);
        rtts.push(t.elapsed().as_secs_f64());
        deadline.check();
    }
    rtts
}

fn serve_raw(addr: &mpsc::Sender<SocketAddr>, done: &AtomicBool, deadline: Deadline) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| fail(&e.to_string()));
    let _ = socket.set_read_timeout(Some(Duration::from_millis(20)));
    let _ = addr.send(socket.local_addr().unwrap_or_else(|e| fail(&e.to_string())));
    let mut buf = [0; 2048];
    while !done.load(Ordering::Acquire) {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                socket
                    .send_to(&buf[..n], from)
                    .unwrap_or_else(|e| fail(&format!("echo send_to: {e}")));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => fail(&format!("echo recv_from: {e}")),
        }
        deadline.check();
    }
}

fn ping_driver(
    batched: bool,
    to: SocketAddr,
    count: u64,
    budget: Duration,
    deadline: Deadline,
) -> Vec<f64> {
    let pool: Vec<Bytes> = pool(SIZE);
    let (mut driver, id) = open_driver(config(batched), deadline);
    let (start, mut rtts) = (Instant::now(), Vec::with_capacity(count as usize));
    for i in 0..count {
        if start.elapsed() > budget {
            break;
        }
        let t = Instant::now();
        driver
            .send_to(id, pool[i as usize % POOL].clone(), Some(to))
            .unwrap_or_else(|e| fail(&format!("ping send_to: {e}")));
        loop {
            match driver.next_event(Some(Duration::from_secs(1))) {
                Some(Event::Message { data, .. }) => {
                    check_echo(&data, i);
                    break;
                }
                Some(Event::Error { error, .. }) => fail(&format!("ping: {error}")),
                Some(_) => {}
                None => fail(&format!("ping: echo {i} lost")),
            }
        }
        rtts.push(t.elapsed().as_secs_f64());
        deadline.check();
    }
    rtts
}

fn serve_driver(
    batched: bool,
    addr: &mpsc::Sender<SocketAddr>,
    done: &AtomicBool,
    deadline: Deadline,
) {
    let (mut driver, id) = open_driver(config(batched), deadline);
    let local = driver.udp(id).and_then(|s| s.local_address());
    let _ = addr.send(local.unwrap_or_else(|| fail("no local address")));
    while !done.load(Ordering::Acquire) {
        match driver.next_event(Some(Duration::from_millis(20))) {
            Some(Event::Message { data, remote, .. }) => {
                driver
                    .send_to(id, data, Some(remote))
                    .unwrap_or_else(|e| fail(&format!("echo send_to: {e}")));
            }
            Some(Event::Error { error, .. }) => fail(&format!("echo: {error}")),
            _ => {}
        }
        deadline.check();
    }
}

/// The ping-pong rows.
pub(super) fn measure(args: &Args, report: &mut Report) {
    let name = "udp ping-pong 64 B";
    if !args.wants(name) {
        return;
    }
    let only = args.rest.iter().find_map(|a| a.strip_prefix("--imp="));
    let imps: Vec<Imp> = (Imp::ALL.into_iter())
        .filter(|imp| only.is_none_or(|o| imp.name().starts_with(o)))
        .collect();
    let count = args.size(40_000, 20);
    let budget = args.size(Duration::from_millis(1500), Duration::from_secs(5));
    let samples = interleaved(args.runs, &imps, |imp, _| run(imp, count, budget));
    let pick = |i: usize, f: fn(&Sample) -> f64| -> f64 {
        median(&samples[i].iter().map(f).collect::<Vec<_>>())
    };
    let at = |imp: Imp| imps.iter().position(|&i| i == imp);
    let metric = format!("{name} round trips/s");
    let rate = |s: &Sample| s.per_s;
    for (imp, baseline, target) in [
        (Imp::Driver, Imp::DriverOne, Target::AtLeast(0.97)),
        (Imp::Driver, Imp::Raw, Target::None),
        (Imp::DriverOne, Imp::Raw, Target::None),
    ] {
        if let (Some(d), Some(b)) = (at(imp), at(baseline)) {
            report.ratio(
                &metric,
                imp.name(),
                pick(d, rate),
                (baseline.name(), pick(b, rate)),
                target,
            );
        }
    }
    for (i, imp) in imps.iter().enumerate() {
        if *imp == Imp::Raw || at(Imp::Raw).is_none() {
            report.value(&metric, imp.name(), pick(i, rate));
        }
    }
    for (what, f) in [
        ("p50 µs", (|s| s.p50_us) as fn(&Sample) -> f64),
        ("p99 µs", |s| s.p99_us),
    ] {
        for (i, imp) in imps.iter().enumerate() {
            report.value(&format!("{name} {what}"), imp.name(), pick(i, f));
        }
    }
}
