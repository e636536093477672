//! Element-wise Add with broadcasting ([`BroadcastShape`]).
//!
//! int8 follows TFLite: with `twice_max = 2 * max(s1, s2)`, each input minus its zero point is
//! shifted left by [`LEFT_SHIFT`] and scaled by `s_i / twice_max` (a multiplier below 1), the two
//! are summed exactly, and the sum is requantized by `twice_max / (2^LEFT_SHIFT * s_out)`.
//! [`AddRequant::new`] computes the three multipliers offline. Each of the three requantizations
//! rounds once; the two input roundings cost at most `twice_max / (2^20 * s_out)` output LSB.

pub mod reference;
pub(crate) mod rows;
// Cortex-M4 variant, selected by `crate::arch::ops_table_compile_time` on `thumbv7em-*`
// (portable Rust: built and tested on every target).
pub mod dsp;
// Optimized variant, selected by `crate::arch::ops_table_avx2`.
#[cfg(target_arch = "x86_64")]
pub mod avx2;
// Residual adds (no broadcasting) on sixteen lanes; everything else goes to `avx2`.
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(test)]
pub(crate) mod tests;

use super::{BroadcastShape, ClampF32, ClampI8};
use crate::quant::quantize_multiplier;
use crate::Error;

/// Left shift applied to both inputs before scaling (TFLite's value for int8).
pub const LEFT_SHIFT: i32 = 20;

/// The three `(multiplier, shift)` pairs of an int8 Add, computed offline from real scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AddRequant {
    /// For `s1 / twice_max` (shift ≤ 0).
    pub input1: (i32, i32),
    /// For `s2 / twice_max` (shift ≤ 0).
    pub input2: (i32, i32),
    /// For `twice_max / (2^LEFT_SHIFT * s_out)`.
    pub output: (i32, i32),
}

impl AddRequant {
    /// Multipliers for input scales `s1`, `s2` and output scale `s_out`; `None` when a scale
    /// is not finite and positive or a ratio is not representable.
    pub fn new(s1: f64, s2: f64, s_out: f64) -> Option<AddRequant> {
        if !(s1 > 0.0 && s2 > 0.0 && s_out > 0.0) {
            return None;
        }
        let twice_max = 2.0 * if s1 > s2 { s1 } else { s2 };
        Some(AddRequant {
            input1: quantize_multiplier(s1 / twice_max)?,
            input2: quantize_multiplier(s2 / twice_max)?,
            output: quantize_multiplier(twice_max / ((1u32 << LEFT_SHIFT) as f64 * s_out))?,
        })
    }
}

/// int8 Add parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AddParams {
    /// Shapes.
    pub shape: BroadcastShape,
    /// First input's zero point.
    pub input1_zero_point: i32,
    /// Second input's zero point.
    pub input2_zero_point: i32,
    /// Output zero point.
    pub output_zero_point: i32,
    /// Multipliers from [`AddRequant::new`].
    pub requant: AddRequant,
    /// Fused activation.
    pub activation: ClampI8,
}

/// f32 Add parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AddF32Params {
    /// Shapes.
    pub shape: BroadcastShape,
    /// Fused activation.
    pub activation: ClampF32,
}

/// Validates int8 params against the two input lengths and the output length.
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub fn check_i8(
    p: &AddParams,
    input1_len: usize,
    input2_len: usize,
    output_len: usize,
) -> Result<(), Error> {
    p.shape.check(input1_len, input2_len, output_len)?;
    super::check_zero_point(p.input1_zero_point)?;
    super::check_zero_point(p.input2_zero_point)?;
    super::check_zero_point(p.output_zero_point)?;
    let r = &p.requant;
    super::check_multiplier(r.input1.0, r.input1.1)?;
    super::check_multiplier(r.input2.0, r.input2.1)?;
    super::check_multiplier(r.output.0, r.output.1)?;
    // Input multipliers below 1 keep each scaled input under 2^28, so their sum cannot overflow.
    if r.input1.1 > 0 || r.input2.1 > 0 {
        return Err(super::quant_err());
    }
    super::check_clamp_i8(p.activation)
}

/// Validates f32 params against the two input lengths and the output length.
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub fn check_f32(
    p: &AddF32Params,
    input1_len: usize,
    input2_len: usize,
    output_len: usize,
) -> Result<(), Error> {
    p.shape.check(input1_len, input2_len, output_len)?;
    super::check_clamp_f32(p.activation)
}

/// Runs the int8 kernel (the [`super::kernels`] entry). Requires a successful [`check_i8`].
#[inline]
pub fn eval_i8(p: &AddParams, input1: &[i8], input2: &[i8], output: &mut [i8]) {
    (super::kernel!(add_i8))(p, input1, input2, output)
}

/// Runs the f32 kernel. Requires a successful [`check_f32`].
#[inline]
pub fn eval_f32(p: &AddF32Params, input1: &[f32], input2: &[f32], output: &mut [f32]) {
    (super::kernel!(add_f32))(p, input1, input2, output)
}
