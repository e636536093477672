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

/// int8 BatchMatMul. Requires a successful [`super::check_i8`].
pub fn eval_i8(p: &BatchMatMulParams, a: &[i8], b: &[i8], out: &mut [i8]) {
    let s = p.shape;
    let (m, k, n) = (s.m as usize, s.k as usize, s.n as usize);
    for ((ab, bb), ob) in a
        .chunks_exact(m * k)
        .zip(b.chunks_exact(k * n))
        .zip(out.chunks_exact_mut(m * n))
    {
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0i32;
                for t in 0..k {
                    let bv = if s.transpose_b {
                        bb[j * k + t]
                    } else {
                        bb[t * n + j]
                    };
                    let prod =
                        (ab[i * k + t] as i32 - p.a_zero_point) * (bv as i32 - p.b_zero_point);
                    acc = acc.wrapping_add(prod);
                }
                ob[i * n + j] = finish(p, acc);
            }
        }
    }
}

/// f32 BatchMatMul. Requires a successful [`super::check_f32`].
pub fn eval_f32(p: &BatchMatMulF32Params, a: &[f32], b: &[f32], out: &mut [f32]) {
    let s = p.shape;
    let (m, k, n) = (s.m as usize, s.k as usize, s.n as usize);
    for ((ab, bb), ob) in a
        .chunks_exact(m * k)
        .zip(b.chunks_exact(k * n))
        .zip(out.chunks_exact_mut(m * n))
    {
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0f32;
                for t in 0..k {
                    let bv = if s.transpose_b {
                        bb[j * k + t]
                    } else {
                        bb[t * n + j]
                    };
                    acc += ab[i * k + t] * bv;
                }
                ob[i * n + j] = p.activation.apply(acc);
            }
        }
    }
}
