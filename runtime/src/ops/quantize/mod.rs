//! Quantize (f32 -> int8) and Dequantize (int8 -> f32) at graph edges, with ONNX's semantics:
//! `q = clamp(round_half_even(x / scale) + zero_point, -128, 127)` and
//! `x = (q - zero_point) · scale`, per tensor, in f32.

// Optimized variant, selected by `crate::arch::ops_table_avx2`.
#[cfg(target_arch = "x86_64")]
pub mod avx2;
// Quantize on sixteen lanes.
#[cfg(target_arch = "x86_64")]
pub mod avx512;
// Cortex-M4F variant (rounding by an f32 addition), selected by `crate::arch::ops_table_compile_time` on
// `thumbv7em-*` (portable elsewhere: built and tested on every target).
pub mod dsp;
pub mod reference;
#[cfg(test)]
mod tests;

use crate::Error;

/// Per-tensor quantization of the int8 side.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QuantizeParams {
    /// Scale (finite, positive).
    pub scale: f32,
    /// Zero point in `[-128, 127]`.
    pub zero_point: i32,
}

/// Validates params and lengths (input and output hold the same number of elements).
pub fn check(p: &QuantizeParams, input_len: usize, output_len: usize) -> Result<(), Error> {
    if !(p.scale.is_finite() && p.scale > 0.0) {
        return Err(super::quant_err());
    }
    super::check_zero_point(p.zero_point)?;
    if input_len == 0 {
        return Err(super::shape_err());
    }
    super::expect_len(output_len, input_len)
}

/// f32 -> int8. Requires a successful [`check`].
#[inline]
pub fn eval_quantize(p: &QuantizeParams, input: &[f32], output: &mut [i8]) {
    (super::kernel!(quantize))(p, input, output)
}

/// int8 -> f32. Requires a successful [`check`].
#[inline]
pub fn eval_dequantize(p: &QuantizeParams, input: &[i8], output: &mut [f32]) {
    (super::kernel!(dequantize))(p, input, output)
}
