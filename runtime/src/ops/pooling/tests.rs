use super::*;
use crate::ops::testing::{self, Rng};
use proptest::prelude::*;
use std::vec::Vec;

fn random_shape(rng: &mut Rng) -> PoolShape {
    loop {
        let (n, h, w, c) = (rng.dim(2), rng.dim(9), rng.dim(9), rng.dim(5));
        let kernel = [rng.dim(3), rng.dim(3)];
        let stride = [rng.range(1, 3) as u32, rng.range(1, 3) as u32];
        let padding = Padding {
            top: rng.range(0, kernel[0] as i32 - 1) as u32,
            bottom: rng.range(0, kernel[0] as i32 - 1) as u32,
            left: rng.range(0, kernel[1] as i32 - 1) as u32,
            right: rng.range(0, kernel[1] as i32 - 1) as u32,
        };
        let oh = crate::ops::window_output(h, padding.top, padding.bottom, kernel[0], stride[0], 1);
        let ow = crate::ops::window_output(w, padding.left, padding.right, kernel[1], stride[1], 1);
        if let (Ok(oh), Ok(ow)) = (oh, ow) {
            return PoolShape {
                input: [n, h, w, c],
                output: [n, oh, ow, c],
                kernel,
                stride,
                padding,
            };
        }
    }
}

/// Max (`max = true`) or mean over each window's valid taps, in f64 with signed coordinates.
fn pool_f64(s: &PoolShape, x: &[f64], max: bool) -> Vec<f64> {
    let [n, h, w, c] = s.input.map(|d| d as i64);
    let [_, oh, ow, _] = s.output.map(|d| d as i64);
    let mut y = Vec::new();
    for b in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                for ch in 0..c {
                    let mut vals = Vec::new();
                    for ky in 0..s.kernel[0] as i64 {
                        for kx in 0..s.kernel[1] as i64 {
                            let iy = oy * s.stride[0] as i64 + ky - s.padding.top as i64;
                            let ix = ox * s.stride[1] as i64 + kx - s.padding.left as i64;
                            if (0..h).contains(&iy) && (0..w).contains(&ix) {
                                vals.push(x[(((b * h + iy) * w + ix) * c + ch) as usize]);
                            }
                        }
                    }
                    y.push(if max {
                        vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
                    } else {
                        vals.iter().sum::<f64>() / vals.len() as f64
                    });
                }
            }
        }
    }
    y
}

fn len(d: &[u32]) -> usize {
    d.iter().map(|&x| x as usize).product()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(testing::CASES))]

    /// Max pooling is exact; average pooling is within 1 LSB.
    #[test]
    fn int8_max_avg_vs_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let shape = random_shape(&mut rng);
        let (scale, zp) = (rng.scale(), rng.zero_point());
        let x = rng.i8_vec(len(&shape.input));
        let p = PoolParams { shape, activation: rng.clamp(zp) };
        check_i8(&p, x.len(), len(&shape.output)).unwrap();
        let real = testing::dequantize(&x, scale, zp);
        let mut out = vec![0i8; len(&shape.output)];
        eval_max_i8(&p, &x, &mut out);
        let want: Vec<i8> = pool_f64(&shape, &real, true).iter().map(|&y| testing::quantize_f64(y, scale, zp, p.activation)).collect();
        testing::assert_within_lsb(&out, &want, 0, "max_pool int8");
        eval_avg_i8(&p, &x, &mut out);
        let want: Vec<i8> = pool_f64(&shape, &real, false).iter().map(|&y| testing::quantize_f64(y, scale, zp, p.activation)).collect();
        testing::assert_within_lsb(&out, &want, 1, "avg_pool int8");
    }

    #[test]
    fn int8_global_avg_within_1_lsb_of_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let input = [rng.dim(2), rng.dim(12), rng.dim(12), rng.dim(9)];
        let (s_in, z_in, z_out) = (rng.scale(), rng.zero_point(), rng.zero_point());
        let s_out = s_in * rng.log_uniform(0.25, 4.0);
        let (m, sh) = global_avg_requant(s_in, s_out, input[1] * input[2]).unwrap();
        let x = rng.i8_vec(len(&input));
        let p = GlobalAvgPoolParams { input, input_zero_point: z_in, output_zero_point: z_out, output_multiplier: m, output_shift: sh, activation: rng.clamp(z_out) };
        let out_len = (input[0] * input[3]) as usize;
        check_global_avg_i8(&p, x.len(), out_len).unwrap();
        let mut out = vec![0i8; out_len];
        eval_global_avg_i8(&p, &x, &mut out);
        let shape = PoolShape { input, output: [input[0], 1, 1, input[3]], kernel: [input[1], input[2]], stride: [1, 1], padding: Padding::default() };
        let want: Vec<i8> = pool_f64(&shape, &testing::dequantize(&x, s_in, z_in), false)
            .iter().map(|&y| testing::quantize_f64(y, s_out, z_out, p.activation)).collect();
        testing::assert_within_lsb(&out, &want, 1, "global_avg_pool int8");
    }

    #[test]
    fn f32_matches_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let shape = random_shape(&mut rng);
        let x = rng.f32_vec(len(&shape.input), 4.0);
        let p = PoolF32Params { shape, activation: ClampF32::NONE };
        check_f32(&p, x.len(), len(&shape.output)).unwrap();
        let mut out = vec![0f32; len(&shape.output)];
        eval_max_f32(&p, &x, &mut out);
        testing::assert_close_f32(&out, &pool_f64(&shape, &testing::to_f64(&x), true), 0.0, 0.0, "max_pool f32");
        eval_avg_f32(&p, &x, &mut out);
        testing::assert_close_f32(&out, &pool_f64(&shape, &testing::to_f64(&x), false), 1e-5, 1e-5, "avg_pool f32");
        let g = GlobalAvgPoolF32Params { input: shape.input, activation: ClampF32::NONE };
        let out_len = (shape.input[0] * shape.input[3]) as usize;
        check_global_avg_f32(&g, x.len(), out_len).unwrap();
        let mut gout = vec![0f32; out_len];
        eval_global_avg_f32(&g, &x, &mut gout);
        let whole = PoolShape { input: shape.input, output: [shape.input[0], 1, 1, shape.input[3]], kernel: [shape.input[1], shape.input[2]], stride: [1, 1], padding: Padding::default() };
        testing::assert_close_f32(&gout, &pool_f64(&whole, &testing::to_f64(&x), false), 1e-5, 1e-4, "global_avg_pool f32");
    }
}

/// Hand-checked 3x3 single channel, 2x2 window, stride 2, padding bottom/right 1:
/// windows {1,2,4,5}, {3,6}, {7,8}, {9}.
#[test]
fn golden_max_avg_with_padding() {
    let x: [i8; 9] = [1, 2, 3, 4, 5, 6, 7, 8, -9];
    let p = PoolParams {
        shape: PoolShape {
            input: [1, 3, 3, 1],
            output: [1, 2, 2, 1],
            kernel: [2, 2],
            stride: [2, 2],
            padding: Padding {
                top: 0,
                bottom: 1,
                left: 0,
                right: 1,
            },
        },
        activation: ClampI8::NONE,
    };
    check_i8(&p, 9, 4).unwrap();
    let mut out = [0i8; 4];
    eval_max_i8(&p, &x, &mut out);
    assert_eq!(out, [5, 6, 8, -9]);
    eval_avg_i8(&p, &x, &mut out);
    // 12/4 = 3; 9/2 = 4.5 -> 5; 15/2 = 7.5 -> 8; -9.
    assert_eq!(out, [3, 5, 8, -9]);
}

/// Hand-checked: mean of (x - 2) over 2x2 = (0 + 2 + 4 + 6) / 4 = 3, rescaled ×2 -> 6, + 1.
#[test]
fn golden_global_avg() {
    let (m, sh) = global_avg_requant(0.5, 0.25, 4).unwrap();
    let p = GlobalAvgPoolParams {
        input: [1, 2, 2, 1],
        input_zero_point: 2,
        output_zero_point: 1,
        output_multiplier: m,
        output_shift: sh,
        activation: ClampI8::NONE,
    };
    check_global_avg_i8(&p, 4, 1).unwrap();
    let mut out = [0i8; 1];
    eval_global_avg_i8(&p, &[2, 4, 6, 8], &mut out);
    assert_eq!(out, [7]);
}

#[test]
fn check_rejects_bad_params() {
    let mut p = PoolParams {
        shape: PoolShape {
            input: [1, 4, 4, 2],
            output: [1, 2, 2, 2],
            kernel: [2, 2],
            stride: [2, 2],
            padding: Padding::default(),
        },
        activation: ClampI8::NONE,
    };
    assert_eq!(check_i8(&p, 32, 8), Ok(()));
    assert!(check_i8(&p, 32, 9).is_err());
    p.shape.output[3] = 3;
    assert!(check_i8(&p, 32, 12).is_err());
    p.shape.output[3] = 2;
    p.shape.padding.top = 2; // a window made only of padding
    assert!(check_i8(&p, 32, 8).is_err());
    let g = GlobalAvgPoolParams {
        input: [1, 2, 2, 1],
        input_zero_point: 0,
        output_zero_point: 0,
        output_multiplier: 1 << 30,
        output_shift: 40,
        activation: ClampI8::NONE,
    };
    assert!(check_global_avg_i8(&g, 4, 1).is_err());
}

/// The Cortex-M4's lane sums on their worst inputs: every value −128 or every value 127, over
/// pixel counts around the 255 at which the 16-bit lanes are widened, are the plain sums.
#[test]
fn lane_sums_do_not_overflow() {
    for v in [-128i8, 127, -1] {
        for pixels in [1, 254, 255, 256, 510, 511, 1000] {
            for c in [8, 9, 16] {
                let x = vec![v; pixels * c];
                for at in [0, c - 8] {
                    assert_eq!(
                        channel_major::sum_lanes8(&x, c, at),
                        [v as i32 * pixels as i32; 8],
                        "{v} {pixels} {c} {at}"
                    );
                }
            }
        }
    }
    let mut rng = Rng::new(0x1a7e);
    for pixels in [255, 256, 700] {
        let c = 13;
        let x = rng.i8_vec(pixels * c);
        for at in 0..=c - 8 {
            let want: Vec<i32> = (at..at + 8)
                .map(|ch| x.chunks_exact(c).map(|px| px[ch] as i32).sum())
                .collect();
            assert_eq!(channel_major::sum_lanes8(&x, c, at).to_vec(), want);
        }
    }
}

/// The channel-major kernels (what `eval_*_i8` run) against the reference on random shapes with
/// up to 70 channels (and two wider than `CHANNEL_BLOCK`, which the averages walk in blocks),
/// random values, zero points, multipliers (including positive shifts) and clamps.
#[test]
fn channel_major_bit_exact_to_reference() {
    let mut rng = Rng::new(0x9001);
    for i in 0..300 {
        let mut shape = random_shape(&mut rng);
        let c = if i < 2 {
            channel_major::CHANNEL_BLOCK as u32 * (i + 1) + 3
        } else {
            rng.dim(70)
        };
        shape.input[3] = c;
        shape.output[3] = c;
        let x = rng.i8_vec(len(&shape.input));
        let zp = rng.zero_point();
        let p = PoolParams {
            shape,
            activation: rng.clamp(zp),
        };
        check_i8(&p, x.len(), len(&shape.output)).unwrap();
        let mut want = vec![0i8; len(&shape.output)];
        let mut got = vec![0i8; len(&shape.output)];
        reference::eval_max_i8(&p, &x, &mut want);
        channel_major::eval_max_i8(&p, &x, &mut got);
        assert_eq!(got, want, "max case {i}: {shape:?}");
        reference::eval_avg_i8(&p, &x, &mut want);
        channel_major::eval_avg_i8(&p, &x, &mut got);
        assert_eq!(got, want, "avg case {i}: {shape:?}");

        let input = [rng.dim(2), rng.dim(12), rng.dim(12), c];
        let (s_in, z_in, z_out) = (rng.scale(), rng.zero_point(), rng.zero_point());
        let s_out = s_in * rng.log_uniform(0.01, 40.0);
        let (m, sh) = global_avg_requant(s_in, s_out, input[1] * input[2]).unwrap();
        let x = rng.i8_vec(len(&input));
        let p = GlobalAvgPoolParams {
            input,
            input_zero_point: z_in,
            output_zero_point: z_out,
            output_multiplier: m,
            output_shift: sh,
            activation: rng.clamp(z_out),
        };
        let out_len = (input[0] * input[3]) as usize;
        check_global_avg_i8(&p, x.len(), out_len).unwrap();
        let mut want = vec![0i8; out_len];
        let mut got = vec![0i8; out_len];
        reference::eval_global_avg_i8(&p, &x, &mut want);
        channel_major::eval_global_avg_i8(&p, &x, &mut got);
        assert_eq!(got, want, "global avg case {i}: {input:?}");
        for lanes in [false, true] {
            got.fill(0);
            channel_major::global_avg_i8(&p, &x, &mut got, lanes);
            assert_eq!(got, want, "global avg case {i} (lanes {lanes}): {input:?}");
        }
    }
}
