//! AVX-512 forms of [`super::exp`], [`super::erf`] and [`super::gelu`], bit-exact to the scalar
//! functions (and `exp16` to [`super::avx2::exp8`]): the same f32 operations in the same order
//! (separate `vmulps`/`vaddps`, never fused), sixteen lanes at a time, with mask registers where
//! the scalar code branches.

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

/// The vector types [`step_barrier`] takes: one `zmm` register each.
trait Zmm: Copy {
    /// Holds `self` in a `zmm` register at this point of the program (see [`step_barrier`]).
    ///
    /// # Safety
    /// The CPU must support AVX512F.
    unsafe fn hold(&mut self);
}

/// [`Zmm`] for each type listed, all with the one empty `asm!` block.
macro_rules! impl_zmm {
    ($($t:ty),*) => {$(
        impl Zmm for $t {
            #[inline]
            #[target_feature(enable = "avx512f")]
            unsafe fn hold(&mut self) {
                // SAFETY: an empty template: no instruction, no memory or stack access, no
                // flags changed; `self` is read and written back unchanged in a vector register.
                unsafe {
                    core::arch::asm!(
                        "/* {0} */",
                        inout(zmm_reg) *self,
                        options(nomem, nostack, preserves_flags)
                    )
                };
            }
        }
    )*};
}

impl_zmm!(__m512, __m512i);

/// Holds each vector of `v` (float or integer) in a register at this point of the program: an
/// empty `asm!` block per vector that the compiler must keep in order with the other ones, so
/// that the values are computed before it and what uses them after it. [`exp16_n`] puts one
/// after each step.
#[inline]
#[target_feature(enable = "avx512f")]
fn step_barrier<T: Zmm, const N: usize>(v: &mut [T; N]) {
    for x in v.iter_mut() {
        // SAFETY: AVX512F is enabled here.
        unsafe { x.hold() };
    }
}

/// The middle steps of [`exp16_n`] and [`exp16_n_nonpositive`], each followed by a
/// [`step_barrier`]: `r = (x − n·ln2_hi) − n·ln2_lo` and the degree-6 polynomial
/// `1 + r(1 + r(1/2 + r(1/6 + r(1/24 + r(1/120 + r/720)))))`, innermost first (the scalar
/// [`super::exp`]'s operations in its order). `nf` is `n` as f32.
///
/// # Safety
/// The CPU must support AVX512F.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn reduced_poly<const N: usize>(x: &[__m512; N], nf: &[__m512; N]) -> [__m512; N] {
    let c = |v: f32| _mm512_set1_ps(v);
    let mut hi: [__m512; N] =
        core::array::from_fn(|k| _mm512_sub_ps(x[k], _mm512_mul_ps(nf[k], c(LN2_HI))));
    step_barrier(&mut hi);
    let mut r: [__m512; N] =
        core::array::from_fn(|k| _mm512_sub_ps(hi[k], _mm512_mul_ps(nf[k], c(LN2_LO))));
    step_barrier(&mut r);
    let mut p = r.map(|r| _mm512_add_ps(c(1.0 / 120.0), _mm512_mul_ps(r, c(1.0 / 720.0))));
    step_barrier(&mut p);
    for k in [1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = core::array::from_fn(|j| _mm512_add_ps(c(k), _mm512_mul_ps(r[j], p[j])));
        step_barrier(&mut p);
    }
    p
}

/// [`exp16`] of `N` vectors, step by step: each step of `exp16` runs on all `N` vectors before
/// the next (the same operations per lane, so the same bits). One `exp16` is a chain of ~40
/// dependent instructions; written one after another, a few of them fill the scheduler with
/// waiting instructions and the core runs at about a third of its throughput. Interleaved,
/// each step has `N` independent instructions. The compiler's scheduler would put the chains
/// back one after another (to save registers): an empty `asm!` block after each step
/// ([`step_barrier`]) keeps the interleaving.
///
/// # Safety
/// The CPU must support AVX512F.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn exp16_n<const N: usize>(x: [__m512; N]) -> [__m512; N] {
    let c = |v: f32| _mm512_set1_ps(v);
    let mut t = x.map(|x| _mm512_mul_ps(x, c(LOG2_E)));
    step_barrier(&mut t);
    let half = t.map(|t| {
        let ge0 = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(t, _mm512_setzero_ps());
        _mm512_mask_blend_ps(ge0, c(-0.5), c(0.5))
    });
    let mut n: [__m512i; N] =
        core::array::from_fn(|k| _mm512_cvttps_epi32(_mm512_add_ps(t[k], half[k])));
    step_barrier(&mut n);
    let mut nf = n.map(|n| _mm512_cvtepi32_ps(n));
    step_barrier(&mut nf);
    // SAFETY: AVX512F is enabled here.
    let p = unsafe { reduced_poly(&x, &nf) };
    // n = 128: p · 2 · 2^127.
    let mut y: [__m512; N] = core::array::from_fn(|k| {
        let big = _mm512_cmpgt_epi32_mask(n[k], _mm512_set1_epi32(127));
        let p = _mm512_mask_mul_ps(p[k], big, p[k], c(2.0));
        let e = _mm512_mask_sub_epi32(n[k], big, n[k], _mm512_set1_epi32(1));
        let pow2 = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
            e,
            _mm512_set1_epi32(127),
        )));
        _mm512_mul_ps(p, pow2)
    });
    step_barrier(&mut y);
    core::array::from_fn(|k| {
        let x = x[k];
        let y = _mm512_mask_blend_ps(
            _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, c(88.72)),
            y[k],
            c(f32::INFINITY),
        );
        let y = _mm512_mask_blend_ps(
            _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, c(-87.3)),
            y,
            _mm512_setzero_ps(),
        );
        _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x), y, x)
    })
}

/// [`exp16_n`] for arguments that are `≤ 0` or NaN (softmax's `beta · (x − max)`), with the
/// steps that only other arguments need left out: for every `x ≤ 0` (and `-0.0`) the result
/// has the bits of [`super::exp`]`(x)`, for a NaN it is a NaN (not necessarily `x`'s payload).
///
/// Why the same bits: `t = x · log2(e) ≤ 0`, so `round_to_i32`'s `t − 0.5` branch is the one
/// taken (for `t = ±0` both branches give `n = 0`); `n ≤ 0` never needs the `n = 128` split,
/// and `x > 88.72` never happens. The remaining operations are `exp16`'s, in its order; lanes
/// below `-87.3` are set to `+0.0` by a zero-masked last multiplication. A NaN `x` makes `r`,
/// the polynomial and the product NaN (the comparison with `-87.3` is false for it).
///
/// # Safety
/// The CPU must support AVX512F.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn exp16_n_nonpositive<const N: usize>(x: [__m512; N]) -> [__m512; N] {
    let c = |v: f32| _mm512_set1_ps(v);
    let mut t = x.map(|x| _mm512_mul_ps(x, c(LOG2_E)));
    step_barrier(&mut t);
    let mut n = t.map(|t| _mm512_cvttps_epi32(_mm512_add_ps(t, c(-0.5))));
    step_barrier(&mut n);
    let mut nf = n.map(|n| _mm512_cvtepi32_ps(n));
    step_barrier(&mut nf);
    // SAFETY: AVX512F is enabled here.
    let p = unsafe { reduced_poly(&x, &nf) };
    core::array::from_fn(|k| {
        let pow2 = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
            n[k],
            _mm512_set1_epi32(127),
        )));
        // Not below -87.3 (true for NaN): `p · 2^n`; below: `+0.0`.
        let keep = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(x[k], c(-87.3));
        _mm512_maskz_mul_ps(keep, p[k], pow2)
    })
}

/// [`super::erf`] of sixteen lanes, bit-exact: every branch of the scalar function is computed
/// for all lanes with the same operations in the same order, then each lane keeps the branch
/// the scalar code takes (NaN, then `|x| > 4`, then `|x| < 0.5`, else Abramowitz & Stegun).
///
/// # Safety
/// The CPU must support AVX512F.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn erf16(x: __m512) -> __m512 {
    let c = |v: f32| _mm512_set1_ps(v);
    // Sign-bit operations in the integer domain (the f32 forms need AVX512DQ).
    let flip = |v: __m512| {
        _mm512_castsi512_ps(_mm512_xor_si512(
            _mm512_castps_si512(v),
            _mm512_set1_epi32(i32::MIN),
        ))
    };
    let a = _mm512_castsi512_ps(_mm512_and_si512(
        _mm512_castps_si512(x),
        _mm512_set1_epi32(i32::MAX),
    ));
    let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_setzero_ps());
    // |x| > 4: ±1.
    let big = _mm512_mask_blend_ps(neg, c(1.0), c(-1.0));
    // |x| < 0.5: FRAC_2_SQRT_PI · x · (1 + x2(-1/3 + x2(1/10 + x2(-1/42 + x2(1/216 + x2(-1/1320)))))).
    let x2 = _mm512_mul_ps(x, x);
    let mut s = _mm512_add_ps(c(1.0 / 216.0), _mm512_mul_ps(x2, c(-1.0 / 1320.0)));
    s = _mm512_add_ps(c(-1.0 / 42.0), _mm512_mul_ps(x2, s));
    s = _mm512_add_ps(c(1.0 / 10.0), _mm512_mul_ps(x2, s));
    s = _mm512_add_ps(c(-1.0 / 3.0), _mm512_mul_ps(x2, s));
    s = _mm512_add_ps(c(1.0), _mm512_mul_ps(x2, s));
    let series = _mm512_mul_ps(_mm512_mul_ps(c(core::f32::consts::FRAC_2_SQRT_PI), x), s);
    // Otherwise: 1 - t·(a1 + t(a2 + t(a3 + t(a4 + t·a5))))·exp(-a·a), t = 1 / (1 + p·a).
    let t = _mm512_div_ps(
        c(1.0),
        _mm512_add_ps(c(1.0), _mm512_mul_ps(c(0.327_591_1), a)),
    );
    let mut q = _mm512_add_ps(c(-1.453_152_1), _mm512_mul_ps(t, c(1.061_405_4)));
    q = _mm512_add_ps(c(1.421_413_8), _mm512_mul_ps(t, q));
    q = _mm512_add_ps(c(-0.284_496_74), _mm512_mul_ps(t, q));
    q = _mm512_add_ps(c(0.254_829_6), _mm512_mul_ps(t, q));
    let poly = _mm512_mul_ps(t, q);
    // SAFETY: AVX512F is enabled in this function.
    let e = unsafe { exp16(_mm512_mul_ps(flip(a), a)) };
    let y = _mm512_sub_ps(c(1.0), _mm512_mul_ps(poly, e));
    let tail = _mm512_mask_blend_ps(neg, y, flip(y));
    let r = _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, c(0.5)), tail, series);
    let r = _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, c(4.0)), r, big);
    _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x), r, x)
}

/// [`super::gelu`] of sixteen lanes, bit-exact: `(0.5·x)·(1 + erf(x·(1/√2)))`.
///
/// # Safety
/// The CPU must support AVX512F.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn gelu16(x: __m512) -> __m512 {
    let half_x = _mm512_mul_ps(_mm512_set1_ps(0.5), x);
    // SAFETY: AVX512F is enabled in this function.
    let e = unsafe {
        erf16(_mm512_mul_ps(
            x,
            _mm512_set1_ps(core::f32::consts::FRAC_1_SQRT_2),
        ))
    };
    _mm512_mul_ps(half_x, _mm512_add_ps(_mm512_set1_ps(1.0), e))
}
