//! Cortex-M4 DSP int8 BatchMatMul (SXTB16/SADD16/SMLAD), bit-exact to
//! [`super::reference::eval_i8`]: attention's `Q·Kᵀ` and `P·V` in the int8 transformer graphs.
//!
//! Every batch is a FullyConnected-shaped product: rows of `A` against the rows of `Bᵀ` (`B`
//! itself when `transpose_b`, otherwise its columns gathered into a 1 KiB stack block, as many
//! columns at a time as fit). `B`'s zero point is folded out of the inner loop:
//! `Σ (a − a_zp)(b − b_zp) = Σ (a − a_zp)·b − b_zp · Σ (a − a_zp)` (modulo 2³², so bit-exact), so
//! `Bᵀ` is used as raw int8 like FullyConnected weights and each row of `A` adds one correction
//! term. Rows of `A` are sign-extended and offset once per block ([`fully_connected::dsp`]'s
//! `expand4`), four rows interleaved, and every sign-extended `Bᵀ` word feeds both rows' SMLADs
//! (the hand-written 4-row inner loop on the Cortex-M4, then the 2-row one); a last single row runs
//! three columns per pass. Requantization is the per-tensor multiplier through the 32-bit fast path (bit-exact to
//! [`crate::quant::requantize_to_i8`]). Depths beyond [`MAX_K`] use the DSP dot product per
//! output (the reference when `B` is not transposed).
//!
//! [`fully_connected::dsp`]: crate::ops::fully_connected::dsp

use core::mem::MaybeUninit;

use super::BatchMatMulParams;
use crate::arch::cortex_m::dot_offset_i8_dsp;
use crate::arch::DotKernel;
use crate::ops::fully_connected::dsp::{
    dot1x2_words, dot1x4_words, dot3, expand, expand2, expand4, fast_shifts, requant_fast,
    requant_i8,
};

/// Deepest accumulation run through the blocked kernel (four expanded rows: 2 KiB of stack;
/// deeper products use the one-row dot product). It was 512 (4 KiB), the intent classifier's
/// largest stack frame on the Cortex-M4; its attention products have k ≤ 20.
pub const MAX_K: usize = 256;

/// Bytes of `B`'s gathered columns per block when `B` is not transposed.
const COLUMN_BLOCK: usize = 1024;

/// DSP BatchMatMul. Requires a successful [`super::check_i8`].
pub fn eval_i8(p: &BatchMatMulParams, a: &[i8], b: &[i8], out: &mut [i8]) {
    let s = p.shape;
    let (m, k, n) = (s.m as usize, s.k as usize, s.n as usize);
    if k > MAX_K {
        return super::eval_i8_with(&DotKernel::dsp(), p, a, b, out);
    }
    // Columns of `Bᵀ` per block: all of them when `B` is transposed (its rows are `Bᵀ`'s);
    // otherwise as many as the stack block holds (at least 4, since k ≤ 256).
    let cols = if s.transpose_b {
        n
    } else {
        (COLUMN_BLOCK / k).min(n)
    };
    let mut gathered = [MaybeUninit::<i8>::uninit(); COLUMN_BLOCK];
    for ((ab, bb), ob) in a
        .chunks_exact(m * k)
        .zip(b.chunks_exact(k * n))
        .zip(out.chunks_exact_mut(m * n))
    {
        let mut j0 = 0;
        while j0 < n {
            let nc = cols.min(n - j0);
            let block: &[i8] = if s.transpose_b {
                &bb[j0 * k..(j0 + nc) * k]
            } else {
                for (jj, col) in gathered.chunks_exact_mut(k).take(nc).enumerate() {
                    for (d, src) in col.iter_mut().zip(bb[j0 + jj..].iter().step_by(n)) {
                        d.write(*src);
                    }
                }
                // SAFETY: the loop above wrote `nc · k ≤ COLUMN_BLOCK` bytes (each of the `nc`
                // columns has `k` elements in `bb`, one every `n`), the ones read here.
                unsafe { core::slice::from_raw_parts(gathered.as_ptr().cast::<i8>(), nc * k) }
            };
            block_product(p, ab, block, j0, ob);
            j0 += nc;
        }
    }
}

/// Output columns `j0..j0 + block.len() / k` of one batch: every row of `a` (`[m, k]`) against
/// the `Bᵀ` rows in `block`, written into `out` (`[m, n]`).
#[inline(never)]
fn block_product(p: &BatchMatMulParams, a: &[i8], block: &[i8], j0: usize, out: &mut [i8]) {
    let s = p.shape;
    let (k, n) = (s.k as usize, s.n as usize);
    let x_offset = -p.a_zero_point;
    let zb = p.b_zero_point;
    // −b_zp · Σ (a − a_zp) for one row of A.
    let correction = |row: &[i8]| {
        let sum = row
            .iter()
            .fold(0i32, |acc, &v| acc.wrapping_add(v as i32 + x_offset));
        sum.wrapping_mul(zb).wrapping_neg()
    };
    let (m, sh, zp) = (p.output_multiplier, p.output_shift, p.output_zero_point);
    let (min, max) = (p.activation.min, p.activation.max);
    let fast = fast_shifts(&[sh]);
    let finish = |acc: i32| {
        if fast {
            requant_fast(acc, m, sh, zp, min, max)
        } else {
            requant_i8(acc, m, sh, zp, min, max)
        }
    };
    let mut xe = [MaybeUninit::<u32>::uninit(); 2 * MAX_K];
    let mut o = 0;
    // Rows four at a time (the 1×4 block: every sign-extended `Bᵀ` word feeds four SMLADs).
    let mut quads = a.chunks_exact(4 * k);
    for quad in &mut quads {
        let rows = [
            &quad[..k],
            &quad[k..2 * k],
            &quad[2 * k..3 * k],
            &quad[3 * k..],
        ];
        let c = rows.map(correction);
        let words = expand4(rows, x_offset, &mut xe);
        // SAFETY: `expand4` initialised the first `words` elements of `xe`.
        let xe = unsafe { core::slice::from_raw_parts(xe.as_ptr().cast::<u32>(), words) };
        let (y0, rest) = out[o..o + 4 * n].split_at_mut(n);
        let (y1, rest) = rest.split_at_mut(n);
        let (y2, y3) = rest.split_at_mut(n);
        for (jj, w) in block.chunks_exact(k).enumerate() {
            let mut acc = dot1x4_words(xe, w, c);
            for i in 4 * (k / 4)..k {
                let wv = w[i] as i32;
                for (a, row) in acc.iter_mut().zip(rows) {
                    *a = a.wrapping_add((row[i] as i32 + x_offset).wrapping_mul(wv));
                }
            }
            let j = j0 + jj;
            y0[j] = finish(acc[0]);
            y1[j] = finish(acc[1]);
            y2[j] = finish(acc[2]);
            y3[j] = finish(acc[3]);
        }
        o += 4 * n;
    }
    let mut rows = quads.remainder().chunks_exact(2 * k);
    for pair in &mut rows {
        let (xa, xb) = pair.split_at(k);
        let (ca, cb) = (correction(xa), correction(xb));
        let words = expand2(xa, xb, x_offset, &mut xe);
        // SAFETY: `expand2` initialised the first `words` elements of `xe`.
        let xe = unsafe { core::slice::from_raw_parts(xe.as_ptr().cast::<u32>(), words) };
        for (jj, w) in block.chunks_exact(k).enumerate() {
            let (mut a0, mut a1) = dot1x2_words(xe, w, (ca, cb));
            for i in 4 * (k / 4)..k {
                let wv = w[i] as i32;
                a0 = a0.wrapping_add((xa[i] as i32 + x_offset).wrapping_mul(wv));
                a1 = a1.wrapping_add((xb[i] as i32 + x_offset).wrapping_mul(wv));
            }
            out[o + j0 + jj] = finish(a0);
            out[o + n + j0 + jj] = finish(a1);
        }
        o += 2 * n;
    }
    let x = rows.remainder();
    if x.is_empty() {
        return;
    }
    let c = correction(x);
    let words = expand(x, x_offset, &mut xe);
    // SAFETY: `expand` initialised the first `words` elements of `xe`.
    let xe = unsafe { core::slice::from_raw_parts(xe.as_ptr().cast::<u32>(), words) };
    let mut j = 0;
    for ws in block.chunks_exact(3 * k) {
        let acc = dot3(x, x_offset, xe, ws, [c, c, c]);
        for (jj, v) in acc.into_iter().enumerate() {
            out[o + j0 + j + jj] = finish(v);
        }
        j += 3;
    }
    for w in block[j * k..].chunks_exact(k) {
        out[o + j0 + j] = finish(c.wrapping_add(dot_offset_i8_dsp(x, x_offset, w, 0)));
        j += 1;
    }
}
