//! The softmax specification: plain loops, no `unsafe`.

use super::{SoftmaxF32Params, SoftmaxParams, OUTPUT_ZERO_POINT};
use crate::quant::round_ties_even;

/// int8 softmax (see the module docs for the arithmetic and its bound).
pub fn eval_i8(p: &SoftmaxParams<'_>, input: &[i8], output: &mut [i8]) {
    let depth = p.shape.depth as usize;
    for (x, y) in input
        .chunks_exact(depth)
        .zip(output.chunks_exact_mut(depth))
    {
        let max = x.iter().copied().max().unwrap_or(0) as i32;
        let entry = |v: i8| p.table[(max - v as i32) as usize] as u64;
        // T >= table[0] = 2^24 > 0 (the row's maximum contributes it).
        let total: u64 = x.iter().map(|&v| entry(v)).sum();
        for (yi, &xi) in y.iter_mut().zip(x) {
            let q = (entry(xi) * 256 + total / 2) / total;
            *yi = (q as i32 + OUTPUT_ZERO_POINT).min(i8::MAX as i32) as i8;
        }
    }
}

/// f32 softmax: `exp(beta · (x - max)) / Σ`.
pub fn eval_f32(p: &SoftmaxF32Params, input: &[f32], output: &mut [f32]) {
    let depth = p.shape.depth as usize;
    for (x, y) in input
        .chunks_exact(depth)
        .zip(output.chunks_exact_mut(depth))
    {
        let max = x
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, |m, v| if v > m { v } else { m });
        let mut sum = 0f32;
        for (yi, &xi) in y.iter_mut().zip(x) {
            *yi = exp_f32(p.beta * (xi - max));
            sum += *yi;
        }
        let inv = 1.0 / sum;
        for yi in y.iter_mut() {
            *yi *= inv;
        }
    }
}

/// `e^x` for f32 without `std`: `x = k·ln2 + r` with `|r| ≤ ln2/2` (Cody–Waite split of ln 2),
/// `e^r` by its degree-7 Taylor polynomial, times `2^k`. Relative error below 1e-6; NaN stays
/// NaN, large inputs give `inf`, very negative ones 0.
pub fn exp_f32(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75; // 0x3f317200: few mantissa bits, so k·LN2_HI is exact
    const LN2_LO: f32 = 1.428_606_8e-6;
    if x.is_nan() {
        return x;
    }
    if x > 88.722_84 {
        return f32::INFINITY;
    }
    if x < -103.972_08 {
        return 0.0;
    }
    let k = round_ties_even(x * core::f32::consts::LOG2_E);
    let kf = k as f32;
    let r = (x - kf * LN2_HI) - kf * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (1.0 / 2.0
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    scale_by_pow2(p, k)
}

/// `x · 2^k` for `k` in `[-150, 128]`, in two steps so that subnormal and top results are right.
fn scale_by_pow2(x: f32, k: i32) -> f32 {
    let pow2 = |e: i32| f32::from_bits(((e + 127) as u32) << 23); // e in [-126, 127]
    if k > 127 {
        x * pow2(127) * pow2(k - 127)
    } else if k < -126 {
        x * pow2(-126) * pow2(k + 126)
    } else {
        x * pow2(k)
    }
}
