//! AVX-512 VNNI int8 DepthwiseConv2D (`vpdpbusd zmm`), bit-exact to
//! [`super::reference::eval_i8`]; run first by [`super::avx2`] when the CPU has AVX512F, BW, VL
//! and VNNI, for depth multiplier 1, kernels at most 4 wide and no dilation along the width
//! (otherwise that module's kernels run).
//!
//! - **Unsigned activations**: `u = x + 128` (sign bit flipped), padding taps `u = zp + 128`, and
//!   `Σ (x - zp)·w = Σ u·w - (zp + 128)·Σ w`, the second term (wrapping) added to the bias once
//!   per channel, as in [`crate::ops::conv2d::vnni`]: every sum equals the reference's modulo 2³².
//! - **Row quads**: for an input row `y` of the padded input, every output column `ox` (window
//!   start `x = ox·sw`) and channel `c`, the four bytes `u(y, x..x + 4, c)` are stored together
//!   (one 32-bit lane), so one `vpdpbusd` adds a whole kernel row (`kw ≤ 4` taps, the weights of
//!   taps past `kw` zero) for sixteen channels. They are built sixty-four channels at a time from
//!   four shifted loads of a padded, sign-flipped copy of the row by `vpunpck{l,h}bw` and
//!   `vpunpck{l,h}wd`, which work within 128-bit lanes: vector `i` of a block of 64 channels
//!   holds, in 32-bit lane `4k + d`, channel `16k + 4i + d`. The weights are laid out the same
//!   way (by the same shuffles) once per block.
//! - **Rolling rows**: one block of 64 channels at a time, the quads of the input rows an
//!   output row reads (`span = (kh - 1)·dh + 1` of them) are kept in a ring of `span` rows, each
//!   input row built once, when the first output row that reads it comes up, so the working set
//!   stays in L1 whatever the input's height.
//! - **Requantization**: [`crate::arch::x86_avx512_conv`]; `vpackssdw` + `vpacksswb` of the four
//!   vectors put 128-bit lane `k`'s four lanes of each vector in turn, which is exactly channel
//!   order again (bytes `16k + 4i + d`).
//!
//! Nothing is allocated (at most 28 KiB of stack, written only where a call uses it).

use core::arch::x86_64::*;
use core::mem::MaybeUninit;

use super::DepthwiseConv2dParams;
use crate::arch::x86_avx512_conv::{Finish16, Rq16};

/// Bytes of the ring of row quads (`span · ow · 256`).
const RING_MAX: usize = 16384;
/// Bytes of one padded, sign-flipped input row of one block (`(wp + 3) · 64`).
const ROW_MAX: usize = 8192;
/// Kernel rows on this path (the laid-out weights of one block are `kh · 256` bytes).
const KH_MAX: usize = 16;

/// The channel of lane `j` of vector `i` in the block of 64 channels starting at `c0`.
#[inline(always)]
fn lane_channel(c0: usize, i: usize, j: usize) -> usize {
    c0 + 16 * (j / 4) + 4 * i + j % 4
}

/// The quads of four vectors of 64 bytes: vector `i` of the result holds, in 32-bit lane
/// `4k + d`, the bytes `(a, b, c, d)[16k + 4i + d]`.
///
/// # Safety
/// The CPU must support AVX512BW.
#[inline(always)]
unsafe fn quads(a: __m512i, b: __m512i, c: __m512i, d: __m512i) -> [__m512i; 4] {
    // SAFETY (whole body): the caller guarantees AVX512BW.
    unsafe {
        let ab_lo = _mm512_unpacklo_epi8(a, b);
        let ab_hi = _mm512_unpackhi_epi8(a, b);
        let cd_lo = _mm512_unpacklo_epi8(c, d);
        let cd_hi = _mm512_unpackhi_epi8(c, d);
        [
            _mm512_unpacklo_epi16(ab_lo, cd_lo),
            _mm512_unpackhi_epi16(ab_lo, cd_lo),
            _mm512_unpacklo_epi16(ab_hi, cd_hi),
            _mm512_unpackhi_epi16(ab_hi, cd_hi),
        ]
    }
}

/// The 512-bit kernel, or `false` (nothing written) when the layer is not one it runs.
///
/// # Safety
/// The CPU must support AVX2, AVX512F, AVX512BW, AVX512VL and AVX512VNNI. Requires a successful
/// [`super::check_i8`].
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
#[cfg_attr(target_os = "linux", link_section = ".text.sorted.edgeloop.conv")]
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
    let (sh, sw, dh) = (
        s.stride[0] as usize,
        s.stride[1] as usize,
        s.dilation[0] as usize,
    );
    let span = (kh - 1) * dh + 1;
    let rrow = ow * 256;
    let fits = p.depth_multiplier == 1
        && kw <= 4
        && kh <= KH_MAX
        && s.dilation[1] == 1
        && span.checked_mul(rrow).is_some_and(|v| v <= RING_MAX)
        && (wp + 3) * 64 <= ROW_MAX;
    if !fits {
        return false;
    }
    // Geometry (`check_spatial`) keeps every window inside the padded input: the last row read
    // is `(oh - 1)·sh + span - 1 < hp`, the last quad's taps `(ow - 1)·sw + kw - 1 < wp`.
    assert!((oh - 1) * sh + span <= hp && (ow - 1) * sw + kw <= wp);
    let zp = p.input_zero_point;
    let pad_u = (zp + 128) as u8;

    let mut row_buf = [const { MaybeUninit::<u8>::uninit() }; ROW_MAX];
    let row_len = (wp + 3) * 64;
    for v in &mut row_buf[..row_len] {
        v.write(pad_u);
    }
    // SAFETY: the first `row_len` bytes were initialised just above.
    let prow = unsafe { &mut *(&mut row_buf[..row_len] as *mut [MaybeUninit<u8>] as *mut [u8]) };
    let prow = prow.as_mut_ptr();
    let mut ring_buf = [const { MaybeUninit::<u8>::uninit() }; RING_MAX];
    let ring = ring_buf.as_mut_ptr() as *mut u8;
    let mut wq_buf = [const { MaybeUninit::<u8>::uninit() }; KH_MAX * 256];
    let wq = wq_buf.as_mut_ptr() as *mut u8;

    // SAFETY: the caller guarantees AVX512F and BW.
    let fin = unsafe { Finish16::new(p.output_zero_point, p.activation.min, p.activation.max) };
    for c0 in (0..c).step_by(64) {
        let valid = (c - c0).min(64);
        let mask: u64 = if valid == 64 { !0 } else { (1u64 << valid) - 1 };
        // SAFETY (whole block): the caller guarantees the instructions; lane channels are below
        // `c`, the length of the per-channel slices (check_i8). Weight loads read `valid` bytes
        // at `weights[(ky·kw + e)·c + c0..]`, inside `kh·kw·c`; the laid-out weights are
        // `wq[ky·256..][..256]`, `ky < kh <= KH_MAX`.
        let (rq, bias) = unsafe {
            let ones = _mm512_set1_epi8(1);
            let mut sw4 = [_mm512_setzero_si512(); 4];
            for ky in 0..kh {
                let tap: [__m512i; 4] = core::array::from_fn(|e| {
                    if e < kw {
                        _mm512_maskz_loadu_epi8(
                            mask,
                            p.weights.as_ptr().add((ky * kw + e) * c + c0) as *const _,
                        )
                    } else {
                        _mm512_setzero_si512()
                    }
                });
                let wv = quads(tap[0], tap[1], tap[2], tap[3]);
                for i in 0..4 {
                    _mm512_storeu_si512(wq.add(ky * 256 + 64 * i) as *mut _, wv[i]);
                    sw4[i] = _mm512_dpbusd_epi32(sw4[i], ones, wv[i]);
                }
            }
            let corr = _mm512_set1_epi32(-(zp + 128));
            let rq: [Rq16; 4] = core::array::from_fn(|i| {
                let mut chan = [None; 16];
                for (j, ch) in chan.iter_mut().enumerate() {
                    let x = lane_channel(c0, i, j);
                    if x < c {
                        *ch = Some(x);
                    }
                }
                Rq16::gather(p.bias, p.output_multiplier, p.output_shift, &chan)
            });
            let bias: [__m512i; 4] = core::array::from_fn(|i| {
                _mm512_add_epi32(rq[i].bias, _mm512_mullo_epi32(sw4[i], corr))
            });
            (rq, bias)
        };
        let wqp = wq as *const u8;
        for b in 0..n {
            // Padded rows `..built` of this image have been built (or skipped: not read).
            let mut built = 0;
            for oy in 0..oh {
                let y0 = oy * sh;
                for y in built.max(y0)..y0 + span {
                    // SAFETY: `y % span < span`: a row inside the ring (`span·rrow <= RING_MAX`).
                    let dst = unsafe { ring.add((y % span) * rrow) };
                    // SAFETY: the caller guarantees the instructions. Stores write
                    // `dst[..rrow]`, inside the ring. Row
                    // loads read `valid` bytes of input pixel `(b, y - top, x)` at channel
                    // `c0`, inside the input; `prow` stores write `prow[(left + x)·64..][..64]`
                    // with `left + x < wp`, and quad loads read `prow[(ox·sw + e)·64..][..64]`
                    // with `ox·sw + e <= wp + 2`, inside `row_len`.
                    unsafe {
                        if y < top || y >= top + h {
                            let pad_v = _mm512_set1_epi8(pad_u as i8);
                            for k in 0..rrow / 64 {
                                _mm512_storeu_si512(dst.add(64 * k) as *mut _, pad_v);
                            }
                            continue;
                        }
                        // The row's pixels, sign-flipped; the padding columns keep `pad_u` from
                        // the initial fill.
                        let flip = _mm512_set1_epi8(-128);
                        let src = input.as_ptr().add(((b * h + y - top) * w) * c + c0);
                        for x in 0..w {
                            let v = _mm512_maskz_loadu_epi8(mask, src.add(x * c) as *const _);
                            _mm512_storeu_si512(
                                prow.add((left + x) * 64) as *mut _,
                                _mm512_xor_si512(v, flip),
                            );
                        }
                        for ox in 0..ow {
                            let sp = prow.add(ox * sw * 64);
                            let q = quads(
                                _mm512_loadu_si512(sp as *const _),
                                _mm512_loadu_si512(sp.add(64) as *const _),
                                _mm512_loadu_si512(sp.add(128) as *const _),
                                _mm512_loadu_si512(sp.add(192) as *const _),
                            );
                            for (i, v) in q.iter().enumerate() {
                                _mm512_storeu_si512(dst.add(ox * 256 + 64 * i) as *mut _, *v);
                            }
                        }
                    }
                }
                built = y0 + span;
                // The ring row of each kernel row.
                let mut rows = [ring as *const u8; KH_MAX];
                for (ky, r) in rows.iter_mut().enumerate().take(kh) {
                    // SAFETY: `(y0 + ky·dh) % span < span`: inside the ring.
                    *r = unsafe { ring.add(((y0 + ky * dh) % span) * rrow) };
                }
                let out_row = ((b * oh + oy) * ow) * c + c0;
                for ox in 0..ow {
                    // SAFETY: the caller guarantees the instructions. Loads read
                    // `ring[row + ox·256 + 64·i..][..64]`, inside the rows built above, and
                    // `wq[ky·256 + 64·i..][..64]`; the store writes `valid` bytes at
                    // `output[pixel·c + c0..]`, inside the pixel's `c` values.
                    unsafe {
                        let mut acc = bias;
                        for (ky, &r) in rows.iter().enumerate().take(kh) {
                            let rp = r.add(ox * 256);
                            let wk = wqp.add(ky * 256);
                            for (i, a) in acc.iter_mut().enumerate() {
                                let x = _mm512_loadu_si512(rp.add(64 * i) as *const _);
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
                        let out = output[out_row + ox * c..][..valid].as_mut_ptr();
                        _mm512_mask_storeu_epi8(out, mask, v);
                    }
                }
            }
        }
    }
    true
}
