//! Cortex-M4 int8 Mul, bit-exact to [`super::reference::eval_i8`]. Portable Rust: the host tests
//! run the same code.
//!
//! The product of the centred inputs is below `2^16` in magnitude (`255 · 255`), so it is
//! shifted left by 15 (`(x1 - z1) << 15` is one instruction, then one multiply) and the
//! requantization is a [`HighWord`] (the high word of a 32×32 product plus the rounding term's
//! high word, shifted: no 64-bit arithmetic, no clamp; see [`crate::ops::add::dsp`]) for every
//! output shift up to 13 (total shift `31 - shift >= 18`, raised to 33 or more). The requantized
//! product is below `2^31` in magnitude, so the output zero point adds without saturating; then
//! the fused clamp (one `SSAT` without activation, on the table path). Larger shifts (a
//! multiplier of `2^13` or more) run the reference.
//!
//! When one input is a single value and the other has the output's length (the attention
//! score's scale) and the output has at least [`TABLE_MIN`] elements, the output is a function
//! of the other input's byte: a 256-byte table is filled once per call and each element is one
//! lookup. Otherwise the output is walked row by row ([`crate::ops::add::rows::map_rows`]):
//! same-shape inputs are one plain loop, and a broadcast input one repeated value or a contiguous
//! run along each row.

use super::MulParams;
use crate::ops::add::dsp::{finish, is_full, walk_shape, HighWord};

/// Outputs from which the table for a single-value input pays off: filling it costs about as
/// much as 120 elements computed directly, and a lookup is a quarter of an element's work.
pub const TABLE_MIN: usize = 256;

/// The per-call constants of the fast paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fast {
    /// `z1 << 15`.
    input1_zero_point: i32,
    input2_zero_point: i32,
    /// For the product shifted left by 15.
    output: HighWord,
    output_zero_point: i32,
    clamp: (i32, i32),
}

impl Fast {
    /// Left shift of the product.
    const PRE: u32 = 15;

    /// The constants for `p`, or `None` when the requantization needs the reference.
    fn new(p: &MulParams) -> Option<Fast> {
        Some(Fast {
            input1_zero_point: p.input1_zero_point << Self::PRE,
            input2_zero_point: p.input2_zero_point,
            // Zero points in [-128, 127] (`check_i8`): |x - z| <= 255, |product << 15| < 2^31.
            output: HighWord::new(p.output_multiplier, p.output_shift, Self::PRE)?,
            output_zero_point: p.output_zero_point,
            clamp: (p.activation.min as i32, p.activation.max as i32),
        })
    }

    /// One output, as the reference computes it.
    #[inline(always)]
    fn mul<const FULL: bool>(&self, x1: i8, x2: i8) -> i8 {
        let d1 = ((x1 as i32) << Self::PRE) - self.input1_zero_point;
        let prod = d1 * (x2 as i32 - self.input2_zero_point);
        finish::<FULL>(self.output.apply(prod), self.output_zero_point, self.clamp)
    }

    /// The whole output, computing each element (out of line, as in [`crate::ops::add::dsp`];
    /// the general clamp: one instance, as the large Muls by one value take the table).
    #[inline(never)]
    fn direct(&self, p: &MulParams, x1: &[i8], x2: &[i8], y: &mut [i8]) {
        walk_shape(&p.shape, x1, x2, y, move |a, b| self.mul::<false>(a, b));
    }

    /// `y[i] = table[x[i]]`, where `table[u]` is the output for `u` times the other input's
    /// value `v` (`u` is input 1's value when `x_first`, else input 2's).
    #[inline(never)]
    fn tabled<const FULL: bool>(&self, x: &[i8], v: i8, x_first: bool, y: &mut [i8]) {
        let z1 = self.input1_zero_point >> Self::PRE;
        let (zu, zv) = if x_first {
            (z1, self.input2_zero_point)
        } else {
            (self.input2_zero_point, z1)
        };
        // `(u - z_u) · ((v - z_v) << 15)`: the product shifted as in `mul` (below 2^31).
        let dv = (v as i32 - zv) << Self::PRE;
        let value = |k: usize| {
            let prod = (k as u8 as i8 as i32 - zu) * dv;
            finish::<FULL>(self.output.apply(prod), self.output_zero_point, self.clamp)
        };
        let mut table = [0i8; 256];
        // Four entries per iteration: the loop's own instructions were a third of the work.
        for (k, t) in table.chunks_exact_mut(4).enumerate() {
            let k = 4 * k;
            t.copy_from_slice(&[value(k), value(k + 1), value(k + 2), value(k + 3)]);
        }
        // Four outputs per iteration: one word loaded and one stored.
        let mut ys = y.chunks_exact_mut(4);
        let mut xs = x.chunks_exact(4);
        for (y, x) in (&mut ys).zip(&mut xs) {
            let look = |u: i8| table[u as u8 as usize] as u8;
            let w = u32::from_le_bytes([look(x[0]), look(x[1]), look(x[2]), look(x[3])]);
            y.copy_from_slice(&w.to_le_bytes().map(|b| b as i8));
        }
        for (y, &u) in ys.into_remainder().iter_mut().zip(xs.remainder()) {
            *y = table[u as u8 as usize];
        }
    }
}

/// int8 Mul. Requires a successful [`super::check_i8`].
pub fn eval_i8(p: &MulParams, input1: &[i8], input2: &[i8], output: &mut [i8]) {
    let Some(f) = Fast::new(p) else {
        return super::reference::eval_i8(p, input1, input2, output);
    };
    let n = output.len();
    let full = is_full(p.activation);
    if n >= TABLE_MIN {
        match (input1, input2, full) {
            (x, &[v], true) if x.len() == n => return f.tabled::<true>(x, v, true, output),
            (x, &[v], false) if x.len() == n => return f.tabled::<false>(x, v, true, output),
            (&[v], x, true) if x.len() == n => return f.tabled::<true>(x, v, false, output),
            (&[v], x, false) if x.len() == n => return f.tabled::<false>(x, v, false, output),
            _ => {}
        }
    }
    f.direct(p, input1, input2, output)
}
