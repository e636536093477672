//! The Mul specification: plain loops, no `unsafe`.

use super::{MulF32Params, MulParams};
use crate::quant::requantize_to_i8;

/// int8 Mul. Requires a successful [`super::check_i8`].
///
/// Walks the output row by row (`add::rows::map_rows_stepped`), as an element-by-element walk
/// computes it.
pub fn eval_i8(p: &MulParams, input1: &[i8], input2: &[i8], output: &mut [i8]) {
    crate::ops::add::rows::map_rows_stepped(&p.shape, input1, input2, output, |a, b| {
        // |product| <= 255 * 255: no overflow.
        let prod = (a as i32 - p.input1_zero_point) * (b as i32 - p.input2_zero_point);
        requantize_to_i8(
            prod,
            p.output_multiplier,
            p.output_shift,
            p.output_zero_point,
            p.activation.min,
            p.activation.max,
        )
    });
}

/// f32 Mul. Requires a successful [`super::check_f32`].
///
/// Walks the output row by row (`add::rows`): each element is `input1 · input2`, clamped, exactly
/// as an element-by-element walk computes it.
pub fn eval_f32(p: &MulF32Params, input1: &[f32], input2: &[f32], output: &mut [f32]) {
    let act = p.activation;
    crate::ops::add::rows::map_rows(&p.shape, input1, input2, output, move |a, b| {
        act.apply(a * b)
    });
}
