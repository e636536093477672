//! Max, average and global average pooling over NHWC activations.
//!
//! - Max/Avg pooling: sliding `[kh, kw]` windows with stride and padding; padded positions are
//!   ignored (the average divides by the number of valid taps, ONNX's `count_include_pad = 0`).
//!   int8: input and output share scale and zero point (as in TFLite); the average rounds half
//!   away from zero.
//! - Global average pooling: `[n, h, w, c] -> [n, 1, 1, c]`; int8 requantizes
//!   `Σ (x - z_in)` by `s_in / (s_out * h * w)` ([`global_avg_requant`]), one rounding. Global
//!   max pooling is [`eval_max_i8`] with a window covering the whole input.

pub mod channel_major;
pub mod reference;
#[cfg(test)]
mod tests;

use super::{ClampF32, ClampI8, Dims, Padding};
use crate::quant::quantize_multiplier;
use crate::Error;

/// Geometry of a windowed pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PoolShape {
    /// Input `[n, h, w, c]`.
    pub input: Dims,
    /// Output `[n, out_h, out_w, c]`.
    pub output: Dims,
    /// Window `[kh, kw]`.
    pub kernel: [u32; 2],
    /// Stride `[sh, sw]`.
    pub stride: [u32; 2],
    /// Padding; each side must be smaller than the window along it, so no window is empty.
    pub padding: Padding,
}

impl PoolShape {
    #[cfg_attr(target_os = "linux", link_section = ".text.sorted.edgeloop.conv")]
    fn check(&self, input_len: usize, output_len: usize) -> Result<(), Error> {
        let [n, h, w, c] = self.input;
        let [on, oh, ow, oc] = self.output;
        super::check_geometry(&[h, w, oh, ow])?;
        super::check_geometry(&self.kernel)?;
        super::check_geometry(&self.stride)?;
        let pad = &self.padding;
        let [kh, kw] = self.kernel;
        if pad.top >= kh || pad.bottom >= kh || pad.left >= kw || pad.right >= kw {
            return Err(super::param_err());
        }
        let want_h = super::window_output(h, pad.top, pad.bottom, kh, self.stride[0], 1)?;
        let want_w = super::window_output(w, pad.left, pad.right, kw, self.stride[1], 1)?;
        if n != on || c != oc || oh != want_h || ow != want_w {
            return Err(super::shape_err());
        }
        super::check_depth(super::elements(&self.kernel)?)?;
        super::expect_len(input_len, super::elements(&self.input)?)?;
        super::expect_len(output_len, super::elements(&self.output)?)
    }
}

/// int8 Max/Avg pooling parameters (input and output share quantization).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PoolParams {
    /// Geometry.
    pub shape: PoolShape,
    /// Fused activation.
    pub activation: ClampI8,
}

/// f32 Max/Avg pooling parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PoolF32Params {
    /// Geometry.
    pub shape: PoolShape,
    /// Fused activation.
    pub activation: ClampF32,
}

/// int8 global average pooling parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GlobalAvgPoolParams {
    /// Input `[n, h, w, c]`; the output is `[n, 1, 1, c]`.
    pub input: Dims,
    /// Input zero point.
    pub input_zero_point: i32,
    /// Output zero point.
    pub output_zero_point: i32,
    /// Q31 multiplier for `s_in / (s_out * h * w)`.
    pub output_multiplier: i32,
    /// Shift for `s_in / (s_out * h * w)` (positive = left).
    pub output_shift: i32,
    /// Fused activation.
    pub activation: ClampI8,
}

/// f32 global average pooling parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GlobalAvgPoolF32Params {
    /// Input `[n, h, w, c]`; the output is `[n, 1, 1, c]`.
    pub input: Dims,
    /// Fused activation.
    pub activation: ClampF32,
}

/// `(multiplier, shift)` for an int8 global average over `h * w` positions (offline).
pub fn global_avg_requant(
    input_scale: f64,
    output_scale: f64,
    positions: u32,
) -> Option<(i32, i32)> {
    quantize_multiplier(input_scale / (output_scale * positions as f64))
}

/// Validates int8 Max/Avg pooling params.
#[cfg_attr(target_os = "linux", link_section = ".text.sorted.edgeloop.conv")]
pub fn check_i8(p: &PoolParams, input_len: usize, output_len: usize) -> Result<(), Error> {
    p.shape.check(input_len, output_len)?;
    super::check_clamp_i8(p.activation)
}

/// Validates f32 Max/Avg pooling params.
pub fn check_f32(p: &PoolF32Params, input_len: usize, output_len: usize) -> Result<(), Error> {
    p.shape.check(input_len, output_len)?;
    super::check_clamp_f32(p.activation)
}

fn check_global(input: &Dims, input_len: usize, output_len: usize) -> Result<(), Error> {
    let [n, h, w, c] = *input;
    super::check_geometry(&[h, w])?;
    super::check_depth(super::elements(&[h, w])?)?;
    super::expect_len(input_len, super::elements(input)?)?;
    super::expect_len(output_len, super::elements(&[n, c])?)
}

/// Validates int8 global average pooling params.
#[cfg_attr(target_os = "linux", link_section = ".text.sorted.edgeloop.conv")]
pub fn check_global_avg_i8(
    p: &GlobalAvgPoolParams,
    input_len: usize,
    output_len: usize,
) -> Result<(), Error> {
    check_global(&p.input, input_len, output_len)?;
    super::check_zero_point(p.input_zero_point)?;
    super::check_zero_point(p.output_zero_point)?;
    super::check_multiplier(p.output_multiplier, p.output_shift)?;
    super::check_clamp_i8(p.activation)
}

/// Validates f32 global average pooling params.
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub fn check_global_avg_f32(
    p: &GlobalAvgPoolF32Params,
    input_len: usize,
    output_len: usize,
) -> Result<(), Error> {
    check_global(&p.input, input_len, output_len)?;
    super::check_clamp_f32(p.activation)
}

/// int8 max pooling. Requires a successful [`check_i8`].
#[inline]
pub fn eval_max_i8(p: &PoolParams, input: &[i8], output: &mut [i8]) {
    channel_major::eval_max_i8(p, input, output)
}

/// int8 average pooling. Requires a successful [`check_i8`].
#[inline]
pub fn eval_avg_i8(p: &PoolParams, input: &[i8], output: &mut [i8]) {
    channel_major::eval_avg_i8(p, input, output)
}

/// f32 max pooling. Requires a successful [`check_f32`].
#[inline]
pub fn eval_max_f32(p: &PoolF32Params, input: &[f32], output: &mut [f32]) {
    reference::eval_max_f32(p, input, output)
}

/// f32 average pooling. Requires a successful [`check_f32`].
#[inline]
pub fn eval_avg_f32(p: &PoolF32Params, input: &[f32], output: &mut [f32]) {
    reference::eval_avg_f32(p, input, output)
}

/// int8 global average pooling. Requires a successful [`check_global_avg_i8`].
#[inline]
pub fn eval_global_avg_i8(p: &GlobalAvgPoolParams, input: &[i8], output: &mut [i8]) {
    channel_major::eval_global_avg_i8(p, input, output)
}

/// f32 global average pooling. Requires a successful [`check_global_avg_f32`].
#[inline]
pub fn eval_global_avg_f32(p: &GlobalAvgPoolF32Params, input: &[f32], output: &mut [f32]) {
    reference::eval_global_avg_f32(p, input, output)
}
