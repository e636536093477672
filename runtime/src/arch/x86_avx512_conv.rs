//! AVX-512 helpers of the 512-bit int8 convolution kernels: detection, per-channel
//! requantization of sixteen `i32` accumulators at a time ([`Rq16`]) and packing of the results
//! to int8 ([`Finish16`]).
//!
//! The requantization is [`crate::ops::conv2d::requant_avx2`]'s fast path on sixteen lanes,
//! bit-exact to [`crate::quant::requantize_to_i8`] when every channel of the group has
//! `shift <= 0` (total shift `t = 31 - shift >= 31`; see that module for the proof): two
//! `vpmuldq`, two 64-bit adds, two `vpsrlvq`, a masked shuffle and a subtract. Groups with a
//! positive shift somewhere take the scalar's formula on 64-bit lanes ([`Rq16::requant`]).
//!
//! Packing: `vpmovsdw` (or `vpackssdw`) saturates to `i16`, the zero point is added with `i16`
//! saturation, `vpacksswb` saturates to `i8`, then `max(min).min(max)`. As in `requant_avx2`,
//! with `|zero_point| <= 128` a value beyond the `i16` range stays beyond `[-128, 127]` after the
//! zero point either way, so the result equals the scalar's `i32`-saturating add and clamp.

use core::arch::x86_64::*;

/// Whether the CPU (and OS) runs the 512-bit kernels: AVX512F, BW, VL and VNNI
/// ([`super::x86_vnni::avx512_detected`]). Detected once.
#[cfg(any(test, feature = "std"))]
pub(crate) fn detected() -> bool {
    super::x86_vnni::avx512_detected().is_some()
}

/// Constants of one group of sixteen output channels (lanes beyond the layer's channels hold
/// bias 0, multiplier 0, shift 0: they compute 0 and are never stored).
#[derive(Clone, Copy)]
pub(crate) struct Rq16 {
    /// Bias per lane (a kernel may add its own per-channel terms).
    pub bias: __m512i,
    mult: __m512i,
    mult_odd: __m512i,
    round_even: __m512i,
    round_odd: __m512i,
    t_even: __m512i,
    t_odd: __m512i,
    corr: __m512i,
    /// Whether every lane has `shift <= 0` (the shorter path applies).
    fast: bool,
}

impl Rq16 {
    /// The constants of channels `c0..c0 + min(16, mult.len() - c0)`.
    ///
    /// # Safety
    /// The CPU must support AVX512F. `c0 < mult.len() == shift.len()` and `bias`, when present,
    /// has `mult.len()` values.
    #[inline]
    #[target_feature(enable = "avx512f")]
    #[cfg_attr(target_os = "linux", link_section = ".text.sorted.edgeloop.conv")]
    pub(crate) unsafe fn new(bias: Option<&[i32]>, mult: &[i32], shift: &[i32], c0: usize) -> Rq16 {
        let n = mult.len();
        let mut chan = [None; 16];
        for (j, c) in chan.iter_mut().enumerate() {
            if c0 + j < n {
                *c = Some(c0 + j);
            }
        }
        // SAFETY: the caller guarantees AVX512F; lane `j` reads channel `c0 + j < n`.
        unsafe { Rq16::gather(bias, mult, shift, &chan) }
    }

    /// The constants of lane `j`'s channel `chan[j]` (`None`: an unused lane). (A table rather
    /// than a closure: a closure carries its caller's target features, cannot be inlined into
    /// this function, and was compiled as a separate function of its own.)
    ///
    /// # Safety
    /// The CPU must support AVX512F. Every `chan[j]` is below `mult.len() == shift.len()` and
    /// `bias`'s length, when present.
    #[inline]
    #[target_feature(enable = "avx512f")]
    #[cfg_attr(target_os = "linux", link_section = ".text.sorted.edgeloop.conv")]
    pub(crate) unsafe fn gather(
        bias: Option<&[i32]>,
        mult: &[i32],
        shift: &[i32],
        chan: &[Option<usize>; 16],
    ) -> Rq16 {
        let (mut b, mut m) = ([0i32; 16], [0i32; 16]);
        let (mut round, mut t, mut corr) = ([0i64; 16], [0i64; 16], [0i32; 16]);
        let mut fast = true;
        for j in 0..16 {
            let mut s = 0;
            if let Some(c) = chan[j] {
                b[j] = bias.map_or(0, |v| v[c]);
                m[j] = mult[c];
                s = shift[c];
            }
            let tj = (31 - s as i64).clamp(1, 62);
            fast &= tj >= 31;
            t[j] = tj;
        }
        // The fast path's offset 2⁶² and its correction, or the plain rounding term.
        for j in 0..16 {
            if fast {
                round[j] = (1i64 << (t[j] - 1)).wrapping_add(1i64 << 62);
                corr[j] = (1u64 << (62 - t[j])) as u32 as i32;
            } else {
                round[j] = 1i64 << (t[j] - 1);
            }
        }
        // Even and odd lanes of the 64-bit constants (no closures: they would not inherit the
        // target features, and the intrinsics would be calls).
        let (mut re, mut ro, mut te, mut to) = ([0i64; 8], [0i64; 8], [0i64; 8], [0i64; 8]);
        for k in 0..8 {
            (re[k], ro[k]) = (round[2 * k], round[2 * k + 1]);
            (te[k], to[k]) = (t[2 * k], t[2 * k + 1]);
        }
        // SAFETY: each array is 64 readable bytes; the caller guarantees AVX512F.
        let (bias_v, mult_v, corr_v, re, ro, te, to) = unsafe {
            (
                _mm512_loadu_si512(b.as_ptr() as *const _),
                _mm512_loadu_si512(m.as_ptr() as *const _),
                _mm512_loadu_si512(corr.as_ptr() as *const _),
                _mm512_loadu_si512(re.as_ptr() as *const _),
                _mm512_loadu_si512(ro.as_ptr() as *const _),
                _mm512_loadu_si512(te.as_ptr() as *const _),
                _mm512_loadu_si512(to.as_ptr() as *const _),
            )
        };
        Rq16 {
            bias: bias_v,
            mult: mult_v,
            mult_odd: _mm512_srli_epi64::<32>(mult_v),
            round_even: re,
            round_odd: ro,
            t_even: te,
            t_odd: to,
            corr: corr_v,
            fast,
        }
    }

    /// The requantized `i32` (before the zero point) of sixteen sums, bias included: the fast
    /// path above, or (some shift positive) `clamp(floor((acc·m + 2^(t-1)) / 2^t))` by
    /// arithmetic 64-bit shifts (`vpsravq`; `|acc·m| <= 2⁶²`, so the sum fits) and 64-bit
    /// clamps to the `i32` range: the scalar's formula.
    ///
    /// # Safety
    /// The CPU must support AVX512F.
    #[inline(always)]
    pub(crate) unsafe fn requant(&self, acc: __m512i) -> __m512i {
        // SAFETY (whole body): the caller guarantees AVX512F.
        unsafe {
            let pe = _mm512_add_epi64(_mm512_mul_epi32(acc, self.mult), self.round_even);
            let po = _mm512_add_epi64(
                _mm512_mul_epi32(_mm512_shuffle_epi32::<0xF5>(acc), self.mult_odd),
                self.round_odd,
            );
            if self.fast {
                let e = _mm512_srlv_epi64(pe, self.t_even);
                let o = _mm512_srlv_epi64(po, self.t_odd);
                // Odd lanes from `o`'s low halves.
                let v = _mm512_mask_shuffle_epi32::<0xA0>(e, 0xAAAA, o);
                _mm512_sub_epi32(v, self.corr)
            } else {
                let lo = _mm512_set1_epi64(i32::MIN as i64);
                let hi = _mm512_set1_epi64(i32::MAX as i64);
                let e = _mm512_srav_epi64(pe, self.t_even);
                let e = _mm512_min_epi64(_mm512_max_epi64(e, lo), hi);
                let o = _mm512_srav_epi64(po, self.t_odd);
                let o = _mm512_min_epi64(_mm512_max_epi64(o, lo), hi);
                _mm512_mask_shuffle_epi32::<0xA0>(e, 0xAAAA, o)
            }
        }
    }
}

/// Output zero point and clamp, and the packing of requantized lanes to int8.
#[derive(Clone, Copy)]
pub(crate) struct Finish16 {
    zp16: __m512i,
    min8: __m512i,
    max8: __m512i,
    /// `vpermd` indices that put [`Finish16::four`]'s packed dwords in channel order.
    perm: __m512i,
}

impl Finish16 {
    /// # Safety
    /// The CPU must support AVX512F and AVX512BW.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(crate) unsafe fn new(zero_point: i32, min: i8, max: i8) -> Finish16 {
        // `vpackssdw` then `vpacksswb` of four vectors a, b, c, d leave, in 128-bit lane k,
        // the dwords a[4k..4k+4], b[4k..], c[4k..], d[4k..] (as bytes): dword 4k + j. Output
        // dword m is vector m / 4's bytes 4(m % 4)..: index 4(m % 4) + m / 4.
        let mut idx = [0i32; 16];
        for (m, v) in idx.iter_mut().enumerate() {
            *v = (4 * (m % 4) + m / 4) as i32;
        }
        Finish16 {
            zp16: _mm512_set1_epi16(zero_point as i16),
            min8: _mm512_set1_epi8(min),
            max8: _mm512_set1_epi8(max),
            // SAFETY: `idx` is 64 readable bytes.
            perm: unsafe { _mm512_loadu_si512(idx.as_ptr() as *const _) },
        }
    }

    /// Sixteen int8 outputs from a group's [`Rq16::requant`] values.
    ///
    /// # Safety
    /// The CPU must support AVX512F, AVX512BW and AVX2.
    #[inline(always)]
    pub(crate) unsafe fn one(&self, v: __m512i) -> __m128i {
        // SAFETY (whole body): the caller guarantees the instructions.
        unsafe {
            let h = _mm256_adds_epi16(_mm512_cvtsepi32_epi16(v), _mm512_castsi512_si256(self.zp16));
            let b = _mm_packs_epi16(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
            _mm_min_epi8(
                _mm_max_epi8(b, _mm512_castsi512_si128(self.min8)),
                _mm512_castsi512_si128(self.max8),
            )
        }
    }

    /// Sixty-four int8 outputs (channels in order) from four groups' [`Rq16::requant`]
    /// values.
    ///
    /// # Safety
    /// The CPU must support AVX512F and AVX512BW.
    #[inline(always)]
    pub(crate) unsafe fn four(&self, v: [__m512i; 4]) -> __m512i {
        // SAFETY (whole body): the caller guarantees the instructions.
        unsafe {
            let ab = _mm512_adds_epi16(_mm512_packs_epi32(v[0], v[1]), self.zp16);
            let cd = _mm512_adds_epi16(_mm512_packs_epi32(v[2], v[3]), self.zp16);
            let q = _mm512_permutexvar_epi32(self.perm, _mm512_packs_epi16(ab, cd));
            _mm512_min_epi8(_mm512_max_epi8(q, self.min8), self.max8)
        }
    }

    /// Sixty-four int8 outputs from four groups' [`Rq16::requant`] values, in the order
    /// `vpackssdw` + `vpacksswb` leave them: 128-bit lane `k` holds lanes `4k..4k + 4` of each
    /// vector in turn (the channel order of vectors built by `vpunpck*` within 128-bit lanes).
    ///
    /// # Safety
    /// The CPU must support AVX512F and AVX512BW.
    #[inline(always)]
    pub(crate) unsafe fn four_lanes(&self, v: [__m512i; 4]) -> __m512i {
        // SAFETY (whole body): the caller guarantees the instructions.
        unsafe {
            let ab = _mm512_adds_epi16(_mm512_packs_epi32(v[0], v[1]), self.zp16);
            let cd = _mm512_adds_epi16(_mm512_packs_epi32(v[2], v[3]), self.zp16);
            let q = _mm512_packs_epi16(ab, cd);
            _mm512_min_epi8(_mm512_max_epi8(q, self.min8), self.max8)
        }
    }
}
