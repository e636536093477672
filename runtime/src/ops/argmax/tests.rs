use super::*;
use crate::ops::testing::{self, Rng};
use proptest::prelude::*;
use std::vec::Vec;

/// First index of the maximum along the axis, from real (dequantized) values.
fn argmax_f64(p: &ArgMaxParams, x: &[f64]) -> Vec<i32> {
    let (o, a, i) = (p.outer as usize, p.axis as usize, p.inner as usize);
    let mut y = Vec::new();
    for b in 0..o {
        for j in 0..i {
            let vals: Vec<f64> = (0..a).map(|k| x[(b * a + k) * i + j]).collect();
            let max = vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            y.push(vals.iter().position(|&v| v == max).unwrap() as i32);
        }
    }
    y
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(testing::CASES))]

    /// Exact: dequantization preserves order, and ties (frequent with int8) pick the first index.
    #[test]
    fn int8_and_f32_exact(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let p = ArgMaxParams { outer: rng.dim(4), axis: rng.dim(30), inner: rng.dim(5) };
        let n = (p.outer * p.axis * p.inner) as usize;
        let m = (p.outer * p.inner) as usize;
        let q = rng.i8_vec(n);
        check(&p, n, m).unwrap();
        let mut out = vec![0i32; m];
        eval_i8(&p, &q, &mut out);
        prop_assert_eq!(&out, &argmax_f64(&p, &testing::dequantize(&q, rng.scale(), rng.zero_point())));
        let x = rng.f32_vec(n, 1.0);
        eval_f32(&p, &x, &mut out);
        prop_assert_eq!(&out, &argmax_f64(&p, &testing::to_f64(&x)));
    }
}

#[test]
fn golden_argmax_ties_and_axis() {
    // [outer 1, axis 3, inner 2]: column 0 = [1, 5, 5] -> 1 (first of the tie); column 1 = [9, -3, 0] -> 0.
    let p = ArgMaxParams {
        outer: 1,
        axis: 3,
        inner: 2,
    };
    check(&p, 6, 2).unwrap();
    let mut out = [0i32; 2];
    eval_i8(&p, &[1, 9, 5, -3, 5, 0], &mut out);
    assert_eq!(out, [1, 0]);
    eval_f32(&p, &[1.0, f32::NAN, 5.0, -3.0, 5.0, 0.0], &mut out);
    assert_eq!(out, [1, 0]);
}

#[test]
fn check_rejects_bad_params() {
    let p = ArgMaxParams {
        outer: 2,
        axis: 3,
        inner: 2,
    };
    assert_eq!(check(&p, 12, 4), Ok(()));
    assert!(check(&p, 12, 6).is_err());
    assert!(check(&p, 11, 4).is_err());
    assert!(check(
        &ArgMaxParams {
            outer: 2,
            axis: 0,
            inner: 2
        },
        0,
        4
    )
    .is_err());
}
