//! AVX2 int8 Mul, bit-exact to [`super::reference::eval_i8`].
//!
//! Eight outputs per vector, in `i32` lanes: both inputs sign-extended, minus their zero points
//! (`|x - z| ≤ 255`), multiplied exactly (`vpmulld`; `|product| ≤ 65 025`), then
//! [`crate::arch::x86::requantize8_avx2`] (bit-exact to [`crate::quant::requantize_to_i8`]) and
//! packed to bytes. The output is walked row by row (`add::rows`); along a row each input is
//! contiguous or one repeated value. The last `row % 8` values of a row use the reference's
//! per-element formula. When one input is a single value and the output is large, the output is
//! a function of the other input's byte: a 256-entry table of the reference formula is built
//! once per call and looked up per element.

use core::arch::x86_64::*;

use super::MulParams;
use crate::arch::x86::{requantize8_avx2, store8_i8};
use crate::quant::requantize_to_i8;

/// The constants of one invocation.
struct Consts<'p> {
    p: &'p MulParams,
    zp1: __m256i,
    zp2: __m256i,
    multiplier: __m256i,
    shift: __m256i,
}

impl Consts<'_> {
    /// Eight `x - zero_point` values at `i..i + 8` of a row: `x` has the row's values (`step`
    /// 1) or one value (`step` 0).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[inline(always)]
    unsafe fn centred8(x: &[i8], step: usize, i: usize, zp: __m256i) -> __m256i {
        // SAFETY: AVX2 is available (the caller's contract); the load reads the 8 bytes of the
        // bounds-checked slice `v`.
        unsafe {
            let v = if step == 0 {
                _mm256_set1_epi32(x[0] as i32)
            } else {
                let v = &x[i..i + 8];
                _mm256_cvtepi8_epi32(_mm_loadl_epi64(v.as_ptr() as *const __m128i))
            };
            _mm256_sub_epi32(v, zp)
        }
    }

    /// Eight outputs at `i..i + 8` as int8 values in `i32` lanes.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[inline(always)]
    unsafe fn eight(&self, x1: (&[i8], usize), x2: (&[i8], usize), i: usize) -> __m256i {
        let p = self.p;
        // SAFETY: AVX2 is available (the caller's contract).
        unsafe {
            let prod = _mm256_mullo_epi32(
                Self::centred8(x1.0, x1.1, i, self.zp1),
                Self::centred8(x2.0, x2.1, i, self.zp2),
            );
            requantize8_avx2(
                prod,
                self.multiplier,
                self.shift,
                p.output_zero_point,
                p.activation.min,
                p.activation.max,
            )
        }
    }

    /// One row of `out.len()` outputs; an input with step 1 has exactly `out.len()` values,
    /// one with step 0 at least one.
    #[target_feature(enable = "avx2")]
    fn row(&self, x1: (&[i8], usize), x2: (&[i8], usize), out: &mut [i8]) {
        let n = out.len();
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        let mut i = 0;
        while i + 32 <= n {
            // SAFETY: AVX2 is enabled in this function; `i + 32 <= n`.
            let (a, b, c, d) = unsafe {
                (
                    self.eight(x1, x2, i),
                    self.eight(x1, x2, i + 8),
                    self.eight(x1, x2, i + 16),
                    self.eight(x1, x2, i + 24),
                )
            };
            // Lanes are in [-128, 127]: the saturating packs are exact; the permute restores
            // the order of the 4-byte groups.
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
            unsafe { store8_i8(self.eight(x1, x2, i), &mut out[i..i + 8]) };
            i += 8;
        }
        let p = self.p;
        for (k, y) in out.iter_mut().enumerate().skip(i) {
            let a = x1.0[k * x1.1] as i32 - p.input1_zero_point;
            let b = x2.0[k * x2.1] as i32 - p.input2_zero_point;
            *y = requantize_to_i8(
                a * b,
                p.output_multiplier,
                p.output_shift,
                p.output_zero_point,
                p.activation.min,
                p.activation.max,
            );
        }
    }
}

/// AVX2 int8 Mul.
///
/// # Safety
/// The CPU must support AVX2. Requires a successful [`super::check_i8`].
#[target_feature(enable = "avx2")]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub unsafe fn eval_i8(p: &MulParams, input1: &[i8], input2: &[i8], output: &mut [i8]) {
    let c = Consts {
        p,
        zp1: _mm256_set1_epi32(p.input1_zero_point),
        zp2: _mm256_set1_epi32(p.input2_zero_point),
        multiplier: _mm256_set1_epi32(p.output_multiplier),
        shift: _mm256_set1_epi32(p.output_shift),
    };
    // One input a single value (a scale factor): the output is a function of the other input's
    // byte, so a 256-entry table of the reference formula, then one lookup per element.
    if output.len() >= TABLE_MIN_LEN && (input1.len() == 1 || input2.len() == 1) {
        let (x, c_in, zp_x, zp_c) = if input2.len() == 1 {
            (input1, input2[0], p.input1_zero_point, p.input2_zero_point)
        } else {
            (input2, input1[0], p.input2_zero_point, p.input1_zero_point)
        };
        let cv = c_in as i32 - zp_c;
        let mut table = [0i8; 256];
        for (k, t) in table.iter_mut().enumerate() {
            // Multiplication of integers commutes: `(x - z) * c` equals the reference's order.
            *t = requantize_to_i8(
                (k as u8 as i8 as i32 - zp_x) * cv,
                p.output_multiplier,
                p.output_shift,
                p.output_zero_point,
                p.activation.min,
                p.activation.max,
            );
        }
        // `check_i8`: the other input has the output's length.
        for (y, &v) in output.iter_mut().zip(x) {
            *y = table[v as u8 as usize];
        }
        return;
    }
    crate::ops::add::rows::for_each_row(&p.shape, |o, len, a, b| {
        let x1 = (
            &input1[a.start..a.start + len * a.step + (1 - a.step)],
            a.step,
        );
        let x2 = (
            &input2[b.start..b.start + len * b.step + (1 - b.step)],
            b.step,
        );
        c.row(x1, x2, &mut output[o..o + len]);
    });
}

/// Smallest output for which a single-value input goes through a 256-entry table.
const TABLE_MIN_LEN: usize = 2048;

/// Safe entry for kernel tables built after `is_x86_feature_detected!("avx2")`.
#[cfg(any(test, feature = "std"))]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub(crate) fn eval_i8_detected(p: &MulParams, input1: &[i8], input2: &[i8], output: &mut [i8]) {
    debug_assert!(std::is_x86_feature_detected!("avx2"));
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2`, which checks
    // `is_x86_feature_detected!("avx2")` first.
    unsafe { eval_i8(p, input1, input2, output) }
}
