//! AVX2 f32 → int8 Quantize and int8 → f32 Dequantize, bit-exact to
//! [`super::reference::eval_quantize`] and [`super::reference::eval_dequantize`].
//!
//! Dequantize: eight values per vector, sign-extended to int32, minus the zero point, converted
//! to f32 (exact: `|q - zp| ≤ 255`) and multiplied by the scale (one IEEE multiply, as the
//! scalar `(q - zp) as f32 * scale`).
//!
//! Quantize:
//! Eight values per vector: `x / scale` with `vdivps` (IEEE division, the same correctly rounded
//! quotient as the scalar `/`), rounded to nearest-even with `vroundps` (the reference's
//! `round_ties_even`), NaN replaced by 0 (the reference maps NaN to 0 before adding the zero
//! point), clamped to `[-512, 512]` (beyond it the result saturates to -128 or 127 either way,
//! since the zero point lies in `[-128, 127]`), converted exactly to int32, the zero point added,
//! and packed with signed saturation to int8 (the reference's final clamp). The last `len % 32`
//! values use the reference.

use core::arch::x86_64::*;

use super::QuantizeParams;

/// AVX2 Quantize.
///
/// # Safety
/// The CPU must support AVX2. Requires a successful [`super::check`].
#[target_feature(enable = "avx2")]
pub unsafe fn eval_quantize(p: &QuantizeParams, input: &[f32], output: &mut [i8]) {
    let n = input.len().min(output.len());
    let scale = _mm256_set1_ps(p.scale);
    let lo = _mm256_set1_ps(-512.0);
    let hi = _mm256_set1_ps(512.0);
    let zp = _mm256_set1_epi32(p.zero_point);
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let one = |v: __m256| -> __m256i {
        let q = _mm256_div_ps(v, scale);
        let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(q);
        let r = _mm256_and_ps(r, _mm256_cmp_ps::<_CMP_ORD_Q>(q, q));
        let r = _mm256_min_ps(_mm256_max_ps(r, lo), hi);
        _mm256_add_epi32(_mm256_cvtps_epi32(r), zp)
    };
    let mut i = 0;
    while i + 32 <= n {
        // SAFETY: `i + 32 <= n <= input.len()`: four unaligned 32-byte loads in bounds.
        let (a, b, c, d) = unsafe {
            let x = input.as_ptr().add(i);
            (
                _mm256_loadu_ps(x),
                _mm256_loadu_ps(x.add(8)),
                _mm256_loadu_ps(x.add(16)),
                _mm256_loadu_ps(x.add(24)),
            )
        };
        // [a0-3 b0-3 | a4-7 b4-7] and [c0-3 d0-3 | c4-7 d4-7] (int16, saturating), then bytes
        // [a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7] (int8, saturating), put back in order.
        let ab = _mm256_packs_epi32(one(a), one(b));
        let cd = _mm256_packs_epi32(one(c), one(d));
        let bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), order);
        // SAFETY: `i + 32 <= n <= output.len()`: one unaligned 32-byte store in bounds.
        unsafe { _mm256_storeu_si256(output.as_mut_ptr().add(i) as *mut __m256i, bytes) };
        i += 32;
    }
    super::reference::eval_quantize(p, &input[i..n], &mut output[i..n]);
}

/// AVX2 Dequantize.
///
/// # Safety
/// The CPU must support AVX2. Requires a successful [`super::check`].
#[target_feature(enable = "avx2")]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub unsafe fn eval_dequantize(p: &QuantizeParams, input: &[i8], output: &mut [f32]) {
    let n = input.len().min(output.len());
    let scale = _mm256_set1_ps(p.scale);
    let zp = _mm256_set1_epi32(p.zero_point);
    let full = n - n % 8;
    for (x, y) in input[..full]
        .chunks_exact(8)
        .zip(output[..full].chunks_exact_mut(8))
    {
        // SAFETY: `x` and `y` have exactly 8 elements: an unaligned 8-byte load and a 32-byte
        // store.
        unsafe {
            let q = _mm256_cvtepi8_epi32(_mm_loadl_epi64(x.as_ptr() as *const __m128i));
            let v = _mm256_cvtepi32_ps(_mm256_sub_epi32(q, zp));
            _mm256_storeu_ps(y.as_mut_ptr(), _mm256_mul_ps(v, scale));
        }
    }
    super::reference::eval_dequantize(p, &input[full..n], &mut output[full..n]);
}

/// Safe entry for kernel tables built after `is_x86_feature_detected!("avx2")`.
#[cfg(any(test, feature = "std"))]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub(crate) fn eval_dequantize_detected(p: &QuantizeParams, input: &[i8], output: &mut [f32]) {
    debug_assert!(std::is_x86_feature_detected!("avx2"));
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2`, which checks
    // `is_x86_feature_detected!("avx2")` first.
    unsafe { eval_dequantize(p, input, output) }
}

/// Safe entry for kernel tables built after `is_x86_feature_detected!("avx2")`.
#[cfg(any(test, feature = "std"))]
pub(crate) fn eval_quantize_detected(p: &QuantizeParams, input: &[f32], output: &mut [i8]) {
    debug_assert!(std::is_x86_feature_detected!("avx2"));
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2`, which checks
    // `is_x86_feature_detected!("avx2")` first.
    unsafe { eval_quantize(p, input, output) }
}
