//! Cortex-M4 int8 Mul, bit-exact to [`super::reference::eval_i8`]. Portable Rust: the host tests
//! run the same code.
//!
//! The product of the centred inputs is below `2^16` in magnitude (`255 · 255`), so the
//! requantization is an [`HighWord`](crate::ops::add::dsp::HighWord) (one 64-bit
//! multiply-accumulate, the high word shifted, no clamp) for every output shift up to 14 (total
//! shift `31 - shift >= 17`, raised to 32 by shifting the product left by at most 15 bits). The
//! requantized product is below `2^31` in magnitude, so the output zero point adds without
//! saturating; then the fused clamp. Larger shifts (a multiplier above `2^14`) run the reference.
//!
//! The output is walked row by row ([`crate::ops::add::rows::map_rows`]): same-shape inputs are
//! one plain loop, and a broadcast input (the attention score's scalar) one repeated value or a
//! contiguous run along each row.

use super::MulParams;
use crate::ops::add::dsp::HighWord;

/// The per-call constants of the fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fast {
    input1_zero_point: i32,
    input2_zero_point: i32,
    output: HighWord,
    output_zero_point: i32,
    min: i32,
    max: i32,
}

impl Fast {
    /// The constants for `p`, or `None` when the requantization needs the reference.
    fn new(p: &MulParams) -> Option<Fast> {
        Some(Fast {
            input1_zero_point: p.input1_zero_point,
            input2_zero_point: p.input2_zero_point,
            // Zero points in [-128, 127] (`check_i8`): |x - z| <= 255, |product| < 2^16.
            output: HighWord::new(p.output_multiplier, p.output_shift, 16)?,
            output_zero_point: p.output_zero_point,
            min: p.activation.min as i32,
            max: p.activation.max as i32,
        })
    }

    /// One output, as the reference computes it.
    #[inline(always)]
    fn mul(&self, x1: i8, x2: i8) -> i8 {
        let prod = (x1 as i32 - self.input1_zero_point) * (x2 as i32 - self.input2_zero_point);
        let y = self.output.apply(prod) + self.output_zero_point;
        y.max(self.min).min(self.max) as i8
    }
}

/// int8 Mul. Requires a successful [`super::check_i8`].
pub fn eval_i8(p: &MulParams, input1: &[i8], input2: &[i8], output: &mut [i8]) {
    match Fast::new(p) {
        Some(f) => {
            crate::ops::add::rows::map_rows(&p.shape, input1, input2, output, move |a, b| {
                f.mul(a, b)
            })
        }
        None => super::reference::eval_i8(p, input1, input2, output),
    }
}
