//! VNNI int8 Conv2D over unsigned-times-signed bytes (`vpdpbusd`), bit-exact to
//! [`super::reference::eval_i8`]; the form [`super::avx2`] runs when the CPU has AVX-VNNI or
//! AVX512-VNNI (either encoding: [`crate::arch::x86_vnni`]).
//!
//! `vpdpbusd` multiplies four unsigned bytes by four signed bytes and adds the four products to a
//! 32-bit lane, without intermediate saturation (each product is at most 255·128 in magnitude and
//! the lane add wraps), so it computes exact sums of `u8 · i8` products modulo 2³². Activations
//! are made unsigned by flipping their sign bit, `u = x + 128` in `[0, 255]`, and
//!
//! `Σ (x - zp)·w = Σ u·w - (zp + 128)·Σ w`
//!
//! over every tap, where a tap in the padding is given `u = zp + 128` (also in `[0, 255]`) so that
//! it contributes `(zp + 128 - zp - 128)·w = 0`, as the reference's skipped tap does. The second
//! term is computed once per output channel (wrapping) and added to the bias. Weights are packed
//! per call in panels of eight channels × four reduction indices (32 bytes, zeros past the depth
//! and past `out_c`); patches are written per pixel as bytes. The tile, four pixels × sixteen
//! channels, broadcasts four patch bytes per pixel and multiplies them by two panels' vectors.
//! All sums equal the reference's modulo 2³²; requantization is [`super::requant_avx2`].
//! Nothing is allocated (about 17 KiB of stack, written only where a call uses it).

use core::arch::x86_64::*;
use core::mem::MaybeUninit;

use super::avx2::{build_patch, store, zeroed, CopyIn, Padded, PixelAt};
use super::requant_avx2::{Finish, Rq8};
use super::Conv2dParams;
use crate::arch::x86_vnni::Vnni;

/// Output pixels per tile.
const P: usize = 4;
/// Longest patch (`kh·kw·in_c` rounded up to 4) on this path.
const K_MAX: usize = 1024;
/// Bytes of packed weights per chunk of output channels.
const W_MAX: usize = 8192;
/// Groups of eight output channels per chunk.
const G_MAX: usize = 16;
/// Bytes of the padded input copy ([`Padded`]); larger inputs build patches from the input.
const PAD_MAX: usize = 8192;
/// Chunk of a patch row copy, in bytes.
const CH: usize = 32;

/// The `vpdpbusd` kernel, or `false` (nothing written) when the patch exceeds [`K_MAX`].
///
/// # Safety
/// The CPU must support AVX2 and `V`'s encoding. Requires a successful [`super::check_i8`].
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn eval_i8<V: Vnni>(
    p: &Conv2dParams<'_>,
    input: &[i8],
    output: &mut [i8],
) -> bool {
    let s = &p.shape;
    let [n, _, _, in_c] = s.input.map(|d| d as usize);
    let [_, oh, ow, out_c] = s.output.map(|d| d as usize);
    let [kh, kw] = s.kernel.map(|d| d as usize);
    let depth = kh * kw * in_c;
    let k4 = depth.next_multiple_of(4);
    if k4 > K_MAX {
        return false;
    }
    // One panel (eight channels) is `k4 · 8` bytes; k4 ≤ K_MAX keeps it within W_MAX.
    let panel = k4 * 8;
    let chunk = (W_MAX / panel).min(G_MAX);
    let groups = out_c.div_ceil(8);
    let pixels = n * oh * ow;
    let zp = p.input_zero_point;
    // The unsigned code of the input zero point: what a padding tap holds.
    let pad_u = (zp + 128) as u8;
    // SAFETY: AVX2 is enabled.
    let fin = unsafe { Finish::new(p.output_zero_point, p.activation.min, p.activation.max) };
    let mut ws_buf = [const { MaybeUninit::<i8>::uninit() }; W_MAX];
    let ws = zeroed(&mut ws_buf, chunk.min(groups) * panel);
    let mut xs_buf = [const { MaybeUninit::<u8>::uninit() }; P * K_MAX + CH];
    let xs = zeroed(&mut xs_buf, P * k4 + CH);
    let mut pad_buf = [const { MaybeUninit::<u8>::uninit() }; PAD_MAX];
    let padded = Padded::new::<CH>(p, input, pad_u, &Flip, &mut pad_buf);
    let mut rq = [Rq8::zero(); G_MAX];
    let mut g0 = 0;
    while g0 < groups {
        let gn = chunk.min(groups - g0);
        if g0 > 0 {
            ws[..gn * panel].fill(0);
        }
        for (g, r) in rq.iter_mut().enumerate().take(gn) {
            let oc0 = (g0 + g) * 8;
            let sums = pack_panel(
                p.weights,
                depth,
                oc0,
                out_c,
                &mut ws[g * panel..(g + 1) * panel],
            );
            // SAFETY: AVX2 is enabled; `oc0 < out_c`, the slices' length (check_i8).
            *r = unsafe { Rq8::new(p.bias, p.output_multiplier, p.output_shift, oc0) };
            // bias - (zp + 128)·Σw, wrapping, per channel.
            let corr = sums.map(|sw| sw.wrapping_mul(-(zp + 128)));
            // SAFETY: `corr` is 32 readable bytes.
            let corr = unsafe { _mm256_loadu_si256(corr.as_ptr() as *const __m256i) };
            r.bias = _mm256_add_epi32(r.bias, corr);
        }
        let ws = &ws[..gn * panel];
        let mut pix0 = 0;
        let mut at = PixelAt::new(oh, ow);
        while pix0 < pixels {
            let pp = P.min(pixels - pix0);
            for q in 0..pp {
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
                // The reduction's padding lanes (and what a chunked row copy wrote there).
                for v in &mut xs[q * k4 + depth..(q + 1) * k4] {
                    *v = 0;
                }
            }
            let xs = &xs[..pp * k4];
            let mut g = 0;
            while g < gn {
                let c0 = (g0 + g) * 8;
                // SAFETY: AVX2 is enabled and the caller guarantees `V`'s encoding; the slices hold `pp` patches of `k4`
                // bytes and one or two panels of `k4 · 8` bytes; `rq[g..]` holds the groups.
                unsafe {
                    if g + 2 <= gn {
                        let w2 = &ws[g * panel..(g + 2) * panel];
                        let bias = [rq[g].bias, rq[g + 1].bias];
                        let rq = &rq[g..];
                        match pp {
                            4 => store::<4, 2>(
                                tile::<V, 4, 2>(xs, k4, w2, bias),
                                &fin,
                                rq,
                                output,
                                out_c,
                                pix0,
                                c0,
                            ),
                            3 => store::<3, 2>(
                                tile::<V, 3, 2>(xs, k4, w2, bias),
                                &fin,
                                rq,
                                output,
                                out_c,
                                pix0,
                                c0,
                            ),
                            2 => store::<2, 2>(
                                tile::<V, 2, 2>(xs, k4, w2, bias),
                                &fin,
                                rq,
                                output,
                                out_c,
                                pix0,
                                c0,
                            ),
                            _ => store::<1, 2>(
                                tile::<V, 1, 2>(xs, k4, w2, bias),
                                &fin,
                                rq,
                                output,
                                out_c,
                                pix0,
                                c0,
                            ),
                        }
                        g += 2;
                    } else {
                        let w1 = &ws[g * panel..(g + 1) * panel];
                        let bias = [rq[g].bias];
                        let rq = &rq[g..];
                        match pp {
                            4 => store::<4, 1>(
                                tile::<V, 4, 1>(xs, k4, w1, bias),
                                &fin,
                                rq,
                                output,
                                out_c,
                                pix0,
                                c0,
                            ),
                            3 => store::<3, 1>(
                                tile::<V, 3, 1>(xs, k4, w1, bias),
                                &fin,
                                rq,
                                output,
                                out_c,
                                pix0,
                                c0,
                            ),
                            2 => store::<2, 1>(
                                tile::<V, 2, 1>(xs, k4, w1, bias),
                                &fin,
                                rq,
                                output,
                                out_c,
                                pix0,
                                c0,
                            ),
                            _ => store::<1, 1>(
                                tile::<V, 1, 1>(xs, k4, w1, bias),
                                &fin,
                                rq,
                                output,
                                out_c,
                                pix0,
                                c0,
                            ),
                        }
                        g += 1;
                    }
                }
            }
            pix0 += pp;
        }
        g0 += gn;
    }
    true
}

/// `u = x + 128` as unsigned bytes (the sign bit flipped).
pub(super) struct Flip;

impl CopyIn<u8> for Flip {
    #[inline(always)]
    fn copy(&self, src: &[i8], dst: &mut [u8]) {
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = (v as u8) ^ 0x80;
        }
    }
}

/// Packs output channels `oc0..min(oc0 + 8, out_c)` into one panel,
/// `dst[t·32 + 4j + e] = w[oc0 + j][4t + e]` (`dst` zeroed beforehand), and returns each
/// channel's weight sum (0 past `out_c`).
#[inline(always)]
fn pack_panel(weights: &[i8], depth: usize, oc0: usize, out_c: usize, dst: &mut [i8]) -> [i32; 8] {
    let rows = (out_c - oc0).min(8);
    let mut sums = [0i32; 8];
    for (j, sum) in sums.iter_mut().enumerate().take(rows) {
        let row = &weights[(oc0 + j) * depth..(oc0 + j + 1) * depth];
        let mut quads = row.chunks_exact(4);
        for (t, q) in quads.by_ref().enumerate() {
            dst[t * 32 + 4 * j..t * 32 + 4 * j + 4].copy_from_slice(q);
        }
        let t = depth / 4;
        for (e, &v) in quads.remainder().iter().enumerate() {
            dst[t * 32 + 4 * j + e] = v;
        }
        *sum = row.iter().map(|&v| v as i32).sum();
    }
    sums
}

/// `PP` pixels × `NB` panels of sums: `acc[q][g] = bias[g] + Σ_t u_q[4t..4t+4] · panel_g[t]`.
///
/// # Safety
/// The CPU must support AVX2 and `V`'s encoding.
#[inline(always)]
unsafe fn tile<V: Vnni, const PP: usize, const NB: usize>(
    xs: &[u8],
    k4: usize,
    ws: &[i8],
    bias: [__m256i; NB],
) -> [[__m256i; NB]; PP] {
    let kq = k4 / 4;
    assert!(xs.len() >= PP * k4 && ws.len() >= NB * kq * 32);
    let (xp, wp) = (xs.as_ptr(), ws.as_ptr());
    let mut acc = [bias; PP];
    for t in 0..kq {
        // SAFETY: `t < kq`: the loads read `wp[g·kq·32 + t·32..][..32]` (`g < NB`) and
        // `xp[q·k4 + 4t..][..4]` (`q < PP`), inside the lengths asserted above. The caller
        // guarantees the instructions.
        unsafe {
            let mut wv = [_mm256_setzero_si256(); NB];
            for (g, v) in wv.iter_mut().enumerate() {
                *v = _mm256_loadu_si256(wp.add(g * kq * 32 + t * 32) as *const __m256i);
            }
            for (q, row) in acc.iter_mut().enumerate() {
                let quad = (xp.add(q * k4 + 4 * t) as *const i32).read_unaligned();
                let xb = _mm256_set1_epi32(quad);
                for (a, v) in row.iter_mut().zip(&wv) {
                    *a = V::dpbusd(*a, xb, *v);
                }
            }
        }
    }
    acc
}
