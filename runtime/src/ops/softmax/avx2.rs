//! AVX2 softmax: f32 ([`eval_f32`]) and int8 ([`eval_i8`]), each bit-exact to its reference.
//!
//! f32:
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

/// AVX2 int8 softmax, bit-exact to [`super::reference::eval_i8`].
///
/// Per row: the maximum with `vpmaxsb`; the table entries `t[max - x]` gathered eight at a time
/// (`vpgatherdd`) and summed in `f64` lanes (every entry is an integer ≤ 2²⁴ and the row has at
/// most [`super::MAX_DEPTH`] = 2¹⁵ of them, so every partial sum is an integer below 2³⁹ < 2⁵³:
/// exact, and equal to the reference's `u64` total `T`). Then the reference's
/// `q = ⌊(256·t + ⌊T/2⌋) / T⌋` without a division: with the numerator `u` (an integer below 2⁴¹,
/// exact in `f64`), `q₀ = trunc(u · fl(1/T))` is within one of `q` (the relative error of the
/// product is below 2⁻⁵¹ and `q ≤ 256`), and the exact comparisons `(q₀ + 1)·T ≤ u` and
/// `q₀·T > u` (products of integers below 2⁴⁹: exact in `f64`) step it to `q`. The output is
/// `min(q - 128, 127)`, as in the reference.
///
/// # Safety
/// The CPU must support AVX2. Requires a successful [`super::check_i8`].
#[target_feature(enable = "avx2")]
pub unsafe fn eval_i8(p: &super::SoftmaxParams<'_>, input: &[i8], output: &mut [i8]) {
    let depth = p.shape.depth as usize;
    if depth == 0 {
        return;
    }
    // `check_i8` guarantees `TABLE_LEN` (256) entries: every index `max - x` is in `0..=255`.
    assert!(p.table.len() == super::TABLE_LEN);
    let table = p.table.as_ptr();
    let full = depth - depth % 8;
    for (x, y) in input
        .chunks_exact(depth)
        .zip(output.chunks_exact_mut(depth))
    {
        // Row maximum.
        let mut m32 = _mm256_set1_epi8(i8::MIN);
        let mut xc = x.chunks_exact(32);
        for c in &mut xc {
            // SAFETY: `c` has exactly 32 bytes.
            m32 = _mm256_max_epi8(m32, unsafe {
                _mm256_loadu_si256(c.as_ptr() as *const __m256i)
            });
        }
        let mut lanes = [0i8; 32];
        // SAFETY: `lanes` holds 32 bytes.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, m32) };
        let max = lanes
            .iter()
            .chain(xc.remainder())
            .copied()
            .max()
            .unwrap_or(i8::MIN) as i32;
        let maxv = _mm256_set1_epi32(max);
        // Eight table entries `t[max - x[j..j + 8]]`.
        let entries = |j: usize| -> __m256i {
            // SAFETY: `j + 8 <= full <= x.len()`: one 8-byte load; every index `max - x` lies in
            // `0..=255` (max is the row's maximum), inside the 256-entry table.
            unsafe {
                let b = _mm_loadl_epi64(x.as_ptr().add(j) as *const __m128i);
                let idx = _mm256_sub_epi32(maxv, _mm256_cvtepi8_epi32(b));
                _mm256_i32gather_epi32::<4>(table, idx)
            }
        };
        let (mut s0, mut s1) = (_mm256_setzero_pd(), _mm256_setzero_pd());
        let mut j = 0;
        while j < full {
            let e = entries(j);
            s0 = _mm256_add_pd(s0, _mm256_cvtepi32_pd(_mm256_castsi256_si128(e)));
            s1 = _mm256_add_pd(s1, _mm256_cvtepi32_pd(_mm256_extracti128_si256::<1>(e)));
            j += 8;
        }
        let mut parts = [0f64; 4];
        // SAFETY: `parts` holds four f64.
        unsafe { _mm256_storeu_pd(parts.as_mut_ptr(), _mm256_add_pd(s0, s1)) };
        let mut total = parts.iter().sum::<f64>() as u64;
        for &v in &x[full..] {
            total += p.table[(max - v as i32) as usize] as u64;
        }
        // T ≥ t[0] = 2^24 > 0 (the maximum's own entry).
        let tf = total as f64;
        let t4 = _mm256_set1_pd(tf);
        let half = _mm256_set1_pd((total / 2) as f64);
        let inv = _mm256_set1_pd(1.0 / tf);
        let k256 = _mm256_set1_pd(256.0);
        let one = _mm256_set1_pd(1.0);
        // q for four entries (as f64 lanes), from the derivation above.
        let quot = |e: __m128i| -> __m128i {
            let u = _mm256_add_pd(_mm256_mul_pd(_mm256_cvtepi32_pd(e), k256), half);
            let q0 = _mm256_round_pd::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(_mm256_mul_pd(
                u, inv,
            ));
            let up = _mm256_cmp_pd::<_CMP_LE_OQ>(_mm256_mul_pd(_mm256_add_pd(q0, one), t4), u);
            let down = _mm256_cmp_pd::<_CMP_GT_OQ>(_mm256_mul_pd(q0, t4), u);
            let q = _mm256_sub_pd(
                _mm256_add_pd(q0, _mm256_and_pd(up, one)),
                _mm256_and_pd(down, one),
            );
            _mm256_cvttpd_epi32(q)
        };
        let bias = _mm256_set1_epi32(super::OUTPUT_ZERO_POINT);
        let mut j = 0;
        while j < full {
            let e = entries(j);
            let q = _mm256_set_m128i(
                quot(_mm256_extracti128_si256::<1>(e)),
                quot(_mm256_castsi256_si128(e)),
            );
            // q - 128 in [-128, 128]: the signed packs saturate 128 to 127, the reference's min.
            let v = _mm256_add_epi32(q, bias);
            let w = _mm256_packs_epi32(v, v);
            let w = _mm256_permute4x64_epi64::<0b1000>(w);
            let b = _mm_packs_epi16(_mm256_castsi256_si128(w), _mm256_castsi256_si128(w));
            // SAFETY: `j + 8 <= full <= y.len()`: one 8-byte store.
            unsafe { _mm_storel_epi64(y.as_mut_ptr().add(j) as *mut __m128i, b) };
            j += 8;
        }
        for (yi, &xi) in y[full..].iter_mut().zip(&x[full..]) {
            let t = p.table[(max - xi as i32) as usize] as u64;
            let q = (t * 256 + total / 2) / total;
            *yi = (q as i32 + super::OUTPUT_ZERO_POINT).min(i8::MAX as i32) as i8;
        }
    }
}

/// Safe entry for kernel tables built after `is_x86_feature_detected!("avx2")`.
#[cfg(any(test, feature = "std"))]
pub(crate) fn eval_i8_detected(p: &super::SoftmaxParams<'_>, input: &[i8], output: &mut [i8]) {
    debug_assert!(std::is_x86_feature_detected!("avx2"));
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2`, which checks
    // `is_x86_feature_detected!("avx2")` first.
    unsafe { eval_i8(p, input, output) }
}
