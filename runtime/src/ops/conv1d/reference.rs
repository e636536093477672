//! The Conv1D specification: plain loops, no `unsafe`.

use super::{Conv1dF32Params, Conv1dParams};
use crate::ops::conv2d::reference::tap;
use crate::quant::requantize_to_i8;

/// int8 Conv1D. Requires a successful [`super::check_i8`].
pub fn eval_i8(p: &Conv1dParams<'_>, input: &[i8], output: &mut [i8]) {
    let s = &p.shape;
    let [_, w, in_c] = s.input;
    let [_, ow, out_c] = s.output;
    let (in_c, out_c, kw) = (in_c as usize, out_c as usize, s.kernel as usize);
    let zp = p.input_zero_point;
    let rows = input.chunks_exact(w as usize * in_c);
    for (x, y) in rows.zip(output.chunks_exact_mut(ow as usize * out_c)) {
        for (ox, out) in y.chunks_exact_mut(out_c).enumerate() {
            for (oc, yo) in out.iter_mut().enumerate() {
                let mut acc: i32 = match p.bias {
                    Some(bias) => bias[oc],
                    None => 0,
                };
                for k in 0..kw {
                    let Some(ix) = tap(ox, k, s.stride, s.dilation, s.padding[0], w) else {
                        continue;
                    };
                    let w0 = (oc * kw + k) * in_c;
                    let xs = &x[ix * in_c..(ix + 1) * in_c];
                    for (&xi, &wi) in xs.iter().zip(&p.weights[w0..w0 + in_c]) {
                        acc = acc.wrapping_add((xi as i32 - zp) * wi as i32);
                    }
                }
                *yo = requantize_to_i8(
                    acc,
                    p.output_multiplier[oc],
                    p.output_shift[oc],
                    p.output_zero_point,
                    p.activation.min,
                    p.activation.max,
                );
            }
        }
    }
}

/// f32 Conv1D. Requires a successful [`super::check_f32`].
pub fn eval_f32(p: &Conv1dF32Params<'_>, input: &[f32], output: &mut [f32]) {
    let s = &p.shape;
    let [_, w, in_c] = s.input;
    let [_, ow, out_c] = s.output;
    let (in_c, out_c, kw) = (in_c as usize, out_c as usize, s.kernel as usize);
    let rows = input.chunks_exact(w as usize * in_c);
    for (x, y) in rows.zip(output.chunks_exact_mut(ow as usize * out_c)) {
        for (ox, out) in y.chunks_exact_mut(out_c).enumerate() {
            for (oc, yo) in out.iter_mut().enumerate() {
                let mut acc = match p.bias {
                    Some(bias) => bias[oc],
                    None => 0.0,
                };
                for k in 0..kw {
                    let Some(ix) = tap(ox, k, s.stride, s.dilation, s.padding[0], w) else {
                        continue;
                    };
                    let w0 = (oc * kw + k) * in_c;
                    let xs = &x[ix * in_c..(ix + 1) * in_c];
                    for (&xi, &wi) in xs.iter().zip(&p.weights[w0..w0 + in_c]) {
                        acc += xi * wi;
                    }
                }
                *yo = p.activation.apply(acc);
            }
        }
    }
}
