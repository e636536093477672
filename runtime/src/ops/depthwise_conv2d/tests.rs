use super::*;
use crate::ops::conv2d::tests::random_shape;
use crate::ops::testing::{self, Rng};
use crate::ops::{DepthwiseConv2dI8Fn, Padding};
use proptest::prelude::*;
use std::vec::Vec;

/// Exact depthwise convolution in f64 with signed coordinates (no activation). `w` is 1HWC.
fn depthwise_f64(s: &Conv2dShape, mult: usize, x: &[f64], w: &[f64], bias: &[f64]) -> Vec<f64> {
    let [n, h, wd, ic] = s.input.map(|d| d as i64);
    let [_, oh, ow, oc] = s.output.map(|d| d as i64);
    let [kh, kw] = s.kernel.map(|d| d as i64);
    let mut y = Vec::new();
    for b in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                for o in 0..oc {
                    let c = o / mult as i64;
                    let mut acc = bias[o as usize];
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = oy * s.stride[0] as i64 + ky * s.dilation[0] as i64
                                - s.padding.top as i64;
                            let ix = ox * s.stride[1] as i64 + kx * s.dilation[1] as i64
                                - s.padding.left as i64;
                            if (0..h).contains(&iy) && (0..wd).contains(&ix) {
                                acc += x[(((b * h + iy) * wd + ix) * ic + c) as usize]
                                    * w[((ky * kw + kx) * oc + o) as usize];
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

/// A random int8 depthwise convolution with its real scales.
pub(crate) struct DwCase {
    pub shape: Conv2dShape,
    pub depth_multiplier: u32,
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

impl DwCase {
    pub(crate) fn random(rng: &mut Rng) -> DwCase {
        Self::random_with(rng, 7)
    }

    /// A random case with up to `max_in_c` input channels.
    pub(crate) fn random_with(rng: &mut Rng, max_in_c: u32) -> DwCase {
        let in_c = rng.dim(max_in_c);
        let depth_multiplier = if rng.one_in(3) {
            rng.range(2, 3) as u32
        } else {
            1
        };
        let shape = random_shape(rng, in_c, in_c * depth_multiplier);
        let out_c = shape.output[3] as usize;
        let depth = (shape.kernel[0] * shape.kernel[1]) as usize;
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
        DwCase {
            depth_multiplier,
            input: rng.i8_vec(shape.input_len()),
            weights: rng.weights(depth * out_c),
            bias: if rng.one_in(4) {
                None
            } else {
                Some(rng.i32_vec(out_c, 5_000))
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

    pub(crate) fn params(&self) -> DepthwiseConv2dParams<'_> {
        DepthwiseConv2dParams {
            shape: self.shape,
            depth_multiplier: self.depth_multiplier,
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
        let oc = self.weight_scales.len();
        let w: Vec<f64> = self
            .weights
            .iter()
            .enumerate()
            .map(|(i, &q)| q as f64 * self.weight_scales[i % oc])
            .collect();
        let bias: Vec<f64> = (0..oc)
            .map(|o| {
                self.bias.as_ref().map_or(0.0, |b| b[o] as f64)
                    * self.input_scale
                    * self.weight_scales[o]
            })
            .collect();
        depthwise_f64(&self.shape, self.depth_multiplier as usize, &x, &w, &bias)
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
pub(crate) fn assert_bit_exact(variant: DepthwiseConv2dI8Fn, seed: u64, cases: usize) {
    let mut rng = Rng::new(seed);
    for i in 0..cases {
        let c = DwCase::random(&mut rng);
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
        let c = DwCase::random(&mut Rng::new(seed));
        let p = c.params();
        check_i8(&p, c.input.len(), c.shape.output_len()).unwrap();
        let mut out = vec![0i8; c.shape.output_len()];
        eval_i8(&p, &c.input, &mut out);
        testing::assert_within_lsb(&out, &c.oracle(), 1, "depthwise_conv2d int8");
    }

    #[test]
    fn f32_matches_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let ic = rng.dim(5);
        let mult = rng.range(1, 2) as u32;
        let shape = random_shape(&mut rng, ic, ic * mult);
        let oc = shape.output[3] as usize;
        let x = rng.f32_vec(shape.input_len(), 2.0);
        let w = rng.f32_vec((shape.kernel[0] * shape.kernel[1]) as usize * oc, 1.0);
        let bias = rng.f32_vec(oc, 1.0);
        let activation = if rng.one_in(2) { ClampF32::RELU6 } else { ClampF32::NONE };
        let p = DepthwiseConv2dF32Params { shape, depth_multiplier: mult, weights: &w, bias: Some(&bias), activation };
        check_f32(&p, x.len(), shape.output_len()).unwrap();
        let mut out = vec![0f32; shape.output_len()];
        eval_f32(&p, &x, &mut out);
        let want: Vec<f64> = depthwise_f64(&shape, mult as usize, &testing::to_f64(&x), &testing::to_f64(&w), &testing::to_f64(&bias))
            .into_iter().map(|y| testing::clamp_f64(y, activation)).collect();
        testing::assert_close_f32(&out, &want, 1e-5, 1e-4, "depthwise_conv2d f32");
    }
}

#[test]
fn bit_exact_reference_table() {
    assert_bit_exact(
        crate::ops::KernelTable::reference().depthwise_conv2d_i8,
        13,
        20,
    );
}

/// Hand-checked: 1x2x2 input with 1 channel, multiplier 2, 2x2 kernel (valid padding):
/// oc0 weights all 1 -> sum = 1+2+3+4 = 10; oc1 weights [1, -1, 0, 2] -> 1 - 2 + 0 + 8 = 7,
/// plus bias 3 = 10, × 0.5 = 5.
#[test]
fn golden_depth_multiplier_two() {
    let input: [i8; 4] = [1, 2, 3, 4];
    // [kh, kw, out_c] = [[ [1, 1], [1, -1] ], [ [1, 0], [1, 2] ]]
    let weights = [1i8, 1, 1, -1, 1, 0, 1, 2];
    let shape = Conv2dShape {
        input: [1, 2, 2, 1],
        output: [1, 1, 1, 2],
        kernel: [2, 2],
        stride: [1, 1],
        dilation: [1, 1],
        padding: Padding::default(),
    };
    let p = DepthwiseConv2dParams {
        shape,
        depth_multiplier: 2,
        weights: &weights,
        bias: Some(&[0, 3]),
        input_zero_point: 0,
        output_zero_point: 1,
        output_multiplier: &[1 << 30, 1 << 30],
        output_shift: &[1, 0],
        activation: ClampI8::NONE,
    };
    check_i8(&p, 4, 2).unwrap();
    let mut out = [0i8; 2];
    eval_i8(&p, &input, &mut out);
    assert_eq!(out, [11, 6]);
}

#[test]
fn check_rejects_bad_params() {
    let c = DwCase::random(&mut Rng::new(9));
    let good = c.params();
    let (i, o) = (c.input.len(), c.shape.output_len());
    assert_eq!(check_i8(&good, i, o), Ok(()));
    let mut p = good;
    p.depth_multiplier += 1;
    assert!(check_i8(&p, i, o).is_err());
    let mut p = good;
    p.depth_multiplier = 0;
    assert!(check_i8(&p, i, o).is_err());
    let mut p = good;
    p.weights = &c.weights[1..];
    assert!(check_i8(&p, i, o).is_err());
    assert!(check_i8(&good, i, o - 1).is_err());
}

#[test]
fn bit_exact_tap_major() {
    assert_bit_exact(super::tap_major::eval_i8, 0x7A9, 300);
}
