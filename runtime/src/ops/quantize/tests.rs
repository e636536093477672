use super::*;
use crate::ops::testing::{self, Rng};
use crate::ops::ClampI8;
use proptest::prelude::*;
use std::vec::Vec;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(testing::CASES))]

    /// Bit-exact to ONNX's formula evaluated with std's f32 `round_ties_even`, and within 1 LSB
    /// of the f64 quantization (they differ only where x / scale rounds differently in f32).
    #[test]
    fn quantize_matches_onnx_and_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let p = QuantizeParams { scale: rng.scale() as f32, zero_point: rng.zero_point() };
        let n = rng.dim(300) as usize;
        let mut x = rng.f32_vec(n, 200.0 * p.scale as f64);
        // Exact ties (k + 0.5) * scale, to exercise half-to-even.
        for v in x.iter_mut().step_by(7) {
            *v = (rng.range(-300, 300) as f32 + 0.5) * p.scale;
        }
        check(&p, n, n).unwrap();
        let mut out = vec![0i8; n];
        eval_quantize(&p, &x, &mut out);
        let onnx: Vec<i8> = x.iter().map(|&v| ((v / p.scale).round_ties_even() + p.zero_point as f32).clamp(-128.0, 127.0) as i8).collect();
        prop_assert_eq!(&out, &onnx);
        let f64q: Vec<i8> = x.iter().map(|&v| testing::quantize_f64(v as f64, p.scale as f64, p.zero_point, ClampI8::NONE)).collect();
        testing::assert_within_lsb(&out, &f64q, 1, "quantize");
    }

    #[test]
    fn dequantize_matches_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let p = QuantizeParams { scale: rng.scale() as f32, zero_point: rng.zero_point() };
        let n = rng.dim(300) as usize;
        let q = rng.i8_vec(n);
        check(&p, n, n).unwrap();
        let mut out = vec![0f32; n];
        eval_dequantize(&p, &q, &mut out);
        testing::assert_close_f32(&out, &testing::dequantize(&q, p.scale as f64, p.zero_point), 1e-7, 0.0, "dequantize");
        // Round trip: quantize(dequantize(q)) == q.
        let mut back = vec![0i8; n];
        eval_quantize(&p, &out, &mut back);
        prop_assert_eq!(back, q);
    }
}

#[test]
fn golden_quantize_dequantize() {
    let p = QuantizeParams {
        scale: 0.5,
        zero_point: -1,
    };
    let mut q = [0i8; 6];
    eval_quantize(&p, &[0.0, 0.25, 0.75, -1000.0, 1000.0, f32::NAN], &mut q);
    // 0 -> -1; 0.5 -> 0 (even) -> -1; 1.5 -> 2 -> 1; saturate; saturate; NaN -> zero point.
    assert_eq!(q, [-1, -1, 1, -128, 127, -1]);
    let mut x = [0f32; 3];
    eval_dequantize(&p, &[-1, 127, -128], &mut x);
    assert_eq!(x, [0.0, 64.0, -63.5]);
}

#[test]
fn check_rejects_bad_params() {
    assert!(check(
        &QuantizeParams {
            scale: 0.0,
            zero_point: 0
        },
        4,
        4
    )
    .is_err());
    assert!(check(
        &QuantizeParams {
            scale: f32::INFINITY,
            zero_point: 0
        },
        4,
        4
    )
    .is_err());
    assert!(check(
        &QuantizeParams {
            scale: 1.0,
            zero_point: 200
        },
        4,
        4
    )
    .is_err());
    assert!(check(
        &QuantizeParams {
            scale: 1.0,
            zero_point: 0
        },
        4,
        3
    )
    .is_err());
    assert_eq!(
        check(
            &QuantizeParams {
                scale: 1.0,
                zero_point: 0
            },
            4,
            4
        ),
        Ok(())
    );
}

/// Random lengths (full 32- and 64-value blocks and a remainder), scales and zero points, with
/// values spread far beyond the int8 range, exact ties, ±0, ±inf, NaN, huge and subnormal
/// magnitudes.
fn random_quantize_case(rng: &mut Rng) -> (QuantizeParams, Vec<f32>) {
    let p = QuantizeParams {
        scale: rng.scale() as f32,
        zero_point: rng.zero_point(),
    };
    let n = rng.range(1, 300) as usize;
    let mut x = rng.f32_vec(n, 300.0 * p.scale as f64);
    for v in x.iter_mut().step_by(5) {
        *v = (rng.range(-700, 700) as f32 + 0.5) * p.scale;
    }
    let specials = [
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        3.0e38,
        -3.0e38,
        1.0e-40,
    ];
    for v in x.iter_mut().skip(3).step_by(11) {
        *v = specials[rng.range(0, specials.len() as i32 - 1) as usize];
    }
    (p, x)
}

/// The Cortex-M4F Quantize gives the reference's bytes on the random cases, on every half-integer
/// tie in `[-300, 300]`, and on values around `2^22`, `2^23` and `2^31` (where its rounding hands
/// over to the reference's, and the saturation and the zero-point addition meet their edges),
/// for extreme zero points; and its rounding equals `round_ties_even` on random bit patterns.
#[test]
fn bit_exact_dsp_quantize() {
    let mut rng = Rng::new(0xD5A7);
    for case in 0..2000 {
        let (p, x) = random_quantize_case(&mut rng);
        assert_quantize_matches(&p, &x, case);
    }
    let mut x: Vec<f32> = (-600..=600).map(|k| k as f32 * 0.5).collect();
    for e in [23, 24, 31, 32] {
        let b = (1u64 << e) as f32;
        for v in [
            b,
            -b,
            b * 1.5,
            -b * 1.5,
            b - 0.5,
            -(b - 0.5),
            b + 1.0,
            -(b + 1.0),
        ] {
            x.push(v);
        }
    }
    for (case, zero_point) in [-128, -1, 0, 1, 127].into_iter().enumerate() {
        for scale in [1.0, 0.5, 3.0, 1.0e-3] {
            let p = QuantizeParams { scale, zero_point };
            let scaled: Vec<f32> = x.iter().map(|&v| v * scale).collect();
            assert_quantize_matches(&p, &scaled, 2000 + case);
        }
    }
}

/// The DSP Quantize's rounding equals `round_ties_even` on random bit patterns (every exponent,
/// NaNs and infinities included) and on random values below 2^24 in magnitude.
#[test]
fn dsp_rounding_matches_round_ties_even() {
    let mut rng = Rng::new(0xD5A8);
    for _ in 0..200_000 {
        let bits = f32::from_bits(rng.next_u64() as u32);
        let small = (rng.next_u64() as i64 >> 39) as f32 / (1 << rng.range(0, 8)) as f32;
        for v in [bits, small] {
            assert_eq!(
                super::dsp::round_half_even(v),
                crate::quant::round_ties_even(v),
                "{v:e}"
            );
        }
    }
}

/// `dsp::eval_quantize` writes the reference's bytes for `p` and `x`.
fn assert_quantize_matches(p: &QuantizeParams, x: &[f32], case: usize) {
    let n = x.len();
    check(p, n, n).unwrap();
    let mut want = vec![0i8; n];
    let mut got = vec![0x55i8; n];
    super::reference::eval_quantize(p, x, &mut want);
    super::dsp::eval_quantize(p, x, &mut got);
    assert_eq!(got, want, "case {case}: {p:?}");
}

/// The AVX2 and AVX-512 Quantizes give the reference's bytes on the random cases.
#[test]
fn bit_exact_avx2_quantize() {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        let mut rng = Rng::new(0x9A2);
        for case in 0..300 {
            let (p, x) = random_quantize_case(&mut rng);
            let n = x.len();
            check(&p, n, n).unwrap();
            let mut want = vec![0i8; n];
            let mut got = vec![0i8; n];
            super::reference::eval_quantize(&p, &x, &mut want);
            super::avx2::eval_quantize_detected(&p, &x, &mut got);
            assert_eq!(got, want, "case {case}: {p:?}");
            if super::avx512::detected() {
                got.fill(0);
                super::avx512::eval_quantize_detected(&p, &x, &mut got);
                assert_eq!(got, want, "avx512, case {case}: {p:?}");
            }
        }
        if !super::avx512::detected() {
            println!("skipped: quantize/avx512 (CPU lacks AVX512F)");
        }
        return;
    }
    println!("skipped: quantize/avx2");
}

/// Random lengths (8-value blocks and a remainder), scales and zero points at their extremes,
/// every int8 value: the AVX2 Dequantize gives the reference's bits.
#[test]
fn bit_exact_avx2_dequantize() {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        let mut rng = Rng::new(0xDE0);
        for case in 0..300 {
            let scale = match rng.range(0, 3) {
                0 => f32::MIN_POSITIVE,
                1 => 3.0e38,
                _ => rng.scale() as f32,
            };
            let p = QuantizeParams {
                scale,
                zero_point: rng.zero_point(),
            };
            let n = rng.range(1, 300) as usize;
            let x = rng.i8_vec(n);
            check(&p, n, n).unwrap();
            let mut want = vec![0f32; n];
            let mut got = vec![0f32; n];
            super::reference::eval_dequantize(&p, &x, &mut want);
            super::avx2::eval_dequantize_detected(&p, &x, &mut got);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "case {case}: {p:?}");
        }
        return;
    }
    println!("skipped: dequantize/avx2");
}
