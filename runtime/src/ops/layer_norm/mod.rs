//! LayerNorm over the last axis: `y = γ · (x − mean) / √(var + ε) + β`, per row of `cols` values.
//!
//! # int8 (integer only, I-BERT style; runs on Cortex-M0+)
//!
//! With `xᵢ = q_i − input_zero_point`, `S = Σ xᵢ`, `Q = Σ xᵢ²` and `C = cols`, the normalised value is
//! exactly `nᵢ = (C·xᵢ − S) / √(C·Q − S² + ε_q)` where the input scale cancels and
//! `ε_q = ε·C²/s_in²`. The kernel computes, with integers only:
//! 1. `v = (C·Q − S²)·2¹⁶ + epsilon_q16` (`epsilon_q16 = round(ε·C²·2¹⁶/s_in²)`, precomputed);
//! 2. `v` shifted by an even amount `2k` into `[2⁶⁰, 2⁶²)`, `den = ⌊√v'⌋` (integer square root,
//!    31 significant bits) and one division per row, `inv = ⌊2⁶² / den⌋`;
//! 3. per element, `nᵢ` in Q16: `round((C·xᵢ − S) · inv / 2^(38 − k))`;
//! 4. `γᵢ/s_out` is a signed per-channel multiplier (Q31 multiplier and shift, for `γᵢ/(s_out·2¹⁶)`)
//!    applied by [`requantize`](crate::quant::requantize); then `βᵢ/s_out` (rounded, `beta_q`) and
//!    the output zero point are added and the result saturates to int8.
//!
//! **Error bound** (tested on random rows, scales, zero points, γ, β and ε): within **1 output LSB**
//! of the f64 math (dequantize → LayerNorm in f64 → round). The three roundings (Q16 normalised
//! value, requantization, `β/s_out`) contribute at most `0.5 + 0.5 + |γ/s_out|·2⁻¹⁷` LSB and the
//! square root and reciprocal a relative `2⁻²⁹`.
//!
//! `cols` is at most [`MAX_COLS`] so that `(C·Q − S²)·2¹⁶` fits in 64 bits.
//!
//! # f32
//!
//! Two-pass mean and variance in f32, each sum in
//! [`fmath::sum_lanes`](super::fmath::sum_lanes)'s order (eight interleaved partial sums, the
//! order of the AVX2 variant, which is bit-exact), then [`fmath::sqrt`](super::fmath::sqrt).

// Optimized variant, selected by `crate::arch::ops_table_avx2`.
#[cfg(target_arch = "x86_64")]
pub mod avx2;
// The fused int8 LayerNorm on sixteen lanes, selected by `quantized::eval`.
#[cfg(target_arch = "x86_64")]
pub mod avx512;
// Dequantize, f32 LayerNorm and Quantize as one int8 op (LayerNorm version 2).
pub mod quantized;
pub mod reference;
#[cfg(test)]
mod tests;

use crate::Error;

/// Largest normalised-axis length.
pub const MAX_COLS: u32 = 1 << 14;

/// int8 LayerNorm parameters (see the module docs for the arithmetic).
#[derive(Debug, Clone, Copy)]
pub struct LayerNormParams<'a> {
    /// Number of rows (all leading dimensions multiplied).
    pub rows: u32,
    /// Length of the normalised (last) axis.
    pub cols: u32,
    /// Input zero point.
    pub input_zero_point: i32,
    /// Output zero point.
    pub output_zero_point: i32,
    /// `round(ε · cols² · 2¹⁶ / s_in²)`, saturated to `u64`.
    pub epsilon_q16: u64,
    /// Signed Q31 multiplier per channel for `γ[c] / (s_out · 2¹⁶)` (negative for negative γ).
    pub gamma_multiplier: &'a [i32],
    /// Shift per channel, in `[-31, 30]`.
    pub gamma_shift: &'a [i32],
    /// `round(β[c] / s_out)` per channel.
    pub beta_q: &'a [i32],
}

/// f32 LayerNorm parameters.
#[derive(Debug, Clone, Copy)]
pub struct LayerNormF32Params<'a> {
    /// Number of rows.
    pub rows: u32,
    /// Length of the normalised (last) axis.
    pub cols: u32,
    /// ε added to the variance.
    pub epsilon: f32,
    /// γ per channel.
    pub gamma: &'a [f32],
    /// β per channel.
    pub beta: &'a [f32],
}

fn check_shape(rows: u32, cols: u32, input_len: usize, output_len: usize) -> Result<(), Error> {
    if cols == 0 || cols > MAX_COLS {
        return Err(super::param_err());
    }
    let n = super::elements(&[rows, cols])?;
    super::expect_len(input_len, n)?;
    super::expect_len(output_len, n)
}

/// Validates int8 params against the input and output lengths.
pub fn check_i8(p: &LayerNormParams<'_>, input_len: usize, output_len: usize) -> Result<(), Error> {
    check_shape(p.rows, p.cols, input_len, output_len)?;
    super::check_zero_point(p.input_zero_point)?;
    super::check_zero_point(p.output_zero_point)?;
    let c = p.cols as usize;
    super::expect_len(p.gamma_multiplier.len(), c)?;
    super::expect_len(p.gamma_shift.len(), c)?;
    super::expect_len(p.beta_q.len(), c)?;
    for (&m, &s) in p.gamma_multiplier.iter().zip(p.gamma_shift) {
        if m == i32::MIN || !crate::quant::shift_is_valid(s) {
            return Err(super::quant_err());
        }
    }
    Ok(())
}

/// Validates f32 params against the input and output lengths.
pub fn check_f32(
    p: &LayerNormF32Params<'_>,
    input_len: usize,
    output_len: usize,
) -> Result<(), Error> {
    check_shape(p.rows, p.cols, input_len, output_len)?;
    super::expect_len(p.gamma.len(), p.cols as usize)?;
    super::expect_len(p.beta.len(), p.cols as usize)?;
    if !(p.epsilon >= 0.0 && p.epsilon.is_finite()) {
        return Err(super::param_err());
    }
    Ok(())
}

/// Runs the int8 kernel. Requires a successful [`check_i8`].
#[inline]
pub fn eval_i8(p: &LayerNormParams<'_>, input: &[i8], output: &mut [i8]) {
    reference::eval_i8(p, input, output)
}

/// Runs the f32 kernel. Requires a successful [`check_f32`].
#[inline]
pub fn eval_f32(p: &LayerNormF32Params<'_>, input: &[f32], output: &mut [f32]) {
    (super::kernel!(layer_norm_f32))(p, input, output)
}

/// Offline constants of an int8 LayerNorm, computed from real γ, β, ε and the quantization.
#[cfg(any(test, feature = "std"))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerNormConstants {
    /// See [`LayerNormParams::epsilon_q16`].
    pub epsilon_q16: u64,
    /// See [`LayerNormParams::gamma_multiplier`].
    pub gamma_multiplier: Vec<i32>,
    /// See [`LayerNormParams::gamma_shift`].
    pub gamma_shift: Vec<i32>,
    /// See [`LayerNormParams::beta_q`].
    pub beta_q: Vec<i32>,
}

#[cfg(any(test, feature = "std"))]
impl LayerNormConstants {
    /// Computes the constants; `None` for mismatched lengths, non-finite values, invalid scales,
    /// or a `β/s_out` outside `i32`. A `|γ|/(s_out·2¹⁶)` below 2⁻³² becomes a zero multiplier.
    pub fn new(
        gamma: &[f64],
        beta: &[f64],
        epsilon: f64,
        in_scale: f64,
        out_scale: f64,
    ) -> Option<Self> {
        let cols = gamma.len();
        if cols == 0 || beta.len() != cols || cols > MAX_COLS as usize {
            return None;
        }
        let ok = |s: f64| s.is_finite() && s > 0.0;
        if !(ok(in_scale) && ok(out_scale) && epsilon >= 0.0 && epsilon.is_finite()) {
            return None;
        }
        let eps = epsilon * (cols * cols) as f64 * 65536.0 / (in_scale * in_scale);
        let epsilon_q16 = if eps >= u64::MAX as f64 {
            u64::MAX
        } else {
            eps.round() as u64
        };
        let mut gamma_multiplier = Vec::with_capacity(cols);
        let mut gamma_shift = Vec::with_capacity(cols);
        let mut beta_q = Vec::with_capacity(cols);
        for (&g, &b) in gamma.iter().zip(beta) {
            if !g.is_finite() || !b.is_finite() {
                return None;
            }
            let (m, s) = match crate::quant::quantize_multiplier(g.abs() / (out_scale * 65536.0)) {
                Some((m, s)) if g < 0.0 => (-m, s),
                Some((m, s)) => (m, s),
                None if g.abs() / (out_scale * 65536.0) < 1.0 => (0, 0),
                None => return None,
            };
            gamma_multiplier.push(m);
            gamma_shift.push(s);
            let bq = (b / out_scale).round();
            if bq.abs() > i32::MAX as f64 {
                return None;
            }
            beta_q.push(bq as i32);
        }
        Some(LayerNormConstants {
            epsilon_q16,
            gamma_multiplier,
            gamma_shift,
            beta_q,
        })
    }

    /// Borrows the constants as kernel params.
    pub fn params(
        &self,
        rows: u32,
        input_zero_point: i32,
        output_zero_point: i32,
    ) -> LayerNormParams<'_> {
        LayerNormParams {
            rows,
            cols: self.beta_q.len() as u32,
            input_zero_point,
            output_zero_point,
            epsilon_q16: self.epsilon_q16,
            gamma_multiplier: &self.gamma_multiplier,
            gamma_shift: &self.gamma_shift,
            beta_q: &self.beta_q,
        }
    }
}
