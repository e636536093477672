//! int8 DepthwiseConv2D with taps in the outer loop and channels in the inner loop, bit-exact to
//! [`super::reference::eval_i8`].
//!
//! NHWC activations and `[kh, kw, out_c]` weights keep the channels of one tap contiguous, so
//! per output pixel the kernel walks each valid tap once and adds `(x[c] − zp) · w[c]` into a row
//! of int32 accumulators on the stack (one per output channel, up to [`MAX_CHANNELS`]), then
//! requantizes the row. The reference instead recomputes every tap's address per output
//! channel. Same products, same skipped padding taps, same requantization; only the order of
//! the wrapping int32 additions differs, so outputs are bit-exact. The Cortex-M4 DSP kernel and
//! the AVX2 one fall back to it, and the table for Arm cores without the DSP extension
//! (Cortex-M0/M0+) uses it; wider layers fall back to the reference. On ARMv6-M proper (cfg
//! `edgeloop_armv6m`) the channel loop is Thumb-1 `asm!` (`accumulate`), checked on the
//! device by the `bench` firmware built for ARMv6-M; the requantization goes through
//! [`ChannelRequant`], the form of [`crate::quant::requantize`] that is cheaper there.

use super::DepthwiseConv2dParams;
use crate::ops::conv2d::reference::{for_each_output, tap};
use crate::quant::{finish_i8, ChannelRequant};

/// Most output channels kept in the stack accumulator row (2 KiB).
pub const MAX_CHANNELS: usize = 512;

/// Tap-major DepthwiseConv2D. Requires a successful [`super::check_i8`].
pub fn eval_i8(p: &DepthwiseConv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    let s = &p.shape;
    let [_, h, w, in_c] = s.input;
    let out_c = s.output[3] as usize;
    if out_c > MAX_CHANNELS {
        return super::reference::eval_i8(p, input, output);
    }
    let in_c = in_c as usize;
    let mult = p.depth_multiplier as usize;
    let [kh, kw] = s.kernel;
    let (kh, kw) = (kh as usize, kw as usize);
    let zp = p.input_zero_point;
    let mut row = [0i32; MAX_CHANNELS];
    for_each_output(s, |pixel, b, oy, ox| {
        let acc = &mut row[..out_c];
        match p.bias {
            Some(bias) => acc.copy_from_slice(&bias[..out_c]),
            None => acc.fill(0),
        }
        for ky in 0..kh {
            let Some(iy) = tap(oy, ky, s.stride[0], s.dilation[0], s.padding.top, h) else {
                continue;
            };
            for kx in 0..kw {
                let Some(ix) = tap(ox, kx, s.stride[1], s.dilation[1], s.padding.left, w) else {
                    continue;
                };
                let x0 = ((b * h as usize + iy) * w as usize + ix) * in_c;
                let x = &input[x0..x0 + in_c];
                let wt = &p.weights[(ky * kw + kx) * out_c..(ky * kw + kx + 1) * out_c];
                if mult == 1 {
                    accumulate(acc, x, wt, zp);
                } else {
                    for (oc, (a, &wi)) in acc.iter_mut().zip(wt).enumerate() {
                        *a = a.wrapping_add((x[oc / mult] as i32 - zp) * wi as i32);
                    }
                }
            }
        }
        let out = &mut output[pixel * out_c..(pixel + 1) * out_c];
        for (oc, (y, &a)) in out.iter_mut().zip(acc.iter()).enumerate() {
            // `requantize_to_i8`, through the form that is cheaper on ARMv6-M.
            let q = ChannelRequant::new(p.output_multiplier[oc], p.output_shift[oc]);
            let (zp, act) = (p.output_zero_point, p.activation);
            *y = finish_i8(q.apply(a), zp, act.min, act.max);
        }
    });
}

/// One tap of every channel: `acc[c] += (x[c] − zp) · w[c]`, wrapping (depth multiplier 1).
#[inline(always)]
fn accumulate(acc: &mut [i32], x: &[i8], w: &[i8], zp: i32) {
    #[cfg(edgeloop_armv6m)]
    {
        accumulate_armv6m(acc, x, w, zp)
    }
    #[cfg(not(edgeloop_armv6m))]
    {
        accumulate_portable(acc, x, w, zp)
    }
}

/// [`accumulate`] in Rust: the specification of the `asm!` form, and the form on other cores.
#[cfg_attr(edgeloop_armv6m, allow(dead_code))]
#[inline(always)]
fn accumulate_portable(acc: &mut [i32], x: &[i8], w: &[i8], zp: i32) {
    for ((a, &xi), &wi) in acc.iter_mut().zip(x).zip(w) {
        *a = a.wrapping_add((xi as i32 - zp) * wi as i32);
    }
}

/// [`accumulate`] for ARMv6-M in 9 instructions per channel (rustc's loop: 13, reloading two
/// pointers and the zero point from the stack each pass): input and weight pointers past their
/// ends with one index from `−n` up to 0 (`LDRSB` with a register offset; `ADDS` ends the
/// loop), the accumulator pointer advanced by `STM`.
#[cfg(edgeloop_armv6m)]
#[inline(always)]
fn accumulate_armv6m(acc: &mut [i32], x: &[i8], w: &[i8], zp: i32) {
    let n = acc.len();
    if n == 0 || x.len() < n || w.len() < n {
        return accumulate_portable(acc, x, w, zp);
    }
    // SAFETY: n ≥ 1, `x` and `w` hold at least n bytes and `acc` n words, so the index
    // −n..=−1 added to the ends of `x[..n]` and `w[..n]` reads only their bytes, and the
    // accumulator pointer, advanced one word per pass from `acc`'s start, reads and writes only
    // `acc`'s n words; the loop ends after n passes (the index reaches 0). r6 and r7 (reserved:
    // base and frame pointer) are pushed before use and popped after; `sp` is back where it was
    // at the end. The flags are clobbered, which `asm!` assumes without `preserves_flags`.
    unsafe {
        core::arch::asm!(
            "push {{r6, r7}}",
            "2:",
            "ldrsb r5, [r0, r3]",
            "ldrsb r6, [r1, r3]",
            "subs r5, r5, r4",
            "muls r6, r5, r6",
            "ldr r7, [r2]",
            "adds r7, r7, r6",
            "stm r2!, {{r7}}",
            "adds r3, #1",
            "bne 2b",
            "pop {{r6, r7}}",
            inout("r0") x[..n].as_ptr_range().end => _,
            inout("r1") w[..n].as_ptr_range().end => _,
            inout("r2") acc.as_mut_ptr() => _,
            inout("r3") (n as isize).wrapping_neg() => _,
            in("r4") zp,
            out("r5") _,
        );
    }
}
