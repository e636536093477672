//! AVX-512 f32 softmax, bit-exact to [`super::reference::eval_f32`] (and to [`super::avx2`]).
//!
//! The AVX2 form's steps on sixteen lanes: the row maximum with `vmaxps zmm` (the maximum of
//! the non-NaN values does not depend on the order), `exp` sixteen at a time with
//! [`fmath::avx512::exp16`](crate::ops::fmath) (bit-exact to `fmath::exp`), the scaling by
//! `1 / sum`. The sum keeps the reference's order (`fmath::sum_lanes`: element `i` into partial
//! sum `i % 8`): each block of sixteen exponentials is added to the eight partial sums as its
//! low half, then its high half. A last block of eight uses the AVX2 `exp8`, the last
//! `depth % 8` values the scalar functions.

use core::arch::x86_64::*;

use super::SoftmaxF32Params;
use crate::ops::fmath::{self, avx2::exp8, avx512::exp16};

/// AVX-512 f32 softmax.
///
/// # Safety
/// The CPU must support AVX2 and AVX512F. Requires a successful [`super::check_f32`].
#[target_feature(enable = "avx2,avx512f")]
pub unsafe fn eval_f32(p: &SoftmaxF32Params, input: &[f32], output: &mut [f32]) {
    let depth = p.shape.depth as usize;
    let beta16 = _mm512_set1_ps(p.beta);
    let beta8 = _mm256_set1_ps(p.beta);
    let full16 = depth - depth % 16;
    let full8 = depth - depth % 8;
    for (x, y) in input
        .chunks_exact(depth)
        .zip(output.chunks_exact_mut(depth))
    {
        let mut xc = x.chunks_exact(16);
        let mut m16 = _mm512_set1_ps(f32::NEG_INFINITY);
        for c in &mut xc {
            // SAFETY: `c` has exactly 16 values: one unaligned 64-byte load.
            let v = unsafe { _mm512_loadu_ps(c.as_ptr()) };
            m16 = _mm512_max_ps(v, m16);
        }
        let mut lanes = [0f32; 16];
        // SAFETY: `lanes` holds 16 values: one unaligned 64-byte store.
        unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), m16) };
        let max = lanes
            .iter()
            .chain(xc.remainder())
            .copied()
            .fold(f32::NEG_INFINITY, |m, v| if v > m { v } else { m });
        let max16 = _mm512_set1_ps(max);
        let max8 = _mm256_set1_ps(max);
        let mut acc = _mm256_setzero_ps();
        for (yc, c) in y[..full16].chunks_exact_mut(16).zip(x.chunks_exact(16)) {
            // SAFETY: `c` and `yc` have exactly 16 values: unaligned 64-byte load and store;
            // AVX512F and AVX2 are enabled in this function.
            unsafe {
                let v = _mm512_loadu_ps(c.as_ptr());
                let e = exp16(_mm512_mul_ps(beta16, _mm512_sub_ps(v, max16)));
                _mm512_storeu_ps(yc.as_mut_ptr(), e);
                // Elements 16b..16b+7, then 16b+8..16b+15: the reference's order.
                acc = _mm256_add_ps(acc, _mm512_castps512_ps256(e));
                acc = _mm256_add_ps(
                    acc,
                    _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(e))),
                );
            }
        }
        if full8 > full16 {
            let (c, yc) = (&x[full16..full8], &mut y[full16..full8]);
            // SAFETY: `c` and `yc` have exactly 8 values; AVX2 is enabled in this function.
            unsafe {
                let v = _mm256_loadu_ps(c.as_ptr());
                let e = exp8(_mm256_mul_ps(beta8, _mm256_sub_ps(v, max8)));
                _mm256_storeu_ps(yc.as_mut_ptr(), e);
                acc = _mm256_add_ps(acc, e);
            }
        }
        for (yi, &xi) in y[full8..].iter_mut().zip(&x[full8..]) {
            *yi = fmath::exp(p.beta * (xi - max));
        }
        // SAFETY: AVX2 is enabled in this function.
        let sum = unsafe { fmath::avx2::lanes_finish(acc, &y[full8..], |v| v) };
        let inv = 1.0 / sum;
        let inv16 = _mm512_set1_ps(inv);
        let mut yc = y.chunks_exact_mut(16);
        for c in &mut yc {
            // SAFETY: `c` has exactly 16 values: unaligned 64-byte load and store.
            unsafe {
                let v = _mm512_loadu_ps(c.as_ptr());
                _mm512_storeu_ps(c.as_mut_ptr(), _mm512_mul_ps(v, inv16));
            }
        }
        for yi in yc.into_remainder() {
            *yi *= inv;
        }
    }
}

/// Whether this CPU runs [`eval_f32`] (AVX2 and AVX512F).
#[cfg(any(test, feature = "std"))]
pub(crate) fn detected() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("avx512f")
}

/// Safe entry for kernel tables built after [`detected`].
#[cfg(any(test, feature = "std"))]
pub(crate) fn eval_f32_detected(p: &SoftmaxF32Params, input: &[f32], output: &mut [f32]) {
    debug_assert!(detected());
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2` after `detected()`.
    unsafe { eval_f32(p, input, output) }
}
