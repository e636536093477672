use super::*;
use crate::ops::testing::{self, Rng};
use crate::ops::Conv2dI8Fn;
use proptest::prelude::*;
use std::vec::Vec;

/// Random valid conv geometry: odd sizes, 1xN and Nx1 inputs, strides 1–3, dilations 1–2,
/// paddings 0–2 on each side (so some windows hang over the edges).
pub(crate) fn random_shape(rng: &mut Rng, in_c: u32, out_c: u32) -> Conv2dShape {
    loop {
        let (h, w) = (rng.dim(9), rng.dim(9));
        let kernel = [rng.dim(3), rng.dim(3)];
        let stride = [rng.range(1, 3) as u32, rng.range(1, 3) as u32];
        let dilation = [rng.range(1, 2) as u32, rng.range(1, 2) as u32];
        let padding = Padding {
            top: rng.range(0, 2) as u32,
            bottom: rng.range(0, 2) as u32,
            left: rng.range(0, 2) as u32,
            right: rng.range(0, 2) as u32,
        };
        let n = rng.dim(2);
        let oh = crate::ops::window_output(
            h,
            padding.top,
            padding.bottom,
            kernel[0],
            stride[0],
            dilation[0],
        );
        let ow = crate::ops::window_output(
            w,
            padding.left,
            padding.right,
            kernel[1],
            stride[1],
            dilation[1],
        );
        if let (Ok(oh), Ok(ow)) = (oh, ow) {
            return Conv2dShape {
                input: [n, h, w, in_c],
                output: [n, oh, ow, out_c],
                kernel,
                stride,
                dilation,
                padding,
            };
        }
    }
}

/// Exact Conv2D in f64 with signed coordinates (no activation). `w` is OHWI.
pub(crate) fn conv2d_f64(s: &Conv2dShape, x: &[f64], w: &[f64], bias: &[f64]) -> Vec<f64> {
    let [n, h, wd, ic] = s.input.map(|d| d as i64);
    let [_, oh, ow, oc] = s.output.map(|d| d as i64);
    let [kh, kw] = s.kernel.map(|d| d as i64);
    let mut y = Vec::new();
    for b in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                for o in 0..oc {
                    let mut acc = bias[o as usize];
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = oy * s.stride[0] as i64 + ky * s.dilation[0] as i64
                                - s.padding.top as i64;
                            let ix = ox * s.stride[1] as i64 + kx * s.dilation[1] as i64
                                - s.padding.left as i64;
                            if iy < 0 || iy >= h || ix < 0 || ix >= wd {
                                continue;
                            }
                            for c in 0..ic {
                                acc += x[(((b * h + iy) * wd + ix) * ic + c) as usize]
                                    * w[(((o * kh + ky) * kw + kx) * ic + c) as usize];
                            }
                        }
                    }
                    y.push(acc);
                }
            }
        }
    }
    y
}

/// A random int8 Conv2D with the real scales its integers came from.
pub(crate) struct ConvCase {
    pub shape: Conv2dShape,
    pub input: Vec<i8>,
    pub weights: Vec<i8>,
    pub bias: Option<Vec<i32>>,
    pub input_zero_point: i32,
    pub output_zero_point: i32,
    pub multiplier: Vec<i32>,
    pub shift: Vec<i32>,
    pub activation: ClampI8,
    pub input_scale: f64,
    pub weight_scales: Vec<f64>,
    pub output_scale: f64,
}

impl ConvCase {
    pub(crate) fn random(rng: &mut Rng) -> ConvCase {
        Self::random_with(rng, 6, 6)
    }

    /// A random case with up to `max_in_c` input and `max_out_c` output channels.
    pub(crate) fn random_with(rng: &mut Rng, max_in_c: u32, max_out_c: u32) -> ConvCase {
        let (in_c, out_c) = (rng.dim(max_in_c), rng.dim(max_out_c));
        let shape = random_shape(rng, in_c, out_c);
        let depth = (shape.kernel[0] * shape.kernel[1] * shape.input[3]) as usize;
        let out_c = shape.output[3] as usize;
        let input_scale = rng.scale();
        let output_scale = rng.scale();
        let reals = rng.channel_multipliers(out_c, depth);
        let weight_scales: Vec<f64> = reals
            .iter()
            .map(|r| r * output_scale / input_scale)
            .collect();
        let (multiplier, shift) = testing::multipliers(
            &weight_scales
                .iter()
                .map(|sw| input_scale * sw / output_scale)
                .collect::<Vec<_>>(),
        );
        let output_zero_point = rng.zero_point();
        ConvCase {
            input: rng.i8_vec(shape.input_len()),
            weights: rng.weights(out_c * depth),
            bias: if rng.one_in(4) {
                None
            } else {
                Some(rng.i32_vec(out_c, 30_000))
            },
            input_zero_point: rng.zero_point(),
            output_zero_point,
            multiplier,
            shift,
            activation: rng.clamp(output_zero_point),
            input_scale,
            weight_scales,
            output_scale,
            shape,
        }
    }

    pub(crate) fn params(&self) -> Conv2dParams<'_> {
        Conv2dParams {
            shape: self.shape,
            weights: &self.weights,
            bias: self.bias.as_deref(),
            input_zero_point: self.input_zero_point,
            output_zero_point: self.output_zero_point,
            output_multiplier: &self.multiplier,
            output_shift: &self.shift,
            activation: self.activation,
        }
    }

    fn oracle(&self) -> Vec<i8> {
        let x = testing::dequantize(&self.input, self.input_scale, self.input_zero_point);
        let per_oc = self.weights.len() / self.weight_scales.len();
        let w: Vec<f64> = self
            .weights
            .iter()
            .enumerate()
            .map(|(i, &q)| q as f64 * self.weight_scales[i / per_oc])
            .collect();
        let bias: Vec<f64> = (0..self.weight_scales.len())
            .map(|o| {
                self.bias.as_ref().map_or(0.0, |b| b[o] as f64)
                    * self.input_scale
                    * self.weight_scales[o]
            })
            .collect();
        conv2d_f64(&self.shape, &x, &w, &bias)
            .iter()
            .map(|&y| {
                testing::quantize_f64(
                    y,
                    self.output_scale,
                    self.output_zero_point,
                    self.activation,
                )
            })
            .collect()
    }
}

/// Asserts that `variant` gives the same bytes as the reference on `cases` random cases.
pub(crate) fn assert_bit_exact(variant: Conv2dI8Fn, seed: u64, cases: usize) {
    let mut rng = Rng::new(seed);
    for i in 0..cases {
        let c = ConvCase::random(&mut rng);
        let p = c.params();
        check_i8(&p, c.input.len(), c.shape.output_len()).expect("valid case");
        let mut want = vec![0i8; c.shape.output_len()];
        let mut got = vec![0i8; c.shape.output_len()];
        reference::eval_i8(&p, &c.input, &mut want);
        variant(&p, &c.input, &mut got);
        assert_eq!(got, want, "case {i} (seed {seed}): {:?}", c.shape);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(testing::CASES))]

    #[test]
    fn int8_within_1_lsb_of_f64(seed in any::<u64>()) {
        let c = ConvCase::random(&mut Rng::new(seed));
        let p = c.params();
        check_i8(&p, c.input.len(), c.shape.output_len()).unwrap();
        let mut out = vec![0i8; c.shape.output_len()];
        eval_i8(&p, &c.input, &mut out);
        testing::assert_within_lsb(&out, &c.oracle(), 1, "conv2d int8");
    }

    #[test]
    fn f32_matches_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (ic, oc) = (rng.dim(5), rng.dim(5));
        let shape = random_shape(&mut rng, ic, oc);
        let depth = (shape.kernel[0] * shape.kernel[1] * ic) as usize;
        let x = rng.f32_vec(shape.input_len(), 2.0);
        let w = rng.f32_vec(oc as usize * depth, 1.0);
        let bias = rng.f32_vec(oc as usize, 1.0);
        let activation = if rng.one_in(2) { ClampF32::RELU } else { ClampF32::NONE };
        let p = Conv2dF32Params { shape, weights: &w, bias: Some(&bias), activation };
        check_f32(&p, x.len(), shape.output_len()).unwrap();
        let mut out = vec![0f32; shape.output_len()];
        eval_f32(&p, &x, &mut out);
        let want: Vec<f64> = conv2d_f64(&shape, &testing::to_f64(&x), &testing::to_f64(&w), &testing::to_f64(&bias))
            .into_iter().map(|y| testing::clamp_f64(y, activation)).collect();
        testing::assert_close_f32(&out, &want, 1e-5, 1e-5 * depth as f64, "conv2d f32");
    }
}

#[test]
fn bit_exact_reference_table() {
    assert_bit_exact(crate::ops::KernelTable::reference().conv2d_i8, 11, 20);
}

/// Hand-checked 3x3 input, 2x2 kernel of ones, stride 1, padding 1 on the bottom/right only,
/// input zero point 1, multiplier 1: output(y, x) = sum of (x - 1) over the 2x2 window.
#[test]
fn golden_box_filter_with_padding() {
    let input: [i8; 9] = [2, 3, 4, 5, 6, 7, 8, 9, 10]; // minus zp: 1..=9
    let weights = [1i8; 4];
    let shape = Conv2dShape {
        input: [1, 3, 3, 1],
        output: [1, 3, 3, 1],
        kernel: [2, 2],
        stride: [1, 1],
        dilation: [1, 1],
        padding: Padding {
            top: 0,
            bottom: 1,
            left: 0,
            right: 1,
        },
    };
    let p = Conv2dParams {
        shape,
        weights: &weights,
        bias: None,
        input_zero_point: 1,
        output_zero_point: -10,
        output_multiplier: &[1 << 30],
        output_shift: &[1],
        activation: ClampI8::NONE,
    };
    check_i8(&p, 9, 9).unwrap();
    let mut out = [0i8; 9];
    eval_i8(&p, &input, &mut out);
    // windows: [1+2+4+5, 2+3+5+6, 3+6, 4+5+7+8, 5+6+8+9, 6+9, 7+8, 8+9, 9] - 10
    assert_eq!(out, [2, 6, -1, 14, 18, 5, 5, 7, -1]);
}

/// Hand-checked: stride 2, dilation 2 on a 1x5 row, two output channels with opposite weights.
#[test]
fn golden_strided_dilated_two_channels() {
    let input: [i8; 5] = [10, 20, 30, 40, 50];
    let weights = [1i8, 1, -1, -1]; // oc0: [1, 1], oc1: [-1, -1] over kx = 0, 1 (dilated by 2)
    let shape = Conv2dShape {
        input: [1, 1, 5, 1],
        output: [1, 1, 2, 2],
        kernel: [1, 2],
        stride: [1, 2],
        dilation: [1, 2],
        padding: Padding::default(),
    };
    let p = Conv2dParams {
        shape,
        weights: &weights,
        bias: Some(&[0, 100]),
        input_zero_point: 0,
        output_zero_point: 0,
        output_multiplier: &[1 << 30, 1 << 30],
        output_shift: &[-1, 0],
        activation: ClampI8::NONE,
    };
    check_i8(&p, 5, 4).unwrap();
    let mut out = [0i8; 4];
    eval_i8(&p, &input, &mut out);
    // ox=0 reads x0, x2: oc0 (10+30)/4 = 10, oc1 (100-40)/2 = 30
    // ox=1 reads x2, x4: oc0 (30+50)/4 = 20, oc1 (100-80)/2 = 10
    assert_eq!(out, [10, 30, 20, 10]);
}

#[test]
fn check_rejects_bad_params() {
    let c = ConvCase::random(&mut Rng::new(5));
    let good = c.params();
    let (i, o) = (c.input.len(), c.shape.output_len());
    assert_eq!(check_i8(&good, i, o), Ok(()));
    assert!(check_i8(&good, i - 1, o).is_err());
    assert!(check_i8(&good, i, o + 1).is_err());
    let mut p = good;
    p.shape.output[1] += 1;
    assert!(check_i8(&p, i, o).is_err());
    let mut p = good;
    p.shape.stride = [0, 1];
    assert!(check_i8(&p, i, o).is_err());
    let mut p = good;
    p.shape.input[0] += 1;
    assert!(check_i8(&p, i, o).is_err());
    let mut p = good;
    p.shape.kernel = [100, 1];
    assert!(check_i8(&p, i, o).is_err());
    let mut p = good;
    p.shape.padding.top = u32::MAX;
    assert!(check_i8(&p, i, o).is_err());
    let mut p = good;
    p.weights = &c.weights[1..];
    assert!(check_i8(&p, i, o).is_err());
    let mut p = good;
    p.output_multiplier = &[];
    assert!(check_i8(&p, i, o).is_err());
}

/// The kernel for cores without the DSP extension, on random (mostly not pointwise) layers: the
/// reference's path; its pointwise path is in `simd_tests::bit_exact_pointwise_and_ds_cnn`.
#[test]
fn bit_exact_pairs() {
    assert_bit_exact(super::pairs::eval_i8, 0x9A16, 60);
}

#[test]
fn valid_taps_are_the_taps_inside_the_input() {
    use super::reference::{tap, valid_taps};
    for kernel in 1..6u32 {
        for stride in 1..4u32 {
            for dilation in 1..4u32 {
                for pad in 0..7u32 {
                    for size in 1..9u32 {
                        for o in 0..12usize {
                            let want: Vec<usize> = (0..kernel as usize)
                                .filter(|&k| tap(o, k, stride, dilation, pad, size).is_some())
                                .collect();
                            let got: Vec<usize> =
                                valid_taps(o, kernel, stride, dilation, pad, size).collect();
                            assert_eq!(
                                got, want,
                                "o {o} kernel {kernel} stride {stride} dilation {dilation} pad {pad} size {size}"
                            );
                        }
                    }
                }
            }
        }
    }
}
