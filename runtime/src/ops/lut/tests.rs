use super::*;
use crate::ops::testing::Rng;

#[test]
fn golden_table_layout() {
    // Identity with equal quantization: table[x as u8] == x.
    let t = build_table(|x| x, 0.1, 3, 0.1, 3).unwrap();
    for x in -128i32..=127 {
        assert_eq!(t[x as i8 as u8 as usize], x as i8);
    }
    let input: Vec<i8> = (-128..=127).collect();
    let mut out = vec![0i8; 256];
    let p = LutParams { table: &t };
    check_i8(&p, 256, 256).unwrap();
    eval_i8(&p, &input, &mut out);
    assert_eq!(out, input);
    // Doubling with a saturating output.
    let t = build_table(|x| 2.0 * x, 1.0, 0, 1.0, 0).unwrap();
    assert_eq!(t[100], 127);
    assert_eq!(t[(-100i8) as u8 as usize], -128);
    assert_eq!(t[5], 10);
}

#[test]
fn rejects_bad_params() {
    assert!(build_table(|x| x, 0.0, 0, 1.0, 0).is_none());
    assert!(build_table(|x| x, 1.0, 200, 1.0, 0).is_none());
    assert!(build_table(|x| x, 1.0, 0, f64::NAN, 0).is_none());
    let short = [0i8; 255];
    assert!(check_i8(&LutParams { table: &short }, 4, 4).is_err());
    let t = [0i8; 256];
    assert!(check_i8(&LutParams { table: &t }, 4, 5).is_err());
}

#[test]
fn in_place_matches_out_of_place() {
    let mut rng = Rng::new(7);
    let t = build_table(
        |x| x.sin(),
        rng.scale(),
        rng.zero_point(),
        0.01,
        rng.zero_point(),
    )
    .unwrap();
    let p = LutParams { table: &t };
    let input = rng.i8_vec(1000);
    let mut out = vec![0i8; 1000];
    eval_i8(&p, &input, &mut out);
    let mut data = input.clone();
    eval_i8_in_place(&p, &mut data);
    assert_eq!(data, out);
}

/// The AVX-512BW lookup gives the reference's bytes for random tables, every input value and
/// random lengths (tails of every size below 64).
#[test]
fn bit_exact_avx512_lookup() {
    #[cfg(target_arch = "x86_64")]
    if avx512::detected() {
        let mut rng = Rng::new(0x10C4);
        for case in 0..300 {
            let t: Vec<i8> = rng.i8_vec(TABLE_LEN);
            let p = LutParams { table: &t };
            let len = if case < 130 {
                case as usize
            } else {
                rng.range(0, 5000) as usize
            };
            let mut input = rng.i8_vec(len);
            if case % 3 == 0 {
                for (k, v) in input.iter_mut().enumerate() {
                    *v = (k % 256) as u8 as i8; // every table entry
                }
            }
            check_i8(&p, len, len).unwrap();
            let mut want = vec![0i8; len];
            let mut got = vec![0x55i8; len];
            lookup_i8(&p, &input, &mut want);
            avx512::eval_i8_detected(&p, &input, &mut got);
            assert_eq!(got, want, "case {case}, len {len}");
        }
        return;
    }
    println!("skipped: lut/avx512 (CPU lacks AVX512F/BW)");
}
