use super::*;
use crate::ops::testing::{self, Rng};
use crate::ops::ClampI8;
use proptest::prelude::*;
use std::vec::Vec;

/// Concatenates `[outer, axis_i, inner]` tensors in f64.
fn concat_f64(outer: usize, inputs: &[Vec<f64>]) -> Vec<f64> {
    let mut y = Vec::new();
    for o in 0..outer {
        for x in inputs {
            let chunk = x.len() / outer;
            y.extend_from_slice(&x[o * chunk..(o + 1) * chunk]);
        }
    }
    y
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(testing::CASES))]

    /// Exact when an input shares the output's quantization, within 1 LSB otherwise.
    #[test]
    fn int8_within_1_lsb_of_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (outer, inner) = (rng.dim(4), rng.dim(6));
        let n = rng.range(1, 5) as usize;
        let (s_out, z_out) = (rng.scale(), rng.zero_point());
        let mut xs = Vec::new();
        let (mut zps, mut mults, mut shifts, mut reals) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let axis = rng.dim(5);
            xs.push(rng.i8_vec((outer * axis * inner) as usize));
            let (s, z) = if rng.one_in(2) { (s_out, z_out) } else { (s_out * rng.log_uniform(0.2, 5.0), rng.zero_point()) };
            let (m, sh) = concat_requant(s, s_out).unwrap();
            zps.push(z);
            mults.push(m);
            shifts.push(sh);
            reals.push(testing::dequantize(xs.last().unwrap(), s, z));
        }
        let p = ConcatParams { outer, inner, input_zero_points: &zps, input_multipliers: &mults, input_shifts: &shifts, output_zero_point: z_out };
        let lens: Vec<usize> = xs.iter().map(|x| x.len()).collect();
        let total: usize = lens.iter().sum();
        check_i8(&p, &lens, total).unwrap();
        let slices: Vec<&[i8]> = xs.iter().map(|x| x.as_slice()).collect();
        let mut out = vec![0i8; total];
        eval_i8(&p, &slices, &mut out);
        let want: Vec<i8> = concat_f64(outer as usize, &reals).iter().map(|&y| testing::quantize_f64(y, s_out, z_out, ClampI8::NONE)).collect();
        testing::assert_within_lsb(&out, &want, 1, "concat int8");
        if (mults.iter().all(|&m| m == IDENTITY.0)) && shifts.iter().all(|&s| s == IDENTITY.1) && zps.iter().all(|&z| z == z_out) {
            let raw: Vec<Vec<f64>> = xs.iter().map(|x| x.iter().map(|&v| v as f64).collect()).collect();
            let exact: Vec<i8> = concat_f64(outer as usize, &raw).iter().map(|&v| v as i8).collect();
            prop_assert_eq!(out, exact);
        }
    }

    #[test]
    fn f32_exact(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (outer, inner) = (rng.dim(4), rng.dim(6));
        let xs: Vec<Vec<f32>> = (0..rng.range(1, 4)).map(|_| { let a = rng.dim(5); rng.f32_vec((outer * a * inner) as usize, 3.0) }).collect();
        let lens: Vec<usize> = xs.iter().map(|x| x.len()).collect();
        let total: usize = lens.iter().sum();
        let p = ConcatF32Params { outer, inner };
        check_f32(&p, &lens, total).unwrap();
        let slices: Vec<&[f32]> = xs.iter().map(|x| x.as_slice()).collect();
        let mut out = vec![0f32; total];
        eval_f32(&p, &slices, &mut out);
        let want = concat_f64(outer as usize, &xs.iter().map(|x| testing::to_f64(x)).collect::<Vec<_>>());
        testing::assert_close_f32(&out, &want, 0.0, 0.0, "concat f32");
    }
}

/// Hand-checked: two [2, 1] and [2, 2] tensors along axis 1; the second input has scale 2x the
/// output's and zero point 1: (x - 1) * 2 + 0.
#[test]
fn golden_concat_rescale() {
    let (m, s) = concat_requant(0.2, 0.1).unwrap();
    let p = ConcatParams {
        outer: 2,
        inner: 1,
        input_zero_points: &[0, 1],
        input_multipliers: &[IDENTITY.0, m],
        input_shifts: &[IDENTITY.1, s],
        output_zero_point: 0,
    };
    check_i8(&p, &[2, 4], 6).unwrap();
    let mut out = [0i8; 6];
    eval_i8(&p, &[&[7, -8], &[1, 2, 3, 127]], &mut out);
    assert_eq!(out, [7, 0, 2, -8, 4, 127]);
    assert_eq!(concat_requant(0.5, 0.5), Some(IDENTITY));
}

#[test]
fn check_rejects_bad_params() {
    let p = ConcatParams {
        outer: 2,
        inner: 3,
        input_zero_points: &[0, 0],
        input_multipliers: &[IDENTITY.0; 2],
        input_shifts: &[IDENTITY.1; 2],
        output_zero_point: 0,
    };
    assert_eq!(check_i8(&p, &[6, 12], 18), Ok(()));
    assert!(check_i8(&p, &[6, 12], 17).is_err());
    assert!(check_i8(&p, &[6, 10], 16).is_err());
    assert!(check_i8(&p, &[6], 6).is_err());
    assert!(check_i8(&p, &[], 0).is_err());
    assert!(check_f32(
        &ConcatF32Params { outer: 1, inner: 1 },
        &[1; MAX_INPUTS + 1],
        MAX_INPUTS + 1
    )
    .is_err());
}
