//! The driver's side of the workloads: opening its sockets, sending, waiting for and receiving
//! datagrams, draining.

use super::*;

/// A driver with one UDP socket on 127.0.0.1, open.
pub(super) fn open_driver(config: Config, deadline: Deadline) -> (Driver, sockstate_driver::UdpId) {
    open_driver_with(config, None, deadline)
}

/// [`open_driver`] with `receiveBufferSize` set.
pub(super) fn open_driver_with(
    config: Config,
    receive_buffer: Option<u32>,
    deadline: Deadline,
) -> (Driver, sockstate_driver::UdpId) {
    let mut driver = Driver::new(config).unwrap_or_else(|e| fail(&e.to_string()));
    let options = UdpOptions::default()
        .local_address(Some([127, 0, 0, 1].into()))
        .receive_buffer_size(receive_buffer);
    let id = driver
        .udp_open(options)
        .unwrap_or_else(|e| fail(&e.to_string()));
    loop {
        match driver.next_event(Some(deadline.left())) {
            Some(Event::Open { .. }) => return (driver, id),
            Some(Event::Error { error, .. }) => fail(&format!("udp_open: {error}")),
            Some(_) => {}
            None => fail("udp_open: no Open"),
        }
    }
}

/// Sends while `send_to` says true; on false, waits for `Drain` (as a careful user does).
pub(super) fn send_driver(
    config: Config,
    pool: &[Bytes],
    to: SocketAddr,
    count: u64,
    budget: Duration,
    deadline: Deadline,
) -> Sent {
    let (mut driver, id) = open_driver(config, deadline);
    let (start, sched) = (Instant::now(), Sched::now());
    let mut sent = 0;
    while sent < count {
        if sent % 1024 == 0 && start.elapsed() > budget {
            break;
        }
        let below = driver
            .send_to(id, pool[sent as usize % POOL].clone(), Some(to))
            .unwrap_or_else(|e| fail(&format!("driver send_to: {e}")));
        sent += 1;
        if !below {
            wait_for(&mut driver, deadline, |e| matches!(e, Event::Drain { .. }));
        }
    }
    // What is still queued goes out before `Close`.
    driver.close(id).unwrap_or_else(|e| fail(&e.to_string()));
    wait_for(&mut driver, deadline, |e| matches!(e, Event::Close { .. }));
    let elapsed = start.elapsed();
    Sent {
        count: sent,
        elapsed,
        busy: Sched::since(sched, elapsed),
    }
}

/// Runs the loop until an event `want` says is the one; any `Error` fails the program.
pub(super) fn wait_for(driver: &mut Driver, deadline: Deadline, want: impl Fn(&Event) -> bool) {
    loop {
        match driver.next_event(Some(deadline.left())) {
            Some(Event::Error { error, .. }) => fail(&format!("driver: {error}")),
            Some(e) if want(&e) => return,
            Some(_) => {}
            None => {
                deadline.check();
                fail("driver: the loop returned no event");
            }
        }
    }
}

pub(super) fn receive_driver(
    config: Config,
    receive_buffer: Option<u32>,
    size: usize,
    addr: &mpsc::Sender<SocketAddr>,
    done: &AtomicBool,
    deadline: Deadline,
) -> Received {
    let (mut driver, id) = open_driver_with(config, receive_buffer, deadline);
    let local = driver.udp(id).and_then(|s| s.local_address());
    let _ = addr.send(local.unwrap_or_else(|| fail("no local address")));
    let mut got = Received::default();
    let mut quiet_since = Instant::now();
    loop {
        match driver.next_event(Some(Duration::from_millis(20))) {
            Some(Event::Message { data, .. }) => {
                got.take(&data, size);
                quiet_since = Instant::now();
            }
            Some(Event::Error { error, .. }) => fail(&format!("driver: {error}")),
            Some(_) => {}
            None => {
                if !done.load(Ordering::Acquire) {
                    quiet_since = Instant::now();
                } else if quiet_since.elapsed() >= IDLE {
                    return got.finish();
                }
                deadline.check();
            }
        }
    }
}

/// The driver: the socket is suspended while `BURST` datagrams are queued, then resumed and
/// its messages taken; returns the CPU time from `resume` to the last message.
pub(super) fn drain_driver(
    imp: Imp,
    pool: &[Bytes],
    bursts: usize,
    deadline: Deadline,
) -> (Duration, Received) {
    let size = pool[0].len();
    let (mut driver, id) = open_driver(imp.config(), deadline);
    let to = driver.udp(id).and_then(|s| s.local_address());
    let to = to.unwrap_or_else(|| fail("no local address"));
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| fail(&e.to_string()));
    let (mut cpu, mut got) = (Duration::ZERO, Received::default());
    for b in 0..bursts {
        driver.suspend(id).unwrap_or_else(|e| fail(&e.to_string()));
        // Carries out the suspension (stop reading) before the burst is queued.
        if let Some(event) = driver.next_event(Some(Duration::ZERO)) {
            fail(&format!("driver drain: unexpected {event:?}"));
        }
        burst(&tx, pool, b * BURST, to);
        let start = thread_cpu();
        driver.resume(id).unwrap_or_else(|e| fail(&e.to_string()));
        let mut left = BURST;
        while left > 0 {
            match driver.next_event(Some(deadline.left())) {
                Some(Event::Message { data, .. }) => {
                    got.take(&data, size);
                    left -= 1;
                }
                other => fail(&format!("driver drain: {other:?}")),
            }
        }
        cpu += thread_cpu() - start;
    }
    (cpu, got)
}
