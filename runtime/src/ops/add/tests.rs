use super::*;
use crate::ops::testing::{self, Rng};
use crate::ops::Dims;
use proptest::prelude::*;
use std::vec::Vec;

/// Random broadcast shapes: each input dimension is the output's or 1.
pub(crate) fn random_broadcast(rng: &mut Rng) -> BroadcastShape {
    let output: Dims = [rng.dim(2), rng.dim(4), rng.dim(5), rng.dim(9)];
    let pick = |rng: &mut Rng| output.map(|d| if rng.one_in(3) { 1 } else { d });
    let input1 = pick(rng);
    let input2 = pick(rng);
    if rng.one_in(3) {
        BroadcastShape::same(output)
    } else {
        BroadcastShape {
            input1,
            input2,
            output: [0, 1, 2, 3].map(|k| input1[k].max(input2[k])),
        }
    }
}

/// Index of each input element for every output element, computed from coordinates.
pub(crate) fn broadcast_f64(
    s: &BroadcastShape,
    a: &[f64],
    b: &[f64],
    f: impl Fn(f64, f64) -> f64,
) -> Vec<f64> {
    let idx = |d: &Dims, c: [usize; 4]| {
        let c: Vec<usize> = (0..4).map(|k| if d[k] == 1 { 0 } else { c[k] }).collect();
        ((c[0] * d[1] as usize + c[1]) * d[2] as usize + c[2]) * d[3] as usize + c[3]
    };
    let o = s.output.map(|d| d as usize);
    let mut y = Vec::new();
    for i in 0..o[0] {
        for j in 0..o[1] {
            for k in 0..o[2] {
                for l in 0..o[3] {
                    y.push(f(
                        a[idx(&s.input1, [i, j, k, l])],
                        b[idx(&s.input2, [i, j, k, l])],
                    ));
                }
            }
        }
    }
    y
}

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
        let s_out = rng.log_uniform(s1.max(s2) / 4.0, s1.max(s2) * 4.0);
        let (z1, z2, zo) = (rng.zero_point(), rng.zero_point(), rng.zero_point());
        let x1 = rng.i8_vec(len(&shape.input1));
        let x2 = rng.i8_vec(len(&shape.input2));
        let p = AddParams {
            shape,
            input1_zero_point: z1,
            input2_zero_point: z2,
            output_zero_point: zo,
            requant: AddRequant::new(s1, s2, s_out).unwrap(),
            activation: rng.clamp(zo),
        };
        check_i8(&p, x1.len(), x2.len(), len(&shape.output)).unwrap();
        let mut out = vec![0i8; len(&shape.output)];
        eval_i8(&p, &x1, &x2, &mut out);
        let want: Vec<i8> = broadcast_f64(&shape, &testing::dequantize(&x1, s1, z1), &testing::dequantize(&x2, s2, z2), |a, b| a + b)
            .iter().map(|&y| testing::quantize_f64(y, s_out, zo, p.activation)).collect();
        testing::assert_within_lsb(&out, &want, 1, "add int8");
    }

    #[test]
    fn f32_matches_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let shape = random_broadcast(&mut rng);
        let x1 = rng.f32_vec(len(&shape.input1), 5.0);
        let x2 = rng.f32_vec(len(&shape.input2), 5.0);
        let p = AddF32Params { shape, activation: ClampF32::NONE };
        check_f32(&p, x1.len(), x2.len(), len(&shape.output)).unwrap();
        let mut out = vec![0f32; len(&shape.output)];
        eval_f32(&p, &x1, &x2, &mut out);
        let want = broadcast_f64(&shape, &testing::to_f64(&x1), &testing::to_f64(&x2), |a, b| a + b);
        testing::assert_close_f32(&out, &want, 1e-6, 1e-6, "add f32");
    }
}

/// Hand-checked: s1 = 0.5, s2 = 0.25, s_out = 1, zero points 0 -> y = x1/2 + x2/4, rounded.
/// Broadcasting a [1, 1, 1, 2] row over [1, 1, 2, 2].
#[test]
fn golden_scales_and_broadcast() {
    let p = AddParams {
        shape: BroadcastShape {
            input1: [1, 1, 2, 2],
            input2: [1, 1, 1, 2],
            output: [1, 1, 2, 2],
        },
        input1_zero_point: 0,
        input2_zero_point: 0,
        output_zero_point: 0,
        requant: AddRequant::new(0.5, 0.25, 1.0).unwrap(),
        activation: ClampI8::NONE,
    };
    check_i8(&p, 4, 2, 4).unwrap();
    let mut out = [0i8; 4];
    eval_i8(&p, &[10, -10, 127, -128], &[8, -8], &mut out);
    // 5 + 2 = 7; -5 - 2 = -7; 63.5 + 2 = 65.5 -> 66; -64 - 2 = -66.
    assert_eq!(out, [7, -7, 66, -66]);
}

#[test]
fn check_rejects_bad_params() {
    let mut p = AddParams {
        shape: BroadcastShape {
            input1: [1, 1, 2, 3],
            input2: [1, 1, 1, 3],
            output: [1, 1, 2, 3],
        },
        input1_zero_point: 0,
        input2_zero_point: 0,
        output_zero_point: 0,
        requant: AddRequant::new(0.5, 0.25, 1.0).unwrap(),
        activation: ClampI8::NONE,
    };
    assert_eq!(check_i8(&p, 6, 3, 6), Ok(()));
    assert!(check_i8(&p, 6, 6, 6).is_err());
    p.shape.input2 = [1, 1, 2, 2];
    assert!(check_i8(&p, 6, 4, 6).is_err());
    p.shape.input2 = [1, 1, 1, 3];
    p.requant.input1.1 = 1;
    assert!(check_i8(&p, 6, 3, 6).is_err());
    assert_eq!(AddRequant::new(0.0, 1.0, 1.0), None);
}

/// Random int8 Add params with multipliers, shifts and zero points at and near their extremes:
/// input shifts in `[-31, 0]` (0 and -31 often), output shifts in `[-31, 30]`, multipliers
/// anywhere in `[0, 2^31 - 1]` (0 and `i32::MAX` often).
pub(crate) fn random_extreme_params(rng: &mut Rng, shape: BroadcastShape) -> AddParams {
    let multiplier = |rng: &mut Rng| match rng.range(0, 5) {
        0 => i32::MAX,
        1 => 0,
        2 => 1 << 30,
        _ => (rng.next_u64() >> 33) as i32,
    };
    let input_shift = |rng: &mut Rng| match rng.range(0, 3) {
        0 => 0,
        1 => -31,
        _ => rng.range(-31, 0),
    };
    let zo = rng.zero_point();
    let requant = if rng.one_in(3) {
        let (s1, s2) = (rng.scale(), rng.scale());
        AddRequant::new(s1, s2, rng.log_uniform(s1.max(s2) / 4.0, s1.max(s2) * 4.0)).unwrap()
    } else {
        AddRequant {
            input1: (multiplier(rng), input_shift(rng)),
            input2: (multiplier(rng), input_shift(rng)),
            output: (multiplier(rng), rng.range(-31, 30)),
        }
    };
    AddParams {
        shape,
        input1_zero_point: rng.zero_point(),
        input2_zero_point: rng.zero_point(),
        output_zero_point: zo,
        requant,
        activation: rng.clamp(zo),
    }
}

/// Shapes for the SIMD paths: the small random broadcasts, long contiguous rows (32- and
/// 8-wide blocks plus tails), one input a single value, and row/column broadcasts.
pub(crate) fn random_simd_shape(rng: &mut Rng) -> BroadcastShape {
    let rows = rng.range(1, 4) as u32;
    let cols = rng.range(1, 150) as u32;
    let out = [1, rng.range(1, 2) as u32, rows, cols];
    match rng.range(0, 5) {
        0 => random_broadcast(rng),
        1 => BroadcastShape::same(out),
        2 => BroadcastShape {
            input1: out,
            input2: [1, 1, 1, 1],
            output: out,
        },
        3 => BroadcastShape {
            input1: [1, 1, 1, cols],
            input2: out,
            output: out,
        },
        4 => BroadcastShape {
            input1: out,
            input2: [1, out[1], rows, 1],
            output: out,
        },
        _ => BroadcastShape {
            input1: [1, 1, rows, 1],
            input2: [1, out[1], 1, cols],
            output: out,
        },
    }
}

/// The AVX2 and AVX-512 Adds give the reference's bytes on random shapes (contiguous, scalar and row/column
/// broadcasts, large outputs with a repeated row) and values, with zero points, multipliers and shifts at their extremes.
#[test]
fn bit_exact_avx2_add() {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        let mut rng = Rng::new(0xADD2);
        for case in 0..600 {
            // Every fourth case: a large output with a repeated row of either input (the
            // cached-row path), rows sometimes longer than the cache.
            let shape = if case % 4 == 3 {
                let cols = if rng.one_in(4) {
                    2100
                } else {
                    rng.range(71, 150) as u32
                };
                let out = [1, rng.range(2, 3) as u32, rng.range(30, 60) as u32, cols];
                let row = [1, 1, 1, cols];
                if rng.one_in(2) {
                    BroadcastShape {
                        input1: out,
                        input2: row,
                        output: out,
                    }
                } else {
                    BroadcastShape {
                        input1: row,
                        input2: out,
                        output: out,
                    }
                }
            } else {
                random_simd_shape(&mut rng)
            };
            let p = random_extreme_params(&mut rng, shape);
            let x1 = rng.i8_vec(len(&shape.input1));
            let x2 = rng.i8_vec(len(&shape.input2));
            let n = len(&shape.output);
            check_i8(&p, x1.len(), x2.len(), n).unwrap();
            let mut want = vec![0i8; n];
            let mut got = vec![0i8; n];
            reference::eval_i8(&p, &x1, &x2, &mut want);
            // SAFETY: AVX2 detected above; `check_i8` passed.
            unsafe { avx2::eval_i8(&p, &x1, &x2, &mut got) };
            assert_eq!(got, want, "case {case}: {p:?}");
            if avx512::detected() {
                got.fill(0);
                avx512::eval_i8_detected(&p, &x1, &x2, &mut got);
                assert_eq!(got, want, "avx512, case {case}: {p:?}");
            }
        }
    }
}

/// Every pair of int8 inputs, through the contiguous paths (AVX2 and AVX-512), for a few extreme parameter sets.
#[test]
fn bit_exact_avx2_add_all_pairs() {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        let x1: Vec<i8> = (0..65536).map(|k| (k & 0xFF) as u8 as i8).collect();
        let x2: Vec<i8> = (0..65536).map(|k| (k >> 8) as u8 as i8).collect();
        let shape = BroadcastShape::same([1, 1, 256, 256]);
        let mut rng = Rng::new(0xADD3);
        for case in 0..12 {
            let p = random_extreme_params(&mut rng, shape);
            check_i8(&p, x1.len(), x2.len(), x1.len()).unwrap();
            let mut want = vec![0i8; x1.len()];
            let mut got = vec![0i8; x1.len()];
            reference::eval_i8(&p, &x1, &x2, &mut want);
            // SAFETY: AVX2 detected above; `check_i8` passed.
            unsafe { avx2::eval_i8(&p, &x1, &x2, &mut got) };
            assert_eq!(got, want, "case {case}: {p:?}");
            if avx512::detected() {
                got.fill(0);
                avx512::eval_i8_detected(&p, &x1, &x2, &mut got);
                assert_eq!(got, want, "avx512, case {case}: {p:?}");
            }
        }
    }
}

/// The AVX-512 f32 Add and Mul give the reference's bits on random shapes (the SIMD shapes,
/// attention's mask add and scalar scale) and values with ±0, ±inf and NaN, under no clamp,
/// ReLU, ReLU6 and random clamps (bounds possibly equal, or ±0).
#[test]
fn bit_exact_avx512_f32_add_mul() {
    #[cfg(target_arch = "x86_64")]
    if avx512::detected() {
        let mut rng = Rng::new(0xADD5);
        for case in 0..800 {
            let shape = match case % 5 {
                0 => BroadcastShape {
                    input1: [1, 4, 64, 64],
                    input2: [1, 1, 64, 64],
                    output: [1, 4, 64, 64],
                },
                1 => {
                    let out = [rng.dim(2), rng.dim(4), rng.dim(20), rng.dim(70)];
                    BroadcastShape {
                        input1: out,
                        input2: [1, 1, 1, 1],
                        output: out,
                    }
                }
                _ => random_simd_shape(&mut rng),
            };
            let amp = rng.log_uniform(0.1, 1e3);
            let mut x1 = rng.f32_vec(len(&shape.input1), amp);
            let mut x2 = rng.f32_vec(len(&shape.input2), amp);
            if rng.one_in(3) {
                let specials = [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN];
                for x in [&mut x1, &mut x2] {
                    for v in x.iter_mut().skip(rng.range(0, 4) as usize).step_by(5) {
                        *v = specials[rng.range(0, specials.len() as i32 - 1) as usize];
                    }
                }
            }
            let activation = match rng.range(0, 4) {
                0 => ClampF32::NONE,
                1 => ClampF32::RELU,
                2 => ClampF32::RELU6,
                3 => ClampF32 {
                    min: -0.0,
                    max: if rng.one_in(2) { 0.0 } else { -0.0 },
                },
                _ => {
                    let a = rng.f32_vec(2, amp);
                    ClampF32 {
                        min: a[0].min(a[1]),
                        max: a[0].max(a[1]),
                    }
                }
            };
            let n = len(&shape.output);
            let bits = crate::ops::testing::f32_bits;
            let p = AddF32Params { shape, activation };
            check_f32(&p, x1.len(), x2.len(), n).unwrap();
            let mut want = vec![0f32; n];
            let mut got = vec![1f32; n];
            reference::eval_f32(&p, &x1, &x2, &mut want);
            avx512::eval_f32_detected(&p, &x1, &x2, &mut got);
            assert_eq!(bits(&got), bits(&want), "add, case {case}: {p:?}");
            let p = crate::ops::mul::MulF32Params { shape, activation };
            crate::ops::mul::check_f32(&p, x1.len(), x2.len(), n).unwrap();
            crate::ops::mul::reference::eval_f32(&p, &x1, &x2, &mut want);
            got.fill(1.0);
            crate::ops::mul::avx512::eval_f32_detected(&p, &x1, &x2, &mut got);
            assert_eq!(bits(&got), bits(&want), "mul, case {case}: {p:?}");
        }
        return;
    }
    println!("skipped: add,mul/avx512 f32 (CPU lacks AVX512F)");
}

/// [`dsp::HighWord`] equals [`crate::quant::requantize`] for every valid shift and left shift
/// `pre` of the accumulator, multipliers at and near their extremes, and accumulators up to
/// `2^(31 - pre)`; it refuses exactly the total shifts `31 - shift + pre` below 33.
#[test]
fn high_word_matches_requantize() {
    let mut rng = Rng::new(0xD5A1);
    for pre in [0u32, 1, 2, 15, 31] {
        for shift in crate::quant::MIN_SHIFT..=crate::quant::MAX_SHIFT {
            let total = 31 - shift + pre as i32;
            for case in 0..200 {
                let multiplier = match case % 5 {
                    0 => i32::MAX,
                    1 => 0,
                    2 => 1 << 30,
                    _ => (rng.next_u64() >> 33) as i32,
                };
                let q = dsp::HighWord::new(multiplier, shift, pre);
                assert_eq!(q.is_some(), total >= 33, "shift {shift}, pre {pre}");
                let Some(q) = q else { break };
                let limit = ((1i64 << (31 - pre)) - 1) as i32;
                let acc = match case % 4 {
                    0 => limit,
                    1 => -limit,
                    _ => (rng.next_u64() as i64 % (limit as i64 + 1)) as i32,
                };
                assert_eq!(
                    q.apply(acc << pre),
                    crate::quant::requantize(acc, multiplier, shift),
                    "acc {acc}, multiplier {multiplier}, shift {shift}, pre {pre}"
                );
            }
        }
    }
    assert_eq!(dsp::HighWord::new(-1, 0, 2), None);
    assert_eq!(dsp::HighWord::new(1 << 30, 31, 2), None);
}

/// Random Add cases through `dsp::eval_i8` and the reference, output bytes compared: the SIMD
/// shapes (contiguous rows, either input a scalar, row and column broadcasts, the small random
/// broadcasts of either input) and every fourth case a large output with a repeated row; params
/// from real scales (the fast path) or at their extremes (input shifts 0 and -31, multipliers 0
/// and `i32::MAX`, output shifts up to 30: the reference fallback), random clamps.
#[test]
fn bit_exact_dsp() {
    let mut rng = Rng::new(0xADD7);
    let cases = if cfg!(miri) { 40 } else { 4000 };
    for case in 0..cases {
        let shape = if case % 4 == 3 {
            let cols = rng.range(1, 300) as u32;
            let out = [1, rng.range(1, 3) as u32, rng.range(1, 20) as u32, cols];
            let row = [1, 1, 1, cols];
            match rng.range(0, 2) {
                0 => BroadcastShape::same(out),
                1 => BroadcastShape {
                    input1: out,
                    input2: row,
                    output: out,
                },
                _ => BroadcastShape {
                    input1: row,
                    input2: out,
                    output: out,
                },
            }
        } else {
            random_simd_shape(&mut rng)
        };
        let p = if case % 2 == 0 {
            random_extreme_params(&mut rng, shape)
        } else {
            let (s1, s2) = (rng.scale(), rng.scale());
            let s_out = rng.log_uniform(s1.max(s2) / 8.0, s1.max(s2) * 8.0);
            let zo = rng.zero_point();
            AddParams {
                shape,
                input1_zero_point: rng.zero_point(),
                input2_zero_point: rng.zero_point(),
                output_zero_point: zo,
                requant: AddRequant::new(s1, s2, s_out).unwrap(),
                activation: rng.clamp(zo),
            }
        };
        assert_dsp_matches(
            &p,
            &rng.i8_vec(len(&shape.input1)),
            &rng.i8_vec(len(&shape.input2)),
            case,
        );
    }
}

/// Every pair of int8 inputs through `dsp::eval_i8` (in one large output: the tabled path; in
/// rows of `TABLE_MIN / 2`: the direct path) for parameter sets at the edges of the valid range: input shifts 0 and -31, multipliers 0, 1, 2^30 and `i32::MAX`, zero points
/// -128 and 127, output shifts from -31 to 30 (around 0 and 1, where the fast path ends), and
/// clamps that cut or not.
#[test]
fn bit_exact_dsp_edges() {
    let x1: Vec<i8> = (0..65536).map(|k| (k & 0xFF) as u8 as i8).collect();
    let x2: Vec<i8> = (0..65536).map(|k| (k >> 8) as u8 as i8).collect();
    let shape = BroadcastShape::same([1, 1, 256, 256]);
    let multipliers = [0, 1, 1 << 30, i32::MAX];
    let output_shifts = [-31, -19, -1, 0, 1, 2, 30];
    let mut case = 0;
    for (z1, z2, zo) in [(-128, 127, 0), (127, -128, -128), (0, 0, 127)] {
        for &m in &multipliers {
            for (s1, s2) in [(0, 0), (0, -31), (-31, -1)] {
                for &so in &output_shifts {
                    let activation = if case % 3 == 0 {
                        ClampI8 { min: -5, max: 9 }
                    } else {
                        ClampI8::NONE
                    };
                    let p = AddParams {
                        shape,
                        input1_zero_point: z1,
                        input2_zero_point: z2,
                        output_zero_point: zo,
                        requant: AddRequant {
                            input1: (m, s1),
                            input2: (i32::MAX - m, s2),
                            output: (multipliers[case % 4], so),
                        },
                        activation,
                    };
                    assert_dsp_matches(&p, &x1, &x2, case);
                    // The same pairs in rows shorter than `TABLE_MIN`: the direct path.
                    let cols = dsp::TABLE_MIN / 2;
                    let row = AddParams {
                        shape: BroadcastShape::same([1, 1, 1, cols as u32]),
                        ..p
                    };
                    for (a, b) in x1.chunks(cols).zip(x2.chunks(cols)) {
                        assert_dsp_matches(&row, a, b, case);
                    }
                    case += 1;
                }
            }
        }
    }
}

/// `dsp::eval_i8` writes the reference's bytes for `p` and these inputs.
fn assert_dsp_matches(p: &AddParams, x1: &[i8], x2: &[i8], case: usize) {
    let n = len(&p.shape.output);
    check_i8(p, x1.len(), x2.len(), n).unwrap();
    let mut want = vec![0i8; n];
    let mut got = vec![0x55i8; n];
    reference::eval_i8(p, x1, x2, &mut want);
    dsp::eval_i8(p, x1, x2, &mut got);
    assert_eq!(got, want, "case {case}: {p:?}");
}
