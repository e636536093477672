//! NEON int8 FullyConnected (aarch64), bit-exact to [`super::reference::eval_i8`]: each output
//! feature is [`crate::arch::aarch64::dot_offset_i8_neon`] plus the bias, then the reference's
//! [`requantize_to_i8`].

use super::FullyConnectedParams;
use crate::arch::aarch64::dot_offset_i8_neon;
use crate::quant::requantize_to_i8;

/// NEON FullyConnected. Requires a successful [`super::check_i8`].
pub fn eval_i8(p: &FullyConnectedParams<'_>, input: &[i8], output: &mut [i8]) {
    let k = p.shape.in_features as usize;
    let n = p.shape.out_features as usize;
    for (x, y) in input.chunks_exact(k).zip(output.chunks_exact_mut(n)) {
        for (o, (yo, w)) in y.iter_mut().zip(p.weights.chunks_exact(k)).enumerate() {
            let acc = p.bias.map_or(0, |b| b[o]).wrapping_add(dot_offset_i8_neon(
                x,
                -p.input_zero_point,
                w,
                0,
            ));
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
