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
