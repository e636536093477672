//! AVX2 int8 Add, bit-exact to [`super::reference::eval_i8`].
//!
//! Eight outputs per vector, in `i32` lanes. Each input is scaled as the reference does it:
//! `a = (x - zero_point) << LEFT_SHIFT` (`|a| < 2^28`), then [`crate::quant::requantize`] with the
//! input's multiplier and shift (`shift ≤ 0`, so the total shift `t = 31 - shift` lies in
//! `[31, 62]`). In 64-bit lanes (`vpmuldq`, even and odd `i32` lanes separately)
//! `wide = a · multiplier + 2^(t-1)` is exact and `|wide| < 2^62`, so `wide >> 31` fits an `i32`
//! (`|wide >> 31| < 2^31`): its low 32 bits are taken with a logical 64-bit shift, and the
//! remaining `t - 31` bits with an `i32` arithmetic shift (`floor(floor(w / 2^31) / 2^k)` equals
//! `floor(w / 2^(31+k))`). The result is below `2^28` in magnitude, where the reference's clamp to
//! `i32` does nothing, and the two scaled inputs sum without overflow (below `2^29`). When the
//! output shift is `<= 0` (always in practice: the output multiplier is about `2^-19`) the sum is
//! requantized the same way (`|sum · multiplier| < 2^60`, result below `2^30`, where the
//! reference's clamp to `i32` and saturating zero-point add do nothing), then the zero point is
//! added and the clamp applied; otherwise it goes through
//! [`crate::arch::x86::requantize8_avx2`] (bit-exact to [`crate::quant::requantize_to_i8`]).
//! Outputs are packed to bytes.
//!
//! Broadcasting: the output is walked row by row ([`super::rows`], axes that broadcast alike
//! merged); along a row each input is either contiguous or one repeated value (scaled once per
//! row). A contiguous row of the smaller input that repeats along the output (a bias added to
//! every row) is scaled once into a stack cache and reused. The last `row % 8` values
//! of each row use the reference's per-element function.

use core::arch::x86_64::*;

use super::{AddParams, LEFT_SHIFT};
use crate::arch::x86::{requantize8_avx2, store8_i8};

/// [`crate::quant::requantize`] by a `(multiplier, shift)` with `shift <= 0`, for values `a`
/// with `|a| < 2^29` (so `|a · multiplier| < 2^60`).
#[derive(Clone, Copy)]
struct Q31Down {
    multiplier: __m256i,
    /// `2^(t-1)` in each 64-bit lane.
    round: __m256i,
    /// `t - 31`, the shift after the first 31 bits, as a shift count.
    rest: __m128i,
}

impl Q31Down {
    /// The constants for `(multiplier, shift)`; `shift` above 0 is treated as 0 (callers
    /// check `shift <= 0`).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn new((multiplier, shift): (i32, i32)) -> Q31Down {
        // As in `requantize`, with `t = 31 - shift >= 31`.
        let t = (31 - shift).clamp(31, 62);
        Q31Down {
            multiplier: _mm256_set1_epi32(multiplier),
            round: _mm256_set1_epi64x(1i64 << (t - 1)),
            rest: _mm_cvtsi32_si128(t - 31),
        }
    }

    /// `requantize(a, multiplier, shift)` in each `i32` lane (see the module docs).
    ///
    /// # Safety
    /// The CPU must support AVX2. (Not a `target_feature` function, so that it is always
    /// inlined into its AVX2 callers.)
    #[inline(always)]
    unsafe fn apply(&self, a: __m256i) -> __m256i {
        // SAFETY: AVX2 is available (the caller's contract).
        unsafe {
            let even = _mm256_add_epi64(_mm256_mul_epi32(a, self.multiplier), self.round);
            let odd = _mm256_add_epi64(
                _mm256_mul_epi32(_mm256_srli_epi64::<32>(a), self.multiplier),
                self.round,
            );
            // Bits 31..63 of each wide value: in the low half of even lanes, the high half of odd.
            let w = _mm256_blend_epi32::<0b1010_1010>(
                _mm256_srli_epi64::<31>(even),
                _mm256_slli_epi64::<1>(odd),
            );
            _mm256_sra_epi32(w, self.rest)
        }
    }
}

/// One input's scaling constants.
#[derive(Clone, Copy)]
struct InputScale {
    zero_point: __m256i,
    q: Q31Down,
}

impl InputScale {
    #[inline]
    #[target_feature(enable = "avx2")]
    fn new(zero_point: i32, requant: (i32, i32)) -> InputScale {
        // `check_i8` guarantees an input shift `<= 0`.
        InputScale {
            zero_point: _mm256_set1_epi32(zero_point),
            q: Q31Down::new(requant),
        }
    }

    /// `requantize((x - zero_point) << LEFT_SHIFT, multiplier, shift)` for eight raw int8 values
    /// sign-extended in `i32` lanes.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[inline(always)]
    unsafe fn scale(&self, x: __m256i) -> __m256i {
        // SAFETY: AVX2 is available (the caller's contract).
        unsafe {
            self.q
                .apply(_mm256_slli_epi32::<LEFT_SHIFT>(_mm256_sub_epi32(
                    x,
                    self.zero_point,
                )))
        }
    }
}

/// One input along a row of the output.
#[derive(Clone, Copy)]
enum Operand<'a> {
    /// Contiguous values, exactly the row's length.
    Run(&'a [i8]),
    /// One value repeated: the raw byte and its scaled value in every lane.
    Splat(i8, __m256i),
    /// Contiguous values (exactly the row's length) and their scaled values, computed once for
    /// rows that repeat (a broadcast row such as a bias): at least `8 * (len / 8)` entries.
    Scaled(&'a [i8], &'a [i32]),
}

impl Operand<'_> {
    /// Scaled values at `i..i + 8`. Requires `i + 8 <= row length`.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[inline(always)]
    unsafe fn scaled8(&self, s: &InputScale, i: usize) -> __m256i {
        match *self {
            Operand::Run(x) => {
                let x = &x[i..i + 8];
                // SAFETY: `x` has exactly 8 bytes (the slice above is bounds-checked): one
                // unaligned 8-byte load; AVX2 is available (the caller's contract).
                unsafe {
                    let v = _mm_loadl_epi64(x.as_ptr() as *const __m128i);
                    s.scale(_mm256_cvtepi8_epi32(v))
                }
            }
            Operand::Splat(_, v) => v,
            Operand::Scaled(_, scaled) => {
                let v = &scaled[i..i + 8];
                // SAFETY: `v` has exactly 8 values (bounds-checked slice): one unaligned
                // 32-byte load; AVX2 is available (the caller's contract).
                unsafe { _mm256_loadu_si256(v.as_ptr() as *const __m256i) }
            }
        }
    }

    /// The raw byte at `i`.
    #[inline]
    fn raw(&self, i: usize) -> i8 {
        match *self {
            Operand::Run(x) | Operand::Scaled(x, _) => x[i],
            Operand::Splat(v, _) => v,
        }
    }
}

/// The constants of one invocation.
struct Consts<'p> {
    p: &'p AddParams,
    in1: InputScale,
    in2: InputScale,
    out_multiplier: __m256i,
    out_shift: __m256i,
    /// The output requantization when its shift is `<= 0` (the usual case: the output
    /// multiplier is about `2^-19`), else `None` (general path).
    out_down: Option<Q31Down>,
    out_zero_point: __m256i,
    out_min: __m256i,
    out_max: __m256i,
}

impl Consts<'_> {
    /// Eight outputs at `i..i + 8`, as int8 values in `i32` lanes.
    ///
    /// # Safety
    /// The CPU must support AVX2. (Not a `target_feature` function, so that it is always
    /// inlined into [`Consts::row`].)
    #[inline(always)]
    unsafe fn eight(&self, x1: &Operand<'_>, x2: &Operand<'_>, i: usize) -> __m256i {
        let p = self.p;
        // SAFETY: AVX2 is available (the caller's contract).
        unsafe {
            let sum = _mm256_add_epi32(x1.scaled8(&self.in1, i), x2.scaled8(&self.in2, i));
            if let Some(q) = &self.out_down {
                // |sum| < 2^29, so `requantize` gives |r| < 2^30: its clamp to i32 and the
                // saturating zero-point add of `requantize_to_i8` do nothing.
                let v = _mm256_add_epi32(q.apply(sum), self.out_zero_point);
                return _mm256_min_epi32(_mm256_max_epi32(v, self.out_min), self.out_max);
            }
            requantize8_avx2(
                sum,
                self.out_multiplier,
                self.out_shift,
                p.output_zero_point,
                p.activation.min,
                p.activation.max,
            )
        }
    }

    /// One row: `out.len()` outputs; `Run` operands have exactly `out.len()` values.
    #[target_feature(enable = "avx2")]
    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    fn row(&self, x1: Operand<'_>, x2: Operand<'_>, out: &mut [i8]) {
        let n = out.len();
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        let mut i = 0;
        while i + 32 <= n {
            // SAFETY: AVX2 is enabled in this function; `i + 32 <= n`.
            let (a, b, c, d) = unsafe {
                (
                    self.eight(&x1, &x2, i),
                    self.eight(&x1, &x2, i + 8),
                    self.eight(&x1, &x2, i + 16),
                    self.eight(&x1, &x2, i + 24),
                )
            };
            // Lanes are already in [-128, 127]: the saturating packs are exact. They interleave
            // 4-byte groups as [a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7]; the permute restores
            // the order.
            let ab = _mm256_packs_epi32(a, b);
            let cd = _mm256_packs_epi32(c, d);
            let bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), order);
            let dst = &mut out[i..i + 32];
            // SAFETY: `dst` has exactly 32 bytes: one unaligned 32-byte store.
            unsafe { _mm256_storeu_si256(dst.as_mut_ptr() as *mut __m256i, bytes) };
            i += 32;
        }
        while i + 8 <= n {
            // SAFETY: AVX2 is enabled here; `i + 8 <= n = out.len()`.
            unsafe { store8_i8(self.eight(&x1, &x2, i), &mut out[i..i + 8]) };
            i += 8;
        }
        for (k, y) in out.iter_mut().enumerate().skip(i) {
            *y = super::reference::add_one_i8(self.p, x1.raw(k), x2.raw(k));
        }
    }
}

/// AVX2 int8 Add.
///
/// # Safety
/// The CPU must support AVX2. Requires a successful [`super::check_i8`].
#[target_feature(enable = "avx2")]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub unsafe fn eval_i8(p: &AddParams, input1: &[i8], input2: &[i8], output: &mut [i8]) {
    let r = &p.requant;
    let c = Consts {
        p,
        in1: InputScale::new(p.input1_zero_point, r.input1),
        in2: InputScale::new(p.input2_zero_point, r.input2),
        out_multiplier: _mm256_set1_epi32(r.output.0),
        out_shift: _mm256_set1_epi32(r.output.1),
        out_down: if r.output.1 <= 0 {
            Some(Q31Down::new(r.output))
        } else {
            None
        },
        out_zero_point: _mm256_set1_epi32(p.output_zero_point),
        out_min: _mm256_set1_epi32(p.activation.min as i32),
        out_max: _mm256_set1_epi32(p.activation.max as i32),
    };
    // A contiguous row of an input smaller than the output repeats (a bias along rows, for
    // example): its scaled values are computed once into `cache` (on the stack, filled only when
    // such a row appears) and reused while the next rows start at the same place.
    // Small outputs skip it: zeroing the cache would cost more than it saves.
    let big = output.len() >= MIN_CACHED_OUTPUT;
    let repeats1 = big && input1.len() < output.len();
    let repeats2 = big && !repeats1 && input2.len() < output.len();
    let mut cache: Option<[i32; CACHE_LEN]> = None;
    let mut cached_start = usize::MAX;
    super::rows::for_each_row(&p.shape, |o, len, a, b| {
        let out = &mut output[o..o + len];
        let (repeat, r, x, s) = if repeats1 {
            (a.step == 1, a, input1, &c.in1)
        } else {
            (repeats2 && b.step == 1, b, input2, &c.in2)
        };
        if repeat && (MIN_CACHED_ROW..=CACHE_LEN).contains(&len) {
            let buf = cache.get_or_insert([0i32; CACHE_LEN]);
            let raw = &x[r.start..r.start + len];
            if cached_start != r.start {
                scale_row(raw, s, &mut buf[..len]);
                cached_start = r.start;
            }
            let cached = Operand::Scaled(raw, &buf[..len]);
            if repeats1 {
                c.row(cached, operand(input2, b.start, b.step, len, &c.in2), out);
            } else {
                c.row(operand(input1, a.start, a.step, len, &c.in1), cached, out);
            }
            return;
        }
        let x1 = operand(input1, a.start, a.step, len, &c.in1);
        let x2 = operand(input2, b.start, b.step, len, &c.in2);
        c.row(x1, x2, out);
    });
}

/// Entries of the stack cache of a repeated row's scaled values (8 KiB: rows up to 2048, such as
/// MiniLM's 1536-wide MLP bias).
const CACHE_LEN: usize = 2048;
/// Smallest output for which repeated rows are cached (the 8 KiB cache is zeroed once).
const MIN_CACHED_OUTPUT: usize = 4096;
/// Shortest row worth caching.
const MIN_CACHED_ROW: usize = 32;

/// `scaled[j] = s.scale(raw[j])` for the full blocks of eight (`scaled.len() == raw.len()`; the
/// last `len % 8` entries are not used: the row's tail goes through the reference).
#[target_feature(enable = "avx2")]
fn scale_row(raw: &[i8], s: &InputScale, scaled: &mut [i32]) {
    for (x, y) in raw.chunks_exact(8).zip(scaled.chunks_exact_mut(8)) {
        // SAFETY: `x` has 8 bytes and `y` 8 values: an unaligned 8-byte load and 32-byte store;
        // AVX2 is enabled in this function.
        unsafe {
            let v = s.scale(_mm256_cvtepi8_epi32(_mm_loadl_epi64(
                x.as_ptr() as *const __m128i
            )));
            _mm256_storeu_si256(y.as_mut_ptr() as *mut __m256i, v);
        }
    }
}

/// The row of `x` starting at `base`: `len` values when `step` is 1, one repeated value when 0.
#[inline]
#[target_feature(enable = "avx2")]
fn operand<'a>(x: &'a [i8], base: usize, step: usize, len: usize, s: &InputScale) -> Operand<'a> {
    if step == 0 {
        let v = x[base];
        // SAFETY: AVX2 is enabled in this function.
        Operand::Splat(v, unsafe { s.scale(_mm256_set1_epi32(v as i32)) })
    } else {
        Operand::Run(&x[base..base + len])
    }
}

/// Safe entry for kernel tables built after `is_x86_feature_detected!("avx2")`.
#[cfg(any(test, feature = "std"))]
pub(crate) fn eval_i8_detected(p: &AddParams, input1: &[i8], input2: &[i8], output: &mut [i8]) {
    debug_assert!(std::is_x86_feature_detected!("avx2"));
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2`, which checks
    // `is_x86_feature_detected!("avx2")` first.
    unsafe { eval_i8(p, input1, input2, output) }
}
