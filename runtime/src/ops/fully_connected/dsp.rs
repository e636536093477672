//! Cortex-M4 DSP int8 FullyConnected (SXTB16/SADD16/SMLAD), bit-exact to
//! [`super::reference::eval_i8`].
//!
//! On `thumbv7em-*` (build.rs cfg `edgeloop_dsp`) the instructions are real DSP instructions in
//! `asm!`; on every other target the same source runs over the portable emulation of those
//! instructions in [`crate::arch::cortex_m`], so the host tests check the algorithm bit for bit.
//!
//! Each input row (up to [`MAX_EXPANDED`] features) is sign-extended (`SXTB16`, `SXTB16 ROR 8`)
//! and offset by the input zero point (`SADD16`) once, into a stack buffer of SMLAD operands
//! shared by every output feature. With four or more input rows of at most 256 features (a
//! batch, a sequence, or Conv2D's im2col patches four pixels at a time), four rows are expanded
//! into one interleaved buffer and each output feature's weights meet all four in one pass: per
//! 4 input bytes one weight load, two `SXTB16`, four `LDM`s of two operand words and eight
//! `SMLAD` (15 instructions per 16 MACs on the Cortex-M4, hand-written, plus a count and a
//! branch per two words: 1.0 per MAC). With a bias, K a
//! multiple of 4 and every scale below ¼, one `asm!` block runs every output feature of the
//! group, requantization and stores included ([`quad_fast`]). Two leftover rows go the same way
//! in pairs (10 instructions per 8 MACs). A single row computes three output features per pass:
//! per row and 4 MACs one weight load, two `SXTB16` and two `SMLAD` (weights are symmetric: no
//! offset). Longer inputs use the one-row dot product; leftover input bytes (K not a multiple of
//! 4) use scalar code. Integer addition modulo 2³² is associative, so every accumulator equals
//! the reference's.

use core::mem::MaybeUninit;

use super::FullyConnectedParams;
use crate::arch::cortex_m::{dot_offset_i8_dsp, sadd16, smlad, sxtb16, sxtb16_ror8};
use crate::quant::requantize_to_i8;

/// Longest input row whose sign-extended, offset copy is kept on the stack (1 KiB for one row,
/// 2 KiB for two rows or four rows of half this length): longer rows use the one-row dot
/// product. (It was 1024: the four-row buffer was then 4 KiB, and with a Conv2D's patches above
/// it the DS-CNN's stack high-water mark on the Cortex-M4 reached 10 KiB.)
pub(crate) const MAX_EXPANDED: usize = 512;

/// The little-endian word of the first 4 bytes of `c`.
#[inline(always)]
fn le_word(c: &[i8]) -> u32 {
    u32::from_le_bytes([c[0] as u8, c[1] as u8, c[2] as u8, c[3] as u8])
}

/// `x_offset` in both halfwords, the `SADD16` operand of the expansions.
#[inline(always)]
fn offset_pair(x_offset: i32) -> u32 {
    let half = x_offset as u16 as u32;
    half | (half << 16)
}

/// The first `words` elements of an expansion buffer, which an `expand*` call just wrote.
#[inline(always)]
fn expanded(xe: &[MaybeUninit<u32>], words: usize) -> &[u32] {
    let xe = &xe[..words];
    // SAFETY: the callers pass the count an `expand*` call returned: it initialised exactly
    // those elements; `MaybeUninit<u32>` has the layout of `u32`.
    unsafe { core::slice::from_raw_parts(xe.as_ptr().cast::<u32>(), words) }
}

/// `x` as SMLAD operands: for each 4 bytes, the halfword pairs `(x0, x2) + offset` and
/// `(x1, x3) + offset` (`SXTB16`, `SXTB16 ROR 8`, `SADD16`), computed once per input row and
/// shared by every output feature. Returns the number of words written (`2 · (len / 4)`).
pub(crate) fn expand(x: &[i8], x_offset: i32, out: &mut [MaybeUninit<u32>]) -> usize {
    let ox = offset_pair(x_offset);
    let mut n = 0;
    for (c, o) in x.chunks_exact(4).zip(out.chunks_exact_mut(2)) {
        let xw = le_word(c);
        o[0].write(sadd16(sxtb16(xw), ox));
        o[1].write(sadd16(sxtb16_ror8(xw), ox));
        n += 2;
    }
    n
}

/// `Σ (x[k] + x_offset) · w_r[k]` for three weight rows at once (wrapping int32), added to
/// `acc`; `xe` is [`expand`]`(x)` and `w` holds the three rows back to back (`3 · x.len()`
/// bytes). On the Cortex-M4 the inner loop is hand-written: rows 1 and 2 are addressed from
/// row 0's pointer with a register offset (`[p, k]`, `[p, k, LSL #1]`), so the three
/// accumulators, two operand words and the weight word fit in 11 registers (`asm!` leaves
/// 12); per 4 input bytes one `LDRD`, three weight `LDR`s, six `SXTB16`, six `SMLAD` (two
/// passes per loop iteration: 34 instructions per 24 MACs).
#[inline(always)]
pub(crate) fn dot3(x: &[i8], x_offset: i32, xe: &[u32], w: &[i8], acc: [i32; 3]) -> [i32; 3] {
    let k = x.len();
    let words = k / 4;
    let xe = &xe[..2 * words];
    let rows = [&w[..k], &w[k..2 * k], &w[2 * k..3 * k]];
    let [mut a0, mut a1, mut a2] = acc;
    // Words done by the unrolled loop (an even number on the Cortex-M4).
    #[allow(unused_mut)]
    let mut done = 0;
    #[cfg(edgeloop_dsp)]
    if words >= 2 {
        // SAFETY: reads `2 · (words / 2) · 2 ≤ xe.len()` words from `xe` and, per row, the first
        // `4 · 2 · (words / 2) ≤ k` bytes of rows 0, 1 and 2 (at `p`, `p + k`, `p + 2k`, all
        // inside `w[..3k]`), through pointers advanced by the loads; the count is ≥ 1, so the
        // loop ends. LDRD needs word alignment, which `xe` (a `u32` slice) has; the weight LDRs
        // may be unaligned (allowed on the Cortex-M4). Only the named registers are written;
        // the flags (SUBS, and the Q flag of SMLAD) are clobbered, which `asm!` assumes.
        unsafe {
            core::arch::asm!(
                "2:",
                "ldrd r0, r1, [{px}], #8",
                "ldr r4, [{pw}, {k}]",
                "sxtb16 r5, r4, ror #8",
                "sxtb16 r4, r4",
                "smlad {a1}, r4, r0, {a1}",
                "smlad {a1}, r5, r1, {a1}",
                "ldr r4, [{pw}, {k}, lsl #1]",
                "sxtb16 r5, r4, ror #8",
                "sxtb16 r4, r4",
                "smlad {a2}, r4, r0, {a2}",
                "smlad {a2}, r5, r1, {a2}",
                "ldr r4, [{pw}], #4",
                "sxtb16 r5, r4, ror #8",
                "sxtb16 r4, r4",
                "smlad {a0}, r4, r0, {a0}",
                "smlad {a0}, r5, r1, {a0}",
                "ldrd r0, r1, [{px}], #8",
                "ldr r4, [{pw}, {k}]",
                "sxtb16 r5, r4, ror #8",
                "sxtb16 r4, r4",
                "smlad {a1}, r4, r0, {a1}",
                "smlad {a1}, r5, r1, {a1}",
                "ldr r4, [{pw}, {k}, lsl #1]",
                "sxtb16 r5, r4, ror #8",
                "sxtb16 r4, r4",
                "smlad {a2}, r4, r0, {a2}",
                "smlad {a2}, r5, r1, {a2}",
                "ldr r4, [{pw}], #4",
                "sxtb16 r5, r4, ror #8",
                "sxtb16 r4, r4",
                "smlad {a0}, r4, r0, {a0}",
                "smlad {a0}, r5, r1, {a0}",
                "subs {n}, {n}, #1",
                "bne 2b",
                px = inout(reg) xe.as_ptr() => _,
                pw = inout(reg) w.as_ptr() => _,
                k = in(reg) k,
                n = inout(reg) words / 2 => _,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                out("r0") _, out("r1") _, out("r4") _, out("r5") _,
                options(nostack, readonly),
            );
        }
        done = words / 2 * 2;
    }
    for i in done..words {
        let word = |r: &[i8]| le_word(&r[4 * i..]);
        let (x02, x13) = (xe[2 * i], xe[2 * i + 1]);
        let (w0, w1, w2) = (word(rows[0]), word(rows[1]), word(rows[2]));
        a0 = smlad(sxtb16_ror8(w0), x13, smlad(sxtb16(w0), x02, a0));
        a1 = smlad(sxtb16_ror8(w1), x13, smlad(sxtb16(w1), x02, a1));
        a2 = smlad(sxtb16_ror8(w2), x13, smlad(sxtb16(w2), x02, a2));
    }
    let mut acc = [a0, a1, a2];
    for i in 4 * words..k {
        let xv = x[i] as i32 + x_offset;
        for (a, row) in acc.iter_mut().zip(rows) {
            *a = a.wrapping_add(xv.wrapping_mul(row[i] as i32));
        }
    }
    acc
}

/// Two input rows as SMLAD operands, interleaved: for each 4 bytes `(a0, a2)`, `(a1, a3)`,
/// `(b0, b2)`, `(b1, b3)`, each plus the offset, so one pointer walks both rows. Returns the
/// number of words written (`4 · (len / 4)`).
pub(crate) fn expand2(xa: &[i8], xb: &[i8], x_offset: i32, out: &mut [MaybeUninit<u32>]) -> usize {
    let ox = offset_pair(x_offset);
    let mut n = 0;
    for ((ca, cb), o) in xa
        .chunks_exact(4)
        .zip(xb.chunks_exact(4))
        .zip(out.chunks_exact_mut(4))
    {
        let (wa, wb) = (le_word(ca), le_word(cb));
        o[0].write(sadd16(sxtb16(wa), ox));
        o[1].write(sadd16(sxtb16_ror8(wa), ox));
        o[2].write(sadd16(sxtb16(wb), ox));
        o[3].write(sadd16(sxtb16_ror8(wb), ox));
        n += 4;
    }
    n
}

/// The whole-word part of two dot products with one weight row: `(acc_a + Σ xa·w, acc_b +
/// Σ xb·w)` over `words = xe.len() / 4` groups of 4 bytes; `xe` is [`expand2`]'s output and `w`
/// holds at least `4 · words` bytes.
#[inline(always)]
pub(crate) fn dot1x2_words(xe: &[u32], w: &[i8], acc: (i32, i32)) -> (i32, i32) {
    let words = xe.len() / 4;
    debug_assert!(w.len() >= 4 * words);
    let (mut a0, mut a1) = acc;
    if words == 0 {
        return (a0, a1);
    }
    #[cfg(edgeloop_dsp)]
    {
        // SAFETY: reads `4 · words` words from `xe` (its length) and `4 · words` bytes from `w`
        // (checked by the caller's slicing, repeated in the debug_assert above), each through
        // a pointer advanced by the load itself; `words ≥ 1`, so the counted loop ends. LDR
        // allows unaligned addresses on the Cortex-M4; LDM needs (and gets) word alignment:
        // `xe` is a `u32` slice. Only the named registers are written; the flags (SUBS, and
        // the Q flag of SMLAD) are clobbered, which `asm!` assumes without `preserves_flags`.
        unsafe {
            core::arch::asm!(
                "2:",
                "ldm {px}!, {{r0, r1, r2, r3}}",
                "ldr r4, [{pw}], #4",
                "sxtb16 r5, r4, ror #8",
                "sxtb16 r4, r4",
                "smlad {a0}, r4, r0, {a0}",
                "smlad {a0}, r5, r1, {a0}",
                "smlad {a1}, r4, r2, {a1}",
                "smlad {a1}, r5, r3, {a1}",
                "subs {n}, {n}, #1",
                "bne 2b",
                px = inout(reg) xe.as_ptr() => _,
                pw = inout(reg) w.as_ptr() => _,
                n = inout(reg) words => _,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                out("r0") _, out("r1") _, out("r2") _, out("r3") _, out("r4") _, out("r5") _,
                options(nostack, readonly),
            );
        }
    }
    #[cfg(not(edgeloop_dsp))]
    {
        for (i, x) in xe.chunks_exact(4).enumerate() {
            let wv = le_word(&w[4 * i..]);
            let (wl, wh) = (sxtb16(wv), sxtb16_ror8(wv));
            a0 = smlad(wl, x[0], a0);
            a0 = smlad(wh, x[1], a0);
            a1 = smlad(wl, x[2], a1);
            a1 = smlad(wh, x[3], a1);
        }
    }
    (a0, a1)
}

/// `true` when every shift is in `-31..=-2` (total shift `ts = 31 − shift` in 33..=62), the
/// range [`requant_fast`] handles: every scale below ¼ (a Q31 multiplier in [½, 1) times 2^shift),
/// the usual case.
pub(crate) fn fast_shifts(shifts: &[i32]) -> bool {
    shifts.iter().all(|s| (-31..=-2).contains(s))
}

/// [`requantize_to_i8`], bit for bit, for a shift in `-31..=-2` (checked once per call with
/// [`fast_shifts`]): the rounding constant `2^(ts − 1)` lies in the high word of the 64-bit sum
/// (one `SMLAL`), and `(wide >> 32) >> (ts − 32)` equals `wide >> ts` (floor division twice);
/// `|wide| < 2⁶²`, so the result is below 2²⁹ and adding the zero point cannot overflow. No
/// branch.
#[inline(always)]
pub(crate) fn requant_fast(acc: i32, mult: i32, shift: i32, zp: i32, min: i8, max: i8) -> i8 {
    debug_assert!((-31..=-2).contains(&shift));
    let round_hi = 1i32 << ((-shift - 2) & 31);
    let wide = i64::from(acc) * i64::from(mult) + (i64::from(round_hi) << 32);
    let v = ((wide >> 32) as i32) >> ((-shift - 1) & 31);
    (v + zp).max(min as i32).min(max as i32) as i8
}

/// The per-channel constant of [`requant_split`] for a shift in `-31..=-2` (what
/// [`fast_shifts`] accepts): `−shift − 2`, in `0..=29`.
#[inline(always)]
pub(crate) fn split_shift(shift: i32) -> u8 {
    debug_assert!((-31..=-2).contains(&shift));
    (-shift - 2).clamp(0, 29) as u8
}

/// [`requant_fast`] (so [`requantize_to_i8`], bit for bit) with its constants precomputed once
/// per call: `pre = `[`split_shift`]`(shift)` and `k = 1 + 2·zp`. With `hi = (acc·mult) >> 32`
/// and `r = −shift − 1` (1..=30), `(hi + 2^(r−1)) >> r` equals `((hi >> (r − 1)) + 1) >> 1`
/// (floor division twice), and adding `2·zp` before the last halving adds `zp` after it; so
/// per channel one `SMULL`/`SMMUL`, two shifts and an add, no rounding constant to build.
/// `|hi| < 2³⁰`, so `hi >> pre` plus `k` (an int8 zero point) cannot overflow.
// The DepthwiseConv2D kernel's `asm!` computes the same on the Cortex-M4; the host emulation
// and the tests call this.
#[cfg_attr(edgeloop_dsp, allow(dead_code))]
#[inline(always)]
pub(crate) fn requant_split(acc: i32, mult: i32, pre: u8, k: i32, min: i32, max: i32) -> i8 {
    let hi = ((i64::from(acc) * i64::from(mult)) >> 32) as i32;
    // `pre` comes from `split_shift` (at most 29); the mask is for other callers.
    let q = hi >> (u32::from(pre) & 31);
    ((q + k) >> 1).max(min).min(max) as i8
}

/// [`requantize_to_i8`], bit for bit, with a 32-bit fast path when the total shift
/// `ts = 31 − shift` is in 32..=62 (every scale below 1): the rounding constant then lies in one
/// half of the 64-bit sum (one `SMLAL`), and `(wide >> 32) >> (ts − 32)` equals `wide >> ts`
/// (floor division twice) and always fits an i32, so no clamp is needed before the zero point.
#[inline(always)]
pub(crate) fn requant_i8(acc: i32, mult: i32, shift: i32, zp: i32, min: i8, max: i8) -> i8 {
    let ts = 31 - shift;
    if (32..=62).contains(&ts) {
        let round: i64 = if ts == 32 {
            1 << 31
        } else {
            i64::from(1u32 << (ts - 33)) << 32
        };
        let wide = i64::from(acc) * i64::from(mult) + round;
        // |wide| < 2⁶², so |v| < 2³⁰ and adding an int8 zero point cannot overflow.
        let v = ((wide >> 32) as i32) >> (ts - 32);
        (v + zp).max(min as i32).min(max as i32) as i8
    } else {
        requantize_to_i8(acc, mult, shift, zp, min, max)
    }
}

/// Four input rows as SMLAD operands, interleaved: for each 4 bytes, `(r0, r2)`, `(r1, r3)` of
/// row 0, then of rows 1, 2 and 3 (each plus the offset), so one pointer walks all four. Returns
/// the number of words written (`8 · (len / 4)`).
///
/// On the Cortex-M4 each row is one hand-written loop of 8 instructions per 4 bytes (`LDR`, two
/// `SXTB16`, two `SADD16`, `STRD` with a post-increment of one 4-row group, `SUBS`/`BNE`; the
/// compiled loop took 16).
pub(crate) fn expand4(rows: [&[i8]; 4], x_offset: i32, out: &mut [MaybeUninit<u32>]) -> usize {
    let ox = offset_pair(x_offset);
    let words = rows[0].len() / 4;
    #[cfg(edgeloop_dsp)]
    if words > 0 {
        let out = &mut out[..8 * words];
        for (r, row) in rows.iter().enumerate() {
            let row = &row[..4 * words];
            // SAFETY: `words ≥ 1` passes (a counted loop that ends); reads the `4 · words`
            // bytes of `row` (the slice above; unaligned `LDR` is allowed on the Cortex-M4) and
            // writes words `8 · i + 2 · r` and `8 · i + 2 · r + 1` of `out` for `i < words`,
            // all below `8 · words` (its length: checked above), with `STRD` at word-aligned
            // addresses (a `MaybeUninit<u32>` slice). Only the named registers are written; the
            // flags (SUBS, SADD16's GE bits) are clobbered, which `asm!` assumes.
            unsafe {
                core::arch::asm!(
                    "2:",
                    "ldr {x}, [{src}], #4",
                    "sxtb16 {lo}, {x}",
                    "sxtb16 {x}, {x}, ror #8",
                    "sadd16 {lo}, {lo}, {off}",
                    "sadd16 {x}, {x}, {off}",
                    "strd {lo}, {x}, [{dst}], #32",
                    "subs {n}, {n}, #1",
                    "bne 2b",
                    src = inout(reg) row.as_ptr() => _,
                    dst = inout(reg) out.as_mut_ptr().add(2 * r) => _,
                    n = inout(reg) words => _,
                    off = in(reg) ox,
                    x = out(reg) _,
                    lo = out(reg) _,
                    options(nostack),
                );
            }
        }
        return 8 * words;
    }
    for (r, row) in rows.iter().enumerate() {
        for (i, c) in row.chunks_exact(4).enumerate().take(words) {
            let x = le_word(c);
            out[8 * i + 2 * r].write(sadd16(sxtb16(x), ox));
            out[8 * i + 2 * r + 1].write(sadd16(sxtb16_ror8(x), ox));
        }
    }
    8 * words
}

/// The whole-word part of four dot products with one weight row: `acc[r] + Σ x_r·w` over
/// `words = xe.len() / 8` groups of 4 bytes; `xe` is [`expand4`]'s output and `w` holds at least
/// `4 · words` bytes. Every sign-extended weight pair feeds four accumulators: per 16 MACs one
/// weight `LDR`, two `SXTB16`, four `LDM`s of two operand words, eight `SMLAD`, `SUBS`/`BNE`
/// (17 instructions) on the Cortex-M4.
#[inline(always)]
pub(crate) fn dot1x4_words(xe: &[u32], w: &[i8], acc: [i32; 4]) -> [i32; 4] {
    let words = xe.len() / 8;
    debug_assert!(w.len() >= 4 * words);
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    if words == 0 {
        return acc;
    }
    #[cfg(edgeloop_dsp)]
    {
        // SAFETY: as in `dot1x2_words`, with `8 · words` words read from `xe` (its length).
        unsafe {
            core::arch::asm!(
                "2:",
                "ldr r4, [{pw}], #4",
                "sxtb16 r5, r4, ror #8",
                "sxtb16 r4, r4",
                "ldm {px}!, {{r0, r1}}",
                "smlad {a0}, r4, r0, {a0}",
                "smlad {a0}, r5, r1, {a0}",
                "ldm {px}!, {{r0, r1}}",
                "smlad {a1}, r4, r0, {a1}",
                "smlad {a1}, r5, r1, {a1}",
                "ldm {px}!, {{r0, r1}}",
                "smlad {a2}, r4, r0, {a2}",
                "smlad {a2}, r5, r1, {a2}",
                "ldm {px}!, {{r0, r1}}",
                "smlad {a3}, r4, r0, {a3}",
                "smlad {a3}, r5, r1, {a3}",
                "subs {n}, {n}, #1",
                "bne 2b",
                px = inout(reg) xe.as_ptr() => _,
                pw = inout(reg) w.as_ptr() => _,
                n = inout(reg) words => _,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                out("r0") _, out("r1") _, out("r4") _, out("r5") _,
                options(nostack, readonly),
            );
        }
    }
    #[cfg(not(edgeloop_dsp))]
    {
        for (i, x) in xe.chunks_exact(8).enumerate() {
            let wv = le_word(&w[4 * i..]);
            let (wl, wh) = (sxtb16(wv), sxtb16_ror8(wv));
            a0 = smlad(wh, x[1], smlad(wl, x[0], a0));
            a1 = smlad(wh, x[3], smlad(wl, x[2], a1));
            a2 = smlad(wh, x[5], smlad(wl, x[4], a2));
            a3 = smlad(wh, x[7], smlad(wl, x[6], a3));
        }
    }
    [a0, a1, a2, a3]
}

/// One weight word against four expanded rows in `quad_fast`'s inner loop (`lr` walks the
/// weights, `r12` the expanded rows; accumulators `r0`-`r3`): a weight `LDR`, two `SXTB16`, four
/// `LDM`s of two operand words and eight `SMLAD`. Written twice per pass there.
#[cfg(edgeloop_dsp)]
macro_rules! quad_word {
    () => {
        concat!(
            "ldr r4, [lr], #4\n",
            "sxtb16 r5, r4, ror #8\n",
            "sxtb16 r4, r4\n",
            "ldm r12!, {{r8, r9}}\n",
            "smlad r0, r4, r8, r0\n",
            "smlad r0, r5, r9, r0\n",
            "ldm r12!, {{r8, r9}}\n",
            "smlad r1, r4, r8, r1\n",
            "smlad r1, r5, r9, r1\n",
            "ldm r12!, {{r8, r9}}\n",
            "smlad r2, r4, r8, r2\n",
            "smlad r2, r5, r9, r2\n",
            "ldm r12!, {{r8, r9}}\n",
            "smlad r3, r4, r8, r3\n",
            "smlad r3, r5, r9, r3\n",
        )
    };
}

/// Every output feature of one group of four rows, with a bias, K a multiple of 4 and every
/// shift in the range of [`requant_split`]: `y` holds the four output rows (`4 · n` bytes,
/// `n = bias.len()`), `xe` is [`expand4`]'s output for the four input rows (`8 · K / 4`
/// words), `w` the weights (`n · K` bytes), `mult` and `shift` at least `n` per-feature
/// constants, `k = 1 + 2 · output_zero_point`.
///
/// On the Cortex-M4 one `asm!` block runs every output feature: the inner loop of
/// [`dot1x4_words`] (15 instructions per 16 MACs, unrolled to two words per pass so that the
/// count and branch cost 2 per 32 MACs, 1.0 per MAC in all; the weights walked by one pointer
/// from feature to feature), then four `SMMUL`, `ASR` by `−shift − 2`, the add of `k`, `SSAT #8` of
/// the half, the four bytes packed with `BFI`, clamped with `SSUB8`/`SEL`, and stored to the
/// four rows: 53 instructions per feature besides the MACs (the Rust loop with
/// [`requant_fast`] took about 115). Elsewhere the same arithmetic runs as
/// [`dot1x4_words`] and [`requant_split`], which the host tests check against the reference.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn quad_fast(
    xe: &[u32],
    w: &[i8],
    bias: &[i32],
    mult: &[i32],
    shift: &[i32],
    y: &mut [i8],
    k: i32,
    (min, max): (i8, i8),
) {
    let n = bias.len();
    let words = xe.len() / 8;
    let depth = 4 * words;
    // The contract, checked once per group of rows (the asm reads exactly these).
    let (w, mult, shift, y) = (&w[..n * depth], &mult[..n], &shift[..n], &mut y[..4 * n]);
    if n == 0 || words == 0 {
        // Without features there is nothing to write; without whole words K is 0, which
        // `check_i8` rejects.
        return;
    }
    #[cfg(edgeloop_dsp)]
    {
        let bytes = |v: i8| u32::from_ne_bytes([v as u8; 4]);
        let row = y.as_mut_ptr();
        // One past the first row (inside `y`); only compared against.
        let row_end = row.wrapping_add(n);
        // SAFETY: `n ≥ 1` passes of the outer loop (the row pointer from `y` up to `y + n` in
        // steps of 1) and `words ≥ 1` of the inner one, so both counted loops end (the inner
        // one makes ⌈words / 2⌉ passes of two words, the first entered at its second word when
        // `words` is odd: `words` words in all, as without the unrolling). Reads:
        // `8 · words` words of `xe` per feature (its length; `LDM` gets the alignment of a
        // `u32` slice), the weights through `lr`, advanced by each load over `n · 4 · words`
        // bytes (`w`'s length; unaligned `LDR` is allowed on the Cortex-M4), one bias,
        // multiplier and shift per feature (`n` of each, the slices above). Writes: one byte
        // per feature into each of the four rows `row`, `row + n`, `row + 2n`, `row + 3n`
        // (inside `y`, `4 · n` bytes). The twelve pushed words (`sp` stays 8-byte aligned)
        // are dropped before the end. Every register used is an operand; the flags (SUBS,
        // CMP, SSUB8's GE bits, the Q flag) are clobbered, which `asm!` assumes without
        // `preserves_flags`.
        unsafe {
            core::arch::asm!(
                // [sp]: bias, [sp, 4]: mult, [sp, 8]: shift, [sp, 12]: row, [sp, 16]: n,
                // [sp, 20]: row end, [sp, 24]: k, [sp, 28]: min bytes, [sp, 32]: max bytes,
                // [sp, 36]: xe, [sp, 40]: words; lr walks the weights.
                "push {{r0, r1, r2, r3, r4, r5, r8, r9, r10, r11, r12, lr}}",
                "1:",
                "ldr r4, [sp]",
                "ldr r0, [r4], #4",
                "str r4, [sp]",
                "mov r1, r0",
                "mov r2, r0",
                "mov r3, r0",
                "ldr r12, [sp, #36]",
                "ldr r10, [sp, #40]",
                // Two words per pass (one SUBS/BNE per 32 MACs): r10 = ⌈words / 2⌉ passes,
                // an odd count entering the first pass at its second word.
                "lsrs r10, r10, #1",
                "bcc 2f",
                "add r10, r10, #1",
                "b 3f",
                "2:",
                quad_word!(),
                "3:",
                quad_word!(),
                "subs r10, r10, #1",
                "bne 2b",
                "ldrd r4, r5, [sp, #4]",
                "ldr r8, [r4], #4",
                "ldr r9, [r5], #4",
                "strd r4, r5, [sp, #4]",
                "smmul r0, r0, r8",
                "smmul r1, r1, r8",
                "smmul r2, r2, r8",
                "smmul r3, r3, r8",
                // −shift − 2 (`split_shift`).
                "mvn r9, r9",
                "sub r9, r9, #1",
                "asr.w r0, r0, r9",
                "asr.w r1, r1, r9",
                "asr.w r2, r2, r9",
                "asr.w r3, r3, r9",
                "ldr r4, [sp, #24]",
                crate::arch::cortex_m::round_pack4_m4!("r4"),
                "ldrd r4, r5, [sp, #28]",
                "ssub8 r8, r0, r4",
                "sel r0, r0, r4",
                "ssub8 r8, r5, r0",
                "sel r0, r0, r5",
                "ldrd r4, r5, [sp, #12]",
                "strb r0, [r4]",
                "lsr r0, r0, #8",
                "strb r0, [r4, r5]",
                "add.w r8, r4, r5, lsl #1",
                "lsr r0, r0, #8",
                "strb r0, [r8]",
                "lsr r0, r0, #8",
                "strb r0, [r8, r5]",
                "add r4, r4, #1",
                "str r4, [sp, #12]",
                "ldr r5, [sp, #20]",
                "cmp r4, r5",
                "bne 1b",
                "add sp, sp, #48",
                inout("r0") bias.as_ptr() => _,
                inout("r1") mult.as_ptr() => _,
                inout("r2") shift.as_ptr() => _,
                inout("r3") row => _,
                inout("r4") n => _,
                inout("r5") row_end => _,
                inout("r8") k => _,
                inout("r9") bytes(min) => _,
                inout("r10") bytes(max) => _,
                inout("r11") xe.as_ptr() => _,
                inout("r12") words => _,
                inout("lr") w.as_ptr() => _,
            );
        }
    }
    #[cfg(not(edgeloop_dsp))]
    {
        let (lo, hi) = (i32::from(min), i32::from(max));
        for (o, ws) in w.chunks_exact(depth).enumerate() {
            let b = bias[o];
            let acc = dot1x4_words(xe, ws, [b, b, b, b]);
            let pre = split_shift(shift[o]);
            for (j, a) in acc.into_iter().enumerate() {
                y[j * n + o] = requant_split(a, mult[o], pre, k, lo, hi);
            }
        }
    }
}

/// Input rows four at a time; `input` holds a multiple of 4 rows of at most
/// `MAX_EXPANDED / 2` bytes.
#[inline(never)]
fn eval_quads(p: &FullyConnectedParams<'_>, input: &[i8], output: &mut [i8]) {
    let k = p.shape.in_features as usize;
    let n = p.shape.out_features as usize;
    let x_offset = -p.input_zero_point;
    let (zp, min, max) = (p.output_zero_point, p.activation.min, p.activation.max);
    let fast = fast_shifts(&p.output_shift[..n]);
    // Whole features per group of rows in one block (`quad_fast`): a bias, whole words, and
    // every shift in its range.
    let packed = match p.bias {
        Some(b) if fast && k.is_multiple_of(4) => Some(&b[..n]),
        _ => None,
    };
    // Not zeroed: `expand4` writes the words that are read.
    let mut xe = [MaybeUninit::<u32>::uninit(); MAX_EXPANDED];
    let whole = 4 * (k / 4);
    for (xs, ys) in input
        .chunks_exact(4 * k)
        .zip(output.chunks_exact_mut(4 * n))
    {
        let rows = [&xs[..k], &xs[k..2 * k], &xs[2 * k..3 * k], &xs[3 * k..]];
        let words = expand4(rows, x_offset, &mut xe);
        let xe = expanded(&xe, words);
        if let Some(bias) = packed {
            let (mult, shift) = (p.output_multiplier, p.output_shift);
            quad_fast(xe, p.weights, bias, mult, shift, ys, 1 + 2 * zp, (min, max));
            continue;
        }
        let columns = p
            .weights
            .chunks_exact(k)
            .zip(p.output_multiplier.iter().zip(p.output_shift.iter()))
            .take(n)
            .enumerate();
        let (y0, rest) = ys.split_at_mut(n);
        let (y1, rest) = rest.split_at_mut(n);
        let (y2, y3) = rest.split_at_mut(n);
        for (o, (w, (&m, &s))) in columns {
            let b = p.bias.map_or(0, |b| b[o]);
            let mut acc = dot1x4_words(xe, w, [b, b, b, b]);
            if whole < k {
                acc = tail4(rows, w, x_offset, whole, acc);
            }
            let [a0, a1, a2, a3] = acc;
            // Two whole branches, not one per output: the Cortex-M4 build (opt-level s) does
            // not unswitch the loop, and a per-output test cost 6 % more instructions.
            if fast {
                y0[o] = requant_fast(a0, m, s, zp, min, max);
                y1[o] = requant_fast(a1, m, s, zp, min, max);
                y2[o] = requant_fast(a2, m, s, zp, min, max);
                y3[o] = requant_fast(a3, m, s, zp, min, max);
            } else {
                y0[o] = requantize_to_i8(a0, m, s, zp, min, max);
                y1[o] = requantize_to_i8(a1, m, s, zp, min, max);
                y2[o] = requantize_to_i8(a2, m, s, zp, min, max);
                y3[o] = requantize_to_i8(a3, m, s, zp, min, max);
            }
        }
    }
}

/// The leftover input bytes `whole..` (K not a multiple of 4) of four rows against one weight
/// row, added to `acc`.
#[inline(never)]
fn tail4(rows: [&[i8]; 4], w: &[i8], x_offset: i32, whole: usize, mut acc: [i32; 4]) -> [i32; 4] {
    for (i, &wv) in w.iter().enumerate().skip(whole) {
        for (a, row) in acc.iter_mut().zip(rows) {
            *a = a.wrapping_add((row[i] as i32 + x_offset).wrapping_mul(wv as i32));
        }
    }
    acc
}

/// Input rows two at a time (see the module docs); `input` holds an even number of rows.
#[inline(never)]
fn eval_pairs(p: &FullyConnectedParams<'_>, input: &[i8], output: &mut [i8]) {
    let k = p.shape.in_features as usize;
    let n = p.shape.out_features as usize;
    let x_offset = -p.input_zero_point;
    // Not zeroed: `expand2` writes the words that are read.
    let mut xe = [MaybeUninit::<u32>::uninit(); MAX_EXPANDED];
    for (xs, ys) in input
        .chunks_exact(2 * k)
        .zip(output.chunks_exact_mut(2 * n))
    {
        let (xa, xb) = xs.split_at(k);
        let (ya, yb) = ys.split_at_mut(n);
        let words = expand2(xa, xb, x_offset, &mut xe);
        let xe = expanded(&xe, words);
        for (o, w) in p.weights.chunks_exact(k).take(n).enumerate() {
            let b = p.bias.map_or(0, |b| b[o]);
            let (mut a0, mut a1) = dot1x2_words(xe, w, (b, b));
            // Leftover bytes (K not a multiple of 4).
            for i in 4 * (k / 4)..k {
                let wv = w[i] as i32;
                a0 = a0.wrapping_add((xa[i] as i32 + x_offset).wrapping_mul(wv));
                a1 = a1.wrapping_add((xb[i] as i32 + x_offset).wrapping_mul(wv));
            }
            for (y, a) in [(&mut ya[o], a0), (&mut yb[o], a1)] {
                *y = requant_i8(
                    a,
                    p.output_multiplier[o],
                    p.output_shift[o],
                    p.output_zero_point,
                    p.activation.min,
                    p.activation.max,
                );
            }
        }
    }
}

/// DSP FullyConnected. Requires a successful [`super::check_i8`].
pub fn eval_i8(p: &FullyConnectedParams<'_>, input: &[i8], output: &mut [i8]) {
    let k = p.shape.in_features as usize;
    let n = p.shape.out_features as usize;
    let x_offset = -p.input_zero_point;
    // Input zero points are int8, so |x_offset| ≤ 128 fits the 16-bit lanes of SADD16
    // (sums in [-256, 255]); the one-row path keeps its own check.
    let blocked = x_offset.abs() <= crate::arch::MAX_DOT_OFFSET && k <= MAX_EXPANDED;
    let quads = if blocked && k <= MAX_EXPANDED / 2 {
        input.len() / k / 4 * 4
    } else {
        0
    };
    if quads > 0 {
        eval_quads(p, &input[..quads * k], &mut output[..quads * n]);
    }
    let (input, output) = (&input[quads * k..], &mut output[quads * n..]);
    let paired = if blocked { input.len() / k / 2 * 2 } else { 0 };
    if paired > 0 {
        eval_pairs(p, &input[..paired * k], &mut output[..paired * n]);
    }
    let (input, output) = (&input[paired * k..], &mut output[paired * n..]);
    if !input.is_empty() {
        eval_rows(p, blocked, input, output);
    }
}

/// Input rows one at a time (the leftover rows, or every row when the layer is not `blocked`).
/// A function of its own so that its expanded row (1 KiB) is not on the stack while
/// [`eval_quads`] or [`eval_pairs`] (2 KiB each) run.
#[inline(never)]
fn eval_rows(p: &FullyConnectedParams<'_>, blocked: bool, input: &[i8], output: &mut [i8]) {
    let k = p.shape.in_features as usize;
    let n = p.shape.out_features as usize;
    let x_offset = -p.input_zero_point;
    let bias = |o: usize| p.bias.map_or(0, |b| b[o]);
    let requant = |o: usize, acc: i32| {
        requantize_to_i8(
            acc,
            p.output_multiplier[o],
            p.output_shift[o],
            p.output_zero_point,
            p.activation.min,
            p.activation.max,
        )
    };
    // Not zeroed (1 KiB of stores would cost more than a small layer): `expand` writes the
    // words that are read.
    let mut xe = [MaybeUninit::<u32>::uninit(); MAX_EXPANDED / 2];
    let fast = !input.is_empty() && fast_shifts(&p.output_shift[..n]);
    for (x, y) in input.chunks_exact(k).zip(output.chunks_exact_mut(n)) {
        let mut o = 0;
        if blocked {
            let words = expand(x, x_offset, &mut xe);
            let xe = expanded(&xe, words);
            for (ys, ws) in y.chunks_exact_mut(3).zip(p.weights.chunks_exact(3 * k)) {
                let acc = dot3(x, x_offset, xe, ws, [bias(o), bias(o + 1), bias(o + 2)]);
                let (zp, min, max) = (p.output_zero_point, p.activation.min, p.activation.max);
                let (ms, ss) = (&p.output_multiplier[o..o + 3], &p.output_shift[o..o + 3]);
                match (ys, ms, ss) {
                    ([y0, y1, y2], [m0, m1, m2], [s0, s1, s2]) if fast => {
                        *y0 = requant_fast(acc[0], *m0, *s0, zp, min, max);
                        *y1 = requant_fast(acc[1], *m1, *s1, zp, min, max);
                        *y2 = requant_fast(acc[2], *m2, *s2, zp, min, max);
                    }
                    (ys, _, _) => {
                        for (j, (yo, a)) in ys.iter_mut().zip(acc).enumerate() {
                            *yo = requant(o + j, a);
                        }
                    }
                }
                o += 3;
            }
        }
        for (yo, w) in y[o..].iter_mut().zip(p.weights[o * k..].chunks_exact(k)) {
            let acc = bias(o).wrapping_add(dot_offset_i8_dsp(x, x_offset, w, 0));
            *yo = requant(o, acc);
            o += 1;
        }
    }
}
