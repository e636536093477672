//! The DepthwiseConv2D specification: plain loops, no `unsafe`.

use super::{DepthwiseConv2dF32Params, DepthwiseConv2dParams};
use crate::ops::conv2d::reference::{for_each_output, window_taps, WindowTaps};
use crate::ops::conv2d::Conv2dShape;
use crate::quant::requantize_to_i8;

/// Calls `f(x, k)` for each tap of output channel `oc` (of input channel `ic`) at the output
/// pixel of batch `b` whose taps are `t`: the index of the input element and of its weight, in
/// kernel order.
#[inline(always)]
fn for_each_tap(
    s: &Conv2dShape,
    t: &WindowTaps,
    b: usize,
    (ic, oc): (usize, usize),
    mut f: impl FnMut(usize, usize),
) {
    let [_, h, w, in_c] = s.input.map(|d| d as usize);
    let out_c = s.output[3] as usize;
    let kw = s.kernel[1] as usize;
    let [dy, dx] = s.dilation.map(|d| d as usize);
    for (r, ky) in t.rows.clone().enumerate() {
        let x_row = (b * h + t.iy0 + r * dy) * w + t.ix0;
        for (c, kx) in t.cols.clone().enumerate() {
            f((x_row + c * dx) * in_c + ic, (ky * kw + kx) * out_c + oc);
        }
    }
}

/// int8 DepthwiseConv2D. Requires a successful [`super::check_i8`].
///
/// Each output sums its kernel window's taps that lie inside the input (padding contributes
/// nothing), in kernel order.
pub fn eval_i8(p: &DepthwiseConv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    let s = &p.shape;
    let out_c = s.output[3] as usize;
    let mult = p.depth_multiplier as usize;
    let zp = p.input_zero_point;
    for_each_output(s, |pixel, b, oy, ox| {
        let t = window_taps(s, oy, ox);
        let out = &mut output[pixel * out_c..(pixel + 1) * out_c];
        for (oc, y) in out.iter_mut().enumerate() {
            let mut acc: i32 = match p.bias {
                Some(bias) => bias[oc],
                None => 0,
            };
            for_each_tap(s, &t, b, (oc / mult, oc), |x, k| {
                acc = acc.wrapping_add((input[x] as i32 - zp) * p.weights[k] as i32);
            });
            *y = requantize_to_i8(
                acc,
                p.output_multiplier[oc],
                p.output_shift[oc],
                p.output_zero_point,
                p.activation.min,
                p.activation.max,
            );
        }
    });
}

/// f32 DepthwiseConv2D. Requires a successful [`super::check_f32`].
///
/// The same walk as [`eval_i8`]: each output sums the taps inside the input in kernel order,
/// starting from its bias.
pub fn eval_f32(p: &DepthwiseConv2dF32Params<'_>, input: &[f32], output: &mut [f32]) {
    let s = &p.shape;
    let out_c = s.output[3] as usize;
    let mult = p.depth_multiplier as usize;
    for_each_output(s, |pixel, b, oy, ox| {
        let t = window_taps(s, oy, ox);
        let out = &mut output[pixel * out_c..(pixel + 1) * out_c];
        for (oc, y) in out.iter_mut().enumerate() {
            let mut acc = match p.bias {
                Some(bias) => bias[oc],
                None => 0.0,
            };
            for_each_tap(s, &t, b, (oc / mult, oc), |x, k| {
                acc += input[x] * p.weights[k]
            });
            *y = p.activation.apply(acc);
        }
    });
}
