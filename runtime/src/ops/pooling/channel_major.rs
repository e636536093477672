//! int8 pooling with the channels in the inner loop, bit-exact to [`super::reference`].
//!
//! NHWC keeps the channels of one input pixel contiguous, so per output pixel (or, for the global
//! average, per image) the kernels walk each input pixel of the window once and update a row of
//! per-channel values with straight loops over the channels, which the compiler vectorizes; the
//! reference instead walks each channel's window separately with a strided index. Same values,
//! same order of taps per channel (rows, then columns), same rounding and clamp: the outputs are
//! the reference's. Portable Rust (no `unsafe`; the global average's lane sums use the
//! Cortex-M4's `SXTB16`/`SADD16` through [`crate::arch::cortex_m`], emulated elsewhere), used on
//! every target. The averages keep their per-channel sums in a stack row of [`CHANNEL_BLOCK`]
//! values and walk wider layers in blocks of that many channels.

use super::reference::window;
use super::{GlobalAvgPoolParams, PoolParams};
use crate::quant::requantize_to_i8;

/// Channels summed per pass in a stack row of `i32` sums (1 KiB: these sums were a 4 KiB row
/// for up to 1024 channels, the largest stack frame of the DS-CNN on the Cortex-M4).
pub const CHANNEL_BLOCK: usize = 256;

/// Calls `f(out_row, window)` per output pixel, with `window = (b, y0..y1, x0..x1)`.
fn for_each_pixel(
    p: &PoolParams,
    output: &mut [i8],
    mut f: impl FnMut(&mut [i8], usize, (usize, usize), (usize, usize)),
) {
    let s = &p.shape;
    let [n, h, w, c] = s.input.map(|d| d as usize);
    let [_, oh, ow, _] = s.output.map(|d| d as usize);
    let mut rows = output.chunks_exact_mut(c);
    for b in 0..n {
        for oy in 0..oh {
            let ys = window(oy, s.kernel[0], s.stride[0], s.padding.top, h as u32);
            for ox in 0..ow {
                let xs = window(ox, s.kernel[1], s.stride[1], s.padding.left, w as u32);
                if let Some(row) = rows.next() {
                    f(row, b, ys, xs);
                }
            }
        }
    }
}

/// int8 max pooling. Requires a successful [`super::check_i8`].
///
/// Channels in fixed runs of 16 and 8 (kept in a register across the window's taps, so small
/// channel counts such as 8 do not fall to the scalar remainder of a loop over `c`), then one
/// at a time.
#[cfg_attr(target_os = "linux", link_section = ".text.sorted.edgeloop.conv")]
pub fn eval_max_i8(p: &PoolParams, input: &[i8], output: &mut [i8]) {
    let [_, h, w, c] = p.shape.input.map(|d| d as usize);
    let (lo, hi) = (p.activation.min, p.activation.max);
    for_each_pixel(p, output, |row, b, ys, xs| {
        let win = Window { h, w, c, b, ys, xs };
        let mut k = 0;
        while k + 16 <= c {
            max_run::<16>(input, &win, k, &mut row[k..k + 16], lo, hi);
            k += 16;
        }
        if k + 8 <= c {
            max_run::<8>(input, &win, k, &mut row[k..k + 8], lo, hi);
            k += 8;
        }
        for (ch, m) in row.iter_mut().enumerate().skip(k) {
            max_run::<1>(input, &win, ch, core::slice::from_mut(m), lo, hi);
        }
    });
}

/// One output pixel's window: image `b`, rows `ys.0..ys.1`, columns `xs.0..xs.1`.
struct Window {
    h: usize,
    w: usize,
    c: usize,
    b: usize,
    ys: (usize, usize),
    xs: (usize, usize),
}

/// Max over the window of channels `k..k + N`, clamped, into `out` (`N` values).
#[inline(always)]
fn max_run<const N: usize>(input: &[i8], win: &Window, k: usize, out: &mut [i8], lo: i8, hi: i8) {
    let mut m = [i8::MIN; N];
    for iy in win.ys.0..win.ys.1 {
        for ix in win.xs.0..win.xs.1 {
            let at = ((win.b * win.h + iy) * win.w + ix) * win.c + k;
            let x: &[i8; N] = input[at..at + N].try_into().expect("N values");
            for (a, &v) in m.iter_mut().zip(x) {
                *a = (*a).max(v);
            }
        }
    }
    for (y, &a) in out.iter_mut().zip(&m) {
        *y = a.max(lo).min(hi);
    }
}

/// int8 average pooling. Requires a successful [`super::check_i8`].
pub fn eval_avg_i8(p: &PoolParams, input: &[i8], output: &mut [i8]) {
    let [_, h, w, c] = p.shape.input.map(|d| d as usize);
    let (lo, hi) = (p.activation.min as i32, p.activation.max as i32);
    let mut sums = [0i32; CHANNEL_BLOCK];
    for_each_pixel(p, output, |row, b, (y0, y1), (x0, x1)| {
        let count = ((y1 - y0) * (x1 - x0)) as i32;
        for c0 in (0..c).step_by(CHANNEL_BLOCK) {
            let cn = CHANNEL_BLOCK.min(c - c0);
            let acc = &mut sums[..cn];
            acc.fill(0);
            for iy in y0..y1 {
                for ix in x0..x1 {
                    let x = &input[((b * h + iy) * w + ix) * c + c0..][..cn];
                    for (a, &v) in acc.iter_mut().zip(x) {
                        *a += v as i32;
                    }
                }
            }
            for (y, &sum) in row[c0..c0 + cn].iter_mut().zip(acc.iter()) {
                let avg = if count == 0 {
                    0
                } else if sum >= 0 {
                    (sum + count / 2) / count
                } else {
                    (sum - count / 2) / count
                };
                *y = avg.max(lo).min(hi) as i8;
            }
        }
    });
}

/// int8 global average pooling. Requires a successful [`super::check_global_avg_i8`].
///
/// The reference sums `x - z_in` per channel; this sums `x` and subtracts `count · z_in` once.
/// Both are exact: `check_global_avg_i8` bounds `h · w` by [`crate::ops::MAX_ACC_DEPTH`], so
/// every partial sum stays below 2²⁴ in magnitude.
///
/// On the Cortex-M4 (cfg `edgeloop_dsp`) groups of eight channels are summed in 16-bit lanes
/// ([`sum_lanes8`]), except with the feature `reference-kernels` (the scalar build).
#[cfg_attr(target_os = "linux", link_section = ".text.sorted.edgeloop.conv")]
pub fn eval_global_avg_i8(p: &GlobalAvgPoolParams, input: &[i8], output: &mut [i8]) {
    let lanes = cfg!(all(edgeloop_dsp, not(feature = "reference-kernels")));
    global_avg_i8(p, input, output, lanes)
}

/// [`eval_global_avg_i8`], with the 16-bit lanes of [`sum_lanes8`] when `lanes` (host tests run
/// both forms).
#[inline(always)]
pub(crate) fn global_avg_i8(p: &GlobalAvgPoolParams, input: &[i8], output: &mut [i8], lanes: bool) {
    let [_, h, w, c] = p.input.map(|d| d as usize);
    let mut sums = [0i32; CHANNEL_BLOCK];
    let offset = (h * w) as i32 * p.input_zero_point;
    for (x, y) in input
        .chunks_exact(h * w * c)
        .zip(output.chunks_exact_mut(c))
    {
        for c0 in (0..c).step_by(CHANNEL_BLOCK) {
            let cn = CHANNEL_BLOCK.min(c - c0);
            let acc = &mut sums[..cn];
            // Channels c0..c0 + done are summed in lanes, the rest one by one.
            let done = if lanes { cn - cn % 8 } else { 0 };
            for (g, a) in acc[..done].chunks_exact_mut(8).enumerate() {
                a.copy_from_slice(&sum_lanes8(x, c, c0 + 8 * g));
            }
            let rest = &mut acc[done..];
            rest.fill(0);
            for px in x.chunks_exact(c) {
                for (a, &v) in rest.iter_mut().zip(&px[c0 + done..c0 + cn]) {
                    *a += v as i32;
                }
            }
            for (yc, &sum) in y[c0..c0 + cn].iter_mut().zip(acc.iter()) {
                *yc = requantize_to_i8(
                    sum - offset,
                    p.output_multiplier,
                    p.output_shift,
                    p.output_zero_point,
                    p.activation.min,
                    p.activation.max,
                );
            }
        }
    }
}

/// The sums over the pixels of `x` (rows of `c` channels) of the eight channels from `at`
/// (`at + 8 ≤ c`): per pixel two words, `SXTB16` to two pairs of signed halfwords each, `SADD16`
/// into four words of 16-bit lanes (1.6 instructions per value against the plain loop's ~7 on
/// the Cortex-M4), widened into `i32` every 255 pixels, before 255 · 128 could overflow a lane.
/// Exact, as the plain sums.
#[inline(always)]
pub(crate) fn sum_lanes8(x: &[i8], c: usize, at: usize) -> [i32; 8] {
    use crate::arch::cortex_m::{sadd16, sxtb16, sxtb16_ror8};
    let word = |b: &[i8]| u32::from_le_bytes([b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8]);
    let lane = |v: u32, high: bool| (if high { v >> 16 } else { v }) as u16 as i16 as i32;
    let mut out = [0i32; 8];
    let mut pixels = x.chunks_exact(c);
    loop {
        // Lanes: channels (0, 2), (1, 3), (4, 6), (5, 7).
        let mut l = [0u32; 4];
        let mut n = 0;
        for px in (&mut pixels).take(255) {
            let b = &px[at..at + 8];
            let (w0, w1) = (word(&b[..4]), word(&b[4..]));
            l[0] = sadd16(l[0], sxtb16(w0));
            l[1] = sadd16(l[1], sxtb16_ror8(w0));
            l[2] = sadd16(l[2], sxtb16(w1));
            l[3] = sadd16(l[3], sxtb16_ror8(w1));
            n += 1;
        }
        if n == 0 {
            return out;
        }
        for (k, &v) in l.iter().enumerate() {
            // Word k holds channels 4·(k / 2) + k % 2 (low) and that + 2 (high).
            let ch = 4 * (k / 2) + k % 2;
            out[ch] += lane(v, false);
            out[ch + 2] += lane(v, true);
        }
    }
}
