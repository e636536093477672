use super::*;
use crate::ops::testing::{self, Rng};
use crate::ops::Conv1dI8Fn;
use proptest::prelude::*;
use std::vec::Vec;

/// Random valid 1-D geometry (odd widths, width 1, strides 1–3, dilations 1–3, paddings 0–3).
fn random_shape(rng: &mut Rng, in_c: u32, out_c: u32) -> Conv1dShape {
    loop {
        let (n, w) = (rng.dim(3), rng.dim(23));
        let kernel = rng.dim(5);
        let stride = rng.range(1, 3) as u32;
        let dilation = rng.range(1, 3) as u32;
        let padding = [rng.range(0, 3) as u32, rng.range(0, 3) as u32];
        if let Ok(ow) =
            crate::ops::window_output(w, padding[0], padding[1], kernel, stride, dilation)
        {
            return Conv1dShape {
                input: [n, w, in_c],
                output: [n, ow, out_c],
                kernel,
                stride,
                dilation,
                padding,
            };
        }
    }
}

/// Exact Conv1D in f64 with signed coordinates (no activation).
fn conv1d_f64(s: &Conv1dShape, x: &[f64], w: &[f64], bias: &[f64]) -> Vec<f64> {
    let [n, wd, ic] = s.input.map(|d| d as i64);
    let [_, ow, oc] = s.output.map(|d| d as i64);
    let kw = s.kernel as i64;
    let mut y = Vec::new();
    for b in 0..n {
        for ox in 0..ow {
            for o in 0..oc {
                let mut acc = bias[o as usize];
                for k in 0..kw {
                    let ix = ox * s.stride as i64 + k * s.dilation as i64 - s.padding[0] as i64;
                    if (0..wd).contains(&ix) {
                        for c in 0..ic {
                            acc += x[((b * wd + ix) * ic + c) as usize]
                                * w[((o * kw + k) * ic + c) as usize];
                        }
                    }
                }
                y.push(acc);
            }
        }
    }
    y
}

struct Conv1dCase {
    shape: Conv1dShape,
    input: Vec<i8>,
    weights: Vec<i8>,
    bias: Option<Vec<i32>>,
    input_zero_point: i32,
    output_zero_point: i32,
    multiplier: Vec<i32>,
    shift: Vec<i32>,
    activation: ClampI8,
    input_scale: f64,
    weight_scales: Vec<f64>,
    output_scale: f64,
}

impl Conv1dCase {
    fn random(rng: &mut Rng) -> Conv1dCase {
        let (in_c, out_c) = (rng.dim(9), rng.dim(9));
        let shape = random_shape(rng, in_c, out_c);
        let depth = (shape.kernel * in_c) as usize;
        let input_scale = rng.scale();
        let output_scale = rng.scale();
        let reals = rng.channel_multipliers(out_c as usize, depth);
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
        Conv1dCase {
            input: rng.i8_vec(shape.input_len()),
            weights: rng.weights(out_c as usize * depth),
            bias: if rng.one_in(4) {
                None
            } else {
                Some(rng.i32_vec(out_c as usize, 30_000))
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

    fn params(&self) -> Conv1dParams<'_> {
        Conv1dParams {
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
        conv1d_f64(&self.shape, &x, &w, &bias)
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
#[allow(dead_code)] // called by optimized-variant tests
pub(crate) fn assert_bit_exact(variant: Conv1dI8Fn, seed: u64, cases: usize) {
    let mut rng = Rng::new(seed);
    for i in 0..cases {
        let c = Conv1dCase::random(&mut rng);
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
        let c = Conv1dCase::random(&mut Rng::new(seed));
        let p = c.params();
        check_i8(&p, c.input.len(), c.shape.output_len()).unwrap();
        let mut out = vec![0i8; c.shape.output_len()];
        eval_i8(&p, &c.input, &mut out);
        testing::assert_within_lsb(&out, &c.oracle(), 1, "conv1d int8");
    }

    #[test]
    fn f32_matches_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (ic, oc) = (rng.dim(6), rng.dim(6));
        let shape = random_shape(&mut rng, ic, oc);
        let depth = (shape.kernel * ic) as usize;
        let x = rng.f32_vec(shape.input_len(), 2.0);
        let w = rng.f32_vec(oc as usize * depth, 1.0);
        let bias = rng.f32_vec(oc as usize, 1.0);
        let p = Conv1dF32Params { shape, weights: &w, bias: Some(&bias), activation: ClampF32::NONE };
        check_f32(&p, x.len(), shape.output_len()).unwrap();
        let mut out = vec![0f32; shape.output_len()];
        eval_f32(&p, &x, &mut out);
        let want = conv1d_f64(&shape, &testing::to_f64(&x), &testing::to_f64(&w), &testing::to_f64(&bias));
        testing::assert_close_f32(&out, &want, 1e-5, 1e-5 * depth as f64, "conv1d f32");
    }
}

#[test]
fn bit_exact_reference_table() {
    assert_bit_exact(crate::ops::KernelTable::reference().conv1d_i8, 17, 20);
}

/// Hand-checked: width 4, two input channels, kernel 2, "same"-style padding right 1.
/// x = [(1,0), (2,1), (3,0), (4,1)], w = [[1, 10], [1, 10]] (k0: (1,10), k1: (1,10)).
/// Outputs: (1+0)+(2+10)=13, (2+10)+(3+0)=15, (3)+(4+10)=17, (4+10)+pad=14.
#[test]
fn golden_same_padding() {
    let input: [i8; 8] = [1, 0, 2, 1, 3, 0, 4, 1];
    let weights = [1i8, 10, 1, 10];
    let p = Conv1dParams {
        shape: Conv1dShape {
            input: [1, 4, 2],
            output: [1, 4, 1],
            kernel: 2,
            stride: 1,
            dilation: 1,
            padding: [0, 1],
        },
        weights: &weights,
        bias: None,
        input_zero_point: 0,
        output_zero_point: 0,
        output_multiplier: &[1 << 30],
        output_shift: &[1],
        activation: ClampI8::NONE,
    };
    check_i8(&p, 8, 4).unwrap();
    let mut out = [0i8; 4];
    eval_i8(&p, &input, &mut out);
    assert_eq!(out, [13, 15, 17, 14]);
}

#[test]
fn check_rejects_bad_params() {
    let c = Conv1dCase::random(&mut Rng::new(21));
    let good = c.params();
    let (i, o) = (c.input.len(), c.shape.output_len());
    assert_eq!(check_i8(&good, i, o), Ok(()));
    let mut p = good;
    p.shape.output[1] += 1;
    assert!(check_i8(&p, i, o).is_err());
    let mut p = good;
    p.shape.dilation = 0;
    assert!(check_i8(&p, i, o).is_err());
    let mut p = good;
    p.shape.padding = [u32::MAX, 0];
    assert!(check_i8(&p, i, o).is_err());
    let mut p = good;
    p.bias = Some(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert!(check_i8(&p, i, o).is_err());
}
