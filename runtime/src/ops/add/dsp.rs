//! Cortex-M4 int8 Add, bit-exact to [`super::reference::eval_i8`]. Portable Rust: the host tests
//! run the same code.
//!
//! The reference calls [`crate::quant::requantize`] three times per element: a 64-bit product,
//! a variable 64-bit shift in `[1, 62]` and a clamp to `i32`, all costly on a 32-bit core. Here
//! each requantization is a [`HighWord`]: the accumulator is shifted left by a fixed `pre`
//! (as far as its bound allows), which raises the total shift to `t = 31 - shift + pre`; from
//! `t >= 33` on the rounding term `2^(t-1)` is a multiple of `2^32`, so
//! `floor((acc · m + 2^(t-1)) / 2^t) = (mulhi(acc, m) + 2^(t-33)) >> (t - 32)`, where `mulhi` is
//! the high word of the 64-bit product: one `SMMLA` (with the rounding term as addend; an `asm!`
//! instruction on `thumbv7em-*`, as the compiler does not reliably select it, and its portable
//! emulation elsewhere, [`crate::arch::cortex_m::smmla`]) and one shift, no 64-bit add or
//! shift, and the result always fits an `i32`, so the clamp is dropped. Shifting first is exact:
//! `floor((2^k · acc · m + 2^(t+k-1)) / 2^(t+k)) = floor((acc · m + 2^(t-1)) / 2^t)`. From
//! `t >= 64` on the result is 0 (`|acc · m| < 2^62`).
//!
//! - Inputs: `check_i8` guarantees input shifts `<= 0` (`t` in `[31, 62]`); the larger input's
//!   multiplier is 0.5 (`t = 31`) in every converted model. Each input is scaled by
//!   `2^(LEFT_SHIFT + 2)` instead of `2^LEFT_SHIFT` (`|x - z| · 2^22 < 2^30`, `pre = 2`), and
//!   `(x << 22) - (z << 22)` is one instruction.
//! - Output: the sum of the scaled inputs is below `2^29` in magnitude, so it is shifted left
//!   by 2 as well: output shifts `<= 0` (total shift 31 or more) are covered. The result is
//!   below `2^31` before the zero point is added (no saturation), then the fused clamp (one
//!   `SSAT` when there is no activation, on the tabled path). A larger output shift (a
//!   multiplier above 1, never produced by [`super::AddRequant::new`] for sane scales) runs the
//!   reference kernel.
//! - Large outputs ([`TABLE_MIN`] elements or more, the residual adds): each scaled input,
//!   times 4, is a function of the input byte alone; two 256-entry tables (2 KiB of stack) are
//!   filled once per call (in place, without zeroing), and each element costs two loads, an add
//!   and the output stage (about half the direct computation's instructions).
//!
//! The output is walked row by row ([`super::rows::map_rows`]): same-shape inputs are one plain
//! loop, and a broadcast input is one repeated value or a contiguous run along each row.

use core::mem::MaybeUninit;

use super::{AddParams, LEFT_SHIFT};
use crate::arch::cortex_m::smmla;
use crate::ops::ClampI8;

/// Outputs from which the per-call input tables pay off: filling them costs about as much as
/// 120 elements computed directly, and each tabled element saves about half of its work.
pub const TABLE_MIN: usize = 256;

/// [`crate::quant::requantize`]`(acc, multiplier, shift)` for accumulators that the caller
/// shifts left by a fixed `pre` first (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HighWord {
    /// The Q31 multiplier (0 when the total shift is 64 or more).
    multiplier: i32,
    /// `2^(t-33)` for the total shift `t` (0 from 64 on): the rounding term's high word.
    round: i32,
    /// `t - 32` (0 from 64 on): the arithmetic shift of the high word.
    post: u32,
}

impl HighWord {
    /// The constants for `(multiplier, shift)` and accumulators shifted left by `pre`, or `None`
    /// when the total shift `31 - shift + pre` is below 33. `multiplier` must be non-negative
    /// and `shift` in `[MIN_SHIFT, MAX_SHIFT]` (as `check_multiplier` ensures).
    pub(crate) fn new(multiplier: i32, shift: i32, pre: u32) -> Option<HighWord> {
        if multiplier < 0 || !crate::quant::shift_is_valid(shift) || pre > 31 {
            return None;
        }
        // As in `requantize`; `shift_is_valid` keeps it inside the clamp: t in [1, 62].
        let t = (31 - shift).clamp(1, 62) as u32 + pre;
        if t < 33 {
            return None;
        }
        Some(if t >= 64 {
            HighWord {
                multiplier: 0,
                round: 0,
                post: 0,
            }
        } else {
            HighWord {
                multiplier,
                round: 1 << (t - 33),
                post: t - 32,
            }
        })
    }

    /// `requantize(acc, multiplier, shift)` from `shifted = acc << pre`, `|shifted| < 2^31`:
    /// `|mulhi| < 2^30` and the rounding term is at most `2^30`, so the sum is the floor of the
    /// reference's 64-bit value over `2^32`, and shifting it right by `post` gives the reference's
    /// result (below `2^31` in magnitude: no clamp).
    #[inline(always)]
    pub(crate) fn apply(&self, shifted: i32) -> i32 {
        // The sum does not wrap (see above), so SMMLA's modulo-2^32 addition is exact.
        smmla(shifted, self.multiplier, self.round) >> self.post
    }
}

/// The fused clamp of an int8 output `y` (below `2^31 - 128` in magnitude) plus its zero point:
/// `SSAT` alone when the clamp is the int8 range (`FULL`).
#[inline(always)]
pub(crate) fn finish<const FULL: bool>(y: i32, zero_point: i32, clamp: (i32, i32)) -> i8 {
    let y = y + zero_point;
    if FULL {
        y.clamp(-128, 127) as i8
    } else {
        y.max(clamp.0).min(clamp.1) as i8
    }
}

/// Whether a clamp is the whole int8 range (no activation).
#[inline(always)]
pub(crate) fn is_full(c: ClampI8) -> bool {
    c.min == i8::MIN && c.max == i8::MAX
}

/// One input's scaling, `requantize((x - z) << LEFT_SHIFT, multiplier, shift)`, with two more
/// bits of left shift (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InputScale {
    /// `z << (LEFT_SHIFT + 2)`.
    zero_point: i32,
    q: HighWord,
}

impl InputScale {
    /// Left shift of the inputs: two more than the reference's.
    const SCALE: i32 = LEFT_SHIFT + 2;

    /// The constants for zero point `z` in `[-128, 127]` and `(multiplier, shift)`; `None`
    /// unless `shift` is in `[MIN_SHIFT, 0]` and `multiplier` non-negative (as `check_i8`
    /// ensures).
    fn new(zero_point: i32, (multiplier, shift): (i32, i32)) -> Option<InputScale> {
        if shift > 0 || !(-128..=127).contains(&zero_point) {
            return None;
        }
        Some(InputScale {
            zero_point: zero_point << Self::SCALE,
            q: HighWord::new(multiplier, shift, 2)?,
        })
    }

    /// The scaled input for the raw value `x`, from `(x << 22) - (z << 22)` (below `2^30` in
    /// magnitude); the value is at most `255 · 2^20`.
    #[inline(always)]
    fn apply(&self, x: i8) -> i32 {
        self.q.apply(((x as i32) << Self::SCALE) - self.zero_point)
    }
}

/// The per-call constants of the fast paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fast {
    input1: InputScale,
    input2: InputScale,
    /// For the sum of the scaled inputs shifted left by 2.
    output: HighWord,
    output_zero_point: i32,
    clamp: (i32, i32),
}

impl Fast {
    /// The constants for `p`, or `None` when the output requantization needs the reference.
    fn new(p: &AddParams) -> Option<Fast> {
        let r = &p.requant;
        Some(Fast {
            input1: InputScale::new(p.input1_zero_point, r.input1)?,
            input2: InputScale::new(p.input2_zero_point, r.input2)?,
            // Each scaled input is at most 255 · 2^20 in magnitude: 4 · sum < 2^31.
            output: HighWord::new(r.output.0, r.output.1, 2)?,
            output_zero_point: p.output_zero_point,
            clamp: (p.activation.min as i32, p.activation.max as i32),
        })
    }

    /// The output for the scaled inputs' sum times 4.
    #[inline(always)]
    fn output<const FULL: bool>(&self, sum4: i32) -> i8 {
        finish::<FULL>(self.output.apply(sum4), self.output_zero_point, self.clamp)
    }

    /// [`super::reference::add_one_i8`].
    #[inline(always)]
    fn add<const FULL: bool>(&self, x1: i8, x2: i8) -> i8 {
        self.output::<FULL>((self.input1.apply(x1) + self.input2.apply(x2)) << 2)
    }

    /// The whole output, computing each element (the general clamp: one instance, this path
    /// serves the small Adds). Out of line, like the loops below: inlined into [`eval_i8`] next
    /// to the other paths, the loop's constants no longer get registers.
    #[inline(never)]
    fn direct(&self, p: &AddParams, x1: &[i8], x2: &[i8], y: &mut [i8]) {
        walk(p, x1, x2, y, move |a, b| self.add::<false>(a, b));
    }

    /// The whole output, through per-input tables of the scaled values times 4.
    #[inline(never)]
    fn tabled<const FULL: bool>(&self, p: &AddParams, x1: &[i8], x2: &[i8], y: &mut [i8]) {
        let mut b1 = [MaybeUninit::uninit(); 256];
        let mut b2 = [MaybeUninit::uninit(); 256];
        let t1 = table(&self.input1, &mut b1);
        let t2 = table(&self.input2, &mut b2);
        walk(p, x1, x2, y, move |a, b| {
            self.output::<FULL>(t1[a as u8 as usize] + t2[b as u8 as usize])
        });
    }
}

/// Fills `t` with `4 · input.apply(x)` at index `x as u8` (below `2^30` in magnitude: two of
/// them add without overflow), in place (no zeroing, no copy of the 1 KiB).
#[inline(always)]
fn table<'t>(input: &InputScale, t: &'t mut [MaybeUninit<i32>; 256]) -> &'t [i32; 256] {
    // Four entries per iteration: the loop's own instructions were a third of the work.
    let value = |k: usize| input.apply(k as u8 as i8) << 2;
    for (k, v) in t.chunks_exact_mut(4).enumerate() {
        let k = 4 * k;
        v[0].write(value(k));
        v[1].write(value(k + 1));
        v[2].write(value(k + 2));
        v[3].write(value(k + 3));
    }
    // SAFETY: the loop above initialised all 256 elements; `MaybeUninit<i32>` has the layout of
    // `i32`, so the array has the layout of `[i32; 256]`.
    unsafe { &*(t as *const [MaybeUninit<i32>; 256]).cast::<[i32; 256]>() }
}

/// `y[i] = op(x1[i1], x2[i2])` over the broadcast: one plain loop when both inputs have the
/// output's shape, else row by row. Requires a successful `check_i8`.
#[inline(always)]
pub(crate) fn walk_shape(
    shape: &crate::ops::BroadcastShape,
    x1: &[i8],
    x2: &[i8],
    y: &mut [i8],
    op: impl Fn(i8, i8) -> i8,
) {
    if shape.input1 == shape.output && shape.input2 == shape.output {
        zip_same(x1, x2, y, op);
    } else {
        super::rows::map_rows(shape, x1, x2, y, op);
    }
}

/// `y[i] = op(x1[i], x2[i])`.
#[inline(always)]
fn zip_same(x1: &[i8], x2: &[i8], y: &mut [i8], op: impl Fn(i8, i8) -> i8) {
    for ((y, &a), &b) in y.iter_mut().zip(x1).zip(x2) {
        *y = op(a, b);
    }
}

/// [`walk_shape`] for an Add.
#[inline(always)]
fn walk(p: &AddParams, x1: &[i8], x2: &[i8], y: &mut [i8], op: impl Fn(i8, i8) -> i8) {
    walk_shape(&p.shape, x1, x2, y, op)
}

/// int8 Add. Requires a successful [`super::check_i8`].
pub fn eval_i8(p: &AddParams, input1: &[i8], input2: &[i8], output: &mut [i8]) {
    let Some(f) = Fast::new(p) else {
        return super::reference::eval_i8(p, input1, input2, output);
    };
    if output.len() < TABLE_MIN {
        f.direct(p, input1, input2, output)
    } else if is_full(p.activation) {
        f.tabled::<true>(p, input1, input2, output)
    } else {
        f.tabled::<false>(p, input1, input2, output)
    }
}
