use super::*;
use crate::ops::add::tests::{broadcast_f64, random_broadcast};
use crate::ops::testing::{self, Rng};
use crate::ops::Dims;
use proptest::prelude::*;
use std::vec::Vec;

fn len(d: &Dims) -> usize {
    d.iter().map(|&x| x as usize).product()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(testing::CASES))]

    #[test]
    fn int8_within_1_lsb_of_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let shape = random_broadcast(&mut rng);
        let (s1, s2) = (rng.scale(), rng.scale());
        // Typical products reach 128 * 128 * s1 * s2; aim s_out around that / 64, sometimes smaller
        // than s1 * s2 (a multiplier above 1, positive shift).
        let s_out = if rng.one_in(5) { s1 * s2 * rng.log_uniform(0.3, 1.0) } else { s1 * s2 * rng.log_uniform(30.0, 500.0) };
        let (z1, z2, zo) = (rng.zero_point(), rng.zero_point(), rng.zero_point());
        let x1 = rng.i8_vec(len(&shape.input1));
        let x2 = rng.i8_vec(len(&shape.input2));
        let (m, sh) = testing::multiplier(s1 * s2 / s_out);
        let p = MulParams {
            shape,
            input1_zero_point: z1,
            input2_zero_point: z2,
            output_zero_point: zo,
            output_multiplier: m,
            output_shift: sh,
            activation: rng.clamp(zo),
        };
        check_i8(&p, x1.len(), x2.len(), len(&shape.output)).unwrap();
        let mut out = vec![0i8; len(&shape.output)];
        eval_i8(&p, &x1, &x2, &mut out);
        let want: Vec<i8> = broadcast_f64(&shape, &testing::dequantize(&x1, s1, z1), &testing::dequantize(&x2, s2, z2), |a, b| a * b)
            .iter().map(|&y| testing::quantize_f64(y, s_out, zo, p.activation)).collect();
        testing::assert_within_lsb(&out, &want, 1, "mul int8");
    }

    #[test]
    fn f32_matches_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let shape = random_broadcast(&mut rng);
        let x1 = rng.f32_vec(len(&shape.input1), 5.0);
        let x2 = rng.f32_vec(len(&shape.input2), 5.0);
        let p = MulF32Params { shape, activation: ClampF32::RELU };
        check_f32(&p, x1.len(), x2.len(), len(&shape.output)).unwrap();
        let mut out = vec![0f32; len(&shape.output)];
        eval_f32(&p, &x1, &x2, &mut out);
        let want: Vec<f64> = broadcast_f64(&shape, &testing::to_f64(&x1), &testing::to_f64(&x2), |a, b| (a * b).max(0.0));
        testing::assert_close_f32(&out, &want, 1e-6, 1e-6, "mul f32");
    }
}

/// Hand-checked: (x1 - 1) * (x2 + 2) * 0.25 + 3, per-element and with a broadcast scalar.
#[test]
fn golden_mul() {
    let mut p = MulParams {
        shape: BroadcastShape::same([1, 1, 1, 3]),
        input1_zero_point: 1,
        input2_zero_point: -2,
        output_zero_point: 3,
        output_multiplier: 1 << 30,
        output_shift: -1,
        activation: ClampI8::NONE,
    };
    check_i8(&p, 3, 3, 3).unwrap();
    let mut out = [0i8; 3];
    eval_i8(&p, &[5, -1, 127], &[2, 0, 127], &mut out);
    // 4*4/4+3 = 7; -2*2/4+3 = 2 (-1 + 3); 126*129/4 = 4063.5 -> saturates to 127.
    assert_eq!(out, [7, 2, 127]);
    p.shape.input2 = [1, 1, 1, 1];
    check_i8(&p, 3, 1, 3).unwrap();
    eval_i8(&p, &[5, -1, 3], &[6], &mut out);
    // x2 - zp = 8: 4*8/4 + 3 = 11; -2*8/4 + 3 = -1; 2*8/4 + 3 = 7.
    assert_eq!(out, [11, -1, 7]);
}

#[test]
fn check_rejects_bad_params() {
    let mut p = MulParams {
        shape: BroadcastShape::same([1, 2, 2, 3]),
        input1_zero_point: 0,
        input2_zero_point: 0,
        output_zero_point: 0,
        output_multiplier: 1 << 30,
        output_shift: 0,
        activation: ClampI8::NONE,
    };
    assert_eq!(check_i8(&p, 12, 12, 12), Ok(()));
    assert!(check_i8(&p, 12, 11, 12).is_err());
    p.output_multiplier = -1;
    assert!(check_i8(&p, 12, 12, 12).is_err());
    p.output_multiplier = 1 << 30;
    p.input2_zero_point = -129;
    assert!(check_i8(&p, 12, 12, 12).is_err());
}

/// The AVX2 Mul gives the reference's bytes on random shapes (contiguous, scalar and row/column
/// broadcasts, large outputs times one value) and values, with zero points, multipliers and shifts at their extremes.
#[test]
fn bit_exact_avx2_mul() {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        let mut rng = Rng::new(0x3A7);
        for case in 0..600 {
            // Every fourth case: a large output times one value (the 256-entry table path).
            let shape = if case % 4 == 3 {
                let out = [1, rng.range(1, 3) as u32, rng.range(30, 60) as u32, 71];
                times_one_value(&mut rng, out)
            } else {
                crate::ops::add::tests::random_simd_shape(&mut rng)
            };
            let requant = match rng.range(0, 4) {
                0 => (i32::MAX, rng.range(-31, 30)),
                1 => (0, 0),
                2 => ((rng.next_u64() >> 33) as i32, rng.range(-31, 30)),
                _ => testing::multiplier(rng.log_uniform(1e-4, 2.0)),
            };
            let p = random_params(&mut rng, shape, requant);
            let x1 = rng.i8_vec(len(&shape.input1));
            let x2 = rng.i8_vec(len(&shape.input2));
            let n = len(&shape.output);
            check_i8(&p, x1.len(), x2.len(), n).unwrap();
            let mut want = vec![0i8; n];
            let mut got = vec![0i8; n];
            reference::eval_i8(&p, &x1, &x2, &mut want);
            avx2::eval_i8_detected(&p, &x1, &x2, &mut got);
            assert_eq!(got, want, "case {case}: {p:?}");
        }
        return;
    }
    println!("skipped: mul/avx2");
}

/// Random Mul cases through `dsp::eval_i8` and the reference, output bytes compared: the SIMD
/// shapes (contiguous rows, either input a scalar, row and column broadcasts, the small random
/// broadcasts of either input) and every fourth case a large output times one value (the
/// attention score's scale); multipliers from real scales or at their extremes (0, `i32::MAX`,
/// any shift in `[-31, 30]`: shifts above 13 take the reference fallback), random clamps.
#[test]
fn bit_exact_dsp() {
    let mut rng = Rng::new(0xD5F3);
    let cases = if cfg!(miri) { 40 } else { 4000 };
    for case in 0..cases {
        let shape = if case % 4 == 3 {
            let out = [
                1,
                rng.range(1, 3) as u32,
                rng.range(1, 40) as u32,
                rng.range(1, 90) as u32,
            ];
            times_one_value(&mut rng, out)
        } else {
            crate::ops::add::tests::random_simd_shape(&mut rng)
        };
        let requant = match rng.range(0, 5) {
            0 => (i32::MAX, rng.range(-31, 30)),
            1 => (0, rng.range(-31, 30)),
            2 => ((rng.next_u64() >> 33) as i32, rng.range(-31, 30)),
            3 => ((rng.next_u64() >> 33) as i32, rng.range(10, 18)),
            _ => testing::multiplier(rng.log_uniform(1e-5, 4.0)),
        };
        let p = random_params(&mut rng, shape, requant);
        let x1 = rng.i8_vec(len(&shape.input1));
        let x2 = rng.i8_vec(len(&shape.input2));
        assert_dsp_matches(&p, &x1, &x2, case);
    }
}

/// Every pair of int8 inputs through `dsp::eval_i8` (and every byte times extreme values, either
/// input a single value: the tabled path) for parameter sets at the edges of the valid range: zero points -128 and 127, multipliers 0, 1, 2^30 and `i32::MAX`, shifts from -31
/// to 30 (around 13 and 14, where the fast path ends), and clamps that cut or not.
#[test]
fn bit_exact_dsp_edges() {
    let x1: Vec<i8> = (0..65536).map(|k| (k & 0xFF) as u8 as i8).collect();
    let x2: Vec<i8> = (0..65536).map(|k| (k >> 8) as u8 as i8).collect();
    let shape = BroadcastShape::same([1, 1, 256, 256]);
    let mut case = 0;
    for (z1, z2, zo) in [
        (-128, 127, 0),
        (127, -128, -128),
        (127, 127, 127),
        (0, 0, 5),
    ] {
        for m in [0, 1, 1 << 30, i32::MAX] {
            for shift in [-31, -20, -1, 0, 1, 13, 14, 15, 16, 30] {
                let activation = if case % 3 == 0 {
                    ClampI8 { min: -7, max: 100 }
                } else {
                    ClampI8::NONE
                };
                let p = MulParams {
                    shape,
                    input1_zero_point: z1,
                    input2_zero_point: z2,
                    output_zero_point: zo,
                    output_multiplier: m,
                    output_shift: shift,
                    activation,
                };
                assert_dsp_matches(&p, &x1, &x2, case);
                // Every byte (twice) times one value, either input the value: the tabled path.
                for v in [-128, -1, 0, 1, 127] {
                    let n = 512;
                    let out = [1, 1, 1, n as u32];
                    let one = [1, 1, 1, 1];
                    let x = &x1[..n];
                    let q = MulParams {
                        shape: BroadcastShape {
                            input1: out,
                            input2: one,
                            output: out,
                        },
                        ..p
                    };
                    assert_dsp_matches(&q, x, &[v], case);
                    let q = MulParams {
                        shape: BroadcastShape {
                            input1: one,
                            input2: out,
                            output: out,
                        },
                        ..p
                    };
                    assert_dsp_matches(&q, &[v], x, case);
                }
                case += 1;
            }
        }
    }
}

/// Mul parameters for `shape` with the output requantization `(multiplier, shift)`, random
/// zero points (the output's drawn first) and a random clamp around the output zero point.
fn random_params(rng: &mut Rng, shape: BroadcastShape, requant: (i32, i32)) -> MulParams {
    let zo = rng.zero_point();
    MulParams {
        shape,
        input1_zero_point: rng.zero_point(),
        input2_zero_point: rng.zero_point(),
        output_zero_point: zo,
        output_multiplier: requant.0,
        output_shift: requant.1,
        activation: rng.clamp(zo),
    }
}

/// Output shape `out` times one value, the value as input 1 or 2 at random.
fn times_one_value(rng: &mut Rng, out: [u32; 4]) -> BroadcastShape {
    let one = [1, 1, 1, 1];
    let (input1, input2) = if rng.one_in(2) {
        (out, one)
    } else {
        (one, out)
    };
    BroadcastShape {
        input1,
        input2,
        output: out,
    }
}

/// `dsp::eval_i8` writes the reference's bytes for `p` and these inputs.
fn assert_dsp_matches(p: &MulParams, x1: &[i8], x2: &[i8], case: usize) {
    let n = len(&p.shape.output);
    check_i8(p, x1.len(), x2.len(), n).unwrap();
    let mut want = vec![0i8; n];
    let mut got = vec![0x55i8; n];
    reference::eval_i8(p, x1, x2, &mut want);
    dsp::eval_i8(p, x1, x2, &mut got);
    assert_eq!(got, want, "case {case}: {p:?}");
}
