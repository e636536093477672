//! AVX2 f32 softmax, bit-exact to [`super::reference::eval_f32`].
//!
//! Per row: the maximum with `vmaxps` (per lane `v > m ? v : m`, the reference's fold; the
//! maximum of the non-NaN values does not depend on the order, and a `-0.0`/`+0.0` difference
//! gives the same `exp`), eight `exp` at a time with [`fmath::avx2::exp8`](crate::ops::fmath)
//! (bit-exact to `fmath::exp`), the sum in the reference's lane order
//! (`fmath::sum_lanes`), and the scaling by `1 / sum`. The last `depth % 8` values of a row go
//! through the scalar functions.

use core::arch::x86_64::*;

use super::SoftmaxF32Params;
use crate::ops::fmath::{self, avx2::exp8};

/// AVX2 f32 softmax.
///
/// # Safety
/// The CPU must support AVX2. Requires a successful [`super::check_f32`].
#[target_feature(enable = "avx2")]
pub unsafe fn eval_f32(p: &SoftmaxF32Params, input: &[f32], output: &mut [f32]) {
    let depth = p.shape.depth as usize;
    let beta = _mm256_set1_ps(p.beta);
    for (x, y) in input
        .chunks_exact(depth)
        .zip(output.chunks_exact_mut(depth))
    {
        let mut xc = x.chunks_exact(8);
        let mut m8 = _mm256_set1_ps(f32::NEG_INFINITY);
        for c in &mut xc {
            // SAFETY: `c` has exactly 8 values: one unaligned 32-byte load.
            let v = unsafe { _mm256_loadu_ps(c.as_ptr()) };
            m8 = _mm256_max_ps(v, m8);
        }
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` holds 8 values: one unaligned 32-byte store.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), m8) };
        let max = lanes
            .iter()
            .chain(xc.remainder())
            .copied()
            .fold(f32::NEG_INFINITY, |m, v| if v > m { v } else { m });
        let max8 = _mm256_set1_ps(max);
        let mut acc = _mm256_setzero_ps();
        let full = depth - depth % 8;
        for (yc, c) in y[..full].chunks_exact_mut(8).zip(x.chunks_exact(8)) {
            // SAFETY: `c` and `yc` have exactly 8 values: unaligned 32-byte load and store.
            unsafe {
                let v = _mm256_loadu_ps(c.as_ptr());
                // SAFETY: AVX2 is enabled in this function.
                let e = exp8(_mm256_mul_ps(beta, _mm256_sub_ps(v, max8)));
                acc = _mm256_add_ps(acc, e);
                _mm256_storeu_ps(yc.as_mut_ptr(), e);
            }
        }
        for (yi, &xi) in y[full..].iter_mut().zip(&x[full..]) {
            *yi = fmath::exp(p.beta * (xi - max));
        }
        // SAFETY: AVX2 is enabled in this function.
        let sum = unsafe { fmath::avx2::lanes_finish(acc, &y[full..], |v| v) };
        let inv = 1.0 / sum;
        let inv8 = _mm256_set1_ps(inv);
        let mut yc = y.chunks_exact_mut(8);
        for c in &mut yc {
            // SAFETY: `c` has exactly 8 values: unaligned 32-byte load and store.
            unsafe {
                let v = _mm256_loadu_ps(c.as_ptr());
                _mm256_storeu_ps(c.as_mut_ptr(), _mm256_mul_ps(v, inv8));
            }
        }
        for yi in yc.into_remainder() {
            *yi *= inv;
        }
    }
}

/// Safe entry for kernel tables built after `is_x86_feature_detected!("avx2")`.
#[cfg(any(test, feature = "std"))]
pub(crate) fn eval_f32_detected(p: &SoftmaxF32Params, input: &[f32], output: &mut [f32]) {
    debug_assert!(std::is_x86_feature_detected!("avx2"));
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2`, which checks
    // `is_x86_feature_detected!("avx2")` first.
    unsafe { eval_f32(p, input, output) }
}
