//! `no_std` single-precision math for the f32 kernels (`core` has no `exp`, `tanh` or `sqrt`),
//! plus the f64 reference functions (under `std`) the int8 tables are built from.
//!
//! Accuracy against f64 math, checked by `tests.rs` on dense sweeps:
//! - [`exp`]: relative error ≤ 4e-7 for `x` in `[-87, 88]`; 0 below -87.3 (absolute error < 1.3e-38);
//!   `+inf` above 88.72.
//! - [`tanh`]: absolute error ≤ 3e-7 and relative error ≤ 2e-6 everywhere.
//! - [`sigmoid`]: absolute error ≤ 3e-7.
//! - [`erf`]: absolute error ≤ 5e-7 (Abramowitz & Stegun 7.1.26 is 1.5e-7, plus f32 rounding).
//! - [`sqrt`]: relative error ≤ 3e-7 for positive normal inputs.

#[cfg(test)]
mod tests;
// AVX2 forms of `exp` and the lane-ordered sums, bit-exact to the scalar ones.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
// The AVX-512 form of `exp`, bit-exact to the scalar one.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;

const LN2_HI: f32 = 0.693_145_75; // high bits of ln 2, exact product with small integers
const LN2_LO: f32 = 1.428_606_8e-6; // ln 2 - LN2_HI
const LOG2_E: f32 = core::f32::consts::LOG2_E;

/// Rounds to the nearest integer (ties away from zero) without `std`.
#[inline(always)]
fn round_to_i32(x: f32) -> i32 {
    if x >= 0.0 {
        (x + 0.5) as i32
    } else {
        (x - 0.5) as i32
    }
}

/// `e^x` in f32 (Cody–Waite range reduction, degree-6 polynomial).
///
/// Plain f32 multiplies and adds in a fixed order (no fused multiply-add): the AVX2 `exp8`
/// evaluates the same operations lane by lane and is bit-exact to it. Softmax (f32) uses it.
#[inline]
pub fn exp(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x > 88.72 {
        return f32::INFINITY;
    }
    if x < -87.3 {
        return 0.0;
    }
    let n = round_to_i32(x * LOG2_E);
    let nf = n as f32;
    let r = (x - nf * LN2_HI) - nf * LN2_LO; // |r| <= ~0.347
                                             // e^r = 1 + r + r^2/2 + ... + r^6/720 (Horner), truncation error < 2.5e-8 relative.
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // 2^n with n in [-126, 128]; split n = 128 into two steps.
    if n > 127 {
        p * 2.0 * f32::from_bits(((n - 1 + 127) as u32) << 23)
    } else {
        p * f32::from_bits(((n + 127) as u32) << 23)
    }
}

/// Number of partial sums of [`sum_lanes`] (one AVX2 vector of f32).
pub const LANES: usize = 8;

/// Sum of `f(x[i])` in a fixed order that SIMD variants reproduce bit for bit: element `i` is
/// added to partial sum `i % 8` (in increasing `i`, starting from `0.0`), then the eight
/// partial sums are combined by [`reduce_lanes`]. Softmax and LayerNorm sum this way, so that
/// their AVX2 variants (eight lanes, one vector add per eight elements) stay bit-exact.
#[inline]
pub fn sum_lanes_by(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    for (a, &v) in acc.iter_mut().zip(chunks.remainder()) {
        *a += f(v);
    }
    reduce_lanes(acc)
}

/// [`sum_lanes_by`] of the values themselves.
#[inline]
pub fn sum_lanes(x: &[f32]) -> f32 {
    sum_lanes_by(x, |v| v)
}

/// The final combination of [`sum_lanes_by`]'s partial sums `a`:
/// `((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7))`, the order of an AVX2 horizontal sum
/// (high half onto low half, then the upper pair onto the lower pair, then the last two).
#[inline]
pub fn reduce_lanes(a: [f32; LANES]) -> f32 {
    ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
}

/// Hyperbolic tangent in f32.
pub fn tanh(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let t = if a < 0.0625 {
        // Taylor series to x^9: remainder < 1e-12 relative.
        let a2 = a * a;
        a * (1.0
            + a2 * (-1.0 / 3.0 + a2 * (2.0 / 15.0 + a2 * (-17.0 / 315.0 + a2 * (62.0 / 2835.0)))))
    } else if a > 9.1 {
        1.0
    } else {
        let e = exp(2.0 * a);
        (e - 1.0) / (e + 1.0)
    };
    if x < 0.0 {
        -t
    } else {
        t
    }
}

/// Logistic sigmoid `1 / (1 + e^-x)` in f32.
pub fn sigmoid(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x >= 0.0 {
        1.0 / (1.0 + exp(-x))
    } else {
        let e = exp(x);
        e / (1.0 + e)
    }
}

/// Error function in f32 (Maclaurin series below 0.5, Abramowitz & Stegun 7.1.26 above).
pub fn erf(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    if a > 4.0 {
        return if x < 0.0 { -1.0 } else { 1.0 };
    }
    if a < 0.5 {
        // Maclaurin series to x^11 (remainder < 1.5e-8): no cancellation near 0.
        let x2 = x * x;
        return core::f32::consts::FRAC_2_SQRT_PI
            * x
            * (1.0
                + x2 * (-1.0 / 3.0
                    + x2 * (1.0 / 10.0
                        + x2 * (-1.0 / 42.0 + x2 * (1.0 / 216.0 + x2 * (-1.0 / 1320.0))))));
    }
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let y = 1.0 - poly * exp(-a * a);
    if x < 0.0 {
        -y
    } else {
        y
    }
}

/// Square root in f32 (bit-level initial guess, three Newton steps on 1/√x in f32, one correction).
/// Returns NaN for negative inputs and 0 for 0.
pub fn sqrt(x: f32) -> f32 {
    if x.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    if x == 0.0 || x == f32::INFINITY {
        return x;
    }
    // Scale subnormals into the normal range: sqrt(x) = sqrt(x * 2^64) / 2^32.
    let (x, post) = if x < f32::MIN_POSITIVE {
        (x * 18_446_744_073_709_551_616.0, 1.0 / 4_294_967_296.0)
    } else {
        (x, 1.0)
    };
    let mut y = f32::from_bits(0x5f37_59df - (x.to_bits() >> 1)); // ≈ 1/sqrt(x)
    for _ in 0..3 {
        y = y * (1.5 - 0.5 * x * y * y);
    }
    let s = x * y; // ≈ sqrt(x)
                   // One Newton step on s itself removes the last rounding bias.
    (0.5 * (s + x / s)) * post
}

/// `0.5 · x · (1 + erf(x / √2))`, the exact GELU, in f32.
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * core::f32::consts::FRAC_1_SQRT_2))
}

/// `x · sigmoid(x)` (SiLU / swish) in f32.
pub fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}

/// f64 reference functions (the "exact" math the int8 tables and error bounds refer to).
#[cfg(any(test, feature = "std"))]
pub mod exact {
    /// Error function in f64: Maclaurin series for |x| < 2.5, continued fraction for erfc beyond.
    /// Absolute error below 1e-13 (checked against published values in the tests).
    pub fn erf(x: f64) -> f64 {
        if x.is_nan() {
            return x;
        }
        let a = x.abs();
        let y = if a < 2.5 {
            // erf(a) = 2/sqrt(pi) * sum (-1)^n a^(2n+1) / (n! (2n+1))
            let a2 = a * a;
            let mut term = a; // (-1)^n a^(2n+1) / n!
            let mut sum = a;
            let mut n = 0.0;
            loop {
                n += 1.0;
                term *= -a2 / n;
                let contrib = term / (2.0 * n + 1.0);
                sum += contrib;
                if contrib.abs() <= 1e-17 * sum.abs() {
                    break;
                }
            }
            sum * core::f64::consts::FRAC_2_SQRT_PI
        } else if a > 6.0 {
            1.0
        } else {
            // erfc(a) = exp(-a^2)/sqrt(pi) / (a + (1/2)/(a + 1/(a + (3/2)/(a + ...))))
            let mut k = a;
            for i in (1..80).rev() {
                k = a + (i as f64 * 0.5) / k;
            }
            1.0 - (-a * a).exp() / (core::f64::consts::PI.sqrt() * k)
        };
        if x < 0.0 {
            -y
        } else {
            y
        }
    }

    /// Exact GELU, `0.5 · x · (1 + erf(x / √2))`.
    pub fn gelu(x: f64) -> f64 {
        0.5 * x * (1.0 + erf(x * core::f64::consts::FRAC_1_SQRT_2))
    }

    /// Logistic sigmoid.
    pub fn sigmoid(x: f64) -> f64 {
        if x >= 0.0 {
            1.0 / (1.0 + (-x).exp())
        } else {
            let e = x.exp();
            e / (1.0 + e)
        }
    }

    /// SiLU, `x · sigmoid(x)`.
    pub fn silu(x: f64) -> f64 {
        x * sigmoid(x)
    }

    /// Hyperbolic tangent.
    pub fn tanh(x: f64) -> f64 {
        x.tanh()
    }
}
