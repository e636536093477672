use super::*;

#[test]
fn golden_lower_triangle() {
    let p = CausalMaskParams {
        batch: 2,
        rows: 3,
        cols: 4,
        offset: 0,
    };
    check(&p, 24).unwrap();
    let mut d = [1i8; 24];
    eval_i8(&p, &mut d);
    let m = -128;
    let want_one = [1, m, m, m, 1, 1, m, m, 1, 1, 1, m];
    assert_eq!(&d[..12], &want_one);
    assert_eq!(&d[12..], &want_one);
    assert!(check(&p, 23).is_err());
}

#[test]
fn offset_shifts_the_diagonal() {
    // Two cached positions before the 2 new queries: row 0 sees keys 0..=2, row 1 sees 0..=3.
    let p = CausalMaskParams {
        batch: 1,
        rows: 2,
        cols: 5,
        offset: 2,
    };
    let mut d = [0.5f32; 10];
    eval_f32(&p, &mut d);
    let n = f32::NEG_INFINITY;
    assert_eq!(d, [0.5, 0.5, 0.5, n, n, 0.5, 0.5, 0.5, 0.5, n]);
    let big = CausalMaskParams {
        offset: u32::MAX,
        ..p
    };
    let mut e = [0.5f32; 10];
    eval_f32(&big, &mut e);
    assert_eq!(e, [0.5; 10]);
}
