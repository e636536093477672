//! AVX2 int8 BatchMatMul, bit-exact to [`super::reference::eval_i8`]: every batch is one widened
//! 16-bit matrix product of [`crate::ops::gemm_avx2`], with rows of `A` offset by `-a_zero_point`
//! and rows of `Bᵀ` (`B`'s columns when `transpose_b` is false, gathered once per call and block)
//! offset by `-b_zero_point`. Sums are the reference's modulo 2³² and requantization (one
//! multiplier per tensor) is bit-exact to [`crate::quant::requantize_to_i8`]. `k` beyond the
//! widened buffer uses the reference.

use super::BatchMatMulParams;
use crate::ops::gemm_avx2::{gemm, Epilogue};

/// AVX2 BatchMatMul.
///
/// # Safety
/// The CPU must support AVX2. Requires a successful [`super::check_i8`].
#[target_feature(enable = "avx2")]
pub unsafe fn eval_i8(p: &BatchMatMulParams, a: &[i8], b: &[i8], out: &mut [i8]) {
    let s = p.shape;
    let (m, k, n) = (s.m as usize, s.k as usize, s.n as usize);
    let mult = [p.output_multiplier];
    let shift = [p.output_shift];
    let epi = Epilogue {
        bias: None,
        multiplier: &mult,
        shift: &shift,
        zero_point: p.output_zero_point,
        min: p.activation.min,
        max: p.activation.max,
    };
    let (za, zb) = (p.a_zero_point, p.b_zero_point);
    for ((ab, bb), ob) in a
        .chunks_exact(m * k)
        .zip(b.chunks_exact(k * n))
        .zip(out.chunks_exact_mut(m * n))
    {
        let x_row = |i: usize, dst: &mut [i16]| {
            for (d, &v) in dst.iter_mut().zip(&ab[i * k..(i + 1) * k]) {
                *d = (v as i32 - za) as i16;
            }
        };
        let w_row = |j: usize, dst: &mut [i16]| {
            if s.transpose_b {
                for (d, &v) in dst.iter_mut().zip(&bb[j * k..(j + 1) * k]) {
                    *d = (v as i32 - zb) as i16;
                }
            } else {
                for (t, d) in dst.iter_mut().enumerate() {
                    *d = (bb[t * n + j] as i32 - zb) as i16;
                }
            }
        };
        // SAFETY: the caller guarantees AVX2; `ob` holds `m·n` values.
        if !unsafe { gemm(m, n, k, x_row, w_row, &epi, ob) } {
            return super::reference::eval_i8(p, a, b, out);
        }
    }
}

/// Safe entry for kernel tables built after `is_x86_feature_detected!("avx2")`.
#[cfg(any(test, feature = "std"))]
pub(crate) fn eval_i8_detected(p: &BatchMatMulParams, a: &[i8], b: &[i8], out: &mut [i8]) {
    debug_assert!(std::is_x86_feature_detected!("avx2"));
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2`, which checks
    // `is_x86_feature_detected!("avx2")` first.
    unsafe { eval_i8(p, a, b, out) }
}
