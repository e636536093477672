//! ArgMax along one axis: tensors are viewed as `[outer, axis, inner]`, the output is
//! `[outer, inner]` indices (`i32`). Ties give the first index (ONNX's default); for f32, NaN
//! never compares greater, so a NaN is chosen only at index 0 of an all-NaN or NaN-led run.
//! int8 ArgMax needs no quantization parameters: dequantization keeps the order.

pub mod reference;
#[cfg(test)]
mod tests;

use crate::Error;

/// Sizes of an ArgMax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ArgMaxParams {
    /// Product of the dims before the axis.
    pub outer: u32,
    /// Length of the reduced axis (at most `i32::MAX`).
    pub axis: u32,
    /// Product of the dims after the axis.
    pub inner: u32,
}

/// Validates sizes against the input and output lengths.
pub fn check(p: &ArgMaxParams, input_len: usize, output_len: usize) -> Result<(), Error> {
    if p.axis > i32::MAX as u32 {
        return Err(super::param_err());
    }
    super::expect_len(input_len, super::elements(&[p.outer, p.axis, p.inner])?)?;
    super::expect_len(output_len, super::elements(&[p.outer, p.inner])?)
}

/// int8 ArgMax. Requires a successful [`check`].
#[inline]
pub fn eval_i8(p: &ArgMaxParams, input: &[i8], output: &mut [i32]) {
    reference::eval(p, input, output)
}

/// f32 ArgMax. Requires a successful [`check`].
#[inline]
pub fn eval_f32(p: &ArgMaxParams, input: &[f32], output: &mut [i32]) {
    reference::eval(p, input, output)
}
