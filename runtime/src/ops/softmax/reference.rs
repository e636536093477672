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
            let q = div_small(entry(xi) * 256 + total / 2, total);
            *yi = (q as i32 + OUTPUT_ZERO_POINT).min(i8::MAX as i32) as i8;
        }
    }
}

/// `n / d` when the quotient is below 512, as the int8 softmax's is (`t ≤ T`, so
/// `⌊(256·t + ⌊T/2⌋) / T⌋ ≤ 256`): the same value as `/`, from one 32-bit division, without a
/// call to the 64-bit division routine (about 900 bytes of flash on a Cortex-M, and slower).
///
/// With `d` of at most 23 bits, `n < 512·d < 2³²` and the 32-bit division is exact. Otherwise
/// both are shifted right by `s`, so that `d >> s` has 23 bits: `q₀ = ⌊(n >> s) / ((d >> s) + 1)⌋`
/// (`n >> s < 2³²`) is at most `n / d` and short of it by less than 2 (the shifted divisor is
/// too large by at most a factor `1 + 2⁻²²` and the quotient is below 512), so `q₀` or `q₀ + 1`
/// is the quotient: one comparison of `n − q₀·d` with `d` says which.
#[inline]
pub(crate) fn div_small(n: u64, d: u64) -> u64 {
    debug_assert!(d > 0 && n / d < 512);
    let bits = 64 - d.leading_zeros();
    if bits <= 23 {
        return (n as u32 / d as u32) as u64;
    }
    let s = bits - 23;
    let q = ((n >> s) as u32 / ((d >> s) as u32 + 1)) as u64;
    if n - q * d >= d {
        q + 1
    } else {
        q
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
