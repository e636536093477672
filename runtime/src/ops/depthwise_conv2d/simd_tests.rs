//! Optimized DepthwiseConv2D variants against the reference, every output element, on random
//! cases (odd sizes, padding, strides, dilations, zero points, depth multipliers), with channel
//! counts up to 70 so that the 16-channel SIMD blocks and their scalar remainder both run.

use super::reference;
use super::tests::DwCase;
use super::{check_i8, DepthwiseConv2dParams};
use crate::ops::testing::Rng;
use crate::ops::DepthwiseConv2dI8Fn;
use std::vec;

fn assert_bit_exact_wide(variant: DepthwiseConv2dI8Fn, seed: u64, cases: usize) {
    let mut rng = Rng::new(seed);
    for i in 0..cases {
        let c = DwCase::random_with(&mut rng, 70);
        let p: DepthwiseConv2dParams<'_> = c.params();
        check_i8(&p, c.input.len(), c.shape.output_len()).expect("valid case");
        let mut want = vec![0i8; c.shape.output_len()];
        let mut got = vec![0i8; c.shape.output_len()];
        reference::eval_i8(&p, &c.input, &mut want);
        variant(&p, &c.input, &mut got);
        assert_eq!(got, want, "case {i} (seed {seed}): {:?}", c.shape);
    }
}

#[test]
fn bit_exact_dsp() {
    // Real SMLABB/SMLATT on thumbv7em; the portable emulation of the same instructions elsewhere.
    super::tests::assert_bit_exact(super::dsp::eval_i8, 0xD5D5, 200);
    assert_bit_exact_wide(super::dsp::eval_i8, 0xD5D6, 120);
    assert_bit_exact_small_scales(super::dsp::eval_i8, 0xD5D7, 120);
    assert_bit_exact_dscnn(super::dsp::eval_i8, 0xD5D8);
}

/// The DSP kernel on the layers that split its channels into several blocks (kernels up to
/// 8 × 8 = `MAX_TAPS` taps, so 3 to 32 groups of 4 channels per block, and up to 200 channels,
/// not always a multiple of 4), with padding, strides, dilations and batches; half the cases
/// with every scale in the range of its precomputed requantization (`requant_split`), the other
/// half mixing in scales up to 3 (the general path). Random values, zero points and clamps,
/// against the reference.
#[test]
fn bit_exact_dsp_blocks() {
    use crate::ops::fully_connected::dsp::fast_shifts;
    let mut rng = Rng::new(0xD5D9);
    let (mut fast, mut blocks, mut varied) = (0, 0, 0);
    let cases = 160;
    for i in 0..cases {
        let mut c = DwCase::random_with(&mut rng, 4);
        let ch = if rng.one_in(4) {
            rng.dim(16)
        } else {
            rng.range(60, 200) as u32
        };
        let (kh, kw) = (rng.dim(8), rng.dim(8));
        let (h, w) = (rng.range(1, 12) as u32, rng.range(1, 12) as u32);
        let stride = [rng.range(1, 3) as u32, rng.range(1, 3) as u32];
        let dilation = [rng.range(1, 2) as u32, rng.range(1, 2) as u32];
        let padding = crate::ops::Padding {
            top: rng.range(0, kh as i32 - 1) as u32,
            bottom: rng.range(0, kh as i32 - 1) as u32,
            left: rng.range(0, kw as i32 - 1) as u32,
            right: rng.range(0, kw as i32 - 1) as u32,
        };
        let dim = |x, lo, hi, k, st, d| crate::ops::window_output(x, lo, hi, k, st, d);
        let (Ok(oh), Ok(ow)) = (
            dim(h, padding.top, padding.bottom, kh, stride[0], dilation[0]),
            dim(w, padding.left, padding.right, kw, stride[1], dilation[1]),
        ) else {
            continue;
        };
        c.depth_multiplier = 1;
        c.shape = crate::ops::conv2d::Conv2dShape {
            input: [rng.dim(2), h, w, ch],
            output: [1, oh, ow, ch],
            kernel: [kh, kw],
            stride,
            dilation,
            padding,
        };
        c.shape.output[0] = c.shape.input[0];
        let taps = (kh * kw) as usize;
        c.input = rng.i8_vec(c.shape.input_len());
        c.weights = rng.weights(taps * ch as usize);
        c.bias = (!rng.one_in(4)).then(|| rng.i32_vec(ch as usize, 5_000));
        let typical = 48.0 / (75.0 * 75.0 * (taps as f64).sqrt());
        let reals: std::vec::Vec<f64> = (0..ch)
            .map(|_| {
                if i % 2 == 1 && rng.one_in(5) {
                    rng.log_uniform(0.2, 3.0)
                } else {
                    rng.log_uniform(typical / 8.0, (typical * 8.0).min(0.24))
                }
            })
            .collect();
        (c.multiplier, c.shift) = crate::ops::testing::multipliers(&reals);
        c.input_zero_point = rng.zero_point();
        c.output_zero_point = rng.zero_point();
        c.activation = rng.clamp(c.output_zero_point);
        let p: DepthwiseConv2dParams<'_> = c.params();
        check_i8(&p, c.input.len(), c.shape.output_len()).expect("valid case");
        let mut want = vec![0i8; c.shape.output_len()];
        let mut got = vec![0i8; c.shape.output_len()];
        reference::eval_i8(&p, &c.input, &mut want);
        super::dsp::eval_i8(&p, &c.input, &mut got);
        assert_eq!(got, want, "case {i}: {:?}", c.shape);
        fast += usize::from(fast_shifts(&c.shift));
        let per_block = super::dsp::BLOCK_WORDS / super::dsp::group_words(taps);
        blocks += usize::from(ch as usize / 4 > per_block);
        varied += usize::from(want.iter().any(|&v| v != want[0]));
    }
    println!("dsp blocks: {fast} fast, {blocks} with several blocks, {varied} varied");
    assert!(
        fast >= cases / 3,
        "{fast} of {cases} cases on the precomputed requantization"
    );
    assert!(
        blocks >= cases / 3,
        "{blocks} of {cases} cases with several blocks"
    );
    // Not a test of constants: most outputs take several values.
    assert!(
        varied >= cases / 2,
        "{varied} of {cases} outputs not constant"
    );
}

/// `requant_split` with its per-channel constants against `requantize_to_i8`, bit for bit, on
/// random and extreme accumulators, every multiplier range and every shift it takes.
#[test]
fn requant_split_matches_requantize() {
    use crate::ops::fully_connected::dsp::{requant_split, split_shift};
    let mut rng = Rng::new(0xD5DA);
    let edges = [
        i32::MIN,
        i32::MIN + 1,
        -1,
        0,
        1,
        i32::MAX,
        1 << 30,
        -(1 << 30),
    ];
    for shift in -31..=-2 {
        for n in 0..2_000 {
            let acc = if n < edges.len() {
                edges[n]
            } else if rng.one_in(2) {
                rng.next_u64() as i32
            } else {
                rng.range(-100_000, 100_000)
            };
            let mult = match n % 4 {
                0 => i32::MAX,
                1 => 1 << 30,
                _ => rng.range(1 << 30, i32::MAX),
            };
            let zp = rng.zero_point();
            let clamp = rng.clamp(zp);
            let want = crate::quant::requantize_to_i8(acc, mult, shift, zp, clamp.min, clamp.max);
            let (lo, hi) = (i32::from(clamp.min), i32::from(clamp.max));
            let got = requant_split(acc, mult, split_shift(shift), 1 + 2 * zp, lo, hi);
            assert_eq!(got, want, "acc {acc} mult {mult} shift {shift} zp {zp}");
        }
    }
}

/// Random cases with every multiplier below 1 (shifts <= 0), so that the AVX2 requantization's
/// fast path runs for whole groups of channels (the cases above mix in positive shifts).
fn assert_bit_exact_small_scales(variant: DepthwiseConv2dI8Fn, seed: u64, cases: usize) {
    let mut rng = Rng::new(seed);
    for i in 0..cases {
        let mut c = DwCase::random_with(&mut rng, 70);
        for (m, s) in c.multiplier.iter_mut().zip(c.shift.iter_mut()) {
            if *s > 0 {
                (*m, *s) = crate::ops::testing::multiplier(rng.log_uniform(1e-4, 0.99));
            }
        }
        let p: DepthwiseConv2dParams<'_> = c.params();
        check_i8(&p, c.input.len(), c.shape.output_len()).expect("valid case");
        let mut want = vec![0i8; c.shape.output_len()];
        let mut got = vec![0i8; c.shape.output_len()];
        reference::eval_i8(&p, &c.input, &mut want);
        variant(&p, &c.input, &mut got);
        assert_eq!(got, want, "case {i} (seed {seed}): {:?}", c.shape);
    }
}

/// The DS-CNN layer's geometry (25×5×64, 3×3, padding 1) with random values and scales.
fn assert_bit_exact_dscnn(variant: DepthwiseConv2dI8Fn, seed: u64) {
    let mut rng = Rng::new(seed);
    for i in 0..8 {
        let mut c = DwCase::random_with(&mut rng, 4);
        let ch = 64;
        c.depth_multiplier = 1;
        c.shape = crate::ops::conv2d::Conv2dShape {
            input: [1, 25, 5, ch],
            output: [1, 25, 5, ch],
            kernel: [3, 3],
            stride: [1, 1],
            dilation: [1, 1],
            padding: crate::ops::Padding {
                top: 1,
                bottom: 1,
                left: 1,
                right: 1,
            },
        };
        c.input = rng.i8_vec(c.shape.input_len());
        c.weights = rng.weights(9 * ch as usize);
        c.bias = Some(rng.i32_vec(ch as usize, 5_000));
        let reals: std::vec::Vec<f64> = (0..ch)
            .map(|_| rng.log_uniform(1e-4, if i % 2 == 0 { 0.99 } else { 3.0 }))
            .collect();
        (c.multiplier, c.shift) = crate::ops::testing::multipliers(&reals);
        let p: DepthwiseConv2dParams<'_> = c.params();
        check_i8(&p, c.input.len(), c.shape.output_len()).expect("valid case");
        let mut want = vec![0i8; c.shape.output_len()];
        let mut got = vec![0i8; c.shape.output_len()];
        reference::eval_i8(&p, &c.input, &mut want);
        variant(&p, &c.input, &mut got);
        assert_eq!(got, want, "DS-CNN case {i} (seed {seed})");
    }
}

#[cfg(target_arch = "x86_64")]
use crate::arch::x86_vnni::VnniKind;

#[cfg(target_arch = "x86_64")]
fn avx2_forms() -> std::vec::Vec<(&'static str, DepthwiseConv2dI8Fn)> {
    let mut v: std::vec::Vec<(&'static str, DepthwiseConv2dI8Fn)> = std::vec::Vec::new();
    if std::is_x86_feature_detected!("avx2") {
        v.push(("avx2", super::avx2::eval_i8_avx2_only));
        let cpus = crate::arch::x86_vnni::available();
        for cpu in &cpus {
            v.push(match cpu.kind() {
                VnniKind::Vex => ("avx2+avx-vnni (vex)", vnni_vex),
                VnniKind::Evex => ("avx2+avx512-vnni (evex)", vnni_evex),
            });
        }
        if cpus.is_empty() {
            println!("skipped: depthwise_conv2d/avx2 VNNI forms (CPU has neither AVX-VNNI nor AVX512-VNNI)");
        }
        if crate::arch::x86_avx512_conv::detected() {
            v.push(("avx512-vnni (zmm)", super::avx2::eval_i8_avx512_only));
        } else {
            println!("skipped: depthwise_conv2d/vnni512 (CPU lacks AVX512F/BW/VL/VNNI)");
        }
    } else {
        println!("skipped: depthwise_conv2d/avx2");
    }
    v
}

/// The VNNI form in one encoding (the CPU must have it: see `avx2_forms`).
#[cfg(target_arch = "x86_64")]
fn vnni_in(kind: VnniKind, p: &super::DepthwiseConv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    let cpu = crate::arch::x86_vnni::cpu_with(kind).expect("encoding detected by avx2_forms");
    super::avx2::eval_i8_vnni_on(cpu, p, input, output)
}

#[cfg(target_arch = "x86_64")]
fn vnni_vex(p: &super::DepthwiseConv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    vnni_in(VnniKind::Vex, p, input, output)
}

#[cfg(target_arch = "x86_64")]
fn vnni_evex(p: &super::DepthwiseConv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    vnni_in(VnniKind::Evex, p, input, output)
}

#[test]
fn bit_exact_avx2() {
    #[cfg(target_arch = "x86_64")]
    for (name, f) in avx2_forms() {
        println!("depthwise_conv2d/{name}");
        super::tests::assert_bit_exact(f, 0xD2A2, 200);
        assert_bit_exact_wide(f, 0xD2A3, 120);
        assert_bit_exact_small_scales(f, 0xD2A4, 120);
        assert_bit_exact_dscnn(f, 0xD2A5);
    }
}

/// The 512-bit kernel on its own (x86 with AVX-512 VNNI): random layers it takes (depth
/// multiplier 1, kernels up to 5 × 4, strides up to 3 so that some rows are never read, height
/// dilations up to 3, tall inputs whose rows pass through its ring several times, up to 200
/// channels: several blocks of 64 and a partial one, batches of 2), random values, zero points
/// and scales, against the reference.
#[test]
fn bit_exact_avx512_rolling_rows() {
    #[cfg(target_arch = "x86_64")]
    {
        if !crate::arch::x86_avx512_conv::detected() {
            println!("skipped: depthwise_conv2d/vnni512 (CPU lacks AVX512F/BW/VL/VNNI)");
            return;
        }
        let mut rng = Rng::new(0xD2C7);
        let (mut ran, mut varied) = (0, 0);
        for i in 0..150 {
            let mut c = DwCase::random_with(&mut rng, 4);
            let ch = rng.dim(200);
            let (kh, kw) = (rng.dim(5), rng.dim(4));
            let (h, w) = (
                rng.range(kh as i32, 40) as u32,
                rng.range(kw as i32, 20) as u32,
            );
            let stride = [rng.range(1, 3) as u32, rng.range(1, 3) as u32];
            let dilation = [rng.range(1, 3) as u32, 1];
            let padding = crate::ops::Padding {
                top: rng.range(0, kh as i32 - 1) as u32,
                bottom: rng.range(0, kh as i32 - 1) as u32,
                left: rng.range(0, kw as i32 - 1) as u32,
                right: rng.range(0, kw as i32 - 1) as u32,
            };
            let dim = |x, lo, hi, k, st, d| crate::ops::window_output(x, lo, hi, k, st, d);
            let (Ok(oh), Ok(ow)) = (
                dim(h, padding.top, padding.bottom, kh, stride[0], dilation[0]),
                dim(w, padding.left, padding.right, kw, stride[1], 1),
            ) else {
                continue;
            };
            let batch = rng.dim(2);
            c.depth_multiplier = 1;
            c.shape = crate::ops::conv2d::Conv2dShape {
                input: [batch, h, w, ch],
                output: [batch, oh, ow, ch],
                kernel: [kh, kw],
                stride,
                dilation,
                padding,
            };
            c.input = rng.i8_vec(c.shape.input_len());
            c.weights = rng.weights((kh * kw * ch) as usize);
            c.bias = (!rng.one_in(4)).then(|| rng.i32_vec(ch as usize, 5_000));
            let reals: std::vec::Vec<f64> = (0..ch)
                .map(|_| rng.log_uniform(1e-4, if i % 2 == 0 { 0.99 } else { 3.0 }))
                .collect();
            (c.multiplier, c.shift) = crate::ops::testing::multipliers(&reals);
            c.input_zero_point = rng.zero_point();
            c.output_zero_point = rng.zero_point();
            c.activation = rng.clamp(c.output_zero_point);
            let p: DepthwiseConv2dParams<'_> = c.params();
            check_i8(&p, c.input.len(), c.shape.output_len()).expect("valid case");
            let mut want = vec![0i8; c.shape.output_len()];
            let mut got = vec![0i8; c.shape.output_len()];
            reference::eval_i8(&p, &c.input, &mut want);
            // SAFETY: AVX2 and AVX-512 F, BW, VL and VNNI detected above.
            if unsafe { super::vnni512::eval_i8(&p, &c.input, &mut got) } {
                ran += 1;
                varied += usize::from(want.iter().any(|&v| v != want[0]));
                assert_eq!(got, want, "case {i}: {:?}", c.shape);
            }
        }
        assert!(ran >= 100, "the 512-bit kernel ran {ran} cases");
        // Not a test of constants: most outputs take several values.
        assert!(
            varied * 10 >= ran * 9,
            "{varied} of {ran} outputs not constant"
        );
    }
}

#[test]
fn bit_exact_kernel_table_wide_channels() {
    assert_bit_exact_wide(
        crate::arch::ops_table_best().depthwise_conv2d_i8,
        0xD2BE,
        60,
    );
}

/// The x86 f32 kernels (AVX, and AVX-512F where the CPU has it) against the reference, bit for
/// bit: random geometry (padding, strides, dilations, batches), up to 150 channels (chunks of 4
/// vectors, partial vectors), depth multipliers 1 (vector path) and 2–3 (reference fallback),
/// values with some ±0, ±inf and NaN, with or without a bias, and clamps.
#[test]
fn bit_exact_avx_f32() {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        use super::{check_f32, f32_avx, DepthwiseConv2dF32Params};
        let mut rng = Rng::new(0xD3F32);
        for case in 0..300 {
            let in_c = if rng.one_in(3) {
                rng.dim(150)
            } else {
                rng.dim(40)
            };
            let depth_multiplier = if rng.one_in(5) {
                rng.range(2, 3) as u32
            } else {
                1
            };
            let shape =
                crate::ops::conv2d::tests::random_shape(&mut rng, in_c, in_c * depth_multiplier);
            let out_c = shape.output[3] as usize;
            let taps = (shape.kernel[0] * shape.kernel[1]) as usize;
            let mut x = rng.f32_vec(shape.input_len(), 2.0);
            let mut w = rng.f32_vec(taps * out_c, 1.0);
            let mut bias = rng.f32_vec(out_c, 1.0);
            if rng.one_in(4) {
                let specials = [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN];
                for v in [&mut x, &mut w, &mut bias] {
                    let step = rng.range(5, 60) as usize;
                    for e in v.iter_mut().skip(rng.range(0, 6) as usize).step_by(step) {
                        *e = specials[rng.range(0, specials.len() as i32 - 1) as usize];
                    }
                }
            }
            if rng.one_in(4) {
                // Zero outputs: `-0.0` sums keep their sign unless a padded tap is wrongly added.
                x.iter_mut().for_each(|v| *v = -0.0);
                bias.iter_mut().for_each(|v| *v = -0.0);
            }
            let activation = match rng.range(0, 3) {
                0 => crate::ops::ClampF32::NONE,
                1 => crate::ops::ClampF32::RELU,
                2 => crate::ops::ClampF32::RELU6,
                _ => crate::ops::ClampF32 {
                    min: -1.0,
                    max: 0.5,
                },
            };
            let p = DepthwiseConv2dF32Params {
                shape,
                depth_multiplier,
                weights: &w,
                bias: (!rng.one_in(4)).then_some(&bias[..]),
                activation,
            };
            check_f32(&p, x.len(), shape.output_len()).expect("valid case");
            let mut want = vec![0f32; shape.output_len()];
            reference::eval_f32(&p, &x, &mut want);
            let mut got = vec![7f32; shape.output_len()];
            f32_avx::eval_f32_detected(&p, &x, &mut got);
            assert_eq!(
                crate::ops::testing::f32_bits(&got),
                crate::ops::testing::f32_bits(&want),
                "avx, case {case}: {shape:?}"
            );
            if f32_avx::avx512_detected() {
                got.fill(7.0);
                f32_avx::eval_f32_avx512_detected(&p, &x, &mut got);
                assert_eq!(
                    crate::ops::testing::f32_bits(&got),
                    crate::ops::testing::f32_bits(&want),
                    "avx512, case {case}: {shape:?}"
                );
            }
        }
        if !f32_avx::avx512_detected() {
            println!("skipped: depthwise_conv2d/f32_avx avx512 (CPU lacks AVX512F)");
        }
        return;
    }
    println!("skipped: depthwise_conv2d/f32_avx");
}
