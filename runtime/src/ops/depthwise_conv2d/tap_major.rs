//! int8 DepthwiseConv2D with taps in the outer loop and channels in the inner loop, bit-exact to
//! [`super::reference::eval_i8`].
//!
//! NHWC activations and `[kh, kw, out_c]` weights keep the channels of one tap contiguous, so
//! per output pixel the kernel walks each valid tap once and adds `(x[c] − zp) · w[c]` into a row
//! of int32 accumulators on the stack (one per output channel, up to [`MAX_CHANNELS`]), then
//! requantizes the row. The reference instead recomputes every tap's address per output
//! channel. Same products, same skipped padding taps, same requantization; only the order of
//! the wrapping int32 additions differs, so outputs are bit-exact. The Cortex-M4 DSP kernel and
//! the AVX2 one fall back to it, and the table for Arm cores without the DSP extension
//! (Cortex-M0/M0+) uses it; wider layers fall back to the reference.

use super::DepthwiseConv2dParams;
use crate::ops::conv2d::reference::{for_each_output, tap};
use crate::quant::requantize_to_i8;

/// Most output channels kept in the stack accumulator row (2 KiB).
pub const MAX_CHANNELS: usize = 512;

/// Tap-major DepthwiseConv2D. Requires a successful [`super::check_i8`].
pub fn eval_i8(p: &DepthwiseConv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    let s = &p.shape;
    let [_, h, w, in_c] = s.input;
    let out_c = s.output[3] as usize;
    if out_c > MAX_CHANNELS {
        return super::reference::eval_i8(p, input, output);
    }
    let in_c = in_c as usize;
    let mult = p.depth_multiplier as usize;
    let [kh, kw] = s.kernel;
    let (kh, kw) = (kh as usize, kw as usize);
    let zp = p.input_zero_point;
    let mut row = [0i32; MAX_CHANNELS];
    for_each_output(s, |pixel, b, oy, ox| {
        let acc = &mut row[..out_c];
        match p.bias {
            Some(bias) => acc.copy_from_slice(&bias[..out_c]),
            None => acc.fill(0),
        }
        for ky in 0..kh {
            let Some(iy) = tap(oy, ky, s.stride[0], s.dilation[0], s.padding.top, h) else {
                continue;
            };
            for kx in 0..kw {
                let Some(ix) = tap(ox, kx, s.stride[1], s.dilation[1], s.padding.left, w) else {
                    continue;
                };
                let x0 = ((b * h as usize + iy) * w as usize + ix) * in_c;
                let x = &input[x0..x0 + in_c];
                let wt = &p.weights[(ky * kw + kx) * out_c..(ky * kw + kx + 1) * out_c];
                if mult == 1 {
                    for ((a, &xi), &wi) in acc.iter_mut().zip(x).zip(wt) {
                        *a = a.wrapping_add((xi as i32 - zp) * wi as i32);
                    }
                } else {
                    for (oc, (a, &wi)) in acc.iter_mut().zip(wt).enumerate() {
                        *a = a.wrapping_add((x[oc / mult] as i32 - zp) * wi as i32);
                    }
                }
            }
        }
        let out = &mut output[pixel * out_c..(pixel + 1) * out_c];
        for (oc, (y, &a)) in out.iter_mut().zip(acc.iter()).enumerate() {
            *y = requantize_to_i8(
                a,
                p.output_multiplier[oc],
                p.output_shift[oc],
                p.output_zero_point,
                p.activation.min,
                p.activation.max,
            );
        }
    });
}
