//! The BatchMatMul specification: plain loops, no `unsafe`.

use super::{BatchMatMulF32Params, BatchMatMulParams};
use crate::quant::requantize_to_i8;

#[inline(always)]
pub(crate) fn finish(p: &BatchMatMulParams, acc: i32) -> i8 {
    requantize_to_i8(
        acc,
        p.output_multiplier,
        p.output_shift,
        p.output_zero_point,
        p.activation.min,
        p.activation.max,
    )
}

/// The sum of the products `(a − za)·(b − zb)` over the pairs of `a` and `b`, wrapping.
#[inline(always)]
fn dot_i8<'b>(a: &[i8], b: impl IntoIterator<Item = &'b i8>, (za, zb): (i32, i32)) -> i32 {
    a.iter().zip(b).fold(0i32, |acc, (&x, &y)| {
        acc.wrapping_add((x as i32 - za) * (y as i32 - zb))
    })
}

/// int8 BatchMatMul. Requires a successful [`super::check_i8`].
pub fn eval_i8(p: &BatchMatMulParams, a: &[i8], b: &[i8], out: &mut [i8]) {
    let s = p.shape;
    let (m, k, n) = (s.m as usize, s.k as usize, s.n as usize);
    let (za, zb) = (p.a_zero_point, p.b_zero_point);
    for ((ab, bb), ob) in a
        .chunks_exact(m * k)
        .zip(b.chunks_exact(k * n))
        .zip(out.chunks_exact_mut(m * n))
    {
        for (a_row, o_row) in ab.chunks_exact(k).zip(ob.chunks_exact_mut(n)) {
            for (j, o) in o_row.iter_mut().enumerate() {
                // Column `j` of B: a row of the stored `[n, k]` when transposed.
                let acc = if s.transpose_b {
                    dot_i8(a_row, &bb[j * k..(j + 1) * k], (za, zb))
                } else {
                    dot_i8(a_row, bb[j..].iter().step_by(n), (za, zb))
                };
                *o = finish(p, acc);
            }
        }
    }
}

/// f32 BatchMatMul. Requires a successful [`super::check_f32`].
pub fn eval_f32(p: &BatchMatMulF32Params, a: &[f32], b: &[f32], out: &mut [f32]) {
    let s = p.shape;
    let (m, k, n) = (s.m as usize, s.k as usize, s.n as usize);
    // The products of the pairs, summed in order.
    fn dot<'b>(a: &[f32], b: impl IntoIterator<Item = &'b f32>) -> f32 {
        a.iter().zip(b).fold(0.0, |acc, (&x, &y)| acc + x * y)
    }
    for ((ab, bb), ob) in a
        .chunks_exact(m * k)
        .zip(b.chunks_exact(k * n))
        .zip(out.chunks_exact_mut(m * n))
    {
        for (a_row, o_row) in ab.chunks_exact(k).zip(ob.chunks_exact_mut(n)) {
            for (j, o) in o_row.iter_mut().enumerate() {
                // Column `j` of B: a row of the stored `[n, k]` when transposed.
                let acc = if s.transpose_b {
                    dot(a_row, &bb[j * k..(j + 1) * k])
                } else {
                    dot(a_row, bb[j..].iter().step_by(n))
                };
                *o = p.activation.apply(acc);
            }
        }
    }
}
