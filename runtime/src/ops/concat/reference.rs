//! The Concat specification: plain loops, no `unsafe`.

use super::{ConcatF32Params, ConcatParams, IDENTITY};
use crate::quant::requantize_to_i8;

/// int8 Concat.
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub fn eval_i8(p: &ConcatParams<'_>, inputs: &[&[i8]], output: &mut [i8]) {
    let outer = p.outer as usize;
    let mut out = output.iter_mut();
    for o in 0..outer {
        for (i, x) in inputs.iter().enumerate() {
            let chunk = x.len() / outer;
            let (zp, m, s) = (
                p.input_zero_points[i],
                p.input_multipliers[i],
                p.input_shifts[i],
            );
            let part = &x[o * chunk..(o + 1) * chunk];
            if zp == p.output_zero_point && (m, s) == IDENTITY {
                // `part` first: zip stops without taking an extra output slot.
                for (&v, y) in part.iter().zip(&mut out) {
                    *y = v;
                }
            } else {
                for (&v, y) in part.iter().zip(&mut out) {
                    *y = requantize_to_i8(
                        v as i32 - zp,
                        m,
                        s,
                        p.output_zero_point,
                        i8::MIN,
                        i8::MAX,
                    );
                }
            }
        }
    }
}

/// f32 Concat.
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub fn eval_f32(p: &ConcatF32Params, inputs: &[&[f32]], output: &mut [f32]) {
    let outer = p.outer as usize;
    let mut out = output.iter_mut();
    for o in 0..outer {
        for x in inputs {
            let chunk = x.len() / outer;
            for (&v, y) in x[o * chunk..(o + 1) * chunk].iter().zip(&mut out) {
                *y = v;
            }
        }
    }
}
