//! Cortex-M4 DSP int8 DepthwiseConv2D (SXTB16 + SMLABB/SMLATT), bit-exact to
//! [`super::reference::eval_i8`].
//!
//! Channels are independent, so the dual-lane SMLAD (which adds the products of both lanes)
//! does not apply; the halfword multiply-accumulates SMLABB/SMLATT do: per tap, one word holds
//! four channels of the input and one word four channels of the weights (NHWC and `[kh, kw, c]`
//! keep them contiguous), `SXTB16` and `SXTB16 ROR 8` split each into halfword pairs, and four
//! SMLABB/SMLATT add the four products into four register accumulators. Per output pixel the
//! addresses of the taps are computed once; four channels at a time then walk them.
//!
//! The input zero point is folded out of the inner loop: `Σ (x − zp)·w = Σ x·w − zp·Σ w`, with
//! `bias − zp·Σ_taps w` computed once per call. Padded taps (which the reference skips) read a
//! row of `zp` bytes instead, so they add `zp·w` and the folded term cancels it exactly. Integer
//! addition modulo 2³² is associative, so every accumulator equals the reference's;
//! requantization goes through the 32-bit fast path of the FullyConnected kernel (bit-exact to
//! [`crate::quant::requantize_to_i8`]). Depth multipliers other than 1, more than
//! [`MAX_CHANNELS`] channels or more than [`MAX_TAPS`] taps use the tap-major kernel.
//!
//! On `thumbv7em-*` (build.rs cfg `edgeloop_dsp`) SMLABB/SMLATT are `asm!`; elsewhere a portable
//! emulation runs the same algorithm, so host tests check it bit for bit.

use super::DepthwiseConv2dParams;
use crate::arch::cortex_m::{sxtb16, sxtb16_ror8};
use crate::ops::conv2d::reference::{for_each_output, tap};
use crate::ops::fully_connected::dsp::{fast_shifts, requant_fast, requant_i8};

/// Most channels (folded biases and the zero-point row live on the stack: 2.5 KiB).
pub const MAX_CHANNELS: usize = 512;

/// Most taps (`kh · kw`) per output pixel.
pub const MAX_TAPS: usize = 64;

/// `SMLABB a, b, acc` (`TOP = false`: `acc + a.lo · b.lo`) or `SMLATT a, b, acc` (`TOP = true`:
/// `acc + a.hi · b.hi`) on signed halfwords, modulo 2³².
#[inline(always)]
fn smla<const TOP: bool>(a: u32, b: u32, acc: i32) -> i32 {
    #[cfg(edgeloop_dsp)]
    {
        let out: i32;
        // SAFETY: register-only DSP instructions (thumbv7em, cfg `edgeloop_dsp`); they may set
        // APSR.Q, so no `preserves_flags`.
        unsafe {
            if TOP {
                core::arch::asm!("smlatt {0}, {1}, {2}, {3}", lateout(reg) out, in(reg) a,
                    in(reg) b, in(reg) acc, options(pure, nomem, nostack));
            } else {
                core::arch::asm!("smlabb {0}, {1}, {2}, {3}", lateout(reg) out, in(reg) a,
                    in(reg) b, in(reg) acc, options(pure, nomem, nostack));
            }
        }
        out
    }
    #[cfg(not(edgeloop_dsp))]
    {
        let shift = if TOP { 16 } else { 0 };
        let half = |v: u32| (v >> shift) as u16 as i16 as i32;
        acc.wrapping_add(half(a) * half(b))
    }
}

/// DSP DepthwiseConv2D. Requires a successful [`super::check_i8`].
pub fn eval_i8(p: &DepthwiseConv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    let s = &p.shape;
    let [_, h, w, in_c] = s.input;
    let out_c = s.output[3] as usize;
    let [kh, kw] = s.kernel;
    let (kh, kw) = (kh as usize, kw as usize);
    let taps = kh * kw;
    if p.depth_multiplier != 1 || out_c > MAX_CHANNELS || taps > MAX_TAPS {
        return super::tap_major::eval_i8(p, input, output);
    }
    let in_c = in_c as usize;
    let zp = p.input_zero_point;
    let weights = &p.weights[..taps * out_c];
    // bias − zp · Σ_taps w, per channel.
    let mut folded = [0i32; MAX_CHANNELS];
    for (c, f) in folded[..out_c].iter_mut().enumerate() {
        let sum = weights[c..]
            .iter()
            .step_by(out_c)
            .fold(0i32, |a, &v| a.wrapping_add(v as i32));
        *f = p
            .bias
            .map_or(0, |b| b[c])
            .wrapping_sub(zp.wrapping_mul(sum));
    }
    // What a padded tap reads: the zero point in every channel (int8, checked by `check_i8`).
    let pad = [zp as i8; MAX_CHANNELS];
    let mut rows = [pad.as_ptr(); MAX_TAPS];
    // Offset of each tap from the first one when the window lies inside the input.
    let mut offsets = [0usize; MAX_TAPS];
    for ky in 0..kh {
        for kx in 0..kw {
            offsets[ky * kw + kx] =
                (ky * s.dilation[0] as usize * w as usize + kx * s.dilation[1] as usize) * in_c;
        }
    }
    let offsets = &offsets[..taps];
    let fast = fast_shifts(&p.output_shift[..out_c]);
    let (min, max) = (p.activation.min, p.activation.max);
    for_each_output(s, |pixel, b, oy, ox| {
        let at = |ky: usize, kx: usize| {
            (
                tap(oy, ky, s.stride[0], s.dilation[0], s.padding.top, h),
                tap(ox, kx, s.stride[1], s.dilation[1], s.padding.left, w),
            )
        };
        if let ((Some(iy), Some(ix)), (Some(_), Some(_))) = (at(0, 0), at(kh - 1, kw - 1)) {
            // The window lies inside the input (both corners do): every tap at its offset.
            let x0 = ((b * h as usize + iy) * w as usize + ix) * in_c;
            let base = input[x0..x0 + offsets[taps - 1] + in_c].as_ptr();
            for (r, &off) in rows.iter_mut().zip(offsets) {
                *r = base.wrapping_add(off);
            }
        } else {
            // Start of each tap's `in_c` input bytes, or of the zero-point row.
            for ky in 0..kh {
                for kx in 0..kw {
                    rows[ky * kw + kx] = match at(ky, kx) {
                        (Some(iy), Some(ix)) => {
                            let x0 = ((b * h as usize + iy) * w as usize + ix) * in_c;
                            input[x0..x0 + in_c].as_ptr()
                        }
                        _ => pad.as_ptr(),
                    };
                }
            }
        }
        let rows = &rows[..taps];
        let out = &mut output[pixel * out_c..(pixel + 1) * out_c];
        let finish = |c: usize, acc: i32| {
            requant_i8(
                acc,
                p.output_multiplier[c],
                p.output_shift[c],
                p.output_zero_point,
                p.activation.min,
                p.activation.max,
            )
        };
        let groups = out
            .chunks_exact_mut(4)
            .zip(p.output_multiplier.chunks_exact(4))
            .zip(p.output_shift.chunks_exact(4))
            .zip(folded[..out_c].chunks_exact(4));
        let mut c = 0;
        for (((ys, ms), ss), fs) in groups {
            let [mut a0, mut a1, mut a2, mut a3] = [fs[0], fs[1], fs[2], fs[3]];
            let mut wp = weights[c..].as_ptr();
            for &xp in rows {
                // SAFETY: every row pointer starts `in_c = out_c` readable bytes (an input
                // pixel or `pad`), and `c + 4 ≤ out_c`; `wp` walks `weights[t·out_c + c..]`,
                // whose 4 bytes lie inside `weights` (`taps · out_c` bytes) for every tap
                // `t < taps`. The loads are unaligned LDRs (allowed on the Cortex-M4).
                let (xw, ww) = unsafe {
                    (
                        xp.add(c).cast::<u32>().read_unaligned(),
                        wp.cast::<u32>().read_unaligned(),
                    )
                };
                wp = wp.wrapping_add(out_c);
                let (x02, x13) = (sxtb16(xw), sxtb16_ror8(xw));
                let (w02, w13) = (sxtb16(ww), sxtb16_ror8(ww));
                a0 = smla::<false>(x02, w02, a0);
                a2 = smla::<true>(x02, w02, a2);
                a1 = smla::<false>(x13, w13, a1);
                a3 = smla::<true>(x13, w13, a3);
            }
            match (ys, ms, ss) {
                ([y0, y1, y2, y3], [m0, m1, m2, m3], [s0, s1, s2, s3]) if fast => {
                    let zp = p.output_zero_point;
                    *y0 = requant_fast(a0, *m0, *s0, zp, min, max);
                    *y1 = requant_fast(a1, *m1, *s1, zp, min, max);
                    *y2 = requant_fast(a2, *m2, *s2, zp, min, max);
                    *y3 = requant_fast(a3, *m3, *s3, zp, min, max);
                }
                (ys, _, _) => {
                    for (j, (y, a)) in ys.iter_mut().zip([a0, a1, a2, a3]).enumerate() {
                        *y = finish(c + j, a);
                    }
                }
            }
            c += 4;
        }
        for (cc, y) in out.iter_mut().enumerate().skip(c) {
            let mut acc = folded[cc];
            for (t, &xp) in rows.iter().enumerate() {
                // SAFETY: `cc < out_c = in_c`, inside the row (see above).
                let xv = unsafe { *xp.add(cc) } as i32;
                acc = acc.wrapping_add(xv * weights[t * out_c + cc] as i32);
            }
            *y = finish(cc, acc);
        }
    });
}
