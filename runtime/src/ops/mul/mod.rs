//! Element-wise Mul with broadcasting ([`BroadcastShape`]).
//!
//! int8: `y = requantize((x1 - z1) * (x2 - z2), M, shift) + z_out` with `M · 2^shift` the Q31 form
//! of `s1 * s2 / s_out` (one rounding), then the fused clamp.

// Optimized variant, selected by `crate::arch::ops_table_avx2`.
#[cfg(target_arch = "x86_64")]
pub mod avx2;
// f32 Mul on sixteen lanes.
#[cfg(target_arch = "x86_64")]
pub mod avx512;
pub mod reference;
// Cortex-M4 variant, selected by `crate::arch::ops_table_compile_time` on `thumbv7em-*`
// (portable Rust: built and tested on every target).
pub mod dsp;
#[cfg(test)]
mod tests;

use super::{BroadcastShape, ClampF32, ClampI8};
use crate::Error;

/// int8 Mul parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MulParams {
    /// Shapes.
    pub shape: BroadcastShape,
    /// First input's zero point.
    pub input1_zero_point: i32,
    /// Second input's zero point.
    pub input2_zero_point: i32,
    /// Output zero point.
    pub output_zero_point: i32,
    /// Q31 multiplier for `s1 * s2 / s_out`.
    pub output_multiplier: i32,
    /// Shift for `s1 * s2 / s_out` (positive = left).
    pub output_shift: i32,
    /// Fused activation.
    pub activation: ClampI8,
}

/// f32 Mul parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MulF32Params {
    /// Shapes.
    pub shape: BroadcastShape,
    /// Fused activation.
    pub activation: ClampF32,
}

/// Validates int8 params against the two input lengths and the output length.
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub fn check_i8(
    p: &MulParams,
    input1_len: usize,
    input2_len: usize,
    output_len: usize,
) -> Result<(), Error> {
    p.shape.check(input1_len, input2_len, output_len)?;
    super::check_zero_point(p.input1_zero_point)?;
    super::check_zero_point(p.input2_zero_point)?;
    super::check_zero_point(p.output_zero_point)?;
    super::check_multiplier(p.output_multiplier, p.output_shift)?;
    super::check_clamp_i8(p.activation)
}

/// Validates f32 params against the two input lengths and the output length.
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub fn check_f32(
    p: &MulF32Params,
    input1_len: usize,
    input2_len: usize,
    output_len: usize,
) -> Result<(), Error> {
    p.shape.check(input1_len, input2_len, output_len)?;
    super::check_clamp_f32(p.activation)
}

/// Runs the int8 kernel. Requires a successful [`check_i8`].
#[inline]
pub fn eval_i8(p: &MulParams, input1: &[i8], input2: &[i8], output: &mut [i8]) {
    (super::kernel!(mul_i8))(p, input1, input2, output)
}

/// Runs the f32 kernel. Requires a successful [`check_f32`].
#[inline]
pub fn eval_f32(p: &MulF32Params, input1: &[f32], input2: &[f32], output: &mut [f32]) {
    (super::kernel!(mul_f32))(p, input1, input2, output)
}
