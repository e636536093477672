//! Conv2D with the inner loop over input channels replaced by an offset dot product
//! (see [`crate::arch`]); shared by the [`super::avx2`] and [`super::dsp`] variants.
//!
//! Same loops, same skipped padding taps, same bias and [`requantize_to_i8`] as
//! [`super::reference::eval_i8`]; only the order of the wrapping int32 additions inside each
//! accumulator differs, so the outputs are bit-exact.

use super::reference::{for_each_output, tap};
use super::Conv2dParams;
use crate::quant::requantize_to_i8;

/// Conv2D over `dot(x, x_offset, w) = Σ (x + x_offset)·w`. Requires a successful
/// [`super::check_i8`].
#[inline(always)]
pub(crate) fn eval_i8_with(
    p: &Conv2dParams<'_>,
    input: &[i8],
    output: &mut [i8],
    dot: impl Fn(&[i8], i32, &[i8]) -> i32,
) {
    let s = &p.shape;
    let [_, h, w, in_c] = s.input;
    let out_c = s.output[3] as usize;
    let [kh, kw] = s.kernel;
    let (in_c, kh, kw) = (in_c as usize, kh as usize, kw as usize);
    let zp = p.input_zero_point;
    for_each_output(s, |pixel, b, oy, ox| {
        let out = &mut output[pixel * out_c..(pixel + 1) * out_c];
        for (oc, y) in out.iter_mut().enumerate() {
            let mut acc: i32 = p.bias.map_or(0, |bias| bias[oc]);
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
                    acc = acc.wrapping_add(dot(
                        &input[x0..x0 + in_c],
                        -zp,
                        &p.weights[w0..w0 + in_c],
                    ));
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
