use super::*;
use crate::ops::testing::{self, Rng};
use crate::ops::FullyConnectedI8Fn;
use proptest::prelude::*;
use std::vec::Vec;

/// A random int8 FullyConnected with the real scales its integers came from.
pub(crate) struct FcCase {
    pub shape: FullyConnectedShape,
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

impl FcCase {
    /// Random sizes (odd ones, 1xN, Nx1), values, scales, zero points and shifts of both signs.
    pub(crate) fn random(rng: &mut Rng) -> FcCase {
        Self::random_with(rng, 300, 17)
    }

    /// A random case with up to `max_k` inputs (often at most 40) and `max_n` outputs.
    pub(crate) fn random_with(rng: &mut Rng, max_k: u32, max_n: u32) -> FcCase {
        Self::random_batch(rng, 4, max_k, max_n)
    }

    /// A random case with up to `max_b` rows, `max_k` inputs (often at most 40), `max_n` outputs.
    pub(crate) fn random_batch(rng: &mut Rng, max_b: u32, max_k: u32, max_n: u32) -> FcCase {
        let shape = FullyConnectedShape {
            batch: rng.dim(max_b),
            in_features: if rng.one_in(4) {
                rng.dim(max_k)
            } else {
                rng.dim(40)
            },
            out_features: rng.dim(max_n),
        };
        let (b, k, n) = (
            shape.batch as usize,
            shape.in_features as usize,
            shape.out_features as usize,
        );
        let input_scale = rng.scale();
        let output_scale = rng.scale();
        let reals = rng.channel_multipliers(n, k);
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
        FcCase {
            shape,
            input: rng.i8_vec(b * k),
            weights: rng.weights(n * k),
            bias: if rng.one_in(4) {
                None
            } else {
                Some(rng.i32_vec(n, 40_000))
            },
            input_zero_point: rng.zero_point(),
            output_zero_point,
            multiplier,
            shift,
            activation: rng.clamp(output_zero_point),
            input_scale,
            weight_scales,
            output_scale,
        }
    }

    pub(crate) fn params(&self) -> FullyConnectedParams<'_> {
        FullyConnectedParams {
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

    pub(crate) fn output_len(&self) -> usize {
        (self.shape.batch * self.shape.out_features) as usize
    }

    /// Dequantize, exact FullyConnected in f64, quantize.
    fn oracle(&self) -> Vec<i8> {
        let x = testing::dequantize(&self.input, self.input_scale, self.input_zero_point);
        let n = self.shape.out_features as usize;
        let w: Vec<f64> = self
            .weights
            .iter()
            .enumerate()
            .map(|(i, &q)| q as f64 * self.weight_scales[i / self.shape.in_features as usize])
            .collect();
        let bias: Vec<f64> = (0..n)
            .map(|o| {
                self.bias.as_ref().map_or(0.0, |b| b[o] as f64)
                    * self.input_scale
                    * self.weight_scales[o]
            })
            .collect();
        fc_f64(self.shape, &x, &w, &bias)
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

/// Exact FullyConnected in f64 (no activation).
fn fc_f64(s: FullyConnectedShape, x: &[f64], w: &[f64], bias: &[f64]) -> Vec<f64> {
    let (k, n) = (s.in_features as usize, s.out_features as usize);
    let mut y = Vec::new();
    for xb in x.chunks(k) {
        for o in 0..n {
            y.push(
                bias[o]
                    + xb.iter()
                        .zip(&w[o * k..(o + 1) * k])
                        .map(|(a, b)| a * b)
                        .sum::<f64>(),
            );
        }
    }
    y
}

/// Asserts that `variant` gives the same bytes as the reference on `cases` random cases.
pub(crate) fn assert_bit_exact(variant: FullyConnectedI8Fn, seed: u64, cases: usize) {
    let mut rng = Rng::new(seed);
    for i in 0..cases {
        let c = FcCase::random(&mut rng);
        let p = c.params();
        check_i8(&p, c.input.len(), c.output_len()).expect("valid case");
        let mut want = vec![0i8; c.output_len()];
        let mut got = vec![0i8; c.output_len()];
        reference::eval_i8(&p, &c.input, &mut want);
        variant(&p, &c.input, &mut got);
        assert_eq!(got, want, "case {i} (seed {seed}): {:?}", c.shape);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(testing::CASES))]

    #[test]
    fn int8_within_1_lsb_of_f64(seed in any::<u64>()) {
        let c = FcCase::random(&mut Rng::new(seed));
        let p = c.params();
        check_i8(&p, c.input.len(), c.output_len()).unwrap();
        let mut out = vec![0i8; c.output_len()];
        eval_i8(&p, &c.input, &mut out);
        testing::assert_within_lsb(&out, &c.oracle(), 1, "fully_connected int8");
    }

    #[test]
    fn f32_matches_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let shape = FullyConnectedShape { batch: rng.dim(4), in_features: rng.dim(70), out_features: rng.dim(17) };
        let (b, k, n) = (shape.batch as usize, shape.in_features as usize, shape.out_features as usize);
        let x = rng.f32_vec(b * k, 3.0);
        let w = rng.f32_vec(n * k, 1.0);
        let bias = rng.f32_vec(n, 2.0);
        let activation = if rng.one_in(2) { ClampF32::RELU6 } else { ClampF32::NONE };
        let p = FullyConnectedF32Params { shape, weights: &w, bias: Some(&bias), activation };
        check_f32(&p, x.len(), b * n).unwrap();
        let mut out = vec![0f32; b * n];
        eval_f32(&p, &x, &mut out);
        let want: Vec<f64> = fc_f64(shape, &testing::to_f64(&x), &testing::to_f64(&w), &testing::to_f64(&bias))
            .into_iter().map(|y| testing::clamp_f64(y, activation)).collect();
        testing::assert_close_f32(&out, &want, 1e-5, 1e-5 * k as f64, "fully_connected f32");
    }
}

#[test]
fn bit_exact_reference_table() {
    assert_bit_exact(
        crate::ops::KernelTable::reference().fully_connected_i8,
        7,
        20,
    );
}

/// The 2×2-block kernel for cores without the DSP extension: odd and even rows and features,
/// batch 1 to 4, with and without a bias.
#[test]
fn bit_exact_pairs() {
    assert_bit_exact(super::pairs::eval_i8, 0x9A15, 400);
}

/// Hand-checked: x - zp = [0, 1, 2]; row 0: 0 + 2 + 6 + 10 = 18, × 0.5 = 9, + 3 = 12;
/// row 1: 0 + 0 + 2 - 5 = -3, × 1 = -3, + 3 = 0 (or 3 under ReLU).
#[test]
fn golden_two_outputs() {
    let weights = [1i8, 2, 3, -1, 0, 1];
    let bias = [10i32, -5];
    let mult = [1 << 30, 1 << 30];
    let shift = [0, 1];
    let mut p = FullyConnectedParams {
        shape: FullyConnectedShape {
            batch: 1,
            in_features: 3,
            out_features: 2,
        },
        weights: &weights,
        bias: Some(&bias),
        input_zero_point: 1,
        output_zero_point: 3,
        output_multiplier: &mult,
        output_shift: &shift,
        activation: ClampI8::NONE,
    };
    let input = [1i8, 2, 3];
    let mut out = [0i8; 2];
    check_i8(&p, 3, 2).unwrap();
    eval_i8(&p, &input, &mut out);
    assert_eq!(out, [12, 0]);
    p.activation = ClampI8::relu(3);
    eval_i8(&p, &input, &mut out);
    assert_eq!(out, [12, 3]);
}

/// Hand-checked edge values: (−128 − 127) · (−127) · 2 = 64 770 → × 2^-8 = 253.0 → saturates to 127.
#[test]
fn golden_saturation() {
    let weights = [-127i8, -127];
    let p = FullyConnectedParams {
        shape: FullyConnectedShape {
            batch: 1,
            in_features: 2,
            out_features: 1,
        },
        weights: &weights,
        bias: None,
        input_zero_point: 127,
        output_zero_point: 0,
        output_multiplier: &[1 << 30],
        output_shift: &[-7],
        activation: ClampI8::NONE,
    };
    let mut out = [0i8; 1];
    check_i8(&p, 2, 1).unwrap();
    eval_i8(&p, &[-128, -128], &mut out);
    assert_eq!(out, [127]);
}

#[test]
fn golden_f32() {
    let w = [1.0f32, -2.0, 0.5, 0.5];
    let p = FullyConnectedF32Params {
        shape: FullyConnectedShape {
            batch: 2,
            in_features: 2,
            out_features: 2,
        },
        weights: &w,
        bias: Some(&[1.0, -1.0]),
        activation: ClampF32::RELU,
    };
    let mut out = [0f32; 4];
    check_f32(&p, 4, 4).unwrap();
    eval_f32(&p, &[1.0, 1.0, 4.0, -2.0], &mut out);
    // row 0: 1 - 2 + 1 = 0, 0.5 + 0.5 - 1 = 0; row 1: 4 + 4 + 1 = 9, 2 - 1 - 1 = 0.
    assert_eq!(out, [0.0, 0.0, 9.0, 0.0]);
}

#[test]
fn check_rejects_bad_params() {
    let c = FcCase::random(&mut Rng::new(3));
    let good = c.params();
    let (i, o) = (c.input.len(), c.output_len());
    assert_eq!(check_i8(&good, i, o), Ok(()));
    assert!(check_i8(&good, i + 1, o).is_err());
    assert!(check_i8(&good, i, o + 1).is_err());
    let mut p = good;
    p.weights = &c.weights[1..];
    assert!(check_i8(&p, i, o).is_err());
    let mut p = good;
    p.output_shift = &c.shift[1..];
    assert!(check_i8(&p, i, o).is_err());
    let bad_shift: Vec<i32> = c.shift.iter().map(|_| 31).collect();
    let mut p = good;
    p.output_shift = &bad_shift;
    assert_eq!(check_i8(&p, i, o), Err(Error::QuantParamInvalid { op: 0 }));
    let mut p = good;
    p.input_zero_point = 128;
    assert!(check_i8(&p, i, o).is_err());
    let mut p = good;
    p.activation = ClampI8 { min: 5, max: 4 };
    assert!(check_i8(&p, i, o).is_err());
    let mut p = good;
    p.shape.batch = 0;
    assert!(check_i8(&p, 0, 0).is_err());
    let mut p = good;
    p.shape.in_features = crate::ops::MAX_ACC_DEPTH + 1;
    assert!(check_i8(&p, i, o).is_err());
}
