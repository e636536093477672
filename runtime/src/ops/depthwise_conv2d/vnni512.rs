//! AVX-512 VNNI int8 DepthwiseConv2D (`vpdpbusd zmm`), bit-exact to
//! [`super::reference::eval_i8`]; run first by [`super::avx2`] when the CPU has AVX512F, BW, VL
//! and VNNI, for depth multiplier 1, kernels at most 4 wide and no dilation along the width
//! (otherwise that module's kernels run).
//!
//! - **Unsigned activations**: `u = x + 128` (sign bit flipped), padding taps `u = zp + 128`, and
//!   `Σ (x - zp)·w = Σ u·w - (zp + 128)·Σ w`, the second term (wrapping) added to the bias once
//!   per channel, as in [`crate::ops::conv2d::vnni`]: every sum equals the reference's modulo 2³².
//! - **Row quads**: for every position `(y, x)` of the padded input and channel `c`, the four
//!   bytes `u(y, x..x + 4, c)` are stored together (one 32-bit lane), so one `vpdpbusd` adds a
//!   whole kernel row (`kw ≤ 4` taps, the weights of taps past `kw` zero) for sixteen channels.
//!   They are built sixty-four channels at a time from four shifted loads of a padded row by
//!   `vpunpck{l,h}bw` and `vpunpck{l,h}wd`, which work within 128-bit lanes: vector `i` of a
//!   block of 64 channels holds, in 32-bit lane `4k + d`, channel `16k + 4i + d`. The weights
//!   are laid out the same way once per call.
//! - **Requantization**: [`crate::arch::x86_avx512_conv`]; `vpackssdw` + `vpacksswb` of the four
//!   vectors put 128-bit lane `k`'s four lanes of each vector in turn, which is exactly channel
//!   order again (bytes `16k + 4i + d`).
//!
//! Nothing is allocated (at most 60 KiB of stack, written only where a call uses it).

use core::arch::x86_64::*;
use core::mem::MaybeUninit;

use super::DepthwiseConv2dParams;
use crate::arch::x86_avx512_conv::{Finish16, Rq16};

/// Bytes of row quads (`n · hp · wp · c64 · 4`).
const R_MAX: usize = 49152;
/// Bytes of one padded, sign-flipped input row (`(wp + 3) · c64`).
const ROW_MAX: usize = 4096;
/// Bytes of the laid-out weights (`kh · c64 · 4`).
const W_MAX: usize = 8192;

/// The channel of lane `j` of vector `i` in the block of 64 channels starting at `c0`.
#[inline(always)]
fn lane_channel(c0: usize, i: usize, j: usize) -> usize {
    c0 + 16 * (j / 4) + 4 * i + j % 4
}

/// The 512-bit kernel, or `false` (nothing written) when the layer is not one it runs.
///
/// # Safety
/// The CPU must support AVX2, AVX512F, AVX512BW, AVX512VL and AVX512VNNI. Requires a successful
/// [`super::check_i8`].
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) unsafe fn eval_i8(
    p: &DepthwiseConv2dParams<'_>,
    input: &[i8],
    output: &mut [i8],
) -> bool {
    let s = &p.shape;
    let [n, h, w, c] = s.input.map(|d| d as usize);
    let [_, oh, ow, _] = s.output.map(|d| d as usize);
    let [kh, kw] = s.kernel.map(|d| d as usize);
    let pad = &s.padding;
    let (top, left) = (pad.top as usize, pad.left as usize);
    let hp = h + top + pad.bottom as usize;
    let wp = w + left + pad.right as usize;
    let c64 = c.div_ceil(64) * 64;
    let blocks = c64 / 64;
    let rrow = wp * c64 * 4;
    let fits = p.depth_multiplier == 1
        && kw <= 4
        && s.dilation[1] == 1
        && n.checked_mul(hp)
            .and_then(|v| v.checked_mul(rrow))
            .is_some_and(|v| v <= R_MAX)
        && (wp + 3) * c64 <= ROW_MAX
        && kh * c64 * 4 <= W_MAX;
    if !fits {
        return false;
    }
    let zp = p.input_zero_point;
    let pad_u = (zp + 128) as u8;

    // Weights: wq[(ky·blocks + blk)·256 + i·64 + 4j + e] = w[ky][e][lane_channel(64·blk, i, j)].
    let mut wq_buf = [const { MaybeUninit::<i8>::uninit() }; W_MAX];
    let wq = crate::ops::conv2d::avx2::zeroed(&mut wq_buf, kh * c64 * 4);
    for ky in 0..kh {
        for blk in 0..blocks {
            for i in 0..4 {
                for j in 0..16 {
                    let ch = lane_channel(64 * blk, i, j);
                    if ch >= c {
                        continue;
                    }
                    for e in 0..kw {
                        wq[(ky * blocks + blk) * 256 + i * 64 + 4 * j + e] =
                            p.weights[(ky * kw + e) * c + ch];
                    }
                }
            }
        }
    }

    // Row quads: r[((b·hp + y)·wp + x)·c64·4 + blk·256 + i·64 + 4j + e] = u(y, x + e, ch).
    let mut r_buf = [const { MaybeUninit::<u8>::uninit() }; R_MAX];
    let rp = r_buf.as_mut_ptr() as *mut u8;
    let mut row_buf = [const { MaybeUninit::<u8>::uninit() }; ROW_MAX];
    let row_len = (wp + 3) * c64;
    for v in &mut row_buf[..row_len] {
        v.write(pad_u);
    }
    // SAFETY: the first `row_len` bytes were initialised just above.
    let prow = unsafe { &mut *(&mut row_buf[..row_len] as *mut [MaybeUninit<u8>] as *mut [u8]) };
    // SAFETY (whole block): the caller guarantees the instructions. Stores write
    // `rp[(b·hp + y)·rrow..][..rrow]` (inside `n·hp·rrow <= R_MAX`, checked above); row loads
    // read `prow[(x + e)·c64 + 64·blk..][..64]` with `x + e <= wp + 2`, inside `row_len`.
    unsafe {
        let pad_v = _mm512_set1_epi8(pad_u as i8);
        let flip = _mm512_set1_epi8(-128);
        for b in 0..n {
            for y in 0..hp {
                let dst = rp.add((b * hp + y) * rrow);
                if y < top || y >= top + h {
                    for k in 0..rrow / 64 {
                        _mm512_storeu_si512(dst.add(64 * k) as *mut _, pad_v);
                    }
                    continue;
                }
                // The row's pixels, sign-flipped; the padding columns and channels past `c`
                // keep `pad_u` from the initial fill.
                for x in 0..w {
                    let src = &input[((b * h + y - top) * w + x) * c..][..c];
                    let d = &mut prow[(left + x) * c64..][..c];
                    let mut k = 0;
                    while k + 64 <= c {
                        let v = _mm512_loadu_si512(src.as_ptr().add(k) as *const _);
                        _mm512_storeu_si512(
                            d.as_mut_ptr().add(k) as *mut _,
                            _mm512_xor_si512(v, flip),
                        );
                        k += 64;
                    }
                    for (dv, &sv) in d[k..].iter_mut().zip(&src[k..]) {
                        *dv = (sv as u8) ^ 0x80;
                    }
                }
                let pr = prow.as_ptr();
                for x in 0..wp {
                    for blk in 0..blocks {
                        let sp = pr.add(x * c64 + 64 * blk);
                        let a = _mm512_loadu_si512(sp as *const _);
                        let bb = _mm512_loadu_si512(sp.add(c64) as *const _);
                        let cc = _mm512_loadu_si512(sp.add(2 * c64) as *const _);
                        let dd = _mm512_loadu_si512(sp.add(3 * c64) as *const _);
                        let ab_lo = _mm512_unpacklo_epi8(a, bb);
                        let ab_hi = _mm512_unpackhi_epi8(a, bb);
                        let cd_lo = _mm512_unpacklo_epi8(cc, dd);
                        let cd_hi = _mm512_unpackhi_epi8(cc, dd);
                        let o = dst.add(x * c64 * 4 + 256 * blk);
                        _mm512_storeu_si512(o as *mut _, _mm512_unpacklo_epi16(ab_lo, cd_lo));
                        _mm512_storeu_si512(
                            o.add(64) as *mut _,
                            _mm512_unpackhi_epi16(ab_lo, cd_lo),
                        );
                        _mm512_storeu_si512(
                            o.add(128) as *mut _,
                            _mm512_unpacklo_epi16(ab_hi, cd_hi),
                        );
                        _mm512_storeu_si512(
                            o.add(192) as *mut _,
                            _mm512_unpackhi_epi16(ab_hi, cd_hi),
                        );
                    }
                }
            }
        }
    }

    // SAFETY: the caller guarantees AVX512F and BW.
    let fin = unsafe { Finish16::new(p.output_zero_point, p.activation.min, p.activation.max) };
    let (sh, sw, dh) = (
        s.stride[0] as usize,
        s.stride[1] as usize,
        s.dilation[0] as usize,
    );
    // Geometry (`check_spatial`) keeps every window inside the padded input: the last row read
    // is `(oh - 1)·sh + (kh - 1)·dh < hp`, the last quad `(ow - 1)·sw < wp`.
    assert!((oh - 1) * sh + (kh - 1) * dh < hp && (ow - 1) * sw < wp);
    let rp = rp as *const u8;
    let wqp = wq.as_ptr();
    for blk in 0..blocks {
        let c0 = 64 * blk;
        // SAFETY: the caller guarantees the instructions; lane channels are below `c`, the
        // length of the per-channel slices (check_i8); the weight loads read
        // `wq[(ky·blocks + blk)·256 + 64·i..][..64]` inside `kh·c64·4`.
        let (rq, bias) = unsafe {
            let ones = _mm512_set1_epi8(1);
            let corr = _mm512_set1_epi32(-(zp + 128));
            let rq: [Rq16; 4] = core::array::from_fn(|i| {
                Rq16::gather(p.bias, p.output_multiplier, p.output_shift, |j| {
                    let ch = lane_channel(c0, i, j);
                    (ch < c).then_some(ch)
                })
            });
            let mut bias = [_mm512_setzero_si512(); 4];
            for (i, bv) in bias.iter_mut().enumerate() {
                let mut sw = _mm512_setzero_si512();
                for ky in 0..kh {
                    let wv =
                        _mm512_loadu_si512(wqp.add((ky * blocks + blk) * 256 + 64 * i) as *const _);
                    sw = _mm512_dpbusd_epi32(sw, ones, wv);
                }
                *bv = _mm512_add_epi32(rq[i].bias, _mm512_mullo_epi32(sw, corr));
            }
            (rq, bias)
        };
        let valid = (c - c0).min(64);
        let mask: u64 = if valid == 64 { !0 } else { (1u64 << valid) - 1 };
        let mut pixel = 0;
        for b in 0..n {
            for oy in 0..oh {
                for ox in 0..ow {
                    let base = ((b * hp + oy * sh) * wp + ox * sw) * c64 * 4 + 256 * blk;
                    // SAFETY: the caller guarantees the instructions. Loads read
                    // `r[base + ky·dh·rrow + 64·i..][..64]`, inside the rows written above (the
                    // assertion); weights as above; the store writes `valid` bytes at
                    // `output[pixel·c + c0..]`, inside the pixel's `c` values.
                    unsafe {
                        let mut acc = bias;
                        for ky in 0..kh {
                            let rrp = rp.add(base + ky * dh * rrow);
                            let wk = wqp.add((ky * blocks + blk) * 256);
                            for (i, a) in acc.iter_mut().enumerate() {
                                let x = _mm512_loadu_si512(rrp.add(64 * i) as *const _);
                                let wv = _mm512_loadu_si512(wk.add(64 * i) as *const _);
                                *a = _mm512_dpbusd_epi32(*a, x, wv);
                            }
                        }
                        let v = fin.four_lanes([
                            rq[0].requant(acc[0]),
                            rq[1].requant(acc[1]),
                            rq[2].requant(acc[2]),
                            rq[3].requant(acc[3]),
                        ]);
                        let out = output[pixel * c + c0..pixel * c + c0 + valid].as_mut_ptr();
                        _mm512_mask_storeu_epi8(out, mask, v);
                    }
                    pixel += 1;
                }
            }
        }
    }
    true
}
