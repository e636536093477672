//! Cortex-M4 DSP int8 DepthwiseConv2D (SXTB16 + SMLABB/SMLATT), bit-exact to
//! [`super::reference::eval_i8`].
//!
//! Channels are independent, so the dual-lane SMLAD (which adds the products of both lanes)
//! does not apply; the halfword multiply-accumulates SMLABB/SMLATT do: per tap, one word holds
//! four channels of the input (NHWC keeps them contiguous), `SXTB16` and `SXTB16 ROR 8` split it
//! into halfword pairs, and four SMLABB/SMLATT add the four products into four register
//! accumulators. The weights are sign-extended the same way once per call, into a stack buffer,
//! so the inner loop loads them with one `LDRD`: per tap and 4 channels one row-pointer `LDR`,
//! one input `LDR`, one `LDRD`, two `SXTB16` and four SMLABB/SMLATT (9 instructions, plus
//! `SUBS`/`BNE` per two taps on the Cortex-M4, where the loop is hand-written).
//!
//! Channels go in blocks of 4-channel groups whose data fit [`BLOCK_WORDS`] (2 KiB): per group
//! the folded biases, the expanded weights, the output multipliers and the shift bytes of the
//! requantization, side by side ([`group_words`]), so one pointer walks them. Per block and
//! output pixel the addresses of the taps are computed once; the block's groups then walk them.
//!
//! The input zero point is folded out of the inner loop: `Σ (x − zp)·w = Σ x·w − zp·Σ w`, with
//! `bias − zp·Σ_taps w` computed once per block. Padded taps (which the reference skips) read a
//! row of `zp` bytes instead, so they add `zp·w` and the folded term cancels it exactly. Integer
//! addition modulo 2³² is associative, so every accumulator equals the reference's.
//!
//! When every shift is in `-31..=-2` (every scale below ¼, the usual case), requantization uses
//! constants computed once per block (`requant_split` of the FullyConnected kernel:
//! `(acc·mult) >> 32`, a shift, the zero point folded into the rounding, a halving), and on the
//! Cortex-M4 one `asm!` block runs every group of a pixel, requantization included (see
//! `pixel_fast`); otherwise the groups' accumulators go through `requant_i8`. Both are
//! bit-exact to [`crate::quant::requantize_to_i8`]. The 0–3 channels after the last whole group
//! (channel counts not a multiple of 4) use scalar code. Depth multipliers other than 1, more
//! than [`MAX_CHANNELS`] channels or more than [`MAX_TAPS`] taps use the tap-major kernel.
//!
//! Stack: the block data (2 KiB), the zero-point row (512 B), tap addresses and offsets
//! (2 × 256 B): 3 KiB, as before the block data replaced the 2 KiB of folded biases.
//!
//! On `thumbv7em-*` (build.rs cfg `edgeloop_dsp`) the loops are `asm!`; elsewhere a portable
//! emulation of SXTB16/SMLABB/SMLATT and `requant_split` run the same algorithm, so host tests
//! check it bit for bit (the real instructions run in the firmware's random sweep in QEMU).

use super::DepthwiseConv2dParams;
use crate::arch::cortex_m::{sxtb16, sxtb16_ror8};
use crate::ops::conv2d::reference::for_each_output;
#[cfg(not(edgeloop_dsp))]
use crate::ops::fully_connected::dsp::requant_split;
use crate::ops::fully_connected::dsp::{fast_shifts, requant_i8, split_shift};

/// Most channels (the zero-point row that padded taps read lives on the stack).
pub const MAX_CHANNELS: usize = 512;

/// Most taps (`kh · kw`) per output pixel.
pub const MAX_TAPS: usize = 64;

/// Words of per-group data per block of channels (2 KiB of stack): each 4-channel group takes
/// [`group_words`]`(taps)` (27 for a 3×3 kernel: 18 groups, 72 channels, per block; 3 groups
/// for the largest kernel, [`MAX_TAPS`] taps).
pub const BLOCK_WORDS: usize = 512;

/// Words of one 4-channel group's data: 4 folded biases, 2 sign-extended weight words per tap,
/// 4 output multipliers and the 4 `split_shift` bytes.
pub const fn group_words(taps: usize) -> usize {
    4 + 2 * taps + 4 + 1
}

/// `SMLABB a, b, acc` (`TOP = false`: `acc + a.lo · b.lo`) or `SMLATT a, b, acc` (`TOP = true`:
/// `acc + a.hi · b.hi`) on signed halfwords, modulo 2³²: the portable emulation of the inner
/// loop's instructions.
#[cfg(not(edgeloop_dsp))]
#[inline(always)]
fn smla<const TOP: bool>(a: u32, b: u32, acc: i32) -> i32 {
    let shift = if TOP { 16 } else { 0 };
    let half = |v: u32| (v >> shift) as u16 as i16 as i32;
    acc.wrapping_add(half(a) * half(b))
}

/// The four accumulators of channels `c..c + 4` plus, for every tap `t`, the products of the
/// input bytes `rows[t][c..c + 4]` with the tap's sign-extended weights `we[2t]` (channels `c`,
/// `c + 2`) and `we[2t + 1]` (channels `c + 1`, `c + 3`), modulo 2³².
///
/// # Safety
///
/// Every pointer in `rows` must have `c + 4` readable bytes, and `we` must hold at least
/// `2 · rows.len()` words.
#[inline(always)]
unsafe fn taps4(rows: &[*const i8], c: usize, we: &[u32], acc: [i32; 4]) -> [i32; 4] {
    debug_assert!(we.len() >= 2 * rows.len());
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    if rows.is_empty() {
        return acc;
    }
    #[cfg(edgeloop_dsp)]
    {
        // SAFETY: `rows.len() ≥ 1` iterations (the counted loop ends); each reads one pointer
        // from `rows`, 4 bytes at that pointer plus `c` (readable: the caller's contract; LDR may
        // be unaligned on the Cortex-M4) and two words of `we` (at most `2 · rows.len()`, inside
        // it; LDRD gets the word alignment of a `u32` slice), through pointers advanced by the
        // loads. Only the named registers are written; the flags (SUBS, the Q flag of SMLABB and
        // SMLATT) are clobbered, which `asm!` assumes without `preserves_flags`.
        unsafe {
            core::arch::asm!(
                "2:",
                "ldr {x}, [{rp}], #4",
                "ldr {x}, [{x}, {c}]",
                "ldrd {w02}, {w13}, [{wp}], #8",
                "sxtb16 {x13}, {x}, ror #8",
                "sxtb16 {x}, {x}",
                "smlabb {a0}, {x}, {w02}, {a0}",
                "smlatt {a2}, {x}, {w02}, {a2}",
                "smlabb {a1}, {x13}, {w13}, {a1}",
                "smlatt {a3}, {x13}, {w13}, {a3}",
                "subs {n}, {n}, #1",
                "bne 2b",
                rp = inout(reg) rows.as_ptr() => _,
                wp = inout(reg) we.as_ptr() => _,
                c = in(reg) c,
                n = inout(reg) rows.len() => _,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                x = out(reg) _,
                x13 = out(reg) _,
                w02 = out(reg) _,
                w13 = out(reg) _,
                options(nostack, readonly),
            );
        }
    }
    #[cfg(not(edgeloop_dsp))]
    for (&xp, w) in rows.iter().zip(we.chunks_exact(2)) {
        // SAFETY: 4 readable bytes at `xp + c` (the caller's contract); unaligned read.
        let xw = unsafe { xp.add(c).cast::<u32>().read_unaligned() };
        let (x02, x13) = (sxtb16(xw), sxtb16_ror8(xw));
        a0 = smla::<false>(x02, w[0], a0);
        a2 = smla::<true>(x02, w[0], a2);
        a1 = smla::<false>(x13, w[1], a1);
        a3 = smla::<true>(x13, w[1], a3);
    }
    [a0, a1, a2, a3]
}

/// Requantization constants of the fast path, shared by every group: `k = 1 + 2·zp` (see
/// [`requant_split`](crate::ops::fully_connected::dsp::requant_split)) and the clamp.
#[derive(Clone, Copy)]
struct Fast {
    /// `1 + 2 · output_zero_point`.
    k: i32,
    /// Lower clamp.
    min: i8,
    /// Upper clamp.
    max: i8,
}

/// One tap of [`pixel_fast`]'s loop on 4 channels (9 instructions): the tap's row pointer from
/// `r10` (advanced), its 4 input bytes at channel offset `r11`, the tap's two halfword-pair
/// weight words from `r12` (advanced), and the four products added into `r0`–`r3`. Written once
/// for the odd tap and the two taps of each pass.
#[cfg(edgeloop_dsp)]
macro_rules! tap_m4 {
    () => {
        concat!(
            "ldr r4, [r10], #4\n",
            "ldr r4, [r4, r11]\n",
            "ldrd r8, r9, [r12], #8\n",
            "sxtb16 r5, r4, ror #8\n",
            "sxtb16 r4, r4\n",
            "smlabb r0, r4, r8, r0\n",
            "smlatt r2, r4, r8, r2\n",
            "smlabb r1, r5, r9, r1\n",
            "smlatt r3, r5, r9, r3\n",
        )
    };
}

/// Every group of a block for one output pixel, with the fast requantization: channels
/// `c0..c0 + 4 · groups` of `out`, from the block's group data `data` (`groups ·
/// group_words(rows.len())` words, see [`group_words`]). On the Cortex-M4 one `asm!` block runs
/// the whole pixel: per group the tap loop of [`taps4`], then four `SMMUL`, the four shifts
/// (`ASR` by the bytes of one word), `SSAT #8` of `(q + k) >> 1`, the four bytes packed with
/// `BFI` and clamped with `SSUB8`/`SEL` against the clamp bytes, and one store. The tap loop
/// runs two taps per pass (an odd one first): 9 instructions per tap and 4 channels, plus
/// `SUBS`/`BNE` per pair.
///
/// # Safety
///
/// Every pointer in `rows` must have `c0 + 4 · groups` readable bytes, `rows` must not be
/// empty, `data` must be whole groups built as [`group_words`] describes with shift bytes from
/// [`split_shift`], and `out` must hold `c0 + 4 · groups` bytes.
#[inline(always)]
unsafe fn pixel_fast(data: &[u32], rows: &[*const i8], c0: usize, out: &mut [i8], q: Fast) {
    let taps = rows.len();
    let gw = group_words(taps);
    let groups = data.len() / gw;
    debug_assert!(taps > 0 && out.len() >= c0 + 4 * groups);
    if groups == 0 {
        return;
    }
    #[cfg(edgeloop_dsp)]
    {
        let bytes = |v: i8| u32::from_ne_bytes([v as u8; 4]);
        // SAFETY: `groups ≥ 1` passes of the outer loop (`c` from `c0` up to `c0 + 4 · groups`
        // in steps of 4) and `taps / 2` of the inner one (skipped when 0; an odd tap before it),
        // so both counted loops end and every tap runs once. Reads: the
        // group data through `r12`, advanced by each load over exactly `groups · gw` words
        // (`LDM`/`LDRD` get the alignment of a `u32` slice); one row pointer per tap from
        // `rows`; 4 bytes at each row plus `c < c0 + 4 · groups` (readable: the caller's
        // contract; unaligned `LDR` is allowed on the Cortex-M4). Writes: 4 bytes of `out` at
        // `c` (inside it: the caller's contract; unaligned `STR`). The pushed words (8, so `sp`
        // stays 8-byte aligned) are popped before the end. Every register used is an operand;
        // the flags (SUBS, CMP, SSUB8's GE bits, the Q flag) are clobbered, which `asm!`
        // assumes without `preserves_flags`.
        unsafe {
            core::arch::asm!(
                // [sp]: max bytes, [sp, 8]: out, [sp, 12]: end channel, [sp, 16]: k,
                // [sp, 20]: min bytes, [sp, 24]: rows, [sp, 28]: taps.
                "push {{r0, r1, r4, r5, r8, r9, r10, lr}}",
                "1:",
                "ldm r12!, {{r0, r1, r2, r3}}",
                "ldr r10, [sp, #24]",
                "ldr lr, [sp, #28]",
                // Pairs of taps; an odd tap first (none of the tap instructions writes the
                // N, Z or C flags, so BEQ still sees LSRS's result).
                "lsrs lr, lr, #1",
                "bcc 3f",
                tap_m4!(),
                "3:",
                "beq 4f",
                "2:",
                tap_m4!(),
                tap_m4!(),
                "subs lr, lr, #1",
                "bne 2b",
                "4:",
                "ldm r12!, {{r4, r5, r8, r9}}",
                "smmul r0, r0, r4",
                "smmul r1, r1, r5",
                "smmul r2, r2, r8",
                "smmul r3, r3, r9",
                "ldr r4, [r12], #4",
                "ldr r5, [sp, #16]",
                "asr.w r0, r0, r4",
                "lsr.w r4, r4, #8",
                "asr.w r1, r1, r4",
                "lsr.w r4, r4, #8",
                "asr.w r2, r2, r4",
                "lsr.w r4, r4, #8",
                "asr.w r3, r3, r4",
                crate::arch::cortex_m::round_pack4_m4!("r5"),
                "ldr r4, [sp, #20]",
                "ssub8 r5, r0, r4",
                "sel r0, r0, r4",
                "ldr r4, [sp]",
                "ssub8 r5, r4, r0",
                "sel r0, r0, r4",
                "ldr r4, [sp, #8]",
                "str r0, [r4, r11]",
                "add r11, r11, #4",
                "ldr r4, [sp, #12]",
                "cmp r11, r4",
                "bne 1b",
                "add sp, sp, #32",
                inout("r0") bytes(q.max) => _,
                inout("r1") 0u32 => _,
                out("r2") _,
                out("r3") _,
                inout("r4") out.as_mut_ptr() => _,
                inout("r5") c0 + 4 * groups => _,
                inout("r8") q.k => _,
                inout("r9") bytes(q.min) => _,
                inout("r10") rows.as_ptr() => _,
                inout("r11") c0 => _,
                inout("r12") data.as_ptr() => _,
                inout("lr") taps => _,
            );
        }
    }
    #[cfg(not(edgeloop_dsp))]
    {
        let (lo, hi) = (i32::from(q.min), i32::from(q.max));
        for (g, d) in data.chunks_exact(gw).enumerate() {
            let c = c0 + 4 * g;
            let f = [d[0], d[1], d[2], d[3]].map(|v| v as i32);
            // SAFETY: `c + 4 ≤ c0 + 4 · groups` readable bytes at every row (the contract).
            let acc = unsafe { taps4(rows, c, &d[4..4 + 2 * taps], f) };
            let (mult, pre) = (&d[4 + 2 * taps..gw - 1], d[gw - 1].to_le_bytes());
            for (j, y) in out[c..c + 4].iter_mut().enumerate() {
                *y = requant_split(acc[j], mult[j] as i32, pre[j], q.k, lo, hi);
            }
        }
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
    if p.depth_multiplier != 1 || out_c > MAX_CHANNELS || taps > MAX_TAPS || taps == 0 {
        return super::tap_major::eval_i8(p, input, output);
    }
    let (h, w, in_c) = (h as usize, w as usize, in_c as usize);
    // Every address below lies inside this slice (its length checked here once).
    let input = &input[..s.input_len()];
    let zp = p.input_zero_point;
    let weights = &p.weights[..taps * out_c];
    let bias = |c: usize| p.bias.map_or(0, |b| b[c]);
    // What a padded tap reads: the zero point in every channel (int8, checked by `check_i8`).
    let pad = [zp as i8; MAX_CHANNELS];
    let mut rows = [pad.as_ptr(); MAX_TAPS];
    let [sy, sx] = s.stride.map(|v| v as usize);
    let [dy, dx] = s.dilation.map(|v| v as usize);
    let (top, left) = (s.padding.top as usize, s.padding.left as usize);
    // Offset of each tap from the first one when the window lies inside the input.
    let mut offsets = [0usize; MAX_TAPS];
    for ky in 0..kh {
        for kx in 0..kw {
            offsets[ky * kw + kx] = (ky * dy * w + kx * dx) * in_c;
        }
    }
    let offsets = &offsets[..taps];
    let fast = fast_shifts(&p.output_shift[..out_c]);
    let (min, max) = (p.activation.min, p.activation.max);
    let consts = Fast {
        k: 1 + 2 * p.output_zero_point,
        min,
        max,
    };
    let gw = group_words(taps);
    let groups = out_c / 4;
    // `taps ≤ MAX_TAPS`, so at least 3 groups per block.
    let per_block = BLOCK_WORDS / gw;
    let mut g0 = 0;
    loop {
        let g1 = (g0 + per_block).min(groups);
        let last = g1 == groups;
        let (c0, c1) = (4 * g0, 4 * g1);
        // The block's groups, `gw` words each: the folded biases `bias − zp · Σ_taps w`, the
        // weights as halfword pairs (per tap `(w0, w2)`, `(w1, w3)`), the output multipliers,
        // and the `split_shift` bytes (fast path).
        let mut data = [0u32; BLOCK_WORDS];
        let data = &mut data[..gw * (g1 - g0)];
        for (g, d) in data.chunks_exact_mut(gw).enumerate() {
            let c = c0 + 4 * g;
            let (folded, rest) = d.split_at_mut(4);
            let (we, rest) = rest.split_at_mut(2 * taps);
            let (mult, pre) = rest.split_at_mut(4);
            let mut shifts = [0u8; 4];
            for (j, f) in folded.iter_mut().enumerate() {
                let sum = weights[c + j..]
                    .iter()
                    .step_by(out_c)
                    .fold(0i32, |a, &v| a.wrapping_add(v as i32));
                *f = bias(c + j).wrapping_sub(zp.wrapping_mul(sum)) as u32;
                mult[j] = p.output_multiplier[c + j] as u32;
                if fast {
                    shifts[j] = split_shift(p.output_shift[c + j]);
                }
            }
            pre[0] = u32::from_le_bytes(shifts);
            for (t, pair) in we.chunks_exact_mut(2).enumerate() {
                let v = &weights[t * out_c + c..t * out_c + c + 4];
                let word = u32::from_le_bytes([v[0] as u8, v[1] as u8, v[2] as u8, v[3] as u8]);
                pair[0] = sxtb16(word);
                pair[1] = sxtb16_ror8(word);
            }
        }
        let data = &*data;
        for_each_output(s, |pixel, b, oy, ox| {
            // Input coordinates of the first tap plus the padding (a coordinate is in the input
            // when it is at least the padding and, less the padding, below the size).
            let (y0, x0) = (oy * sy, ox * sx);
            let (y1, x1) = (y0 + (kh - 1) * dy, x0 + (kw - 1) * dx);
            if y0 >= top && y1 - top < h && x0 >= left && x1 - left < w {
                // The window lies inside the input: every tap at its offset.
                let at = ((b * h + y0 - top) * w + x0 - left) * in_c;
                let base = input[at..at + offsets[taps - 1] + in_c].as_ptr();
                for (r, &off) in rows.iter_mut().zip(offsets) {
                    *r = base.wrapping_add(off);
                }
            } else {
                // Start of each tap's `in_c` input bytes, or of the zero-point row. A coordinate
                // in the padding wraps to at least the size.
                for (ky, line) in rows.chunks_exact_mut(kw).take(kh).enumerate() {
                    let iy = (y0 + ky * dy).wrapping_sub(top);
                    for (kx, r) in line.iter_mut().enumerate() {
                        let ix = (x0 + kx * dx).wrapping_sub(left);
                        *r = if iy < h && ix < w {
                            // Inside `input` (`b < n`, `iy < h`, `ix < w`).
                            input.as_ptr().wrapping_add(((b * h + iy) * w + ix) * in_c)
                        } else {
                            pad.as_ptr()
                        };
                    }
                }
            }
            let rows = &rows[..taps];
            let out = &mut output[pixel * out_c..(pixel + 1) * out_c];
            if fast {
                // SAFETY: every row pointer starts `in_c = out_c ≥ c1` readable bytes (an input
                // pixel inside `input`, or `pad`); `taps ≥ 1`; `data` holds the block's
                // `g1 − g0` groups, built above; `out` holds `out_c ≥ c1` bytes.
                unsafe { pixel_fast(data, rows, c0, out, consts) };
            } else {
                for (g, d) in data.chunks_exact(gw).enumerate() {
                    let c = c0 + 4 * g;
                    let f = [d[0], d[1], d[2], d[3]].map(|v| v as i32);
                    // SAFETY: as above, `c + 4 ≤ c1` bytes at every row; `2 · taps` words.
                    let acc = unsafe { taps4(rows, c, &d[4..4 + 2 * taps], f) };
                    for (j, y) in out[c..c + 4].iter_mut().enumerate() {
                        let (m, sh) = (p.output_multiplier[c + j], p.output_shift[c + j]);
                        *y = requant_i8(acc[j], m, sh, p.output_zero_point, min, max);
                    }
                }
            }
            if last {
                // The channels after the last whole group, as the reference sums them (a padded
                // tap reads `zp` and adds 0).
                for (cc, y) in out.iter_mut().enumerate().skip(c1) {
                    let mut acc = bias(cc);
                    for (t, &xp) in rows.iter().enumerate() {
                        // SAFETY: `cc < out_c = in_c`, inside the row (see above).
                        let xv = unsafe { *xp.add(cc) } as i32;
                        acc = acc.wrapping_add((xv - zp) * weights[t * out_c + cc] as i32);
                    }
                    *y = requant_i8(
                        acc,
                        p.output_multiplier[cc],
                        p.output_shift[cc],
                        p.output_zero_point,
                        min,
                        max,
                    );
                }
            }
        });
        if last {
            break;
        }
        g0 = g1;
    }
}
