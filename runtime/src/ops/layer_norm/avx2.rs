//! AVX2 f32 LayerNorm, bit-exact to [`super::reference::eval_f32`].
//!
//! Per row, eight columns per vector: the sum and the sum of squared deviations in the
//! reference's lane order (`fmath::sum_lanes`: partial sum `i % 8`, then a fixed tree; the last
//! `cols % 8` values are added to the first partial sums in scalar code), the same divisions and
//! square root (scalar, once per row), then `((x − mean) · inv) · γ + β` with separate multiplies
//! and adds (no fused multiply-add), as the reference evaluates it.

use core::arch::x86_64::*;

use super::LayerNormF32Params;
use crate::ops::fmath::{self, avx2::lanes_finish};

/// AVX2 f32 LayerNorm.
///
/// # Safety
/// The CPU must support AVX2. Requires a successful [`super::check_f32`].
#[target_feature(enable = "avx2")]
pub unsafe fn eval_f32(p: &LayerNormF32Params<'_>, input: &[f32], output: &mut [f32]) {
    let c = p.cols as usize;
    let full = c - c % 8;
    let (gamma, beta) = (&p.gamma[..c], &p.beta[..c]);
    for (x, y) in input.chunks_exact(c).zip(output.chunks_exact_mut(c)) {
        let mut acc = _mm256_setzero_ps();
        for b in x[..full].chunks_exact(8) {
            // SAFETY: `b` has exactly 8 values: one unaligned 32-byte load.
            acc = _mm256_add_ps(acc, unsafe { _mm256_loadu_ps(b.as_ptr()) });
        }
        // SAFETY: AVX2 is enabled in this function.
        let mean = unsafe { lanes_finish(acc, &x[full..], |v| v) } / c as f32;
        let mean8 = _mm256_set1_ps(mean);
        let mut acc = _mm256_setzero_ps();
        for b in x[..full].chunks_exact(8) {
            // SAFETY: `b` has exactly 8 values: one unaligned 32-byte load.
            let d = _mm256_sub_ps(unsafe { _mm256_loadu_ps(b.as_ptr()) }, mean8);
            acc = _mm256_add_ps(acc, _mm256_mul_ps(d, d));
        }
        // SAFETY: AVX2 is enabled in this function.
        let var = unsafe { lanes_finish(acc, &x[full..], |v| (v - mean) * (v - mean)) } / c as f32;
        let inv = 1.0 / fmath::sqrt(var + p.epsilon);
        let inv8 = _mm256_set1_ps(inv);
        for (((yb, xb), gb), bb) in y[..full]
            .chunks_exact_mut(8)
            .zip(x[..full].chunks_exact(8))
            .zip(gamma[..full].chunks_exact(8))
            .zip(beta[..full].chunks_exact(8))
        {
            // SAFETY: every block has exactly 8 values: unaligned 32-byte loads and one store.
            unsafe {
                let d = _mm256_sub_ps(_mm256_loadu_ps(xb.as_ptr()), mean8);
                let v = _mm256_mul_ps(_mm256_mul_ps(d, inv8), _mm256_loadu_ps(gb.as_ptr()));
                _mm256_storeu_ps(
                    yb.as_mut_ptr(),
                    _mm256_add_ps(v, _mm256_loadu_ps(bb.as_ptr())),
                );
            }
        }
        for i in full..c {
            y[i] = (x[i] - mean) * inv * gamma[i] + beta[i];
        }
    }
}

/// Safe entry for kernel tables built after `is_x86_feature_detected!("avx2")`.
#[cfg(any(test, feature = "std"))]
pub(crate) fn eval_f32_detected(p: &LayerNormF32Params<'_>, input: &[f32], output: &mut [f32]) {
    debug_assert!(std::is_x86_feature_detected!("avx2"));
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2`, which checks
    // `is_x86_feature_detected!("avx2")` first.
    unsafe { eval_f32(p, input, output) }
}
