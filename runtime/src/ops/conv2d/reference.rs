//! The Conv2D specification: plain loops, no `unsafe`.

use super::{Conv2dF32Params, Conv2dParams, Conv2dShape};
use crate::quant::requantize_to_i8;

/// Input coordinate of output position `o`, tap `k` along one axis, or `None` in the padding.
#[inline(always)]
pub(crate) fn tap(
    o: usize,
    k: usize,
    stride: u32,
    dilation: u32,
    pad: u32,
    size: u32,
) -> Option<usize> {
    let padded = o * stride as usize + k * dilation as usize;
    let i = padded.checked_sub(pad as usize)?;
    (i < size as usize).then_some(i)
}

/// Calls `f(pixel, b, oy, ox)` for every output pixel, in NHWC order (`pixel` counts them).
pub(crate) fn for_each_output(s: &Conv2dShape, mut f: impl FnMut(usize, usize, usize, usize)) {
    let [n, _, _, _] = s.input;
    let [_, oh, ow, _] = s.output;
    let mut pixel = 0;
    for b in 0..n as usize {
        for oy in 0..oh as usize {
            for ox in 0..ow as usize {
                f(pixel, b, oy, ox);
                pixel += 1;
            }
        }
    }
}

/// int8 Conv2D. Requires a successful [`super::check_i8`].
pub fn eval_i8(p: &Conv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    let s = &p.shape;
    let [_, h, w, in_c] = s.input;
    let out_c = s.output[3] as usize;
    let [kh, kw] = s.kernel;
    let (in_c, kh, kw) = (in_c as usize, kh as usize, kw as usize);
    let zp = p.input_zero_point;
    for_each_output(s, |pixel, b, oy, ox| {
        let out = &mut output[pixel * out_c..(pixel + 1) * out_c];
        for (oc, y) in out.iter_mut().enumerate() {
            let mut acc: i32 = match p.bias {
                Some(bias) => bias[oc],
                None => 0,
            };
            for ky in 0..kh {
                let Some(iy) = tap(oy, ky, s.stride[0], s.dilation[0], s.padding.top, h) else {
                    continue;
                };
                for kx in 0..kw {
                    let Some(ix) = tap(ox, kx, s.stride[1], s.dilation[1], s.padding.left, w)
                    else {
                        continue;
                    };
                    let x0 = ((b * h as usize + iy) * w as usize + ix) * in_c;
                    let w0 = ((oc * kh + ky) * kw + kx) * in_c;
                    for (&xi, &wi) in input[x0..x0 + in_c].iter().zip(&p.weights[w0..w0 + in_c]) {
                        acc = acc.wrapping_add((xi as i32 - zp) * wi as i32);
                    }
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

/// f32 Conv2D. Requires a successful [`super::check_f32`].
pub fn eval_f32(p: &Conv2dF32Params<'_>, input: &[f32], output: &mut [f32]) {
    let s = &p.shape;
    let [_, h, w, in_c] = s.input;
    let out_c = s.output[3] as usize;
    let [kh, kw] = s.kernel;
    let (in_c, kh, kw) = (in_c as usize, kh as usize, kw as usize);
    for_each_output(s, |pixel, b, oy, ox| {
        let out = &mut output[pixel * out_c..(pixel + 1) * out_c];
        for (oc, y) in out.iter_mut().enumerate() {
            let mut acc = match p.bias {
                Some(bias) => bias[oc],
                None => 0.0,
            };
            for ky in 0..kh {
                let Some(iy) = tap(oy, ky, s.stride[0], s.dilation[0], s.padding.top, h) else {
                    continue;
                };
                for kx in 0..kw {
                    let Some(ix) = tap(ox, kx, s.stride[1], s.dilation[1], s.padding.left, w)
                    else {
                        continue;
                    };
                    let x0 = ((b * h as usize + iy) * w as usize + ix) * in_c;
                    let w0 = ((oc * kh + ky) * kw + kx) * in_c;
                    for (&xi, &wi) in input[x0..x0 + in_c].iter().zip(&p.weights[w0..w0 + in_c]) {
                        acc += xi * wi;
                    }
                }
            }
            *y = p.activation.apply(acc);
        }
    });
}
