//! The attention specification: plain loops and integer arithmetic (int8), no `unsafe`.

use super::{AttentionF32Params, AttentionParams, KvShape};
use crate::arch::DotKernel;
use crate::quant::requantize_to_i8;
use crate::Error;

/// Number of positions query `i` (absolute position `pos + i`) attends to.
#[inline]
fn visible(causal: bool, pos: usize, i: usize, tokens: usize) -> usize {
    if causal {
        pos + i + 1
    } else {
        pos + tokens
    }
}

/// Calls `f(q_i, k_h, v_h, out_i, len)` for every head `h` and query row `i`: `q_i` and `out_i`
/// are the row's `head_dim` elements, `k_h` and `v_h` the head's caches, of which the first
/// `len` positions are visible to the row (`pos` tokens were cached before).
#[inline(always)]
pub(super) fn for_each_query<T, O>(
    s: &KvShape,
    causal: bool,
    pos: usize,
    (q, k_cache, v_cache): (&[T], &[T], &[T]),
    out: &mut [O],
    mut f: impl FnMut(&[T], &[T], &[T], &mut [O], usize),
) {
    let (t, d, cap) = (s.tokens as usize, s.head_dim as usize, s.capacity as usize);
    for (((qh, kh), vh), oh) in q
        .chunks_exact(t * d)
        .zip(k_cache.chunks_exact(cap * d))
        .zip(v_cache.chunks_exact(cap * d))
        .zip(out.chunks_exact_mut(t * d))
    {
        for (i, (qi, oi)) in qh.chunks_exact(d).zip(oh.chunks_exact_mut(d)).enumerate() {
            f(qi, kh, vh, oi, visible(causal, pos, i, t));
        }
    }
}

/// The Q24 exponential table of `p` (256 entries), or the error for a malformed one.
pub(super) fn exp_table<'a>(p: &AttentionParams<'a>) -> Result<&'a [i32; 256], Error> {
    p.exp_table
        .try_into()
        .map_err(|_| super::super::quant_err())
}

/// Step 2: replaces each int8 score of `row` with its Q24 exponential `table[max − s]` (`max`
/// is the row's maximum, so the index is in 0..=255) and returns their sum (≥ 2^24).
#[inline(always)]
pub(super) fn exponentials(row: &mut [i32], table: &[i32; 256], max: i32) -> i64 {
    let mut total: i64 = 0;
    for sj in row.iter_mut() {
        *sj = table[(max - *sj) as usize];
        total += *sj as i64;
    }
    total
}

/// Step 3's end: `round(2^16 · acc / total)` (`r`) requantized to the int8 output.
#[inline(always)]
pub(super) fn requantize_output(p: &AttentionParams<'_>, r: i64) -> i8 {
    requantize_to_i8(
        r as i32,
        p.output_multiplier,
        p.output_shift,
        p.output_zero_point,
        -128,
        127,
    )
}

/// int8 attention; `dot` is the offset dot product used for `q·kⱼ` (every variant is bit-exact).
#[allow(clippy::too_many_arguments)]
pub fn eval_i8(
    dot: &DotKernel,
    p: &AttentionParams<'_>,
    q: &[i8],
    k_cache: &[i8],
    v_cache: &[i8],
    position: i32,
    scratch: &mut [i32],
    out: &mut [i8],
) -> Result<(), Error> {
    let pos = p.shape.check_position(position)?;
    let d = p.shape.head_dim as usize;
    let table = exp_table(p)?;
    let caches = (q, k_cache, v_cache);
    for_each_query(
        &p.shape,
        p.causal,
        pos,
        caches,
        out,
        |qi, kh, vh, oi, len| {
            let row = &mut scratch[..len];
            // 1. int8 scores and their maximum.
            let mut max = i32::MIN;
            for (sj, kj) in row.iter_mut().zip(kh.chunks_exact(d)) {
                let acc = dot.dot_offset_i8(qi, -p.q_zero_point, kj, -p.k_zero_point);
                let v = requantize_to_i8(
                    acc,
                    p.score_multiplier,
                    p.score_shift,
                    p.score_zero_point,
                    -128,
                    127,
                ) as i32;
                *sj = v;
                max = max.max(v);
            }
            // 2. Q24 exponentials and their sum.
            let total = exponentials(row, table, max);
            // 3. Weighted sum of V per channel, one rounded division, requantization.
            for (c, o) in oi.iter_mut().enumerate() {
                let mut acc: i64 = 0;
                for (j, &e) in row.iter().enumerate() {
                    acc += e as i64 * (v_cache_at(vh, j, d, c) as i32 - p.v_zero_point) as i64;
                }
                // round(2^16 · acc / total), ties up: floor((2^17·acc + total) / (2·total)).
                let r = ((acc << 17) + total).div_euclid(2 * total);
                *o = requantize_output(p, r);
            }
        },
    );
    Ok(())
}

#[inline(always)]
fn v_cache_at<T: Copy>(vh: &[T], j: usize, d: usize, c: usize) -> T {
    vh[j * d + c]
}

/// f32 attention.
pub fn eval_f32(
    p: &AttentionF32Params,
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    position: i32,
    scratch: &mut [f32],
    out: &mut [f32],
) -> Result<(), Error> {
    let pos = p.shape.check_position(position)?;
    let d = p.shape.head_dim as usize;
    let caches = (q, k_cache, v_cache);
    for_each_query(
        &p.shape,
        p.causal,
        pos,
        caches,
        out,
        |qi, kh, vh, oi, len| {
            let row = &mut scratch[..len];
            let mut max = f32::NEG_INFINITY;
            for (sj, kj) in row.iter_mut().zip(kh.chunks_exact(d)) {
                let v = qi.iter().zip(kj).map(|(a, b)| a * b).sum::<f32>() * p.scale;
                *sj = v;
                if v > max {
                    max = v;
                }
            }
            let mut total = 0f32;
            for sj in row.iter_mut() {
                *sj = super::super::fmath::exp(*sj - max);
                total += *sj;
            }
            let inv = 1.0 / total;
            for (c, o) in oi.iter_mut().enumerate() {
                let mut acc = 0f32;
                for (j, &e) in row.iter().enumerate() {
                    acc += e * v_cache_at(vh, j, d, c);
                }
                *o = acc * inv;
            }
        },
    );
    Ok(())
}
