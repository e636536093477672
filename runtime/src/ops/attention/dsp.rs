//! Cortex-M4 DSP int8 attention over the KV cache, bit-exact to [`super::reference::eval_i8`].
//!
//! Same three steps as the reference, reorganised for the DSP extension:
//! 1. Scores: the query row is sign-extended and offset once ([`fully_connected::dsp`]'s
//!    `expand`), and the cached keys are used as raw int8 rows, three positions per pass through
//!    the hand-written SMLAD loop; the key zero point is folded out of the loop
//!    (`Σ (q − q_zp)(k − k_zp) = Σ (q − q_zp)·k − k_zp · Σ (q − q_zp)`, modulo 2³², so bit-exact).
//!    Scores are requantized through the branch-free 32-bit path when the shift allows it.
//! 2. Softmax weights from the same Q24 table, the same 64-bit total.
//! 3. `P·V` per channel with one 64-bit multiply-accumulate per position (`SMLAL`) over the raw
//!    values, the value zero point folded out (`Σ e·(v − v_zp) = Σ e·v − v_zp · Σ e`, exact in
//!    64 bits), then the reference's rounded division and requantization.
//!
//! The host tests run the same code over the portable emulation of the DSP instructions.
//!
//! [`fully_connected::dsp`]: crate::ops::fully_connected::dsp

use core::mem::MaybeUninit;

use super::{reference, AttentionParams};
use crate::arch::cortex_m::dot_offset_i8_dsp;
use crate::arch::DotKernel;
use crate::ops::fully_connected::dsp::{
    dot3, expand, fast_shifts, requant_fast, requant_i8, MAX_EXPANDED,
};
use crate::Error;

/// Widest head whose expanded query row is kept on the stack (2 KiB); wider heads use the
/// reference loops with the DSP dot product.
pub const MAX_HEAD_DIM: usize = MAX_EXPANDED;

/// DSP attention. Requires a successful [`super::check_i8`]; the position is checked here.
#[allow(clippy::too_many_arguments)]
pub fn eval_i8(
    p: &AttentionParams<'_>,
    q: &[i8],
    k_cache: &[i8],
    v_cache: &[i8],
    position: i32,
    scratch: &mut [i32],
    out: &mut [i8],
) -> Result<(), Error> {
    let s = p.shape;
    let d = s.head_dim as usize;
    if d > MAX_HEAD_DIM {
        return reference::eval_i8(
            &DotKernel::dsp(),
            p,
            q,
            k_cache,
            v_cache,
            position,
            scratch,
            out,
        );
    }
    let pos = s.check_position(position)?;
    let table = reference::exp_table(p)?;
    let (sm, ss, szp) = (p.score_multiplier, p.score_shift, p.score_zero_point);
    let score_fast = fast_shifts(&[ss]);
    let score = |acc: i32| {
        if score_fast {
            requant_fast(acc, sm, ss, szp, -128, 127) as i32
        } else {
            requant_i8(acc, sm, ss, szp, -128, 127) as i32
        }
    };
    let q_offset = -p.q_zero_point;
    // Not zeroed: `expand` writes the words that are read.
    let mut qe = [MaybeUninit::<u32>::uninit(); MAX_HEAD_DIM / 2];
    let caches = (q, k_cache, v_cache);
    reference::for_each_query(&s, p.causal, pos, caches, out, |qi, kh, vh, oi, len| {
        let row = &mut scratch[..len];
        // 1. int8 scores and their maximum.
        let words = expand(qi, q_offset, &mut qe);
        // SAFETY: `expand` initialised the first `words` elements of `qe`.
        let qe = unsafe { core::slice::from_raw_parts(qe.as_ptr().cast::<u32>(), words) };
        // −k_zp · Σ (q − q_zp).
        let correction = qi
            .iter()
            .fold(0i32, |a, &v| a.wrapping_add(v as i32 + q_offset))
            .wrapping_mul(p.k_zero_point)
            .wrapping_neg();
        let keys = &kh[..len * d];
        let mut max = i32::MIN;
        let mut j = 0;
        for (s3, k3) in row.chunks_exact_mut(3).zip(keys.chunks_exact(3 * d)) {
            let acc = dot3(qi, q_offset, qe, k3, [correction; 3]);
            for (sj, a) in s3.iter_mut().zip(acc) {
                *sj = score(a);
                max = max.max(*sj);
            }
            j += 3;
        }
        for (sj, kj) in row[j..].iter_mut().zip(keys[j * d..].chunks_exact(d)) {
            *sj = score(correction.wrapping_add(dot_offset_i8_dsp(qi, q_offset, kj, 0)));
            max = max.max(*sj);
        }
        // 2. Q24 exponentials and their sum.
        let total = reference::exponentials(row, table, max);
        // 3. Σ e·(v − v_zp) = Σ e·v − v_zp·Σ e per channel, one rounded division each.
        let zv_total = p.v_zero_point as i64 * total;
        let inv = 1.0 / to_f32(2 * total);
        let values = &vh[..len * d];
        for (c, o) in oi.iter_mut().enumerate() {
            let mut acc: i64 = 0;
            let mut vp = values[c..].as_ptr();
            for &e in row.iter() {
                // SAFETY: `vp` points at `values[j·d + c]` for the `j`-th weight, `j < len`
                // and `c < d`, inside `values` (`len · d` bytes); it is advanced with
                // `wrapping_add`, so the step past the last one is never dereferenced.
                let v = unsafe { *vp };
                vp = vp.wrapping_add(d);
                acc += e as i64 * v as i64;
            }
            let acc = acc - zv_total;
            // round(2^16 · acc / total), ties up: floor((2^17·acc + total) / (2·total)).
            let r = floor_div((acc << 17) + total, 2 * total, inv);
            *o = reference::requantize_output(p, r);
        }
    });
    Ok(())
}

/// `x` as f32 (within one rounding of each half): two hardware conversions instead of the
/// soft-float 64-bit one.
#[inline(always)]
fn to_f32(x: i64) -> f32 {
    ((x >> 32) as i32 as f32) * 4_294_967_296.0 + (x as u32 as f32)
}

/// `n.div_euclid(d)` for `d > 0` and a quotient that fits an i32 (the attention output: below
/// 2²⁵ in magnitude), without a 64-bit division: an f32 estimate `n · (1/d)` (`inv`), within a
/// few units of the quotient, corrected with exact 64-bit remainders until
/// `0 ≤ n − q·d < d` — the definition of the floor quotient, so the result is exact.
#[inline(always)]
fn floor_div(n: i64, d: i64, inv: f32) -> i64 {
    let mut q = (to_f32(n) * inv) as i32 as i64;
    let mut r = n - q * d;
    while r < 0 {
        q -= 1;
        r += d;
    }
    while r >= d {
        q += 1;
        r -= d;
    }
    q
}
