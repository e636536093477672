//! Elementwise int8 functions through a 256-entry lookup table.
//!
//! An int8 input has only 256 values, so any elementwise function `f` of a quantized tensor is
//! exactly a table: `table[x as u8] = quantize(f(dequantize(x)))`. The table is computed offline in
//! f64 by [`build_table`] (under `std`: the image writer stores it in the constant section) and the
//! kernel is one load per element — no floating point at invoke time, so it runs on an FPU-less
//! Cortex-M0+. GELU, SiLU, Sigmoid and Tanh use it ([`super::gelu`], [`super::silu`],
//! [`super::sigmoid`], [`super::tanh`]).
//!
//! **Error bound**: every output is the f64 result rounded to nearest (ties away from zero) and
//! clamped to int8, i.e. within 0.5 output LSB of the f64 math (0 LSB from the f64 oracle of the
//! tests), for every input value.
//!
//! Table layout: 256 `i8`, indexed by the input's bit pattern as `u8` (`0..=127` for inputs
//! `0..=127`, then `128..=255` for inputs `-128..=-1`).

use crate::Error;

// AVX-512BW lookup (sixty-four bytes per step), bit-exact to `lookup_i8`.
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(test)]
mod tests;

/// Number of entries of an int8 lookup table.
pub const TABLE_LEN: usize = 256;

/// int8 table-lookup parameters.
#[derive(Debug, Clone, Copy)]
pub struct LutParams<'a> {
    /// The 256-entry table (see the module docs for its layout).
    pub table: &'a [i8],
}

/// Validates the table length and that input and output lengths agree.
pub fn check_i8(p: &LutParams<'_>, input_len: usize, output_len: usize) -> Result<(), Error> {
    super::expect_len(p.table.len(), TABLE_LEN)?;
    super::expect_len(output_len, input_len)
}

/// `output[i] = table[input[i] as u8]`, with the fastest kernel of this machine
/// ([`super::KernelTable::lut_i8`]). Requires a successful [`check_i8`].
#[inline]
pub fn eval_i8(p: &LutParams<'_>, input: &[i8], output: &mut [i8]) {
    (super::kernel!(lut_i8))(p, input, output)
}

/// `output[i] = table[input[i] as u8]`, one load per element: the specification every lookup
/// kernel is bit-exact to. Requires a successful [`check_i8`].
pub fn lookup_i8(p: &LutParams<'_>, input: &[i8], output: &mut [i8]) {
    let table: &[i8; TABLE_LEN] = match p.table.try_into() {
        Ok(t) => t,
        Err(_) => return, // unreachable after `check_i8`
    };
    for (y, &x) in output.iter_mut().zip(input) {
        *y = table[x as u8 as usize];
    }
}

/// In-place form: `data[i] = table[data[i] as u8]`. Requires `p.table.len() == 256`.
pub fn eval_i8_in_place(p: &LutParams<'_>, data: &mut [i8]) {
    if let Ok(table) = <&[i8; TABLE_LEN]>::try_from(p.table) {
        for v in data.iter_mut() {
            *v = table[*v as u8 as usize];
        }
    }
}

/// Builds the table of `f` for the given input and output quantization:
/// `table[x as u8] = clamp(round(f((x - in_zp) · in_scale) / out_scale) + out_zp, -128, 127)`.
///
/// Returns `None` when a scale is not finite and positive or a zero point is outside int8.
/// A NaN result of `f` maps to the output zero point.
#[cfg(any(test, feature = "std"))]
pub fn build_table(
    f: impl Fn(f64) -> f64,
    in_scale: f64,
    in_zp: i32,
    out_scale: f64,
    out_zp: i32,
) -> Option<[i8; TABLE_LEN]> {
    let ok_scale = |s: f64| s.is_finite() && s > 0.0;
    let ok_zp = |z: i32| (-128..=127).contains(&z);
    if !ok_scale(in_scale) || !ok_scale(out_scale) || !ok_zp(in_zp) || !ok_zp(out_zp) {
        return None;
    }
    let mut table = [0i8; TABLE_LEN];
    for x in -128i32..=127 {
        let y = f((x - in_zp) as f64 * in_scale);
        let q = if y.is_nan() {
            out_zp as f64
        } else {
            (y / out_scale).round() + out_zp as f64
        };
        table[x as i8 as u8 as usize] = q.clamp(-128.0, 127.0) as i8;
    }
    Some(table)
}

/// Validates an f32 elementwise op: input and output lengths agree.
pub fn check_f32(input_len: usize, output_len: usize) -> Result<(), Error> {
    super::expect_len(output_len, input_len)
}
