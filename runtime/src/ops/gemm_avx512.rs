//! AVX-512 VNNI int8 matrix product over packed column panels, shared by the FullyConnected and
//! BatchMatMul kernels on CPUs with AVX512-F/BW/VL/VNNI:
//! `out[i][j] = requantize(bias[j] + Σ_t (x[i][t] − zx)·(w(j, t) − zw))`.
//!
//! The right-hand operand (`w`, `[n, k]` rows or `[k, n]`) is packed per call, a block of up to
//! 64 columns at a time, into a panel of 4-byte groups: vector `(q, v)` of the panel (64 bytes)
//! holds `w(j, 4q..4q + 4)` for the 16 columns `j` of vector `v`, stored as unsigned
//! `w' = w + 128` (`w ^ 0x80`; zero past `k`). A register tile of up to 6 rows × 4 vectors (64
//! columns) broadcasts 4 bytes of each row of `x` (signed, straight from the input) and
//! accumulates `vpdpbusd(w', x)` in 24 independent 32-bit accumulators: every lane is one output,
//! so there is no horizontal reduction and the requantization (16 lanes at a time) reads the
//! accumulators directly.
//!
//! With `Σ` over `t < k`, all modulo 2³²:
//! `Σ (x − zx)(w − zw) = Σ x·w' − (128 + zw)·Σ x − zx·(Σ w − k·zw)`, so each sum is corrected by
//! a per-row term (`Σ x`, 16 rows at a time) and a per-column term (`Σ w` while packing; the
//! bias is folded into it); both enter as the accumulators' starting values. Every product
//! `w'·x` is exact in `vpdpbusd` and all sums wrap like the reference's, so each accumulator
//! equals the reference's modulo 2³²; the requantization ([`Requant16`], its constants prepared
//! once per panel) works in 64-bit lanes and narrows with signed saturation, bit-exact to
//! [`crate::quant::requantize_to_i8`]; where every column of a panel allows it (zero point folded
//! into the rounding term, total right shift at least 33: the usual FullyConnected scales), the
//! tiles use its 32-bit form instead ([`Requant16Hi`]: the products' high halves, one 32-bit
//! add and shift) and narrow a row's 64 outputs together ([`narrow4`]), equally exact. Nothing
//! is allocated (about 36 KiB of stack).

// Without `std` nothing detects the CPU, so no token exists and the entries are unused.
#![cfg_attr(not(any(test, feature = "std")), allow(dead_code))]

use core::arch::x86_64::*;
use core::mem::MaybeUninit;

use super::gemm_avx2::{filled, Epilogue};

/// Bytes of the packed panel on the stack.
const PANEL: usize = 32768;
/// Longest row (`k`) handled: one 16-column vector of 4-byte groups fills [`PANEL`].
pub(crate) const MAX_K: usize = PANEL / 16;
/// Rows per register tile: 6 rows × 4 vectors are 24 accumulators, with the 4 weight vectors
/// and a broadcast row 29 of the 32 vector registers.
const MR: usize = 6;
/// Most 16-column vectors per register tile (and per panel).
const NR: usize = 4;
/// Fewest rows for which a panel prepares the 32-bit requantization ([`Requant16Hi`]): below,
/// preparing it costs more than it saves (single-row decode steps).
const HI32_MIN_ROWS: usize = 4;
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
        min: epi.min,
        max: epi.max,
    };
    let mut i0 = 0;
    while i0 < m {
        let rows = M_CHUNK.min(m - i0);
        let rs = filled(&mut rs_buf, rows, 0);
        row_sums(&x[i0 * k..(i0 + rows) * k], k, c128, rs);
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
            let pe = PanelEpi::new(epi, per_tensor, zx, kzw, &fin, &cs, j0, cols, rows);
            panel_rows(
                &x[i0 * k..(i0 + rows) * k],
                k,
                pn,
                nr,
                rs,
                &pe,
                &mut out[i0 * n + j0..],
                n,
            );
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
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
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
        min: epi.min,
        max: epi.max,
    };
    // The column terms are the accumulators' starting values: `PanelEpi::new` with them as the
    // bias and no zero-point correction (`zx = 0`, column sums 0).
    let with_terms = Epilogue {
        bias: Some(ct),
        multiplier: epi.multiplier,
        shift: epi.shift,
        zero_point: epi.zero_point,
        min: epi.min,
        max: epi.max,
    };
    let no_sums = [0i32; NR * 16];
    let mut i0 = 0;
    while i0 < m {
        let rows = M_CHUNK.min(m - i0);
        let rs = filled(&mut rs_buf, rows, 0);
        row_sums(&x[i0 * k..(i0 + rows) * k], k, 128, rs);
        let mut j0 = 0;
        while j0 < n {
            let cols = (NR * 16).min(n - j0);
            let nr = cols.div_ceil(16);
            let pn = &panels[j0 * k4 * 4..j0 * k4 * 4 + k4 * 64 * nr];
            let pe = PanelEpi::new(
                &with_terms,
                per_tensor,
                0,
                0,
                &fin,
                &no_sums,
                j0,
                cols,
                rows,
            );
            panel_rows(
                &x[i0 * k..(i0 + rows) * k],
                k,
                pn,
                nr,
                rs,
                &pe,
                &mut out[i0 * n + j0..],
                n,
            );
            j0 += cols;
        }
        i0 += rows;
    }
    true
}

/// Output zero point and clamp.
struct Fin {
    zero_point: i32,
    min: i8,
    max: i8,
}

/// The epilogue's constants for the columns of one panel, prepared once per panel and read by
/// every register tile over it: per 16-column vector `v`, the accumulators' starting value before
/// the row term (`bias − zx·(Σ w − k·zw)`, so that no correction is left for the epilogue) and
/// the requantization constants ([`Requant16`]); how many columns are real; and, when every
/// vector's requantization has a 32-bit form ([`Requant16Hi`]), those forms and the clamp as 64
/// bytes.
struct PanelEpi {
    ncc: [__m512i; NR],
    rq: [Requant16; NR],
    cols: usize,
    /// The 32-bit forms, when the tiles requantize through them and [`narrow4`].
    hi32: Option<Hi32Epi>,
}

/// A panel's 32-bit requantization: per vector its [`Requant16Hi`], and the clamp as 64 bytes.
struct Hi32Epi {
    rh: [Requant16Hi; NR],
    /// The clamp's lower bound in every byte.
    lo: __m512i,
    /// The clamp's upper bound in every byte.
    hi: __m512i,
}

impl PanelEpi {
    /// The constants of columns `j0..j0 + cols` (`cols <= 16·NR`), whose sums `Σ_t w(j, t)` are
    /// `cs[j − j0]`, 16 columns at a time, for `rows` rows (the 32-bit form only from
    /// [`HI32_MIN_ROWS`]). Panics unless the epilogue's slices hold `j0 + cols`
    /// values (or one multiplier and shift when `per_tensor`).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    fn new(
        epi: &Epilogue<'_>,
        per_tensor: bool,
        zx: i32,
        kzw: i32,
        fin: &Fin,
        cs: &[i32; NR * 16],
        j0: usize,
        cols: usize,
        rows: usize,
    ) -> Self {
        assert!(cols <= NR * 16);
        assert!(epi.bias.is_none_or(|b| b.len() >= j0 + cols));
        assert!(per_tensor || (epi.multiplier.len() >= j0 + cols && epi.shift.len() >= j0 + cols));
        let zxv = _mm512_set1_epi32(zx);
        let kzwv = _mm512_set1_epi32(kzw);
        let (m1, s1) = (
            _mm512_set1_epi32(epi.multiplier[0]),
            _mm512_set1_epi32(epi.shift[0]),
        );
        let mut ncc = [_mm512_setzero_si512(); NR];
        let mut rq = [Requant16::new(m1, s1, fin); NR];
        for v in 0..cols.div_ceil(16) {
            let (c0, cnt) = (16 * v, (cols - 16 * v).min(16));
            let mask: __mmask16 = if cnt == 16 { !0 } else { (1u16 << cnt) - 1 };
            let j = j0 + c0;
            // SAFETY: `c0 + 16 <= 16·NR` values of `cs`; the unmasked lanes of the other loads read
            // `j..j + cnt` of slices holding `j0 + cols` (asserted above).
            unsafe {
                let sw = _mm512_loadu_si512(cs.as_ptr().add(c0) as *const __m512i);
                let zc = _mm512_mullo_epi32(zxv, _mm512_sub_epi32(sw, kzwv));
                let bias = match epi.bias {
                    Some(b) => _mm512_maskz_loadu_epi32(mask, b[j..j + cnt].as_ptr()),
                    None => _mm512_setzero_si512(),
                };
                ncc[v] = _mm512_sub_epi32(bias, zc);
                if !per_tensor {
                    // Lanes past `cnt` (never stored) get multiplier 0 and shift −2 (`t = 33`),
                    // so that they do not keep the panel off the 32-bit form.
                    rq[v] = Requant16::new(
                        _mm512_maskz_loadu_epi32(mask, epi.multiplier[j..j + cnt].as_ptr()),
                        _mm512_mask_loadu_epi32(
                            _mm512_set1_epi32(-2),
                            mask,
                            epi.shift[j..j + cnt].as_ptr(),
                        ),
                        fin,
                    );
                }
            }
        }
        let nv = cols.div_ceil(16);
        // Every lane of the vectors: real columns, or the padding lanes' (above).
        let hi32 = (rows >= HI32_MIN_ROWS && Requant16Hi::allowed(&rq[..nv])).then(|| Hi32Epi {
            // Vectors past `nv` are never read: any constants.
            rh: core::array::from_fn(|v| Requant16Hi::from(&rq[v.min(nv - 1)])),
            lo: _mm512_set1_epi8(fin.min),
            hi: _mm512_set1_epi8(fin.max),
        });
        Self {
            ncc,
            rq,
            cols,
            hi32,
        }
    }
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

/// The 16 × 16 transpose of 32-bit lanes: lane `i` of result `j` is lane `j` of `r[i]` (AVX512F
/// instructions only; the f32 FullyConnected packs its panels with it too).
#[inline]
#[target_feature(enable = "avx2,avx512f")]
pub(crate) fn transpose16(r: [__m512i; 16]) -> [__m512i; 16] {
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

/// `rs[r] = c·Σ_t x[r·k + t]` (wrapping) for the `rs.len()` rows of `x` (rows of `k`), 16 rows
/// at a time: `vpdpbusd` against ones, 64 bytes at a time, into one accumulator per row, then one
/// transposing reduction of the 16 accumulators ([`reduce16`]) and one multiplication.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub(crate) fn row_sums(x: &[i8], k: usize, c: i32, rs: &mut [i32]) {
    let rows = rs.len();
    assert!(x.len() >= rows * k);
    let ones = _mm512_set1_epi8(1);
    let cv = _mm512_set1_epi32(c);
    let xp = x.as_ptr();
    let mut i = 0;
    while i < rows {
        let nr = (rows - i).min(16);
        let mut acc = [_mm512_setzero_si512(); 16];
        let mut b0 = 0;
        while b0 < k {
            let len = (k - b0).min(64);
            let mask: __mmask64 = if len == 64 { !0 } else { (1u64 << len) - 1 };
            // A fixed count of rows where possible: the accumulators stay in registers.
            macro_rules! rows {
                ($count:expr) => {
                    for (r, a) in acc.iter_mut().enumerate().take($count) {
                        // SAFETY: the unmasked bytes `(i + r)·k + b0 .. + len` lie in row
                        // `i + r < rows` of `x` (asserted above); masked-off bytes are not read.
                        let v = unsafe { _mm512_maskz_loadu_epi8(mask, xp.add((i + r) * k + b0)) };
                        *a = _mm512_dpbusd_epi32(*a, ones, v);
                    }
                };
            }
            if nr == 16 {
                rows!(16)
            } else {
                rows!(nr)
            }
            b0 += 64;
        }
        let s = _mm512_mullo_epi32(reduce16(acc), cv);
        let mask: __mmask16 = if nr == 16 { !0 } else { (1u16 << nr) - 1 };
        // SAFETY: the mask writes the first `nr <= rows − i` values of `rs[i..]`.
        unsafe { _mm512_mask_storeu_epi32(rs.as_mut_ptr().add(i), mask, s) };
        i += nr;
    }
}

/// The lane sums (wrapping) of 16 vectors, in order: lane `i` is the sum of the lanes of `t[i]`.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
fn reduce16(t: [__m512i; 16]) -> __m512i {
    // Per 128-bit lane: positions 0, 2 hold partial sums of `t[2p]`, 1, 3 of `t[2p + 1]`.
    let x: [__m512i; 8] = core::array::from_fn(|q| {
        let (a, b) = (t[2 * q], t[2 * q + 1]);
        _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b))
    });
    // Per 128-bit lane: partial sums of `t[4q..4q + 4]`, in order.
    let y: [__m512i; 4] = core::array::from_fn(|q| {
        let (c, d) = (x[2 * q], x[2 * q + 1]);
        _mm512_add_epi32(_mm512_unpacklo_epi64(c, d), _mm512_unpackhi_epi64(c, d))
    });
    // 128-bit lanes: `y[2h]` (lanes 0 + 2, 1 + 3), then `y[2h + 1]` (the same).
    let s: [__m512i; 2] = core::array::from_fn(|h| {
        let (a, b) = (y[2 * h], y[2 * h + 1]);
        _mm512_add_epi32(
            _mm512_shuffle_i32x4::<0x44>(a, b),
            _mm512_shuffle_i32x4::<0xEE>(a, b),
        )
    });
    // 128-bit lane `q`: the totals of `t[4q..4q + 4]`.
    _mm512_add_epi32(
        _mm512_shuffle_i32x4::<0x88>(s[0], s[1]),
        _mm512_shuffle_i32x4::<0xDD>(s[0], s[1]),
    )
}

/// Every register tile of one panel: the rows of `x` (`rs.len()` rows of `k`, with row terms
/// `rs`) × the `nr` vectors of the panel `pn`, in tiles of up to [`MR`] rows, stored from
/// `out[0]` with row stride `n`.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
fn panel_rows(
    x: &[i8],
    k: usize,
    pn: &[u8],
    nr: usize,
    rs: &[i32],
    pe: &PanelEpi,
    out: &mut [i8],
    n: usize,
) {
    let rows = rs.len();
    let mut i = 0;
    while i < rows {
        let r = MR.min(rows - i);
        let xt = &x[i * k..(i + r) * k];
        let rt = &rs[i..i + r];
        let o = &mut out[i * n..];
        macro_rules! go {
            ($($r:literal, $v:literal);*) => {
                match (r, nr) {
                    $( ($r, $v) => tile::<$r, $v>(xt, k, pn, rt, pe, o, n), )*
                    _ => unreachable!(),
                }
            };
        }
        go!(6, 4; 6, 3; 6, 2; 6, 1; 5, 4; 5, 3; 5, 2; 5, 1;
            4, 4; 4, 3; 4, 2; 4, 1; 3, 4; 3, 3; 3, 2; 3, 1;
            2, 4; 2, 3; 2, 2; 2, 1; 1, 4; 1, 3; 1, 2; 1, 1);
        i += r;
    }
}

/// A register tile: rows `xt` (`R` rows of `k`) × the `V` vectors of the panel `pn`, started from
/// the column terms of `pe` less the row terms `rt`, requantized and stored at `o[r·n + 16v..]`
/// (the columns `< pe.cols` only).
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn tile<const R: usize, const V: usize>(
    xt: &[i8],
    k: usize,
    pn: &[u8],
    rt: &[i32],
    pe: &PanelEpi,
    o: &mut [i8],
    n: usize,
) {
    assert!(xt.len() >= R * k && pn.len() >= k.div_ceil(4) * V * 64 && rt.len() >= R);
    assert!(V <= NR && pe.cols > (V - 1) * 16 && o.len() >= (R - 1) * n + pe.cols);
    // The corrections enter as the starting values: `bias − zx·(Σ w − k·zw) − (128 + zw)·Σ x`.
    let mut acc: [[__m512i; V]; R] = core::array::from_fn(|r| {
        let rv = _mm512_set1_epi32(rt[r]);
        core::array::from_fn(|v| _mm512_sub_epi32(pe.ncc[v], rv))
    });
    // SAFETY: AVX512-F/VNNI are enabled here; the lengths of `xt` and `pn` are asserted above.
    unsafe { accumulate(&mut acc, xt, k, pn) };
    let op = o.as_mut_ptr();
    if let Some(h) = &pe.hi32 {
        // Row by row: the `V` vectors requantized in 32-bit lanes, narrowed together, one store
        // of the row's `cols <= 64` bytes.
        let cmask: __mmask64 = if pe.cols >= 64 {
            !0
        } else {
            (1u64 << pe.cols) - 1
        };
        for (r, a) in acc.iter().enumerate() {
            let y: [__m512i; 4] = core::array::from_fn(|v| {
                if v < V {
                    h.rh[v].apply(a[v])
                } else {
                    _mm512_setzero_si512()
                }
            });
            let b = narrow4(y, h.lo, h.hi);
            // SAFETY: the mask writes `o[r·n..][..cols]`, inside `o`:
            // `r·n + cols <= (R − 1)·n + cols <= o.len()` (asserted above).
            unsafe { _mm512_mask_storeu_epi8(op.add(r * n), cmask, b) };
        }
        return;
    }
    for v in 0..V {
        let rq = &pe.rq[v];
        let cnt = (pe.cols - 16 * v).min(16);
        let mask: __mmask16 = if cnt == 16 { !0 } else { (1u16 << cnt) - 1 };
        // The zero point's path chosen once for the tile's rows.
        macro_rules! rows {
            ($folded:literal) => {
                for (r, a) in acc.iter().enumerate() {
                    let y = rq.apply_as::<$folded>(a[v]);
                    // SAFETY: the mask writes `o[r·n + 16v..][..cnt]`, inside `o`:
                    // `r·n + 16v + cnt <= (R − 1)·n + cols <= o.len()` (asserted above).
                    unsafe { _mm_mask_storeu_epi8(op.add(r * n + 16 * v), mask, y) };
                }
            };
        }
        if rq.folded {
            rows!(true)
        } else {
            rows!(false)
        }
    }
}

/// The dot products of a register tile, shared by [`tile`] and the BatchMatMul kernel's: adds
/// `Σ_t x[r·k + t]·w'(v, t)` over `t < k` to `acc[r][v]` (`vpdpbusd`, modulo 2³²) for the `R`
/// rows of `x` (`k` bytes each, signed) and the `V` vectors of the packed panel `pn` (vector
/// `(q, v)` at `pn[(q·V + v)·64..][..64]`: 4-byte groups of unsigned `w'`, zero past `k`). Per
/// group `q` of four: the `V` panel vectors are loaded once and each row's 4 bytes broadcast;
/// a last group of `k mod 4` bytes is read into a zero-padded word (the panel's bytes past `k`
/// are zero too).
///
/// Forced inline so that the accumulators stay in registers in both kernels: `#[inline(always)]`
/// cannot go with `#[target_feature]`, so this has none of its own and runs with its callers'.
///
/// # Safety
/// The CPU must support AVX512-F and AVX512-VNNI; `x.len() >= R·k` and
/// `pn.len() >= ⌈k/4⌉·V·64`.
#[inline(always)]
pub(crate) unsafe fn accumulate<const R: usize, const V: usize>(
    acc: &mut [[__m512i; V]; R],
    x: &[i8],
    k: usize,
    pn: &[u8],
) {
    let kf = k / 4;
    let rem = k % 4;
    debug_assert!(x.len() >= R * k && pn.len() >= k.div_ceil(4) * V * 64);
    let (xp, pp) = (x.as_ptr(), pn.as_ptr());
    for q in 0..kf {
        // SAFETY: `q < kf`: the panel reads `pp[(q·V + v)·64..][..64]` (`v < V`) and the row reads
        // `xp[r·k + 4q..][..4]` (`r < R`, `4q + 4 <= k`) lie inside the lengths the caller
        // guarantees; the caller has AVX512-F/VNNI.
        unsafe {
            let wv: [__m512i; V] = core::array::from_fn(|v| {
                _mm512_loadu_si512(pp.add((q * V + v) * 64) as *const __m512i)
            });
            for (r, a) in acc.iter_mut().enumerate() {
                let xb = _mm512_set1_epi32((xp.add(r * k + 4 * q) as *const i32).read_unaligned());
                for (av, &w) in a.iter_mut().zip(&wv) {
                    *av = _mm512_dpbusd_epi32(*av, w, xb);
                }
            }
        }
    }
    if rem != 0 {
        // SAFETY: group `kf < ⌈k/4⌉` of the panel (`V` vectors) lies inside `pn` (guaranteed by
        // the caller, as are the CPU features).
        unsafe {
            let wv: [__m512i; V] = core::array::from_fn(|v| {
                _mm512_loadu_si512(pp.add((kf * V + v) * 64) as *const __m512i)
            });
            for (r, a) in acc.iter_mut().enumerate() {
                let mut b = [0u8; 4];
                for (e, d) in b.iter_mut().enumerate().take(rem) {
                    *d = x[r * k + 4 * kf + e] as u8;
                }
                let xb = _mm512_set1_epi32(i32::from_le_bytes(b));
                for (av, &w) in a.iter_mut().zip(&wv) {
                    *av = _mm512_dpbusd_epi32(*av, w, xb);
                }
            }
        }
    }
}

/// The requantization of 16 lanes, `clamp(requantize(acc, m, s) + zp, min, max)` per lane,
/// bit-exact to [`crate::quant::requantize_to_i8`] for zero points with `|zp| <= 2³¹ − 128`
/// (images hold int8 zero points), prepared once per 16 columns: the multiplier, the total right
/// shift `t = 31 − shift` (clamped to 1..=62) and the rounding term, split into the even and odd
/// 32-bit lanes (each in the low half of a 64-bit lane), and the output zero point and clamp.
///
/// Per lane, with `p = acc·m` (64-bit, `|p| <= 2⁶²`) and `w = (p + 2^(t−1)) >> t` (arithmetic):
/// the reference returns `clamp(sat_add(sat32(w), zp), min, max)`; this returns
/// `clamp(sat8(w + zp), min, max)`. They agree: `clamp` to `[min, max] ⊆ [−128, 127]` absorbs
/// `sat8` (clamping to a wider range first changes nothing, even when `min > max`); when `w` fits
/// `i32`, `sat_add(w, zp) = sat32(w + zp)` and `sat32` is absorbed the same way; when `w > 2³¹ − 1`
/// both sides are at least `2³¹ − 1 + zp >= 127` (for `zp >= 128 − 2³¹`), so both clamp to `max`;
/// symmetrically below. `w + zp` is computed as `(p + 2^(t−1) + zp·2^t) >> t` (the zero point
/// folded into the rounding term: adding a multiple of `2^t` before an arithmetic shift adds its
/// quotient after) when no lane can overflow, `(2|zp| + 1)·2^(t−1) < 2⁶²`; else the zero point is
/// added after the shift. The narrowing `sat8` is `vpmovsqb`.
#[derive(Clone, Copy)]
struct Requant16 {
    m_even: __m512i,
    m_odd: __m512i,
    t_even: __m512i,
    t_odd: __m512i,
    round_even: __m512i,
    round_odd: __m512i,
    /// The zero point in 64-bit lanes when it is not folded into the rounding terms.
    zp: __m512i,
    folded: bool,
    lo: __m128i,
    hi: __m128i,
}

impl Requant16 {
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
    fn new(multiplier: __m512i, shift: __m512i, fin: &Fin) -> Self {
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
        let mut round_even = _mm512_sllv_epi64(one, _mm512_sub_epi64(t_even, one));
        let mut round_odd = _mm512_sllv_epi64(one, _mm512_sub_epi64(t_odd, one));
        // `t <= 62`: the shift is in range; `2|zp| + 1 < 2³³`.
        let t_max = _mm512_reduce_max_epi32(total) as u32;
        let folded = 2 * fin.zero_point.unsigned_abs() as u64 + 1 < 1u64 << (63 - t_max);
        let zp64 = _mm512_set1_epi64(fin.zero_point as i64);
        if folded {
            // `|zp·2^t| < 2⁶¹`: exact.
            round_even = _mm512_add_epi64(round_even, _mm512_sllv_epi64(zp64, t_even));
            round_odd = _mm512_add_epi64(round_odd, _mm512_sllv_epi64(zp64, t_odd));
        }
        Self {
            m_even: multiplier,
            m_odd: _mm512_srli_epi64::<32>(multiplier),
            t_even,
            t_odd,
            round_even,
            round_odd,
            zp: if folded { _mm512_setzero_si512() } else { zp64 },
            folded,
            lo: _mm_set1_epi8(fin.min),
            hi: _mm_set1_epi8(fin.max),
        }
    }

    /// `clamp(requantize(acc) + zp, min, max)` per lane, as 16 bytes in lane order.
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
    fn apply(&self, acc: __m512i) -> __m128i {
        if self.folded {
            self.apply_as::<true>(acc)
        } else {
            self.apply_as::<false>(acc)
        }
    }

    /// [`Self::apply`] with `FOLDED == self.folded` (the caller's branch, outside its loop).
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
    fn apply_as<const FOLDED: bool>(&self, acc: __m512i) -> __m128i {
        // `vpmuldq` reads the low 32 bits of each 64-bit lane (sign-extended).
        let mut even = _mm512_srav_epi64(
            _mm512_add_epi64(_mm512_mul_epi32(acc, self.m_even), self.round_even),
            self.t_even,
        );
        let mut odd = _mm512_srav_epi64(
            _mm512_add_epi64(
                _mm512_mul_epi32(_mm512_srli_epi64::<32>(acc), self.m_odd),
                self.round_odd,
            ),
            self.t_odd,
        );
        if !FOLDED {
            even = _mm512_add_epi64(even, self.zp);
            odd = _mm512_add_epi64(odd, self.zp);
        }
        // Saturated to int8: the even lanes' bytes, then the odd ones'; interleaved: lane order.
        let b = _mm_unpacklo_epi8(_mm512_cvtsepi64_epi8(even), _mm512_cvtsepi64_epi8(odd));
        _mm_min_epi8(_mm_max_epi8(b, self.lo), self.hi)
    }
}

/// The 32-bit form of a [`Requant16`] whose zero point is folded into the rounding term and
/// whose total right shift is `t >= 33` in every lane: `requantize(acc) + zp` per lane as an
/// exact `i32` in 6 instructions (the caller narrows and clamps, [`narrow4`]).
///
/// Exactness, per lane: with `p = acc·m` (exact in 64 bits) and the folded rounding term
/// `R = 2^(t−1) + zp·2^t`, the 64-bit form computes `w = (p + R) >> t` (arithmetic), which is
/// `requantize(acc) + zp` before any saturation (see [`Requant16`]). For `t >= 33`, `R` is a
/// multiple of 2³²: `R = R'·2³²` with `R' = 2^(t−33) + zp·2^(t−32)` (`rnd`). Write
/// `p = H·2³² + L` with `H = p >> 32` (the product's high half) and `0 <= L < 2³²`; then
/// `p + R = (H + R')·2³² + L` and, as `L/2³² < 1` cannot carry into the integer part,
/// `w = ⌊(H + R' + L/2³²) / 2^(t−32)⌋ = (H + R') >> (t − 32)` (`sh`, 1..=30). No 32-bit step
/// overflows: `|p| <= 2⁶²` gives `−2³⁰ <= H <= 2³⁰`; folding requires
/// `(2|zp| + 1)·2^(t−1) < 2⁶²`, that is `(2|zp| + 1)·2^(t−33) < 2³⁰`, so `|R'| < 2³⁰`; hence
/// `|H + R'| < 2³¹` and `|w| < 2³¹`: `w` fits `i32`, so the reference's `sat32` and saturating
/// add change nothing, and `sat8` then the clamp give its result, as in [`Requant16::apply_as`].
#[derive(Clone, Copy)]
struct Requant16Hi {
    m_even: __m512i,
    m_odd: __m512i,
    /// `R'` per 32-bit lane.
    rnd: __m512i,
    /// `t − 32` per 32-bit lane.
    sh: __m512i,
}

impl Requant16Hi {
    /// Whether every requantization of `rq` has a 32-bit form: zero point folded and total
    /// shift at least 33 in every lane.
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
    fn allowed(rq: &[Requant16]) -> bool {
        let mut t = _mm512_set1_epi64(62);
        let mut folded = true;
        for q in rq {
            t = _mm512_min_epi64(t, _mm512_min_epi64(q.t_even, q.t_odd));
            folded &= q.folded;
        }
        folded && _mm512_reduce_min_epi64(t) >= 33
    }

    /// The 32-bit form of `rq`, which [`Self::allowed`] must accept.
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
    fn from(rq: &Requant16) -> Self {
        // 32-bit lane `2i`: the high half of `round_even`'s lane `i` (`R'`, as `R` is a
        // multiple of 2³²), `2i + 1`: that of `round_odd`'s; `t` is in the low halves.
        let rnd = _mm512_mask_shuffle_epi32::<0xF5>(rq.round_odd, 0x5555, rq.round_even);
        let t = _mm512_mask_shuffle_epi32::<0xA0>(rq.t_even, 0xAAAA, rq.t_odd);
        Self {
            m_even: rq.m_even,
            m_odd: rq.m_odd,
            rnd,
            sh: _mm512_sub_epi32(t, _mm512_set1_epi32(32)),
        }
    }

    /// The 32-bit form of `rq`, or `None` unless [`Self::allowed`] accepts it.
    #[cfg(test)]
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
    fn of(rq: &Requant16) -> Option<Self> {
        Self::allowed(core::slice::from_ref(rq)).then(|| Self::from(rq))
    }

    /// `requantize(acc) + zp` per lane, exact (see the type).
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
    fn apply(&self, acc: __m512i) -> __m512i {
        // `vpmuldq` reads the low 32 bits of each 64-bit lane (sign-extended): the even lanes'
        // products, then the odd lanes'.
        let pe = _mm512_mul_epi32(acc, self.m_even);
        let po = _mm512_mul_epi32(_mm512_srli_epi64::<32>(acc), self.m_odd);
        // `H` in lane order: lane `2i` from the high half of `pe`'s lane `i` (dword `2i + 1`),
        // lane `2i + 1` is already `po`'s dword `2i + 1`.
        let h = _mm512_mask_shuffle_epi32::<0xF5>(po, 0x5555, pe);
        _mm512_srav_epi32(_mm512_add_epi32(h, self.rnd), self.sh)
    }
}

/// Four vectors of 16 `i32` lanes (columns `16v + l`) as 64 bytes in column order, each
/// saturated to int8 and clamped to `[lo, hi]` per byte: `vpackssdw` (saturating to `i16`) then
/// `vpacksswb` (to `i8`; `sat8(sat16(y)) = sat8(y)`) leave, in 128-bit lane `L`, the four bytes
/// of columns `4L..4L + 4` of `y[0]`, `y[1]`, `y[2]`, `y[3]` (dwords `4L + v`), and one dword
/// permutation puts dword `4L + v` at `4v + L`. The clamp is the reference's
/// `max(min).min(max)` order, as in [`Requant16::apply_as`].
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
fn narrow4(y: [__m512i; 4], lo: __m512i, hi: __m512i) -> __m512i {
    let a = _mm512_packs_epi32(y[0], y[1]);
    let b = _mm512_packs_epi32(y[2], y[3]);
    let c = _mm512_packs_epi16(a, b);
    // Output dword `o = 4v + L` from dword `4L + v`.
    let idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    let d = _mm512_permutexvar_epi32(idx, c);
    _mm512_min_epi8(_mm512_max_epi8(d, lo), hi)
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
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
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
    let fin = Fin {
        zero_point: epi.zero_point,
        min: epi.min,
        max: epi.max,
    };
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
            let y = Requant16::new(mm, ss, &fin).apply(acc);
            let d = &mut out[i * n + j..i * n + j + cnt];
            // SAFETY: the mask writes the first `cnt` bytes at `d`, which holds `cnt`.
            unsafe { _mm_mask_storeu_epi8(d.as_mut_ptr(), mask, y) };
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

#[cfg(test)]
mod tests {
    //! [`gemm`] and [`gemv`] against the integer reference ([`Epilogue::one`] over the wrapping
    //! sums), and [`Requant16`] against [`crate::quant::requantize_to_i8`], on random shapes and
    //! values with extreme multipliers, shifts (also out of range: clamped), zero points, clamps
    //! and accumulators near ±2³¹.

    use super::*;
    use crate::ops::testing::Rng;
    use crate::quant::requantize_to_i8;

    /// A multiplier: usually Q31 in `[2³⁰, 2³¹)`, sometimes any `i32` or an extreme one.
    fn multiplier(rng: &mut Rng) -> i32 {
        match rng.next_u64() % 8 {
            0 => [i32::MIN, i32::MIN + 1, -1, 0, 1, 1 << 30, i32::MAX][rng.range(0, 6) as usize],
            1 => rng.next_u64() as i32,
            _ => rng.range(1 << 30, i32::MAX),
        }
    }

    /// A shift: usually in the valid range, sometimes at its ends or beyond (clamped).
    fn shift(rng: &mut Rng) -> i32 {
        match rng.next_u64() % 8 {
            0 => [-31, 30, -23, -24, 0][rng.range(0, 4) as usize],
            1 => rng.range(-40, 40),
            _ => rng.range(-31, 30),
        }
    }

    /// An output zero point: usually int8, sometimes up to the documented limit `2³¹ − 128`.
    fn zero_point(rng: &mut Rng) -> i32 {
        match rng.next_u64() % 8 {
            0 => rng.range(-(1 << 30), 1 << 30),
            1 => [i32::MAX - 127, -(i32::MAX - 127), 255, -255][rng.range(0, 3) as usize],
            _ => rng.zero_point(),
        }
    }

    /// An accumulator: anywhere, near ±2³¹ or small.
    fn accumulator(rng: &mut Rng) -> i32 {
        match rng.next_u64() % 4 {
            0 => i32::MAX - rng.range(0, 1000),
            1 => i32::MIN + rng.range(0, 1000),
            2 => rng.range(-100_000, 100_000),
            _ => rng.next_u64() as i32,
        }
    }

    #[test]
    fn requant16_bit_exact_on_extremes() {
        if detected().is_none() {
            println!("skipped: AVX-512 VNNI requantization (CPU lacks AVX512-F/BW/VL/VNNI)");
            return;
        }
        let mut rng = Rng::new(0x5123);
        for case in 0..20_000 {
            let per_tensor = rng.one_in(3);
            let (m1, s1) = (multiplier(&mut rng), shift(&mut rng));
            let mm: [i32; 16] =
                core::array::from_fn(|_| if per_tensor { m1 } else { multiplier(&mut rng) });
            let ss: [i32; 16] =
                core::array::from_fn(|_| if per_tensor { s1 } else { shift(&mut rng) });
            let acc: [i32; 16] = core::array::from_fn(|_| accumulator(&mut rng));
            let (a, b) = (rng.range(-128, 127) as i8, rng.range(-128, 127) as i8);
            let (min, max) = if rng.one_in(8) {
                (a, b)
            } else {
                (a.min(b), a.max(b))
            };
            let fin = Fin {
                zero_point: zero_point(&mut rng),
                min,
                max,
            };
            let mut got = [0i8; 16];
            // SAFETY: the CPU has the instructions (detected above); the loads and the store
            // cover the 16 values of each array.
            unsafe {
                let rq = Requant16::new(
                    _mm512_loadu_si512(mm.as_ptr() as *const __m512i),
                    _mm512_loadu_si512(ss.as_ptr() as *const __m512i),
                    &fin,
                );
                let y = rq.apply(_mm512_loadu_si512(acc.as_ptr() as *const __m512i));
                _mm_storeu_si128(got.as_mut_ptr() as *mut __m128i, y);
            }
            for l in 0..16 {
                let want = requantize_to_i8(acc[l], mm[l], ss[l], fin.zero_point, min, max);
                assert_eq!(
                    got[l], want,
                    "case {case} lane {l}: acc {} m {} s {} zp {} [{min}, {max}]",
                    acc[l], mm[l], ss[l], fin.zero_point
                );
            }
        }
    }

    /// A shift whose total right shift `31 − shift` is mostly at least 33 (the range of
    /// [`Requant16Hi`]), its ends often, and sometimes just below (32).
    fn shift_wide(rng: &mut Rng) -> i32 {
        if rng.one_in(8) {
            -1
        } else {
            shift_hi(rng)
        }
    }

    /// A shift whose total right shift `31 − shift` is at least 33, its ends often.
    fn shift_hi(rng: &mut Rng) -> i32 {
        match rng.next_u64() % 4 {
            0 => [-31, -30, -3, -2][rng.range(0, 3) as usize],
            _ => rng.range(-31, -2),
        }
    }

    /// [`Requant16Hi`] then [`narrow4`] against [`crate::quant::requantize_to_i8`] on 64 lanes,
    /// whenever the constants allow it (zero point folded, total shift `>= 33` in every lane);
    /// enough cases must.
    #[test]
    fn requant_i32_narrow_bit_exact_on_extremes() {
        if detected().is_none() {
            println!("skipped: AVX-512 VNNI requantization (CPU lacks AVX512-F/BW/VL/VNNI)");
            return;
        }
        let mut rng = Rng::new(0x5126);
        let mut wide = 0;
        for case in 0..20_000 {
            let per_tensor = rng.one_in(3);
            // Sometimes a total shift of 32 (outside the form) among the lanes.
            let sh = if rng.one_in(8) { shift_wide } else { shift_hi };
            let (m1, s1) = (multiplier(&mut rng), sh(&mut rng));
            let mm: [i32; 64] =
                core::array::from_fn(|_| if per_tensor { m1 } else { multiplier(&mut rng) });
            let ss: [i32; 64] =
                core::array::from_fn(|_| if per_tensor { s1 } else { sh(&mut rng) });
            let acc: [i32; 64] = core::array::from_fn(|_| accumulator(&mut rng));
            let (a, b) = (rng.range(-128, 127) as i8, rng.range(-128, 127) as i8);
            let (min, max) = if rng.one_in(8) {
                (a, b)
            } else {
                (a.min(b), a.max(b))
            };
            let zp = match rng.next_u64() % 4 {
                // Up to the largest the folding allows for some shifts.
                0 => rng.range(-(1 << 29), 1 << 29) >> rng.range(0, 29),
                _ => zero_point(&mut rng),
            };
            let fin = Fin {
                zero_point: zp,
                min,
                max,
            };
            let mut got = [0i8; 64];
            // SAFETY: the CPU has the instructions (detected above); the loads read 16 values
            // of 64-value arrays, the store writes the 64 bytes of `got`.
            let ok = unsafe {
                let rq: [Requant16; 4] = core::array::from_fn(|v| {
                    Requant16::new(
                        _mm512_loadu_si512(mm.as_ptr().add(16 * v) as *const __m512i),
                        _mm512_loadu_si512(ss.as_ptr().add(16 * v) as *const __m512i),
                        &fin,
                    )
                });
                let rh: [Option<Requant16Hi>; 4] =
                    core::array::from_fn(|v| Requant16Hi::of(&rq[v]));
                let ok = rh.iter().all(Option::is_some);
                let y: [__m512i; 4] = core::array::from_fn(|v| {
                    let acc = _mm512_loadu_si512(acc.as_ptr().add(16 * v) as *const __m512i);
                    rh[v].map_or(_mm512_setzero_si512(), |h| h.apply(acc))
                });
                let out = narrow4(y, _mm512_set1_epi8(min), _mm512_set1_epi8(max));
                _mm512_storeu_si512(got.as_mut_ptr() as *mut __m512i, out);
                ok
            };
            if !ok {
                continue;
            }
            wide += 1;
            for l in 0..64 {
                let want = requantize_to_i8(acc[l], mm[l], ss[l], zp, min, max);
                assert_eq!(
                    got[l], want,
                    "case {case} lane {l}: acc {} m {} s {} zp {zp} [{min}, {max}]",
                    acc[l], mm[l], ss[l]
                );
            }
        }
        assert!(wide > 4_000, "only {wide} cases in the 32-bit form");
    }

    /// A random problem and its reference output.
    struct Case {
        m: usize,
        n: usize,
        k: usize,
        x: Vec<i8>,
        zx: i32,
        w: Vec<i8>,
        nt: bool,
        zw: i32,
        bias: Option<Vec<i32>>,
        mult: Vec<i32>,
        shift: Vec<i32>,
        zp: i32,
        min: i8,
        max: i8,
    }

    impl Case {
        fn random(rng: &mut Rng, max_m: u32, max_n: u32, max_k: u32, zw0: bool) -> Case {
            let m = rng.dim(max_m) as usize;
            let n = rng.dim(max_n) as usize;
            let k = if rng.one_in(3) {
                rng.dim(max_k)
            } else {
                rng.dim(70)
            } as usize;
            let per_tensor = rng.one_in(3);
            let q = if per_tensor { 1 } else { n };
            let big_bias = rng.one_in(3);
            let (a, b) = (rng.range(-128, 127) as i8, rng.range(-128, 127) as i8);
            Case {
                m,
                n,
                k,
                x: rng.i8_vec(m * k),
                zx: rng.zero_point(),
                w: rng.i8_vec(n * k),
                nt: zw0 || rng.one_in(2),
                zw: if zw0 { 0 } else { rng.zero_point() },
                bias: match rng.next_u64() % 3 {
                    0 => None,
                    _ if big_bias => Some((0..n).map(|_| accumulator(rng)).collect()),
                    _ => Some(rng.i32_vec(n, 40_000)),
                },
                mult: (0..q)
                    .map(|_| {
                        if rng.one_in(2) {
                            rng.range(1 << 30, 1 << 28 | 1 << 30)
                        } else {
                            multiplier(rng)
                        }
                    })
                    .collect(),
                shift: (0..q)
                    .map(|_| {
                        if rng.one_in(2) {
                            rng.range(-14, -6)
                        } else {
                            shift(rng)
                        }
                    })
                    .collect(),
                zp: zero_point(rng),
                min: a.min(b),
                max: a.max(b),
            }
        }

        fn epilogue(&self) -> Epilogue<'_> {
            Epilogue {
                bias: self.bias.as_deref(),
                multiplier: &self.mult,
                shift: &self.shift,
                zero_point: self.zp,
                min: self.min,
                max: self.max,
            }
        }

        fn rhs(&self) -> Rhs<'_> {
            if self.nt {
                Rhs::Nt(&self.w)
            } else {
                Rhs::Nn(&self.w)
            }
        }

        fn reference(&self) -> Vec<i8> {
            let (n, k) = (self.n, self.k);
            let epi = self.epilogue();
            let mut out = vec![0i8; self.m * n];
            for i in 0..self.m {
                for j in 0..n {
                    let mut s = 0i32;
                    for t in 0..k {
                        let w = if self.nt {
                            self.w[j * k + t]
                        } else {
                            self.w[t * n + j]
                        };
                        let d =
                            (self.x[i * k + t] as i32 - self.zx).wrapping_mul(w as i32 - self.zw);
                        s = s.wrapping_add(d);
                    }
                    out[i * n + j] = epi.one(j, s);
                }
            }
            out
        }
    }

    #[test]
    fn gemm_bit_exact_on_random_shapes() {
        let Some(cpu) = detected() else {
            println!("skipped: AVX-512 VNNI gemm (CPU lacks AVX512-F/BW/VL/VNNI)");
            return;
        };
        let mut rng = Rng::new(0x5124);
        for case in 0..400 {
            // Every tenth: up to 40 rows over 16-row sums, wide rows (panels of fewer vectors).
            let mut c = if case % 10 == 9 {
                Case::random(&mut rng, 40, 70, MAX_K as u32, false)
            } else {
                Case::random(&mut rng, 37, 150, 300, false)
            };
            // Every other: shifts for the 32-bit requantization ([`Requant16Hi`]).
            if case % 2 == 1 {
                c.shift = c.shift.iter().map(|_| shift_wide(&mut rng)).collect();
                if rng.one_in(2) {
                    c.zp = rng.zero_point();
                }
            }
            let want = c.reference();
            let mut got = vec![0i8; c.m * c.n];
            let ok = gemm(
                cpu,
                c.m,
                c.n,
                c.k,
                &c.x,
                c.zx,
                c.rhs(),
                c.zw,
                &c.epilogue(),
                &mut got,
            );
            assert!(ok);
            assert_eq!(
                got, want,
                "case {case}: m {} n {} k {} nt {} zp {}",
                c.m, c.n, c.k, c.nt, c.zp
            );
        }
    }

    /// [`gemm_packed`] (weights in the compiler's layout, column terms) against the integer
    /// reference on random shapes: rows not a multiple of the tile height, columns not a
    /// multiple of 16 or 64, `k` not a multiple of 4; per-tensor and per-column requantizations,
    /// often in the 32-bit form's range (which enough cases must take), with extreme
    /// multipliers, shifts, zero points, clamps and column terms.
    #[test]
    fn gemm_packed_bit_exact_on_random_shapes() {
        use crate::ops::fully_connected::packed::{pack, packed_len};
        let Some(cpu) = detected() else {
            println!("skipped: AVX-512 VNNI gemm_packed (CPU lacks AVX512-F/BW/VL/VNNI)");
            return;
        };
        let mut rng = Rng::new(0x5127);
        let mut wide = 0;
        for case in 0..400 {
            let m = match case % 4 {
                0 => rng.range(1, 80) as usize,
                _ => rng.dim(20) as usize,
            };
            let n = rng.dim(200) as usize;
            let k = rng.dim(if case % 8 == 7 { 600 } else { 300 }) as usize;
            let per_tensor = rng.one_in(3);
            let q = if per_tensor { 1 } else { n };
            let in_range = !rng.one_in(4);
            let mult: Vec<i32> = (0..q).map(|_| multiplier(&mut rng)).collect();
            let shift: Vec<i32> = (0..q)
                .map(|_| {
                    if in_range {
                        shift_wide(&mut rng)
                    } else {
                        shift(&mut rng)
                    }
                })
                .collect();
            let zp = if rng.one_in(2) {
                rng.zero_point()
            } else {
                zero_point(&mut rng)
            };
            let ct: Vec<i32> = if rng.one_in(2) {
                (0..n).map(|_| accumulator(&mut rng)).collect()
            } else {
                rng.i32_vec(n, 40_000)
            };
            let (a, b) = (rng.range(-128, 127) as i8, rng.range(-128, 127) as i8);
            let (min, max) = (a.min(b), a.max(b));
            let x = rng.i8_vec(m * k);
            let w = rng.i8_vec(n * k);
            let mut panels = vec![0i8; packed_len(n, k).unwrap()];
            pack(&w, n, k, &mut panels);
            let epi = Epilogue {
                bias: None,
                multiplier: &mult,
                shift: &shift,
                zero_point: zp,
                min,
                max,
            };
            let mut want = vec![0i8; m * n];
            for i in 0..m {
                for j in 0..n {
                    let s = (0..k).fold(ct[j], |s, t| {
                        s.wrapping_add(x[i * k + t] as i32 * w[j * k + t] as i32)
                    });
                    let c = if per_tensor { 0 } else { j };
                    want[i * n + j] = requantize_to_i8(s, mult[c], shift[c], zp, min, max);
                }
            }
            let mut got = vec![0i8; m * n];
            assert!(gemm_packed(cpu, m, n, k, &x, &panels, &ct, &epi, &mut got));
            assert_eq!(
                got, want,
                "case {case}: m {m} n {n} k {k} per_tensor {per_tensor} zp {zp}"
            );
            // Whether the first panel (64 columns) can take the 32-bit form: enough rows, total
            // shifts of at least 33 and the zero point folded (a sufficient condition).
            let t = |c: usize| (31 - shift[if per_tensor { 0 } else { c }]).clamp(1, 62);
            let cols = n.min(64);
            let (t_min, t_max) = (
                (0..cols).map(t).min().unwrap(),
                (0..cols).map(t).max().unwrap(),
            );
            if m >= HI32_MIN_ROWS
                && t_min >= 33
                && 2 * zp.unsigned_abs() as u64 + 1 < 1u64 << (63 - t_max)
            {
                wide += 1;
            }
        }
        assert!(wide > 50, "only {wide} cases in the 32-bit form");
    }

    #[test]
    fn gemv_bit_exact_on_random_shapes() {
        let Some(cpu) = detected() else {
            println!("skipped: AVX-512 VNNI gemv (CPU lacks AVX512-F/BW/VL/VNNI)");
            return;
        };
        let mut rng = Rng::new(0x5125);
        for case in 0..300 {
            let c = Case::random(&mut rng, 3, 70, 300, true);
            let want = c.reference();
            let mut got = vec![0i8; c.m * c.n];
            let ok = gemv(
                cpu,
                c.m,
                c.n,
                c.k,
                &c.x,
                c.zx,
                &c.w,
                &c.epilogue(),
                &mut got,
            );
            assert!(ok);
            assert_eq!(got, want, "case {case}: m {} n {} k {}", c.m, c.n, c.k);
        }
    }
}
