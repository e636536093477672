//! FullyConnected (and MatMul with a constant right-hand side):
//! `y[b, o] = act(Σ_i x[b, i] · w[o, i] + bias[o])`.
//!
//! Input `[batch, in_features]`, weights `[out_features, in_features]` row-major, output
//! `[batch, out_features]`. int8: per-output-channel weight scales, so one multiplier and shift
//! per output feature.

pub mod reference;
#[cfg(test)]
pub(crate) mod tests;
// Optimized variants (issue 3), selected by `crate::arch::ops_table_*`.
#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
pub mod dsp;
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
pub mod neon;
pub mod packed;
pub mod pairs;
#[cfg(test)]
mod simd_tests;

use super::{ClampF32, ClampI8};
use crate::Error;

/// Sizes of a FullyConnected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FullyConnectedShape {
    /// Rows of the input and output.
    pub batch: u32,
    /// Input features (the accumulation depth).
    pub in_features: u32,
    /// Output features (output channels).
    pub out_features: u32,
}

/// int8 FullyConnected parameters.
#[derive(Debug, Clone, Copy)]
pub struct FullyConnectedParams<'a> {
    /// Sizes.
    pub shape: FullyConnectedShape,
    /// Weights `[out_features, in_features]`, symmetric per output feature.
    pub weights: &'a [i8],
    /// Bias per output feature at scale `s_in * s_w[o]`.
    pub bias: Option<&'a [i32]>,
    /// Input zero point.
    pub input_zero_point: i32,
    /// Output zero point.
    pub output_zero_point: i32,
    /// Q31 multiplier per output feature for `s_in * s_w[o] / s_out`.
    pub output_multiplier: &'a [i32],
    /// Shift per output feature (positive = left).
    pub output_shift: &'a [i32],
    /// Fused activation.
    pub activation: ClampI8,
}

impl FullyConnectedParams<'_> {
    /// Feature `o`'s requantization, prepared once ([`Self::finish`] completes it).
    #[inline(always)]
    pub(crate) fn channel_requant(&self, o: usize) -> crate::quant::ChannelRequant {
        crate::quant::ChannelRequant::new(self.output_multiplier[o], self.output_shift[o])
    }

    /// The int8 output from a requantized accumulator `v` ([`Self::channel_requant`]): the
    /// output zero point added (saturating) and the activation's clamp, as
    /// [`crate::quant::requantize_to_i8`] finishes.
    #[inline(always)]
    pub(crate) fn finish(&self, v: i32) -> i8 {
        crate::quant::finish_i8(
            v,
            self.output_zero_point,
            self.activation.min,
            self.activation.max,
        )
    }

    /// Output feature `o`'s accumulator `acc` as its int8 output: its multiplier and shift, the
    /// output zero point, the activation's clamp.
    #[inline(always)]
    pub(crate) fn requantize(&self, o: usize, acc: i32) -> i8 {
        crate::quant::requantize_to_i8(
            acc,
            self.output_multiplier[o],
            self.output_shift[o],
            self.output_zero_point,
            self.activation.min,
            self.activation.max,
        )
    }
}

/// f32 FullyConnected parameters.
#[derive(Debug, Clone, Copy)]
pub struct FullyConnectedF32Params<'a> {
    /// Sizes.
    pub shape: FullyConnectedShape,
    /// Weights `[out_features, in_features]`.
    pub weights: &'a [f32],
    /// Bias per output feature.
    pub bias: Option<&'a [f32]>,
    /// Fused activation.
    pub activation: ClampF32,
}

fn check_shape(
    s: &FullyConnectedShape,
    weights_len: usize,
    input_len: usize,
    output_len: usize,
) -> Result<(), Error> {
    let batch = s.batch as usize;
    let k = s.in_features as usize;
    let n = s.out_features as usize;
    super::check_depth(k)?;
    super::expect_len(input_len, super::elements(&[s.batch, s.in_features])?)?;
    super::expect_len(output_len, super::elements(&[s.batch, s.out_features])?)?;
    super::expect_len(
        weights_len,
        super::elements(&[s.out_features, s.in_features])?,
    )?;
    debug_assert!(batch >= 1 && n >= 1);
    Ok(())
}

/// Validates int8 params against the input and output lengths.
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub fn check_i8(
    p: &FullyConnectedParams<'_>,
    input_len: usize,
    output_len: usize,
) -> Result<(), Error> {
    check_shape(&p.shape, p.weights.len(), input_len, output_len)?;
    let n = p.shape.out_features as usize;
    super::check_bias(p.bias, n)?;
    super::check_zero_point(p.input_zero_point)?;
    super::check_zero_point(p.output_zero_point)?;
    super::check_per_channel(p.output_multiplier, p.output_shift, n)?;
    super::check_clamp_i8(p.activation)
}

/// Validates f32 params against the input and output lengths.
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub fn check_f32(
    p: &FullyConnectedF32Params<'_>,
    input_len: usize,
    output_len: usize,
) -> Result<(), Error> {
    check_shape(&p.shape, p.weights.len(), input_len, output_len)?;
    super::check_bias(p.bias, p.shape.out_features as usize)?;
    super::check_clamp_f32(p.activation)
}

/// Runs the int8 kernel selected by [`super::kernels`]. Requires a successful [`check_i8`].
#[inline]
pub fn eval_i8(p: &FullyConnectedParams<'_>, input: &[i8], output: &mut [i8]) {
    (super::kernel!(fully_connected_i8))(p, input, output)
}

/// Runs the f32 kernel selected by [`super::kernels`] (every variant bit-exact to
/// [`reference::eval_f32`]: each output summed in the reference's order). Requires a successful
/// [`check_f32`].
#[inline]
pub fn eval_f32(p: &FullyConnectedF32Params<'_>, input: &[f32], output: &mut [f32]) {
    (super::kernel!(fully_connected_f32))(p, input, output)
}
