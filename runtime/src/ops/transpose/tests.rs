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

fn random_perm(rng: &mut Rng) -> [u8; 4] {
    let mut perm = [0u8, 1, 2, 3];
    for i in (1..4).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        perm.swap(i, j);
    }
    perm
}

/// `eval_i8` (16 × 16 byte tiles) gives `eval`'s output for every permutation, on random
/// shapes with axes of 1 (merged away), short axes and axes longer than a tile (full and
/// partial tiles); attention's shapes included.
#[test]
fn bit_exact_eval_i8() {
    let mut rng = Rng::new(0x7A05);
    for case in 0..3000 {
        let dims = if case % 10 == 0 {
            [1, 4, 64, 32]
        } else {
            let mut d = [0u32; 4];
            for v in d.iter_mut() {
                *v = match rng.range(0, 3) {
                    0 => 1,
                    1 => rng.range(1, 5) as u32,
                    _ => rng.range(1, 50) as u32,
                };
            }
            d
        };
        let p = if case % 10 == 5 {
            // Attention's head split and merge, with run lengths 16, 32 and 64 (whole-run
            // copies) and others.
            let d = [16u32, 32, 64, 24][rng.range(0, 3) as usize];
            let (s, h) = (rng.range(1, 70) as u32, rng.range(1, 6) as u32);
            TransposeParams {
                input_dims: if rng.one_in(2) {
                    [1, s, h, d]
                } else {
                    [1, h, s, d]
                },
                perm: [0, 2, 1, 3],
            }
        } else {
            TransposeParams {
                input_dims: dims,
                perm: if case % 10 == 0 && rng.one_in(2) {
                    [0, 1, 3, 2]
                } else {
                    random_perm(&mut rng)
                },
            }
        };
        let dims = p.input_dims;
        let n = dims.iter().product::<u32>() as usize;
        check(&p, n, n).unwrap();
        let x: Vec<i8> = rng.i8_vec(n);
        let (mut got, mut want) = (vec![0i8; n], vec![0i8; n]);
        eval_i8(&p, &x, &mut got);
        eval(&p, &x, &mut want);
        assert_eq!(got, want, "case {case}: {p:?}");
    }
}

/// NCHW -> NHWC (and back) of images with few channels (1 to 5: the plain copy, the
/// interleaves of 2, 3 and 4 rows, the generic path), batches of 1 and 2, random values.
#[test]
fn bit_exact_eval_i8_few_channels() {
    let mut rng = Rng::new(0x7A06);
    for case in 0..400 {
        let dims = [
            rng.range(1, 2) as u32,
            rng.range(1, 5) as u32,
            rng.range(1, 40) as u32,
            rng.range(1, 40) as u32,
        ];
        let p = TransposeParams {
            input_dims: dims,
            perm: if case % 2 == 0 {
                [0, 2, 3, 1]
            } else {
                [0, 3, 1, 2]
            },
        };
        let n = dims.iter().product::<u32>() as usize;
        check(&p, n, n).unwrap();
        let x: Vec<i8> = rng.i8_vec(n);
        let (mut got, mut want) = (vec![0i8; n], vec![0i8; n]);
        eval_i8(&p, &x, &mut got);
        eval(&p, &x, &mut want);
        assert_eq!(got, want, "case {case}: {p:?}");
    }
}

/// Axis merging on attention's permutations, the identity, merged pairs and all-1 shapes.
#[test]
fn golden_merged() {
    let m = |dims, perm| {
        Merged::new(&TransposeParams {
            input_dims: dims,
            perm,
        })
    };
    let k_t = m([1, 4, 64, 32], [0, 1, 3, 2]);
    assert_eq!(
        (k_t.rank, k_t.dims, k_t.perm),
        (3, [4, 64, 32, 1], [0, 2, 1, 3])
    );
    let heads = m([1, 64, 4, 32], [0, 2, 1, 3]);
    assert_eq!(
        (heads.rank, heads.dims, heads.perm),
        (3, [64, 4, 32, 1], [1, 0, 2, 3])
    );
    let id = m([2, 3, 4, 5], [0, 1, 2, 3]);
    assert_eq!((id.rank, id.dims[0]), (1, 120));
    let pairs = m([2, 3, 4, 5], [2, 3, 0, 1]);
    assert_eq!(
        (pairs.rank, pairs.dims, pairs.perm),
        (2, [6, 20, 1, 1], [1, 0, 2, 3])
    );
    assert_eq!(m([1, 1, 1, 1], [3, 2, 1, 0]).rank, 0);
}
