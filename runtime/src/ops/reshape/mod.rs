//! Reshape: the same elements under new dims. The planner aliases the output to the input, so
//! no bytes move; [`eval_i8`]/[`eval_f32`] copy for the case where it did not.

#[cfg(test)]
mod tests;

use super::Dims;
use crate::Error;

/// Reshape parameters (any element type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ReshapeParams {
    /// Input dims.
    pub input: Dims,
    /// Output dims; same number of elements.
    pub output: Dims,
}

/// Validates that both dims hold the same number of elements and match the lengths.
pub fn check(p: &ReshapeParams, input_len: usize, output_len: usize) -> Result<(), Error> {
    let n = super::elements(&p.input)?;
    super::expect_len(super::elements(&p.output)?, n)?;
    super::expect_len(input_len, n)?;
    super::expect_len(output_len, n)
}

/// Copies int8 elements when input and output are not aliased. Requires a successful [`check`].
#[inline]
pub fn eval_i8(_p: &ReshapeParams, input: &[i8], output: &mut [i8]) {
    copy(input, output)
}

/// Copies f32 elements when input and output are not aliased. Requires a successful [`check`].
#[inline]
pub fn eval_f32(_p: &ReshapeParams, input: &[f32], output: &mut [f32]) {
    copy(input, output)
}

fn copy<T: Copy>(input: &[T], output: &mut [T]) {
    for (y, &x) in output.iter_mut().zip(input) {
        *y = x;
    }
}
