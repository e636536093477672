//! The LayerNorm specification: plain integer loops, no `unsafe`, no floating point in the int8 path.

use super::{LayerNormF32Params, LayerNormParams};
use crate::ops::fmath;
use crate::quant::requantize;

/// `⌊√v⌋` for `v: u64`, bit by bit (no floating point, no division).
pub fn isqrt_u64(v: u64) -> u64 {
    let mut rem = v;
    let mut root = 0u64;
    let mut bit = 1u64 << 62;
    while bit > v {
        bit >>= 2;
    }
    while bit != 0 {
        if rem >= root + bit {
            rem -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    root
}

/// Per-row normaliser: `(inv, shift)` such that `nᵢ·2¹⁶ ≈ (C·xᵢ − S)·inv / 2^shift`;
/// `None` when the row has zero variance and ε is zero (all `nᵢ` are 0).
pub(crate) fn row_normaliser(var_q16: u64) -> Option<(i64, u32)> {
    if var_q16 == 0 {
        return None;
    }
    let bits = 64 - var_q16.leading_zeros() as i32; // 1..=64
    let k = (62 - bits).div_euclid(2); // v' = v · 4^k in [2^60, 2^62)
    let v = if k >= 0 {
        var_q16 << (2 * k)
    } else {
        var_q16 >> (-2 * k)
    };
    let den = isqrt_u64(v); // in [2^30, 2^31)
    let inv = (1u64 << 62) / den.max(1);
    Some((inv as i64, (38 - k) as u32))
}

/// int8 LayerNorm. Requires a successful [`super::check_i8`].
pub fn eval_i8(p: &LayerNormParams<'_>, input: &[i8], output: &mut [i8]) {
    let c = p.cols as usize;
    let zp = p.input_zero_point;
    for (x, y) in input.chunks_exact(c).zip(output.chunks_exact_mut(c)) {
        let mut s: i64 = 0;
        let mut q: u64 = 0;
        for &v in x {
            let d = v as i32 - zp;
            s += d as i64;
            q += (d * d) as u64;
        }
        // C·Q − S² ≥ 0 (Cauchy–Schwarz); below 2^44 for cols ≤ 2^14.
        let var = (c as u64 * q).saturating_sub((s * s) as u64);
        let var_q16 = (var << 16).saturating_add(p.epsilon_q16);
        let norm = row_normaliser(var_q16);
        for (i, (&v, out)) in x.iter().zip(y.iter_mut()).enumerate() {
            let n_q16: i32 = match norm {
                Some((inv, shift)) => {
                    let num = c as i64 * (v as i32 - zp) as i64 - s; // |num| < 2^23
                    let wide = num * inv; // |.| < 2^55
                    ((wide + (1i64 << (shift - 1))) >> shift) as i32
                }
                None => 0,
            };
            let r = requantize(n_q16, p.gamma_multiplier[i], p.gamma_shift[i])
                .saturating_add(p.beta_q[i])
                .saturating_add(p.output_zero_point);
            *out = r.clamp(-128, 127) as i8;
        }
    }
}

/// f32 LayerNorm. Requires a successful [`super::check_f32`].
///
/// Mean and variance (two passes) are summed in [`fmath::sum_lanes`]'s order (eight interleaved
/// partial sums, then a fixed tree), which the AVX2 variant reproduces bit for bit.
pub fn eval_f32(p: &LayerNormF32Params<'_>, input: &[f32], output: &mut [f32]) {
    let c = p.cols as usize;
    for (x, y) in input.chunks_exact(c).zip(output.chunks_exact_mut(c)) {
        let mean = fmath::sum_lanes(x) / c as f32;
        let var = fmath::sum_lanes_by(x, |v| (v - mean) * (v - mean)) / c as f32;
        let inv = 1.0 / fmath::sqrt(var + p.epsilon);
        for (i, (&v, o)) in x.iter().zip(y.iter_mut()).enumerate() {
            *o = (v - mean) * inv * p.gamma[i] + p.beta[i];
        }
    }
}
