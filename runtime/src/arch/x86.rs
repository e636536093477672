//! x86-64 AVX2 implementations of the offset dot product.
//!
//! 16 int8 values per operand are sign-extended to 16-bit lanes (`vpmovsxbw`), the offset is added
//! (results in `[-383, 382]`), and `vpmaddwd` multiplies lane pairs and adds adjacent products into
//! 32-bit lanes (at most 2·383² < 2³¹, exact). Lanes accumulate with wrapping adds, so the sum is
//! the reference's sum modulo 2³², whatever the order.

use core::arch::x86_64::*;

/// AVX2 offset dot product.
///
/// # Safety
/// The CPU must support AVX2 (checked with `is_x86_feature_detected!("avx2")`, or the crate
/// compiled with `target-feature=+avx2`).
#[target_feature(enable = "avx2")]
pub unsafe fn dot_offset_i8_avx2(a: &[i8], a_offset: i32, b: &[i8], b_offset: i32) -> i32 {
    if a_offset.abs() > super::MAX_DOT_OFFSET || b_offset.abs() > super::MAX_DOT_OFFSET {
        return super::dot_offset_i8(a, a_offset, b, b_offset);
    }
    let n = a.len().min(b.len());
    let oa = _mm256_set1_epi16(a_offset as i16);
    let ob = _mm256_set1_epi16(b_offset as i16);
    let mut acc0 = _mm256_setzero_si256();
    let mut acc1 = _mm256_setzero_si256();
    let mut i = 0;
    while i + 32 <= n {
        debug_assert!(i + 32 <= a.len() && i + 32 <= b.len());
        // SAFETY: `i + 32 <= n <= len` of both slices (loop condition), so the four unaligned
        // 16-byte loads stay inside `a` and `b`.
        let (va0, va1, vb0, vb1) = unsafe {
            (
                _mm_loadu_si128(a.as_ptr().add(i) as *const __m128i),
                _mm_loadu_si128(a.as_ptr().add(i + 16) as *const __m128i),
                _mm_loadu_si128(b.as_ptr().add(i) as *const __m128i),
                _mm_loadu_si128(b.as_ptr().add(i + 16) as *const __m128i),
            )
        };
        let xa0 = _mm256_add_epi16(_mm256_cvtepi8_epi16(va0), oa);
        let xa1 = _mm256_add_epi16(_mm256_cvtepi8_epi16(va1), oa);
        let xb0 = _mm256_add_epi16(_mm256_cvtepi8_epi16(vb0), ob);
        let xb1 = _mm256_add_epi16(_mm256_cvtepi8_epi16(vb1), ob);
        acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(xa0, xb0));
        acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(xa1, xb1));
        i += 32;
    }
    if i + 16 <= n {
        debug_assert!(i + 16 <= a.len() && i + 16 <= b.len());
        // SAFETY: `i + 16 <= n <= len` of both slices.
        let (va, vb) = unsafe {
            (
                _mm_loadu_si128(a.as_ptr().add(i) as *const __m128i),
                _mm_loadu_si128(b.as_ptr().add(i) as *const __m128i),
            )
        };
        let xa = _mm256_add_epi16(_mm256_cvtepi8_epi16(va), oa);
        let xb = _mm256_add_epi16(_mm256_cvtepi8_epi16(vb), ob);
        acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(xa, xb));
        i += 16;
    }
    let acc = _mm256_add_epi32(acc0, acc1);
    let sum = hsum_epi32(acc);
    sum.wrapping_add(super::dot_offset_i8(&a[i..n], a_offset, &b[i..n], b_offset))
}

/// Four offset dot products sharing one left operand: `[Σ (x + x_offset)·w_r]` for `r < 4`, the
/// right operands with offset 0 (symmetric weights). Each result is bit-exact to
/// [`super::dot_offset_i8`]`(x, x_offset, w_r, 0)`; falls back to it when `|x_offset|` exceeds
/// [`super::MAX_DOT_OFFSET`].
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn dot4_offset_i8_avx2(x: &[i8], x_offset: i32, w: [&[i8]; 4]) -> [i32; 4] {
    let n = w.iter().fold(x.len(), |n, r| n.min(r.len()));
    if x_offset.abs() > super::MAX_DOT_OFFSET {
        return w.map(|r| super::dot_offset_i8(x, x_offset, r, 0));
    }
    let ox = _mm256_set1_epi16(x_offset as i16);
    let mut acc = [_mm256_setzero_si256(); 4];
    let mut i = 0;
    while i + 16 <= n {
        debug_assert!(i + 16 <= x.len() && w.iter().all(|r| i + 16 <= r.len()));
        // SAFETY: `i + 16 <= n`, and `n` is at most the length of `x` and of every `w[r]`.
        let vx = unsafe { _mm_loadu_si128(x.as_ptr().add(i) as *const __m128i) };
        let xx = _mm256_add_epi16(_mm256_cvtepi8_epi16(vx), ox);
        for (a, r) in acc.iter_mut().zip(w) {
            // SAFETY: as above, `i + 16 <= n <= r.len()`.
            let vw = unsafe { _mm_loadu_si128(r.as_ptr().add(i) as *const __m128i) };
            *a = _mm256_add_epi32(*a, _mm256_madd_epi16(xx, _mm256_cvtepi8_epi16(vw)));
        }
        i += 16;
    }
    let mut out = [0i32; 4];
    for ((o, a), r) in out.iter_mut().zip(acc).zip(w) {
        *o = hsum_epi32(a).wrapping_add(super::dot_offset_i8(&x[i..n], x_offset, &r[i..n], 0));
    }
    out
}

/// Sum of the eight 32-bit lanes, modulo 2³².
#[inline]
#[target_feature(enable = "avx2")]
fn hsum_epi32(v: __m256i) -> i32 {
    let lo = _mm256_castsi256_si128(v);
    let hi = _mm256_extracti128_si256::<1>(v);
    let s = _mm_add_epi32(lo, hi);
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// Safe entry stored in `DotKernel::avx2()`, which exists only after run-time detection.
#[cfg(any(test, feature = "std"))]
pub(super) fn dot_offset_i8_avx2_detected(a: &[i8], ao: i32, b: &[i8], bo: i32) -> i32 {
    debug_assert!(std::is_x86_feature_detected!("avx2"));
    // SAFETY: this function is reachable only through a `DotKernel` built by
    // `DotKernel::avx2()`, which returns it only when `is_x86_feature_detected!("avx2")` held.
    unsafe { dot_offset_i8_avx2(a, ao, b, bo) }
}

/// Safe entry for builds with AVX2 enabled at compile time.
#[cfg(target_feature = "avx2")]
pub(super) fn dot_offset_i8_avx2_static(a: &[i8], ao: i32, b: &[i8], bo: i32) -> i32 {
    // SAFETY: the crate is compiled with `target_feature = "avx2"`, so every CPU it runs on has it.
    unsafe { dot_offset_i8_avx2(a, ao, b, bo) }
}

/// Eight lanes of [`crate::quant::requantize_to_i8`] at once: `acc`, `multiplier` and `shift`
/// are per-lane `i32`s (any values, as for the scalar function), `zero_point`,
/// `min` and `max` shared. Returns the eight int8 results sign-extended to `i32` lanes, bit-exact
/// to the scalar function.
///
/// The scalar steps, in 64-bit lanes (even and odd `i32` lanes separately): the total shift
/// `clamp(31 - shift, 1, 62)`; `acc · multiplier` (`vpmuldq`, exact) plus `2^(total - 1)` (below
/// 2⁶³ in magnitude, no overflow); an arithmetic right shift, done as
/// `((x ^ s) >>> total) ^ s` with `s` the sign mask (AVX2 has no 64-bit arithmetic shift); a
/// clamp to `[-2³⁰, 2³⁰]` (tighter than the scalar's `i32` clamp but equivalent after its
/// saturating zero-point add and the final clamp to `[min, max] ⊂ [-128, 127]`, since
/// `|zero_point| ≤ 128` is far below 2³⁰); then the zero point and `max(min).min(max)`.
///
/// # Safety
/// The CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub unsafe fn requantize8_avx2(
    acc: __m256i,
    multiplier: __m256i,
    shift: __m256i,
    zero_point: i32,
    min: i8,
    max: i8,
) -> __m256i {
    let total = _mm256_min_epi32(
        _mm256_max_epi32(
            _mm256_sub_epi32(_mm256_set1_epi32(31), shift),
            _mm256_set1_epi32(1),
        ),
        _mm256_set1_epi32(62),
    );
    let low = _mm256_set1_epi64x(0xFFFF_FFFF);
    let one = _mm256_set1_epi64x(1);
    let hi_lim = _mm256_set1_epi64x(1 << 30);
    let lo_lim = _mm256_set1_epi64x(-(1 << 30));
    // One 64-bit half: lanes (acc, multiplier, total) in the low 32 bits of each 64-bit lane.
    let half = |a: __m256i, m: __m256i, t: __m256i| -> __m256i {
        let t = _mm256_and_si256(t, low);
        let round = _mm256_sllv_epi64(one, _mm256_sub_epi64(t, one));
        let wide = _mm256_add_epi64(_mm256_mul_epi32(a, m), round);
        let sign = _mm256_cmpgt_epi64(_mm256_setzero_si256(), wide);
        let shifted = _mm256_xor_si256(_mm256_srlv_epi64(_mm256_xor_si256(wide, sign), t), sign);
        let c = _mm256_blendv_epi8(shifted, hi_lim, _mm256_cmpgt_epi64(shifted, hi_lim));
        _mm256_blendv_epi8(c, lo_lim, _mm256_cmpgt_epi64(lo_lim, c))
    };
    let even = half(acc, multiplier, total);
    let odd = half(
        _mm256_srli_epi64::<32>(acc),
        _mm256_srli_epi64::<32>(multiplier),
        _mm256_srli_epi64::<32>(total),
    );
    // Each 64-bit lane holds a value in [-2^30, 2^30]: its low 32 bits are the i32.
    let v = _mm256_blend_epi32::<0b1010_1010>(even, _mm256_slli_epi64::<32>(odd));
    let v = _mm256_add_epi32(v, _mm256_set1_epi32(zero_point));
    _mm256_min_epi32(
        _mm256_max_epi32(v, _mm256_set1_epi32(min as i32)),
        _mm256_set1_epi32(max as i32),
    )
}

/// Stores the low bytes of eight `i32` lanes already in `[-128, 127]` to `out[..8]`.
///
/// # Safety
/// The CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub unsafe fn store8_i8(v: __m256i, out: &mut [i8]) {
    let out = &mut out[..8];
    let w = _mm256_packs_epi32(v, v); // [v0-3 v0-3 | v4-7 v4-7] as i16
    let b = _mm256_packs_epi16(w, w); // [v0-3 x3 | v4-7 x3] as i8
    let lo = _mm_cvtsi128_si32(_mm256_castsi256_si128(b));
    let hi = _mm_cvtsi128_si32(_mm256_extracti128_si256::<1>(b));
    out[..4].copy_from_slice(&lo.to_le_bytes().map(|x| x as i8));
    out[4..].copy_from_slice(&hi.to_le_bytes().map(|x| x as i8));
}
