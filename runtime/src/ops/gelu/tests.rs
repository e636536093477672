use super::*;
use crate::ops::fmath::exact;
use crate::ops::testing::{self, Rng};
use crate::ops::ClampI8;
use proptest::prelude::*;

#[test]
fn golden_gelu() {
    assert!((exact::gelu(1.0) - 0.841_344_746_068_542_9).abs() < 1e-12);
    let mut y = [0f32; 1];
    eval_f32(&[1.0_f32], &mut y);
    assert!((y[0] as f64 - 0.841_344_746_068_542_9).abs() < 1e-6);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(testing::CASES))]

    /// Every one of the 256 inputs lands within 0.5 output LSB of the f64 math (unless clamped).
    #[test]
    fn int8_within_half_lsb_of_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (in_scale, in_zp) = (rng.log_uniform(1e-3, 0.2), rng.zero_point());
        let (out_scale, out_zp) = (rng.log_uniform(1e-3, 0.1), rng.zero_point());
        let table = build_table(in_scale, in_zp, out_scale, out_zp).unwrap();
        let p = LutParams { table: &table };
        let mut input: Vec<i8> = (-128..=127).collect();
        input.extend(rng.i8_vec(77));
        check_i8(&p, input.len(), input.len()).unwrap();
        let mut out = vec![0i8; input.len()];
        eval_i8(&p, &input, &mut out);
        for (&x, &q) in input.iter().zip(&out) {
            let real = exact::gelu((x as i32 - in_zp) as f64 * in_scale);
            let oracle = testing::quantize_f64(real, out_scale, out_zp, ClampI8::NONE);
            prop_assert_eq!(q, oracle, "x={}", x);
            if (-127..=126).contains(&(q as i32)) {
                let back = (q as i32 - out_zp) as f64 * out_scale;
                prop_assert!((back - real).abs() <= 0.5 * out_scale * (1.0 + 1e-9));
            }
        }
    }

    #[test]
    fn f32_matches_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let x = rng.f32_vec(300, 8.0);
        let mut y = vec![0f32; x.len()];
        check_f32(x.len(), y.len()).unwrap();
        eval_f32(&x, &mut y);
        let want: Vec<f64> = x.iter().map(|&v| exact::gelu(v as f64)).collect();
        testing::assert_close_f32(&y, &want, 2e-6, 1e-6, "gelu f32");
    }
}

/// The AVX-512 f32 GELU gives the reference's bits on a dense sweep (both sides of every branch
/// threshold of `erf`: |x/√2| = 0.5 and 4), random values and bit patterns, ±0, ±inf and NaN,
/// at every tail length.
#[test]
fn bit_exact_avx512_f32() {
    #[cfg(target_arch = "x86_64")]
    if avx512::detected() {
        let mut xs: Vec<f32> = (0..200_000)
            .map(|i| -12.0 + 24.0 * i as f32 / 200_000.0)
            .collect();
        let s2 = core::f32::consts::SQRT_2;
        xs.extend(testing::f32_edges(
            &[0.5 * s2, 4.0 * s2, -0.5 * s2, -4.0 * s2],
            64,
        ));
        let mut rng = Rng::new(0x6E1);
        xs.extend((0..50_000).map(|_| f32::from_bits(rng.next_u64() as u32)));
        let mut want = vec![0f32; xs.len()];
        reference_f32(&xs, &mut want);
        let bits = crate::ops::testing::f32_bits;
        let mut got = vec![0f32; xs.len()];
        avx512::eval_f32_detected(&xs, &mut got);
        assert_eq!(bits(&got), bits(&want));
        for len in 0..40 {
            let mut got = vec![7f32; len];
            avx512::eval_f32_detected(&xs[1000..1000 + len], &mut got);
            assert_eq!(bits(&got), bits(&want[1000..1000 + len]), "len {len}");
        }
        return;
    }
    println!("skipped: gelu/avx512 (CPU lacks AVX512F)");
}
