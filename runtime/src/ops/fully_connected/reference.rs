//! The FullyConnected specification: plain loops, no `unsafe`.

use super::{FullyConnectedF32Params, FullyConnectedParams};
use crate::quant::requantize_to_i8;

/// int8 FullyConnected. Requires a successful [`super::check_i8`].
pub fn eval_i8(p: &FullyConnectedParams<'_>, input: &[i8], output: &mut [i8]) {
    let k = p.shape.in_features as usize;
    let n = p.shape.out_features as usize;
    let zp = p.input_zero_point;
    for (x, y) in input.chunks_exact(k).zip(output.chunks_exact_mut(n)) {
        for (o, (yo, w)) in y.iter_mut().zip(p.weights.chunks_exact(k)).enumerate() {
            let mut acc: i32 = match p.bias {
                Some(b) => b[o],
                None => 0,
            };
            for (&xi, &wi) in x.iter().zip(w) {
                acc = acc.wrapping_add((xi as i32 - zp) * wi as i32);
            }
            *yo = requantize_to_i8(
                acc,
                p.output_multiplier[o],
                p.output_shift[o],
                p.output_zero_point,
                p.activation.min,
                p.activation.max,
            );
        }
    }
}

/// f32 FullyConnected. Requires a successful [`super::check_f32`].
pub fn eval_f32(p: &FullyConnectedF32Params<'_>, input: &[f32], output: &mut [f32]) {
    let k = p.shape.in_features as usize;
    let n = p.shape.out_features as usize;
    for (x, y) in input.chunks_exact(k).zip(output.chunks_exact_mut(n)) {
        for (o, (yo, w)) in y.iter_mut().zip(p.weights.chunks_exact(k)).enumerate() {
            let mut acc = match p.bias {
                Some(b) => b[o],
                None => 0.0,
            };
            for (&xi, &wi) in x.iter().zip(w) {
                acc += xi * wi;
            }
            *yo = p.activation.apply(acc);
        }
    }
}
