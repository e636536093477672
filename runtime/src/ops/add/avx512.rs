//! AVX-512 int8 Add for inputs without broadcasting (a residual connection: both inputs and the
//! output have the same shape), bit-exact to [`super::reference::eval_i8`]; every other case
//! goes to [`super::avx2::eval_i8`].
//!
//! The arithmetic is [`super::avx2`]'s, on sixteen `i32` lanes: each input scaled as
//! `requantize((x - zero_point) << LEFT_SHIFT, multiplier, shift)` (`shift ≤ 0`: 64-bit products
//! of the even and odd lanes, `+ 2^(t-1)`, bits 31..62 recombined, then an arithmetic shift by
//! `t - 31`), the sum requantized the same way when the output shift is `≤ 0` (the only case
//! taken here; see that module for the bounds that make it exact), plus the zero point, clamped,
//! and narrowed to bytes (`vpmovsdb`, exact after the clamp). The last `len % 16` values use
//! the reference's per-element function.

use core::arch::x86_64::*;

use super::{AddParams, LEFT_SHIFT};

/// `requantize` by `(multiplier, shift)` with `shift <= 0` for `|a| < 2^29`, sixteen lanes.
#[derive(Clone, Copy)]
struct Q31Down {
    multiplier: __m512i,
    round: __m512i,
    rest: __m128i,
}

impl Q31Down {
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn new((multiplier, shift): (i32, i32)) -> Q31Down {
        let t = (31 - shift).clamp(31, 62);
        Q31Down {
            multiplier: _mm512_set1_epi32(multiplier),
            round: _mm512_set1_epi64(1i64 << (t - 1)),
            rest: _mm_cvtsi32_si128(t - 31),
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn apply(&self, a: __m512i) -> __m512i {
        let even = _mm512_add_epi64(_mm512_mul_epi32(a, self.multiplier), self.round);
        let odd = _mm512_add_epi64(
            _mm512_mul_epi32(_mm512_srli_epi64::<32>(a), self.multiplier),
            self.round,
        );
        let w = _mm512_mask_blend_epi32(
            0xAAAA,
            _mm512_srli_epi64::<31>(even),
            _mm512_slli_epi64::<1>(odd),
        );
        _mm512_sra_epi32(w, self.rest)
    }
}

/// The kernel's constants.
struct Consts {
    zp1: __m512i,
    zp2: __m512i,
    q1: Q31Down,
    q2: Q31Down,
    out: Q31Down,
    out_zp: __m512i,
    min: __m512i,
    max: __m512i,
}

impl Consts {
    /// Sixteen outputs from sixteen raw values of each input (sign-extended to `i32`).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn sixteen(&self, x1: __m512i, x2: __m512i) -> __m512i {
        let a = self.q1.apply(_mm512_slli_epi32::<{ LEFT_SHIFT as u32 }>(
            _mm512_sub_epi32(x1, self.zp1),
        ));
        let b = self.q2.apply(_mm512_slli_epi32::<{ LEFT_SHIFT as u32 }>(
            _mm512_sub_epi32(x2, self.zp2),
        ));
        let v = _mm512_add_epi32(self.out.apply(_mm512_add_epi32(a, b)), self.out_zp);
        _mm512_min_epi32(_mm512_max_epi32(v, self.min), self.max)
    }
}

/// AVX-512 int8 Add.
///
/// # Safety
/// The CPU must support AVX2 and AVX512F. Requires a successful [`super::check_i8`].
#[target_feature(enable = "avx2,avx512f")]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub unsafe fn eval_i8(p: &AddParams, input1: &[i8], input2: &[i8], output: &mut [i8]) {
    let n = output.len();
    let r = &p.requant;
    if input1.len() != n || input2.len() != n || r.output.1 > 0 {
        // Broadcasting (equal element counts mean equal shapes), or an output multiplier of 1
        // or more, which the reference allows and the AVX2 kernel handles.
        // SAFETY: AVX2 is available (this function's contract); params checked by the caller.
        return unsafe { super::avx2::eval_i8(p, input1, input2, output) };
    }
    let c = Consts {
        zp1: _mm512_set1_epi32(p.input1_zero_point),
        zp2: _mm512_set1_epi32(p.input2_zero_point),
        q1: Q31Down::new(r.input1),
        q2: Q31Down::new(r.input2),
        out: Q31Down::new(r.output),
        out_zp: _mm512_set1_epi32(p.output_zero_point),
        min: _mm512_set1_epi32(p.activation.min as i32),
        max: _mm512_set1_epi32(p.activation.max as i32),
    };
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: `i + 16 <= n` = every slice's length: 16-byte loads and store in bounds.
        unsafe {
            let x1 = _mm512_cvtepi8_epi32(_mm_loadu_si128(input1.as_ptr().add(i) as *const _));
            let x2 = _mm512_cvtepi8_epi32(_mm_loadu_si128(input2.as_ptr().add(i) as *const _));
            let y = _mm512_cvtsepi32_epi8(c.sixteen(x1, x2));
            _mm_storeu_si128(output.as_mut_ptr().add(i) as *mut _, y);
        }
        i += 16;
    }
    for k in i..n {
        output[k] = super::reference::add_one_i8(p, input1[k], input2[k]);
    }
}

/// AVX-512 f32 Add, bit-exact to [`super::reference::eval_f32`] (see
/// [`map_rows_f32_avx512`](super::rows::map_rows_f32_avx512)).
///
/// # Safety
/// The CPU must support AVX512F. Requires a successful [`super::check_f32`].
#[target_feature(enable = "avx512f")]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub fn eval_f32(p: &super::AddF32Params, input1: &[f32], input2: &[f32], output: &mut [f32]) {
    super::rows::map_rows_f32_avx512(
        &p.shape,
        input1,
        input2,
        output,
        super::rows::BinaryF32::Add,
        p.activation,
    );
}

/// Whether this CPU runs [`eval_i8`] (AVX2 and AVX512F).
#[cfg(any(test, feature = "std"))]
pub(crate) fn detected() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("avx512f")
}

/// Safe entry for kernel tables built after [`detected`].
#[cfg(any(test, feature = "std"))]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub(crate) fn eval_i8_detected(p: &AddParams, input1: &[i8], input2: &[i8], output: &mut [i8]) {
    debug_assert!(detected());
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2` after `detected()`.
    unsafe { eval_i8(p, input1, input2, output) }
}

/// Safe entry for kernel tables built after [`detected`].
#[cfg(any(test, feature = "std"))]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub(crate) fn eval_f32_detected(
    p: &super::AddF32Params,
    input1: &[f32],
    input2: &[f32],
    output: &mut [f32],
) {
    debug_assert!(detected());
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2` after `detected()`.
    unsafe { eval_f32(p, input1, input2, output) }
}
