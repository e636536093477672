//! The Add specification: plain loops, no `unsafe`.

use super::{AddF32Params, AddParams, LEFT_SHIFT};
use crate::quant::{requantize, requantize_to_i8};

/// int8 Add. Requires a successful [`super::check_i8`].
///
/// Walks the output row by row (`rows::map_rows_stepped`), each element [`add_one_i8`] of its
/// inputs, as an element-by-element walk computes it.
pub fn eval_i8(p: &AddParams, input1: &[i8], input2: &[i8], output: &mut [i8]) {
    super::rows::map_rows_stepped(&p.shape, input1, input2, output, |a, b| add_one_i8(p, a, b));
}

/// One int8 Add output from one value of each input: the per-element specification, also used
/// by the optimized variants for their tails.
#[inline]
pub fn add_one_i8(p: &AddParams, x1: i8, x2: i8) -> i8 {
    let r = &p.requant;
    let a = (x1 as i32 - p.input1_zero_point) << LEFT_SHIFT;
    let b = (x2 as i32 - p.input2_zero_point) << LEFT_SHIFT;
    let sum = requantize(a, r.input1.0, r.input1.1) + requantize(b, r.input2.0, r.input2.1);
    requantize_to_i8(
        sum,
        r.output.0,
        r.output.1,
        p.output_zero_point,
        p.activation.min,
        p.activation.max,
    )
}

/// f32 Add. Requires a successful [`super::check_f32`].
///
/// Walks the output row by row ([`super::rows`]): each element is `input1 + input2`, clamped,
/// exactly as an element-by-element walk computes it.
pub fn eval_f32(p: &AddF32Params, input1: &[f32], input2: &[f32], output: &mut [f32]) {
    let act = p.activation;
    super::rows::map_rows(&p.shape, input1, input2, output, move |a, b| {
        act.apply(a + b)
    });
}
