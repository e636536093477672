use super::*;
use crate::ops::testing::{self, Rng};
use proptest::prelude::*;
use std::vec::Vec;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(testing::CASES))]

    /// ReLU is exact; ReLU6 is within 1 LSB (the code of 6.0 rounds ties to even, the f64
    /// oracle rounds them away from zero).
    #[test]
    fn int8_relu_relu6_vs_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let n = rng.dim(200) as usize;
        let x = rng.i8_vec(n);
        let (scale, zp) = (rng.scale() * 0.3, rng.zero_point());
        let real = testing::dequantize(&x, scale, zp);
        for (clamp, hi, lsb) in [(ClampI8::relu(zp), f64::INFINITY, 0), (ClampI8::relu6(scale as f32, zp), 6.0, 1)] {
            let p = ActivationParams { clamp };
            check_i8(&p, n, n).unwrap();
            let mut out = vec![0i8; n];
            eval_i8(&p, &x, &mut out);
            let want: Vec<i8> = real.iter().map(|&r| testing::quantize_f64(r.max(0.0).min(hi), scale, zp, ClampI8::NONE)).collect();
            testing::assert_within_lsb(&out, &want, lsb, "activation int8");
            let mut in_place = x.clone();
            eval_i8_in_place(&p, &mut in_place);
            prop_assert_eq!(&in_place, &out);
        }
    }

    #[test]
    fn f32_matches_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let n = rng.dim(100) as usize;
        let x = rng.f32_vec(n, 10.0);
        for clamp in [ClampF32::RELU, ClampF32::RELU6, ClampF32 { min: -1.5, max: 2.5 }] {
            let p = ActivationF32Params { clamp };
            check_f32(&p, n, n).unwrap();
            let mut out = vec![0f32; n];
            eval_f32(&p, &x, &mut out);
            let want: Vec<f64> = x.iter().map(|&v| testing::clamp_f64(v as f64, clamp)).collect();
            testing::assert_close_f32(&out, &want, 0.0, 0.0, "activation f32");
        }
    }
}

#[test]
fn golden_relu6() {
    // scale 0.05, zp -100: 0.0 -> -100, 6.0 -> 20.
    let p = ActivationParams {
        clamp: ClampI8::relu6(0.05, -100),
    };
    assert_eq!(p.clamp, ClampI8 { min: -100, max: 20 });
    let mut out = [0i8; 5];
    eval_i8(&p, &[-128, -100, 0, 20, 127], &mut out);
    assert_eq!(out, [-100, -100, 0, 20, 20]);
    let mut f = [0f32; 4];
    eval_f32(
        &ActivationF32Params {
            clamp: ClampF32::RELU6,
        },
        &[-1.0, 0.5, 6.5, f32::NAN],
        &mut f,
    );
    assert_eq!(&f[..3], &[0.0, 0.5, 6.0]);
    assert!(f[3].is_nan());
}

#[test]
fn check_rejects_bad_params() {
    let p = ActivationParams {
        clamp: ClampI8 { min: 3, max: 2 },
    };
    assert!(check_i8(&p, 4, 4).is_err());
    let p = ActivationParams {
        clamp: ClampI8::NONE,
    };
    assert!(check_i8(&p, 4, 5).is_err());
    assert!(check_i8(&p, 0, 0).is_err());
    let p = ActivationF32Params {
        clamp: ClampF32 {
            min: f32::NAN,
            max: 1.0,
        },
    };
    assert!(check_f32(&p, 4, 4).is_err());
}
