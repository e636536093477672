//! The softmax specification: plain loops, no `unsafe`.

use super::{SoftmaxF32Params, SoftmaxParams, OUTPUT_ZERO_POINT};
use crate::ops::fmath;

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

/// f32 softmax: `exp(beta · (x - max)) / Σ`, with [`fmath::exp`] and the row sum in
/// [`fmath::sum_lanes`]'s order (eight interleaved partial sums), so that the AVX2 variant is
/// bit-exact.
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
        for (yi, &xi) in y.iter_mut().zip(x) {
            *yi = fmath::exp(p.beta * (xi - max));
        }
        let inv = 1.0 / fmath::sum_lanes(y);
        for yi in y.iter_mut() {
            *yi *= inv;
        }
    }
}
