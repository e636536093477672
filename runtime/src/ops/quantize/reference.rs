//! The Quantize/Dequantize specification.

use super::QuantizeParams;
use crate::quant::{dequantize_f32, quantize_f32};

/// f32 -> int8 (NaN maps to the zero point).
pub fn eval_quantize(p: &QuantizeParams, input: &[f32], output: &mut [i8]) {
    for (y, &x) in output.iter_mut().zip(input) {
        *y = quantize_f32(x, p.scale, p.zero_point);
    }
}

/// int8 -> f32.
pub fn eval_dequantize(p: &QuantizeParams, input: &[i8], output: &mut [f32]) {
    for (y, &q) in output.iter_mut().zip(input) {
        *y = dequantize_f32(q, p.scale, p.zero_point);
    }
}
