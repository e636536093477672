//! Sigmoid: `y = 1 / (1 + e^(-x))`.
//!
//! - **int8**: a 256-entry table computed offline by [`build_table`] from the f64 function and
//!   stored in the image; evaluation is one table load per element ([`super::lut`]), integer
//!   only, so it runs on Cortex-M0+. Error bound: within 0.5 output LSB of the f64 math (exact
//!   rounding to nearest), for every input value and any scales and zero points.
//! - **f32**: [`super::fmath::sigmoid`], absolute error ≤ 3e-7 against f64 math.

#[cfg(test)]
mod tests;

pub use super::lut::{check_f32, check_i8, eval_i8, eval_i8_in_place, LutParams};

/// Builds the int8 table for the given input and output quantization (see
/// [`super::lut::build_table`]); `None` for invalid scales or zero points.
#[cfg(any(test, feature = "std"))]
pub fn build_table(in_scale: f64, in_zp: i32, out_scale: f64, out_zp: i32) -> Option<[i8; 256]> {
    super::lut::build_table(
        super::fmath::exact::sigmoid,
        in_scale,
        in_zp,
        out_scale,
        out_zp,
    )
}

/// f32 Sigmoid. Requires a successful [`check_f32`].
pub fn eval_f32(input: &[f32], output: &mut [f32]) {
    for (y, &x) in output.iter_mut().zip(input) {
        *y = super::fmath::sigmoid(x);
    }
}
