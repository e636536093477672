//! Softmax over the last axis: tensors are viewed as `[outer, depth]`.
//!
//! # int8: a 256-entry table and integer division
//!
//! With `d = max(row) - x` (in `0..=255`), the table built offline by [`exp_table`] holds
//! `t[d] = round(2^24 · exp(-beta · s_in · d))`, so `t[0] = 2^24` exactly. Per row the kernel
//! sums `T = Σ t[d_j]` in `u64` and writes `q = ⌊(256 · t[d_i] + ⌊T/2⌋) / T⌋ - 128`, clamped to
//! `[-128, 127]`: the output scale is 1/256 and its zero point -128 (TFLite's convention).
//!
//! **Bound.** With `N = depth`, each table entry is within 1/2 of `2^24 · e_i` and `T ≥ 2^24`,
//! so `|t_i/T - e_i/Σe| ≤ (N + 1) / 2^25`, i.e. `(N + 1) / 2^17` output LSB, plus `2^-25`
//! from the integer rounding. For `N ≤` [`MAX_DEPTH`] (32 768) that is below 1/4 LSB, so the
//! output is **within 1 LSB** of `quantize(softmax(dequantize(x)))` computed exactly; tests check
//! it, at the largest depth too.
//!
//! # f32
//!
//! `exp(beta · (x - max))` with [`fmath::exp`](super::fmath::exp) (range reduction and a
//! degree-6 polynomial; `no_std` has no `exp`), relative error below 4e-7, normalised by the
//! row sum taken in [`fmath::sum_lanes`](super::fmath::sum_lanes)'s order (eight interleaved
//! partial sums, then a fixed tree), which the AVX2 variant reproduces bit for bit.

// Optimized variant, selected by `crate::arch::ops_table_avx2`.
#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
// Dequantize, scale, mask, f32 softmax and Quantize as one int8 op (Softmax version 2).
pub mod quantized;
pub mod reference;
#[cfg(test)]
mod tests;

use crate::Error;

/// Fixed-point position of the table: `t[0] = 2^TABLE_BITS` stands for `exp(0) = 1`.
pub const TABLE_BITS: u32 = 24;
/// Number of table entries (one per possible `max - x` of int8 values).
pub const TABLE_LEN: usize = 256;
/// Largest softmax depth accepted (keeps the error bound above below 1 LSB).
pub const MAX_DEPTH: u32 = 1 << 15;
/// Output zero point of int8 softmax (output scale is 1/256).
pub const OUTPUT_ZERO_POINT: i32 = -128;
/// Output scale of int8 softmax.
pub const OUTPUT_SCALE: f32 = 1.0 / 256.0;

/// Sizes of a softmax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SoftmaxShape {
    /// Number of independent rows.
    pub outer: u32,
    /// Length of each row (the softmax axis).
    pub depth: u32,
}

/// int8 softmax parameters.
#[derive(Debug, Clone, Copy)]
pub struct SoftmaxParams<'a> {
    /// Sizes.
    pub shape: SoftmaxShape,
    /// `TABLE_LEN` entries from [`exp_table`] (input scale and `beta` are folded in).
    pub table: &'a [i32],
}

/// f32 softmax parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SoftmaxF32Params {
    /// Sizes.
    pub shape: SoftmaxShape,
    /// Inverse temperature.
    pub beta: f32,
}

/// The int8 exp table for an input scale and `beta` (offline; needs `std` for `exp`).
#[cfg(any(test, feature = "std"))]
pub fn exp_table(input_scale: f64, beta: f64) -> [i32; TABLE_LEN] {
    let one = (1u32 << TABLE_BITS) as f64;
    let mut t = [0i32; TABLE_LEN];
    for (d, e) in t.iter_mut().enumerate() {
        *e = (one * (-beta * input_scale * d as f64).exp()).round() as i32;
    }
    t
}

fn check_shape(s: &SoftmaxShape, input_len: usize, output_len: usize) -> Result<(), Error> {
    if s.depth > MAX_DEPTH {
        return Err(super::param_err());
    }
    let n = super::elements(&[s.outer, s.depth])?;
    super::expect_len(input_len, n)?;
    super::expect_len(output_len, n)
}

/// Validates int8 params: sizes, and a table with `t[0] = 2^24` and entries in `[0, 2^24]`.
pub fn check_i8(p: &SoftmaxParams<'_>, input_len: usize, output_len: usize) -> Result<(), Error> {
    check_shape(&p.shape, input_len, output_len)?;
    let one = 1i32 << TABLE_BITS;
    if p.table.len() != TABLE_LEN
        || p.table[0] != one
        || p.table.iter().any(|&t| !(0..=one).contains(&t))
    {
        return Err(super::quant_err());
    }
    Ok(())
}

/// Validates f32 params: sizes and a finite, non-negative `beta`.
pub fn check_f32(p: &SoftmaxF32Params, input_len: usize, output_len: usize) -> Result<(), Error> {
    check_shape(&p.shape, input_len, output_len)?;
    if !(p.beta.is_finite() && p.beta >= 0.0) {
        return Err(super::param_err());
    }
    Ok(())
}

/// Runs the int8 kernel selected by [`super::kernels`]. Requires a successful [`check_i8`].
#[inline]
pub fn eval_i8(p: &SoftmaxParams<'_>, input: &[i8], output: &mut [i8]) {
    (super::kernel!(softmax_i8))(p, input, output)
}

/// Runs the f32 kernel. Requires a successful [`check_f32`].
#[inline]
pub fn eval_f32(p: &SoftmaxF32Params, input: &[f32], output: &mut [f32]) {
    (super::kernel!(softmax_f32))(p, input, output)
}
