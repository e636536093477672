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
