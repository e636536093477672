//! AVX2 f32 LayerNorm, bit-exact to [`super::reference::eval_f32`].
//!
//! Per row (four rows at a time, their reductions interleaved), eight columns per vector: the sum and the sum of squared deviations in the
//! reference's lane order (`fmath::sum_lanes`: partial sum `i % 8`, then a fixed tree; the last
//! `cols % 8` values are added to the first partial sums in scalar code), the same divisions and
//! square root (scalar, once per row), then `((x − mean) · inv) · γ + β` with separate multiplies
//! and adds (no fused multiply-add), as the reference evaluates it.

use core::arch::x86_64::*;

use super::LayerNormF32Params;
use crate::ops::fmath::{self, avx2::lanes_finish};

/// Rows normalized together: their reductions are independent dependency chains (each a
/// sequence of vector adds with a 4-cycle latency), so interleaving them fills the pipeline.
const ROWS: usize = 4;

/// AVX2 f32 LayerNorm.
///
/// # Safety
/// The CPU must support AVX2. Requires a successful [`super::check_f32`].
#[target_feature(enable = "avx2")]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub unsafe fn eval_f32(p: &LayerNormF32Params<'_>, input: &[f32], output: &mut [f32]) {
    let c = p.cols as usize;
    let mut xs = input.chunks_exact(ROWS * c);
    let mut ys = output.chunks_exact_mut(ROWS * c);
    for (x, y) in (&mut xs).zip(&mut ys) {
        // SAFETY: AVX2 is enabled in this function; `x` and `y` hold `ROWS` rows.
        unsafe { rows::<ROWS>(p, x, y) };
    }
    for (x, y) in xs
        .remainder()
        .chunks_exact(c)
        .zip(ys.into_remainder().chunks_exact_mut(c))
    {
        // SAFETY: as above, one row.
        unsafe { rows::<1>(p, x, y) };
    }
}

/// Normalizes the `R` rows of `x` into `y`, each exactly as the reference does, with the
/// rows' reductions interleaved.
///
/// # Safety
/// The CPU must support AVX2. `x` and `y` hold `R` rows of `p.cols` values, `p.gamma` and
/// `p.beta` at least `p.cols`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn rows<const R: usize>(p: &LayerNormF32Params<'_>, x: &[f32], y: &mut [f32]) {
    let c = p.cols as usize;
    let full = c - c % 8;
    let (gamma, beta) = (&p.gamma[..c], &p.beta[..c]);
    assert!(x.len() >= R * c && y.len() >= R * c);
    let xp = x.as_ptr();
    let mut acc = [_mm256_setzero_ps(); R];
    for b in (0..full).step_by(8) {
        for (r, a) in acc.iter_mut().enumerate() {
            // SAFETY: `r·c + b + 8 <= r·c + full <= R·c` values of `x` (asserted above).
            *a = _mm256_add_ps(*a, unsafe { _mm256_loadu_ps(xp.add(r * c + b)) });
        }
    }
    let mut mean = [0f32; R];
    for (r, m) in mean.iter_mut().enumerate() {
        // SAFETY: AVX2 is enabled in this function.
        *m = unsafe { lanes_finish(acc[r], &x[r * c + full..(r + 1) * c], |v| v) } / c as f32;
    }
    let mean8: [__m256; R] = core::array::from_fn(|r| _mm256_set1_ps(mean[r]));
    let mut acc = [_mm256_setzero_ps(); R];
    for b in (0..full).step_by(8) {
        for (r, a) in acc.iter_mut().enumerate() {
            // SAFETY: as in the first pass.
            let d = _mm256_sub_ps(unsafe { _mm256_loadu_ps(xp.add(r * c + b)) }, mean8[r]);
            *a = _mm256_add_ps(*a, _mm256_mul_ps(d, d));
        }
    }
    let mut inv = [0f32; R];
    for (r, iv) in inv.iter_mut().enumerate() {
        let m = mean[r];
        // SAFETY: AVX2 is enabled in this function.
        let var =
            unsafe { lanes_finish(acc[r], &x[r * c + full..(r + 1) * c], |v| (v - m) * (v - m)) }
                / c as f32;
        *iv = 1.0 / fmath::sqrt(var + p.epsilon);
    }
    for r in 0..R {
        let (xr, yr) = (&x[r * c..(r + 1) * c], &mut y[r * c..(r + 1) * c]);
        let (m, iv) = (mean[r], inv[r]);
        let inv8 = _mm256_set1_ps(iv);
        for (((yb, xb), gb), bb) in yr[..full]
            .chunks_exact_mut(8)
            .zip(xr[..full].chunks_exact(8))
            .zip(gamma[..full].chunks_exact(8))
            .zip(beta[..full].chunks_exact(8))
        {
            // SAFETY: every block has exactly 8 values: unaligned 32-byte loads and one store.
            unsafe {
                let d = _mm256_sub_ps(_mm256_loadu_ps(xb.as_ptr()), mean8[r]);
                let v = _mm256_mul_ps(_mm256_mul_ps(d, inv8), _mm256_loadu_ps(gb.as_ptr()));
                _mm256_storeu_ps(
                    yb.as_mut_ptr(),
                    _mm256_add_ps(v, _mm256_loadu_ps(bb.as_ptr())),
                );
            }
        }
        for i in full..c {
            yr[i] = (xr[i] - m) * iv * gamma[i] + beta[i];
        }
    }
}

/// Safe entry for kernel tables built after `is_x86_feature_detected!("avx2")`.
#[cfg(any(test, feature = "std"))]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub(crate) fn eval_f32_detected(p: &LayerNormF32Params<'_>, input: &[f32], output: &mut [f32]) {
    debug_assert!(std::is_x86_feature_detected!("avx2"));
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2`, which checks
    // `is_x86_feature_detected!("avx2")` first.
    unsafe { eval_f32(p, input, output) }
}
