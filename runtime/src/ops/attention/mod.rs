//! Decoder attention over a persistent KV cache: append the current tokens' K and V, then attend
//! causally over positions `0..=pos` — no recomputation of the prefix.
//!
//! # The KV-cache design
//!
//! - `k_cache` and `v_cache` are tensors `[heads, capacity, head_dim]` in a **persistent** arena
//!   region: the planner never reuses their bytes for other tensors, and the interpreter never
//!   clears them between `invoke`s, so the state survives from one token to the next.
//! - The decode position `pos` (number of tokens already in the cache) is an `i32` graph input
//!   the caller sets before each `invoke` (0 for the prompt's first token). Resetting the cache is
//!   setting `pos = 0`: entries at or beyond `pos` are never read before they are rewritten, so no
//!   clearing is needed.
//! - [`append`] copies the `t` new tokens' K (or V), `[heads, t, head_dim]`, into
//!   `cache[:, pos..pos + t, :]`. [`eval_i8`] / [`eval_f32`] then compute, for each head and new
//!   token `i` (absolute position `pos + i`), `softmax(q·kⱼᵀ / √d)` over `j ≤ pos + i` (causal) or
//!   `j < pos + t` (not causal) and the weighted sum of `vⱼ`.
//! - Both check `0 ≤ pos` and `pos + t ≤ capacity` at run time (the position is data) and return
//!   [`Error::KvCacheFull`] otherwise.
//! - The kernel needs a scratch slice of `capacity` `i32`/`f32` (one score row).
//!
//! # int8 arithmetic (integer only)
//!
//! 1. Scores as an int8 QDQ graph has them: `s_j = requantize_to_i8(Σ (q − q_zp)(k_j − k_zp))`
//!    with the multiplier of `s_q·s_k/(√d · s_score)` and the score zero point.
//! 2. Softmax weights from the core softmax table ([`super::softmax::exp_table`]`(s_score, 1.0)`):
//!    `e_j = t[max − s_j]` (Q24), `T = Σ e_j` in 64 bits. The probabilities are **not** rounded to
//!    int8 (more accurate than a QDQ graph's `P`).
//! 3. Per output channel `c`: `a = Σ e_j (v_jc − v_zp)` in `i64`, `r = round(2¹⁶ · a / T)` (one
//!    integer division), then `requantize_to_i8(r)` with the multiplier of `s_v/(s_out·2¹⁶)`.
//!
//! **Error bound** (tested): within 1 output LSB of the f64 math on the same int8 scores
//! (softmax and `P·V` exact in f64, then rounded). The Q24 table contributes at most
//! `255 · L · 2⁻²⁵` of `v`'s scale per output (below 0.03 LSB of `v` for `L ≤ 4096`), the division
//! 2⁻¹⁷, and the final requantization 0.5 LSB.

// Cortex-M4 DSP variant, used by `eval_i8` on thumbv7em (unless feature `reference-kernels`).
pub mod dsp;
pub mod reference;
#[cfg(test)]
mod tests;
#[cfg(any(test, feature = "std"))]
#[doc(hidden)]
pub mod tiny_gpt;

use crate::arch::DotKernel;
use crate::Error;

/// Largest cache capacity (positions): keeps the 64-bit sums of [`eval_i8`] exact.
pub const MAX_CAPACITY: u32 = 1 << 12;

/// Sizes of a KV cache and of the attention that reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct KvShape {
    /// Attention heads.
    pub heads: u32,
    /// Width of one head.
    pub head_dim: u32,
    /// Positions the cache holds.
    pub capacity: u32,
    /// New tokens per `invoke` (1 when decoding, the prompt length for a prefill).
    pub tokens: u32,
}

impl KvShape {
    /// Elements of `(new tokens [heads, tokens, head_dim], cache [heads, capacity, head_dim])`.
    pub fn lens(&self) -> Result<(usize, usize), Error> {
        if self.capacity > MAX_CAPACITY
            || self.tokens > self.capacity
            || self.head_dim > super::batch_matmul::MAX_DEPTH
        {
            return Err(super::param_err());
        }
        Ok((
            super::elements(&[self.heads, self.tokens, self.head_dim])?,
            super::elements(&[self.heads, self.capacity, self.head_dim])?,
        ))
    }

    /// Checks the run-time position: `0 ≤ pos` and `pos + tokens ≤ capacity`.
    pub fn check_position(&self, position: i32) -> Result<usize, Error> {
        let end = position as i64 + self.tokens as i64;
        if position < 0 || end > self.capacity as i64 {
            return Err(Error::KvCacheFull {
                op: 0,
                capacity: self.capacity,
                // `end` exceeds i32 only when `position` is within `tokens` of i32::MAX.
                position: i32::try_from(end).unwrap_or(i32::MAX),
            });
        }
        Ok(position as usize)
    }
}

/// Validates [`append`]'s lengths.
pub fn check_append(shape: &KvShape, new_len: usize, cache_len: usize) -> Result<(), Error> {
    let (n, c) = shape.lens()?;
    super::expect_len(new_len, n)?;
    super::expect_len(cache_len, c)
}

/// Copies `new [heads, tokens, head_dim]` into `cache[:, pos..pos + tokens, :]`.
/// Requires a successful [`check_append`]; the position is checked here.
pub fn append<T: Copy>(
    shape: &KvShape,
    new: &[T],
    position: i32,
    cache: &mut [T],
) -> Result<(), Error> {
    let pos = shape.check_position(position)?;
    let (t, d, cap) = (
        shape.tokens as usize,
        shape.head_dim as usize,
        shape.capacity as usize,
    );
    for (src, dst) in new.chunks_exact(t * d).zip(cache.chunks_exact_mut(cap * d)) {
        dst[pos * d..(pos + t) * d].copy_from_slice(src);
    }
    Ok(())
}

/// int8 attention parameters (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct AttentionParams<'a> {
    /// Sizes.
    pub shape: KvShape,
    /// Attend to `j ≤ pos + i` only (decoder); otherwise to every cached position `< pos + tokens`.
    pub causal: bool,
    /// Zero point of Q.
    pub q_zero_point: i32,
    /// Zero point of the K cache.
    pub k_zero_point: i32,
    /// Zero point of the V cache.
    pub v_zero_point: i32,
    /// Q31 multiplier for `s_q · s_k / (√head_dim · s_score)`.
    pub score_multiplier: i32,
    /// Shift for the score multiplier.
    pub score_shift: i32,
    /// Zero point of the int8 scores.
    pub score_zero_point: i32,
    /// Softmax table of the scores ([`super::softmax::exp_table`]`(s_score, 1.0)`), 256 Q24 entries.
    pub exp_table: &'a [i32],
    /// Q31 multiplier for `s_v / (s_out · 2¹⁶)`.
    pub output_multiplier: i32,
    /// Shift for the output multiplier.
    pub output_shift: i32,
    /// Output zero point.
    pub output_zero_point: i32,
}

/// f32 attention parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AttentionF32Params {
    /// Sizes.
    pub shape: KvShape,
    /// Causal mask (see [`AttentionParams::causal`]).
    pub causal: bool,
    /// Score scale, usually `1/√head_dim`.
    pub scale: f32,
}

/// Validates int8 attention: `q`/`out` `[heads, tokens, head_dim]`, caches
/// `[heads, capacity, head_dim]`, scratch at least `capacity`.
pub fn check_i8(
    p: &AttentionParams<'_>,
    q_len: usize,
    cache_len: usize,
    scratch_len: usize,
    out_len: usize,
) -> Result<(), Error> {
    let (n, c) = p.shape.lens()?;
    super::expect_len(q_len, n)?;
    super::expect_len(out_len, n)?;
    super::expect_len(cache_len, c)?;
    if scratch_len < p.shape.capacity as usize {
        return Err(super::shape_err());
    }
    for zp in [
        p.q_zero_point,
        p.k_zero_point,
        p.v_zero_point,
        p.score_zero_point,
        p.output_zero_point,
    ] {
        super::check_zero_point(zp)?;
    }
    super::check_multiplier(p.score_multiplier, p.score_shift)?;
    super::check_multiplier(p.output_multiplier, p.output_shift)?;
    let one = 1i32 << super::softmax::TABLE_BITS;
    if p.exp_table.len() != super::softmax::TABLE_LEN
        || p.exp_table[0] != one
        || p.exp_table.iter().any(|&t| !(0..=one).contains(&t))
    {
        return Err(super::quant_err());
    }
    Ok(())
}

/// Validates f32 attention (same lengths as [`check_i8`]).
pub fn check_f32(
    p: &AttentionF32Params,
    q_len: usize,
    cache_len: usize,
    scratch_len: usize,
    out_len: usize,
) -> Result<(), Error> {
    let (n, c) = p.shape.lens()?;
    super::expect_len(q_len, n)?;
    super::expect_len(out_len, n)?;
    super::expect_len(cache_len, c)?;
    if scratch_len < p.shape.capacity as usize {
        return Err(super::shape_err());
    }
    if !p.scale.is_finite() {
        return Err(super::param_err());
    }
    Ok(())
}

/// int8 attention: the DSP kernel ([`dsp::eval_i8`]) on `thumbv7em-*` (unless the feature
/// `reference-kernels` is on), elsewhere the reference with the reference dot product. Both
/// are bit-exact. Requires a successful [`check_i8`].
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
    #[cfg(all(edgeloop_dsp, not(feature = "reference-kernels")))]
    return dsp::eval_i8(p, q, k_cache, v_cache, position, scratch, out);
    #[allow(unreachable_code)]
    reference::eval_i8(
        &DotKernel::reference(),
        p,
        q,
        k_cache,
        v_cache,
        position,
        scratch,
        out,
    )
}

/// int8 attention with a chosen dot-product variant (bit-exact to [`eval_i8`]).
#[allow(clippy::too_many_arguments)]
pub fn eval_i8_with(
    dot: &DotKernel,
    p: &AttentionParams<'_>,
    q: &[i8],
    k_cache: &[i8],
    v_cache: &[i8],
    position: i32,
    scratch: &mut [i32],
    out: &mut [i8],
) -> Result<(), Error> {
    reference::eval_i8(dot, p, q, k_cache, v_cache, position, scratch, out)
}

/// f32 attention. Requires a successful [`check_f32`].
pub fn eval_f32(
    p: &AttentionF32Params,
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    position: i32,
    scratch: &mut [f32],
    out: &mut [f32],
) -> Result<(), Error> {
    reference::eval_f32(p, q, k_cache, v_cache, position, scratch, out)
}
