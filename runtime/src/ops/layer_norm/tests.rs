use super::reference::isqrt_u64;
use super::*;
use crate::ops::testing::{self, Rng};
use crate::ops::ClampI8;
use proptest::prelude::*;

/// Dequantize, LayerNorm in f64, quantize.
fn oracle(
    x: &[i8],
    cols: usize,
    (in_scale, in_zp): (f64, i32),
    (out_scale, out_zp): (f64, i32),
    gamma: &[f64],
    beta: &[f64],
    eps: f64,
) -> Vec<i8> {
    let mut out = Vec::new();
    for row in x.chunks(cols) {
        let r = testing::dequantize(row, in_scale, in_zp);
        let mean = r.iter().sum::<f64>() / cols as f64;
        let var = r.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / cols as f64;
        for (i, v) in r.iter().enumerate() {
            // A constant row with ε = 0 normalises to 0 (the kernel's convention for 0/0).
            let n = if var + eps == 0.0 {
                0.0
            } else {
                (v - mean) / (var + eps).sqrt()
            };
            let y = gamma[i] * n + beta[i];
            out.push(testing::quantize_f64(y, out_scale, out_zp, ClampI8::NONE));
        }
    }
    out
}

#[test]
fn golden_isqrt() {
    for v in [
        0u64,
        1,
        2,
        3,
        4,
        15,
        16,
        17,
        1 << 40,
        (1 << 62) - 1,
        1 << 62,
        u64::MAX,
    ] {
        let r = isqrt_u64(v);
        assert!(r * r <= v, "{v}");
        assert!((r + 1).checked_mul(r + 1).is_none_or(|s| s > v), "{v}");
    }
    let mut rng = Rng::new(3);
    for _ in 0..10_000 {
        let v = rng.next_u64() >> (rng.next_u64() % 64);
        let r = isqrt_u64(v) as u128;
        assert!(r * r <= v as u128 && (r + 1) * (r + 1) > v as u128, "{v}");
    }
}

#[test]
fn golden_constant_row_gives_beta() {
    // A constant row has zero deviation: every output is beta/s_out + zp, for any gamma.
    let k =
        LayerNormConstants::new(&[2.0, -3.0, 0.5], &[0.5, -0.25, 0.0], 1e-5, 0.1, 0.05).unwrap();
    let p = k.params(2, 4, -10);
    let x = [17i8, 17, 17, -128, -128, -128];
    let mut y = [0i8; 6];
    check_i8(&p, 6, 6).unwrap();
    eval_i8(&p, &x, &mut y);
    assert_eq!(y, [0, -15, -10, 0, -15, -10]);
}

#[test]
fn rejects_bad_params() {
    let k = LayerNormConstants::new(&[1.0; 4], &[0.0; 4], 1e-5, 0.1, 0.1).unwrap();
    assert!(check_i8(&k.params(2, 0, 0), 8, 8).is_ok());
    assert!(check_i8(&k.params(2, 0, 0), 8, 7).is_err());
    assert!(check_i8(&k.params(3, 0, 0), 8, 8).is_err());
    assert!(check_i8(&k.params(2, 300, 0), 8, 8).is_err());
    let mut bad = k.params(2, 0, 0);
    bad.gamma_shift = &[0, 0, 0, 40];
    assert!(check_i8(&bad, 8, 8).is_err());
    assert!(LayerNormConstants::new(&[1.0], &[0.0, 1.0], 1e-5, 0.1, 0.1).is_none());
    assert!(LayerNormConstants::new(&[f64::NAN], &[0.0], 1e-5, 0.1, 0.1).is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(testing::CASES * 4))]

    /// Stated bound: within 1 output LSB of the f64 math.
    #[test]
    fn int8_within_1_lsb_of_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let rows = rng.dim(4) as usize;
        let cols = if rng.one_in(3) { rng.dim(700) } else { rng.dim(70) } as usize;
        let in_q = (rng.scale(), rng.zero_point());
        let out_q = (rng.log_uniform(0.005, 0.1), rng.zero_point());
        let gamma: Vec<f64> = (0..cols).map(|_| (rng.unit() * 4.0 - 2.0) * if rng.one_in(8) { 0.0 } else { 1.0 }).collect();
        let beta: Vec<f64> = (0..cols).map(|_| rng.unit() - 0.5).collect();
        let eps = [0.0, 1e-12, 1e-5, 1e-3][rng.range(0, 3) as usize];
        // Narrow-range rows now and then (small variance relative to ε).
        let x: Vec<i8> = if rng.one_in(4) {
            let c = rng.range(-120, 120);
            (0..rows * cols).map(|_| (c + rng.range(-2, 2)) as i8).collect()
        } else {
            rng.i8_vec(rows * cols)
        };
        let k = LayerNormConstants::new(&gamma, &beta, eps, in_q.0, out_q.0).unwrap();
        let p = k.params(rows as u32, in_q.1, out_q.1);
        check_i8(&p, x.len(), x.len()).unwrap();
        let mut y = vec![0i8; x.len()];
        eval_i8(&p, &x, &mut y);
        testing::assert_within_lsb(&y, &oracle(&x, cols, in_q, out_q, &gamma, &beta, eps), 1, "layer_norm int8");
    }

    #[test]
    fn f32_matches_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (rows, cols) = (rng.dim(4) as usize, rng.dim(100) as usize);
        let x = rng.f32_vec(rows * cols, 3.0);
        let gamma = rng.f32_vec(cols, 2.0);
        let beta = rng.f32_vec(cols, 1.0);
        let p = LayerNormF32Params { rows: rows as u32, cols: cols as u32, epsilon: 1e-5, gamma: &gamma, beta: &beta };
        check_f32(&p, x.len(), x.len()).unwrap();
        let mut y = vec![0f32; x.len()];
        eval_f32(&p, &x, &mut y);
        let mut want = Vec::new();
        for row in x.chunks(cols) {
            let r = testing::to_f64(row);
            let mean = r.iter().sum::<f64>() / cols as f64;
            let var = r.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / cols as f64;
            for (i, v) in r.iter().enumerate() {
                want.push(gamma[i] as f64 * (v - mean) / (var + 1e-5).sqrt() + beta[i] as f64);
            }
        }
        testing::assert_close_f32(&y, &want, 1e-4, 1e-4, "layer_norm f32");
    }
}

/// Random rows and column counts (8-column blocks and a remainder), values of very different
/// magnitudes and offsets, γ, β and ε: the AVX2 f32 LayerNorm gives the reference's bits.
#[test]
fn bit_exact_avx2_f32() {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        let mut rng = Rng::new(0x1A7);
        for case in 0..300 {
            let rows = rng.dim(11);
            let cols = if rng.one_in(4) {
                rng.dim(700)
            } else {
                rng.dim(40)
            };
            let n = (rows * cols) as usize;
            let amp = rng.log_uniform(1e-3, 1e3);
            let offset = (rng.unit() * 2.0 - 1.0) * amp * 10.0;
            let x: Vec<f32> = rng
                .f32_vec(n, amp)
                .iter()
                .map(|&v| v + offset as f32)
                .collect();
            let gamma = rng.f32_vec(cols as usize, 2.0);
            let beta = rng.f32_vec(cols as usize, 1.0);
            let epsilon = if rng.one_in(3) {
                0.0
            } else {
                rng.log_uniform(1e-12, 1e-2) as f32
            };
            let p = LayerNormF32Params {
                rows,
                cols,
                epsilon,
                gamma: &gamma,
                beta: &beta,
            };
            check_f32(&p, n, n).unwrap();
            let mut want = vec![0f32; n];
            let mut got = vec![0f32; n];
            reference::eval_f32(&p, &x, &mut want);
            avx2::eval_f32_detected(&p, &x, &mut got);
            // Bits, with every NaN as one value (its payload may depend on operand order).
            let bits = crate::ops::testing::f32_bits;
            assert_eq!(bits(&got), bits(&want), "case {case}: {rows}x{cols}");
        }
        return;
    }
    println!("skipped: layer_norm/avx2");
}

/// The fused int8 LayerNorm gives exactly the bytes of Dequantize, the reference f32 LayerNorm
/// and Quantize, with this machine's kernels and with the reference table, for any scratch size.
#[test]
fn quantized_layer_norm_is_bit_exact_to_the_chain() {
    use crate::ops::quantize::QuantizeParams;
    use crate::quant::{dequantize_f32, quantize_f32};
    let mut rng = crate::ops::testing::Rng::new(0x1a7e);
    for case in 0..300 {
        let (rows, cols) = (rng.dim(20), rng.dim(200));
        let n = (rows * cols) as usize;
        let gamma: Vec<f32> = (0..cols)
            .map(|_| rng.range(-2000, 2000) as f32 / 1000.0)
            .collect();
        let beta: Vec<f32> = (0..cols)
            .map(|_| rng.range(-500, 500) as f32 / 1000.0)
            .collect();
        let p = quantized::QuantizedLayerNormParams {
            norm: LayerNormF32Params {
                rows,
                cols,
                epsilon: [1e-5, 1e-12, 0.0][case % 3],
                gamma: &gamma,
                beta: &beta,
            },
            input: QuantizeParams {
                scale: rng.log_uniform(1e-3, 0.5) as f32,
                zero_point: rng.zero_point(),
            },
            output: QuantizeParams {
                scale: rng.log_uniform(1e-3, 0.1) as f32,
                zero_point: rng.zero_point(),
            },
        };
        let x = if case % 10 == 0 {
            vec![rng.range(-128, 127) as i8; n]
        } else {
            rng.i8_vec(n)
        };
        let scratch_len = quantized::min_scratch(cols)
            + 2 * cols as usize * rng.range(0, 9) as usize
            + rng.range(0, 3) as usize;
        quantized::check(&p, n, scratch_len, n).unwrap();
        let a: Vec<f32> = x
            .iter()
            .map(|&q| dequantize_f32(q, p.input.scale, p.input.zero_point))
            .collect();
        let mut b = vec![0f32; n];
        reference::eval_f32(&p.norm, &a, &mut b);
        let want: Vec<i8> = b
            .iter()
            .map(|&v| quantize_f32(v, p.output.scale, p.output.zero_point))
            .collect();
        testing::assert_fused_both_tables(
            &want,
            scratch_len,
            &format!("case {case}"),
            |k, s, y| match k {
                Some(k) => quantized::eval_with(k, &p, &x, s, y),
                None => quantized::eval(&p, &x, s, y),
            },
        );
        assert!(quantized::check(&p, n, quantized::min_scratch(cols) - 1, n).is_err());
    }
}

/// The AVX-512 fused kernel gives the bytes of the three-kernel chain with the reference table
/// (and with this machine's table): rows of 0–700 columns (blocks of sixteen, a block of eight
/// and a scalar tail, in every combination), scratch for one row to many, constant rows, ε = 0,
/// γ and β of any sign and size, input and output scales that saturate or barely round.
#[test]
fn bit_exact_avx512_quantized() {
    #[cfg(target_arch = "x86_64")]
    if avx512::detected() {
        use crate::ops::quantize::QuantizeParams;
        let mut rng = Rng::new(0x5112);
        let reference = crate::ops::KernelTable::reference();
        for case in 0..1000 {
            let rows = rng.dim(13);
            let cols = match case % 4 {
                0 => rng.dim(700),
                1 => 16 * rng.dim(12),
                _ => rng.dim(48),
            };
            let n = (rows * cols) as usize;
            let (g_amp, b_amp) = (rng.log_uniform(1e-2, 1e2), rng.log_uniform(1e-3, 1e1));
            let gamma = rng.f32_vec(cols as usize, g_amp);
            let beta = rng.f32_vec(cols as usize, b_amp);
            let p = quantized::QuantizedLayerNormParams {
                norm: LayerNormF32Params {
                    rows,
                    cols,
                    epsilon: if rng.one_in(3) {
                        0.0
                    } else {
                        rng.log_uniform(1e-12, 1.0) as f32
                    },
                    gamma: &gamma,
                    beta: &beta,
                },
                input: QuantizeParams {
                    scale: rng.log_uniform(1e-6, 1e3) as f32,
                    zero_point: rng.zero_point(),
                },
                output: QuantizeParams {
                    // From saturating most values to 2000 steps over the outputs' range.
                    scale: ((2.0 * g_amp + b_amp) / rng.log_uniform(0.5, 2000.0)) as f32,
                    zero_point: rng.zero_point(),
                },
            };
            let x = if rng.one_in(8) {
                vec![rng.range(-128, 127) as i8; n]
            } else {
                rng.i8_vec(n)
            };
            let scratch_len = cols as usize * rng.range(2, 20) as usize + rng.range(0, 5) as usize;
            quantized::check(&p, n, scratch_len, n).unwrap();
            let mut want = vec![0i8; n];
            let mut got = vec![0i8; n];
            let mut s = vec![f32::NAN; scratch_len];
            quantized::eval_with(&reference, &p, &x, &mut s, &mut want);
            let mut s = vec![f32::NAN; scratch_len];
            avx512::eval_quantized_detected(&p, &x, &mut s, &mut got);
            assert_eq!(
                got, want,
                "case {case}: {rows}x{cols}, scratch {scratch_len}"
            );
            let mut s = vec![f32::NAN; scratch_len];
            quantized::eval_with(crate::ops::kernels(), &p, &x, &mut s, &mut want);
            assert_eq!(got, want, "case {case}: this machine's table");
        }
        return;
    }
    println!("skipped: layer_norm/avx512");
}
