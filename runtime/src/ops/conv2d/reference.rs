//! The Conv2D specification: plain loops, no `unsafe`.

use super::{Conv2dF32Params, Conv2dParams, Conv2dShape};
use crate::quant::requantize_to_i8;
use core::ops::Range;

/// Input coordinate of output position `o`, tap `k` along one axis, or `None` in the padding.
#[inline(always)]
pub(crate) fn tap(
    o: usize,
    k: usize,
    stride: u32,
    dilation: u32,
    pad: u32,
    size: u32,
) -> Option<usize> {
    let padded = o * stride as usize + k * dilation as usize;
    let i = padded.checked_sub(pad as usize)?;
    (i < size as usize).then_some(i)
}

/// The taps `k` in `0..kernel` of output position `o` whose input coordinate
/// `o·stride + k·dilation − pad` lies in `0..size`: one range, since the coordinate grows with
/// `k`. Equal to the `k` for which [`tap`] is `Some`.
#[inline]
pub(crate) fn valid_taps(
    o: usize,
    kernel: u32,
    stride: u32,
    dilation: u32,
    pad: u32,
    size: u32,
) -> Range<usize> {
    let d = dilation.max(1) as usize;
    let first = o * stride as usize;
    let (pad, end) = (pad as usize, size as usize + pad as usize);
    // Taps before `lo` fall in the leading padding, taps from `hi` on past the input's end.
    let lo = if first >= pad {
        0
    } else {
        (pad - first).div_ceil(d)
    };
    let hi = if first >= end {
        0
    } else {
        (end - first).div_ceil(d).min(kernel as usize)
    };
    lo.min(hi)..hi
}

/// The taps of an output pixel's kernel window that lie inside the input.
pub(crate) struct WindowTaps {
    /// Kernel rows inside the input (empty when no tap is).
    pub rows: Range<usize>,
    /// Kernel columns inside the input.
    pub cols: Range<usize>,
    /// Input row of the first of `rows` (meaningless when there is no tap).
    pub iy0: usize,
    /// Input column of the first of `cols` (likewise).
    pub ix0: usize,
}

/// The taps of output pixel `(oy, ox)` inside the input.
#[inline]
pub(crate) fn window_taps(s: &Conv2dShape, oy: usize, ox: usize) -> WindowTaps {
    let [sy, sx] = s.stride;
    let [dy, dx] = s.dilation;
    let rows = valid_taps(oy, s.kernel[0], sy, dy, s.padding.top, s.input[1]);
    let cols = valid_taps(ox, s.kernel[1], sx, dx, s.padding.left, s.input[2]);
    // A window with no column inside the input has no tap.
    let rows = if cols.is_empty() { 0..0 } else { rows };
    let first = |o: usize, k: usize, stride: u32, dilation: u32, pad: u32| {
        (o * stride as usize + k * dilation as usize).wrapping_sub(pad as usize)
    };
    WindowTaps {
        iy0: first(oy, rows.start, sy, dy, s.padding.top),
        ix0: first(ox, cols.start, sx, dx, s.padding.left),
        rows,
        cols,
    }
}

/// `acc` plus the products `(x − zp)·w` over the pairs of `x` and `w`, wrapping.
///
/// Out of line: inlined into the window loops, the Cortex-M4 build kept the loop's pointers on
/// the stack (10 instructions per MAC; 6 here).
#[inline(never)]
fn dot_i8(mut acc: i32, x: &[i8], w: &[i8], zp: i32) -> i32 {
    for (&xi, &wi) in x.iter().zip(w) {
        acc = acc.wrapping_add((xi as i32 - zp) * wi as i32);
    }
    acc
}

/// `acc` plus the products over the pairs of `x` and `w`, in order (out of line, as
/// [`dot_i8`]).
#[inline(never)]
fn dot_f32(mut acc: f32, x: &[f32], w: &[f32]) -> f32 {
    for (&xi, &wi) in x.iter().zip(w) {
        acc += xi * wi;
    }
    acc
}

/// Calls `f(pixel, b, oy, ox)` for every output pixel, in NHWC order (`pixel` counts them).
pub(crate) fn for_each_output(s: &Conv2dShape, mut f: impl FnMut(usize, usize, usize, usize)) {
    let [n, _, _, _] = s.input;
    let [_, oh, ow, _] = s.output;
    let mut pixel = 0;
    for b in 0..n as usize {
        for oy in 0..oh as usize {
            for ox in 0..ow as usize {
                f(pixel, b, oy, ox);
                pixel += 1;
            }
        }
    }
}

/// Calls `f(x0, w0, n)` for each run of `n` adjacent products of output channel `oc` at the
/// output pixel of batch `b` whose taps are `t`: input elements `x0..x0 + n` times weights
/// `w0..w0 + n`, in kernel order (row, column, channel). A kernel row is one run when the column
/// dilation is 1, else one run per tap.
#[inline(always)]
fn for_each_run(
    s: &Conv2dShape,
    t: &WindowTaps,
    b: usize,
    oc: usize,
    mut f: impl FnMut(usize, usize, usize),
) {
    let [_, h, w, in_c] = s.input.map(|d| d as usize);
    let [kh, kw] = s.kernel.map(|d| d as usize);
    let [dy, dx] = s.dilation.map(|d| d as usize);
    let taps = t.cols.len();
    for (r, ky) in t.rows.clone().enumerate() {
        let x_row = (b * h + t.iy0 + r * dy) * w + t.ix0;
        let w_row = (oc * kh + ky) * kw + t.cols.start;
        if dx == 1 {
            f(x_row * in_c, w_row * in_c, taps * in_c);
        } else {
            for c in 0..taps {
                f((x_row + c * dx) * in_c, (w_row + c) * in_c, in_c);
            }
        }
    }
}

/// int8 Conv2D. Requires a successful [`super::check_i8`].
///
/// Each output sums its kernel window's taps that lie inside the input (padding contributes
/// nothing), in runs of adjacent products ([`for_each_run`]).
pub fn eval_i8(p: &Conv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    let s = &p.shape;
    let out_c = s.output[3] as usize;
    let zp = p.input_zero_point;
    for_each_output(s, |pixel, b, oy, ox| {
        let t = window_taps(s, oy, ox);
        let out = &mut output[pixel * out_c..(pixel + 1) * out_c];
        for (oc, y) in out.iter_mut().enumerate() {
            let mut acc: i32 = match p.bias {
                Some(bias) => bias[oc],
                None => 0,
            };
            for_each_run(s, &t, b, oc, |x0, w0, n| {
                acc = dot_i8(acc, &input[x0..x0 + n], &p.weights[w0..w0 + n], zp);
            });
            *y = requantize_to_i8(
                acc,
                p.output_multiplier[oc],
                p.output_shift[oc],
                p.output_zero_point,
                p.activation.min,
                p.activation.max,
            );
        }
    });
}

/// f32 Conv2D. Requires a successful [`super::check_f32`].
///
/// The same walk as [`eval_i8`]: each output sums the taps inside the input in kernel order
/// (row, column, channel), starting from its bias.
pub fn eval_f32(p: &Conv2dF32Params<'_>, input: &[f32], output: &mut [f32]) {
    let s = &p.shape;
    let out_c = s.output[3] as usize;
    for_each_output(s, |pixel, b, oy, ox| {
        let t = window_taps(s, oy, ox);
        let out = &mut output[pixel * out_c..(pixel + 1) * out_c];
        for (oc, y) in out.iter_mut().enumerate() {
            let mut acc = match p.bias {
                Some(bias) => bias[oc],
                None => 0.0,
            };
            for_each_run(s, &t, b, oc, |x0, w0, n| {
                acc = dot_f32(acc, &input[x0..x0 + n], &p.weights[w0..w0 + n]);
            });
            *y = p.activation.apply(acc);
        }
    });
}
