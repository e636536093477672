use super::*;
use crate::ops::testing::Rng;

/// Reshape is exact: the same bytes in the same order.
#[test]
fn golden_exact_copy() {
    let mut rng = Rng::new(1);
    let x = rng.i8_vec(24);
    let p = ReshapeParams {
        input: [1, 2, 3, 4],
        output: [1, 1, 6, 4],
    };
    check(&p, 24, 24).unwrap();
    let mut out = vec![0i8; 24];
    eval_i8(&p, &x, &mut out);
    assert_eq!(out, x);
    let xf = rng.f32_vec(24, 1.0);
    let mut outf = vec![0f32; 24];
    eval_f32(&p, &xf, &mut outf);
    assert_eq!(outf, xf);
}

#[test]
fn check_rejects_bad_params() {
    let p = ReshapeParams {
        input: [1, 2, 3, 4],
        output: [1, 1, 5, 4],
    };
    assert!(check(&p, 24, 20).is_err());
    let p = ReshapeParams {
        input: [1, 2, 3, 4],
        output: [1, 0, 6, 4],
    };
    assert!(check(&p, 24, 0).is_err());
    let p = ReshapeParams {
        input: [1, 2, 3, 4],
        output: [1, 4, 3, 2],
    };
    assert!(check(&p, 24, 25).is_err());
    assert_eq!(check(&p, 24, 24), Ok(()));
}
