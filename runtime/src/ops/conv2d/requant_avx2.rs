//! Per-channel requantization of eight `i32` accumulators at a time, with the constants of each
//! group of eight output channels computed once per call ([`Rq8`]), and packing of the results
//! to int8 ([`Finish`]). Shared by the AVX2 Conv2D and DepthwiseConv2D kernels.
//!
//! Bit-exact to [`crate::quant::requantize_to_i8`]:
//!
//! - **Fast path** (every channel of the group has `shift <= 0`, the usual case for a scale
//!   below 1): the total shift `t = clamp(31 - shift, 1, 62)` is at least 31. With
//!   `0 <= multiplier < 2³¹` (guaranteed by `check_*`) and any `i32` accumulator,
//!   `wide = acc·multiplier + 2^(t-1)` lies in `(-2⁶², 2⁶² + 2⁶¹)`, so `wide + 2⁶²` is a
//!   non-negative integer below 2⁶⁴: a *logical* 64-bit shift of it by `t` gives
//!   `floor(wide / 2^t) + 2^(62-t)` exactly (2⁶² is a multiple of `2^t`). `floor(wide / 2^t)` is
//!   the scalar's result before its `i32` clamp, and for `t >= 31` it lies in `(-2³¹, 2³¹)`, so
//!   that clamp is a no-op and the low 32 bits minus `2^(62-t)` (mod 2³²) are the value. Per
//!   eight lanes: two `vpmuldq`, two 64-bit adds, two `vpsrlvq`, a shuffle, a blend and a
//!   subtract.
//! - **General path** (a positive shift somewhere in the group): [`x86::requantize8_avx2`], which
//!   also adds the zero point and clamps.
//!
//! Packing ([`Finish::pack16`], [`Finish::pack8`]): `vpackssdw` saturates to `i16`, the zero
//! point is added with `i16` saturation, `vpacksswb` saturates to `i8`, then `max(min).min(max)`.
//! The scalar adds the zero point with `i32` saturation and clamps to `[min, max]`, a sub-range of
//! `[-128, 127]`; since `|zero_point| <= 128`, a value beyond the `i16` range stays beyond
//! `[-128, 127]` after the zero point either way, so both clamp to the same bound, and values
//! inside it are added exactly. On the general path the zero point was already added
//! (`zp16` is 0 there) and the clamps are idempotent.

use core::arch::x86_64::*;

use crate::arch::x86;

/// Constants of one group of eight output channels (lanes beyond the layer's channels hold bias 0,
/// multiplier 0, shift 0: they compute 0 and are never stored).
#[derive(Clone, Copy)]
pub(crate) struct Rq8 {
    /// Bias per lane.
    pub bias: __m256i,
    /// Multiplier per lane (even lanes used by `vpmuldq`).
    mult: __m256i,
    /// Shift per lane (general path).
    shift: __m256i,
    /// Odd lanes' multipliers in the low halves of the 64-bit lanes.
    mult_odd: __m256i,
    /// `2^(t-1) + 2^62` for even and odd lanes (fast path).
    round_even: __m256i,
    round_odd: __m256i,
    /// `t` for even and odd lanes, as 64-bit shift counts.
    t_even: __m256i,
    t_odd: __m256i,
    /// `2^(62-t) mod 2³²` per lane.
    corr: __m256i,
    /// Whether every lane has `t >= 31` (shift <= 0).
    fast: bool,
}

impl Rq8 {
    /// The constants of channels `c0..c0 + min(8, mult.len() - c0)`.
    ///
    /// # Safety
    /// The CPU must support AVX2. `c0 < mult.len() == shift.len()` and `bias`, when present,
    /// has `mult.len()` values.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn new(bias: Option<&[i32]>, mult: &[i32], shift: &[i32], c0: usize) -> Rq8 {
        let valid = (mult.len() - c0).min(8);
        let (mut b, mut m, mut s) = ([0i32; 8], [0i32; 8], [0i32; 8]);
        let (mut round, mut t, mut corr) = ([0i64; 8], [0i64; 8], [0i32; 8]);
        let mut fast = true;
        for j in 0..8 {
            if j < valid {
                b[j] = bias.map_or(0, |v| v[c0 + j]);
                m[j] = mult[c0 + j];
                s[j] = shift[c0 + j];
            }
            let tj = (31 - s[j] as i64).clamp(1, 62);
            fast &= tj >= 31;
            t[j] = tj;
            round[j] = (1i64 << (tj - 1)).wrapping_add(1i64 << 62);
            corr[j] = (1u64 << (62 - tj)) as u32 as i32;
        }
        let v32 = |a: &[i32; 8]| {
            // SAFETY: `a` is 32 readable bytes.
            unsafe { _mm256_loadu_si256(a.as_ptr() as *const __m256i) }
        };
        let mult_v = v32(&m);
        Rq8 {
            bias: v32(&b),
            mult: mult_v,
            shift: v32(&s),
            mult_odd: _mm256_srli_epi64::<32>(mult_v),
            round_even: _mm256_setr_epi64x(round[0], round[2], round[4], round[6]),
            round_odd: _mm256_setr_epi64x(round[1], round[3], round[5], round[7]),
            t_even: _mm256_setr_epi64x(t[0], t[2], t[4], t[6]),
            t_odd: _mm256_setr_epi64x(t[1], t[3], t[5], t[7]),
            corr: v32(&corr),
            fast,
        }
    }

    /// A placeholder (never used for output) to initialise tables.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn zero() -> Rq8 {
        let z = _mm256_setzero_si256();
        Rq8 {
            bias: z,
            mult: z,
            shift: z,
            mult_odd: z,
            round_even: z,
            round_odd: z,
            t_even: z,
            t_odd: z,
            corr: z,
            fast: false,
        }
    }
}

/// Output zero point and clamp, and the packing of requantized lanes to int8.
#[derive(Clone, Copy)]
pub(crate) struct Finish {
    zp: i32,
    min: i8,
    max: i8,
    /// The zero point in the `i16` lanes that follow a fast-path group, 0 after a general one,
    /// for the layouts of `vpackssdw(a, b)`: indexed by `[a.fast][b.fast]`.
    zp16: [[__m256i; 2]; 2],
    min8: __m128i,
    max8: __m128i,
}

impl Finish {
    /// # Safety
    /// The CPU must support AVX2.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn new(zero_point: i32, min: i8, max: i8) -> Finish {
        let z = _mm256_set1_epi16(zero_point as i16);
        let o = _mm256_setzero_si256();
        // `vpackssdw(a, b)` puts `a`'s lanes in 32-bit lanes 0, 1, 4, 5 and `b`'s in 2, 3, 6, 7.
        let ab = |a: __m256i, b: __m256i| _mm256_blend_epi32::<0b1100_1100>(a, b);
        Finish {
            zp: zero_point,
            min,
            max,
            zp16: [[o, ab(o, z)], [ab(z, o), z]],
            min8: _mm_set1_epi8(min),
            max8: _mm_set1_epi8(max),
        }
    }

    /// Requantizes eight sums (bias included): the fast path's `i32` before the zero point, or the
    /// general path's final value (zero point and clamp applied). See the module docs.
    #[inline(always)]
    unsafe fn requant(&self, acc: __m256i, r: &Rq8) -> __m256i {
        // SAFETY (whole body): the caller guarantees AVX2.
        unsafe {
            if r.fast {
                let e = _mm256_srlv_epi64(
                    _mm256_add_epi64(_mm256_mul_epi32(acc, r.mult), r.round_even),
                    r.t_even,
                );
                let o = _mm256_srlv_epi64(
                    _mm256_add_epi64(
                        // Odd lanes moved to the even positions by a shuffle (LLVM rewrites a
                        // 64-bit shift here into a longer unsigned multiply sequence).
                        _mm256_mul_epi32(_mm256_shuffle_epi32::<0xF5>(acc), r.mult_odd),
                        r.round_odd,
                    ),
                    r.t_odd,
                );
                // The odd results' low halves moved up to the odd 32-bit lanes (a shuffle rather than
                // a 64-bit shift, which LLVM would combine with the variable shift above).
                let v = _mm256_blend_epi32::<0b1010_1010>(e, _mm256_shuffle_epi32::<0xA0>(o));
                _mm256_sub_epi32(v, r.corr)
            } else {
                x86::requantize8_avx2(acc, r.mult, r.shift, self.zp, self.min, self.max)
            }
        }
    }

    /// Sixteen int8 outputs from two vectors of sums (bias included): channels `0..8` with `ra`,
    /// `8..16` with `rb`.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[inline(always)]
    pub(crate) unsafe fn pack16(&self, a: __m256i, ra: &Rq8, b: __m256i, rb: &Rq8) -> __m128i {
        // SAFETY (whole body): the caller guarantees AVX2.
        unsafe {
            // [a0-3 b0-3 | a4-7 b4-7] as i16, saturated.
            let p = _mm256_packs_epi32(self.requant(a, ra), self.requant(b, rb));
            let p = _mm256_adds_epi16(p, self.zp16[ra.fast as usize][rb.fast as usize]);
            // [a0-3 a4-7 | b0-3 b4-7]
            let p = _mm256_permute4x64_epi64::<0b11_01_10_00>(p);
            let q = _mm_packs_epi16(_mm256_castsi256_si128(p), _mm256_extracti128_si256::<1>(p));
            _mm_min_epi8(_mm_max_epi8(q, self.min8), self.max8)
        }
    }

    /// Eight int8 outputs (the low 8 bytes) from one vector of sums (bias included).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[inline(always)]
    pub(crate) unsafe fn pack8(&self, a: __m256i, ra: &Rq8) -> __m128i {
        // SAFETY (whole body): the caller guarantees AVX2.
        unsafe {
            let v = self.requant(a, ra);
            let p = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
            let z = self.zp16[ra.fast as usize][ra.fast as usize];
            let p = _mm_adds_epi16(p, _mm256_castsi256_si128(z));
            let q = _mm_packs_epi16(p, p);
            _mm_min_epi8(_mm_max_epi8(q, self.min8), self.max8)
        }
    }
}

/// Stores the low `out.len()` (at most 16) bytes of `v` to `out`.
///
/// # Safety
/// The CPU must support AVX2.
#[inline(always)]
pub(crate) unsafe fn store_bytes(v: __m128i, out: &mut [i8]) {
    if out.len() == 16 {
        // SAFETY: `out` holds 16 writable bytes.
        unsafe { _mm_storeu_si128(out.as_mut_ptr() as *mut __m128i, v) };
    } else if out.len() == 8 {
        // SAFETY: `out` holds 8 writable bytes.
        unsafe { _mm_storel_epi64(out.as_mut_ptr() as *mut __m128i, v) };
    } else {
        let mut t = [0i8; 16];
        // SAFETY: `t` holds 16 writable bytes.
        unsafe { _mm_storeu_si128(t.as_mut_ptr() as *mut __m128i, v) };
        let n = out.len();
        out.copy_from_slice(&t[..n]);
    }
}
