//! Branch-free `exp` and `erf` that the compiler can vectorise.
//!
//! Why hand-written: the flex backend evaluates GELU element by element through libm's scalar
//! `erff`/`expf` (about a tenth of a training step in `perf`), and no well-kept crate offers
//! vectorisable f32 `erf`. The formulas are textbook: Cephes' `expf` range reduction and
//! polynomial (relative error ~1e-7) and Abramowitz & Stegun 7.1.26 for `erf` (absolute error
//! ≤ 1.5e-7 before f32 rounding), both checked against f64 references below.

const LOG2E: f32 = std::f32::consts::LOG2_E;
// ln 2 split in two so that `x - n·ln2` stays exact for |n| ≤ 128.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// `e^x`, clamped to the finite f32 range (inputs below -87 give ~0, never denormals).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_2e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n by building the exponent bits directly. `n as i32` would be a saturating, NaN-checked
    // scalar conversion that stops the loop from vectorising; adding 1.5·2^23 instead puts the
    // integer n (|n| ≤ 127 after the clamp) in the low mantissa bits.
    let n = (n + 12_582_912.0).to_bits() as i32 - 0x4B40_0000;
    let scale = f32::from_bits(((n + 127) << 23) as u32);
    y * scale
}

/// The error function; |error| ≤ 6e-7 over [-12, 12] (the formula's 1.5e-7 plus f32 rounding).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = 1.061_405_4;
    let poly = poly * t - 1.453_152;
    let poly = poly * t + 1.421_413_7;
    let poly = poly * t - 0.284_496_74;
    let poly = poly * t + 0.254_829_6;
    let y = 1.0 - poly * t * exp(-a * a);
    y.copysign(x)
}

/// Runs `body` compiled for AVX2+FMA when the CPU has them (the default x86-64 target only
/// assumes SSE2, where `floor` and the float→int conversions do not vectorise), else as is.
#[inline(always)]
pub fn dispatch<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<R>(body: impl FnOnce() -> R) -> R {
            body()
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: both features were just detected on this CPU.
            return unsafe { avx2(body) };
        }
    }
    body()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> impl Iterator<Item = f32> {
        (-120_000..=120_000).map(|i| i as f32 * 1e-4)
    }

    #[test]
    fn exp_matches_std_within_a_few_ulps() {
        let mut worst = 0.0f64;
        for x in (-8_700..=8_800).map(|i| i as f32 * 0.01) {
            let want = (x as f64).exp();
            let rel = ((exp(x) as f64 - want) / want).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 4e-7, "worst relative error {worst:e}");
        assert_eq!(
            exp(-1000.0).min(1e-30),
            exp(-1000.0),
            "underflow stays tiny"
        );
        assert!(exp(1000.0).is_finite());
    }

    #[test]
    fn erf_matches_std() {
        let mut worst = 0.0f64;
        for x in grid() {
            let want = libm_erf(x as f64);
            worst = worst.max((erf(x) as f64 - want).abs());
        }
        // The formula's 1.5e-7 plus f32 rounding of `1 - poly·t·e^{-x²}`: 5.3e-7 measured.
        assert!(worst < 6e-7, "worst absolute error {worst:e}");
        assert!(erf(0.0).abs() < 1e-7);
        assert!(erf(-3.0) < -0.9999 && erf(3.0) > 0.9999);
    }

    /// Reference erf in f64 by its Maclaurin series (|x| ≤ 3) or continued fraction (|x| > 3),
    /// so the test does not depend on the approximation under test.
    fn libm_erf(x: f64) -> f64 {
        let a = x.abs();
        let v = if a <= 3.0 {
            let mut term = a;
            let mut sum = a;
            let mut n = 0.0;
            while term.abs() > 1e-17 {
                n += 1.0;
                term *= -a * a / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc(a) = e^{-a²}/√π · 1/(a + 1/2/(a + 1/(a + 3/2/(a + ...))))
            let mut f = a;
            for k in (1..60).rev() {
                f = a + (k as f64 / 2.0) / f;
            }
            1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / f
        };
        v.copysign(x)
    }

    #[test]
    fn dispatch_gives_the_same_numbers() {
        let xs: Vec<f32> = grid().step_by(97).collect();
        let plain: Vec<f32> = xs.iter().map(|&x| erf(x)).collect();
        let fast: Vec<f32> = dispatch(|| xs.iter().map(|&x| erf(x)).collect());
        for (a, b) in plain.iter().zip(&fast) {
            assert!((a - b).abs() <= 2e-7, "{a} vs {b}");
        }
    }
}
