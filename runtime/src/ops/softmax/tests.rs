use super::*;
use crate::ops::testing::{self, Rng};
use proptest::prelude::*;
use std::vec::Vec;

/// Exact softmax of dequantized inputs, quantized at scale 1/256, zero point -128.
fn oracle_i8(x: &[i8], depth: usize, scale: f64, beta: f64) -> Vec<i8> {
    let mut y = Vec::new();
    for row in x.chunks(depth) {
        let real: Vec<f64> = row.iter().map(|&v| v as f64 * scale * beta).collect();
        let max = real.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = real.iter().map(|&v| (v - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        y.extend(e.iter().map(|&v| {
            testing::quantize_f64(
                v / sum,
                1.0 / 256.0,
                OUTPUT_ZERO_POINT,
                crate::ops::ClampI8::NONE,
            )
        }));
    }
    y
}

fn run_i8(rng: &mut Rng, outer: u32, depth: u32) {
    let scale = rng.log_uniform(1e-3, 0.3);
    let beta = if rng.one_in(3) {
        rng.log_uniform(0.1, 3.0)
    } else {
        1.0
    };
    let table = exp_table(scale, beta);
    let p = SoftmaxParams {
        shape: SoftmaxShape { outer, depth },
        table: &table,
    };
    let n = (outer * depth) as usize;
    let x = rng.i8_vec(n);
    check_i8(&p, n, n).unwrap();
    let mut out = vec![0i8; n];
    eval_i8(&p, &x, &mut out);
    testing::assert_within_lsb(
        &out,
        &oracle_i8(&x, depth as usize, scale, beta),
        1,
        "softmax int8",
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(testing::CASES))]

    /// The documented bound: within 1 LSB of exact.
    #[test]
    fn int8_within_1_lsb_of_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (outer, depth) = (rng.dim(4), if rng.one_in(4) { rng.dim(2000) } else { rng.dim(40) });
        run_i8(&mut rng, outer, depth);
    }

    #[test]
    fn f32_matches_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let shape = SoftmaxShape { outer: rng.dim(4), depth: rng.dim(50) };
        let n = (shape.outer * shape.depth) as usize;
        let x = rng.f32_vec(n, 20.0);
        let beta = rng.log_uniform(0.1, 2.0) as f32;
        let p = SoftmaxF32Params { shape, beta };
        check_f32(&p, n, n).unwrap();
        let mut out = vec![0f32; n];
        eval_f32(&p, &x, &mut out);
        let mut want = Vec::new();
        for row in x.chunks(shape.depth as usize) {
            let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let e: Vec<f64> = row.iter().map(|&v| (beta as f64 * (v as f64 - max)).exp()).collect();
            let s: f64 = e.iter().sum();
            want.extend(e.iter().map(|v| v / s));
        }
        testing::assert_close_f32(&out, &want, 1e-5, 1e-7, "softmax f32");
    }
}

/// The bound at the largest accepted depth.
#[test]
fn int8_within_1_lsb_at_max_depth() {
    let mut rng = Rng::new(99);
    run_i8(&mut rng, 1, MAX_DEPTH);
}

/// Hand-checked: two equal values -> 0.5 each = 128/256 -> 0; one dominant value
/// (difference 255 at scale 0.1: e^-25.5 ≈ 8e-12) -> 127 (clamped from 128) and -128.
#[test]
fn golden_softmax_i8() {
    let table = exp_table(0.1, 1.0);
    let p = SoftmaxParams {
        shape: SoftmaxShape { outer: 2, depth: 2 },
        table: &table,
    };
    check_i8(&p, 4, 4).unwrap();
    let mut out = [0i8; 4];
    eval_i8(&p, &[5, 5, 127, -128], &mut out);
    assert_eq!(out, [0, 0, 127, -128]);
    let pf = SoftmaxF32Params {
        shape: SoftmaxShape { outer: 1, depth: 2 },
        beta: 1.0,
    };
    let mut outf = [0f32; 2];
    eval_f32(&pf, &[0.0, 2f32.ln()], &mut outf);
    assert!((outf[0] - 1.0 / 3.0).abs() < 1e-6 && (outf[1] - 2.0 / 3.0).abs() < 1e-6);
}

#[test]
fn check_rejects_bad_params() {
    let mut table = exp_table(0.1, 1.0);
    let p = SoftmaxParams {
        shape: SoftmaxShape { outer: 1, depth: 4 },
        table: &table,
    };
    assert_eq!(check_i8(&p, 4, 4), Ok(()));
    assert!(check_i8(&p, 4, 5).is_err());
    let p = SoftmaxParams {
        shape: SoftmaxShape { outer: 1, depth: 4 },
        table: &table[..255],
    };
    assert!(check_i8(&p, 4, 4).is_err());
    let p = SoftmaxParams {
        shape: SoftmaxShape {
            outer: 1,
            depth: MAX_DEPTH + 1,
        },
        table: &table,
    };
    assert!(check_i8(&p, (MAX_DEPTH + 1) as usize, (MAX_DEPTH + 1) as usize).is_err());
    table[0] = 0;
    let p = SoftmaxParams {
        shape: SoftmaxShape { outer: 1, depth: 4 },
        table: &table,
    };
    assert!(check_i8(&p, 4, 4).is_err());
    let pf = SoftmaxF32Params {
        shape: SoftmaxShape { outer: 1, depth: 4 },
        beta: f32::NAN,
    };
    assert!(check_f32(&pf, 4, 4).is_err());
}

/// Random rows and depths (8-value blocks and a remainder, and multiples of 64), many rows,
/// values spread over the whole exp range, ties for the maximum, ±0, ±inf and NaN, causal
/// masks, and β from 0 to large: the AVX2 and AVX-512 f32 softmaxes give the reference's bits.
#[test]
fn bit_exact_avx2_f32() {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        let mut rng = Rng::new(0x50F7);
        for case in 0..400 {
            let shape = SoftmaxShape {
                // Many rows too: the AVX-512 kernel takes short rows in groups.
                outer: if rng.one_in(3) {
                    rng.dim(40)
                } else {
                    rng.dim(5)
                },
                depth: match rng.range(0, 3) {
                    0 => rng.dim(600),
                    1 => 64 * rng.range(1, 3) as u32,
                    _ => rng.dim(40),
                },
            };
            let n = (shape.outer * shape.depth) as usize;
            let amp = rng.log_uniform(0.1, 300.0);
            let mut x = rng.f32_vec(n, amp);
            if rng.one_in(4) {
                let specials = [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN];
                for v in x.iter_mut().skip(rng.range(0, 6) as usize).step_by(7) {
                    *v = specials[rng.range(0, specials.len() as i32 - 1) as usize];
                }
            }
            if rng.one_in(3) {
                // A causal attention mask: row `r` keeps its first `r % depth + 1` values, the
                // others are a large negative (whole trailing blocks underflow in `exp`).
                let depth = shape.depth as usize;
                let fill = if rng.one_in(2) { -1e4 } else { -1e9 };
                for (r, row) in x.chunks_mut(depth).enumerate() {
                    for v in row.iter_mut().skip(r % depth + 1) {
                        *v += fill;
                    }
                }
            }
            let beta = match rng.range(0, 3) {
                0 => 0.0,
                1 => 1.0,
                _ => rng.log_uniform(0.01, 50.0) as f32,
            };
            let p = SoftmaxF32Params { shape, beta };
            check_f32(&p, n, n).unwrap();
            let mut want = vec![0f32; n];
            let mut got = vec![0f32; n];
            reference::eval_f32(&p, &x, &mut want);
            avx2::eval_f32_detected(&p, &x, &mut got);
            // Bits, with every NaN as one value (its payload may depend on operand order).
            let bits = crate::ops::testing::f32_bits;
            assert_eq!(
                bits(&got),
                bits(&want),
                "case {case}: {shape:?} beta {beta}"
            );
            if super::avx512::detected() {
                got.fill(0.0);
                super::avx512::eval_f32_detected(&p, &x, &mut got);
                assert_eq!(
                    bits(&got),
                    bits(&want),
                    "avx512, case {case}: {shape:?} beta {beta}"
                );
            }
        }
        if !super::avx512::detected() {
            println!("skipped: softmax/avx512 (CPU lacks AVX512F)");
        }
        return;
    }
    println!("skipped: softmax/avx2");
}

/// The AVX2 int8 kernel against the reference, every output byte: random rows (tails of every
/// length mod 8 and 32), rows of one repeated value, the extreme scales, and the largest depth.
#[test]
fn int8_avx2_bit_exact() {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        let mut rng = Rng::new(0x50F7);
        for case in 0..400 {
            let outer = rng.dim(5);
            let depth = match case % 5 {
                0 => rng.dim(7),
                1 => rng.dim(70),
                2 => rng.dim(300),
                3 => 64,
                _ => rng.dim(2100),
            };
            let scale = if case % 7 == 0 {
                [1e-4, 0.5, 2.0][case % 3]
            } else {
                rng.log_uniform(1e-3, 0.3)
            };
            let table = exp_table(scale, if rng.one_in(3) { 1.7 } else { 1.0 });
            let p = SoftmaxParams {
                shape: SoftmaxShape { outer, depth },
                table: &table,
            };
            let n = (outer * depth) as usize;
            let x = if case % 11 == 0 {
                vec![rng.range(-128, 127) as i8; n]
            } else {
                rng.i8_vec(n)
            };
            check_i8(&p, n, n).unwrap();
            let (mut want, mut got) = (vec![0i8; n], vec![0i8; n]);
            reference::eval_i8(&p, &x, &mut want);
            super::avx2::eval_i8_detected(&p, &x, &mut got);
            assert_eq!(
                got, want,
                "case {case}: outer {outer} depth {depth} scale {scale}"
            );
        }
        for scale in [1e-4, 0.05] {
            let table = exp_table(scale, 1.0);
            let depth = MAX_DEPTH;
            let p = SoftmaxParams {
                shape: SoftmaxShape { outer: 1, depth },
                table: &table,
            };
            let x = rng.i8_vec(depth as usize);
            let (mut want, mut got) = (vec![0i8; x.len()], vec![0i8; x.len()]);
            reference::eval_i8(&p, &x, &mut want);
            super::avx2::eval_i8_detected(&p, &x, &mut got);
            assert_eq!(got, want, "largest depth, scale {scale}");
        }
        return;
    }
    println!("skipped: softmax/avx2 int8 (CPU lacks AVX2)");
}

/// The five ops the fused op replaces, each with its reference arithmetic, one after another.
fn quantized_chain(p: &quantized::QuantizedSoftmaxParams<'_>, x: &[i8]) -> Vec<i8> {
    chain_probs(p, x)
        .iter()
        .map(|&v| crate::quant::quantize_f32(v, p.output.scale, p.output.zero_point))
        .collect()
}

/// The first four ops of [`quantized_chain`]: the f32 probabilities its Quantize rounds.
fn chain_probs(p: &quantized::QuantizedSoftmaxParams<'_>, x: &[i8]) -> Vec<f32> {
    use crate::quant::dequantize_f32;
    let depth = p.shape.depth as usize;
    let mut a: Vec<f32> = x
        .iter()
        .map(|&q| dequantize_f32(q, p.input.scale, p.input.zero_point))
        .collect();
    if let Some(c) = p.pre_scale {
        a.iter_mut().for_each(|v| *v *= c);
    }
    if let Some(m) = p.mask {
        let rows = m.len() / depth;
        for (r, ar) in a.chunks_mut(depth).enumerate() {
            for (j, v) in ar.iter_mut().enumerate() {
                *v += m[(r % rows) * depth + j];
            }
        }
    }
    let mut b = vec![0f32; a.len()];
    let sp = SoftmaxF32Params {
        shape: p.shape,
        beta: p.beta,
    };
    reference::eval_f32(&sp, &a, &mut b);
    b
}

/// The fused int8 softmax gives exactly the five reference ops' bytes, with the kernels of this
/// machine and with the reference table, for any scratch size, with and without pre-scale and
/// mask (masks with `-inf`, `-1e4` and ordinary values, broadcast over leading rows).
#[test]
fn quantized_softmax_is_bit_exact_to_the_chain() {
    use crate::ops::quantize::QuantizeParams;
    let mut rng = Rng::new(0x5eed_50f7);
    for case in 0..400 {
        let mask_rows = rng.dim(8);
        let outer = mask_rows * rng.dim(6);
        let depth = if rng.one_in(3) {
            rng.dim(300)
        } else {
            [16, 33, 64, 128][rng.range(0, 3) as usize]
        };
        let n = (outer * depth) as usize;
        let mask: Vec<f32> = (0..(mask_rows * depth) as usize)
            .map(|_| match rng.range(0, 5) {
                0 => f32::NEG_INFINITY,
                1 => -1e4,
                2 => 0.0,
                _ => rng.range(-3000, 3000) as f32 / 1000.0,
            })
            .collect();
        let p = quantized::QuantizedSoftmaxParams {
            shape: SoftmaxShape { outer, depth },
            input: QuantizeParams {
                scale: rng.log_uniform(1e-3, 0.5) as f32,
                zero_point: rng.zero_point(),
            },
            pre_scale: (!rng.one_in(4)).then(|| rng.log_uniform(0.05, 2.0) as f32),
            mask: (!rng.one_in(4)).then_some(mask.as_slice()),
            beta: if rng.one_in(4) {
                rng.log_uniform(0.3, 3.0) as f32
            } else {
                1.0
            },
            output: QuantizeParams {
                scale: if rng.one_in(2) {
                    1.0 / 255.0
                } else {
                    rng.log_uniform(1e-3, 0.02) as f32
                },
                zero_point: if rng.one_in(2) {
                    -128
                } else {
                    rng.zero_point()
                },
            },
        };
        let x = rng.i8_vec(n);
        let scratch_len = quantized::min_scratch(depth)
            + 2 * depth as usize * rng.range(0, 9) as usize
            + rng.range(0, 5) as usize;
        quantized::check(&p, n, scratch_len, n).unwrap();
        let want = quantized_chain(&p, &x);
        testing::assert_fused_both_tables(
            &want,
            scratch_len,
            &format!("case {case}: {p:?}"),
            |k, s, y| match k {
                Some(k) => quantized::eval_with(k, &p, &x, s, y),
                None => quantized::eval(&p, &x, s, y),
            },
        );
    }
}

/// `check` rejects a mask that does not tile the rows, too little scratch, bad quantization.
#[test]
fn quantized_softmax_check_rejects_bad_params() {
    use crate::ops::quantize::QuantizeParams;
    let q = QuantizeParams {
        scale: 0.1,
        zero_point: 0,
    };
    let mask = vec![0f32; 3 * 8];
    let p = quantized::QuantizedSoftmaxParams {
        shape: SoftmaxShape { outer: 6, depth: 8 },
        input: q,
        pre_scale: Some(0.5),
        mask: Some(&mask),
        beta: 1.0,
        output: q,
    };
    assert!(quantized::check(&p, 48, 16, 48).is_ok());
    assert!(
        quantized::check(&p, 48, 15, 48).is_err(),
        "scratch below two rows"
    );
    assert!(quantized::check(&p, 48, 16, 40).is_err(), "output length");
    let (short, four_rows) = (vec![0f32; 5], vec![0f32; 32]);
    for m in [&four_rows[..], &short[..], &mask[..0]] {
        let bad = quantized::QuantizedSoftmaxParams { mask: Some(m), ..p };
        assert!(
            quantized::check(&bad, 48, 16, 48).is_err(),
            "mask of {}",
            m.len()
        );
    }
    let bad = quantized::QuantizedSoftmaxParams {
        pre_scale: Some(f32::INFINITY),
        ..p
    };
    assert!(quantized::check(&bad, 48, 16, 48).is_err());
    let bad = quantized::QuantizedSoftmaxParams {
        output: QuantizeParams {
            scale: 0.0,
            zero_point: 0,
        },
        ..p
    };
    assert!(quantized::check(&bad, 48, 16, 48).is_err());
}

/// The fused AVX-512 kernel (`avx512::eval_quantized`, what `quantized::eval` runs where the CPU
/// has AVX-512) gives exactly the five reference ops' bytes: random depths (multiples of 16 and
/// not, short and long rows), masks of several rows (causal ones with `-1e4`, `-1e9` or `-inf`,
/// rows masked entirely, random values) or none, with and without pre-scale, β from 0 up,
/// random scales and zero points on both sides, scratches of one to many rows per group; also
/// through `eval` (which falls back to the kernel table where the scratch is too short).
#[test]
fn quantized_avx512_kernel_is_bit_exact_to_the_chain() {
    #[cfg(target_arch = "x86_64")]
    if avx512::detected() {
        use crate::ops::quantize::QuantizeParams;
        let mut rng = Rng::new(0xA512_50F7);
        let mut ran = 0;
        for case in 0..600 {
            let depth = match rng.range(0, 4) {
                0 => rng.dim(40),
                1 => 16 * rng.range(1, 6) as u32,
                2 => 64,
                3 => rng.dim(300),
                _ => 64 * rng.range(1, 3) as u32 + rng.range(1, 15) as u32,
            };
            let d = depth as usize;
            let mask_rows = rng.dim(6);
            let outer = mask_rows * rng.dim(7);
            let n = outer as usize * d;
            let fill = [-1e4, -1e9, f32::NEG_INFINITY][rng.range(0, 2) as usize];
            let kind = rng.range(0, 3);
            let mask: Vec<f32> = (0..mask_rows as usize * d)
                .map(|i| {
                    let (r, j) = (i / d, i % d);
                    match kind {
                        // Causal: row r keeps its first r % depth + 1 values.
                        0 => {
                            if j > r % d {
                                fill
                            } else {
                                0.0
                            }
                        }
                        // Causal, and every third row masked entirely.
                        1 => {
                            if r % 3 == 2 || j > r % d {
                                fill
                            } else {
                                0.0
                            }
                        }
                        2 => rng.range(-3000, 3000) as f32 / 1000.0,
                        _ => [0.0, fill, rng.range(-50, 50) as f32][rng.range(0, 2) as usize],
                    }
                })
                .collect();
            let p = quantized::QuantizedSoftmaxParams {
                shape: SoftmaxShape { outer, depth },
                input: QuantizeParams {
                    scale: rng.log_uniform(1e-3, 2.0) as f32,
                    zero_point: rng.zero_point(),
                },
                pre_scale: (!rng.one_in(4)).then(|| rng.log_uniform(0.05, 4.0) as f32),
                mask: (!rng.one_in(4)).then_some(mask.as_slice()),
                beta: match rng.range(0, 5) {
                    0 => 0.0,
                    1 => rng.log_uniform(0.01, 30.0) as f32,
                    _ => 1.0,
                },
                output: QuantizeParams {
                    scale: if rng.one_in(2) {
                        1.0 / 255.0
                    } else {
                        rng.log_uniform(1e-3, 0.1) as f32
                    },
                    zero_point: if rng.one_in(2) {
                        -128
                    } else {
                        rng.zero_point()
                    },
                },
            };
            let x = rng.i8_vec(n);
            let stride = avx512::quantized_stride(d);
            let scratch_len = if rng.one_in(8) {
                quantized::min_scratch(depth) + rng.range(0, 5) as usize
            } else {
                2 * stride * rng.range(1, 10) as usize + rng.range(0, 20) as usize
            };
            quantized::check(&p, n, scratch_len, n).unwrap();
            let want = quantized_chain(&p, &x);
            if avx512::quantized_fits(d, scratch_len) {
                let mut scratch = vec![f32::NAN; scratch_len];
                let mut got = vec![0i8; n];
                avx512::eval_quantized_detected(&p, &x, &mut scratch, &mut got);
                assert_eq!(got, want, "case {case}: scratch {scratch_len}, {p:?}");
                ran += 1;
            }
            let mut scratch = vec![f32::NAN; scratch_len];
            let mut got = vec![0i8; n];
            quantized::eval(&p, &x, &mut scratch, &mut got);
            assert_eq!(got, want, "eval, case {case}: scratch {scratch_len}, {p:?}");
        }
        assert!(ran > 400, "the kernel ran in {ran} cases only");
        return;
    }
    println!("skipped: softmax/avx512 quantized kernel (CPU lacks AVX512F)");
}

/// The fused AVX-512 kernel on rounding boundaries. Its f32 arithmetic must be the chain's to
/// the last bit, but a probability that is one ulp off changes the output byte only where
/// `p / s_out` (the value Quantize rounds) lies within about an ulp of a half-integer, which
/// random scales almost never give: the random test above passes with `d · (s · c)` in place
/// of `(d · s) · c`, or with a block's high half added to the partial sums before its low half,
/// and this one fails (a few hundred of its ~6000 runs). Here each case takes a probability `p` of the chain and a level
/// `k`, and runs the kernel with the output scales `s` within three ulps of `p / (k + 0.5)`
/// (zero point −128, so that `k` does not saturate): for some of them `p / s` is just below
/// `k + 0.5`, for some just above, so that a `p` one ulp off either way changes a byte. Short
/// rows (of which most values differ when one does), with and without pre-scale and mask.
#[test]
fn quantized_avx512_kernel_is_bit_exact_on_rounding_boundaries() {
    #[cfg(target_arch = "x86_64")]
    if avx512::detected() {
        use crate::ops::quantize::QuantizeParams;
        use crate::quant::quantize_f32;
        let mut rng = Rng::new(0xB0DA_50F7);
        let mut near = 0;
        for case in 0..300 {
            let depth = [16, 33, 64, rng.dim(80)][rng.range(0, 3) as usize];
            let d = depth as usize;
            let mask_rows = rng.dim(3);
            let outer = mask_rows * rng.dim(3);
            let n = outer as usize * d;
            let mask: Vec<f32> = (0..mask_rows as usize * d)
                .map(|i| match rng.range(0, 4) {
                    0 if i % d != 0 => -1e4,
                    1 => 0.0,
                    _ => rng.range(-3000, 3000) as f32 / 1000.0,
                })
                .collect();
            let mut p = quantized::QuantizedSoftmaxParams {
                shape: SoftmaxShape { outer, depth },
                input: QuantizeParams {
                    scale: rng.log_uniform(1e-3, 0.5) as f32,
                    zero_point: rng.zero_point(),
                },
                pre_scale: (!rng.one_in(4)).then(|| rng.log_uniform(0.05, 4.0) as f32),
                mask: (!rng.one_in(3)).then_some(mask.as_slice()),
                beta: if rng.one_in(4) {
                    rng.log_uniform(0.3, 3.0) as f32
                } else {
                    1.0
                },
                output: QuantizeParams {
                    scale: 1.0,
                    zero_point: -128,
                },
            };
            let x = rng.i8_vec(n);
            let probs = chain_probs(&p, &x);
            let scratch_len = 2 * avx512::quantized_stride(d) * rng.range(1, 4) as usize;
            let mut scratch = vec![f32::NAN; scratch_len];
            let mut got = vec![0i8; n];
            for _ in 0..4 {
                let prob = probs[rng.range(0, n as i32 - 1) as usize];
                if prob.is_nan() || prob < 1e-6 {
                    continue;
                }
                let level = rng.range(0, 254) as f64 + 0.5;
                let s0 = (prob as f64 / level) as f32;
                for step in -3i32..=3 {
                    let s = f32::from_bits(s0.to_bits().wrapping_add_signed(step));
                    p.output.scale = s;
                    quantized::check(&p, n, scratch_len, n).unwrap();
                    let want: Vec<i8> = probs.iter().map(|&v| quantize_f32(v, s, -128)).collect();
                    avx512::eval_quantized_detected(&p, &x, &mut scratch, &mut got);
                    assert_eq!(got, want, "case {case}: p {prob}, scale {s}, {p:?}");
                    near += usize::from(((prob / s) as f64 - level).abs() < 1e-4);
                }
            }
        }
        assert!(near > 2000, "only {near} runs near a boundary");
        return;
    }
    println!("skipped: softmax/avx512 quantized kernel (CPU lacks AVX512F)");
}

#[test]
fn div_small_equals_division() {
    // Every denominator class the int8 softmax produces (one entry of 2^24 up to MAX_DEPTH of
    // them) and numerators across the whole quotient range, edges included.
    let mut rng = Rng::new(0xD1F5);
    let max_d = (MAX_DEPTH as u64) << TABLE_BITS;
    for case in 0..20_000 {
        let d = match case % 5 {
            0 => 1 + rng.next_u64() % 1024,
            1 => (1 << TABLE_BITS) + rng.next_u64() % (1 << TABLE_BITS),
            // Around the 23-bit boundary where the shifted path starts.
            2 => (1 << 23) - 4 + rng.next_u64() % 8,
            _ => 1 + rng.next_u64() % max_d,
        };
        let q = rng.next_u64() % 512;
        for n in [
            q * d,
            q * d + d / 2,
            q * d + d - 1,
            rng.next_u64() % (512 * d),
        ] {
            assert_eq!(reference::div_small(n, d), n / d, "{n} / {d}");
        }
    }
    assert_eq!(reference::div_small(511 * max_d + max_d - 1, max_d), 511);
    // Every numerator of the softmax's extreme rows: one entry (T = 2^24) and MAX_DEPTH
    // maximal entries, t from 0 to T.
    for total in [1u64 << TABLE_BITS, max_d, max_d - 1, (1 << 32) + 1] {
        for t in (0..=total)
            .step_by((total / 4099) as usize + 1)
            .chain([total])
        {
            let n = t * 256 + total / 2;
            assert_eq!(reference::div_small(n, total), n / total, "{n} / {total}");
        }
    }
    assert_eq!(reference::div_small(0, 1), 0);
}
