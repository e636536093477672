//! AVX2 int8 matrix product over widened 16-bit operands, shared by the AVX2 FullyConnected and
//! BatchMatMul kernels: `out[i][j] = requantize(bias[j] + Σ_t x_i[t]·w_j[t])`.
//!
//! The callers supply the rows already offset by their zero points (`x - zp_x` and `w - zp_w`,
//! each in `[-255, 255]`), widened to int16. Rows of `w` are widened once per block of up to
//! [`W_BUF`] values on the stack, rows of `x` once per block, both padded with zeros to a multiple
//! of 16 lanes. `vpmaddwd` multiplies 16 lanes and adds pairs into 32-bit lanes (each pair sum is
//! at most 2·255² < 2³¹: exact); accumulators add with wrapping 32-bit adds and are reduced with
//! `vphaddd` (wrapping). Each sum is therefore the reference's sum modulo 2³² (integer addition is
//! associative and commutative), and requantization is [`x86::requantize8_avx2`] (bit-exact to
//! [`requantize_to_i8`]) for groups of eight outputs and the scalar function for the rest.
//! Nothing is allocated (20 KiB of stack).

use core::arch::x86_64::*;

use super::conv2d::avx2::{dot1_i16 as dot1, dot4_i16_v as dot4};
use crate::arch::x86;
use crate::quant::requantize_to_i8;

/// int16 values of `w` held per block of rows.
pub(crate) const W_BUF: usize = 8192;
/// Longest row (`k` rounded up to 16) handled; callers fall back to their other kernel beyond it.
pub(crate) const X_BUF: usize = 2048;

/// Bias and requantization of the outputs.
pub(crate) struct Epilogue<'a> {
    /// Bias per output column `j` (`n` values), or none.
    pub bias: Option<&'a [i32]>,
    /// Q31 multipliers: `n` values (per column) or one (per tensor).
    pub multiplier: &'a [i32],
    /// Shifts, as many as `multiplier`.
    pub shift: &'a [i32],
    /// Output zero point.
    pub zero_point: i32,
    /// Clamp.
    pub min: i8,
    /// Clamp.
    pub max: i8,
}

impl Epilogue<'_> {
    /// Output `j` from its sum.
    #[inline(always)]
    pub(crate) fn one(&self, j: usize, sum: i32) -> i8 {
        let c = if self.multiplier.len() == 1 { 0 } else { j };
        let acc = self.bias.map_or(0, |b| b[j]).wrapping_add(sum);
        requantize_to_i8(
            acc,
            self.multiplier[c],
            self.shift[c],
            self.zero_point,
            self.min,
            self.max,
        )
    }

    /// Outputs `j..j + 8` from their sums, into `out[..8]`.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn eight(&self, j: usize, sum: __m256i, out: &mut [i8]) {
        let load = |v: &[i32]| {
            let v = &v[j..j + 8];
            // SAFETY: `v` holds 8 `i32`s (bounds-checked above).
            unsafe { _mm256_loadu_si256(v.as_ptr() as *const __m256i) }
        };
        let acc = match self.bias {
            Some(b) => _mm256_add_epi32(load(b), sum),
            None => sum,
        };
        let (m, s) = if self.multiplier.len() == 1 {
            (
                _mm256_set1_epi32(self.multiplier[0]),
                _mm256_set1_epi32(self.shift[0]),
            )
        } else {
            (load(self.multiplier), load(self.shift))
        };
        // SAFETY: the caller guarantees AVX2.
        unsafe {
            let y = x86::requantize8_avx2(acc, m, s, self.zero_point, self.min, self.max);
            x86::store8_i8(y, out);
        }
    }
}

/// `out[i·n + j]` for `i < m`, `j < n`, with `x_row(i, dst)` and `w_row(j, dst)` writing the
/// `k` offset values of row `i` of `x` and row `j` of `w` into `dst[..k]`.
/// Returns `false` (and writes nothing) when `k` exceeds [`X_BUF`].
///
/// # Safety
/// The CPU must support AVX2. `out.len() >= m·n`; the epilogue's slices hold `n` values (or one
/// multiplier and shift).
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn gemm(
    m: usize,
    n: usize,
    k: usize,
    mut x_row: impl FnMut(usize, &mut [i16]),
    mut w_row: impl FnMut(usize, &mut [i16]),
    epi: &Epilogue<'_>,
    out: &mut [i8],
) -> bool {
    let k16 = k.div_ceil(16) * 16;
    if k16 > X_BUF || k == 0 {
        return false;
    }
    let block = ((W_BUF / k16) / 4 * 4).min(n);
    let mut ws = [0i16; W_BUF];
    let mut xs = [0i16; X_BUF];
    let mut j0 = 0;
    while j0 < n {
        let rows = block.min(n - j0);
        for r in 0..rows {
            let dst = &mut ws[r * k16..(r + 1) * k16];
            w_row(j0 + r, &mut dst[..k]);
            dst[k..].fill(0);
        }
        for i in 0..m {
            // Lanes `k..k16` of `xs` stay 0 from its initialisation.
            x_row(i, &mut xs[..k]);
            let x = &xs[..k16];
            let o = &mut out[i * n + j0..i * n + j0 + rows];
            let mut r = 0;
            while r + 8 <= rows {
                // SAFETY: the caller guarantees AVX2.
                unsafe {
                    let lo = dot4(x, &ws[r * k16..(r + 4) * k16]);
                    let hi = dot4(x, &ws[(r + 4) * k16..(r + 8) * k16]);
                    let sum = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(lo), hi);
                    epi.eight(j0 + r, sum, &mut o[r..r + 8]);
                }
                r += 8;
            }
            while r + 4 <= rows {
                let mut s = [0i32; 4];
                // SAFETY: the caller guarantees AVX2; `s` is 16 writable bytes.
                unsafe {
                    let v = dot4(x, &ws[r * k16..(r + 4) * k16]);
                    _mm_storeu_si128(s.as_mut_ptr() as *mut __m128i, v);
                }
                for (q, v) in s.iter().enumerate() {
                    o[r + q] = epi.one(j0 + r + q, *v);
                }
                r += 4;
            }
            while r < rows {
                // SAFETY: the caller guarantees AVX2.
                let v = unsafe { dot1(x, &ws[r * k16..(r + 1) * k16]) };
                o[r] = epi.one(j0 + r, v);
                r += 1;
            }
        }
        j0 += rows;
    }
    true
}
