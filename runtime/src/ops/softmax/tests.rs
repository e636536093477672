use super::reference::exp_f32;
use super::*;
use crate::ops::testing::{self, Rng};
use proptest::prelude::*;
use std::vec::Vec;

/// Exact softmax of dequantized inputs, quantized at scale 1/256, zero point -128.
fn oracle_i8(x: &[i8], depth: usize, scale: f64, beta: f64) -> Vec<i8> {
    let mut y = Vec::new();
    for row in x.chunks(depth) {
        let real: Vec<f64> = row.iter().map(|&v| v as f64 * scale * beta).collect();
        let max = real.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = real.iter().map(|&v| (v - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        y.extend(e.iter().map(|&v| {
            testing::quantize_f64(
                v / sum,
                1.0 / 256.0,
                OUTPUT_ZERO_POINT,
                crate::ops::ClampI8::NONE,
            )
        }));
    }
    y
}

fn run_i8(rng: &mut Rng, outer: u32, depth: u32) {
    let scale = rng.log_uniform(1e-3, 0.3);
    let beta = if rng.one_in(3) {
        rng.log_uniform(0.1, 3.0)
    } else {
        1.0
    };
    let table = exp_table(scale, beta);
    let p = SoftmaxParams {
        shape: SoftmaxShape { outer, depth },
        table: &table,
    };
    let n = (outer * depth) as usize;
    let x = rng.i8_vec(n);
    check_i8(&p, n, n).unwrap();
    let mut out = vec![0i8; n];
    eval_i8(&p, &x, &mut out);
    testing::assert_within_lsb(
        &out,
        &oracle_i8(&x, depth as usize, scale, beta),
        1,
        "softmax int8",
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(testing::CASES))]

    /// The documented bound: within 1 LSB of exact.
    #[test]
    fn int8_within_1_lsb_of_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (outer, depth) = (rng.dim(4), if rng.one_in(4) { rng.dim(2000) } else { rng.dim(40) });
        run_i8(&mut rng, outer, depth);
    }

    #[test]
    fn f32_matches_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let shape = SoftmaxShape { outer: rng.dim(4), depth: rng.dim(50) };
        let n = (shape.outer * shape.depth) as usize;
        let x = rng.f32_vec(n, 20.0);
        let beta = rng.log_uniform(0.1, 2.0) as f32;
        let p = SoftmaxF32Params { shape, beta };
        check_f32(&p, n, n).unwrap();
        let mut out = vec![0f32; n];
        eval_f32(&p, &x, &mut out);
        let mut want = Vec::new();
        for row in x.chunks(shape.depth as usize) {
            let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let e: Vec<f64> = row.iter().map(|&v| (beta as f64 * (v as f64 - max)).exp()).collect();
            let s: f64 = e.iter().sum();
            want.extend(e.iter().map(|v| v / s));
        }
        testing::assert_close_f32(&out, &want, 1e-5, 1e-7, "softmax f32");
    }

    #[test]
    fn exp_f32_relative_error_below_1e_6(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        for _ in 0..200 {
            let x = ((rng.unit() * 2.0 - 1.0) * 87.0) as f32;
            let want = (x as f64).exp();
            let got = exp_f32(x) as f64;
            prop_assert!(((got - want) / want).abs() < 1e-6, "exp({}) = {} vs {}", x, got, want);
        }
    }
}

/// The bound at the largest accepted depth.
#[test]
fn int8_within_1_lsb_at_max_depth() {
    let mut rng = Rng::new(99);
    run_i8(&mut rng, 1, MAX_DEPTH);
}

#[test]
fn golden_exp_f32_edges() {
    assert_eq!(exp_f32(0.0), 1.0);
    assert!(exp_f32(f32::NAN).is_nan());
    assert_eq!(exp_f32(100.0), f32::INFINITY);
    assert_eq!(exp_f32(-200.0), 0.0);
    // Subnormal range: within one subnormal step (2^-149 ≈ 1.4e-45) of exact.
    let sub = exp_f32(-100.0) as f64;
    assert!((sub - (-100f64).exp()).abs() <= 1.5e-45, "{sub}");
    assert!(((exp_f32(88.0) as f64) / 88f64.exp() - 1.0).abs() < 1e-6);
}

/// Hand-checked: two equal values -> 0.5 each = 128/256 -> 0; one dominant value
/// (difference 255 at scale 0.1: e^-25.5 ≈ 8e-12) -> 127 (clamped from 128) and -128.
#[test]
fn golden_softmax_i8() {
    let table = exp_table(0.1, 1.0);
    let p = SoftmaxParams {
        shape: SoftmaxShape { outer: 2, depth: 2 },
        table: &table,
    };
    check_i8(&p, 4, 4).unwrap();
    let mut out = [0i8; 4];
    eval_i8(&p, &[5, 5, 127, -128], &mut out);
    assert_eq!(out, [0, 0, 127, -128]);
    let pf = SoftmaxF32Params {
        shape: SoftmaxShape { outer: 1, depth: 2 },
        beta: 1.0,
    };
    let mut outf = [0f32; 2];
    eval_f32(&pf, &[0.0, 2f32.ln()], &mut outf);
    assert!((outf[0] - 1.0 / 3.0).abs() < 1e-6 && (outf[1] - 2.0 / 3.0).abs() < 1e-6);
}

#[test]
fn check_rejects_bad_params() {
    let mut table = exp_table(0.1, 1.0);
    let p = SoftmaxParams {
        shape: SoftmaxShape { outer: 1, depth: 4 },
        table: &table,
    };
    assert_eq!(check_i8(&p, 4, 4), Ok(()));
    assert!(check_i8(&p, 4, 5).is_err());
    let p = SoftmaxParams {
        shape: SoftmaxShape { outer: 1, depth: 4 },
        table: &table[..255],
    };
    assert!(check_i8(&p, 4, 4).is_err());
    let p = SoftmaxParams {
        shape: SoftmaxShape {
            outer: 1,
            depth: MAX_DEPTH + 1,
        },
        table: &table,
    };
    assert!(check_i8(&p, (MAX_DEPTH + 1) as usize, (MAX_DEPTH + 1) as usize).is_err());
    table[0] = 0;
    let p = SoftmaxParams {
        shape: SoftmaxShape { outer: 1, depth: 4 },
        table: &table,
    };
    assert!(check_i8(&p, 4, 4).is_err());
    let pf = SoftmaxF32Params {
        shape: SoftmaxShape { outer: 1, depth: 4 },
        beta: f32::NAN,
    };
    assert!(check_f32(&pf, 4, 4).is_err());
}
