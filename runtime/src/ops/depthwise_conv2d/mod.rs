//! DepthwiseConv2D over NHWC activations with weights `[kh, kw, in_c * depth_multiplier]`
//! (TFLite's 1HWC layout). Output channel `ic * depth_multiplier + m` convolves input channel
//! `ic` only. Geometry (padding, stride, dilation) as in [`super::conv2d`].

pub mod reference;
pub mod tap_major;
// Cortex-M4 DSP variant, selected by `crate::arch::ops_table_compile_time` on thumbv7em.
pub mod dsp;
#[cfg(test)]
pub(crate) mod tests;
// Optimized variant, selected by `crate::arch::ops_table_avx2`.
#[cfg(target_arch = "x86_64")]
pub mod avx2;
// f32 variants (AVX, AVX-512F), selected by `crate::arch::ops_table_avx2`.
#[cfg(target_arch = "x86_64")]
pub mod f32_avx;
#[cfg(test)]
mod simd_tests;
// AVX-512 VNNI variant, reached only through run-time CPU detection (`std` or tests).
#[cfg(all(target_arch = "x86_64", any(test, feature = "std")))]
pub(crate) mod vnni512;

pub use super::conv2d::Conv2dShape;
use super::{ClampF32, ClampI8};
use crate::Error;

/// int8 DepthwiseConv2D parameters.
#[derive(Debug, Clone, Copy)]
pub struct DepthwiseConv2dParams<'a> {
    /// Geometry; `output[3]` must equal `input[3] * depth_multiplier`.
    pub shape: Conv2dShape,
    /// Output channels per input channel.
    pub depth_multiplier: u32,
    /// Weights `[kh, kw, out_c]`, symmetric per output channel.
    pub weights: &'a [i8],
    /// Bias per output channel at scale `s_in * s_w[c]`.
    pub bias: Option<&'a [i32]>,
    /// Input zero point.
    pub input_zero_point: i32,
    /// Output zero point.
    pub output_zero_point: i32,
    /// Q31 multiplier per output channel for `s_in * s_w[c] / s_out`.
    pub output_multiplier: &'a [i32],
    /// Shift per output channel (positive = left).
    pub output_shift: &'a [i32],
    /// Fused activation.
    pub activation: ClampI8,
}

/// f32 DepthwiseConv2D parameters.
#[derive(Debug, Clone, Copy)]
pub struct DepthwiseConv2dF32Params<'a> {
    /// Geometry; `output[3]` must equal `input[3] * depth_multiplier`.
    pub shape: Conv2dShape,
    /// Output channels per input channel.
    pub depth_multiplier: u32,
    /// Weights `[kh, kw, out_c]`.
    pub weights: &'a [f32],
    /// Bias per output channel.
    pub bias: Option<&'a [f32]>,
    /// Fused activation.
    pub activation: ClampF32,
}

fn check_shape(
    s: &Conv2dShape,
    depth_multiplier: u32,
    weights_len: usize,
    input_len: usize,
    output_len: usize,
) -> Result<(), Error> {
    s.check_spatial()?;
    let [kh, kw] = s.kernel;
    if depth_multiplier == 0 || s.input[3] as u64 * depth_multiplier as u64 != s.output[3] as u64 {
        return Err(super::shape_err());
    }
    super::check_depth(super::elements(&[kh, kw])?)?;
    super::expect_len(weights_len, super::elements(&[kh, kw, s.output[3]])?)?;
    super::expect_len(input_len, s.input_len())?;
    super::expect_len(output_len, s.output_len())
}

/// Validates int8 params against the input and output lengths.
#[cfg_attr(target_os = "linux", link_section = ".text.sorted.edgeloop.conv")]
pub fn check_i8(
    p: &DepthwiseConv2dParams<'_>,
    input_len: usize,
    output_len: usize,
) -> Result<(), Error> {
    check_shape(
        &p.shape,
        p.depth_multiplier,
        p.weights.len(),
        input_len,
        output_len,
    )?;
    let out_c = p.shape.output[3] as usize;
    super::check_bias(p.bias, out_c)?;
    super::check_zero_point(p.input_zero_point)?;
    super::check_zero_point(p.output_zero_point)?;
    super::check_per_channel(p.output_multiplier, p.output_shift, out_c)?;
    super::check_clamp_i8(p.activation)
}

/// Validates f32 params against the input and output lengths.
pub fn check_f32(
    p: &DepthwiseConv2dF32Params<'_>,
    input_len: usize,
    output_len: usize,
) -> Result<(), Error> {
    check_shape(
        &p.shape,
        p.depth_multiplier,
        p.weights.len(),
        input_len,
        output_len,
    )?;
    super::check_bias(p.bias, p.shape.output[3] as usize)?;
    super::check_clamp_f32(p.activation)
}

/// Runs the int8 kernel selected by [`super::kernels`]. Requires a successful [`check_i8`].
#[inline]
pub fn eval_i8(p: &DepthwiseConv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    (super::kernel!(depthwise_conv2d_i8))(p, input, output)
}

/// Runs the f32 kernel selected by [`super::kernels`]. Requires a successful [`check_f32`].
#[inline]
pub fn eval_f32(p: &DepthwiseConv2dF32Params<'_>, input: &[f32], output: &mut [f32]) {
    (super::kernel!(depthwise_conv2d_f32))(p, input, output)
}
