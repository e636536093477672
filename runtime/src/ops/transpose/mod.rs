//! Transpose: permutes the axes of a tensor of rank ≤ 4 (`out.dims[i] = in.dims[perm[i]]`).
//!
//! Element-type generic (int8, f32, i32): values are moved, never changed, so the int8 output has
//! the input's quantization. Attention uses it for `[seq, heads, d] → [heads, seq, d]`.
//! Lower ranks are right-aligned in [`Dims`] with leading 1s; their `perm` entries are the
//! identity for the padding axes.

#[cfg(test)]
mod tests;

use super::Dims;
use crate::Error;

/// Transpose parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TransposeParams {
    /// Input dimensions.
    pub input_dims: Dims,
    /// Output axis `i` is input axis `perm[i]`; a permutation of `0..4`.
    pub perm: [u8; 4],
}

impl TransposeParams {
    /// Output dimensions.
    pub fn output_dims(&self) -> Dims {
        let mut out = [1u32; 4];
        for (o, &p) in out.iter_mut().zip(&self.perm) {
            *o = self.input_dims[(p & 3) as usize];
        }
        out
    }
}

/// Validates the permutation and the input/output lengths.
pub fn check(p: &TransposeParams, input_len: usize, output_len: usize) -> Result<(), Error> {
    let mut seen = [false; 4];
    for &a in &p.perm {
        if a > 3 || seen[a as usize] {
            return Err(super::param_err());
        }
        seen[a as usize] = true;
    }
    let n = super::elements(&p.input_dims)?;
    super::expect_len(input_len, n)?;
    super::expect_len(output_len, n)
}

/// Transposes `input` into `output`. Requires a successful [`check`].
///
/// Walks the output row by row (its last axis): a row whose input axis is also the input's last
/// is one contiguous copy, any other row a strided gather.
pub fn eval<T: Copy>(p: &TransposeParams, input: &[T], output: &mut [T]) {
    let d = p.input_dims.map(|v| v as usize);
    // Input strides, row-major.
    let stride = [d[1] * d[2] * d[3], d[2] * d[3], d[3], 1];
    let od = p.output_dims().map(|v| v as usize);
    let s = p.perm.map(|a| stride[(a & 3) as usize]);
    let mut rows = output.chunks_exact_mut(od[3].max(1));
    for i0 in 0..od[0] {
        for i1 in 0..od[1] {
            for i2 in 0..od[2] {
                let base = i0 * s[0] + i1 * s[1] + i2 * s[2];
                let Some(out) = rows.next() else { return };
                if s[3] == 1 {
                    out.copy_from_slice(&input[base..base + out.len()]);
                } else {
                    for (y, &x) in out.iter_mut().zip(input[base..].iter().step_by(s[3])) {
                        *y = x;
                    }
                }
            }
        }
    }
}
