//! AVX-512 VNNI int8 BatchMatMul for attention-sized heads (`Q·Kᵀ`, `P·V`), bit-exact to
//! [`super::reference::eval_i8`].
//!
//! Per batch entry, `B` (either layout) is packed once into a stack panel holding all `n`
//! columns: vector `(q, v)` holds `b(j, 4q..4q + 4)` for the 16 columns `j` of vector `v`, stored
//! unsigned as `b' = b + 128` (`b ^ 0x80`; zero past `k`), in blocks of up to 4 vectors (64
//! columns). The column sums come from the packed vectors (one `vpdpbusd` with ones each), the
//! row sums of `A` from one pass over `A` (16 rows at a time). Register tiles of `R` rows × `V`
//! vectors (4 × 4 for 64 columns, 8 × 2 for 32) broadcast 4 bytes of each row of `A` and
//! accumulate `vpdpbusd(b', a)`; with `Σ` over `t < k`, modulo 2³²,
//! `Σ (a − za)(b − zb) = Σ a·b' − (128 + zb)·Σ a − za·(Σ b − k·zb)`, and both corrections are the
//! accumulators' starting values.
//!
//! The requantization (one multiplier per tensor, its constants set up once per call and kept in
//! registers) handles total right shifts `t = 31 − shift` of 33..=62 with the output zero point
//! folded into the rounding term, which covers the scales of attention
//! (`s_a·s_b/s_out < 2⁻¹`); other parameters (and `k` or `n` beyond the panel) return `false`
//! for the general kernel. Per 16 lanes: `p = acc·m` (64-bit, `vpmuldq` on the even and on the
//! shifted odd lanes), `w = (p + 2^(t−1) + zp·2^t) >> t`; the even lanes shift by `t` (the low
//! dword is `w`), the odd ones by `t − 32` (the high dword is `w`: `⌊⌊x/2^(t−32)⌋/2³²⌋ =
//! ⌊x/2^t⌋`), one blend puts them in lane order, `vpmovsdb` saturates to int8 and `[min, max]`
//! clamps. With `(2|zp| + 1)·2^(t−1) < 2⁶²` nothing overflows and `|w| < 2³⁰`, so this is
//! `clamp(sat8(w), min, max)`, which equals [`crate::quant::requantize_to_i8`] (the argument in
//! `crate::ops::gemm_avx512`'s `Requant16`: the clamp to `[min, max] ⊆ [−128, 127]` absorbs the
//! reference's 32-bit saturations). Nothing is allocated (about 19 KiB of stack).

use core::arch::x86_64::*;
use core::mem::MaybeUninit;

use super::BatchMatMulParams;
use crate::arch::x86_vnni::Avx512Vnni;
use crate::ops::gemm_avx512;

/// Bytes of the packed `B` of one batch entry (on the stack).
const PANEL: usize = 16384;
/// Most 16-column vectors of `B` (`n <= 256`).
const MAX_NV: usize = 16;
/// Rows whose sums are kept at once.
const ROW_CHUNK: usize = 256;
/// Longest accumulation handled (`k4 <= 64`).
const MAX_K: usize = 256;

/// The per-tensor requantization, prepared once per call: multiplier, total right shift `t`
/// (33..=62) and the rounding term with the output zero point folded in.
#[derive(Clone, Copy)]
struct Plan {
    multiplier: i32,
    t: u32,
    round: i64,
    min: i8,
    max: i8,
}

impl Plan {
    /// The plan of `p`, or `None` when the shift or zero point is outside the fast form.
    fn new(p: &BatchMatMulParams) -> Option<Plan> {
        let t = 31i64 - p.output_shift as i64;
        let t = t.clamp(1, 62) as u32;
        if t < 33 {
            return None;
        }
        // `(2|zp| + 1)·2^(t−1) < 2⁶²` ⇔ `2|zp| + 1 < 2^(63 − t)`.
        let zp = p.output_zero_point;
        if 2 * zp.unsigned_abs() as u64 + 1 >= 1u64 << (63 - t) {
            return None;
        }
        Some(Plan {
            multiplier: p.output_multiplier,
            t,
            round: (1i64 << (t - 1)) + ((zp as i64) << t),
            min: p.activation.min,
            max: p.activation.max,
        })
    }
}

/// [`Plan`] in registers.
#[derive(Clone, Copy)]
struct Rq {
    m: __m512i,
    round: __m512i,
    t: __m128i,
    t32: __m128i,
    lo: __m128i,
    hi: __m128i,
    lo512: __m512i,
    hi512: __m512i,
}

impl Rq {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn new(plan: &Plan) -> Rq {
        Rq {
            m: _mm512_set1_epi32(plan.multiplier),
            round: _mm512_set1_epi64(plan.round),
            t: _mm_set_epi64x(0, plan.t as i64),
            t32: _mm_set_epi64x(0, plan.t as i64 - 32),
            lo: _mm_set1_epi8(plan.min),
            hi: _mm_set1_epi8(plan.max),
            lo512: _mm512_set1_epi8(plan.min),
            hi512: _mm512_set1_epi8(plan.max),
        }
    }

    /// The 16 lanes of `acc` requantized, clamped, as bytes in lane order.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn apply(&self, acc: __m512i) -> __m128i {
        let b = _mm512_cvtsepi32_epi8(self.dwords(acc));
        _mm_min_epi8(_mm_max_epi8(b, self.lo), self.hi)
    }

    /// 4 × 16 lanes requantized ([`Self::dwords`]), saturated to int8 and clamped: the 64 bytes
    /// of `d[0]`, then `d[1]`, `d[2]`, `d[3]`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn narrow4(&self, d: [__m512i; 4]) -> __m512i {
        // Per 128-bit lane `L`: dwords `4L..4L + 4` of `d[0]`, `d[1]`, `d[2]`, `d[3]` as bytes
        // (two signed saturations: `sat8(sat16(x)) = sat8(x)`).
        let b = _mm512_packs_epi16(
            _mm512_packs_epi32(d[0], d[1]),
            _mm512_packs_epi32(d[2], d[3]),
        );
        let idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        let b = _mm512_permutexvar_epi32(idx, b);
        _mm512_min_epi8(_mm512_max_epi8(b, self.lo512), self.hi512)
    }

    /// The 16 lanes of `acc` requantized (`w + zp`, before saturation), in lane order.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn dwords(&self, acc: __m512i) -> __m512i {
        // `vpmuldq` reads the low dword of each qword (sign-extended).
        let even = _mm512_sra_epi64(
            _mm512_add_epi64(_mm512_mul_epi32(acc, self.m), self.round),
            self.t,
        );
        let odd = _mm512_sra_epi64(
            _mm512_add_epi64(
                _mm512_mul_epi32(_mm512_srli_epi64::<32>(acc), self.m),
                self.round,
            ),
            self.t32,
        );
        _mm512_mask_blend_epi32(0xAAAA, even, odd)
    }
}

/// Runs `p` when its shape and requantization fit this kernel; `false` (nothing written)
/// otherwise. Requires a successful [`super::check_i8`].
pub(crate) fn eval_i8(
    cpu: Avx512Vnni,
    p: &BatchMatMulParams,
    a: &[i8],
    b: &[i8],
    out: &mut [i8],
) -> bool {
    let _ = cpu;
    let s = p.shape;
    let (m, k, n) = (s.m as usize, s.k as usize, s.n as usize);
    let nv = n.div_ceil(16);
    if k == 0 || k > MAX_K || nv > MAX_NV || k.div_ceil(4) * nv * 64 > PANEL {
        return false;
    }
    let Some(plan) = Plan::new(p) else {
        return false;
    };
    let batch = s.batch as usize;
    assert!(a.len() >= batch * m * k && b.len() >= batch * k * n && out.len() >= batch * m * n);
    // SAFETY: the token proves AVX512-F/BW/VL/VNNI; the lengths are asserted above.
    unsafe { eval_impl(p, &plan, a, b, out) };
    true
}

/// [`eval_i8`] past its checks.
///
/// # Safety
/// The CPU must support AVX512-F/BW/VL/VNNI.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
unsafe fn eval_impl(p: &BatchMatMulParams, plan: &Plan, a: &[i8], b: &[i8], out: &mut [i8]) {
    let s = p.shape;
    let (m, k, n) = (s.m as usize, s.k as usize, s.n as usize);
    if m == 0 || n == 0 {
        return;
    }
    let (za, zb) = (p.a_zero_point, p.b_zero_point);
    let k4 = k.div_ceil(4);
    let nv = n.div_ceil(16);
    let rq = Rq::new(plan);
    let mut panel_buf = [const { MaybeUninit::<u8>::uninit() }; PANEL];
    // Only the bytes this call uses are initialized (the packing overwrites them all).
    let panel = crate::ops::gemm_avx2::filled(&mut panel_buf, k4 * nv * 64, 0);
    let mut rs = [0i32; ROW_CHUNK];
    let mut ncc = [_mm512_setzero_si512(); MAX_NV];
    // Column term: `−za·(Σ b − k·zb) = −za·(Σ b' − k·(128 + zb))`.
    let kc = _mm512_set1_epi32((k as i32).wrapping_mul(128i32.wrapping_add(zb)));
    let nza = _mm512_set1_epi32(za.wrapping_neg());
    let c128 = 128i32.wrapping_add(zb);
    for ((ab, bb), ob) in a
        .chunks_exact(m * k)
        .zip(b.chunks_exact(k * n))
        .zip(out.chunks_exact_mut(m * n))
    {
        let mut sums = [_mm512_setzero_si512(); MAX_NV];
        if s.transpose_b {
            pack_nt(bb, n, k, panel, &mut sums[..nv]);
        } else {
            pack_nn(bb, n, k, panel, &mut sums[..nv]);
        }
        for (c, &sv) in ncc.iter_mut().zip(&sums[..nv]) {
            *c = _mm512_mullo_epi32(nza, _mm512_sub_epi32(sv, kc));
        }
        let mut i0 = 0;
        while i0 < m {
            let rows = ROW_CHUNK.min(m - i0);
            let xa = &ab[i0 * k..(i0 + rows) * k];
            gemm_avx512::row_sums(xa, k, c128, &mut rs[..rows]);
            let oc = &mut ob[i0 * n..(i0 + rows) * n];
            for blk in 0..nv.div_ceil(4) {
                let vb = (nv - 4 * blk).min(4);
                let c0 = 64 * blk;
                let cols = (n - c0).min(64);
                let pn = &panel[blk * k4 * 256..blk * k4 * 256 + k4 * vb * 64];
                let cc = &ncc[4 * blk..4 * blk + vb];
                block_rows(xa, k, pn, vb, cc, &rs[..rows], &rq, &mut oc[c0..], n, cols);
            }
            i0 += rows;
        }
    }
}

/// All rows of `x` (`rs.len()` rows of `k`) against one block of `vb` vectors, in register
/// tiles; the last full tile overlaps the previous one (recomputing rows is harmless) so that
/// only blocks with fewer rows than a tile use the smaller tiles.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
fn block_rows(
    x: &[i8],
    k: usize,
    pn: &[u8],
    vb: usize,
    cc: &[__m512i],
    rs: &[i32],
    rq: &Rq,
    out: &mut [i8],
    n: usize,
    cols: usize,
) {
    let rows = rs.len();
    // `$r` rows per tile; blocks with fewer rows use one of the `$small` tiles.
    macro_rules! run {
        ($r:literal, $v:literal; $($small:literal),*) => {{
            if rows >= $r {
                let mut i = 0;
                loop {
                    let i1 = i.min(rows - $r);
                    let (xt, rt, ot) = (&x[i1 * k..], &rs[i1..], &mut out[i1 * n..]);
                    tile::<$r, $v>(xt, k, pn, cc, rt, rq, ot, n, cols);
                    i += $r;
                    if i >= rows {
                        break;
                    }
                }
            } else {
                match rows {
                    $($small => tile::<$small, $v>(x, k, pn, cc, rs, rq, out, n, cols),)*
                    _ => unreachable!(),
                }
            }
        }};
    }
    match vb {
        4 => run!(4, 4; 1, 2, 3),
        3 => run!(4, 3; 1, 2, 3),
        2 => run!(8, 2; 1, 2, 3, 4, 5, 6, 7),
        _ => run!(8, 1; 1, 2, 3, 4, 5, 6, 7),
    }
}

/// One register tile: rows `x[..R·k]` × the `V` vectors of the block `pn`, started from the
/// column terms `cc` less the row terms `rt`, requantized and stored at `o[r·n..][..cols]`.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
fn tile<const R: usize, const V: usize>(
    x: &[i8],
    k: usize,
    pn: &[u8],
    cc: &[__m512i],
    rt: &[i32],
    rq: &Rq,
    o: &mut [i8],
    n: usize,
    cols: usize,
) {
    assert!(x.len() >= R * k && pn.len() >= k.div_ceil(4) * V * 64 && rt.len() >= R);
    assert!(cc.len() >= V && cols > (V - 1) * 16 && cols <= V * 16);
    assert!(o.len() >= (R - 1) * n + cols);
    let mut acc: [[__m512i; V]; R] = core::array::from_fn(|r| {
        let rv = _mm512_set1_epi32(rt[r]);
        core::array::from_fn(|v| _mm512_sub_epi32(cc[v], rv))
    });
    // SAFETY: AVX512-F/VNNI are enabled here; the lengths of `x` and `pn` are asserted above.
    unsafe { gemm_avx512::accumulate(&mut acc, x, k, pn) };
    let op = o.as_mut_ptr();
    // Rows one at a time, each named by a constant index (the accumulators stay in registers).
    macro_rules! rows {
        ($($r:literal)*) => {$(
            if $r < R {
                if V == 4 {
                    // 64 columns: one narrowing of the row, one store.
                    let y = rq.narrow4([
                        rq.dwords(acc[$r][0]),
                        rq.dwords(acc[$r][V.min(2) - 1]),
                        rq.dwords(acc[$r][V.min(3) - 1]),
                        rq.dwords(acc[$r][V - 1]),
                    ]);
                    let mask: __mmask64 = if cols == 64 { !0 } else { (1u64 << cols) - 1 };
                    // SAFETY: the mask writes `o[r·n..][..cols]`, inside `o` (asserted above).
                    unsafe { _mm512_mask_storeu_epi8(op.add($r * n), mask, y) };
                } else if V == 2 && $r % 2 == 0 && $r + 1 < R {
                    // 32 columns of two rows: one narrowing, two stores.
                    let y = rq.narrow4([
                        rq.dwords(acc[$r][0]),
                        rq.dwords(acc[$r][V - 1]),
                        rq.dwords(acc[($r + 1).min(R - 1)][0]),
                        rq.dwords(acc[($r + 1).min(R - 1)][V - 1]),
                    ]);
                    let mask: __mmask32 = if cols == 32 { !0 } else { (1u32 << cols) - 1 };
                    // SAFETY: the masks write `o[r·n..][..cols]` and `o[(r + 1)·n..][..cols]`,
                    // inside `o` (`r + 1 < R`; asserted above).
                    unsafe {
                        _mm256_mask_storeu_epi8(op.add($r * n), mask, _mm512_castsi512_si256(y));
                        _mm256_mask_storeu_epi8(
                            op.add(($r + 1) * n),
                            mask,
                            _mm512_extracti64x4_epi64::<1>(y),
                        );
                    }
                } else if V != 2 || $r % 2 == 0 {
                    // Otherwise 16 columns at a time (the odd rows of `V == 2` went with the
                    // even ones).
                    for (v, &a) in acc[$r].iter().enumerate() {
                        let y = rq.apply(a);
                        let live = (cols - 16 * v).min(16);
                        let mask: __mmask16 = if live == 16 { !0 } else { (1u16 << live) - 1 };
                        // SAFETY: the mask writes `o[r·n + 16v..][..live]`, inside `o`:
                        // `r·n + 16v + live <= (R − 1)·n + cols` (asserted above).
                        unsafe { _mm_mask_storeu_epi8(op.add($r * n + 16 * v), mask, y) };
                    }
                }
            }
        )*};
    }
    rows!(0 1 2 3 4 5 6 7);
    const { assert!(R <= 8) };
}

/// Packs `b` as `[n, k]` (row `j` is column `j`) into `panel` (blocks of up to 4 vectors, see the
/// module docs) and writes each vector's lane sums of `b'` into `sums[v]`: 16 rows × 64 bytes at
/// a time, transposed as 16 × 16 dwords.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn pack_nt(b: &[i8], n: usize, k: usize, panel: &mut [u8], sums: &mut [__m512i]) {
    let k4 = k.div_ceil(4);
    let nv = n.div_ceil(16);
    assert!(b.len() >= n * k && panel.len() >= k4 * nv * 64 && sums.len() >= nv);
    let (bp, pp) = (b.as_ptr(), panel.as_mut_ptr());
    let ones = _mm512_set1_epi8(1);
    let x80 = _mm512_set1_epi8(-128);
    for (v, sum) in sums.iter_mut().enumerate().take(nv) {
        let (blk, vi) = (v / 4, v % 4);
        let vb = (nv - 4 * blk).min(4);
        let base = blk * k4 * 256;
        let live = (n - 16 * v).min(16);
        let mut acc = _mm512_setzero_si512();
        let mut t0 = 0;
        while t0 < k {
            let len = (k - t0).min(64);
            let (groups, q0) = (len.div_ceil(4), t0 / 4);
            let mask: __mmask64 = if len == 64 { !0 } else { (1u64 << len) - 1 };
            let flip = _mm512_maskz_mov_epi8(mask, x80);
            let rows: [__m512i; 16] = core::array::from_fn(|c| {
                if c < live {
                    // SAFETY: the unmasked bytes `(16v + c)·k + t0 .. + len` lie in row
                    // `16v + c < n` of `b` (asserted above); masked-off bytes are not read.
                    let r = unsafe { _mm512_maskz_loadu_epi8(mask, bp.add((16 * v + c) * k + t0)) };
                    _mm512_xor_si512(r, flip)
                } else {
                    _mm512_setzero_si512()
                }
            });
            let cols = gemm_avx512::transpose16(rows);
            for (j, cv) in cols.iter().enumerate() {
                if j < groups {
                    // SAFETY: group `q0 + j < k4` of vector `vi < vb` of block `blk`: inside the
                    // `k4·nv·64` bytes of `panel` (asserted above).
                    unsafe {
                        _mm512_storeu_si512(
                            pp.add(base + ((q0 + j) * vb + vi) * 64) as *mut __m512i,
                            *cv,
                        )
                    };
                    acc = _mm512_dpbusd_epi32(acc, *cv, ones);
                }
            }
            t0 += 64;
        }
        *sum = acc;
    }
}

/// Packs `b` as `[k, n]` into `panel` like [`pack_nt`], 4 rows × 64 columns at a time: bytes
/// interleaved into 4-byte groups within 128-bit lanes, then a 4 × 4 transpose of the lanes.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn pack_nn(b: &[i8], n: usize, k: usize, panel: &mut [u8], sums: &mut [__m512i]) {
    let k4 = k.div_ceil(4);
    let nv = n.div_ceil(16);
    assert!(b.len() >= n * k && panel.len() >= k4 * nv * 64 && sums.len() >= nv);
    let (bp, pp) = (b.as_ptr(), panel.as_mut_ptr());
    let ones = _mm512_set1_epi8(1);
    let x80 = _mm512_set1_epi8(-128);
    for blk in 0..nv.div_ceil(4) {
        let vb = (nv - 4 * blk).min(4);
        let c0 = 64 * blk;
        let cn = (n - c0).min(64);
        let mask: __mmask64 = if cn == 64 { !0 } else { (1u64 << cn) - 1 };
        let base = blk * k4 * 256;
        let mut acc = [_mm512_setzero_si512(); 4];
        for q in 0..k4 {
            let r: [__m512i; 4] = core::array::from_fn(|e| {
                let t = 4 * q + e;
                if t < k {
                    // SAFETY: the unmasked bytes `t·n + c0 .. + cn` lie in row `t < k` of `b`
                    // (`c0 + cn <= n`; asserted above); masked-off bytes are not read.
                    let v = unsafe { _mm512_maskz_loadu_epi8(mask, bp.add(t * n + c0)) };
                    _mm512_xor_si512(v, x80)
                } else {
                    _mm512_setzero_si512()
                }
            });
            let ab0 = _mm512_unpacklo_epi8(r[0], r[1]);
            let ab1 = _mm512_unpackhi_epi8(r[0], r[1]);
            let cd0 = _mm512_unpacklo_epi8(r[2], r[3]);
            let cd1 = _mm512_unpackhi_epi8(r[2], r[3]);
            // `e[i]`, 128-bit lane L: columns `16L + 4i .. + 4` of this block, 4 bytes each.
            let e = [
                _mm512_unpacklo_epi16(ab0, cd0),
                _mm512_unpackhi_epi16(ab0, cd0),
                _mm512_unpacklo_epi16(ab1, cd1),
                _mm512_unpackhi_epi16(ab1, cd1),
            ];
            let lo01 = _mm512_shuffle_i32x4::<0x44>(e[0], e[1]);
            let lo23 = _mm512_shuffle_i32x4::<0x44>(e[2], e[3]);
            let hi01 = _mm512_shuffle_i32x4::<0xEE>(e[0], e[1]);
            let hi23 = _mm512_shuffle_i32x4::<0xEE>(e[2], e[3]);
            let vecs = [
                _mm512_shuffle_i32x4::<0x88>(lo01, lo23),
                _mm512_shuffle_i32x4::<0xDD>(lo01, lo23),
                _mm512_shuffle_i32x4::<0x88>(hi01, hi23),
                _mm512_shuffle_i32x4::<0xDD>(hi01, hi23),
            ];
            for (vi, (&z, s)) in vecs.iter().zip(acc.iter_mut()).enumerate().take(vb) {
                // SAFETY: group `q < k4` of vector `vi < vb` of block `blk`: inside the
                // `k4·nv·64` bytes of `panel` (asserted above).
                unsafe {
                    _mm512_storeu_si512(pp.add(base + (q * vb + vi) * 64) as *mut __m512i, z)
                };
                *s = _mm512_dpbusd_epi32(*s, z, ones);
            }
        }
        sums[4 * blk..4 * blk + vb].copy_from_slice(&acc[..vb]);
    }
}

#[cfg(test)]
mod tests {
    //! [`eval_i8`] against [`super::super::reference::eval_i8`] on random shapes (tails of rows,
    //! columns and depth, batches, both layouts), zero points, multipliers, shifts and clamps.

    use super::super::{BatchMatMulParams, BatchMatMulShape};
    use super::*;
    use crate::ops::testing::Rng;
    use crate::ops::ClampI8;

    /// A random problem: usually small, sometimes attention-sized.
    fn case(rng: &mut Rng) -> (BatchMatMulParams, Vec<i8>, Vec<i8>) {
        let big = rng.one_in(4);
        let shape = BatchMatMulShape {
            batch: rng.dim(4),
            m: rng.dim(if big { 80 } else { 20 }),
            k: match rng.next_u64() % 4 {
                0 => rng.dim(MAX_K as u32 + 8),
                1 => [32, 64, 1, 4][rng.range(0, 3) as usize],
                _ => rng.dim(70),
            },
            n: rng.dim(if big { 270 } else { 70 }),
            transpose_b: rng.one_in(2),
        };
        let (la, lb, _) = shape.lens().unwrap();
        let zp = match rng.next_u64() % 8 {
            0 => rng.range(-(1 << 20), 1 << 20),
            _ => rng.zero_point(),
        };
        let (x, y) = (rng.range(-128, 127) as i8, rng.range(-128, 127) as i8);
        let activation = if rng.one_in(10) {
            ClampI8 { min: x, max: y }
        } else {
            ClampI8 {
                min: x.min(y),
                max: x.max(y),
            }
        };
        let p = BatchMatMulParams {
            shape,
            a_zero_point: rng.zero_point(),
            b_zero_point: rng.zero_point(),
            output_zero_point: zp,
            output_multiplier: match rng.next_u64() % 8 {
                0 => [i32::MAX, 1 << 30, 1, i32::MIN, -1][rng.range(0, 4) as usize],
                1 => rng.next_u64() as i32,
                _ => rng.range(1 << 30, i32::MAX),
            },
            output_shift: match rng.next_u64() % 8 {
                0 => [-31, -2, -1, 0, 30][rng.range(0, 4) as usize],
                _ => rng.range(-20, -2),
            },
            activation,
        };
        (p, rng.i8_vec(la), rng.i8_vec(lb))
    }

    #[test]
    fn bit_exact_to_reference_on_random_shapes() {
        let Some(cpu) = crate::arch::x86_vnni::avx512_detected() else {
            println!("skipped: AVX-512 VNNI BatchMatMul (CPU lacks AVX512-F/BW/VL/VNNI)");
            return;
        };
        let mut rng = Rng::new(0xB3A7);
        let mut ran = 0;
        for case_no in 0..1500 {
            let (p, a, b) = case(&mut rng);
            let (_, _, lo) = p.shape.lens().unwrap();
            let mut want = vec![0i8; lo];
            super::super::reference::eval_i8(&p, &a, &b, &mut want);
            let mut got = vec![0x55i8; lo];
            if eval_i8(cpu, &p, &a, &b, &mut got) {
                ran += 1;
                assert_eq!(got, want, "case {case_no}: {p:?}");
            } else {
                assert!(
                    got.iter().all(|&v| v == 0x55),
                    "case {case_no}: wrote when declining"
                );
            }
            // The kernel table's entry (this kernel or the general one) too.
            let mut got = vec![0i8; lo];
            super::super::eval_i8(&p, &a, &b, &mut got);
            assert_eq!(got, want, "case {case_no} (table): {p:?}");
        }
        // Most cases fit the fast form.
        assert!(ran > 1000, "only {ran} cases ran");
    }
}
