//! The network between two hosts ([`Link`]) and the distribution of its delays ([`Delay`]),
//! drawn from the simulation's seeded RNG.

use std::time::Duration;

use super::rng::SimRng;
use super::SimError;

crate::options_struct! {
    /// The network between two hosts, per direction.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Link {
        /// One-way delay of every segment and datagram (default 1 ms), with
        /// [`Delay::latency_and_jitter`].
        pub latency: Duration,
        /// A seeded extra delay in `0..=jitter` per segment and datagram, with
        /// [`Delay::latency_and_jitter`]; TCP segments still arrive in order (default 0).
        pub jitter: Duration,
        /// How each segment's and datagram's one-way delay is drawn (default
        /// [`Delay::latency_and_jitter`]: `latency` plus a uniform `0..=jitter`); any other
        /// [`Delay`] replaces those two. TCP segments still arrive in order, whatever is drawn.
        pub delay: Delay,
        /// Bytes per second of each direction (`None`, the default: unlimited).
        pub bandwidth: Option<u64>,
        /// The sending kernel's send buffer: bytes it holds unacknowledged, waiting for the
        /// receiver's window or on the wire, before it takes no more writes (default 128 KiB).
        /// `QueryUnacked` counts them (and a FIN not yet arrived).
        pub send_buffer: usize,
        /// The receiving kernel's receive buffer: bytes arrived and not yet read, plus those on
        /// the wire towards it, never exceed it (the window); what does not fit waits in the
        /// sender's send buffer (default 128 KiB). A reader that stops reading thus stalls the
        /// sender after `recv_buffer + send_buffer` bytes, and whatever sits in the send buffer
        /// stays unacknowledged.
        pub recv_buffer: usize,
        /// The most one read hands to a core (default 64 KiB).
        pub max_read: usize,
        /// Each read takes a seeded `1..=max_read` of what has arrived (default `true`); else all
        /// of it up to `max_read`.
        pub chunked_reads: bool,
        /// Each write is taken in part: a seeded `1..=len` of what fits (default `true`); else all
        /// that fits.
        pub partial_writes: bool,
        /// Probability that a TCP data segment has one bit flipped (default 0).
        pub flip_rate: f64,
        /// Probability that a datagram is lost (default 0).
        pub udp_loss: f64,
        /// Probability that a datagram arrives twice (default 0).
        pub udp_duplicate: f64,
        /// A seeded extra delay in `0..=udp_reorder` per datagram, which reorders them (default 0).
        pub udp_reorder: Duration,
    }
}

impl Default for Link {
    fn default() -> Self {
        Link {
            latency: Duration::from_millis(1),
            jitter: Duration::ZERO,
            delay: Delay::latency_and_jitter(),
            bandwidth: None,
            send_buffer: 128 << 10,
            recv_buffer: 128 << 10,
            max_read: 64 << 10,
            chunked_reads: true,
            partial_writes: true,
            flip_rate: 0.0,
            udp_loss: 0.0,
            udp_duplicate: 0.0,
            udp_reorder: Duration::ZERO,
        }
    }
}

/// How a [`Link`] draws each segment's and datagram's one-way delay, from the simulation's
/// seeded RNG. A draw is capped at its `max` (so a run stays bounded in time), and TCP
/// segments still arrive in order: one drawn shorter than the one before it waits for it.
///
/// turmoil draws `min + (max - min) * Exp(λ)` capped at `max` (`λ` 5 by default: a mean of a
/// fifth of the range): that is `Delay::exponential(min, (max - min) / 5, max)` here.
///
/// ```
/// use std::time::Duration;
/// use sockstate::sim::{Delay, Link, Sim, SimConfig};
///
/// let ms = Duration::from_millis;
/// // Mostly 5 ms, a long tail of late ones (a tenth past 5 * 10^(1/1.5) = 23 ms), at most 2 s.
/// let tail = Delay::pareto(ms(5), 1.5, ms(2000)).unwrap();
/// let mut sim = Sim::with_config(7, SimConfig::default().link(Link::default().delay(tail)));
/// # let _ = &mut sim;
/// assert!(Delay::uniform(ms(3), ms(1)).is_err());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Delay(Shape);

#[derive(Clone, Debug, PartialEq)]
enum Shape {
    LatencyAndJitter,
    Fixed(Duration),
    Uniform {
        min: Duration,
        max: Duration,
    },
    Exponential {
        min: Duration,
        mean: Duration,
        max: Duration,
    },
    Pareto {
        min: Duration,
        shape: f64,
        max: Duration,
    },
}

impl Default for Delay {
    fn default() -> Self {
        Delay::latency_and_jitter()
    }
}

impl Delay {
    /// [`Link::latency`] plus a seeded uniform `0..=`[`Link::jitter`] (the default; runs made
    /// before `Delay` existed draw exactly as then).
    pub const fn latency_and_jitter() -> Delay {
        Delay(Shape::LatencyAndJitter)
    }

    /// Always `delay` (nothing drawn).
    pub const fn fixed(delay: Duration) -> Delay {
        Delay(Shape::Fixed(delay))
    }

    /// Uniform in `min..=max` (to the nanosecond). `min` above `max` is an error.
    pub fn uniform(min: Duration, max: Duration) -> Result<Delay, SimError> {
        check(min, max)?;
        Ok(Delay(Shape::Uniform { min, max }))
    }

    /// `min` plus an exponentially distributed extra with mean `mean` (as turmoil's, which
    /// also caps at a maximum), capped at `max`. `min` above `max` is an error.
    pub fn exponential(min: Duration, mean: Duration, max: Duration) -> Result<Delay, SimError> {
        check(min, max)?;
        Ok(Delay(Shape::Exponential { min, mean, max }))
    }

    /// A long tail: Pareto with scale `min` (the least delay, more than 0) and `shape` α (more
    /// than 0; the smaller, the longer the tail: a fraction `(min / t)^α` of draws exceed
    /// `t`; the mean is `α·min / (α - 1)` for α above 1, before the cap), capped at `max`.
    pub fn pareto(min: Duration, shape: f64, max: Duration) -> Result<Delay, SimError> {
        check(min, max)?;
        if min.is_zero() || !(shape.is_finite() && shape > 0.0) {
            let why = format!(
                "Pareto needs a least delay above 0 and a shape above 0, not {min:?} and {shape}"
            );
            return Err(SimError::BadDelay(why));
        }
        Ok(Delay(Shape::Pareto { min, shape, max }))
    }

    /// One draw for a link whose [`Link::latency`] and [`Link::jitter`] are these.
    fn draw(&self, rng: &mut SimRng, latency: Duration, jitter: Duration) -> Duration {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let between = |rng: &mut SimRng, lo: Duration, hi: Duration| {
            let span = nanos(hi).saturating_sub(nanos(lo));
            lo + Duration::from_nanos(rng.below(span.saturating_add(1)))
        };
        match &self.0 {
            Shape::LatencyAndJitter => between(rng, latency, latency + jitter),
            Shape::Fixed(d) => *d,
            Shape::Uniform { min, max } => between(rng, *min, *max),
            Shape::Exponential { min, mean, max } => {
                let extra = rng.exponential() * nanos(*mean) as f64;
                (*min + from_nanos_f64(extra)).min(*max)
            }
            Shape::Pareto { min, shape, max } => {
                // min * e^(E/α) with E ~ Exp(1), in the log domain so that the cap comes first.
                let ratio = nanos(*max) as f64 / nanos(*min) as f64;
                let power = rng.exponential() / shape;
                if power >= super::rng::ln(ratio) {
                    return *max;
                }
                from_nanos_f64(nanos(*min) as f64 * super::rng::exp(power)).clamp(*min, *max)
            }
        }
    }

    /// The least delay a draw can give.
    fn least(&self, latency: Duration) -> Duration {
        match &self.0 {
            Shape::LatencyAndJitter => latency,
            Shape::Fixed(d) => *d,
            Shape::Uniform { min, .. }
            | Shape::Exponential { min, .. }
            | Shape::Pareto { min, .. } => *min,
        }
    }
}

fn check(min: Duration, max: Duration) -> Result<(), SimError> {
    match min <= max {
        true => Ok(()),
        false => Err(SimError::BadDelay(format!(
            "least delay {min:?} above the most, {max:?}"
        ))),
    }
}

/// Nanoseconds (finite, not negative) as a `Duration`, saturating.
fn from_nanos_f64(ns: f64) -> Duration {
    Duration::from_nanos(ns as u64)
}

impl Link {
    /// One TCP segment's trip (see [`Link::delay`]).
    pub(crate) fn draw(&self, rng: &mut SimRng) -> Duration {
        self.delay.draw(rng, self.latency, self.jitter)
    }

    /// One datagram's trip: as a segment's, plus a seeded `0..=udp_reorder` (drawn together
    /// with the jitter by [`Delay::latency_and_jitter`], as before `Delay` existed).
    pub(crate) fn draw_datagram(&self, rng: &mut SimRng) -> Duration {
        match self.delay.0 {
            Shape::LatencyAndJitter => {
                self.delay
                    .draw(rng, self.latency, self.jitter + self.udp_reorder)
            }
            _ => {
                let trip = self.draw(rng);
                trip + Delay::latency_and_jitter().draw(rng, Duration::ZERO, self.udp_reorder)
            }
        }
    }

    /// The least delay of a trip: what was held goes on after this once released.
    pub(crate) fn least_delay(&self) -> Duration {
        self.delay.least(self.latency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: usize = 50_000;

    fn ms(n: f64) -> Duration {
        Duration::from_secs_f64(n / 1000.0)
    }

    fn draws(delay: &Delay, seed: u64) -> Vec<f64> {
        let mut rng = SimRng::new(seed);
        let link = Link::default().delay(delay.clone());
        (0..N)
            .map(|_| link.draw(&mut rng).as_secs_f64() * 1000.0)
            .collect()
    }

    fn share(v: &[f64], f: impl Fn(f64) -> bool) -> f64 {
        v.iter().filter(|&&x| f(x)).count() as f64 / v.len() as f64
    }

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len() as f64
    }

    #[test]
    fn the_default_draws_as_latency_plus_jitter_did() {
        let link = Link::default()
            .latency(ms(2.0))
            .jitter(ms(3.0))
            .udp_reorder(ms(1.0));
        let (mut a, mut b) = (SimRng::new(5), SimRng::new(5));
        for _ in 0..1000 {
            let old = link.latency + Duration::from_nanos(b.below(3_000_001));
            assert_eq!(link.draw(&mut a), old);
            let old = link.latency + Duration::from_nanos(b.below(4_000_001));
            assert_eq!(link.draw_datagram(&mut a), old);
        }
        assert_eq!(Link::default().delay, Delay::latency_and_jitter());
    }

    #[test]
    fn fixed_and_uniform_draws_stay_in_range_and_spread_evenly() {
        assert!(draws(&Delay::fixed(ms(7.0)), 1).iter().all(|&x| x == 7.0));
        let v = draws(&Delay::uniform(ms(2.0), ms(6.0)).unwrap(), 2);
        assert!(v.iter().all(|&x| (2.0..=6.0).contains(&x)));
        assert!((mean(&v) - 4.0).abs() < 0.03, "{}", mean(&v));
        for q in 0..4 {
            let lo = 2.0 + q as f64;
            let s = share(&v, |x| (lo..lo + 1.0).contains(&x));
            assert!((s - 0.25).abs() < 0.01, "quarter {q}: {s}");
        }
    }

    #[test]
    fn exponential_draws_have_their_mean_and_tail_and_the_cap() {
        let v = draws(
            &Delay::exponential(ms(1.0), ms(10.0), ms(1000.0)).unwrap(),
            3,
        );
        assert!(v.iter().all(|&x| (1.0..=1000.0).contains(&x)));
        assert!((mean(&v) - 11.0).abs() < 0.2, "{}", mean(&v));
        // The median of the extra is mean * ln 2.
        let s = share(&v, |x| x - 1.0 > 10.0 * std::f64::consts::LN_2);
        assert!((s - 0.5).abs() < 0.01, "{s}");
        // Capped: P(extra > 2 * mean) = e^-2 of the draws sit at the cap.
        let v = draws(&Delay::exponential(ms(0.0), ms(10.0), ms(20.0)).unwrap(), 4);
        let at_cap = share(&v, |x| x == 20.0);
        assert!((at_cap - (-2f64).exp()).abs() < 0.01, "{at_cap}");
        assert!(v.iter().all(|&x| x <= 20.0));
    }

    #[test]
    fn pareto_draws_have_a_long_tail_as_the_shape_says_and_the_cap() {
        let v = draws(&Delay::pareto(ms(1.0), 1.5, ms(10_000.0)).unwrap(), 5);
        assert!(v.iter().all(|&x| x >= 1.0));
        // Median min * 2^(1/α); P(X > 10 min) = 10^-α.
        let s = share(&v, |x| x > 2f64.powf(1.0 / 1.5));
        assert!((s - 0.5).abs() < 0.01, "{s}");
        let s = share(&v, |x| x > 10.0);
        assert!((s - 10f64.powf(-1.5)).abs() < 0.003, "{s}");
        let v = draws(&Delay::pareto(ms(1.0), 1.0, ms(100.0)).unwrap(), 6);
        let at_cap = share(&v, |x| x == 100.0);
        assert!((at_cap - 0.01).abs() < 0.002, "{at_cap}");
        assert!(v.iter().all(|&x| (1.0..=100.0).contains(&x)));
    }

    #[test]
    fn bad_parameters_are_errors() {
        let (one, two) = (ms(1.0), ms(2.0));
        assert!(Delay::uniform(two, one).is_err());
        assert!(Delay::exponential(two, one, one).is_err());
        assert!(Delay::pareto(Duration::ZERO, 1.0, two).is_err());
        for shape in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(Delay::pareto(one, shape, two).is_err(), "{shape}");
        }
        assert!(Delay::pareto(one, 0.01, one).is_ok());
    }
}
