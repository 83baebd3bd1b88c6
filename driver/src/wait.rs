//! Waiting for readiness in one syscall.
//!
//! `polling` 3's `Poller::wait` on Linux makes five syscalls per call: it arms a `timerfd` for
//! the timeout and re-registers it, waits, then reads and re-registers its notification
//! `eventfd` (smol-rs/polling#224). At one wait per message that was most of the driver's extra
//! cost over a blocking socket (ping-pong, handshakes, a UDP receiver). On Linux the [`Waiter`]
//! therefore calls `epoll_wait` itself on the poller's own epoll descriptor (public:
//! `Poller: AsFd`), with the timeout in milliseconds rounded up, and leaves every registration
//! to `polling`.
//!
//! Reading an `epoll_event` needs one fact `polling` does not document: that it stores a
//! source's key as the event's 64-bit data, and `usize::MAX` (its reserved key) for its own
//! timer and notifier. [`Waiter::new`] checks it on the poller at hand (a probe socket
//! registered under a known key must come back with exactly that key and readable); if the
//! check fails, as it would were a newer `polling` to store something else, every wait goes
//! through `Poller::wait`. When the reserved key comes back (a [`Poller::notify`] from another
//! thread), one `Poller::wait` without blocking follows, which clears and re-arms the
//! notifier as `polling` does after every wait of its own; its timer is never armed, since
//! that wait's timeout is zero.
//!
//! A direct waiter may also spin ([`Waiter::spinning`], `Config::spin_polls`): when its last
//! blocking wait ended within [`DENSE`], it polls a few times without blocking before it
//! blocks again, and stops at the first event or notification (`Poller::wait` cannot tell a
//! notification from nothing, so a waiter that uses it never spins).
//! Blocking costs whoever wakes the loop a wake-up (on a virtual machine, an interrupt sent
//! through the hypervisor): on loopback, a UDP sender that wakes a faster receiver for every
//! datagram spent ~10% more per datagram than one whose receiver was still awake.

use std::io;
use std::time::{Duration, Instant};

use polling::{Events, Poller};

/// One readiness report, decoded as `polling` decodes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ready {
    pub(crate) key: usize,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    /// A hang-up or an error condition.
    pub(crate) hangup: bool,
}

/// Events one wait takes at most (`polling`'s `Events::new()` default).
const BATCH: usize = 1024;

/// A blocking wait that ended within this found the loop busy: the next one spins first (if
/// the waiter spins at all).
pub(crate) const DENSE: Duration = Duration::from_micros(20);

/// Most polls of one spin (a few hundred µs of polling), whatever the configuration asks.
pub(crate) const MAX_SPINS: u32 = 1000;

/// Waits on a [`Poller`] (see the module docs).
pub(crate) struct Waiter {
    /// For `Poller::wait`: always off Linux, and after a notification on Linux.
    events: Events,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    direct: Option<Vec<libc::epoll_event>>,
    /// Polls without blocking before a blocking wait, while [`dense`](Self::dense).
    spins: u32,
    /// The last blocking wait ended within [`DENSE`].
    dense: bool,
    /// Waits made, blocking or not.
    #[cfg(test)]
    polls: usize,
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiter")
            .field("direct", &self.is_direct())
            .finish_non_exhaustive()
    }
}

impl Waiter {
    /// A waiter for `poller`: direct where the check passes (see the module docs).
    pub(crate) fn new(poller: &Poller) -> Waiter {
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let _ = poller;
        Waiter {
            events: Events::new(),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            direct: linux::probe(poller)
                .unwrap_or(false)
                .then(|| Vec::with_capacity(BATCH)),
            spins: 0,
            dense: false,
            #[cfg(test)]
            polls: 0,
        }
    }

    /// This waiter polls up to `spins` times (at most [`MAX_SPINS`]) without blocking before a
    /// blocking wait that follows a short one (see the module docs); 0: never.
    pub(crate) fn spinning(mut self, spins: u32) -> Waiter {
        self.spins = spins.min(MAX_SPINS);
        self
    }

    /// A waiter that always goes through `Poller::wait` (for tests of that path).
    #[cfg(test)]
    pub(crate) fn portable() -> Waiter {
        Waiter {
            events: Events::new(),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            direct: None,
            spins: 0,
            dense: false,
            polls: 0,
        }
    }

    /// Whether waits bypass `Poller::wait`.
    pub(crate) fn is_direct(&self) -> bool {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        return self.direct.is_some();
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        false
    }

    /// Waits at most `timeout` (`None`: until something happens) and appends what is ready to
    /// `ready`. A wait interrupted by a signal returns nothing, without an error.
    pub(crate) fn wait(
        &mut self,
        poller: &Poller,
        timeout: Option<Duration>,
        ready: &mut Vec<Ready>,
    ) -> io::Result<()> {
        // Only a direct waiter sees a notification come (`Poller::wait` returns nothing for
        // one), and a spin must stop for it: the loop has work from another thread.
        if self.spins == 0 || timeout == Some(Duration::ZERO) || !self.is_direct() {
            return self.wait_once(poller, timeout, ready).map(|_| ());
        }
        // The spin counts against the timeout: a wait never lasts longer for it.
        let start = Instant::now();
        if self.dense {
            for _ in 0..self.spins {
                if self.wait_once(poller, Some(Duration::ZERO), ready)?
                    || timeout.is_some_and(|t| start.elapsed() >= t)
                {
                    return Ok(());
                }
            }
        }
        let left = timeout.map(|t| t.saturating_sub(start.elapsed()));
        let blocked = Instant::now();
        let waited = self.wait_once(poller, left, ready);
        self.dense = blocked.elapsed() < DENSE;
        waited.map(|_| ())
    }

    /// One wait (see [`wait`](Self::wait)): whether it brought events or (direct waits only) a
    /// notification.
    // Inlined (as `linux::wait`): every wake-up runs through these layers.
    #[inline]
    fn wait_once(
        &mut self,
        poller: &Poller,
        timeout: Option<Duration>,
        ready: &mut Vec<Ready>,
    ) -> io::Result<bool> {
        #[cfg(test)]
        {
            self.polls += 1;
        }
        let before = ready.len();
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(raw) = &mut self.direct {
            if !linux::wait(poller, raw, timeout, ready)? {
                return Ok(ready.len() > before);
            }
            // The notifier fired: let `polling` clear and re-arm it (and report whatever
            // else is ready by now).
            self.portable_wait(poller, Some(Duration::ZERO), ready)?;
            return Ok(true);
        }
        self.portable_wait(poller, timeout, ready)?;
        Ok(ready.len() > before)
    }

    fn portable_wait(
        &mut self,
        poller: &Poller,
        timeout: Option<Duration>,
        ready: &mut Vec<Ready>,
    ) -> io::Result<()> {
        self.events.clear(); // `wait` appends
        match poller.wait(&mut self.events, timeout) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => return Err(e),
            _ => {}
        }
        ready.extend(self.events.iter().map(|event| Ready {
            key: event.key,
            readable: event.readable,
            writable: event.writable,
            hangup: event.is_interrupt() || event.is_err() == Some(true),
        }));
        Ok(())
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod linux {
    use std::io::{self, Write};
    use std::os::fd::{AsFd, AsRawFd};
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    use polling::{Event, Poller};

    use super::Ready;

    /// `polling`'s reserved key: its timer and notifier.
    const RESERVED: u64 = usize::MAX as u64;
    /// The probe's key, which no source gets (keys are counted up from 0).
    const PROBE: usize = usize::MAX - 1;

    /// Whether an event for a source registered under a known key comes back from
    /// `epoll_wait` with that key as its data, readable, and nothing else does.
    pub(super) fn probe(poller: &Poller) -> io::Result<bool> {
        let (mut a, b) = UnixStream::pair()?;
        // SAFETY: `b` is deleted from the poller below, before it is dropped.
        unsafe { poller.add(&b, Event::readable(PROBE))? };
        let outcome = a.write_all(b"?").and_then(|()| {
            let (mut raw, mut ready) = (Vec::with_capacity(4), Vec::new());
            if wait(poller, &mut raw, Some(Duration::ZERO), &mut ready)? {
                // A notification came first: `polling` re-arms its notifier.
                poller.wait(&mut polling::Events::new(), Some(Duration::ZERO))?;
            }
            let probe = Ready {
                key: PROBE,
                readable: true,
                writable: false,
                hangup: false,
            };
            Ok(ready == [probe])
        });
        poller.delete(&b)?;
        outcome
    }

    /// One `epoll_wait` on the poller's descriptor; the events of sources go to `ready`.
    /// `Ok(true)` when `polling`'s reserved key was among them.
    #[inline]
    pub(super) fn wait(
        poller: &Poller,
        raw: &mut Vec<libc::epoll_event>,
        timeout: Option<Duration>,
        ready: &mut Vec<Ready>,
    ) -> io::Result<bool> {
        let ms = match timeout {
            None => -1,
            // Rounded up, so that a timer is never found not yet due and waited for again
            // with a zero timeout in a busy loop.
            Some(t) => i32::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX),
        };
        raw.clear();
        let capacity = i32::try_from(raw.capacity()).unwrap_or(i32::MAX);
        // SAFETY: the buffer has room for `capacity` events, and the kernel writes at most that
        // many; the descriptor is the poller's, alive for the call.
        let n =
            unsafe { libc::epoll_wait(poller.as_fd().as_raw_fd(), raw.as_mut_ptr(), capacity, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::Interrupted => Ok(false),
                _ => Err(e),
            };
        }
        // SAFETY: the kernel initialized the first `n` (≤ capacity) events.
        unsafe { raw.set_len(n as usize) };
        let mut notified = false;
        for event in raw.iter() {
            let (flags, data) = (event.events as libc::c_int, event.u64);
            if data == RESERVED {
                notified = true;
                continue;
            }
            // As `polling` decodes its events (its `read_flags` / `write_flags`).
            let hangup = flags & (libc::EPOLLHUP | libc::EPOLLERR) != 0;
            ready.push(Ready {
                key: data as usize,
                readable: hangup || flags & (libc::EPOLLIN | libc::EPOLLPRI) != 0,
                writable: hangup || flags & libc::EPOLLOUT != 0,
                hangup,
            });
        }
        Ok(notified)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn on_linux_waits_go_straight_to_epoll() {
        let poller = Poller::new().unwrap();
        assert!(Waiter::new(&poller).is_direct());
    }

    #[test]
    fn a_notification_wakes_a_blocked_wait_every_time() {
        let poller = Arc::new(Poller::new().unwrap());
        for mut waiter in [Waiter::new(&poller), Waiter::portable()] {
            // Three in a row: the notifier must be re-armed after each.
            for _ in 0..3 {
                let notifier = Arc::clone(&poller);
                let thread = std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(20));
                    notifier.notify().unwrap();
                });
                let start = Instant::now();
                let mut ready = Vec::new();
                waiter
                    .wait(&poller, Some(Duration::from_secs(10)), &mut ready)
                    .unwrap();
                assert!(
                    start.elapsed() < Duration::from_secs(5),
                    "woken by the notify"
                );
                assert!(ready.is_empty(), "{ready:?}");
                thread.join().unwrap();
            }
        }
    }

    #[test]
    fn a_timeout_is_waited_in_full_and_zero_does_not_block() {
        let poller = Poller::new().unwrap();
        for mut waiter in [Waiter::new(&poller), Waiter::portable()] {
            let mut ready = Vec::new();
            let start = Instant::now();
            // 1.5 ms: not cut short to 1 ms.
            waiter
                .wait(&poller, Some(Duration::from_micros(1500)), &mut ready)
                .unwrap();
            assert!(start.elapsed() >= Duration::from_micros(1500));
            let start = Instant::now();
            waiter
                .wait(&poller, Some(Duration::ZERO), &mut ready)
                .unwrap();
            assert!(start.elapsed() < Duration::from_secs(1));
            assert!(ready.is_empty(), "{ready:?}");
        }
    }

    #[test]
    fn readiness_is_reported_under_the_sources_key_as_polling_reports_it() {
        use std::io::Write;
        use std::os::unix::net::UnixStream;
        let poller = Poller::new().unwrap();
        for mut waiter in [Waiter::new(&poller), Waiter::portable()] {
            let (mut a, b) = UnixStream::pair().unwrap();
            unsafe { poller.add(&b, polling::Event::all(7)).unwrap() };
            let mut ready = Vec::new();
            // Re-arms `b` (one-shot) and reports what one wait brings.
            let mut rearmed = |waiter: &mut Waiter| {
                poller.modify(&b, polling::Event::all(7)).unwrap();
                ready.clear();
                waiter
                    .wait(&poller, Some(Duration::ZERO), &mut ready)
                    .unwrap();
                ready.clone()
            };
            let writable = Ready {
                key: 7,
                readable: false,
                writable: true,
                hangup: false,
            };
            assert_eq!(rearmed(&mut waiter), [writable]);
            a.write_all(b"x").unwrap();
            let readable = Ready {
                readable: true,
                ..writable
            };
            assert_eq!(rearmed(&mut waiter), [readable]);
            drop(a);
            let hangup = Ready {
                hangup: true,
                ..readable
            };
            assert_eq!(rearmed(&mut waiter), [hangup]);
            poller.delete(&b).unwrap();
        }
    }

    #[test]
    fn a_spinning_waiter_polls_first_only_after_a_short_wait_and_still_waits_out_its_timeout() {
        use std::io::{Read, Write};
        use std::os::unix::net::UnixStream;
        let poller = Poller::new().unwrap();
        let (mut a, mut b) = UnixStream::pair().unwrap();
        unsafe { poller.add(&b, polling::Event::readable(3)).unwrap() };
        for spins in [0, 4] {
            let mut waiter = Waiter::new(&poller).spinning(spins);
            let mut ready = Vec::new();
            // Something is ready: the blocking wait ends at once, so the loop is busy.
            a.write_all(b"x").unwrap();
            poller.modify(&b, polling::Event::readable(3)).unwrap();
            let (polls, start) = (waiter.polls, Instant::now());
            waiter
                .wait(&poller, Some(Duration::from_secs(5)), &mut ready)
                .unwrap();
            let took = start.elapsed();
            assert_eq!(ready.len(), 1);
            assert_eq!(waiter.polls - polls, 1, "no spin before the first wait");
            if spins == 0 || took < DENSE {
                assert_eq!(waiter.dense, spins > 0, "spins {spins}");
            }
            // (On a loaded machine the wait may have taken longer: busy, as far as the test
            // goes.)
            waiter.dense = spins > 0;
            b.read_exact(&mut [0]).unwrap();
            poller.modify(&b, polling::Event::readable(3)).unwrap();
            // Nothing comes: the spins (if any), then the whole timeout.
            ready.clear();
            let (polls, start) = (waiter.polls, Instant::now());
            let timeout = Duration::from_millis(30);
            waiter.wait(&poller, Some(timeout), &mut ready).unwrap();
            assert!(start.elapsed() >= timeout, "the timeout waited out");
            assert!(ready.is_empty());
            assert_eq!(waiter.polls - polls, spins as usize + 1, "spins {spins}");
            assert!(!waiter.dense, "a long wait: idle");
            // Idle: the next wait blocks at once.
            let polls = waiter.polls;
            waiter
                .wait(&poller, Some(Duration::from_millis(1)), &mut ready)
                .unwrap();
            assert_eq!(waiter.polls - polls, 1);
        }
        poller.delete(&b).unwrap();
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn a_notification_ends_a_spin_and_the_wait() {
        let poller = Poller::new().unwrap();
        let mut waiter = Waiter::new(&poller).spinning(4);
        waiter.dense = true;
        poller.notify().unwrap();
        let start = Instant::now();
        let mut ready = Vec::new();
        waiter
            .wait(&poller, Some(Duration::from_secs(5)), &mut ready)
            .unwrap();
        assert!(start.elapsed() < Duration::from_secs(2), "woken");
        assert_eq!(waiter.polls, 1, "the first poll saw it");
        // The notifier is re-armed: the next notification wakes a blocking wait too.
        poller.notify().unwrap();
        waiter.dense = false;
        let start = Instant::now();
        waiter
            .wait(&poller, Some(Duration::from_secs(5)), &mut ready)
            .unwrap();
        assert!(start.elapsed() < Duration::from_secs(2), "woken again");
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn a_spin_is_bounded_and_counts_against_the_timeout() {
        let poller = Poller::new().unwrap();
        let mut waiter = Waiter::new(&poller).spinning(u32::MAX);
        assert_eq!(waiter.spins, MAX_SPINS);
        for timeout in [Duration::from_millis(30), Duration::from_micros(50)] {
            waiter.dense = true;
            let start = Instant::now();
            let mut ready = Vec::new();
            waiter.wait(&poller, Some(timeout), &mut ready).unwrap();
            let took = start.elapsed();
            assert!(took >= timeout, "{took:?} for {timeout:?}");
            assert!(
                took < timeout + Duration::from_millis(500),
                "{took:?} for {timeout:?}"
            );
            assert!(ready.is_empty());
        }
    }
}
