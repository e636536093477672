//! AVX-512 VNNI int8 Conv2D on 512-bit registers (`vpdpbusd zmm`), bit-exact to
//! [`super::reference::eval_i8`]; the form [`super::avx2`] runs first when the CPU has AVX512F,
//! BW, VL and VNNI ([`crate::arch::x86_avx512_conv::detected`]).
//!
//! The arithmetic is [`super::vnni`]'s: activations made unsigned by flipping their sign bit,
//! `u = x + 128`, padding taps given `u = zp + 128`, and
//! `Σ (x - zp)·w = Σ u·w - (zp + 128)·Σ w` with the second term (wrapping) added to the bias once
//! per output channel. All sums equal the reference's modulo 2³².
//!
//! - **Rows**: the convolution is a matrix product of a `pixels × k4` matrix of unsigned bytes
//!   (`k4 = kh·kw·in_c` rounded up to 4, zeros past the depth) by the weights. For a 1×1, stride
//!   1, unpadded convolution with `in_c` a multiple of 4 the rows are the input pixels
//!   themselves, only sign-flipped (sixty-four bytes per instruction); otherwise each row is the
//!   pixel's patch, copied from a sign-flipped padded copy of the input in whole chunks of 4, 8,
//!   16 or 32 bytes per kernel row (or built tap by tap when that copy does not fit).
//! - **Weights** are packed once per call in panels of sixteen channels × four reduction indices
//!   (64 bytes per reduction step; zeros past the depth and past `out_c`); `Σ w` per channel is
//!   one `vpdpbusd` of ones per step.
//! - **Tile**: up to six pixels × four panels (64 channels) in 24 accumulators; per reduction
//!   step, four weight loads and one broadcast of four bytes per pixel feed 24 `vpdpbusd`.
//! - **Requantization**: [`crate::arch::x86_avx512_conv`], sixteen lanes per step; four groups
//!   of one pixel are packed to 64 bytes at once.
//!
//! Nothing is allocated (about 40 KiB of stack, written only where a call uses it).

use core::arch::x86_64::*;
use core::mem::MaybeUninit;

use super::avx2::{build_patch, zeroed, Padded, PixelAt};
use super::vnni::Flip;
use super::Conv2dParams;
use crate::arch::x86_avx512_conv::{Finish16, Rq16};
use crate::ops::conv2d::requant_avx2::store_bytes;

/// Longest row (`kh·kw·in_c` rounded up to 4).
const K_MAX: usize = 2048;
/// Bytes of packed weights (`groups · k4 · 16`).
const W_MAX: usize = 16384;
/// Bytes of rows held at once (plus the slack of the chunked copies).
const X_MAX: usize = 16384;
/// Bytes of the padded input copy.
const PAD_MAX: usize = 8192;
/// Pixels per tile.
const PP: usize = 6;
/// Panels (groups of sixteen channels) per tile.
const NB: usize = 4;

/// The 512-bit kernel, or `false` (nothing written) when the layer exceeds its buffers.
///
/// # Safety
/// The CPU must support AVX2, AVX512F, AVX512BW, AVX512VL and AVX512VNNI. Requires a successful
/// [`super::check_i8`].
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
#[cfg_attr(target_os = "linux", link_section = ".text.sorted.edgeloop.conv")]
pub(crate) unsafe fn eval_i8(p: &Conv2dParams<'_>, input: &[i8], output: &mut [i8]) -> bool {
    let s = &p.shape;
    let in_c = s.input[3] as usize;
    let out_c = s.output[3] as usize;
    let [kh, kw] = s.kernel.map(|d| d as usize);
    let depth = kh * kw * in_c;
    let k4 = depth.next_multiple_of(4);
    let groups = out_c.div_ceil(16);
    if k4 > K_MAX || groups * k4 * 16 > W_MAX || k4 + 32 > X_MAX {
        return false;
    }
    let pad = &s.padding;
    let direct = kh == 1
        && kw == 1
        && s.stride == [1, 1]
        && pad.top == 0
        && pad.bottom == 0
        && pad.left == 0
        && pad.right == 0
        && k4 == in_c;
    let mut ws_buf = [const { MaybeUninit::<i8>::uninit() }; W_MAX];
    let ws: &mut [i8] = if depth == k4 {
        let part = &mut ws_buf[..groups * k4 * 16];
        // SAFETY: the caller guarantees AVX512F. With `depth == k4` the stores write every byte
        // of `part` (`k4/4` steps of 64 bytes per group), so it is initialised afterwards; `MaybeUninit<i8>` has the layout of `i8`.
        unsafe {
            pack_weights(p.weights, depth, k4, out_c, part.as_mut_ptr() as *mut i8);
            &mut *(part as *mut [MaybeUninit<i8>] as *mut [i8])
        }
    } else {
        let ws = zeroed(&mut ws_buf, groups * k4 * 16);
        // SAFETY: as above; `ws` holds `groups·k4·16` bytes.
        unsafe { pack_weights(p.weights, depth, k4, out_c, ws.as_mut_ptr()) };
        ws
    };
    let run = kw * in_c;
    // SAFETY (each arm): the caller guarantees the instructions and checked the params.
    unsafe {
        if direct || run > 16 {
            rows::<32>(p, input, output, ws, direct)
        } else if run > 8 {
            rows::<16>(p, input, output, ws, false)
        } else if run > 4 {
            rows::<8>(p, input, output, ws, false)
        } else {
            rows::<4>(p, input, output, ws, false)
        }
    }
    true
}

/// Packs every output channel: `dst[(g·k4/4 + t)·64 + 4j + e] = w[16g + j][4t + e]`: per group
/// and run of up to sixteen steps of four, sixteen (masked) row loads and one 16 × 16 transpose
/// of 32-bit lanes ([`crate::ops::gemm_avx512::transpose16`]; zeros past `out_c`); the remainder
/// of a depth that is not a multiple of 4 byte by byte (the rest of that step must be zero
/// beforehand). No gathers: on CPUs with the Gather Data Sampling mitigation they are slow.
///
/// # Safety
/// The CPU must support AVX512F; `dst` is valid for writes of `out_c.div_ceil(16) · k4 · 16`
/// bytes.
#[inline(always)]
unsafe fn pack_weights(weights: &[i8], depth: usize, k4: usize, out_c: usize, dst: *mut i8) {
    let full = depth / 4;
    let groups = out_c.div_ceil(16);
    assert!(weights.len() >= out_c * depth);
    // SAFETY (whole block): the caller guarantees AVX512F. Row `j < live` of group `g` reads
    // `cnt` dwords at `(16g + j)·depth + 4·t0`, ending at most at `(16g + j)·depth + 4·full`,
    // inside that channel's weights (`16g + j < out_c`); the stores write
    // `dst[(g·k4/4 + t)·64..][..64]` for `t < full <= k4/4`.
    unsafe {
        for g in 0..groups {
            let live = (out_c - 16 * g).min(16);
            let base = weights.as_ptr().add(16 * g * depth);
            let panel = dst.add(g * k4 * 16);
            let mut t0 = 0;
            while t0 < full {
                let cnt = (full - t0).min(16);
                let m: __mmask16 = if cnt == 16 { !0 } else { (1u16 << cnt) - 1 };
                let mut rows = [_mm512_setzero_si512(); 16];
                for (j, r) in rows.iter_mut().enumerate().take(live) {
                    *r = _mm512_maskz_loadu_epi32(m, base.add(j * depth + 4 * t0) as *const _);
                }
                let cols = crate::ops::gemm_avx512::transpose16(rows);
                for (i, v) in cols.iter().enumerate().take(cnt) {
                    _mm512_storeu_si512(panel.add((t0 + i) * 64) as *mut _, *v);
                }
                t0 += 16;
            }
        }
    }
    if full * 4 < depth {
        for oc in 0..out_c {
            let (g, j) = (oc / 16, oc % 16);
            let row = &weights[oc * depth..(oc + 1) * depth];
            for (e, &v) in row[4 * full..].iter().enumerate() {
                // SAFETY: `g·k4·16 + full·64 + 4j + e < (g + 1)·k4·16` (`full < k4/4`), inside
                // the caller's `dst`.
                unsafe { *dst.add(g * k4 * 16 + full * 64 + 4 * j + e) = v };
            }
        }
    }
}

/// `dst[i] = x[i] ^ 0x80` for every byte of `src`, sixty-four at a time.
///
/// # Safety
/// The CPU must support AVX512F; `dst` is valid for writes of `src.len()` bytes.
#[inline(always)]
unsafe fn flip(src: &[i8], dst: *mut u8) {
    let n = src.len();
    let mut i = 0;
    // SAFETY (whole block): the caller guarantees AVX512F and `dst`; every access is `i < n`.
    unsafe {
        let m = _mm512_set1_epi8(-128);
        while i + 64 <= n {
            let v = _mm512_loadu_si512(src.as_ptr().add(i) as *const _);
            _mm512_storeu_si512(dst.add(i) as *mut _, _mm512_xor_si512(v, m));
            i += 64;
        }
        while i < n {
            *dst.add(i) = (src[i] as u8) ^ 0x80;
            i += 1;
        }
    }
}

/// Builds the rows block by block and multiplies them by the packed weights `ws`; `CH` is the
/// chunk of a patch row copy.
///
/// # Safety
/// As [`eval_i8`].
#[inline(always)]
unsafe fn rows<const CH: usize>(
    p: &Conv2dParams<'_>,
    input: &[i8],
    output: &mut [i8],
    ws: &[i8],
    direct: bool,
) {
    let s = &p.shape;
    let [n, _, _, in_c] = s.input.map(|d| d as usize);
    let [_, oh, ow, _] = s.output.map(|d| d as usize);
    let [kh, kw] = s.kernel.map(|d| d as usize);
    let depth = kh * kw * in_c;
    let k4 = depth.next_multiple_of(4);
    let pixels = n * oh * ow;
    let zp = p.input_zero_point;
    let pad_u = (zp + 128) as u8;
    // SAFETY: the caller guarantees AVX512F and BW.
    let fin = unsafe { Finish16::new(p.output_zero_point, p.activation.min, p.activation.max) };
    let mut pad_buf = [const { MaybeUninit::<u8>::uninit() }; PAD_MAX];
    let padded = if direct {
        None
    } else {
        Padded::new::<CH>(p, input, pad_u, &Flip, &mut pad_buf)
    };
    // Rows per block, leaving room for the `PP - 1` rows past the last that a tile may read
    // (`k4 <= K_MAX` leaves at least two).
    let block = ((X_MAX - CH) / k4 - (PP - 1)).min(pixels);
    let len = (block + PP - 1) * k4;
    let mut xs_buf = [const { MaybeUninit::<u8>::uninit() }; X_MAX];
    let xs: &mut [u8] = if direct {
        // The first block's rows, written straight into the buffer, then zeros.
        let part = &mut xs_buf[..len];
        for v in &mut part[block * k4..] {
            v.write(0);
        }
        // SAFETY: the caller guarantees AVX512F; `flip` writes the first `block·k4` bytes of
        // `part` (the input holds `pixels·k4 >= block·k4` values) and the rest were zeroed, so
        // all of it is initialised afterwards.
        unsafe {
            flip(&input[..block * k4], part.as_mut_ptr() as *mut u8);
            &mut *(part as *mut [MaybeUninit<u8>] as *mut [u8])
        }
    } else {
        zeroed(&mut xs_buf, len + CH)
    };
    let mut at = PixelAt::new(oh, ow);
    let mut pix0 = 0;
    while pix0 < pixels {
        let cnt = block.min(pixels - pix0);
        if direct {
            if pix0 > 0 {
                let src = &input[pix0 * k4..(pix0 + cnt) * k4];
                assert!(src.len() <= xs.len());
                // SAFETY: `xs` holds at least `cnt·k4` bytes (asserted).
                unsafe { flip(src, xs.as_mut_ptr()) };
            }
        } else {
            for q in 0..cnt {
                match &padded {
                    Some(pd) => pd.copy_patch::<CH>(p, at.get(), &mut xs[q * k4..]),
                    None => build_patch(
                        p,
                        input,
                        at.get(),
                        &mut xs[q * k4..q * k4 + depth],
                        pad_u,
                        &Flip,
                    ),
                }
                at.next();
                for v in &mut xs[q * k4 + depth..(q + 1) * k4] {
                    *v = 0;
                }
            }
        }
        // SAFETY: the caller guarantees the instructions; `xs` holds `cnt` rows of `k4` bytes
        // and `PP - 1` more, `ws` every panel.
        unsafe { multiply_block(p, &xs[..len], cnt, pix0, ws, &fin, output) };
        pix0 += cnt;
    }
}

/// Multiplies one block of `cnt` rows (pixels `pix0..pix0 + cnt`) by every weight panel and
/// writes the requantized outputs. Kept out of line: [`rows`] has one copy per chunk size, this
/// (with its 12 tile shapes) only one.
///
/// # Safety
/// As [`eval_i8`]; `rows` holds `cnt + PP - 1` rows of `k4` bytes (the last `PP - 1` only
/// read by tiles whose results are dropped), `ws` every packed panel.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline(never)]
#[cfg_attr(target_os = "linux", link_section = ".text.sorted.edgeloop.conv")]
unsafe fn multiply_block(
    p: &Conv2dParams<'_>,
    rows: &[u8],
    cnt: usize,
    pix0: usize,
    ws: &[i8],
    fin: &Finish16,
    output: &mut [i8],
) {
    let s = &p.shape;
    let in_c = s.input[3] as usize;
    let out_c = s.output[3] as usize;
    let k4 = (s.kernel[0] as usize * s.kernel[1] as usize * in_c).next_multiple_of(4);
    let zp = p.input_zero_point;
    let groups = out_c.div_ceil(16);
    let ones = _mm512_set1_epi8(1);
    let mut g0 = 0;
    while g0 < groups {
        let nb = NB.min(groups - g0);
        let mut rq = [None::<Rq16>; NB];
        for (g, r) in rq.iter_mut().enumerate().take(nb) {
            let panel = &ws[(g0 + g) * k4 * 16..(g0 + g + 1) * k4 * 16];
            // SAFETY: the caller guarantees AVX512F and VNNI; `(g0 + g)·16 < out_c`, the
            // slices' length (check_i8); the loads read `panel[t·64..][..64]`, `t < k4/4`.
            unsafe {
                let mut v = Rq16::new(p.bias, p.output_multiplier, p.output_shift, (g0 + g) * 16);
                let mut sw = _mm512_setzero_si512();
                for t in 0..k4 / 4 {
                    let w = _mm512_loadu_si512(panel.as_ptr().add(t * 64) as *const _);
                    sw = _mm512_dpbusd_epi32(sw, ones, w);
                }
                // bias - (zp + 128)·Σw, wrapping.
                let corr = _mm512_mullo_epi32(sw, _mm512_set1_epi32(-(zp + 128)));
                v.bias = _mm512_add_epi32(v.bias, corr);
                *r = Some(v);
            }
        }
        let rq: [Rq16; NB] = rq.map(|r| r.unwrap_or(rq_placeholder()));
        let wpanels = &ws[g0 * k4 * 16..(g0 + nb) * k4 * 16];
        let c0 = g0 * 16;
        let mut q0 = 0;
        while q0 < cnt {
            let qn = PP.min(cnt - q0);
            let xq = &rows[q0 * k4..(q0 + PP) * k4];
            let out = Out {
                fin,
                rq: &rq,
                out_c,
                pix0: pix0 + q0,
                c0,
            };
            // SAFETY: the caller guarantees the instructions; `xq` holds `PP` rows of `k4`
            // bytes and `wpanels` `nb` panels of `k4·16`.
            unsafe {
                match nb {
                    4 => by_q::<4>(qn, xq, k4, wpanels, &out, output),
                    3 => by_q::<3>(qn, xq, k4, wpanels, &out, output),
                    2 => by_q::<2>(qn, xq, k4, wpanels, &out, output),
                    _ => by_q::<1>(qn, xq, k4, wpanels, &out, output),
                }
            }
            q0 += qn;
        }
        g0 += nb;
    }
}

/// A group's constants for lanes no tile uses.
#[inline(always)]
fn rq_placeholder() -> Rq16 {
    // SAFETY: only called inside the kernel, which runs with AVX512F; the channel range is
    // `0..1` of a one-channel table.
    unsafe { Rq16::new(None, &[0], &[0], 0) }
}

/// Where a tile's outputs go.
struct Out<'a> {
    fin: &'a Finish16,
    rq: &'a [Rq16; NB],
    out_c: usize,
    pix0: usize,
    c0: usize,
}

/// Runs `qn` pixels by `B` panels: a tile of six, three or one rows (the smallest that covers
/// `qn`; rows past `qn` are computed and dropped), so that there are 12 tile shapes, not 24.
///
/// # Safety
/// As [`eval_i8`]; `xq` holds `PP ≥ qn` rows of `k4` bytes, `ws` `B` panels of `k4·16`.
#[inline(always)]
unsafe fn by_q<const B: usize>(
    qn: usize,
    xq: &[u8],
    k4: usize,
    ws: &[i8],
    out: &Out<'_>,
    output: &mut [i8],
) {
    let mut bias = [out.rq[0].bias; B];
    for (g, v) in bias.iter_mut().enumerate() {
        *v = out.rq[g].bias;
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        match qn {
            4.. => store::<6, B>(tile::<6, B>(xq, k4, ws, bias), qn, out, output),
            2 | 3 => store::<3, B>(tile::<3, B>(xq, k4, ws, bias), qn, out, output),
            _ => store::<1, B>(tile::<1, B>(xq, k4, ws, bias), qn, out, output),
        }
    }
}

/// `Q` pixels × `B` panels of sums: `acc[q][g] = bias[g] + Σ_t u_q[4t..4t+4] · panel_g[t]`.
///
/// # Safety
/// The CPU must support AVX512F and AVX512VNNI.
#[inline(always)]
unsafe fn tile<const Q: usize, const B: usize>(
    xs: &[u8],
    k4: usize,
    ws: &[i8],
    bias: [__m512i; B],
) -> [[__m512i; B]; Q] {
    let kq = k4 / 4;
    assert!(xs.len() >= Q * k4 && ws.len() >= B * kq * 64);
    let (xp, wp) = (xs.as_ptr(), ws.as_ptr());
    let mut acc = [bias; Q];
    for t in 0..kq {
        // SAFETY: `t < kq`: the loads read `wp[g·kq·64 + t·64..][..64]` (`g < B`) and
        // `xp[q·k4 + 4t..][..4]` (`q < Q`), inside the lengths asserted above. The caller
        // guarantees the instructions.
        unsafe {
            let mut wv = [_mm512_setzero_si512(); B];
            for (g, v) in wv.iter_mut().enumerate() {
                *v = _mm512_loadu_si512(wp.add(g * kq * 64 + t * 64) as *const _);
            }
            for (q, row) in acc.iter_mut().enumerate() {
                let quad = (xp.add(q * k4 + 4 * t) as *const i32).read_unaligned();
                let xb = _mm512_set1_epi32(quad);
                for (a, v) in row.iter_mut().zip(&wv) {
                    *a = _mm512_dpbusd_epi32(*a, xb, *v);
                }
            }
        }
    }
    acc
}

/// Requantizes a tile's first `qn` pixels and writes them, channels
/// `c0..min(c0 + 16·B, out_c)`.
///
/// # Safety
/// The CPU must support AVX2, AVX512F and AVX512BW; `output` holds those pixels.
#[inline(always)]
unsafe fn store<const Q: usize, const B: usize>(
    acc: [[__m512i; B]; Q],
    qn: usize,
    out: &Out<'_>,
    output: &mut [i8],
) {
    for (q, a) in acc.iter().enumerate().take(qn) {
        // SAFETY: forwarded from the caller.
        unsafe { store_pixel::<B>(a, out, out.pix0 + q, output) };
    }
}

/// Requantizes one pixel's `B` panels of sums and writes them. Out of line, so that the requant
/// code exists once per panel count rather than once per tile shape.
///
/// # Safety
/// The CPU must support AVX2, AVX512F and AVX512BW; `output` holds pixel `pix`.
#[target_feature(enable = "avx2,avx512f,avx512bw")]
#[inline(never)]
#[cfg_attr(target_os = "linux", link_section = ".text.sorted.edgeloop.conv")]
unsafe fn store_pixel<const B: usize>(
    a: &[__m512i; B],
    out: &Out<'_>,
    pix: usize,
    output: &mut [i8],
) {
    let (fin, rq, out_c, c0) = (out.fin, out.rq, out.out_c, out.c0);
    let row = &mut output[pix * out_c..(pix + 1) * out_c];
    // SAFETY (whole block): the caller guarantees the instructions; stores are within `row`.
    unsafe {
        if B == 4 && c0 + 64 <= out_c {
            let v = fin.four([
                rq[0].requant(a[0]),
                rq[1].requant(a[1]),
                rq[2].requant(a[2]),
                rq[3].requant(a[3]),
            ]);
            _mm512_storeu_si512(row.as_mut_ptr().add(c0) as *mut _, v);
            return;
        }
        for (g, (&acc_g, r)) in a.iter().zip(rq).enumerate() {
            let cg = c0 + 16 * g;
            store_bytes(
                fin.one(r.requant(acc_g)),
                &mut row[cg..(cg + 16).min(out_c)],
            );
        }
    }
}
