//! Causal mask on attention scores `[batch, rows, cols]`: entry `(i, j)` is replaced by a fill value
//! when `j > i + offset` (query `i` at absolute position `offset + i` must not see later keys).
//!
//! - f32: the fill is `-inf`, so a following softmax gives those positions exactly 0.
//! - int8: the fill is `-128`, the lowest score. A following int8 softmax gives them
//!   `table[max − (−128)]`, which is exactly 0 only when that table entry is 0 (score scale large
//!   enough that `exp(−s·(max + 128))` rounds to 0 in Q24); otherwise they keep a small weight.
//!   For exact causal attention on int8 use [`super::attention`], which skips masked positions.
//!
//! Runs in place (`data` is both input and output).

#[cfg(test)]
mod tests;

use crate::Error;

/// Causal-mask parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CausalMaskParams {
    /// Independent score matrices (e.g. heads).
    pub batch: u32,
    /// Query rows.
    pub rows: u32,
    /// Key columns.
    pub cols: u32,
    /// Absolute position of query row 0: row `i` sees keys `0..=offset + i`.
    pub offset: u32,
}

/// Validates the data length.
pub fn check(p: &CausalMaskParams, len: usize) -> Result<(), Error> {
    super::expect_len(len, super::elements(&[p.batch, p.rows, p.cols])?)
}

fn apply<T: Copy>(p: &CausalMaskParams, data: &mut [T], fill: T) {
    let (rows, cols) = (p.rows as usize, p.cols as usize);
    for m in data.chunks_exact_mut(rows * cols) {
        for (i, row) in m.chunks_exact_mut(cols).enumerate() {
            let first_masked = (p.offset as usize).saturating_add(i).saturating_add(1);
            if first_masked < cols {
                row[first_masked..].fill(fill);
            }
        }
    }
}

/// int8: masked entries become -128. Requires a successful [`check`].
pub fn eval_i8(p: &CausalMaskParams, data: &mut [i8]) {
    apply(p, data, i8::MIN)
}

/// f32: masked entries become `-inf`. Requires a successful [`check`].
pub fn eval_f32(p: &CausalMaskParams, data: &mut [f32]) {
    apply(p, data, f32::NEG_INFINITY)
}
