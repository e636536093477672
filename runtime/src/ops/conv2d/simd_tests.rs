//! Optimized Conv2D variants against the reference, every output element, on the random cases of
//! [`super::tests::assert_bit_exact`] (odd sizes, padding, strides, dilations, zero points), and
//! on wider random cases (up to 40 input and 70 output channels: several 4-channel groups, a
//! remainder, patches of many 16-lane chunks and a partial one, and blocks of output channels).

use super::tests::{assert_bit_exact, ConvCase};
use super::{check_i8, reference};
use crate::ops::testing::Rng;
use crate::ops::Conv2dI8Fn;
use std::vec;

const CASES: usize = 60;

fn assert_bit_exact_wide(variant: Conv2dI8Fn, seed: u64, cases: usize, max_in: u32, max_out: u32) {
    let mut rng = Rng::new(seed);
    for i in 0..cases {
        let c = ConvCase::random_with(&mut rng, max_in, max_out);
        let p = c.params();
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
    assert_bit_exact(super::dsp::eval_i8, 0xC0D5, CASES);
}

/// The DSP kernel's im2col copies runs of every length as `copy_from_slice` would: the
/// fixed-size arms (1 to 16 bytes) and the `memcpy` fallback, at every offset in a buffer.
#[test]
fn dsp_patch_copies_every_length() {
    let mut rng = Rng::new(0xC0D7);
    let src = rng.i8_vec(64);
    for len in 0..=40 {
        for at in [0, 1, 3, 7] {
            let mut got = vec![0x55i8; 64];
            let mut want = got.clone();
            super::dsp::copy_bytes(&mut got[at..at + len], &src[3..3 + len]);
            want[at..at + len].copy_from_slice(&src[3..3 + len]);
            assert_eq!(got, want, "len {len} at {at}");
        }
    }
}

/// The DSP kernel's pointwise path (1×1, stride 1, no padding: one FullyConnected over all
/// pixels, rows four at a time): random cases made pointwise, sizes up to 40 channels in and out.
#[test]
fn bit_exact_dsp_pointwise() {
    let mut rng = Rng::new(0xC0D6);
    for i in 0..80 {
        let mut c = ConvCase::random_with(&mut rng, 40, 40);
        let [n, h, w, in_c] = c.shape.input;
        let out_c = c.shape.output[3];
        c.shape.kernel = [1, 1];
        c.shape.stride = [1, 1];
        c.shape.padding = crate::ops::Padding::default();
        c.shape.output = [n, h, w, out_c];
        c.weights = rng.weights((out_c * in_c) as usize);
        assert_dsp_equals_reference(&c, i);
    }
}

/// The DSP kernel's output equals the reference's on case `c` (number `i`), every byte.
fn assert_dsp_equals_reference(c: &ConvCase, i: usize) {
    let p = c.params();
    check_i8(&p, c.input.len(), c.shape.output_len()).expect("valid case");
    let mut want = vec![0i8; c.shape.output_len()];
    let mut got = vec![0i8; c.shape.output_len()];
    reference::eval_i8(&p, &c.input, &mut want);
    super::dsp::eval_i8(&p, &c.input, &mut got);
    assert_eq!(got, want, "case {i}: {:?}", c.shape);
}

/// The DSP kernel's im2col by kernel rows (`gather_rows`): kernels up to 6×8 with paddings up
/// to the kernel's size on each side, so windows hang over one border, both, or lie wholly in
/// the padding; strides 1–3, row dilations 1–2 (column dilation takes the tap-by-tap path).
#[test]
fn bit_exact_dsp_wide_windows() {
    let mut rng = Rng::new(0xC0D8);
    let mut done = 0;
    while done < 80 {
        let mut c = ConvCase::random_with(&mut rng, 5, 12);
        let [n, h, w, in_c] = c.shape.input;
        let out_c = c.shape.output[3];
        let kernel = [rng.range(1, 6) as u32, rng.range(1, 8) as u32];
        let padding = crate::ops::Padding {
            top: rng.range(0, kernel[0] as i32) as u32,
            bottom: rng.range(0, kernel[0] as i32) as u32,
            left: rng.range(0, kernel[1] as i32) as u32,
            right: rng.range(0, kernel[1] as i32) as u32,
        };
        let dilation = [c.shape.dilation[0], 1];
        let s = c.shape.stride;
        let oh =
            crate::ops::window_output(h, padding.top, padding.bottom, kernel[0], s[0], dilation[0]);
        let ow = crate::ops::window_output(w, padding.left, padding.right, kernel[1], s[1], 1);
        let (Ok(oh), Ok(ow)) = (oh, ow) else {
            continue;
        };
        c.shape.kernel = kernel;
        c.shape.padding = padding;
        c.shape.dilation = dilation;
        c.shape.output = [n, oh, ow, out_c];
        c.weights = rng.weights((out_c * in_c * kernel[0] * kernel[1]) as usize);
        assert_dsp_equals_reference(&c, done);
        done += 1;
    }
}

/// Random cases whose multipliers are all below 1 (shifts <= 0): every group of eight output
/// channels takes the AVX2 requantization's fast path (the random cases above mix in positive
/// shifts, one channel in six, so most groups take the general path there).
fn assert_bit_exact_small_scales(
    variant: Conv2dI8Fn,
    seed: u64,
    cases: usize,
    max_in: u32,
    max_out: u32,
) {
    let mut rng = Rng::new(seed);
    for i in 0..cases {
        let mut c = ConvCase::random_with(&mut rng, max_in, max_out);
        for (m, s) in c.multiplier.iter_mut().zip(c.shift.iter_mut()) {
            if *s > 0 {
                (*m, *s) = crate::ops::testing::multiplier(rng.log_uniform(1e-4, 0.99));
            }
        }
        let p = c.params();
        check_i8(&p, c.input.len(), c.shape.output_len()).expect("valid case");
        let mut want = vec![0i8; c.shape.output_len()];
        let mut got = vec![0i8; c.shape.output_len()];
        reference::eval_i8(&p, &c.input, &mut want);
        variant(&p, &c.input, &mut got);
        assert_eq!(got, want, "case {i} (seed {seed}): {:?}", c.shape);
    }
}

#[cfg(target_arch = "x86_64")]
use crate::arch::x86_vnni::VnniKind;

#[cfg(target_arch = "x86_64")]
fn avx2_forms() -> std::vec::Vec<(&'static str, Conv2dI8Fn)> {
    let mut v: std::vec::Vec<(&'static str, Conv2dI8Fn)> = std::vec::Vec::new();
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
            println!("skipped: conv2d/avx2 VNNI forms (CPU has neither AVX-VNNI nor AVX512-VNNI)");
        }
        if crate::arch::x86_avx512_conv::detected() {
            v.push(("avx512-vnni (zmm)", super::avx2::eval_i8_avx512_only));
        } else {
            println!("skipped: conv2d/vnni512 (CPU lacks AVX512F/BW/VL/VNNI)");
        }
    } else {
        println!("skipped: conv2d/avx2");
    }
    v
}

/// The VNNI form in one encoding (the CPU must have it: see `avx2_forms`).
#[cfg(target_arch = "x86_64")]
fn vnni_in(kind: VnniKind, p: &super::Conv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    let cpu = crate::arch::x86_vnni::cpu_with(kind).expect("encoding detected by avx2_forms");
    super::avx2::eval_i8_vnni_on(cpu, p, input, output)
}

#[cfg(target_arch = "x86_64")]
fn vnni_vex(p: &super::Conv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    vnni_in(VnniKind::Vex, p, input, output)
}

#[cfg(target_arch = "x86_64")]
fn vnni_evex(p: &super::Conv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    vnni_in(VnniKind::Evex, p, input, output)
}

#[test]
fn bit_exact_avx2() {
    #[cfg(target_arch = "x86_64")]
    for (name, f) in avx2_forms() {
        println!("conv2d/{name}");
        assert_bit_exact(f, 0xC0A2, 200);
        assert_bit_exact_wide(f, 0xC0A3, 60, 40, 70);
        assert_bit_exact_small_scales(f, 0xC0A5, 60, 40, 70);
        // A patch of 9·230 = 2070 lanes exceeds the blocked path's K_MAX (the per-tap loop runs);
        // patches of up to 9·100 = 900 lanes take chunks of a few groups of eight channels
        // (W_MAX / (8 · k)), or the per-tap loop beyond K_MAX; 300 channels of short patches take
        // several chunks of G_MAX groups.
        assert_bit_exact_wide(f, 0xC0A4, 6, 230, 9);
        assert_bit_exact_wide(f, 0xC0A6, 4, 100, 80);
        assert_bit_exact_wide(f, 0xC0A7, 3, 4, 300);
    }
}

#[test]
fn bit_exact_kernel_table() {
    assert_bit_exact(crate::arch::ops_table_best().conv2d_i8, 0xC0BE, CASES);
    assert_bit_exact_wide(crate::arch::ops_table_best().conv2d_i8, 0xC0BF, 20, 24, 40);
}

/// Random cases with a given geometry (kernel, stride, padding, channels, spatial size), random
/// values, zero points, multipliers and shifts; `small_scales` makes every shift <= 0.
#[allow(clippy::too_many_arguments)]
fn case_with(
    rng: &mut Rng,
    n: u32,
    hw: [u32; 2],
    in_c: u32,
    out_c: u32,
    kernel: [u32; 2],
    stride: [u32; 2],
    padding: crate::ops::Padding,
    small_scales: bool,
) -> super::tests::ConvCase {
    let mut c = ConvCase::random_with(rng, in_c, out_c);
    let [h, w] = hw;
    let oh = crate::ops::window_output(h, padding.top, padding.bottom, kernel[0], stride[0], 1)
        .expect("valid geometry");
    let ow = crate::ops::window_output(w, padding.left, padding.right, kernel[1], stride[1], 1)
        .expect("valid geometry");
    // Re-draw the tensors for the requested geometry and channels.
    let depth = (kernel[0] * kernel[1] * in_c) as usize;
    c.shape = super::Conv2dShape {
        input: [n, h, w, in_c],
        output: [n, oh, ow, out_c],
        kernel,
        stride,
        dilation: [1, 1],
        padding,
    };
    c.input = rng.i8_vec(c.shape.input_len());
    c.weights = rng.weights(out_c as usize * depth);
    c.bias = if rng.one_in(4) {
        None
    } else {
        Some(rng.i32_vec(out_c as usize, 30_000))
    };
    let reals = rng.channel_multipliers(out_c as usize, depth);
    let (mut m, mut sh) = crate::ops::testing::multipliers(&reals);
    if small_scales {
        for (m, s) in m.iter_mut().zip(sh.iter_mut()) {
            if *s > 0 {
                (*m, *s) = crate::ops::testing::multiplier(rng.log_uniform(1e-4, 0.99));
            }
        }
    }
    c.multiplier = m;
    c.shift = sh;
    c
}

fn assert_case(variant: Conv2dI8Fn, c: &super::tests::ConvCase, what: &str) {
    let p = c.params();
    check_i8(&p, c.input.len(), c.shape.output_len()).expect("valid case");
    let mut want = vec![0i8; c.shape.output_len()];
    let mut got = vec![0i8; c.shape.output_len()];
    reference::eval_i8(&p, &c.input, &mut want);
    variant(&p, &c.input, &mut got);
    assert_eq!(got, want, "{what}: {:?}", c.shape);
}

/// Pointwise (1×1, stride 1, unpadded) cases, the 512-bit kernel's direct rows when `in_c` is a
/// multiple of 4, and the DS-CNN's layers (first conv 10×4 stride 2 over 49×10×1; pointwise
/// 64→64 over 25×5), on every form, with mixed and with small scales.
#[test]
fn bit_exact_pointwise_and_ds_cnn() {
    let mut forms: std::vec::Vec<(&'static str, Conv2dI8Fn)> = std::vec::Vec::new();
    forms.push(("kernel table", crate::arch::ops_table_best().conv2d_i8));
    forms.push(("pairs (cores without DSP)", super::pairs::eval_i8));
    #[cfg(target_arch = "x86_64")]
    forms.extend(avx2_forms());
    let mut rng = Rng::new(0xC0D7);
    let none = crate::ops::Padding::default();
    for (name, f) in forms {
        for i in 0..60 {
            let (in_c, out_c) = (4 * rng.dim(24) + rng.range(0, 1) as u32, rng.dim(90));
            let hw = [rng.dim(9), rng.dim(9)];
            let n = rng.dim(2);
            let small = i % 2 == 0;
            let c = case_with(&mut rng, n, hw, in_c, out_c, [1, 1], [1, 1], none, small);
            assert_case(f, &c, &std::format!("{name} pointwise case {i}"));
        }
        // Pointwise layers larger than the 512-bit kernel's row buffer (several blocks of rows).
        for i in 0..2 {
            let c = case_with(&mut rng, 1, [20, 10], 96, 40, [1, 1], [1, 1], none, i == 0);
            assert_case(f, &c, &std::format!("{name} large pointwise {i}"));
        }
        for i in 0..6 {
            let small = i % 2 == 0;
            let c = case_with(&mut rng, 1, [25, 5], 64, 64, [1, 1], [1, 1], none, small);
            assert_case(f, &c, &std::format!("{name} ds-cnn pointwise {i}"));
            let pad = crate::ops::Padding {
                top: 4,
                bottom: 5,
                left: 1,
                right: 1,
            };
            let c = case_with(&mut rng, 1, [49, 10], 1, 64, [10, 4], [2, 2], pad, small);
            assert_case(f, &c, &std::format!("{name} ds-cnn first conv {i}"));
        }
    }
}

/// A random f32 case: `random_shape`'s geometry (padding, strides, dilations, batches), values
/// with some ±0, ±inf and NaN, with or without a bias, and a random clamp.
fn f32_case(
    rng: &mut Rng,
    in_c: u32,
    out_c: u32,
) -> (
    super::Conv2dShape,
    std::vec::Vec<f32>,
    std::vec::Vec<f32>,
    Option<std::vec::Vec<f32>>,
    crate::ops::ClampF32,
) {
    let shape = super::tests::random_shape(rng, in_c, out_c);
    let depth = (shape.kernel[0] * shape.kernel[1] * in_c) as usize;
    let mut x = rng.f32_vec(shape.input_len(), 2.0);
    let mut w = rng.f32_vec(out_c as usize * depth, 1.0);
    let mut bias = rng.f32_vec(out_c as usize, 1.0);
    if rng.one_in(4) {
        let specials = [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN];
        for v in [&mut x, &mut w, &mut bias] {
            let step = rng.range(5, 60) as usize;
            for e in v.iter_mut().skip(rng.range(0, 6) as usize).step_by(step) {
                *e = specials[rng.range(0, specials.len() as i32 - 1) as usize];
            }
        }
    }
    if rng.one_in(3) {
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
    let bias = (!rng.one_in(4)).then_some(bias);
    (shape, x, w, bias, activation)
}

/// The x86 f32 kernels (AVX, and AVX-512F where the CPU has it) against the reference, bit for
/// bit: pixel tiles and leftovers, blocks of 16–64 output channels and partial ones, tiles where
/// some pixels read padding, several weight panels (many input channels), and input channels
/// beyond a panel (the reference fallback).
#[test]
fn bit_exact_avx_f32() {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        use super::{check_f32, f32_avx, Conv2dF32Params};
        let mut rng = Rng::new(0xC0F32);
        for case in 0..300 {
            let in_c = match rng.range(0, 7) {
                0 => rng.dim(300),
                1 if case % 8 == 1 => 520,
                _ => rng.dim(20),
            };
            let out_c = rng.dim(80);
            let (shape, x, w, bias, activation) = f32_case(&mut rng, in_c, out_c);
            let p = Conv2dF32Params {
                shape,
                weights: &w,
                bias: bias.as_deref(),
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
            println!("skipped: conv2d/f32_avx avx512 (CPU lacks AVX512F)");
        }
        return;
    }
    println!("skipped: conv2d/f32_avx");
}
