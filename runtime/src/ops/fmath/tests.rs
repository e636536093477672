use super::*;

fn sweep(lo: f32, hi: f32, n: usize) -> impl Iterator<Item = f32> {
    (0..=n).map(move |i| lo + (hi - lo) * i as f32 / n as f32)
}

#[test]
fn golden_exact_erf() {
    // Published values (Abramowitz & Stegun table 7.1 / high-precision references).
    for (x, want) in [
        (0.0, 0.0),
        (0.5, 0.520_499_877_813_046_5),
        (1.0, 0.842_700_792_949_714_9),
        (2.0, 0.995_322_265_018_952_7),
        (2.9, 0.999_958_902_121_900_2),
        (3.5, 0.999_999_256_901_627_7),
        (-1.0, -0.842_700_792_949_714_9),
    ] {
        assert!(
            (exact::erf(x) - want).abs() < 1e-13,
            "erf({x}) = {}",
            exact::erf(x)
        );
    }
}

#[test]
fn exp_within_bound() {
    for x in sweep(-87.0, 88.0, 200_000) {
        let want = (x as f64).exp();
        let got = exp(x) as f64;
        assert!(
            ((got - want) / want).abs() <= 4e-7,
            "exp({x}): {got} vs {want}"
        );
    }
    assert_eq!(exp(-100.0), 0.0);
    assert_eq!(exp(100.0), f32::INFINITY);
    assert!(exp(f32::NAN).is_nan());
}

#[test]
fn tanh_sigmoid_erf_within_bound() {
    for x in sweep(-12.0, 12.0, 200_000).chain(sweep(-0.1, 0.1, 10_000)) {
        let xd = x as f64;
        let t = exact::tanh(xd);
        let got = tanh(x) as f64;
        assert!((got - t).abs() <= 3e-7, "tanh({x})");
        if t != 0.0 {
            assert!(((got - t) / t).abs() <= 2e-6, "tanh({x}) rel: {got} vs {t}");
        }
        assert!(
            (sigmoid(x) as f64 - exact::sigmoid(xd)).abs() <= 3e-7,
            "sigmoid({x})"
        );
        assert!((erf(x) as f64 - exact::erf(xd)).abs() <= 5e-7, "erf({x})");
        let g = exact::gelu(xd);
        assert!(
            (gelu(x) as f64 - g).abs() <= 1e-6 * (1.0 + g.abs()),
            "gelu({x})"
        );
        let s = exact::silu(xd);
        assert!(
            (silu(x) as f64 - s).abs() <= 1e-6 * (1.0 + s.abs()),
            "silu({x})"
        );
    }
}

#[test]
fn sqrt_within_bound() {
    let mut x = 1e-38f32;
    while x < 1e38 {
        let want = (x as f64).sqrt();
        let got = sqrt(x) as f64;
        assert!(
            ((got - want) / want).abs() <= 3e-7,
            "sqrt({x}): {got} vs {want}"
        );
        x *= 1.001_7;
    }
    assert_eq!(sqrt(0.0), 0.0);
    assert!(sqrt(-1.0).is_nan());
    let tiny = 1e-44f32; // subnormal
    assert!((sqrt(tiny) as f64 / (tiny as f64).sqrt() - 1.0).abs() < 3e-7);
}

/// `exp8` and `exp16` give `exp`'s bits on a dense sweep of the whole range (both rounding directions of
/// `x·log2 e`, the `n = 128` step, the overflow and underflow thresholds and their neighbours),
/// on random bit patterns, and on ±0, ±inf and NaN.
#[test]
fn bit_exact_avx2_exp() {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        use core::arch::x86_64::*;
        let mut xs: std::vec::Vec<f32> = sweep(-90.0, 90.0, 400_000).collect();
        xs.extend(crate::ops::testing::f32_edges(
            &[88.72, -87.3, 88.0, 88.5, -86.9, 0.5, -0.5],
            64,
        ));
        let mut rng = crate::ops::testing::Rng::new(0xE8);
        xs.extend((0..100_000).map(|_| f32::from_bits(rng.next_u64() as u32)));
        while !xs.len().is_multiple_of(16) {
            xs.push(1.0);
        }
        if std::is_x86_feature_detected!("avx512f") {
            for c in xs.chunks_exact(16) {
                let mut got = [0f32; 16];
                // SAFETY: AVX512F detected just above; `c` and `got` hold 16 values.
                unsafe {
                    _mm512_storeu_ps(
                        got.as_mut_ptr(),
                        super::avx512::exp16(_mm512_loadu_ps(c.as_ptr())),
                    )
                };
                for (&x, &g) in c.iter().zip(&got) {
                    let want = exp(x);
                    assert!(
                        g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                        "exp16({x:e}): {g:e} vs {want:e}"
                    );
                }
            }
            // `exp16_n`: four vectors at a time, the same bits.
            for c in xs.chunks_exact(64) {
                let mut got = [0f32; 64];
                // SAFETY: AVX512F detected above; `c` and `got` hold 64 values.
                unsafe {
                    let v: [__m512; 4] =
                        core::array::from_fn(|k| _mm512_loadu_ps(c.as_ptr().add(16 * k)));
                    for (k, e) in super::avx512::exp16_n(v).into_iter().enumerate() {
                        _mm512_storeu_ps(got.as_mut_ptr().add(16 * k), e);
                    }
                }
                for (&x, &g) in c.iter().zip(&got) {
                    let want = exp(x);
                    assert!(
                        g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                        "exp16_n({x:e}): {g:e} vs {want:e}"
                    );
                }
            }
            // `exp16_n_nonpositive`: the same bits for every `x <= 0` (and `-0.0`), a NaN for
            // a NaN; eight vectors at a time.
            let mut neg: std::vec::Vec<f32> =
                xs.iter().map(|&x| if x > 0.0 { -x } else { x }).collect();
            neg.extend([0.0, -0.0, f32::NEG_INFINITY, f32::NAN, -f32::NAN]);
            while !neg.len().is_multiple_of(128) {
                neg.push(-0.0);
            }
            for c in neg.chunks_exact(128) {
                let mut got = [0f32; 128];
                // SAFETY: AVX512F detected above; `c` and `got` hold 128 values.
                unsafe {
                    let v: [__m512; 8] =
                        core::array::from_fn(|k| _mm512_loadu_ps(c.as_ptr().add(16 * k)));
                    for (k, e) in super::avx512::exp16_n_nonpositive(v)
                        .into_iter()
                        .enumerate()
                    {
                        _mm512_storeu_ps(got.as_mut_ptr().add(16 * k), e);
                    }
                }
                for (&x, &g) in c.iter().zip(&got) {
                    let want = exp(x);
                    assert!(
                        g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                        "exp16_n_nonpositive({x:e}): {g:e} vs {want:e}"
                    );
                }
            }
        } else {
            println!("skipped: fmath/avx512 (CPU lacks AVX512F)");
        }
        for c in xs.chunks_exact(8) {
            let mut got = [0f32; 8];
            // SAFETY: AVX2 detected above; `c` and `got` hold 8 values.
            unsafe { _mm256_storeu_ps(got.as_mut_ptr(), avx2::exp8(_mm256_loadu_ps(c.as_ptr()))) };
            for (&x, &g) in c.iter().zip(&got) {
                let want = exp(x);
                assert!(
                    g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                    "exp({x:e}): {g:e} vs {want:e}"
                );
            }
        }
        return;
    }
    println!("skipped: fmath/avx2");
}

/// `sum_lanes` is the documented order, and close to the f64 sum.
#[test]
fn sum_lanes_order() {
    let x: std::vec::Vec<f32> = (0..21).map(|i| 1.0 + i as f32 * 0.37).collect();
    let mut a = [0f32; 8];
    for (i, &v) in x.iter().enumerate() {
        a[i % 8] += v;
    }
    let want = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
    assert_eq!(sum_lanes(&x).to_bits(), want.to_bits());
    let exact: f64 = x.iter().map(|&v| v as f64).sum();
    assert!((sum_lanes(&x) as f64 - exact).abs() < 1e-5 * exact);
    assert_eq!(sum_lanes(&[]), 0.0);
}
