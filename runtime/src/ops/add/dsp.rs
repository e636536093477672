//! Cortex-M4 int8 Add, bit-exact to [`super::reference::eval_i8`]. Portable Rust: the host tests
//! run the same code.
//!
//! The reference calls [`crate::quant::requantize`] three times per element: a 64-bit product,
//! a variable 64-bit shift in `[1, 62]` and a clamp to `i32`, all costly on a 32-bit core. Here
//! each requantization is a [`HighWord`]: with a total shift `t = 31 - shift >= 32`,
//! `(acc · multiplier + 2^(t-1)) >> t` is the high word of the 64-bit sum (one `SMLAL` into a
//! constant) shifted right by `t - 32`, and always fits an `i32`, so the clamp is dropped. A
//! smaller `t` is raised to 32 by shifting the accumulator left first, where its known bound
//! allows: `floor((2^k · acc · m + 2^(t+k-1)) / 2^(t+k))` equals `floor((acc · m + 2^(t-1)) / 2^t)`.
//!
//! - Inputs: `check_i8` guarantees input shifts `<= 0` (`t` in `[31, 62]`); the larger input's
//!   multiplier is 0.5 (`t = 31`) in every converted model. Each input is scaled with
//!   `LEFT_SHIFT + 1` instead of [`LEFT_SHIFT`] and one more bit of shift (`|x - z| · 2^21 <
//!   2^29`), and the zero point is folded into the 64-bit addend:
//!   `((x << 21) · m + (2^t' - (z << 21) · m)) >> 32 >> (t' - 32)`, with `t' = t + 1`.
//! - Output: the sum of the scaled inputs is below `2^29` in magnitude, so a total shift down to
//!   30 is raised to 32; the result is below `2^31` before the zero point is added (no
//!   saturation), then the fused clamp. A larger output shift (`shift > 1`, a multiplier above 2,
//!   never produced by [`super::AddRequant::new`] for sane scales) runs the reference kernel.
//!
//! The output is walked row by row ([`super::rows::map_rows`]): same-shape inputs are one plain
//! loop, and a broadcast input is one repeated value or a contiguous run along each row.

use super::{AddParams, LEFT_SHIFT};

/// [`crate::quant::requantize`]`(acc, multiplier, shift)` for accumulators with a known bound,
/// as the high word of one 64-bit multiply-accumulate (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HighWord {
    /// Left shift applied to the accumulator first (raises the total shift to 32).
    pre: u32,
    /// The Q31 multiplier.
    multiplier: i32,
    /// `2^(t-1)` for the total shift `t >= 32` after `pre`.
    round: i64,
    /// `t - 32`: the arithmetic shift of the high word.
    post: u32,
}

impl HighWord {
    /// The constants for `(multiplier, shift)` applied to accumulators with `|acc| < 2^acc_bits`
    /// (`acc_bits <= 31`), or `None` when the total shift `31 - shift` cannot be raised to 32
    /// without overflowing an `i32` accumulator. `multiplier` must be non-negative and `shift`
    /// in `[MIN_SHIFT, MAX_SHIFT]` (as `check_multiplier` ensures).
    pub(crate) fn new(multiplier: i32, shift: i32, acc_bits: u32) -> Option<HighWord> {
        if multiplier < 0 || !crate::quant::shift_is_valid(shift) || acc_bits > 31 {
            return None;
        }
        // As in `requantize`; `shift_is_valid` keeps it inside the clamp.
        let t = (31 - shift).clamp(1, 62) as u32;
        let pre = 32u32.saturating_sub(t);
        if pre > 31 - acc_bits {
            return None;
        }
        let t = t + pre;
        Some(HighWord {
            pre,
            multiplier,
            round: 1i64 << (t - 1),
            post: t - 32,
        })
    }

    /// `requantize(acc, multiplier, shift)` for `|acc| < 2^acc_bits`. The 64-bit sum stays below
    /// `2^62 + 2^61` in magnitude, so its high word shifted right by `post` is the reference's
    /// result, which fits an `i32` (below `2^31` in magnitude): no clamp.
    #[inline(always)]
    pub(crate) fn apply(&self, acc: i32) -> i32 {
        let wide = ((acc << self.pre) as i64) * (self.multiplier as i64) + self.round;
        ((wide >> 32) as i32) >> self.post
    }
}

/// One input's scaling, `requantize((x - z) << LEFT_SHIFT, multiplier, shift)`, with one more bit
/// of left shift and of total shift (see the module docs) and the zero point in the addend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InputScale {
    /// The Q31 multiplier.
    multiplier: i32,
    /// `2^(t'-1) - (z << (LEFT_SHIFT + 1)) · multiplier`, with `t' = 32 - shift`.
    addend: i64,
    /// `t' - 32`.
    post: u32,
}

impl InputScale {
    /// The constants for zero point `z` and `(multiplier, shift)`; `None` unless
    /// `shift` is in `[MIN_SHIFT, 0]` and `multiplier` non-negative (as `check_i8` ensures).
    fn new(zero_point: i32, (multiplier, shift): (i32, i32)) -> Option<InputScale> {
        if multiplier < 0 || !(crate::quant::MIN_SHIFT..=0).contains(&shift) {
            return None;
        }
        // Total shift t = 31 - shift in [31, 62], raised by one: t' in [32, 63].
        let t = (32 - shift) as u32;
        let z = (zero_point as i64) << (LEFT_SHIFT + 1);
        Some(InputScale {
            multiplier,
            addend: (1i64 << (t - 1)) - z * multiplier as i64,
            post: t - 32,
        })
    }

    /// The scaled input for the raw value `x`. `|x << 21| <= 2^28`, `|z << 21| · m < 2^59` and
    /// `2^(t'-1) <= 2^62`: the 64-bit sum cannot overflow, and it equals
    /// `((x - z) << 21) · m + 2^(t'-1)`, whose high word shifted by `t' - 32` is the reference's
    /// value (below `2^28` in magnitude).
    #[inline(always)]
    fn apply(&self, x: i8) -> i32 {
        let wide =
            (((x as i32) << (LEFT_SHIFT + 1)) as i64) * (self.multiplier as i64) + self.addend;
        ((wide >> 32) as i32) >> self.post
    }
}

/// The per-call constants of the fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fast {
    input1: InputScale,
    input2: InputScale,
    output: HighWord,
    output_zero_point: i32,
    min: i32,
    max: i32,
}

impl Fast {
    /// The constants for `p`, or `None` when the output requantization needs the reference.
    fn new(p: &AddParams) -> Option<Fast> {
        let r = &p.requant;
        Some(Fast {
            input1: InputScale::new(p.input1_zero_point, r.input1)?,
            input2: InputScale::new(p.input2_zero_point, r.input2)?,
            // Each scaled input is below 255 · 2^20 in magnitude: the sum is below 2^29.
            output: HighWord::new(r.output.0, r.output.1, 29)?,
            output_zero_point: p.output_zero_point,
            min: p.activation.min as i32,
            max: p.activation.max as i32,
        })
    }

    /// [`super::reference::add_one_i8`]. The requantized sum is below `2^31 - 128` in
    /// magnitude, so the zero point adds without saturating.
    #[inline(always)]
    fn add(&self, x1: i8, x2: i8) -> i8 {
        let sum = self.input1.apply(x1) + self.input2.apply(x2);
        let y = self.output.apply(sum) + self.output_zero_point;
        y.max(self.min).min(self.max) as i8
    }
}

/// int8 Add. Requires a successful [`super::check_i8`].
pub fn eval_i8(p: &AddParams, input1: &[i8], input2: &[i8], output: &mut [i8]) {
    match Fast::new(p) {
        Some(f) => super::rows::map_rows(&p.shape, input1, input2, output, move |a, b| f.add(a, b)),
        None => super::reference::eval_i8(p, input1, input2, output),
    }
}
