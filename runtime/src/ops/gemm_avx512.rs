//! AVX-512 VNNI int8 matrix product over packed column panels, shared by the FullyConnected and
//! BatchMatMul kernels on CPUs with AVX512-F/BW/VL/VNNI:
//! `out[i][j] = requantize(bias[j] + Σ_t (x[i][t] − zx)·(w(j, t) − zw))`.
//!
//! The right-hand operand (`w`, `[n, k]` rows or `[k, n]`) is packed per call, a block of up to
//! 64 columns at a time, into a panel of 4-byte groups: vector `(q, v)` of the panel (64 bytes)
//! holds `w(j, 4q..4q + 4)` for the 16 columns `j` of vector `v`, stored as unsigned
//! `w' = w + 128` (`w ^ 0x80`; zero past `k`). A register tile of up to 4 rows × 4 vectors (64
//! columns) broadcasts 4 bytes of each row of `x` (signed, straight from the input) and
//! accumulates `vpdpbusd(w', x)` in 16 independent 32-bit accumulators: every lane is one output,
//! so there is no horizontal reduction and the requantization (16 lanes at a time) reads the
//! accumulators directly.
//!
//! With `Σ` over `t < k`, all modulo 2³²:
//! `Σ (x − zx)(w − zw) = Σ x·w' − (128 + zw)·Σ x − zx·(Σ w − k·zw)`, so each sum is corrected by
//! a per-row term (`Σ x` once per row) and a per-column term (`Σ w` while packing; the bias is
//! folded into it). Every product `w'·x` is exact in `vpdpbusd` and all sums wrap like the
//! reference's, so each accumulator equals the reference's modulo 2³²; the requantization is
//! the AVX2 one ([`crate::arch::x86::requantize8_avx2`]) in 16 lanes (64-bit arithmetic shifts
//! and clamps), bit-exact to [`crate::quant::requantize_to_i8`]. Nothing is allocated (about
//! 34 KiB of stack).

// Without `std` nothing detects the CPU, so no token exists and the entries are unused.
#![cfg_attr(not(any(test, feature = "std")), allow(dead_code))]

use core::arch::x86_64::*;
use core::mem::MaybeUninit;

use super::gemm_avx2::{filled, Epilogue};

/// Bytes of the packed panel on the stack.
const PANEL: usize = 32768;
/// Longest row (`k`) handled: one 16-column vector of 4-byte groups fills [`PANEL`].
pub(crate) const MAX_K: usize = PANEL / 16;
/// Rows per register tile.
const MR: usize = 4;
/// Most 16-column vectors per register tile (and per panel).
const NR: usize = 4;
/// Rows whose sums are kept at once (the panels are packed again per chunk of rows).
const M_CHUNK: usize = 256;

/// The right-hand operand of [`gemm`].
#[derive(Clone, Copy)]
pub(crate) enum Rhs<'a> {
    /// `[n, k]` row-major: the rows of `Bᵀ` (FullyConnected weights; BatchMatMul with
    /// `transpose_b`).
    Nt(&'a [i8]),
    /// `[k, n]` row-major.
    Nn(&'a [i8]),
}

#[cfg(any(test, feature = "std"))]
pub(crate) use crate::arch::x86_vnni::avx512_detected as detected;
pub(crate) use crate::arch::x86_vnni::Avx512Vnni;

/// `out[i·n + j] = epi(Σ_{t<k} (x[i·k + t] − zx)·(w(j, t) − zw))` for `i < m`, `j < n`, with `x`
/// `[m, k]` row-major and `w` as [`Rhs`] says. Returns `false` (and writes nothing) when `k` is 0
/// or above [`MAX_K`].
///
/// Panics (before writing) unless `x.len() >= m·k`, `w` holds `n·k` values, `out.len() >= m·n`
/// and the epilogue's slices hold `n` values (or one multiplier and shift).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    cpu: Avx512Vnni,
    m: usize,
    n: usize,
    k: usize,
    x: &[i8],
    zx: i32,
    w: Rhs<'_>,
    zw: i32,
    epi: &Epilogue<'_>,
    out: &mut [i8],
) -> bool {
    let _ = cpu;
    // SAFETY: the token proves the instructions.
    unsafe { gemm_impl(m, n, k, x, zx, w, zw, epi, out) }
}

/// [`gemm`] without the token.
///
/// # Safety
/// The CPU must support AVX2 and AVX512-F/BW/VL/VNNI.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn gemm_impl(
    m: usize,
    n: usize,
    k: usize,
    x: &[i8],
    zx: i32,
    w: Rhs<'_>,
    zw: i32,
    epi: &Epilogue<'_>,
    out: &mut [i8],
) -> bool {
    if k == 0 || k > MAX_K {
        return false;
    }
    if m == 0 || n == 0 {
        return true;
    }
    let w_len = match w {
        Rhs::Nt(v) | Rhs::Nn(v) => v.len(),
    };
    assert!(x.len() >= m * k && w_len >= n * k && out.len() >= m * n);
    assert!(epi.bias.is_none_or(|b| b.len() >= n));
    let per_tensor = epi.per_tensor();
    assert!(per_tensor || (epi.multiplier.len() >= n && epi.shift.len() >= n));
    let k4 = k.div_ceil(4);
    // At least 1: `k4·64 <= MAX_K·16 = PANEL`.
    let nr_max = (PANEL / (k4 * 64)).min(NR);
    let mut panel_buf = [const { MaybeUninit::<u8>::uninit() }; PANEL];
    let panel = filled(&mut panel_buf, k4 * 64 * nr_max, 0);
    let mut rs_buf = [const { MaybeUninit::<i32>::uninit() }; M_CHUNK];
    let c128 = 128i32.wrapping_add(zw);
    let kzw = (k as i32).wrapping_mul(zw);
    let fin = Fin {
        zero_point: epi.zero_point,
        min: epi.min as i32,
        max: epi.max as i32,
    };
    let mut i0 = 0;
    while i0 < m {
        let rows = M_CHUNK.min(m - i0);
        let rs = filled(&mut rs_buf, rows, 0);
        for (r, s) in rs.iter_mut().enumerate() {
            let row = &x[(i0 + r) * k..(i0 + r + 1) * k];
            *s = row_sum(row).wrapping_mul(c128);
        }
        let mut j0 = 0;
        while j0 < n {
            let cols = (nr_max * 16).min(n - j0);
            let nr = cols.div_ceil(16);
            let pn = &mut panel[..k4 * 64 * nr];
            let mut cs = [0i32; NR * 16];
            match w {
                Rhs::Nt(v) => pack_nt(v, k, j0, cols, nr, pn, &mut cs),
                Rhs::Nn(v) => pack_nn(v, n, k, j0, cols, nr, pn, &mut cs),
            }
            // Per column: `zx·(Σ w − k·zw) − bias`, the multiplier and the shift.
            let mut cc = [0i32; NR * 16];
            let mut mm = [0i32; NR * 16];
            let mut ss = [0i32; NR * 16];
            for c in 0..cols {
                let j = j0 + c;
                cc[c] = zx
                    .wrapping_mul(cs[c].wrapping_sub(kzw))
                    .wrapping_sub(epi.bias.map_or(0, |b| b[j]));
                let q = if per_tensor { 0 } else { j };
                mm[c] = epi.multiplier[q];
                ss[c] = epi.shift[q];
            }
            let cols_v = ColVecs {
                cc: &cc,
                mm: &mm,
                ss: &ss,
                cols,
            };
            let mut i = 0;
            while i < rows {
                let r = MR.min(rows - i);
                let xt = &x[(i0 + i) * k..(i0 + i + r) * k];
                let rt = &rs[i..i + r];
                let o = &mut out[(i0 + i) * n + j0..];
                macro_rules! go {
                    ($($r:literal, $v:literal);*) => {
                        match (r, nr) {
                            $( ($r, $v) => tile::<$r, $v>(xt, k, pn, rt, &cols_v, &fin, o, n), )*
                            _ => unreachable!(),
                        }
                    };
                }
                go!(4, 4; 4, 3; 4, 2; 4, 1; 3, 4; 3, 3; 3, 2; 3, 1;
                    2, 4; 2, 3; 2, 2; 2, 1; 1, 4; 1, 3; 1, 2; 1, 1);
                i += r;
            }
            j0 += cols;
        }
        i0 += rows;
    }
    true
}

/// [`gemm`] against weights the compiler packed
/// ([`crate::ops::fully_connected::packed`]'s layout, which is this kernel's panel layout for
/// blocks of 64 columns) and with the column terms `ct[j] = bias[j] − zx·Σ_t w(j, t)` it
/// precomputed: `out[i·n + j] = epi(ct[j] + Σ_{t<k} x[i·k + t]·w(j, t))` (the epilogue's bias is
/// not read). No packing, no column sums and no limit on `k` (the panels are read in place).
/// Returns `false` (and writes nothing) when `k` is 0.
///
/// Panics (before writing) unless `x.len() >= m·k`, `panels` holds the packed layout of
/// `[n, k]`, `ct.len() >= n`, `out.len() >= m·n` and the epilogue's slices hold `n` values (or
/// one multiplier and shift).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_packed(
    cpu: Avx512Vnni,
    m: usize,
    n: usize,
    k: usize,
    x: &[i8],
    panels: &[i8],
    ct: &[i32],
    epi: &Epilogue<'_>,
    out: &mut [i8],
) -> bool {
    let _ = cpu;
    // SAFETY: the token proves the instructions.
    unsafe { gemm_packed_impl(m, n, k, x, panels, ct, epi, out) }
}

/// [`gemm_packed`] without the token.
///
/// # Safety
/// The CPU must support AVX2 and AVX512-F/BW/VL/VNNI.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn gemm_packed_impl(
    m: usize,
    n: usize,
    k: usize,
    x: &[i8],
    panels: &[i8],
    ct: &[i32],
    epi: &Epilogue<'_>,
    out: &mut [i8],
) -> bool {
    if k == 0 {
        return false;
    }
    if m == 0 || n == 0 {
        return true;
    }
    let k4 = k.div_ceil(4);
    assert!(x.len() >= m * k && out.len() >= m * n && ct.len() >= n);
    assert!(panels.len() >= n.div_ceil(16) * 16 * k4 * 4);
    let per_tensor = epi.per_tensor();
    assert!(per_tensor || (epi.multiplier.len() >= n && epi.shift.len() >= n));
    // SAFETY: `i8` and `u8` have the same size and alignment; the panel bytes are read as the
    // unsigned `w + 128` the layout stores.
    let panels: &[u8] =
        unsafe { core::slice::from_raw_parts(panels.as_ptr() as *const u8, panels.len()) };
    let mut rs_buf = [const { MaybeUninit::<i32>::uninit() }; M_CHUNK];
    let fin = Fin {
        zero_point: epi.zero_point,
        min: epi.min as i32,
        max: epi.max as i32,
    };
    let mut i0 = 0;
    while i0 < m {
        let rows = M_CHUNK.min(m - i0);
        let rs = filled(&mut rs_buf, rows, 0);
        for (r, s) in rs.iter_mut().enumerate() {
            let row = &x[(i0 + r) * k..(i0 + r + 1) * k];
            *s = row_sum(row).wrapping_mul(128);
        }
        let mut j0 = 0;
        while j0 < n {
            let cols = (NR * 16).min(n - j0);
            let nr = cols.div_ceil(16);
            let pn = &panels[j0 * k4 * 4..j0 * k4 * 4 + k4 * 64 * nr];
            // Per column: the negated column term, the multiplier and the shift.
            let mut cc = [0i32; NR * 16];
            let mut mm = [0i32; NR * 16];
            let mut ss = [0i32; NR * 16];
            for c in 0..cols {
                let j = j0 + c;
                cc[c] = ct[j].wrapping_neg();
                let q = if per_tensor { 0 } else { j };
                mm[c] = epi.multiplier[q];
                ss[c] = epi.shift[q];
            }
            let cols_v = ColVecs {
                cc: &cc,
                mm: &mm,
                ss: &ss,
                cols,
            };
            let mut i = 0;
            while i < rows {
                let r = MR.min(rows - i);
                let xt = &x[(i0 + i) * k..(i0 + i + r) * k];
                let rt = &rs[i..i + r];
                let o = &mut out[(i0 + i) * n + j0..];
                macro_rules! go {
                    ($($r:literal, $v:literal);*) => {
                        match (r, nr) {
                            $( ($r, $v) => tile::<$r, $v>(xt, k, pn, rt, &cols_v, &fin, o, n), )*
                            _ => unreachable!(),
                        }
                    };
                }
                go!(4, 4; 4, 3; 4, 2; 4, 1; 3, 4; 3, 3; 3, 2; 3, 1;
                    2, 4; 2, 3; 2, 2; 2, 1; 1, 4; 1, 3; 1, 2; 1, 1);
                i += r;
            }
            j0 += cols;
        }
        i0 += rows;
    }
    true
}

/// Output zero point and clamp.
struct Fin {
    zero_point: i32,
    min: i32,
    max: i32,
}

/// Per-column values of a panel: the correction (`zx·(Σ w − k·zw) − bias`), multiplier and
/// shift, and how many columns are real.
struct ColVecs<'a> {
    cc: &'a [i32; NR * 16],
    mm: &'a [i32; NR * 16],
    ss: &'a [i32; NR * 16],
    cols: usize,
}

/// Packs columns `j0..j0 + cols` of `w` (`[n, k]`, rows are columns) into `pn` (`nr` vectors per
/// group of 4 bytes, as unsigned `w ^ 0x80`, zero past `k` and past `cols`) and writes their sums
/// `Σ_t w(j, t)` (wrapping) into `cs[..16·nr]`: 64 bytes of 16 rows at a time, transposed as 16 ×
/// 16 dwords; the sums from the packed vectors with `vpdpbusd` (lanes are columns).
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn pack_nt(w: &[i8], k: usize, j0: usize, cols: usize, nr: usize, pn: &mut [u8], cs: &mut [i32]) {
    let k4 = k.div_ceil(4);
    assert!(w.len() >= (j0 + cols) * k && cols <= nr * 16 && cs.len() >= nr * 16);
    assert!(pn.len() >= k4 * nr * 64);
    let (wp, pp) = (w.as_ptr(), pn.as_mut_ptr());
    let ones = _mm512_set1_epi8(1);
    let x80 = _mm512_set1_epi8(-128);
    for v in 0..nr {
        let mut sum = _mm512_setzero_si512();
        let mut b0 = 0;
        while b0 < k {
            let len = (k - b0).min(64);
            let mask: __mmask64 = if len == 64 { !0 } else { (1u64 << len) - 1 };
            let xc = _mm512_maskz_mov_epi8(mask, x80);
            let rows: [__m512i; 16] = core::array::from_fn(|i| {
                let c = 16 * v + i;
                if c < cols {
                    // SAFETY: the unmasked bytes `(j0 + c)·k + b0 .. + len` lie in row `j0 + c`
                    // of `w` (asserted above); masked-off bytes are not read.
                    let r = unsafe { _mm512_maskz_loadu_epi8(mask, wp.add((j0 + c) * k + b0)) };
                    _mm512_xor_si512(r, xc)
                } else {
                    _mm512_setzero_si512()
                }
            });
            let t = transpose16(rows);
            let q0 = b0 / 4;
            for (j, tv) in t.iter().enumerate().take(len.div_ceil(4)) {
                // SAFETY: group `q0 + j < k4`, vector `v < nr`: inside `pn` (asserted above).
                unsafe {
                    _mm512_storeu_si512(pp.add(((q0 + j) * nr + v) * 64) as *mut __m512i, *tv)
                };
                sum = _mm512_dpbusd_epi32(sum, *tv, ones);
            }
            b0 += 64;
        }
        store_sums(sum, k, &mut cs[16 * v..16 * v + 16]);
    }
}

/// `cs[..16] = Σ w' − 128·k` per lane: the sums of the signed values from those of `w' = w + 128`
/// (wrapping).
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
fn store_sums(sum: __m512i, k: usize, cs: &mut [i32]) {
    let s = _mm512_sub_epi32(sum, _mm512_set1_epi32((k as i32).wrapping_mul(128)));
    let cs = &mut cs[..16];
    // SAFETY: `cs` holds 16 values.
    unsafe { _mm512_storeu_si512(cs.as_mut_ptr() as *mut __m512i, s) };
}

/// The 16 × 16 transpose of 32-bit lanes: lane `i` of result `j` is lane `j` of `r[i]`.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
fn transpose16(r: [__m512i; 16]) -> [__m512i; 16] {
    // Per 128-bit lane L: `t[2p] = [r2p[4L], r2p+1[4L], r2p[4L+1], r2p+1[4L+1]]`,
    // `t[2p+1]` the same for `4L+2`, `4L+3`.
    let t: [__m512i; 16] = core::array::from_fn(|i| {
        let (a, b) = (r[i & !1], r[i | 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_epi32(a, b)
        } else {
            _mm512_unpackhi_epi32(a, b)
        }
    });
    // `u[4g + e]`, per 128-bit lane L: rows `4g..4g + 4` at lane `4L + e`.
    let u: [__m512i; 16] = core::array::from_fn(|i| {
        let (g, e) = (i / 4, i % 4);
        let (a, b) = (t[4 * g + e / 2], t[4 * g + 2 + e / 2]);
        if e % 2 == 0 {
            _mm512_unpacklo_epi64(a, b)
        } else {
            _mm512_unpackhi_epi64(a, b)
        }
    });
    let mut out = [_mm512_setzero_si512(); 16];
    for e in 0..4 {
        let (a, b, c, d) = (u[e], u[4 + e], u[8 + e], u[12 + e]);
        let v0 = _mm512_shuffle_i32x4::<0x44>(a, b);
        let v1 = _mm512_shuffle_i32x4::<0xEE>(a, b);
        let v2 = _mm512_shuffle_i32x4::<0x44>(c, d);
        let v3 = _mm512_shuffle_i32x4::<0xEE>(c, d);
        out[e] = _mm512_shuffle_i32x4::<0x88>(v0, v2);
        out[4 + e] = _mm512_shuffle_i32x4::<0xDD>(v0, v2);
        out[8 + e] = _mm512_shuffle_i32x4::<0x88>(v1, v3);
        out[12 + e] = _mm512_shuffle_i32x4::<0xDD>(v1, v3);
    }
    out
}

/// Packs columns `j0..j0 + cols` of `b` (`[k, n]`) into `pn` like [`pack_nt`] (4 rows of 16 bytes
/// interleaved per vector), sums into `cs[..16·nr]`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn pack_nn(
    b: &[i8],
    n: usize,
    k: usize,
    j0: usize,
    cols: usize,
    nr: usize,
    pn: &mut [u8],
    cs: &mut [i32],
) {
    let k4 = k.div_ceil(4);
    assert!(b.len() >= k * n && j0 + cols <= n && cols <= nr * 16 && cs.len() >= nr * 16);
    assert!(pn.len() >= k4 * nr * 64);
    let (bp, pp) = (b.as_ptr(), pn.as_mut_ptr());
    let ones = _mm512_set1_epi8(1);
    for v in 0..nr {
        let c0 = j0 + 16 * v;
        let cn = (cols - 16 * v).min(16);
        let mask: __mmask16 = if cn == 16 { !0 } else { (1u16 << cn) - 1 };
        let xc = _mm_maskz_mov_epi8(mask, _mm_set1_epi8(-128));
        let mut sum = _mm512_setzero_si512();
        for q in 0..k4 {
            let r: [__m128i; 4] = core::array::from_fn(|e| {
                let t = 4 * q + e;
                if t < k {
                    // SAFETY: the unmasked bytes `t·n + c0 .. + cn` lie in row `t` of `b`
                    // (`c0 + cn <= j0 + cols <= n`); masked-off bytes are not read.
                    let x = unsafe { _mm_maskz_loadu_epi8(mask, bp.add(t * n + c0)) };
                    _mm_xor_si128(x, xc)
                } else {
                    _mm_setzero_si128()
                }
            });
            let a = _mm_unpacklo_epi8(r[0], r[1]);
            let bb = _mm_unpackhi_epi8(r[0], r[1]);
            let c = _mm_unpacklo_epi8(r[2], r[3]);
            let d = _mm_unpackhi_epi8(r[2], r[3]);
            let z = _mm512_castsi128_si512(_mm_unpacklo_epi16(a, c));
            let z = _mm512_inserti32x4::<1>(z, _mm_unpackhi_epi16(a, c));
            let z = _mm512_inserti32x4::<2>(z, _mm_unpacklo_epi16(bb, d));
            let z = _mm512_inserti32x4::<3>(z, _mm_unpackhi_epi16(bb, d));
            // SAFETY: group `q < k4`, vector `v < nr`: inside `pn` (asserted above).
            unsafe { _mm512_storeu_si512(pp.add((q * nr + v) * 64) as *mut __m512i, z) };
            sum = _mm512_dpbusd_epi32(sum, z, ones);
        }
        store_sums(sum, k, &mut cs[16 * v..16 * v + 16]);
    }
}

/// `Σ row` (wrapping) with `vpdpbusd` against ones, 64 bytes at a time.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn row_sum(row: &[i8]) -> i32 {
    let ones = _mm512_set1_epi8(1);
    let mut acc = _mm512_setzero_si512();
    let mut b0 = 0;
    while b0 < row.len() {
        let len = (row.len() - b0).min(64);
        let mask: __mmask64 = if len == 64 { !0 } else { (1u64 << len) - 1 };
        // SAFETY: the unmasked bytes `b0..b0 + len` lie in `row`; masked-off bytes are not read.
        let v = unsafe { _mm512_maskz_loadu_epi8(mask, row.as_ptr().add(b0)) };
        acc = _mm512_dpbusd_epi32(acc, ones, v);
        b0 += 64;
    }
    _mm512_reduce_add_epi32(acc)
}

/// A register tile: rows `xt` (`R` rows of `k`) × the `V` vectors of the panel `pn`, corrected by
/// the row terms `rt` and the column terms, requantized and stored at `o[r·n + 16v..]` (the
/// columns `< cols` only).
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn tile<const R: usize, const V: usize>(
    xt: &[i8],
    k: usize,
    pn: &[u8],
    rt: &[i32],
    cv: &ColVecs<'_>,
    fin: &Fin,
    o: &mut [i8],
    n: usize,
) {
    let kf = k / 4;
    let rem = k % 4;
    assert!(xt.len() >= R * k && pn.len() >= k.div_ceil(4) * V * 64 && rt.len() >= R);
    assert!(cv.cols > (V - 1) * 16 && o.len() >= (R - 1) * n + cv.cols);
    let (xp, pp) = (xt.as_ptr(), pn.as_ptr());
    let mut acc = [[_mm512_setzero_si512(); V]; R];
    for q in 0..kf {
        // SAFETY: `q < kf`: the panel reads `pp[(q·V + v)·64..][..64]` (`v < V`) and the row reads
        // `xp[r·k + 4q..][..4]` (`r < R`, `4q + 4 <= k`) lie inside the lengths asserted above.
        unsafe {
            let mut wv = [_mm512_setzero_si512(); V];
            for (v, wr) in wv.iter_mut().enumerate() {
                *wr = _mm512_loadu_si512(pp.add((q * V + v) * 64) as *const __m512i);
            }
            for (r, a) in acc.iter_mut().enumerate() {
                let xb = _mm512_set1_epi32((xp.add(r * k + 4 * q) as *const i32).read_unaligned());
                for (av, &wr) in a.iter_mut().zip(&wv) {
                    *av = _mm512_dpbusd_epi32(*av, wr, xb);
                }
            }
        }
    }
    if rem != 0 {
        // SAFETY: group `kf < k4` of the panel (`V` vectors) lies inside `pn` (asserted above).
        let wv: [__m512i; V] = core::array::from_fn(|v| unsafe {
            _mm512_loadu_si512(pp.add((kf * V + v) * 64) as *const __m512i)
        });
        for (r, a) in acc.iter_mut().enumerate() {
            let mut b = [0u8; 4];
            for (e, d) in b.iter_mut().enumerate().take(rem) {
                *d = xt[r * k + 4 * kf + e] as u8;
            }
            let xb = _mm512_set1_epi32(i32::from_le_bytes(b));
            for (av, &wr) in a.iter_mut().zip(&wv) {
                *av = _mm512_dpbusd_epi32(*av, wr, xb);
            }
        }
    }
    let zp = _mm512_set1_epi32(fin.zero_point);
    let (lo, hi) = (_mm512_set1_epi32(fin.min), _mm512_set1_epi32(fin.max));
    let rtv: [__m512i; R] = core::array::from_fn(|r| _mm512_set1_epi32(rt[r]));
    for v in 0..V {
        // SAFETY: `16v + 16 <= 64` values of each array.
        let (cc, mm, ss) = unsafe {
            (
                _mm512_loadu_si512(cv.cc.as_ptr().add(16 * v) as *const __m512i),
                _mm512_loadu_si512(cv.mm.as_ptr().add(16 * v) as *const __m512i),
                _mm512_loadu_si512(cv.ss.as_ptr().add(16 * v) as *const __m512i),
            )
        };
        // The columns' multiplier and shift, prepared once for the tile's rows.
        let rq = Requant16::new(mm, ss);
        let cnt = (cv.cols - 16 * v).min(16);
        let mask: __mmask16 = if cnt == 16 { !0 } else { (1u16 << cnt) - 1 };
        for (r, a) in acc.iter().enumerate() {
            let s = _mm512_sub_epi32(a[v], _mm512_add_epi32(cc, rtv[r]));
            let y = rq.apply(s, zp, lo, hi);
            let d = &mut o[r * n + 16 * v..r * n + 16 * v + cnt];
            // SAFETY: the mask writes the first `cnt` bytes at `d`, which holds `cnt`.
            unsafe { _mm_mask_storeu_epi8(d.as_mut_ptr(), mask, _mm512_cvtepi32_epi8(y)) };
        }
    }
}

/// [`crate::arch::x86::requantize8_avx2`] on 16 lanes: `clamp(requantize(acc, m, s) + zp, lo,
/// hi)` per lane, bit-exact to [`crate::quant::requantize_to_i8`] (the result of the fixed-point
/// step is clamped to `±2³⁰` instead of the `i32` range: the same after the final clamp).
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
fn requantize16(
    acc: __m512i,
    multiplier: __m512i,
    shift: __m512i,
    zp: __m512i,
    lo: __m512i,
    hi: __m512i,
) -> __m512i {
    Requant16::new(multiplier, shift).apply(acc, zp, lo, hi)
}

/// The per-lane constants of [`requantize16`] for 16 columns, split into the even and odd
/// 32-bit lanes (each in the low half of a 64-bit lane): the multiplier, the total right shift
/// `31 − shift` (clamped to 1..=62) and its rounding term `2^(total − 1)`. A register tile
/// prepares them once per column vector and applies them to each of its rows.
#[derive(Clone, Copy)]
struct Requant16 {
    m_even: __m512i,
    m_odd: __m512i,
    t_even: __m512i,
    t_odd: __m512i,
    round_even: __m512i,
    round_odd: __m512i,
}

impl Requant16 {
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
    fn new(multiplier: __m512i, shift: __m512i) -> Self {
        let total = _mm512_min_epi32(
            _mm512_max_epi32(
                _mm512_sub_epi32(_mm512_set1_epi32(31), shift),
                _mm512_set1_epi32(1),
            ),
            _mm512_set1_epi32(62),
        );
        let one = _mm512_set1_epi64(1);
        let t_even = _mm512_and_si512(total, _mm512_set1_epi64(0xFFFF_FFFF));
        let t_odd = _mm512_srli_epi64::<32>(total);
        Self {
            m_even: multiplier,
            m_odd: _mm512_srli_epi64::<32>(multiplier),
            t_even,
            t_odd,
            round_even: _mm512_sllv_epi64(one, _mm512_sub_epi64(t_even, one)),
            round_odd: _mm512_sllv_epi64(one, _mm512_sub_epi64(t_odd, one)),
        }
    }

    /// `clamp(requantize(acc) + zp, lo, hi)` per lane.
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
    fn apply(&self, acc: __m512i, zp: __m512i, lo: __m512i, hi: __m512i) -> __m512i {
        let hi_lim = _mm512_set1_epi64(1 << 30);
        let lo_lim = _mm512_set1_epi64(-(1 << 30));
        // `vpmuldq` reads the low 32 bits of each 64-bit lane (sign-extended).
        let even = _mm512_srav_epi64(
            _mm512_add_epi64(_mm512_mul_epi32(acc, self.m_even), self.round_even),
            self.t_even,
        );
        let odd = _mm512_srav_epi64(
            _mm512_add_epi64(
                _mm512_mul_epi32(_mm512_srli_epi64::<32>(acc), self.m_odd),
                self.round_odd,
            ),
            self.t_odd,
        );
        let even = _mm512_max_epi64(_mm512_min_epi64(even, hi_lim), lo_lim);
        let odd = _mm512_max_epi64(_mm512_min_epi64(odd, hi_lim), lo_lim);
        // Each 64-bit lane holds a value in [-2^30, 2^30]: its low 32 bits are the i32.
        let v = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64::<32>(odd));
        let v = _mm512_add_epi32(v, zp);
        _mm512_min_epi32(_mm512_max_epi32(v, lo), hi)
    }
}

/// [`gemm`] for few rows of `x` against `w` as `[n, k]` rows (FullyConnected with batch 1-3),
/// without packing: dot products of each row of `x` (stored as unsigned `u = x + 128`,
/// `x ^ 0x80`, zero past `k`) with 8 rows of `w` at a time, 64 bytes per `vpdpbusd`, loaded
/// straight from the weights (masked past `k`). With `Σ` over `t < k`, modulo 2³²:
/// `Σ (x − zx)·w = Σ u·w − (128 + zx)·Σ w`; `Σ w` accumulates beside (`vpdpbusd` with ones on the
/// same loads). The 8 accumulators (16 lanes each) are reduced with unpacks and 128-bit shuffles
/// into one vector of 8 sums, two of which are requantized together as in [`gemm`]. Only for
/// `zw = 0`. Returns `false` (and writes nothing) when `k` is 0 or above [`MAX_K`].
///
/// Panics (before writing) unless `x.len() >= m·k`, `w.len() >= n·k`, `out.len() >= m·n` and the
/// epilogue's slices hold `n` values (or one multiplier and shift).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemv(
    cpu: Avx512Vnni,
    m: usize,
    n: usize,
    k: usize,
    x: &[i8],
    zx: i32,
    w: &[i8],
    epi: &Epilogue<'_>,
    out: &mut [i8],
) -> bool {
    let _ = cpu;
    // SAFETY: the token proves the instructions.
    unsafe { gemv_impl(m, n, k, x, zx, w, epi, out) }
}

/// [`gemv`] without the token.
///
/// # Safety
/// The CPU must support AVX2 and AVX512-F/BW/VL/VNNI.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn gemv_impl(
    m: usize,
    n: usize,
    k: usize,
    x: &[i8],
    zx: i32,
    w: &[i8],
    epi: &Epilogue<'_>,
    out: &mut [i8],
) -> bool {
    if k == 0 || k > MAX_K {
        return false;
    }
    if m == 0 || n == 0 {
        return true;
    }
    assert!(x.len() >= m * k && w.len() >= n * k && out.len() >= m * n);
    assert!(epi.bias.is_none_or(|b| b.len() >= n));
    let per_tensor = epi.per_tensor();
    assert!(per_tensor || (epi.multiplier.len() >= n && epi.shift.len() >= n));
    let chunks = k.div_ceil(64);
    let last_mask: __mmask64 = if k.is_multiple_of(64) {
        !0
    } else {
        (1u64 << (k % 64)) - 1
    };
    let mask_of = |ch: usize| if ch + 1 == chunks { last_mask } else { !0 };
    let ones = _mm512_set1_epi8(1);
    let c128 = _mm512_set1_epi32(128i32.wrapping_add(zx));
    let x80 = _mm512_set1_epi8(-128);
    let zp = _mm512_set1_epi32(epi.zero_point);
    let (lo, hi) = (
        _mm512_set1_epi32(epi.min as i32),
        _mm512_set1_epi32(epi.max as i32),
    );
    let wp = w.as_ptr();
    let mut ub = [_mm512_setzero_si512(); MAX_K / 64];
    for i in 0..m {
        let row = &x[i * k..(i + 1) * k];
        for (ch, u) in ub.iter_mut().enumerate().take(chunks) {
            let mask = mask_of(ch);
            // SAFETY: the unmasked bytes `64ch .. 64ch + len` lie in `row`.
            let v = unsafe { _mm512_maskz_loadu_epi8(mask, row.as_ptr().add(64 * ch)) };
            *u = _mm512_xor_si512(v, _mm512_maskz_mov_epi8(mask, x80));
        }
        let mut j = 0;
        while j < n {
            let mut half = [_mm256_setzero_si256(); 2];
            for (h, hs) in half.iter_mut().enumerate() {
                let j8 = j + 8 * h;
                if j8 >= n {
                    break;
                }
                let live = (n - j8).min(8);
                let mut p = [_mm512_setzero_si512(); 8];
                let mut s = [_mm512_setzero_si512(); 8];
                for (ch, &u) in ub.iter().enumerate().take(chunks) {
                    let mask = mask_of(ch);
                    for c in 0..live {
                        // SAFETY: the unmasked bytes of row `j8 + c < n` of `w`, `64ch .. 64ch +
                        // len <= k`, lie inside `w` (`w.len() >= n·k`).
                        let wv = unsafe {
                            _mm512_maskz_loadu_epi8(mask, wp.add((j8 + c) * k + 64 * ch))
                        };
                        p[c] = _mm512_dpbusd_epi32(p[c], u, wv);
                        s[c] = _mm512_dpbusd_epi32(s[c], ones, wv);
                    }
                }
                let t: [__m512i; 8] = core::array::from_fn(|c| {
                    _mm512_sub_epi32(p[c], _mm512_mullo_epi32(s[c], c128))
                });
                *hs = reduce8(t);
            }
            let sum = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(half[0]), half[1]);
            let cnt = (n - j).min(16);
            let mask: __mmask16 = if cnt == 16 { !0 } else { (1u16 << cnt) - 1 };
            // SAFETY (the loads): the unmasked lanes read `j..j + cnt` of slices holding `n`.
            let acc = match epi.bias {
                Some(b) => _mm512_add_epi32(sum, unsafe {
                    _mm512_maskz_loadu_epi32(mask, b[j..j + cnt].as_ptr())
                }),
                None => sum,
            };
            let (mm, ss) = if per_tensor {
                (
                    _mm512_set1_epi32(epi.multiplier[0]),
                    _mm512_set1_epi32(epi.shift[0]),
                )
            } else {
                // SAFETY: as above.
                unsafe {
                    (
                        _mm512_maskz_loadu_epi32(mask, epi.multiplier[j..j + cnt].as_ptr()),
                        _mm512_maskz_loadu_epi32(mask, epi.shift[j..j + cnt].as_ptr()),
                    )
                }
            };
            let y = requantize16(acc, mm, ss, zp, lo, hi);
            let d = &mut out[i * n + j..i * n + j + cnt];
            // SAFETY: the mask writes the first `cnt` bytes at `d`, which holds `cnt`.
            unsafe { _mm_mask_storeu_epi8(d.as_mut_ptr(), mask, _mm512_cvtepi32_epi8(y)) };
            j += 16;
        }
    }
    true
}

/// The lane sums (wrapping) of 8 vectors, in order, as one 256-bit vector.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
fn reduce8(t: [__m512i; 8]) -> __m256i {
    // Per 128-bit lane: positions 0, 2 hold partial sums of `t[2p]`, 1, 3 of `t[2p + 1]`.
    let x: [__m512i; 4] = core::array::from_fn(|q| {
        let (a, b) = (t[2 * q], t[2 * q + 1]);
        _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b))
    });
    // Per 128-bit lane: partial sums of `t[4q..4q + 4]`, in order.
    let y: [__m512i; 2] = core::array::from_fn(|q| {
        let (c, d) = (x[2 * q], x[2 * q + 1]);
        _mm512_add_epi32(_mm512_unpacklo_epi64(c, d), _mm512_unpackhi_epi64(c, d))
    });
    let s = _mm512_add_epi32(
        _mm512_shuffle_i32x4::<0x44>(y[0], y[1]),
        _mm512_shuffle_i32x4::<0xEE>(y[0], y[1]),
    );
    let r = _mm512_add_epi32(
        _mm512_shuffle_i32x4::<0x88>(s, s),
        _mm512_shuffle_i32x4::<0xDD>(s, s),
    );
    _mm512_castsi512_si256(r)
}
