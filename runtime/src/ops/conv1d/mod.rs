//! Conv1D over `[n, w, c]` activations with weights `[out_c, kw, in_c]`, explicit padding,
//! stride and dilation. Padding taps contribute nothing (int8: the input's zero point).

pub mod reference;
#[cfg(test)]
pub(crate) mod tests;

use super::{ClampF32, ClampI8};
use crate::Error;

/// Geometry of a 1-D convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Conv1dShape {
    /// Input `[n, w, in_c]`.
    pub input: [u32; 3],
    /// Output `[n, out_w, out_c]`.
    pub output: [u32; 3],
    /// Kernel width.
    pub kernel: u32,
    /// Stride.
    pub stride: u32,
    /// Dilation.
    pub dilation: u32,
    /// Padding `[left, right]`.
    pub padding: [u32; 2],
}

impl Conv1dShape {
    /// Elements of the input tensor (valid after a successful check).
    pub fn input_len(&self) -> usize {
        self.input.iter().map(|&d| d as usize).product()
    }

    /// Elements of the output tensor (valid after a successful check).
    pub fn output_len(&self) -> usize {
        self.output.iter().map(|&d| d as usize).product()
    }
}

/// int8 Conv1D parameters.
#[derive(Debug, Clone, Copy)]
pub struct Conv1dParams<'a> {
    /// Geometry.
    pub shape: Conv1dShape,
    /// Weights `[out_c, kw, in_c]`, symmetric per output channel.
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

/// f32 Conv1D parameters.
#[derive(Debug, Clone, Copy)]
pub struct Conv1dF32Params<'a> {
    /// Geometry.
    pub shape: Conv1dShape,
    /// Weights `[out_c, kw, in_c]`.
    pub weights: &'a [f32],
    /// Bias per output channel.
    pub bias: Option<&'a [f32]>,
    /// Fused activation.
    pub activation: ClampF32,
}

fn check_shape(
    s: &Conv1dShape,
    weights_len: usize,
    input_len: usize,
    output_len: usize,
) -> Result<(), Error> {
    let [n, w, in_c] = s.input;
    let [on, ow, out_c] = s.output;
    super::check_geometry(&[w, ow, s.kernel, s.stride, s.dilation])?;
    if s.padding.iter().any(|&p| p > super::MAX_DIM) {
        return Err(super::param_err());
    }
    let want = super::window_output(
        w,
        s.padding[0],
        s.padding[1],
        s.kernel,
        s.stride,
        s.dilation,
    )?;
    if n != on || ow != want {
        return Err(super::shape_err());
    }
    super::check_depth(super::elements(&[s.kernel, in_c])?)?;
    super::expect_len(weights_len, super::elements(&[out_c, s.kernel, in_c])?)?;
    super::expect_len(input_len, super::elements(&s.input)?)?;
    super::expect_len(output_len, super::elements(&s.output)?)
}

/// Validates int8 params against the input and output lengths.
pub fn check_i8(p: &Conv1dParams<'_>, input_len: usize, output_len: usize) -> Result<(), Error> {
    check_shape(&p.shape, p.weights.len(), input_len, output_len)?;
    let out_c = p.shape.output[2] as usize;
    super::check_bias(p.bias, out_c)?;
    super::check_zero_point(p.input_zero_point)?;
    super::check_zero_point(p.output_zero_point)?;
    super::check_per_channel(p.output_multiplier, p.output_shift, out_c)?;
    super::check_clamp_i8(p.activation)
}

/// Validates f32 params against the input and output lengths.
pub fn check_f32(
    p: &Conv1dF32Params<'_>,
    input_len: usize,
    output_len: usize,
) -> Result<(), Error> {
    check_shape(&p.shape, p.weights.len(), input_len, output_len)?;
    super::check_bias(p.bias, p.shape.output[2] as usize)?;
    super::check_clamp_f32(p.activation)
}

/// Runs the int8 kernel selected by [`super::kernels`]. Requires a successful [`check_i8`].
#[inline]
pub fn eval_i8(p: &Conv1dParams<'_>, input: &[i8], output: &mut [i8]) {
    (super::kernel!(conv1d_i8))(p, input, output)
}

/// Runs the f32 kernel. Requires a successful [`check_f32`].
#[inline]
pub fn eval_f32(p: &Conv1dF32Params<'_>, input: &[f32], output: &mut [f32]) {
    reference::eval_f32(p, input, output)
}
