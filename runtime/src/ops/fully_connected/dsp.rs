//! Cortex-M4 DSP int8 FullyConnected (SXTB16/SADD16/SMLAD), bit-exact to
//! [`super::reference::eval_i8`].
//!
//! On `thumbv7em-*` (build.rs cfg `edgeloop_dsp`) the instructions are real DSP instructions in
//! `asm!`; on every other target the same source runs over the portable emulation of those
//! instructions in [`crate::arch::cortex_m`], so the host tests check the algorithm bit for bit.
//!
//! Each input row (up to 1024 features) is sign-extended (`SXTB16`, `SXTB16 ROR 8`) and offset
//! by the input zero point (`SADD16`) once, into a 2 KiB stack buffer of SMLAD operands shared
//! by every output feature. Three output features are then computed per pass: per row and 4 MACs
//! one weight load, two `SXTB16` and two `SMLAD` (weights are symmetric: no offset). Leftover
//! rows and longer inputs use the one-row dot product; leftover input bytes (K not a multiple
//! of 4) use scalar code. Integer addition modulo 2³² is associative, so every accumulator
//! equals the reference's.

use core::mem::MaybeUninit;

use super::FullyConnectedParams;
use crate::arch::cortex_m::{dot_offset_i8_dsp, sadd16, smlad, sxtb16, sxtb16_ror8};
use crate::quant::requantize_to_i8;

/// Longest input row whose sign-extended, offset copy is kept on the stack (2 KiB): longer
/// rows use the one-row dot product.
const MAX_EXPANDED: usize = 1024;

/// `x` as SMLAD operands: for each 4 bytes, the halfword pairs `(x0, x2) + offset` and
/// `(x1, x3) + offset` (`SXTB16`, `SXTB16 ROR 8`, `SADD16`), computed once per input row and
/// shared by every output feature. Returns the number of words written (`2 · (len / 4)`).
fn expand(x: &[i8], x_offset: i32, out: &mut [MaybeUninit<u32>; MAX_EXPANDED / 2]) -> usize {
    let half = x_offset as u16 as u32;
    let ox = half | (half << 16);
    let mut n = 0;
    for (c, o) in x.chunks_exact(4).zip(out.chunks_exact_mut(2)) {
        let xw = u32::from_le_bytes([c[0] as u8, c[1] as u8, c[2] as u8, c[3] as u8]);
        o[0].write(sadd16(sxtb16(xw), ox));
        o[1].write(sadd16(sxtb16_ror8(xw), ox));
        n += 2;
    }
    n
}

/// `Σ (x[k] + x_offset) · w_r[k]` for three weight rows at once (wrapping int32), added to
/// `acc`; `xe` is [`expand`]`(x)`. Every row must be at least as long as `x`. Three rows keep
/// the accumulators, row pointers and operands in the Cortex-M4's registers (four spill).
#[inline(always)]
fn dot3(x: &[i8], x_offset: i32, xe: &[u32], w: [&[i8]; 3], acc: [i32; 3]) -> [i32; 3] {
    let k = x.len();
    let words = k / 4;
    let xe = &xe[..2 * words];
    let rows = [&w[0][..k], &w[1][..k], &w[2][..k]];
    let [mut a0, mut a1, mut a2] = acc;
    let [p0, p1, p2] = rows.map(|r| r.as_ptr());
    // Unaligned 32-bit loads (one LDR each; Cortex-M4 allows unaligned LDR).
    let load = |p: *const i8, i: usize| {
        // SAFETY: `i < words = k / 4`, so bytes `4i..4i + 4` lie inside a row of `k` bytes
        // starting at `p` (every row was cut to `k` bytes above).
        unsafe { p.add(4 * i).cast::<u32>().read_unaligned() }
    };
    for (i, xs) in xe.chunks_exact(2).enumerate() {
        let (x02, x13) = (xs[0], xs[1]);
        let w0 = load(p0, i);
        a0 = smlad(sxtb16(w0), x02, a0);
        a0 = smlad(sxtb16_ror8(w0), x13, a0);
        let w1 = load(p1, i);
        a1 = smlad(sxtb16(w1), x02, a1);
        a1 = smlad(sxtb16_ror8(w1), x13, a1);
        let w2 = load(p2, i);
        a2 = smlad(sxtb16(w2), x02, a2);
        a2 = smlad(sxtb16_ror8(w2), x13, a2);
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

/// DSP FullyConnected. Requires a successful [`super::check_i8`].
pub fn eval_i8(p: &FullyConnectedParams<'_>, input: &[i8], output: &mut [i8]) {
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
    // Input zero points are int8, so |x_offset| ≤ 128 fits the 16-bit lanes of SADD16
    // (sums in [-256, 255]); the one-row path keeps its own check.
    let blocked = x_offset.abs() <= crate::arch::MAX_DOT_OFFSET && k <= MAX_EXPANDED;
    // Not zeroed (2 KiB of stores would cost more than a small layer): `expand` writes the
    // words that are read.
    let mut xe = [MaybeUninit::<u32>::uninit(); MAX_EXPANDED / 2];
    for (x, y) in input.chunks_exact(k).zip(output.chunks_exact_mut(n)) {
        let mut o = 0;
        if blocked {
            let words = expand(x, x_offset, &mut xe);
            // SAFETY: `expand` initialised the first `words` elements of `xe`.
            let xe = unsafe { core::slice::from_raw_parts(xe.as_ptr().cast::<u32>(), words) };
            for (ys, ws) in y.chunks_exact_mut(3).zip(p.weights.chunks_exact(3 * k)) {
                let (w0, w12) = ws.split_at(k);
                let (w1, w2) = w12.split_at(k);
                let acc = dot3(
                    x,
                    x_offset,
                    xe,
                    [w0, w1, w2],
                    [bias(o), bias(o + 1), bias(o + 2)],
                );
                for (j, (yo, a)) in ys.iter_mut().zip(acc).enumerate() {
                    *yo = requant(o + j, a);
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
