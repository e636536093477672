use super::*;
use crate::ops::testing::Rng;

#[test]
fn golden_lookup_i8_and_f32() {
    let table = [1i8, 2, 3, 4, 5, 6];
    let p = GatherParams {
        rows: 3,
        row_len: 2,
        table: &table,
    };
    check(&p, 4, 8).unwrap();
    let mut out = [0i8; 8];
    eval(&p, &[2, 0, -1, 1], &mut out).unwrap();
    assert_eq!(out, [5, 6, 1, 2, 5, 6, 3, 4]);
    let tf = [0.5f32, -1.0, 2.0];
    let pf = GatherParams {
        rows: 3,
        row_len: 1,
        table: &tf,
    };
    let mut of = [0f32; 2];
    eval(&pf, &[1, -3], &mut of).unwrap();
    assert_eq!(of, [-1.0, 0.5]);
}

#[test]
fn out_of_range_ids_are_errors() {
    let table = [0i8; 12];
    let p = GatherParams {
        rows: 4,
        row_len: 3,
        table: &table,
    };
    let mut out = [0i8; 3];
    for bad in [4, -5, i32::MAX, i32::MIN] {
        assert_eq!(
            eval(&p, &[bad], &mut out),
            Err(Error::KernelIndexOutOfRange { op: 0, value: bad })
        );
    }
    assert!(check(&p, 2, 5).is_err());
    assert!(check(
        &GatherParams {
            rows: 5,
            row_len: 3,
            table: &table
        },
        1,
        3
    )
    .is_err());
}

#[test]
fn random_lookups_copy_rows() {
    let mut rng = Rng::new(11);
    for _ in 0..50 {
        let (rows, w) = (rng.dim(50), rng.dim(20));
        let table = rng.i8_vec((rows * w) as usize);
        let p = GatherParams {
            rows,
            row_len: w,
            table: &table,
        };
        let ids: Vec<i32> = (0..rng.dim(10))
            .map(|_| rng.range(-(rows as i32), rows as i32 - 1))
            .collect();
        let mut out = vec![0i8; ids.len() * w as usize];
        check(&p, ids.len(), out.len()).unwrap();
        eval(&p, &ids, &mut out).unwrap();
        for (k, &id) in ids.iter().enumerate() {
            let r = if id < 0 { id + rows as i32 } else { id } as usize;
            assert_eq!(
                &out[k * w as usize..(k + 1) * w as usize],
                &table[r * w as usize..(r + 1) * w as usize]
            );
        }
    }
}
