//! Bursts of datagrams (issue 19): the driver with batching (the default: a turn's datagrams
//! leave in one `SendDatagrams` as GSO runs or one `sendmmsg`, reads take GRO messages with
//! `recvmmsg` as one `Datagrams` input each) against raw per-datagram `send_to`/`recv_from`,
//! and against a hand-written GSO + GRO loop with no library in it: the ceiling of batched
//! datagrams on this machine.
//!
//! The sender makes bursts of [`BURST`](super::BURST) (64) datagrams back to back:
//! - `driver, batched`: one `send_all` of the 64, then one turn of the loop without waiting
//!   (a `Drain` wait instead when it said false), so that each burst is one turn's sends; its
//!   receiver takes what each turn brings with `next_events`;
//! - `driver, batched, a call each`: the same with 64 `send_to`s and one `next_event` per
//!   message (what the app pays per call);
//! - `driver, 1 in flight`: the latter on `Config::max_datagrams_in_flight` = 1, where each
//!   datagram goes out alone (what the driver did before batching);
//! - `hand-written GSO+GRO`: one `sendmsg` with a `UDP_SEGMENT` control message per burst
//!   (64 segments, or as many as fit one 65 507-byte UDP payload: 54 of 1 200 B);
//! - `raw std::net`: one blocking `send_to` per datagram.
//!
//! The receivers: the driver's own (`UDP_GRO` + `recvmmsg`), the hand-written one (`UDP_GRO`
//! on, `recvmmsg` of up to 8 messages of 64 KiB, each cut at the segment size the kernel
//! reports), raw's blocking `recv_from`. Every datagram is counted and checked.
//!
//! Pacing: on loopback no sender is paced by its receiver (a datagram's send buffer is freed
//! as it is queued at the receiver), so a sender faster than its receiver overflows the
//! receiver's buffer and loses datagrams: the figure is what the receiver got over its own
//! first-to-last interval, unaffected by that loss, and the loss is reported per row. The
//! driver's sender is paced by its own `bufferedAmount` (`Drain`), the others not at all. The
//! ceiling's receiver has a 64 MiB `SO_RCVBUF` (forced, as root, else the `rmem_max` cap) so
//! that it loses nothing; the driver's receivers ask the largest `receiveBufferSize` (which
//! the kernel caps at `rmem_max`), raw's keeps the kernel's default.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sockstate_driver::{Config, Event};

use super::common::{Args, Deadline, Report, Target};
use super::driven::{open_driver, open_driver_with, receive_driver, wait_for};
use super::raw::{receive_raw, send_raw};
use super::{fail, pair, pool, Received, Runs, Sample, Sched, Sent, BURST, IDLE, POOL};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Imp {
    Driver,
    DriverCalls,
    DriverOne,
    Ceiling,
    Raw,
}

impl Imp {
    const ALL: [Imp; 5] = [
        Imp::Driver,
        Imp::DriverCalls,
        Imp::DriverOne,
        Imp::Ceiling,
        Imp::Raw,
    ];

    fn name(self) -> &'static str {
        match self {
            Imp::Driver => "driver, batched",
            Imp::DriverCalls => "driver, batched, a call each",
            Imp::DriverOne => "driver, 1 in flight",
            Imp::Ceiling => "hand-written GSO+GRO",
            Imp::Raw => "raw std::net",
        }
    }

    fn thread(self) -> &'static str {
        match self {
            Imp::Driver => "batched",
            Imp::DriverCalls => "calls",
            Imp::DriverOne => "one",
            Imp::Ceiling => "gso",
            Imp::Raw => "raw",
        }
    }
}

/// The driver's configuration: batching on (the default) or off.
pub(super) fn config(batched: bool) -> Config {
    let mut config = Config::default();
    if !batched {
        config.core.max_datagrams_in_flight = 1;
    }
    config
}

/// The driver receivers' `receiveBufferSize`: the most the API takes; the kernel caps it at
/// `net.core.rmem_max` (4 MiB here), then doubles it.
const DRIVER_RCVBUF: u32 = sockstate_driver::sockstate::MAX_BUFFER_SIZE;

/// The ceiling receiver's `SO_RCVBUF` (the kernel doubles it for its bookkeeping).
const CEILING_RCVBUF: libc::c_int = 64 << 20;

fn run(imp: Imp, size: usize, count: u64, budget: Duration, smoke: bool) -> Sample {
    let pool = pool(size);
    pair(
        imp.name(),
        imp.thread(),
        smoke,
        move |addr, done, deadline| match imp {
            Imp::Driver => receive_driver_events(size, addr, done, deadline),
            Imp::DriverCalls | Imp::DriverOne => {
                let rcvbuf = Some(DRIVER_RCVBUF);
                receive_driver(
                    config(imp == Imp::DriverCalls),
                    rcvbuf,
                    size,
                    addr,
                    done,
                    deadline,
                )
            }
            Imp::Ceiling => receive_gro(size, addr, done, deadline),
            Imp::Raw => receive_raw(size, addr, done, false, deadline),
        },
        move |to, deadline| match imp {
            Imp::Driver | Imp::DriverCalls | Imp::DriverOne => {
                send_driver_bursts(imp, &pool, to, count, budget, deadline)
            }
            Imp::Ceiling => send_gso(&pool, to, count, budget),
            Imp::Raw => send_raw(&pool, to, count, budget, false, deadline),
        },
    )
}

/// The driver as an app that makes a burst per turn: [`BURST`] datagrams (one `send_all`, or
/// a `send_to` each), then a turn of the loop without waiting (or, when the last send said
/// false, until `Drain`).
fn send_driver_bursts(
    imp: Imp,
    pool: &[Bytes],
    to: SocketAddr,
    count: u64,
    budget: Duration,
    deadline: Deadline,
) -> Sent {
    let (mut driver, id) = open_driver(config(imp != Imp::DriverOne), deadline);
    let (start, sched) = (Instant::now(), Sched::now());
    let mut sent = 0;
    while sent < count && start.elapsed() <= budget {
        let mut below = true;
        let n = BURST.min((count - sent) as usize);
        let at = sent as usize % POOL;
        if imp == Imp::Driver && at + n <= POOL {
            below = driver
                .send_all(id, pool[at..at + n].iter().cloned(), Some(to))
                .unwrap_or_else(|e| fail(&format!("driver send_all: {e}")));
            sent += n as u64;
        } else {
            for _ in 0..n {
                below = driver
                    .send_to(id, pool[sent as usize % POOL].clone(), Some(to))
                    .unwrap_or_else(|e| fail(&format!("driver send_to: {e}")));
                sent += 1;
            }
        }
        if !below {
            wait_for(&mut driver, deadline, |e| matches!(e, Event::Drain { .. }));
            continue;
        }
        while let Some(event) = driver.next_event(Some(Duration::ZERO)) {
            if let Event::Error { error, .. } = event {
                fail(&format!("driver: {error}"));
            }
        }
        deadline.check();
    }
    driver.close(id).unwrap_or_else(|e| fail(&e.to_string()));
    wait_for(&mut driver, deadline, |e| matches!(e, Event::Close { .. }));
    let elapsed = start.elapsed();
    Sent {
        count: sent,
        elapsed,
        busy: Sched::since(sched, elapsed),
    }
}

/// The driver's receiver taking every event a turn brings at once (`next_events`).
fn receive_driver_events(
    size: usize,
    addr: &mpsc::Sender<SocketAddr>,
    done: &AtomicBool,
    deadline: Deadline,
) -> Received {
    let (mut driver, id) = open_driver_with(config(true), Some(DRIVER_RCVBUF), deadline);
    let local = driver.udp(id).and_then(|s| s.local_address());
    let _ = addr.send(local.unwrap_or_else(|| fail("no local address")));
    let mut got = Received::default();
    let mut quiet_since = Instant::now();
    let mut events = Vec::with_capacity(256);
    loop {
        if driver.next_events(Some(Duration::from_millis(20)), &mut events) > 0 {
            for event in events.drain(..) {
                match event {
                    Event::Message { data, .. } => got.take(&data, size),
                    Event::Error { error, .. } => fail(&format!("driver: {error}")),
                    _ => {}
                }
            }
            quiet_since = Instant::now();
            continue;
        }
        if !done.load(Ordering::Acquire) {
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= IDLE {
            return got.finish();
        }
        deadline.check();
    }
}

/// Segments of `size` bytes one GSO send carries: 64 (the kernel's most), or fewer when they
/// would not fit one UDP payload of 65 507 bytes.
fn segments(size: usize) -> usize {
    BURST.min(65_507 / size)
}

/// `setsockopt(level, option, value)`, failing the program if refused.
fn set_option(socket: &UdpSocket, level: libc::c_int, option: libc::c_int, value: libc::c_int) {
    // SAFETY: a valid descriptor, and an option value of the size given that outlives the call.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        fail(&format!(
            "setsockopt({level}, {option}): {}",
            std::io::Error::last_os_error()
        ));
    }
}

/// The ceiling's sender: a blocking socket, one `sendmsg` per burst of [`segments`] datagrams
/// (iovecs over the pool, a `UDP_SEGMENT` control message of the datagram size): the kernel
/// cuts the burst into its datagrams.
fn send_gso(pool: &[Bytes], to: SocketAddr, count: u64, budget: Duration) -> Sent {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| fail(&e.to_string()));
    let size = pool[0].len();
    let per_send = segments(size);
    let to = socket2::SockAddr::from(to);
    let (start, sched) = (Instant::now(), Sched::now());
    let mut sent = 0;
    let mut iovecs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; BURST];
    // Room for one control message of one `u16`, aligned for `cmsghdr`.
    let mut control = [0u64; 4];
    while sent < count && start.elapsed() <= budget {
        let n = per_send.min((count - sent) as usize);
        for (k, iov) in iovecs.iter_mut().take(n).enumerate() {
            let data = &pool[(sent as usize + k) % POOL];
            iov.iov_base = data.as_ptr() as *mut libc::c_void;
            iov.iov_len = data.len();
        }
        // SAFETY: all-zero is a valid `msghdr` (null pointers, zero lengths).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = to.as_ptr() as *mut libc::c_void;
        msg.msg_namelen = to.len();
        msg.msg_iov = iovecs.as_mut_ptr();
        msg.msg_iovlen = n as _;
        msg.msg_control = control.as_mut_ptr().cast();
        // SAFETY: `CMSG_SPACE` only computes a length.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(2) } as _;
        // SAFETY: `control` (32 bytes) holds one header and a `u16` (`CMSG_SPACE(2)` is 24
        // here); `CMSG_FIRSTHDR` is non-null for that length, and the data is written
        // unaligned.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_UDP;
            (*cmsg).cmsg_type = libc::UDP_SEGMENT;
            (*cmsg).cmsg_len = libc::CMSG_LEN(2) as _;
            libc::CMSG_DATA(cmsg)
                .cast::<u16>()
                .write_unaligned(size as u16);
        }
        // SAFETY: `msg` points at the live address `to`, `n` iovecs over the pool's
        // datagrams (only read) and the control message above, all outliving the call.
        let r = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, 0) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            fail(&format!("GSO sendmsg: {e}"));
        }
        sent += n as u64;
    }
    let elapsed = start.elapsed();
    Sent {
        count: sent,
        elapsed,
        busy: Sched::since(sched, elapsed),
    }
}

/// Messages one `recvmmsg` of the ceiling's receiver takes at most (as the driver's).
const MESSAGES: usize = 8;

/// The ceiling's receiver: `UDP_GRO` on and a large `SO_RCVBUF`, blocking `recvmmsg`s
/// (`MSG_WAITFORONE`: what is queued once one is there, 20 ms timeout) of up to [`MESSAGES`]
/// messages of 64 KiB, each cut at the segment size of its `UDP_GRO` control message.
fn receive_gro(
    size: usize,
    addr: &mpsc::Sender<SocketAddr>,
    done: &AtomicBool,
    deadline: Deadline,
) -> Received {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| fail(&e.to_string()));
    set_option(&socket, libc::SOL_UDP, libc::UDP_GRO, 1);
    // Forced past `rmem_max` where allowed (root), else as much as `rmem_max` gives.
    let forced = {
        // SAFETY: as in `set_option`.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&CEILING_RCVBUF as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            ) == 0
        }
    };
    if !forced {
        set_option(&socket, libc::SOL_SOCKET, libc::SO_RCVBUF, CEILING_RCVBUF);
    }
    let _ = socket.set_read_timeout(Some(Duration::from_millis(20)));
    let _ = addr.send(socket.local_addr().unwrap_or_else(|e| fail(&e.to_string())));
    let mut bufs = vec![[0u8; 65_536]; MESSAGES];
    let mut controls = [[0u64; 4]; MESSAGES];
    let mut got = Received::default();
    let mut quiet_since = Instant::now();
    loop {
        let mut iovecs: [libc::iovec; MESSAGES] = std::array::from_fn(|_| libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        });
        // SAFETY: all-zero is a valid `mmsghdr` (null pointers, zero lengths).
        let mut msgs: [libc::mmsghdr; MESSAGES] = unsafe { std::mem::zeroed() };
        for (((msg, iov), buf), control) in msgs
            .iter_mut()
            .zip(&mut iovecs)
            .zip(&mut bufs)
            .zip(&mut controls)
        {
            iov.iov_base = buf.as_mut_ptr().cast();
            iov.iov_len = buf.len();
            msg.msg_hdr.msg_iov = iov;
            msg.msg_hdr.msg_iovlen = 1;
            msg.msg_hdr.msg_control = control.as_mut_ptr().cast();
            msg.msg_hdr.msg_controllen = std::mem::size_of_val(control) as _;
        }
        // SAFETY: every header points at a live iovec over its own buffer and at its own
        // control buffer, of the lengths given; the kernel writes only within them.
        let r = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                MESSAGES as _,
                libc::MSG_WAITFORONE as _,
                std::ptr::null_mut(),
            )
        };
        if r > 0 {
            for (msg, buf) in msgs.iter().zip(&bufs).take(r as usize) {
                let len = msg.msg_len as usize;
                let segment = gro_segment(&msg.msg_hdr).unwrap_or(len).max(1);
                for datagram in buf[..len].chunks(segment) {
                    got.take(datagram, size);
                }
            }
            quiet_since = Instant::now();
            continue;
        }
        let e = std::io::Error::last_os_error();
        if !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock
                | std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::Interrupted
        ) {
            fail(&format!("recvmmsg: {e}"));
        }
        if !done.load(Ordering::Acquire) {
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= IDLE {
            return got.finish();
        }
        deadline.check();
    }
}

/// The segment size of a message GRO coalesced (its `UDP_GRO` control message).
fn gro_segment(msg: &libc::msghdr) -> Option<usize> {
    let mut segment = None;
    // SAFETY: the kernel set `msg_controllen` to the control messages it wrote into the
    // buffer `msg_control` points at; the CMSG macros walk only within that, and the `int`
    // is read unaligned, as its length says it holds one.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_UDP && (*cmsg).cmsg_type == libc::UDP_GRO {
                let s = libc::CMSG_DATA(cmsg).cast::<libc::c_int>().read_unaligned();
                segment = usize::try_from(s).ok().filter(|&s| s > 0);
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    segment
}

/// The rows of the burst workloads, for 64 B and 1 200 B datagrams.
pub(super) fn measure(args: &Args, report: &mut Report, notes: &mut Vec<String>) {
    let only = args.rest.iter().find_map(|a| a.strip_prefix("--imp="));
    let imps: Vec<Imp> = (Imp::ALL.into_iter())
        .filter(|imp| only.is_none_or(|o| imp.name().starts_with(o)))
        .collect();
    let at = |imp: Imp| imps.iter().position(|&i| i == imp);
    if args.wants("udp burst") {
        report.note(
            "Bursts (`udp burst`): the sender makes bursts of 64 datagrams; the driver one turn \
             of the loop per burst (batched: one `send_all` per burst, GSO runs or `sendmmsg`, \
             `UDP_GRO` + `recvmmsg`, the receiver taking a turn's messages with `next_events`; \
             a call each: 64 `send_to`s and one `next_event` per message; 1 in flight: that, \
             one `sendto` each); the hand-written loop one GSO `sendmsg` per burst \
             (54 segments of 1 200 B) and a `UDP_GRO` + `recvmmsg` receiver with a 64 MiB \
             `SO_RCVBUF`, the driver's the largest `receiveBufferSize` (capped at \
             `rmem_max`); raw one `send_to`/`recv_from` each. No sender is paced by its \
             receiver on loopback (the driver's by its own `Drain` only), so the others lose \
             what overflows their receive buffer: `delivered` is over the receiver's own \
             interval and does not count the loss.",
        );
    }
    for (size, count) in [(64, 2_000_000_u64), (1200, 1_000_000)] {
        let name = format!("udp burst {size} B");
        if !args.wants(&name) {
            continue;
        }
        // Smoke: 50 datagrams, in one burst (they fit the receiver's default buffer).
        let samples = Runs::take(args, &imps, count, Duration::from_secs(1), |imp, n, t| {
            run(imp, size, n, t, args.smoke)
        });
        let pick = |i: usize, f: fn(&Sample) -> f64| samples.pick(i, f);
        let delivered = |s: &Sample| s.delivered_per_s;
        let metric = format!("{name} delivered dgram/s");
        for (baseline, target) in [(Imp::Raw, 3.0), (Imp::Ceiling, 0.8)] {
            for imp in [Imp::Driver, Imp::DriverCalls, Imp::DriverOne] {
                if let (Some(d), Some(b)) = (at(imp), at(baseline)) {
                    let target = if imp == Imp::Driver {
                        Target::AtLeast(target)
                    } else {
                        Target::None
                    };
                    report.ratio(
                        &metric,
                        imp.name(),
                        pick(d, delivered),
                        (baseline.name(), pick(b, delivered)),
                        target,
                    );
                }
            }
        }
        if let (Some(c), Some(r)) = (at(Imp::Ceiling), at(Imp::Raw)) {
            report.ratio(
                &metric,
                Imp::Ceiling.name(),
                pick(c, delivered),
                (Imp::Raw.name(), pick(r, delivered)),
                Target::None,
            );
        }
        // Raw's own figure; without raw (`--imp=`), every one's.
        for (i, imp) in imps.iter().enumerate() {
            if *imp == Imp::Raw || at(Imp::Raw).is_none() {
                report.value(&metric, imp.name(), pick(i, delivered));
            }
        }
        for (what, f) in [
            ("sender dgram/s", (|s| s.sent_per_s) as fn(&Sample) -> f64),
            ("sender CPU ns/dgram", |s| s.send_cpu_ns),
            ("receiver CPU ns/dgram", |s| s.recv_cpu_ns),
            ("loss %", |s| 100.0 * s.loss),
        ] {
            for (i, imp) in imps.iter().enumerate() {
                report.value(&format!("{name} {what}"), imp.name(), pick(i, f));
            }
        }
        for (i, imp) in imps.iter().enumerate() {
            notes.push(samples.busy(&format!("{name} {}", imp.name()), i));
        }
    }
}
