//! AVX2 forms of [`super::exp`] and [`super::sum_lanes_by`], bit-exact to the scalar functions.
//!
//! `exp8` performs, lane by lane, exactly the f32 operations of [`super::exp`] in the same order
//! (separate `vmulps`/`vaddps`, never a fused multiply-add; IEEE single precision with
//! round-to-nearest-even, as the scalar code): the rounding of `x·log2 e` to an integer (ties
//! away from zero: `±0.5` added, then truncated), the Cody–Waite reduction, the Horner
//! polynomial, the `2^n` scaling (in two steps for `n = 128`), and the three special cases
//! (NaN, overflow to `+inf`, underflow to 0) as blends.

use core::arch::x86_64::*;

use super::{LANES, LN2_HI, LN2_LO, LOG2_E};

/// [`super::exp`] of eight lanes.
///
/// # Safety
/// The CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn exp8(x: __m256) -> __m256 {
    let t = _mm256_mul_ps(x, _mm256_set1_ps(LOG2_E));
    // round_to_i32: (t + 0.5) truncated for t >= 0, (t - 0.5) truncated below.
    let half = _mm256_blendv_ps(
        _mm256_set1_ps(-0.5),
        _mm256_set1_ps(0.5),
        _mm256_cmp_ps::<_CMP_GE_OQ>(t, _mm256_setzero_ps()),
    );
    let n = _mm256_cvttps_epi32(_mm256_add_ps(t, half));
    let nf = _mm256_cvtepi32_ps(n);
    let r = _mm256_sub_ps(
        _mm256_sub_ps(x, _mm256_mul_ps(nf, _mm256_set1_ps(LN2_HI))),
        _mm256_mul_ps(nf, _mm256_set1_ps(LN2_LO)),
    );
    let c = |v: f32| _mm256_set1_ps(v);
    // 1 + r(1 + r(1/2 + r(1/6 + r(1/24 + r(1/120 + r/720))))), innermost first.
    let mut p = _mm256_add_ps(c(1.0 / 120.0), _mm256_mul_ps(r, c(1.0 / 720.0)));
    p = _mm256_add_ps(c(1.0 / 24.0), _mm256_mul_ps(r, p));
    p = _mm256_add_ps(c(1.0 / 6.0), _mm256_mul_ps(r, p));
    p = _mm256_add_ps(c(0.5), _mm256_mul_ps(r, p));
    p = _mm256_add_ps(c(1.0), _mm256_mul_ps(r, p));
    p = _mm256_add_ps(c(1.0), _mm256_mul_ps(r, p));
    // n = 128: p · 2 · 2^127 (n lowered by one where `big` is all ones, i.e. -1).
    let big = _mm256_cmpgt_epi32(n, _mm256_set1_epi32(127));
    let p = _mm256_blendv_ps(p, _mm256_mul_ps(p, c(2.0)), _mm256_castsi256_ps(big));
    let e = _mm256_add_epi32(n, big);
    let pow2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
        e,
        _mm256_set1_epi32(127),
    )));
    let y = _mm256_mul_ps(p, pow2);
    let y = _mm256_blendv_ps(
        y,
        c(f32::INFINITY),
        _mm256_cmp_ps::<_CMP_GT_OQ>(x, c(88.72)),
    );
    let y = _mm256_blendv_ps(
        y,
        _mm256_setzero_ps(),
        _mm256_cmp_ps::<_CMP_LT_OQ>(x, c(-87.3)),
    );
    _mm256_blendv_ps(y, x, _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x))
}

/// Finishes a lane-ordered sum: the eight partial sums in `acc`, plus the last `tail.len() < 8`
/// values `f(tail[j])` added to partial sum `j`, combined by [`super::reduce_lanes`]. With `acc`
/// accumulated from zero over the full blocks of eight (`acc = acc + f(block)`, one
/// `_mm256_add_ps` per block), the result is bit-exact to [`super::sum_lanes_by`] over the whole
/// slice.
///
/// # Safety
/// The CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn lanes_finish(acc: __m256, tail: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut a = [0f32; LANES];
    // SAFETY: `a` holds eight f32: one unaligned 32-byte store.
    unsafe { _mm256_storeu_ps(a.as_mut_ptr(), acc) };
    for (s, &v) in a.iter_mut().zip(tail) {
        *s += f(v);
    }
    super::reduce_lanes(a)
}
