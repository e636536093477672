//! The activation specification: an element-wise clamp.

use super::{ActivationF32Params, ActivationParams};

/// int8 clamp to `[min, max]`.
pub fn eval_i8(p: &ActivationParams, input: &[i8], output: &mut [i8]) {
    for (y, &x) in output.iter_mut().zip(input) {
        *y = x.max(p.clamp.min).min(p.clamp.max);
    }
}

/// int8 clamp in place.
pub fn eval_i8_in_place(p: &ActivationParams, data: &mut [i8]) {
    for x in data {
        *x = (*x).max(p.clamp.min).min(p.clamp.max);
    }
}

/// f32 clamp (NaN stays NaN).
pub fn eval_f32(p: &ActivationF32Params, input: &[f32], output: &mut [f32]) {
    for (y, &x) in output.iter_mut().zip(input) {
        *y = p.clamp.apply(x);
    }
}

/// f32 clamp in place.
pub fn eval_f32_in_place(p: &ActivationF32Params, data: &mut [f32]) {
    for x in data {
        *x = p.clamp.apply(*x);
    }
}
