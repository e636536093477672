//! The pooling specification: plain loops, no `unsafe`.

use super::{GlobalAvgPoolF32Params, GlobalAvgPoolParams, PoolF32Params, PoolParams, PoolShape};
use crate::quant::requantize_to_i8;

/// Valid input range `[start, end)` of the window at output position `o` along one axis.
#[inline]
pub(crate) fn window(o: usize, kernel: u32, stride: u32, pad: u32, size: u32) -> (usize, usize) {
    let lo = o * stride as usize;
    let start = lo.saturating_sub(pad as usize);
    let end = (lo + kernel as usize)
        .saturating_sub(pad as usize)
        .min(size as usize);
    (start, end.max(start))
}

/// Calls `f(output_index, input_indices_of_its_window)` for every output element.
fn for_each_window(s: &PoolShape, mut f: impl FnMut(usize, &mut dyn Iterator<Item = usize>)) {
    let [n, h, w, c] = s.input.map(|d| d as usize);
    let [_, oh, ow, _] = s.output.map(|d| d as usize);
    let mut o = 0;
    for b in 0..n {
        for oy in 0..oh {
            let (y0, y1) = window(oy, s.kernel[0], s.stride[0], s.padding.top, h as u32);
            for ox in 0..ow {
                let (x0, x1) = window(ox, s.kernel[1], s.stride[1], s.padding.left, w as u32);
                for ch in 0..c {
                    let mut taps = (y0..y1).flat_map(move |iy| {
                        (x0..x1).map(move |ix| ((b * h + iy) * w + ix) * c + ch)
                    });
                    f(o, &mut taps);
                    o += 1;
                }
            }
        }
    }
}

/// int8 max pooling.
pub fn eval_max_i8(p: &PoolParams, input: &[i8], output: &mut [i8]) {
    for_each_window(&p.shape, |o, taps| {
        let m = taps.fold(i8::MIN, |m, i| m.max(input[i]));
        output[o] = m.max(p.activation.min).min(p.activation.max);
    });
}

/// int8 average pooling: `Σ x / count` over the valid taps, rounded half away from zero, then
/// the clamp. (Input and output share quantization, so no requantization.)
pub fn eval_avg_i8(p: &PoolParams, input: &[i8], output: &mut [i8]) {
    for_each_window(&p.shape, |o, taps| {
        let (sum, count) = taps.fold((0i32, 0i32), |(s, n), i| (s + input[i] as i32, n + 1));
        let avg = if count == 0 {
            0 // unreachable after check (padding < kernel), kept so nothing divides by zero
        } else if sum >= 0 {
            (sum + count / 2) / count
        } else {
            (sum - count / 2) / count
        };
        output[o] = avg
            .max(p.activation.min as i32)
            .min(p.activation.max as i32) as i8;
    });
}

/// f32 max pooling.
pub fn eval_max_f32(p: &PoolF32Params, input: &[f32], output: &mut [f32]) {
    for_each_window(&p.shape, |o, taps| {
        let m = taps.fold(
            f32::NEG_INFINITY,
            |m, i| if input[i] > m { input[i] } else { m },
        );
        output[o] = p.activation.apply(m);
    });
}

/// f32 average pooling over the valid taps.
pub fn eval_avg_f32(p: &PoolF32Params, input: &[f32], output: &mut [f32]) {
    for_each_window(&p.shape, |o, taps| {
        let (sum, count) = taps.fold((0f32, 0u32), |(s, n), i| (s + input[i], n + 1));
        let avg = if count == 0 { 0.0 } else { sum / count as f32 };
        output[o] = p.activation.apply(avg);
    });
}

/// int8 global average pooling: `requantize(Σ (x - z_in))` per `(n, c)`.
pub fn eval_global_avg_i8(p: &GlobalAvgPoolParams, input: &[i8], output: &mut [i8]) {
    let [_, h, w, c] = p.input.map(|d| d as usize);
    for (x, y) in input
        .chunks_exact(h * w * c)
        .zip(output.chunks_exact_mut(c))
    {
        for (ch, yc) in y.iter_mut().enumerate() {
            let sum: i32 = x
                .iter()
                .skip(ch)
                .step_by(c)
                .map(|&v| v as i32 - p.input_zero_point)
                .sum();
            *yc = requantize_to_i8(
                sum,
                p.output_multiplier,
                p.output_shift,
                p.output_zero_point,
                p.activation.min,
                p.activation.max,
            );
        }
    }
}

/// f32 global average pooling.
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub fn eval_global_avg_f32(p: &GlobalAvgPoolF32Params, input: &[f32], output: &mut [f32]) {
    let [_, h, w, c] = p.input.map(|d| d as usize);
    for (x, y) in input
        .chunks_exact(h * w * c)
        .zip(output.chunks_exact_mut(c))
    {
        for (ch, yc) in y.iter_mut().enumerate() {
            let sum: f32 = x.iter().skip(ch).step_by(c).sum();
            *yc = p.activation.apply(sum / (h * w) as f32);
        }
    }
}
