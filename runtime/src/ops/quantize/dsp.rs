//! Cortex-M4F Quantize, bit-exact to [`super::reference::eval_quantize`]. Portable Rust: the
//! host tests run the same code.
//!
//! The reference rounds `v = x / scale` half to even in portable code
//! ([`crate::quant::round_ties_even`]: a NaN test, a range test, a conversion, the fraction and
//! its comparisons with ±0.5, about 20 instructions per value on the Cortex-M4). The FPU's own
//! conversion (`as i32`, `VCVT`) truncates. Here, for `|v| < 2^22`, `(v + M) - M` with
//! `M = 1.5 · 2^23` is `v` rounded half to even, exactly: the sum lies in `[2^23, 2^24]`, where
//! the f32 values are the integers, so the addition (round to nearest, ties to even, as every
//! f32 operation in Rust) rounds `v` to an integer, keeping its parity since `M` is even, and
//! the subtraction is exact. The integer then converts exactly. Larger magnitudes and NaN (the
//! comparison fails) take the reference's rounding. The division is the same `x / scale` (not a
//! multiplication by the reciprocal, which rounds differently); then the saturating zero-point
//! add (`QADD`) and the clamp (`SSAT`) of [`crate::quant::quantize_f32`].

use super::QuantizeParams;
use crate::quant::round_ties_even;

/// `1.5 · 2^23`: adding it to a value below `2^22` in magnitude rounds it to an integer.
const ROUNDER: f32 = 12_582_912.0;

/// [`round_ties_even`]`(v)`, in three FPU instructions for `|v| < 2^22`.
#[inline(always)]
pub(crate) fn round_half_even(v: f32) -> i32 {
    if v.abs() < 4_194_304.0 {
        ((v + ROUNDER) - ROUNDER) as i32
    } else {
        round_ties_even(v)
    }
}

/// f32 -> int8 (NaN maps to the zero point). Requires a successful [`super::check`].
pub fn eval_quantize(p: &QuantizeParams, input: &[f32], output: &mut [i8]) {
    let (scale, zero_point) = (p.scale, p.zero_point);
    for (y, &x) in output.iter_mut().zip(input) {
        *y = round_half_even(x / scale)
            .saturating_add(zero_point)
            .clamp(-128, 127) as i8;
    }
}
