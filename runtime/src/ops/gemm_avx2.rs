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
use core::mem::MaybeUninit;

use super::conv2d::avx2::{dot1_i16 as dot1, dot4_i16_v as dot4};
use crate::arch::x86;
use crate::arch::x86_vnni::Vnni;
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
    /// One multiplier and shift for every output.
    #[inline(always)]
    pub(crate) fn per_tensor(&self) -> bool {
        self.multiplier.len() == 1 && self.shift.len() == 1
    }

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

    /// Outputs `j0..j0 + sums.len()` from their sums, into `out` (as long as `sums`): eight at a
    /// time with [`Self::eight`], the rest one by one.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn row(&self, j0: usize, sums: &[i32], out: &mut [i8]) {
        let n = sums.len().min(out.len());
        let mut c = 0;
        while c + 8 <= n {
            // SAFETY: `sums[c..c + 8]` is 32 readable bytes; the caller guarantees AVX2.
            unsafe {
                let s = _mm256_loadu_si256(sums[c..c + 8].as_ptr() as *const __m256i);
                self.eight(j0 + c, s, &mut out[c..c + 8]);
            }
            c += 8;
        }
        while c < n {
            out[c] = self.one(j0 + c, sums[c]);
            c += 1;
        }
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

/// Rows of `x` per register tile of [`gemm_nt`].
const MR: usize = 4;
/// Columns whose sums wait in a stack buffer before they are requantized together.
const NC: usize = 512;

/// `out[i·n + j] = epi(Σ_{t<k} (x[i·k + t] − zx)·(w[j·k + t] − zw))` for `i < m`, `j < n`, with
/// `x` (`[m, k]`) and `w` (`[n, k]`) int8 row-major: FullyConnected (`w` the weights, `zw = 0`) and
/// BatchMatMul with `Bᵀ` rows.
///
/// Register tiles of 4 rows × 2 columns: the 4 rows of `x` are widened (offset by `-zx`) once per
/// block into a zero-padded int16 buffer, each 16-value block of a `w` row is sign-extended straight
/// from memory (`vpmovsxbw`, offset by `-zw`) and multiplied with all 4 rows (`vpmaddwd`), so each
/// load feeds 4 (weights) or 2 (inputs) products. The eight accumulators are reduced with `vphaddd`
/// into one vector `[s(i,j), s(i,j+1), s(i+1,j), …]` requantized at once ([`x86::requantize8_avx2`]).
/// Leftover rows run 1 × 4 tiles, a leftover column a 4 × 1 tile. The `k mod 16` tail multiplies
/// zero-padded `x` lanes with a zero-padded copy of the `w` tail. Sums are the reference's modulo
/// 2³² (pairs of products are exact in `vpmaddwd`: each is at most 2·255² < 2³¹).
/// Returns `false` (and writes nothing) when `k` is 0 or above [`X_BUF`].
///
/// # Safety
/// The CPU must support AVX2. Panics (before writing) unless `x.len() >= m·k`, `w.len() >= n·k`,
/// `out.len() >= m·n` and the epilogue's slices hold `n` values (or one multiplier and shift).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn gemm_nt(
    m: usize,
    n: usize,
    k: usize,
    x: &[i8],
    zx: i32,
    w: &[i8],
    zw: i32,
    epi: &Epilogue<'_>,
    out: &mut [i8],
) -> bool {
    let k16 = k.div_ceil(16) * 16;
    if k16 > X_BUF || k == 0 || m == 0 || n == 0 {
        return k != 0 && k16 <= X_BUF;
    }
    assert!(x.len() >= m * k && w.len() >= n * k && out.len() >= m * n);
    assert!(epi.bias.is_none_or(|b| b.len() >= n));
    assert!(epi.per_tensor() || (epi.multiplier.len() >= n && epi.shift.len() >= n));
    let full = k / 16;
    let tail = k % 16;
    let zw16 = _mm256_set1_epi16(zw as i16);
    // The `k mod 16` tail of row `j` of `w`, zero-padded and sign-extended.
    // Where 16 bytes can be read from the tail's start without leaving `w`, they are loaded
    // directly and the bytes past the row masked off; else (the last rows) copied.
    let mask = tail_mask::<16>(tail);
    let w_tail = |j: usize| -> __m256i {
        let at = j * k + full * 16;
        let v = if at + 16 <= w.len() {
            // SAFETY: `w[at..at + 16]` is in bounds (checked); `mask` is 16 readable bytes.
            unsafe {
                _mm_and_si128(
                    _mm_loadu_si128(w.as_ptr().add(at) as *const __m128i),
                    _mm_loadu_si128(mask.as_ptr() as *const __m128i),
                )
            }
        } else {
            let mut t = [0i8; 16];
            t[..tail].copy_from_slice(&w[at..j * k + k]);
            // SAFETY: `t` is 16 readable bytes.
            unsafe { _mm_loadu_si128(t.as_ptr() as *const __m128i) }
        };
        _mm256_sub_epi16(_mm256_cvtepi8_epi16(v), zw16)
    };
    // Block `b < full` of row `j` of `w`, sign-extended and offset.
    let wp = w.as_ptr();
    let w_blk = |j: usize, b: usize| -> __m256i {
        // SAFETY: `j < n` and `b < full`, so bytes `j·k + 16b .. j·k + 16b + 16 <= n·k <= w.len()`.
        unsafe {
            let v = _mm256_cvtepi8_epi16(_mm_loadu_si128(wp.add(j * k + b * 16) as *const __m128i));
            _mm256_sub_epi16(v, zw16)
        }
    };
    let mut xs_buf = [const { MaybeUninit::<i16>::uninit() }; MR * X_BUF];
    let xs = filled(&mut xs_buf, MR * k16, 0);
    let nc = NC.min(n);
    let mut sb_buf = [const { MaybeUninit::<i32>::uninit() }; MR * NC];
    let sb = filled(&mut sb_buf, MR * nc, 0);
    let mut i0 = 0;
    while i0 + MR <= m {
        widen_rows(&x[i0 * k..(i0 + MR) * k], k, k16, zx, &mut *xs);
        let xp = xs.as_ptr();
        // SAFETY (every `xv` below): row `r < MR` block `b < k16 / 16` lies in `xs[..MR·k16]`.
        let xv = |r: usize, b: usize| unsafe {
            _mm256_loadu_si256(xp.add(r * k16 + b * 16) as *const __m256i)
        };
        let mut jc = 0;
        while jc < n {
            let je = (jc + nc).min(n);
            let mut j = jc;
            while j + 2 <= je {
                let mut a = [_mm256_setzero_si256(); 2 * MR];
                let mut step = |b: usize, w0: __m256i, w1: __m256i| {
                    for r in 0..MR {
                        let v = xv(r, b);
                        a[2 * r] = _mm256_add_epi32(a[2 * r], _mm256_madd_epi16(v, w0));
                        a[2 * r + 1] = _mm256_add_epi32(a[2 * r + 1], _mm256_madd_epi16(v, w1));
                    }
                };
                for b in 0..full {
                    step(b, w_blk(j, b), w_blk(j + 1, b));
                }
                if tail != 0 {
                    step(full, w_tail(j), w_tail(j + 1));
                }
                // [s(r,j), s(r,j+1), s(r+1,j), s(r+1,j+1)] for r = 0 (low half) and 2 (high half).
                let h01 = hsum_2x2(a[0], a[1], a[2], a[3]);
                let h23 = hsum_2x2(a[4], a[5], a[6], a[7]);
                let sum = _mm256_add_epi32(
                    _mm256_permute2x128_si256::<0x20>(h01, h23),
                    _mm256_permute2x128_si256::<0x31>(h01, h23),
                );
                put_4x2(sb, nc, j - jc, sum);
                j += 2;
            }
            if j < je {
                let mut a = [_mm256_setzero_si256(); MR];
                let mut step = |b: usize, w0: __m256i| {
                    for (r, acc) in a.iter_mut().enumerate() {
                        *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(xv(r, b), w0));
                    }
                };
                for b in 0..full {
                    step(b, w_blk(j, b));
                }
                if tail != 0 {
                    step(full, w_tail(j));
                }
                let mut s = [0i32; 4];
                // SAFETY: `s` is 16 writable bytes.
                unsafe { _mm_storeu_si128(s.as_mut_ptr() as *mut __m128i, hsum4(a)) };
                for (r, v) in s.iter().enumerate() {
                    sb[r * nc + j - jc] = *v;
                }
            }
            for r in 0..MR {
                let o = (i0 + r) * n;
                // SAFETY: AVX2 is enabled in this function.
                unsafe { epi.row(jc, &sb[r * nc..r * nc + je - jc], &mut out[o + jc..o + je]) };
            }
            jc = je;
        }
        i0 += MR;
    }
    // Leftover rows, one at a time: 1 × 4 tiles.
    while i0 < m {
        widen_rows(&x[i0 * k..(i0 + 1) * k], k, k16, zx, &mut *xs);
        let xp = xs.as_ptr();
        // SAFETY: block `b < k16 / 16` of row 0 lies in `xs[..k16]`.
        let xv = |b: usize| unsafe { _mm256_loadu_si256(xp.add(b * 16) as *const __m256i) };
        let o = &mut out[i0 * n..(i0 + 1) * n];
        let mut jc = 0;
        while jc < n {
            let je = (jc + nc).min(n);
            let mut j = jc;
            while j + 4 <= je {
                let mut a = [_mm256_setzero_si256(); 4];
                let mut step = |b: usize, ws: [__m256i; 4]| {
                    let v = xv(b);
                    for (acc, wv) in a.iter_mut().zip(ws) {
                        *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(v, wv));
                    }
                };
                for b in 0..full {
                    step(
                        b,
                        [
                            w_blk(j, b),
                            w_blk(j + 1, b),
                            w_blk(j + 2, b),
                            w_blk(j + 3, b),
                        ],
                    );
                }
                if tail != 0 {
                    step(
                        full,
                        [w_tail(j), w_tail(j + 1), w_tail(j + 2), w_tail(j + 3)],
                    );
                }
                let mut s = [0i32; 4];
                // SAFETY: `s` is 16 writable bytes.
                unsafe { _mm_storeu_si128(s.as_mut_ptr() as *mut __m128i, hsum4(a)) };
                sb[j - jc..j - jc + 4].copy_from_slice(&s);
                j += 4;
            }
            while j < je {
                let mut acc = _mm256_setzero_si256();
                for b in 0..full {
                    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(xv(b), w_blk(j, b)));
                }
                if tail != 0 {
                    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(xv(full), w_tail(j)));
                }
                let z = _mm256_setzero_si256();
                sb[j - jc] = _mm_cvtsi128_si32(hsum4([acc, z, z, z]));
                j += 1;
            }
            // SAFETY: AVX2 is enabled in this function.
            unsafe { epi.row(jc, &sb[..je - jc], &mut o[jc..je]) };
            jc = je;
        }
        i0 += 1;
    }
    true
}

/// Stores the sums of a 4 × 2 tile, `sum = [s(0,j), s(0,j+1), s(1,j), s(1,j+1) | s(2,j), …]`, at
/// `sb[r·nc + jr..r·nc + jr + 2]` for rows `r < 4`.
#[inline]
#[target_feature(enable = "avx2")]
fn put_4x2(sb: &mut [i32], nc: usize, jr: usize, sum: __m256i) {
    let mut v = [0i32; 8];
    // SAFETY: `v` is 32 writable bytes.
    unsafe { _mm256_storeu_si256(v.as_mut_ptr() as *mut __m256i, sum) };
    for r in 0..MR {
        sb[r * nc + jr..r * nc + jr + 2].copy_from_slice(&v[2 * r..2 * r + 2]);
    }
}

/// `[v[j], v[j + 1]]` repeated over the eight lanes (one 64-bit broadcast load).
#[inline]
#[target_feature(enable = "avx2")]
fn pair(v: &[i32], j: usize) -> __m256i {
    let p = &v[j..j + 2];
    // SAFETY: `p` is 8 readable bytes; the little-endian `i64` holds `v[j]` in its low half.
    _mm256_set1_epi64x(unsafe { (p.as_ptr() as *const i64).read_unaligned() })
}

/// Writes the rows of `x` (each `k` values) offset by `-zx` as int16 into `xs`, row `r` at
/// `r·k16`, lanes `k..k16` zero.
#[inline]
#[target_feature(enable = "avx2")]
fn widen_rows(x: &[i8], k: usize, k16: usize, zx: i32, xs: &mut [i16]) {
    let z = _mm256_set1_epi16(zx as i16);
    for (r, row) in x.chunks_exact(k).enumerate() {
        let dst = &mut xs[r * k16..(r + 1) * k16];
        let mut chunks = row.chunks_exact(16);
        let mut t = 0;
        for c in &mut chunks {
            // SAFETY: `c` is 16 readable bytes and `dst[t..t + 16]` 32 writable bytes (`t + 16 <= k`).
            unsafe {
                let v = _mm256_cvtepi8_epi16(_mm_loadu_si128(c.as_ptr() as *const __m128i));
                let d = &mut dst[t..t + 16];
                _mm256_storeu_si256(d.as_mut_ptr() as *mut __m256i, _mm256_sub_epi16(v, z));
            }
            t += 16;
        }
        for (d, &v) in dst[t..].iter_mut().zip(chunks.remainder()) {
            *d = (v as i32 - zx) as i16;
        }
        dst[k..].fill(0);
    }
}

/// `[Σa, Σb, Σc, Σd, Σa', Σb', Σc', Σd']`-style partial reduction of a 2 × 2 tile: returns
/// `[a 0-3, b 0-3, c 0-3, d 0-3 | a 4-7, b 4-7, c 4-7, d 4-7]` (wrapping), so adding the two
/// halves gives the four full sums in the order `a, b, c, d`.
#[inline]
#[target_feature(enable = "avx2")]
fn hsum_2x2(a: __m256i, b: __m256i, c: __m256i, d: __m256i) -> __m256i {
    _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d))
}

/// The lane sums of four vectors (wrapping), in order.
#[inline]
#[target_feature(enable = "avx2")]
fn hsum4(a: [__m256i; 4]) -> __m128i {
    let s = hsum_2x2(a[0], a[1], a[2], a[3]);
    _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s))
}

/// Longest row (`k` rounded up to 32) [`gemm_nt_vnni`] handles.
pub(crate) const XV_BUF: usize = 4096;
/// Most columns [`gemm_nt_vnni`] handles (one column sum each on the stack).
pub(crate) const N_SUMS: usize = 4096;

/// [`gemm_nt`] with VNNI (either encoding, `V`): the same results, bit for bit, from 8-bit products.
///
/// `vpdpbusd` multiplies unsigned by signed bytes, so rows of `x` are stored as `u = x + 128`
/// (`x ^ 0x80`) and `w` is used as stored. With `Σ` over `t < k`, modulo 2³²:
/// `Σ (x − zx)(w − zw) = Σ u·w − (128 + zx)·Σ w − zw·(Σ x − k·zx)`, so each tile's sums are
/// corrected by the column sums `Σ w` (computed once per call, also with `vpdpbusd`) and, when
/// `zw ≠ 0`, by the row sums `Σ x`. Every product `u·w` is exact and all sums wrap like the
/// reference's, so the result equals the reference's sum modulo 2³². Tiles: 4 rows × 2 columns of
/// 32 bytes per step (the rows widened once per block, `w` loaded straight from the image), the
/// same epilogue as [`gemm_nt`]. Lanes past `k` hold `u = 0` (and a zero-padded `w` tail).
/// Returns `false` (and writes nothing) when `k` is 0, `k` exceeds [`XV_BUF`] or `n` exceeds
/// [`N_SUMS`].
///
/// # Safety
/// The CPU must support AVX2 and `V`'s encoding (see [`crate::arch::x86_vnni::detected`]). Panics (before writing) unless
/// `x.len() >= m·k`, `w.len() >= n·k`, `out.len() >= m·n` and the epilogue's slices hold `n`
/// values (or one multiplier and shift).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn gemm_nt_vnni<V: Vnni>(
    m: usize,
    n: usize,
    k: usize,
    x: &[i8],
    zx: i32,
    w: &[i8],
    zw: i32,
    epi: &Epilogue<'_>,
    out: &mut [i8],
) -> bool {
    let k32 = k.div_ceil(32) * 32;
    if k == 0 || k32 > XV_BUF || n > N_SUMS {
        return false;
    }
    if m == 0 || n == 0 {
        return true;
    }
    assert!(x.len() >= m * k && w.len() >= n * k && out.len() >= m * n);
    assert!(epi.bias.is_none_or(|b| b.len() >= n));
    assert!(epi.per_tensor() || (epi.multiplier.len() >= n && epi.shift.len() >= n));
    let full = k / 32;
    let tail = k % 32;
    let wp = w.as_ptr();
    // Block `b < full` of row `j` of `w`.
    let w_blk = |j: usize, b: usize| -> __m256i {
        // SAFETY: `j < n` and `b < full`, so bytes `j·k + 32b .. j·k + 32b + 32 <= n·k <= w.len()`.
        unsafe { _mm256_loadu_si256(wp.add(j * k + b * 32) as *const __m256i) }
    };
    // The `k mod 32` tail of row `j` of `w`, zero-padded.
    // Loaded directly and masked where 32 bytes from the tail's start stay inside `w`, else
    // copied (the last rows).
    let mask = tail_mask::<32>(tail);
    let w_tail = |j: usize| -> __m256i {
        let at = j * k + full * 32;
        if at + 32 <= w.len() {
            // SAFETY: `w[at..at + 32]` is in bounds (checked); `mask` is 32 readable bytes.
            unsafe {
                _mm256_and_si256(
                    _mm256_loadu_si256(w.as_ptr().add(at) as *const __m256i),
                    _mm256_loadu_si256(mask.as_ptr() as *const __m256i),
                )
            }
        } else {
            let mut t = [0i8; 32];
            t[..tail].copy_from_slice(&w[at..j * k + k]);
            // SAFETY: `t` is 32 readable bytes.
            unsafe { _mm256_loadu_si256(t.as_ptr() as *const __m256i) }
        }
    };
    // Column sums Σ_t w[j][t] (wrapping), times (128 + zx).
    let c128 = 128i32.wrapping_add(zx);
    let mut cs_buf = [const { MaybeUninit::<i32>::uninit() }; N_SUMS];
    let cs = filled(&mut cs_buf, n, 0);
    let ones = _mm256_set1_epi8(1);
    for (j, c) in cs[..n].iter_mut().enumerate() {
        let mut acc = _mm256_setzero_si256();
        for b in 0..full {
            // SAFETY: the caller guarantees AVX-VNNI.
            acc = unsafe { V::dpbusd(acc, ones, w_blk(j, b)) };
        }
        if tail != 0 {
            // SAFETY: the caller guarantees AVX-VNNI.
            acc = unsafe { V::dpbusd(acc, ones, w_tail(j)) };
        }
        let z = _mm256_setzero_si256();
        *c = _mm_cvtsi128_si32(hsum4([acc, z, z, z])).wrapping_mul(c128);
    }
    // Row `r` of a block: `u` at `xs[r·k32..]`, and its correction `zw·(Σ x − k·zx)`.
    let mut xs_buf = [const { MaybeUninit::<u8>::uninit() }; MR * XV_BUF];
    let xs = filled(&mut xs_buf, MR * k32, 0);
    let nc = NC.min(n);
    let mut sb_buf = [const { MaybeUninit::<i32>::uninit() }; MR * NC];
    let sb = filled(&mut sb_buf, MR * nc, 0);
    let mut rt = [0i32; MR];
    let widen = |rows: &[i8], xs: &mut [u8], rt: &mut [i32; MR]| {
        for (r, row) in rows.chunks_exact(k).enumerate() {
            let dst = &mut xs[r * k32..(r + 1) * k32];
            let mut sum = 0i32;
            for (d, &v) in dst.iter_mut().zip(row) {
                *d = (v as u8) ^ 0x80;
                sum = sum.wrapping_add(v as i32);
            }
            dst[k..].fill(0);
            rt[r] = zw.wrapping_mul(sum.wrapping_sub((k as i32).wrapping_mul(zx)));
        }
    };
    let mut i0 = 0;
    while i0 + MR <= m {
        widen(&x[i0 * k..(i0 + MR) * k], &mut *xs, &mut rt);
        let xp = xs.as_ptr();
        // SAFETY (every `xv`): row `r < MR` block `b < k32 / 32` lies in `xs[..MR·k32]`.
        let xv = |r: usize, b: usize| unsafe {
            _mm256_loadu_si256(xp.add(r * k32 + b * 32) as *const __m256i)
        };
        let rows_corr = _mm256_setr_epi32(rt[0], rt[0], rt[1], rt[1], rt[2], rt[2], rt[3], rt[3]);
        let mut jc = 0;
        while jc < n {
            let je = (jc + nc).min(n);
            let mut j = jc;
            while j + 2 <= je {
                let mut a = [_mm256_setzero_si256(); 2 * MR];
                let mut step = |b: usize, w0: __m256i, w1: __m256i| {
                    for r in 0..MR {
                        let v = xv(r, b);
                        // SAFETY: the caller guarantees AVX-VNNI.
                        unsafe {
                            a[2 * r] = V::dpbusd(a[2 * r], v, w0);
                            a[2 * r + 1] = V::dpbusd(a[2 * r + 1], v, w1);
                        }
                    }
                };
                for b in 0..full {
                    step(b, w_blk(j, b), w_blk(j + 1, b));
                }
                if tail != 0 {
                    step(full, w_tail(j), w_tail(j + 1));
                }
                let h01 = hsum_2x2(a[0], a[1], a[2], a[3]);
                let h23 = hsum_2x2(a[4], a[5], a[6], a[7]);
                let sum = _mm256_add_epi32(
                    _mm256_permute2x128_si256::<0x20>(h01, h23),
                    _mm256_permute2x128_si256::<0x31>(h01, h23),
                );
                let cols = pair(cs, j);
                let sum = _mm256_sub_epi32(sum, _mm256_add_epi32(cols, rows_corr));
                put_4x2(sb, nc, j - jc, sum);
                j += 2;
            }
            if j < je {
                let mut a = [_mm256_setzero_si256(); MR];
                let mut step = |b: usize, w0: __m256i| {
                    for (r, acc) in a.iter_mut().enumerate() {
                        // SAFETY: the caller guarantees AVX-VNNI.
                        *acc = unsafe { V::dpbusd(*acc, xv(r, b), w0) };
                    }
                };
                for b in 0..full {
                    step(b, w_blk(j, b));
                }
                if tail != 0 {
                    step(full, w_tail(j));
                }
                let mut s = [0i32; 4];
                // SAFETY: `s` is 16 writable bytes.
                unsafe { _mm_storeu_si128(s.as_mut_ptr() as *mut __m128i, hsum4(a)) };
                for (r, v) in s.iter().enumerate() {
                    sb[r * nc + j - jc] = v.wrapping_sub(cs[j]).wrapping_sub(rt[r]);
                }
            }
            for r in 0..MR {
                let o = (i0 + r) * n;
                // SAFETY: AVX2 is enabled in this function.
                unsafe { epi.row(jc, &sb[r * nc..r * nc + je - jc], &mut out[o + jc..o + je]) };
            }
            jc = je;
        }
        i0 += MR;
    }
    // Leftover rows, one at a time: 1 × 4 tiles.
    while i0 < m {
        widen(&x[i0 * k..(i0 + 1) * k], &mut *xs, &mut rt);
        let xp = xs.as_ptr();
        // SAFETY: block `b < k32 / 32` of row 0 lies in `xs[..k32]`.
        let xv = |b: usize| unsafe { _mm256_loadu_si256(xp.add(b * 32) as *const __m256i) };
        let o = &mut out[i0 * n..(i0 + 1) * n];
        let mut jc = 0;
        while jc < n {
            let je = (jc + nc).min(n);
            let mut j = jc;
            while j + 4 <= je {
                let mut a = [_mm256_setzero_si256(); 4];
                let mut step = |b: usize, ws: [__m256i; 4]| {
                    let v = xv(b);
                    for (acc, wv) in a.iter_mut().zip(ws) {
                        // SAFETY: the caller guarantees AVX-VNNI.
                        *acc = unsafe { V::dpbusd(*acc, v, wv) };
                    }
                };
                for b in 0..full {
                    step(
                        b,
                        [
                            w_blk(j, b),
                            w_blk(j + 1, b),
                            w_blk(j + 2, b),
                            w_blk(j + 3, b),
                        ],
                    );
                }
                if tail != 0 {
                    step(
                        full,
                        [w_tail(j), w_tail(j + 1), w_tail(j + 2), w_tail(j + 3)],
                    );
                }
                let mut s = [0i32; 4];
                // SAFETY: `s` is 16 writable bytes.
                unsafe { _mm_storeu_si128(s.as_mut_ptr() as *mut __m128i, hsum4(a)) };
                for (q, v) in s.iter().enumerate() {
                    sb[j - jc + q] = v.wrapping_sub(cs[j + q]).wrapping_sub(rt[0]);
                }
                j += 4;
            }
            while j < je {
                let mut acc = _mm256_setzero_si256();
                for b in 0..full {
                    // SAFETY: the caller guarantees AVX-VNNI.
                    acc = unsafe { V::dpbusd(acc, xv(b), w_blk(j, b)) };
                }
                if tail != 0 {
                    // SAFETY: the caller guarantees AVX-VNNI.
                    acc = unsafe { V::dpbusd(acc, xv(full), w_tail(j)) };
                }
                let z = _mm256_setzero_si256();
                let v = _mm_cvtsi128_si32(hsum4([acc, z, z, z]));
                sb[j - jc] = v.wrapping_sub(cs[j]).wrapping_sub(rt[0]);
                j += 1;
            }
            // SAFETY: AVX2 is enabled in this function.
            unsafe { epi.row(jc, &sb[..je - jc], &mut o[jc..je]) };
            jc = je;
        }
        i0 += 1;
    }
    true
}

/// The first `len` elements of `buf`, each set to `v` (the rest stays uninitialized): stack
/// buffers sized for the largest case cost only what a call uses.
pub(crate) fn filled<T: Copy>(buf: &mut [MaybeUninit<T>], len: usize, v: T) -> &mut [T] {
    let b = &mut buf[..len];
    for e in b.iter_mut() {
        e.write(v);
    }
    // SAFETY: every element of `b` was just initialized, and `MaybeUninit<T>` has `T`'s layout.
    unsafe { &mut *(b as *mut [MaybeUninit<T>] as *mut [T]) }
}

/// `N` bytes: `-1` (all bits) for the first `tail`, then 0.
fn tail_mask<const N: usize>(tail: usize) -> [i8; N] {
    let mut m = [0i8; N];
    m[..tail.min(N)].fill(-1);
    m
}
