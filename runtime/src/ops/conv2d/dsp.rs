//! Cortex-M4 DSP int8 Conv2D (SMLAD; portable emulation off-target), bit-exact to
//! [`super::reference::eval_i8`].
//!
//! For each output pixel the receptive field is gathered into a stack patch (im2col, up to
//! [`MAX_PATCH`] bytes; padded taps are filled with the input zero point, so they contribute
//! `(zp − zp)·w = 0`, exactly like the reference's skipped taps), and the patch is multiplied by
//! the weights `[out_c, kh·kw·in_c]` with the DSP FullyConnected kernel
//! ([`crate::ops::fully_connected::dsp`]: input sign-extended and offset once, three output
//! channels per pass). Same bias, same per-channel requantization, and the int32 sums only
//! change order (wrapping addition is associative), so outputs are bit-exact. Larger receptive
//! fields use the per-tap dot product over input channels
//! ([`crate::arch::cortex_m::dot_offset_i8_dsp`]).

use super::reference::{for_each_output, tap};
use super::Conv2dParams;
use crate::ops::fully_connected::{self, FullyConnectedParams, FullyConnectedShape};

/// Largest receptive field (`kh · kw · in_c`) gathered into the 1 KiB stack patch.
pub const MAX_PATCH: usize = 1024;

/// DSP Conv2D. Requires a successful [`super::check_i8`].
pub fn eval_i8(p: &Conv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    let s = &p.shape;
    let [_, h, w, in_c] = s.input;
    let out_c = s.output[3] as usize;
    let [kh, kw] = s.kernel;
    let (in_c, kh, kw) = (in_c as usize, kh as usize, kw as usize);
    let k = kh * kw * in_c;
    if k > MAX_PATCH {
        return super::dot_variant::eval_i8_with(p, input, output, |x, xo, w| {
            crate::arch::cortex_m::dot_offset_i8_dsp(x, xo, w, 0)
        });
    }
    let fc = FullyConnectedParams {
        shape: FullyConnectedShape {
            batch: 1,
            in_features: k as u32,
            out_features: out_c as u32,
        },
        weights: p.weights,
        bias: p.bias,
        input_zero_point: p.input_zero_point,
        output_zero_point: p.output_zero_point,
        output_multiplier: p.output_multiplier,
        output_shift: p.output_shift,
        activation: p.activation,
    };
    // Zero points are int8 (checked by `check_i8`).
    let pad = p.input_zero_point as i8;
    let mut patch = [0i8; MAX_PATCH];
    for_each_output(s, |pixel, b, oy, ox| {
        let mut at = 0;
        for ky in 0..kh {
            let iy = tap(oy, ky, s.stride[0], s.dilation[0], s.padding.top, h);
            for kx in 0..kw {
                let ix = tap(ox, kx, s.stride[1], s.dilation[1], s.padding.left, w);
                let dst = &mut patch[at..at + in_c];
                match (iy, ix) {
                    (Some(iy), Some(ix)) => {
                        let x0 = ((b * h as usize + iy) * w as usize + ix) * in_c;
                        dst.copy_from_slice(&input[x0..x0 + in_c]);
                    }
                    _ => dst.fill(pad),
                }
                at += in_c;
            }
        }
        fully_connected::dsp::eval_i8(
            &fc,
            &patch[..k],
            &mut output[pixel * out_c..(pixel + 1) * out_c],
        );
    });
}
