//! AVX-512 form of [`super::exp`], bit-exact to the scalar function and to
//! [`super::avx2::exp8`]: the same f32 operations in the same order (separate `vmulps`/`vaddps`,
//! never fused), sixteen lanes at a time, with mask registers where the AVX2 form blends.

use core::arch::x86_64::*;

use super::{LN2_HI, LN2_LO, LOG2_E};

/// [`super::exp`] of sixteen lanes.
///
/// # Safety
/// The CPU must support AVX512F.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn exp16(x: __m512) -> __m512 {
    let c = |v: f32| _mm512_set1_ps(v);
    let t = _mm512_mul_ps(x, c(LOG2_E));
    // round_to_i32: (t + 0.5) truncated for t >= 0, (t - 0.5) truncated below.
    let ge0 = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(t, _mm512_setzero_ps());
    let half = _mm512_mask_blend_ps(ge0, c(-0.5), c(0.5));
    let n = _mm512_cvttps_epi32(_mm512_add_ps(t, half));
    let nf = _mm512_cvtepi32_ps(n);
    let r = _mm512_sub_ps(
        _mm512_sub_ps(x, _mm512_mul_ps(nf, c(LN2_HI))),
        _mm512_mul_ps(nf, c(LN2_LO)),
    );
    // 1 + r(1 + r(1/2 + r(1/6 + r(1/24 + r(1/120 + r/720))))), innermost first.
    let mut p = _mm512_add_ps(c(1.0 / 120.0), _mm512_mul_ps(r, c(1.0 / 720.0)));
    p = _mm512_add_ps(c(1.0 / 24.0), _mm512_mul_ps(r, p));
    p = _mm512_add_ps(c(1.0 / 6.0), _mm512_mul_ps(r, p));
    p = _mm512_add_ps(c(0.5), _mm512_mul_ps(r, p));
    p = _mm512_add_ps(c(1.0), _mm512_mul_ps(r, p));
    p = _mm512_add_ps(c(1.0), _mm512_mul_ps(r, p));
    // n = 128: p · 2 · 2^127.
    let big = _mm512_cmpgt_epi32_mask(n, _mm512_set1_epi32(127));
    let p = _mm512_mask_mul_ps(p, big, p, c(2.0));
    let e = _mm512_mask_sub_epi32(n, big, n, _mm512_set1_epi32(1));
    let pow2 = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
        e,
        _mm512_set1_epi32(127),
    )));
    let y = _mm512_mul_ps(p, pow2);
    let y = _mm512_mask_blend_ps(
        _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, c(88.72)),
        y,
        c(f32::INFINITY),
    );
    let y = _mm512_mask_blend_ps(
        _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, c(-87.3)),
        y,
        _mm512_setzero_ps(),
    );
    _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x), y, x)
}
