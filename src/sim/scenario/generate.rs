//! `Arbitrary` for scenarios (feature `arbitrary`): every count and time drawn within the
//! caps of [`Scenario`], so that any bytes make a short run.

use std::io;
use std::time::Duration;

use arbitrary::{Arbitrary, Result, Unstructured};

use super::{Fault, LinkRule, Scenario, Timed};
use crate::sim::{Delay, Link};
use crate::ResolveError;

/// A duration of whole milliseconds in `0..=max`.
fn millis(u: &mut Unstructured<'_>, max: Duration) -> Result<Duration> {
    let ms = u.int_in_range(0..=max.as_millis() as u64)?;
    Ok(Duration::from_millis(ms))
}

/// Up to `max` items.
fn items<'a, T>(
    u: &mut Unstructured<'a>,
    max: usize,
    mut item: impl FnMut(&mut Unstructured<'a>) -> Result<T>,
) -> Result<Vec<T>> {
    let n = u.int_in_range(0..=max)?;
    (0..n).map(|_| item(u)).collect()
}

/// A host index (small: the scenario takes it modulo the number of hosts).
fn index(u: &mut Unstructured<'_>) -> Result<usize> {
    Ok(usize::from(u.arbitrary::<u8>()? % 16))
}

/// The OS errors a [`Fault::Fail`] reports.
const ERRORS: [io::ErrorKind; 6] = [
    io::ErrorKind::ConnectionReset,
    io::ErrorKind::ConnectionAborted,
    io::ErrorKind::BrokenPipe,
    io::ErrorKind::TimedOut,
    io::ErrorKind::HostUnreachable,
    io::ErrorKind::NetworkUnreachable,
];

const RESOLVE_ERRORS: [ResolveError; 3] = [
    ResolveError::NotFound,
    ResolveError::Temporary,
    ResolveError::Other,
];

/// A delay distribution: mostly latency and jitter; else uniform, exponential or Pareto, each
/// capped at 2 s at most.
fn delay(u: &mut Unstructured<'_>) -> Result<Delay> {
    let ms = Duration::from_millis;
    let min = millis(u, ms(200))?;
    let max = min + millis(u, ms(1800))?;
    let delay = match u.int_in_range(0..=7u8)? {
        5 => Delay::uniform(min, max),
        6 => Delay::exponential(min, millis(u, ms(200))?, max),
        7 => {
            let shape = f64::from(u.int_in_range(1..=6u8)?) / 2.0;
            Delay::pareto(min.max(ms(1)), shape, max.max(ms(1)))
        }
        _ => Ok(Delay::latency_and_jitter()),
    };
    Ok(delay.unwrap_or_default())
}

/// Any link within: latency up to 200 ms, jitter up to 50 ms, a delay distribution (capped at
/// 2 s), bandwidth unlimited or 1 KiB/s
/// to 1 MiB/s, buffers of 256 bytes to 256 KiB, reads of 1 byte to 64 KiB, one data segment
/// in 16 to 1024 with a bit flipped (or none, mostly), datagram loss and duplication up to
/// 1/2, reordering up to 100 ms.
impl<'a> Arbitrary<'a> for Link {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let ms = Duration::from_millis;
        let half = |u: &mut Unstructured<'a>| -> Result<f64> {
            Ok(f64::from(u.int_in_range(0..=128u8)?) / 256.0)
        };
        Ok(Link {
            latency: millis(u, ms(200))?,
            jitter: millis(u, ms(50))?,
            delay: delay(u)?,
            bandwidth: if u.arbitrary()? {
                Some(u.int_in_range(1..=1024u64)? << 10)
            } else {
                None
            },
            send_buffer: u.int_in_range(256..=256 << 10)?,
            recv_buffer: u.int_in_range(256..=256 << 10)?,
            max_read: u.int_in_range(1..=64 << 10)?,
            chunked_reads: u.arbitrary()?,
            partial_writes: u.arbitrary()?,
            flip_rate: if u.ratio(1u8, 8)? {
                1.0 / f64::from(u.int_in_range(16..=1024u16)?)
            } else {
                0.0
            },
            udp_loss: half(u)?,
            udp_duplicate: half(u)?,
            udp_reorder: millis(u, ms(100))?,
        })
    }
}

impl<'a> Arbitrary<'a> for LinkRule {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(LinkRule {
            a: index(u)?,
            b: index(u)?,
            link: u.arbitrary()?,
        })
    }
}

impl<'a> Arbitrary<'a> for Fault {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let conn = |u: &mut Unstructured<'a>| Ok(usize::from(u.arbitrary::<u8>()?));
        Ok(match u.int_in_range(0..=14u8)? {
            0 => Fault::Reset { conn: conn(u)? },
            1 => Fault::Fail {
                conn: conn(u)?,
                error: *u.choose(&ERRORS)?,
            },
            2 => Fault::Silence { conn: conn(u)? },
            3 => Fault::Partition {
                a: index(u)?,
                b: index(u)?,
                oneway: u.arbitrary()?,
            },
            4 => Fault::Repair {
                a: index(u)?,
                b: index(u)?,
            },
            5 => Fault::Hold {
                a: index(u)?,
                b: index(u)?,
                oneway: u.arbitrary()?,
            },
            6 => Fault::Release {
                a: index(u)?,
                b: index(u)?,
            },
            7 => Fault::Crash { host: index(u)? },
            8 => Fault::Restart { host: index(u)? },
            9 => Fault::BlackHole { host: index(u)? },
            10 => Fault::Heal { host: index(u)? },
            11 => Fault::Refuse { listener: conn(u)? },
            12 => Fault::DnsFail {
                host: index(u)?,
                why: *u.choose(&RESOLVE_ERRORS)?,
            },
            13 => Fault::DnsRestore { host: index(u)? },
            // Resets are the commonest fault worth trying: twice the weight.
            _ => Fault::Reset { conn: 0 },
        })
    }
}

impl<'a> Arbitrary<'a> for Timed {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(Timed {
            at: millis(u, Scenario::MAX_FAULT_AT)?,
            fault: u.arbitrary()?,
        })
    }
}

/// Any scenario within the caps of [`Scenario`] (`MAX_LINKS`, `MAX_FAULTS`, `MAX_FAULT_AT`,
/// `MAX_TIMINGS`, `MAX_TIMING`, `MAX_HEAL_AFTER`), times in whole milliseconds.
impl<'a> Arbitrary<'a> for Scenario {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(Scenario {
            seed: u.arbitrary()?,
            links: items(u, Scenario::MAX_LINKS, LinkRule::arbitrary)?,
            faults: items(u, Scenario::MAX_FAULTS, Timed::arbitrary)?,
            timings: items(u, Scenario::MAX_TIMINGS, |u| {
                millis(u, Scenario::MAX_TIMING)
            })?,
            heal_after: millis(u, Scenario::MAX_HEAL_AFTER)?,
        })
    }
}
