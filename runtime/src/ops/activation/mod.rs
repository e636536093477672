//! ReLU / ReLU6 / clamp as a standalone op (the compiler usually fuses them into the producing
//! op's `activation` instead).
//!
//! int8: input and output share one quantization, so the op is an exact clamp in the quantized
//! domain; [`ClampI8::relu`] and [`ClampI8::relu6`] compute the bounds offline.

pub mod reference;
#[cfg(test)]
mod tests;

use super::{ClampF32, ClampI8};
use crate::Error;

/// int8 activation parameters (input and output share scale and zero point).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ActivationParams {
    /// Output range in the quantized domain.
    pub clamp: ClampI8,
}

/// f32 activation parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ActivationF32Params {
    /// Output range.
    pub clamp: ClampF32,
}

/// Validates int8 params against the input and output lengths (equal, non-zero).
pub fn check_i8(p: &ActivationParams, input_len: usize, output_len: usize) -> Result<(), Error> {
    check_lens(input_len, output_len)?;
    super::check_clamp_i8(p.clamp)
}

/// Validates f32 params against the input and output lengths (equal, non-zero).
pub fn check_f32(
    p: &ActivationF32Params,
    input_len: usize,
    output_len: usize,
) -> Result<(), Error> {
    check_lens(input_len, output_len)?;
    super::check_clamp_f32(p.clamp)
}

fn check_lens(input_len: usize, output_len: usize) -> Result<(), Error> {
    if input_len == 0 {
        return Err(super::shape_err());
    }
    super::expect_len(output_len, input_len)
}

/// Runs the int8 kernel. Requires a successful [`check_i8`].
#[inline]
pub fn eval_i8(p: &ActivationParams, input: &[i8], output: &mut [i8]) {
    reference::eval_i8(p, input, output)
}

/// Runs the int8 kernel in place (the planner may alias input and output).
#[inline]
pub fn eval_i8_in_place(p: &ActivationParams, data: &mut [i8]) {
    reference::eval_i8_in_place(p, data)
}

/// Runs the f32 kernel. Requires a successful [`check_f32`].
#[inline]
pub fn eval_f32(p: &ActivationF32Params, input: &[f32], output: &mut [f32]) {
    reference::eval_f32(p, input, output)
}

/// Runs the f32 kernel in place (the planner may alias input and output).
#[inline]
pub fn eval_f32_in_place(p: &ActivationF32Params, data: &mut [f32]) {
    reference::eval_f32_in_place(p, data)
}
