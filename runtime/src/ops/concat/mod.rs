//! Concat along one axis. Tensors are viewed as `[outer, axis_i, inner]`; input `i`'s axis size
//! is its length divided by `outer * inner`, and the output's is their sum.
//!
//! int8: each input may have its own quantization; it is requantized to the output's with
//! `requantize(x - z_i, M_i, shift_i) + z_out` (one rounding, from [`concat_requant`]). An input
//! with the output's zero point and the identity multiplier (`2^30`, shift 1) is copied, which
//! gives the same bytes.

pub mod reference;
#[cfg(test)]
mod tests;

use crate::quant::quantize_multiplier;
use crate::Error;

/// Most inputs one Concat takes (so callers can gather input slices in a fixed array).
pub const MAX_INPUTS: usize = 16;

/// Multiplier and shift of the identity rescale (`2^30 · 2^(1-31) = 1`).
pub const IDENTITY: (i32, i32) = (1 << 30, 1);

/// `(multiplier, shift)` that rescales an input of scale `input_scale` to `output_scale`.
pub fn concat_requant(input_scale: f64, output_scale: f64) -> Option<(i32, i32)> {
    quantize_multiplier(input_scale / output_scale)
}

/// int8 Concat parameters.
#[derive(Debug, Clone, Copy)]
pub struct ConcatParams<'a> {
    /// Product of the dims before the axis.
    pub outer: u32,
    /// Product of the dims after the axis.
    pub inner: u32,
    /// Zero point of each input.
    pub input_zero_points: &'a [i32],
    /// Q31 multiplier of each input for `s_i / s_out`.
    pub input_multipliers: &'a [i32],
    /// Shift of each input for `s_i / s_out`.
    pub input_shifts: &'a [i32],
    /// Output zero point.
    pub output_zero_point: i32,
}

/// f32 Concat parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConcatF32Params {
    /// Product of the dims before the axis.
    pub outer: u32,
    /// Product of the dims after the axis.
    pub inner: u32,
}

fn check_lens(
    outer: u32,
    inner: u32,
    input_lens: &[usize],
    output_len: usize,
) -> Result<(), Error> {
    if input_lens.is_empty() || input_lens.len() > MAX_INPUTS {
        return Err(super::param_err());
    }
    let row = super::elements(&[outer, inner])?;
    let mut total = 0usize;
    for &len in input_lens {
        if len == 0 || len % row != 0 {
            return Err(super::shape_err());
        }
        total = total.checked_add(len).ok_or(super::shape_err())?;
    }
    super::expect_len(output_len, total)
}

/// Validates int8 params against every input length and the output length.
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub fn check_i8(
    p: &ConcatParams<'_>,
    input_lens: &[usize],
    output_len: usize,
) -> Result<(), Error> {
    check_lens(p.outer, p.inner, input_lens, output_len)?;
    let n = input_lens.len();
    if p.input_zero_points.len() != n {
        return Err(super::shape_err());
    }
    super::check_per_channel(p.input_multipliers, p.input_shifts, n)?;
    for &zp in p.input_zero_points {
        super::check_zero_point(zp)?;
    }
    super::check_zero_point(p.output_zero_point)
}

/// Validates f32 params against every input length and the output length.
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub fn check_f32(
    p: &ConcatF32Params,
    input_lens: &[usize],
    output_len: usize,
) -> Result<(), Error> {
    check_lens(p.outer, p.inner, input_lens, output_len)
}

/// Runs the int8 kernel. Requires a successful [`check_i8`] with these inputs' lengths.
#[inline]
pub fn eval_i8(p: &ConcatParams<'_>, inputs: &[&[i8]], output: &mut [i8]) {
    reference::eval_i8(p, inputs, output)
}

/// Runs the f32 kernel. Requires a successful [`check_f32`] with these inputs' lengths.
#[inline]
pub fn eval_f32(p: &ConcatF32Params, inputs: &[&[f32]], output: &mut [f32]) {
    reference::eval_f32(p, inputs, output)
}
