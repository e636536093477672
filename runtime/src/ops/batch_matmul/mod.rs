//! BatchMatMul of two activations: `out[b] = A[b] · B[b]` (or `A[b] · B[b]ᵀ`), as in attention's
//! `Q·Kᵀ` and `P·V`.
//!
//! Shapes: `A [batch, m, k]`, `B [batch, k, n]` (or `[batch, n, k]` with `transpose_b`), output
//! `[batch, m, n]`, all row-major.
//!
//! int8: both operands are asymmetric per-tensor activations, so
//! `acc = Σ_k (a − a_zp)(b − b_zp)` (wrapping `i32`; `k ≤ MAX_DEPTH` keeps it exact), then one
//! per-tensor [`requantize_to_i8`](crate::quant::requantize_to_i8) for `s_a·s_b/s_out`, the output
//! zero point and the fused clamp. Within 1 LSB of the f64 math (one rounding, tested).
//!
//! With `transpose_b` the inner loop is the offset dot product of [`crate::arch`], so
//! [`eval_i8_with`] runs it on the AVX2/NEON/DSP variants, bit-exact to [`reference::eval_i8`].

// Optimized variant, selected by `crate::arch::ops_table_avx2`.
#[cfg(target_arch = "x86_64")]
pub mod avx2;
// AVX-512 VNNI variant for attention-sized heads, tried first by `avx2::eval_i8_vnni_detected`.
#[cfg(all(target_arch = "x86_64", any(test, feature = "std")))]
mod avx512;
// Cortex-M4 DSP variant, selected by `crate::arch::ops_table_compile_time` on thumbv7em.
pub mod dsp;
// f32 variants (AVX, AVX-512F), selected by `crate::arch::ops_table_avx2`.
#[cfg(target_arch = "x86_64")]
pub mod f32_avx;
pub mod reference;
#[cfg(test)]
mod tests;

use super::{ClampF32, ClampI8};
use crate::arch::DotKernel;
use crate::Error;

/// Largest accumulation depth: `2¹⁵ · 255²` < 2³¹, so int8 sums never wrap.
pub const MAX_DEPTH: u32 = 1 << 15;

/// Sizes of a BatchMatMul.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BatchMatMulShape {
    /// Number of independent products.
    pub batch: u32,
    /// Rows of `A` and of the output.
    pub m: u32,
    /// Accumulation depth.
    pub k: u32,
    /// Columns of the output.
    pub n: u32,
    /// `B` is stored `[batch, n, k]` (multiply by its transpose).
    pub transpose_b: bool,
}

impl BatchMatMulShape {
    /// Elements of `(A, B, output)`, or an error when a size is 0, too deep, or overflows.
    pub fn lens(&self) -> Result<(usize, usize, usize), Error> {
        if self.k > MAX_DEPTH {
            return Err(super::param_err());
        }
        Ok((
            super::elements(&[self.batch, self.m, self.k])?,
            super::elements(&[self.batch, self.k, self.n])?,
            super::elements(&[self.batch, self.m, self.n])?,
        ))
    }
}

/// int8 BatchMatMul parameters.
#[derive(Debug, Clone, Copy)]
pub struct BatchMatMulParams {
    /// Sizes.
    pub shape: BatchMatMulShape,
    /// Zero point of `A`.
    pub a_zero_point: i32,
    /// Zero point of `B`.
    pub b_zero_point: i32,
    /// Output zero point.
    pub output_zero_point: i32,
    /// Q31 multiplier for `s_a · s_b / s_out`.
    pub output_multiplier: i32,
    /// Shift (positive = left).
    pub output_shift: i32,
    /// Fused activation.
    pub activation: ClampI8,
}

/// f32 BatchMatMul parameters.
#[derive(Debug, Clone, Copy)]
pub struct BatchMatMulF32Params {
    /// Sizes.
    pub shape: BatchMatMulShape,
    /// Fused activation.
    pub activation: ClampF32,
}

/// Validates int8 params against the lengths of `A`, `B` and the output.
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub fn check_i8(
    p: &BatchMatMulParams,
    a_len: usize,
    b_len: usize,
    out_len: usize,
) -> Result<(), Error> {
    let (la, lb, lo) = p.shape.lens()?;
    super::expect_len(a_len, la)?;
    super::expect_len(b_len, lb)?;
    super::expect_len(out_len, lo)?;
    super::check_zero_point(p.a_zero_point)?;
    super::check_zero_point(p.b_zero_point)?;
    super::check_zero_point(p.output_zero_point)?;
    super::check_multiplier(p.output_multiplier, p.output_shift)?;
    super::check_clamp_i8(p.activation)
}

/// Validates f32 params against the lengths of `A`, `B` and the output.
pub fn check_f32(
    p: &BatchMatMulF32Params,
    a_len: usize,
    b_len: usize,
    out_len: usize,
) -> Result<(), Error> {
    let (la, lb, lo) = p.shape.lens()?;
    super::expect_len(a_len, la)?;
    super::expect_len(b_len, lb)?;
    super::expect_len(out_len, lo)?;
    super::check_clamp_f32(p.activation)
}

/// Runs the int8 kernel selected by [`super::kernels`]. Requires a successful [`check_i8`].
#[inline]
pub fn eval_i8(p: &BatchMatMulParams, a: &[i8], b: &[i8], out: &mut [i8]) {
    (super::kernel!(batch_matmul_i8))(p, a, b, out)
}

/// Runs the int8 kernel with the given dot-product implementation (bit-exact to [`eval_i8`]).
/// With `transpose_b` every output is one offset dot product; otherwise `B`'s columns are
/// strided and the reference loop runs.
pub fn eval_i8_with(dot: &DotKernel, p: &BatchMatMulParams, a: &[i8], b: &[i8], out: &mut [i8]) {
    if !p.shape.transpose_b {
        return reference::eval_i8(p, a, b, out);
    }
    let (m, k, n) = (p.shape.m as usize, p.shape.k as usize, p.shape.n as usize);
    for ((ab, bb), ob) in a
        .chunks_exact(m * k)
        .zip(b.chunks_exact(n * k))
        .zip(out.chunks_exact_mut(m * n))
    {
        for (arow, orow) in ab.chunks_exact(k).zip(ob.chunks_exact_mut(n)) {
            for (bcol, o) in bb.chunks_exact(k).zip(orow.iter_mut()) {
                let acc = dot.dot_offset_i8(arow, -p.a_zero_point, bcol, -p.b_zero_point);
                *o = reference::finish(p, acc);
            }
        }
    }
}

/// Runs the f32 kernel selected by [`super::kernels`]. Requires a successful [`check_f32`].
#[inline]
pub fn eval_f32(p: &BatchMatMulF32Params, a: &[f32], b: &[f32], out: &mut [f32]) {
    (super::kernel!(batch_matmul_f32))(p, a, b, out)
}
