//! GELU: `y = 0.5·x·(1 + erf(x/√2))`.
//!
//! - **int8**: a 256-entry table computed offline by [`build_table`] from the f64 function and
//!   stored in the image; evaluation is one table load per element ([`super::lut`]), integer
//!   only, so it runs on Cortex-M0+. Error bound: within 0.5 output LSB of the f64 math (exact
//!   rounding to nearest), for every input value and any scales and zero points.
//! - **f32**: [`super::fmath::gelu`], absolute error ≤ 1e-6·(1 + |y|) against f64 math.

// AVX-512 f32 GELU, bit-exact to `reference_f32`.
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(test)]
mod tests;

pub use super::lut::{check_f32, check_i8, eval_i8, eval_i8_in_place, LutParams};

/// Builds the int8 table for the given input and output quantization (see
/// [`super::lut::build_table`]); `None` for invalid scales or zero points.
#[cfg(any(test, feature = "std"))]
pub fn build_table(in_scale: f64, in_zp: i32, out_scale: f64, out_zp: i32) -> Option<[i8; 256]> {
    super::lut::build_table(
        super::fmath::exact::gelu,
        in_scale,
        in_zp,
        out_scale,
        out_zp,
    )
}

/// f32 GELU with the fastest kernel of this machine ([`super::KernelTable::gelu_f32`]).
/// Requires a successful [`check_f32`].
#[inline]
pub fn eval_f32(input: &[f32], output: &mut [f32]) {
    (super::kernel!(gelu_f32))(input, output)
}

/// f32 GELU, one [`super::fmath::gelu`] per element: the specification of every f32 GELU kernel.
/// Requires a successful [`check_f32`].
pub fn reference_f32(input: &[f32], output: &mut [f32]) {
    for (y, &x) in output.iter_mut().zip(input) {
        *y = super::fmath::gelu(x);
    }
}
