//! Conv2D over NHWC activations with OHWI weights `[out_c, kh, kw, in_c]`, explicit padding,
//! stride and dilation (groups = 1; depthwise is [`super::depthwise_conv2d`]).
//!
//! Taps that fall in the padding contribute nothing (for int8: as if the input held its zero
//! point there, TFLite's convention).

pub mod reference;
#[cfg(test)]
pub(crate) mod tests;
// Optimized variants (issue 3), selected by `crate::arch::ops_table_*`.
#[cfg(target_arch = "x86_64")]
pub mod avx2;
mod dot_variant;
pub mod dsp;
pub mod pairs;
// f32 variants (AVX, AVX-512F), selected by `crate::arch::ops_table_avx2`.
#[cfg(target_arch = "x86_64")]
pub mod f32_avx;
#[cfg(target_arch = "x86_64")]
pub(crate) mod requant_avx2;
#[cfg(test)]
mod simd_tests;
// VNNI variants, reached only through run-time CPU detection (`std` or tests).
#[cfg(all(target_arch = "x86_64", any(test, feature = "std")))]
pub(crate) mod vnni;
#[cfg(all(target_arch = "x86_64", any(test, feature = "std")))]
pub(crate) mod vnni512;

use super::{ClampF32, ClampI8, Dims, Padding};
use crate::Error;

/// Geometry of a 2-D convolution (also used by depthwise convolution).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Conv2dShape {
    /// Input `[n, h, w, in_c]`.
    pub input: Dims,
    /// Output `[n, out_h, out_w, out_c]`.
    pub output: Dims,
    /// Kernel `[kh, kw]`.
    pub kernel: [u32; 2],
    /// Stride `[sh, sw]`.
    pub stride: [u32; 2],
    /// Dilation `[dh, dw]`.
    pub dilation: [u32; 2],
    /// Padding of the input.
    pub padding: Padding,
}

/// The layer `p` as a FullyConnected over `batch` receptive fields of `k` bytes (the weights
/// `[out_c, kh·kw·in_c]` are its weights as they are).
pub(crate) fn as_fully_connected<'a>(
    p: &Conv2dParams<'a>,
    k: usize,
    out_c: usize,
    batch: u32,
) -> crate::ops::fully_connected::FullyConnectedParams<'a> {
    crate::ops::fully_connected::FullyConnectedParams {
        shape: crate::ops::fully_connected::FullyConnectedShape {
            batch,
            in_features: k as u32,
            out_features: out_c as u32,
        },
        weights: p.weights,
        bias: p.bias,
        input_zero_point: p.input_zero_point,
        output_zero_point: p.output_zero_point,
        output_multiplier: p.output_multiplier,
        output_shift: p.output_shift,
        activation: p.activation,
    }
}

impl Conv2dShape {
    /// Bytes of one output pixel's receptive field, `kh · kw · in_c`.
    pub(crate) fn patch_len(&self) -> usize {
        let [kh, kw] = self.kernel;
        kh as usize * kw as usize * self.input[3] as usize
    }

    /// A 1×1, stride-1, unpadded layer whose output has the input's size: the input pixels are
    /// the receptive fields, so the layer is one FullyConnected over them.
    pub(crate) fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1]
            && self.stride == [1, 1]
            && self.padding == crate::ops::Padding::default()
            && self.output[1..3] == self.input[1..3]
    }

    /// Checks the spatial relations: same batch, every size in range, and output height and
    /// width equal to `(in + pad_before + pad_after - dilation * (k - 1) - 1) / stride + 1`.
    #[cfg_attr(target_os = "linux", link_section = ".text.sorted.edgeloop.conv")]
    pub(crate) fn check_spatial(&self) -> Result<(), Error> {
        let [n, h, w, _] = self.input;
        let [on, oh, ow, _] = self.output;
        super::elements(&self.input)?;
        super::elements(&self.output)?;
        super::check_geometry(&[h, w, oh, ow])?;
        super::check_geometry(&self.kernel)?;
        super::check_geometry(&self.stride)?;
        super::check_geometry(&self.dilation)?;
        super::check_padding(&self.padding)?;
        let pad = &self.padding;
        let want_h = super::window_output(
            h,
            pad.top,
            pad.bottom,
            self.kernel[0],
            self.stride[0],
            self.dilation[0],
        )?;
        let want_w = super::window_output(
            w,
            pad.left,
            pad.right,
            self.kernel[1],
            self.stride[1],
            self.dilation[1],
        )?;
        if n != on || oh != want_h || ow != want_w {
            return Err(super::shape_err());
        }
        Ok(())
    }

    /// Elements of the input tensor (valid after `check_spatial`).
    pub fn input_len(&self) -> usize {
        self.input.iter().map(|&d| d as usize).product()
    }

    /// Elements of the output tensor (valid after `check_spatial`).
    pub fn output_len(&self) -> usize {
        self.output.iter().map(|&d| d as usize).product()
    }
}

/// int8 Conv2D parameters.
#[derive(Debug, Clone, Copy)]
pub struct Conv2dParams<'a> {
    /// Geometry.
    pub shape: Conv2dShape,
    /// Weights `[out_c, kh, kw, in_c]`, symmetric per output channel.
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

/// f32 Conv2D parameters.
#[derive(Debug, Clone, Copy)]
pub struct Conv2dF32Params<'a> {
    /// Geometry.
    pub shape: Conv2dShape,
    /// Weights `[out_c, kh, kw, in_c]`.
    pub weights: &'a [f32],
    /// Bias per output channel.
    pub bias: Option<&'a [f32]>,
    /// Fused activation.
    pub activation: ClampF32,
}

fn check_shape(
    s: &Conv2dShape,
    weights_len: usize,
    input_len: usize,
    output_len: usize,
) -> Result<(), Error> {
    s.check_spatial()?;
    let [kh, kw] = s.kernel;
    let in_c = s.input[3];
    let out_c = s.output[3];
    super::check_depth(super::elements(&[kh, kw, in_c])?)?;
    super::expect_len(weights_len, super::elements(&[out_c, kh, kw, in_c])?)?;
    super::expect_len(input_len, s.input_len())?;
    super::expect_len(output_len, s.output_len())
}

/// Validates int8 params against the input and output lengths.
#[cfg_attr(target_os = "linux", link_section = ".text.sorted.edgeloop.conv")]
pub fn check_i8(p: &Conv2dParams<'_>, input_len: usize, output_len: usize) -> Result<(), Error> {
    check_shape(&p.shape, p.weights.len(), input_len, output_len)?;
    let out_c = p.shape.output[3] as usize;
    super::check_bias(p.bias, out_c)?;
    super::check_zero_point(p.input_zero_point)?;
    super::check_zero_point(p.output_zero_point)?;
    super::check_per_channel(p.output_multiplier, p.output_shift, out_c)?;
    super::check_clamp_i8(p.activation)
}

/// Validates f32 params against the input and output lengths.
pub fn check_f32(
    p: &Conv2dF32Params<'_>,
    input_len: usize,
    output_len: usize,
) -> Result<(), Error> {
    check_shape(&p.shape, p.weights.len(), input_len, output_len)?;
    super::check_bias(p.bias, p.shape.output[3] as usize)?;
    super::check_clamp_f32(p.activation)
}

/// Runs the int8 kernel selected by [`super::kernels`]. Requires a successful [`check_i8`].
#[inline]
pub fn eval_i8(p: &Conv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    (super::kernel!(conv2d_i8))(p, input, output)
}

/// Runs the f32 kernel selected by [`super::kernels`]. Requires a successful [`check_f32`].
#[inline]
pub fn eval_f32(p: &Conv2dF32Params<'_>, input: &[f32], output: &mut [f32]) {
    (super::kernel!(conv2d_f32))(p, input, output)
}
