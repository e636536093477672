//! The DepthwiseConv2D specification: plain loops, no `unsafe`.

use super::{DepthwiseConv2dF32Params, DepthwiseConv2dParams};
use crate::ops::conv2d::reference::{for_each_output, tap};
use crate::quant::requantize_to_i8;

/// int8 DepthwiseConv2D. Requires a successful [`super::check_i8`].
pub fn eval_i8(p: &DepthwiseConv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    let s = &p.shape;
    let [_, h, w, in_c] = s.input;
    let out_c = s.output[3] as usize;
    let mult = p.depth_multiplier as usize;
    let [kh, kw] = s.kernel;
    let zp = p.input_zero_point;
    for_each_output(s, |pixel, b, oy, ox| {
        let out = &mut output[pixel * out_c..(pixel + 1) * out_c];
        for (oc, y) in out.iter_mut().enumerate() {
            let ic = oc / mult;
            let mut acc: i32 = match p.bias {
                Some(bias) => bias[oc],
                None => 0,
            };
            for ky in 0..kh as usize {
                let Some(iy) = tap(oy, ky, s.stride[0], s.dilation[0], s.padding.top, h) else {
                    continue;
                };
                for kx in 0..kw as usize {
                    let Some(ix) = tap(ox, kx, s.stride[1], s.dilation[1], s.padding.left, w)
                    else {
                        continue;
                    };
                    let xi = input[((b * h as usize + iy) * w as usize + ix) * in_c as usize + ic];
                    let wi = p.weights[(ky * kw as usize + kx) * out_c + oc];
                    acc = acc.wrapping_add((xi as i32 - zp) * wi as i32);
                }
            }
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
pub fn eval_f32(p: &DepthwiseConv2dF32Params<'_>, input: &[f32], output: &mut [f32]) {
    let s = &p.shape;
    let [_, h, w, in_c] = s.input;
    let out_c = s.output[3] as usize;
    let mult = p.depth_multiplier as usize;
    let [kh, kw] = s.kernel;
    for_each_output(s, |pixel, b, oy, ox| {
        let out = &mut output[pixel * out_c..(pixel + 1) * out_c];
        for (oc, y) in out.iter_mut().enumerate() {
            let ic = oc / mult;
            let mut acc = match p.bias {
                Some(bias) => bias[oc],
                None => 0.0,
            };
            for ky in 0..kh as usize {
                let Some(iy) = tap(oy, ky, s.stride[0], s.dilation[0], s.padding.top, h) else {
                    continue;
                };
                for kx in 0..kw as usize {
                    let Some(ix) = tap(ox, kx, s.stride[1], s.dilation[1], s.padding.left, w)
                    else {
                        continue;
                    };
                    let xi = input[((b * h as usize + iy) * w as usize + ix) * in_c as usize + ic];
                    acc += xi * p.weights[(ky * kw as usize + kx) * out_c + oc];
                }
            }
            *y = p.activation.apply(acc);
        }
    });
}
