use super::*;
use crate::ops::testing::Rng;
use proptest::prelude::*;

#[test]
fn golden_2d() {
    let p = TransposeParams {
        input_dims: [1, 1, 2, 3],
        perm: [0, 1, 3, 2],
    };
    check(&p, 6, 6).unwrap();
    let mut out = [0i8; 6];
    eval(&p, &[1i8, 2, 3, 4, 5, 6], &mut out);
    assert_eq!(out, [1, 4, 2, 5, 3, 6]);
    assert_eq!(p.output_dims(), [1, 1, 3, 2]);
}

#[test]
fn rejects_bad_perm() {
    let dims = [1, 2, 3, 4];
    assert!(check(
        &TransposeParams {
            input_dims: dims,
            perm: [0, 1, 1, 3]
        },
        24,
        24
    )
    .is_err());
    assert!(check(
        &TransposeParams {
            input_dims: dims,
            perm: [0, 1, 2, 4]
        },
        24,
        24
    )
    .is_err());
    assert!(check(
        &TransposeParams {
            input_dims: dims,
            perm: [0, 1, 2, 3]
        },
        24,
        23
    )
    .is_err());
}

proptest! {
    #[test]
    fn matches_index_formula_and_round_trips(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let dims = [rng.dim(4), rng.dim(5), rng.dim(6), rng.dim(7)];
        let mut perm = [0u8, 1, 2, 3];
        for i in (1..4).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            perm.swap(i, j);
        }
        let p = TransposeParams { input_dims: dims, perm };
        let n = dims.iter().product::<u32>() as usize;
        check(&p, n, n).unwrap();
        let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let mut y = vec![0f32; n];
        eval(&p, &x, &mut y);
        let od = p.output_dims();
        // Element at output index (a, b, c, d) comes from the input index with axes permuted back.
        for (flat, &v) in y.iter().enumerate() {
            let mut rem = flat;
            let mut oi = [0usize; 4];
            for ax in (0..4).rev() {
                oi[ax] = rem % od[ax] as usize;
                rem /= od[ax] as usize;
            }
            let mut ii = [0usize; 4];
            for ax in 0..4 {
                ii[perm[ax] as usize] = oi[ax];
            }
            let src = ((ii[0] * dims[1] as usize + ii[1]) * dims[2] as usize + ii[2]) * dims[3] as usize + ii[3];
            prop_assert_eq!(v, src as f32);
        }
        // Inverse permutation restores the input.
        let mut inv = [0u8; 4];
        for (i, &a) in perm.iter().enumerate() {
            inv[a as usize] = i as u8;
        }
        let q = TransposeParams { input_dims: od, perm: inv };
        let mut back = vec![0f32; n];
        eval(&q, &y, &mut back);
        prop_assert_eq!(back, x);
    }
}
