//! The simulator's one source of randomness.

use rand_chacha::rand_core::{Rng as _, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// ChaCha8 seeded from a `u64`. rand_chacha promises the same stream for the same seed across
/// its versions, and every range reduction is done here, so a seed names the same run for good.
#[derive(Clone, Debug)]
pub(crate) struct SimRng(ChaCha8Rng);

impl SimRng {
    pub(crate) fn new(seed: u64) -> Self {
        SimRng(ChaCha8Rng::seed_from_u64(seed))
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.0.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A number in `lo..=hi` (`lo` when `hi <= lo`).
    pub(crate) fn between(&mut self, lo: usize, hi: usize) -> usize {
        if hi <= lo {
            return lo;
        }
        lo + self.below((hi - lo) as u64 + 1) as usize
    }

    /// `true` with probability `p` (0 and below: never; 1 and above: always).
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        if p >= 1.0 {
            return true;
        }
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64) < p
    }

    /// A draw of the exponential distribution with mean 1: `-ln U` for a uniform `U` in
    /// `(0, 1]`, so at most `53 ln 2` (about 36.7).
    pub(crate) fn exponential(&mut self) -> f64 {
        let u = ((self.0.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64);
        -ln(u)
    }
}

// The natural logarithm and exponential from `+ - * /` alone (IEEE 754 rounds those the same
// on every platform, where `f64::ln` and `f64::exp` call the platform's libm, which need not):
// a seed draws the same delays everywhere. Accurate to a few units in the last place.

/// `ln x` for a finite `x > 0` (the callers' range); `-inf` for 0 and below, `x` itself for
/// infinity and NaN.
pub(crate) fn ln(x: f64) -> f64 {
    if x <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if !x.is_finite() {
        return x;
    }
    // x = m * 2^e with m in [1, 2) (subnormals scaled into range first).
    let (x, mut e) = if x < f64::MIN_POSITIVE {
        (x * (1u64 << 54) as f64, -54i64)
    } else {
        (x, 0)
    };
    let bits = x.to_bits();
    e += ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52));
    if m > std::f64::consts::SQRT_2 {
        m /= 2.0;
        e += 1;
    }
    // ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172: the series converges fast.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut term = s;
    let mut sum = 0.0;
    for k in 0..16 {
        sum += term / (2 * k + 1) as f64;
        term *= s2;
    }
    e as f64 * std::f64::consts::LN_2 + 2.0 * sum
}

/// `e^y` for `0 <= y <= 700` (the callers' range; clamped into it).
pub(crate) fn exp(y: f64) -> f64 {
    let y = if y.is_nan() { 0.0 } else { y.clamp(0.0, 700.0) };
    // e^y = 2^k e^r with r in [0, ln 2); ln 2 in two parts (Cody and Waite) so that `k ln 2`
    // loses nothing.
    const LN2_HI: f64 = 0.693_147_180_369_123_8;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    let k = (y / std::f64::consts::LN_2) as i32;
    let r = (y - k as f64 * LN2_HI) - k as f64 * LN2_LO;
    let (mut sum, mut term) = (1.0, 1.0);
    for n in 1..24 {
        term *= r / n as f64;
        sum += term;
    }
    sum * f64::from_bits(((1023 + k) as u64) << 52)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_numbers_and_ranges_hold() {
        let (mut a, mut b) = (SimRng::new(7), SimRng::new(7));
        for _ in 0..1000 {
            let x = a.between(3, 9);
            assert_eq!(x, b.between(3, 9));
            assert!((3..=9).contains(&x));
        }
        assert_eq!(a.between(5, 5), 5);
        assert_eq!(a.below(0), 0);
        assert!(!a.chance(0.0) && a.chance(1.0));
        let mut c = SimRng::new(8);
        let differ = (0..32).any(|_| a.below(1 << 40) != c.below(1 << 40));
        assert!(differ, "another seed gives another stream");
    }

    #[test]
    fn ln_and_exp_agree_with_the_platforms_to_a_few_ulps() {
        let close = |a: f64, b: f64| (a - b).abs() <= 4.0 * f64::EPSILON * b.abs().max(1.0);
        let mut rng = SimRng::new(3);
        for _ in 0..10_000 {
            let u = (rng.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            for x in [u, u * 1e6, u * 1e-300, 1.0 + u] {
                if x > 0.0 {
                    assert!(close(ln(x), x.ln()), "ln {x}: {} against {}", ln(x), x.ln());
                }
            }
            let y = u * 40.0;
            assert!(
                close(exp(y) / y.exp(), 1.0),
                "exp {y}: {} against {}",
                exp(y),
                y.exp()
            );
        }
        assert_eq!(ln(1.0), 0.0);
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(ln(0.0), f64::NEG_INFINITY);
    }

    #[test]
    fn exponential_draws_have_mean_1_and_the_right_tail() {
        let mut rng = SimRng::new(11);
        let n = 100_000;
        let draws: Vec<f64> = (0..n).map(|_| rng.exponential()).collect();
        let mean = draws.iter().sum::<f64>() / n as f64;
        assert!((mean - 1.0).abs() < 0.02, "mean {mean}");
        // P(X > 3) = e^-3 = 4.98%.
        let over = draws.iter().filter(|&&x| x > 3.0).count() as f64 / n as f64;
        assert!((over - 0.0498).abs() < 0.003, "{over}");
        assert!(draws.iter().all(|&x| (0.0..37.0).contains(&x)));
    }
}
